//! `dnsward alerts list [--since 24h] [--json]` (the alert history) and `dnsward alerts test
//! RULE` (a test alert through each action of the rule, now).

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

use super::load_or_report;

#[derive(Subcommand, Debug)]
pub enum AlertsCommand {
    /// The alerts raised, oldest first.
    List {
        /// From when: `24h`, `7d`, an RFC 3339 time or a date.
        #[arg(long, default_value = "24h")]
        since: String,
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

pub fn run(path: &Path, command: AlertsCommand) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    match command {
        AlertsCommand::List { since, json } => {
            let now = crate::timefmt::now_us();
            let since_us = match crate::timefmt::parse_time_us(&since, now) {
                Ok(t) => t,
                Err(e) => {
                    eprintln!("error: --since: {e}");
                    return ExitCode::from(2);
                }
            };
            let history = config.alert_history_path();
            let list = match crate::alerts::history::list(&history, since_us, 100_000) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("error: {}: {e}", history.display());
                    return ExitCode::from(2);
                }
            };
            for a in &list {
                if json {
                    println!("{}", serde_json::to_string(a).unwrap_or_default());
                } else {
                    println!(
                        "{}  {:<20} {:<16} {:<18} {}",
                        a.time,
                        a.rule,
                        a.kind,
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
            ExitCode::SUCCESS
        }
        AlertsCommand::Test { rule } => {
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
                let alerts = match crate::alerts::Alerts::new(&config) {
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
                match alerts.send_test(&rule).await {
                    Ok(results) => {
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
                    }
                    Err(e) => {
                        eprintln!("error: {e}");
                        ExitCode::from(2)
                    }
                }
            })
        }
    }
}
