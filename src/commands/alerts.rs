//! `dnsward alerts list [--since 24h] [--rule R] [--kind K] [--client C] [--outcome O]
//! [--limit N] [--source sqlite|clickhouse] [--json]` (the alert history with each alert's
//! delivery outcome) and `dnsward alerts test RULE` (a test alert through each action of the
//! rule, now).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::load_or_report;
use crate::alerts::history::{list_from, AlertFilter, HistorySource, Listed};
use crate::config::Config;
use crate::querylog::clickhouse_client::ClickhouseTarget;

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// The alerts raised, oldest first, with what became of their deliveries.
    List {
        /// From when: `24h`, `7d`, an RFC 3339 time or a date.
        #[arg(long, default_value = "24h")]
        since: String,
        /// At most this many (the latest).
        #[arg(long, default_value = "100000")]
        limit: String,
        /// Only the alerts of this `[[alerts]]` rule.
        #[arg(long)]
        rule: Option<String>,
        /// Only this kind (client_threshold, watch, new_domain, feed_failure,
        /// querylog_drops, dnssec_bogus, audit, summary).
        #[arg(long)]
        kind: Option<String>,
        /// Only this client (its address, or `h:` token).
        #[arg(long)]
        client: Option<String>,
        /// Only alerts whose deliveries are: delivered, pending, retrying, lost, none.
        #[arg(long)]
        outcome: Option<String>,
        /// Read this resolver's SQLite history (default) or the fleet's ClickHouse.
        #[arg(long, value_enum, default_value = "sqlite")]
        source: Source,
        /// One JSON object a line instead of the table.
        #[arg(long)]
        json: bool,
    },
    /// Send a test alert through every action of RULE and say how each went.
    Test {
        /// The `name` of an `[[alerts]]` rule.
        rule: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    Sqlite,
    Clickhouse,
}

pub fn run(path: &Path, command: AlertsCommand) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    match command {
        AlertsCommand::List {
            since,
            limit,
            rule,
            kind,
            client,
            outcome,
            source,
            json,
        } => {
            let filter = AlertFilter::parse(
                &since,
                Some(&limit),
                rule.as_deref(),
                kind.as_deref(),
                client.as_deref(),
                outcome.as_deref(),
            );
            match filter {
                Ok(f) => list(&config, &f, source, json),
                Err(e) => {
                    eprintln!("error: --{e}");
                    ExitCode::from(2)
                }
            }
        }
        AlertsCommand::Test { rule } => test(&config, &rule),
    }
}

/// `alerts list`: the history from the chosen store.
fn list(config: &Config, filter: &AlertFilter, source: Source, json: bool) -> ExitCode {
    let source = match source {
        Source::Sqlite => HistorySource::Sqlite,
        Source::Clickhouse => HistorySource::Clickhouse,
    };
    let target = match config.querylog.as_ref().map(ClickhouseTarget::from_config) {
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Some(Ok(t)) => t,
        None => None,
    };
    let history = config.alert_history_path();
    match list_from(source, Some(history.as_path()), target, filter) {
        Ok(list) => {
            print_list(&list, json, filter.since_us);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// `alerts test RULE`: a test alert through each action of the rule, now.
fn test(config: &Config, rule: &str) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async {
        let alerts = match crate::alerts::Alerts::new(config) {
            Ok(Some(a)) => a,
            Ok(None) => {
                eprintln!("error: the config has no [[alerts]]");
                return ExitCode::from(2);
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let sent = alerts.send_test(rule).await;
        // The history's ClickHouse writer writes what it holds before the command ends.
        alerts.shutdown().await;
        let results = match sent {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        let mut ok = true;
        for (action, r) in results {
            match r {
                Ok(()) => println!("{}: sent", action.as_str()),
                Err(e) => {
                    ok = false;
                    println!("{}: failed: {e}", action.as_str());
                }
            }
        }
        if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    })
}

/// The table (one alert a line, its outcome after the kind) or JSON lines.
fn print_list(list: &[Listed], json: bool, since_us: i64) {
    for l in list {
        let a = &l.alert;
        if json {
            println!("{}", serde_json::to_string(l).unwrap_or_default());
        } else {
            println!(
                "{}  {:<20} {:<16} {:<9} {:<18} {}",
                a.time,
                a.rule,
                a.kind,
                l.outcome.as_str(),
                a.client.as_deref().unwrap_or("-"),
                a.message
            );
        }
    }
    if !json {
        eprintln!(
            "{} alert(s) since {}",
            list.len(),
            crate::timefmt::format_ts(since_us, 0)
        );
    }
}
