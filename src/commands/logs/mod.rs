//! `dnsward logs ...`: read the query log for people on duty, from the SQLite store
//! (read-only) or from the fleet's ClickHouse, with the same commands and the same output.
//!
//! - `tail`    latest queries, with filters; `-f` follows new rows
//! - `top`     top blocked domains, top clients by blocked attempts, blocked per category
//! - `clients` clients that look infected (repeated blocked attempts / many distinct blocked
//!   domains), with first and last seen
//! - `export`  CSV or JSON lines between two times
//! - `init-clickhouse` creates the ClickHouse schema
//!
//! Tables by default; `--json` for machines (`tail --json` writes one object per line so it
//! can be followed). Times: `2h`, `7d`, `30m`, RFC 3339, or a date.
//!
//! Here: the clap commands, the choice of store and one dispatch ([`run_on`]) over the
//! [`LogStore`] each store implements (`sqlite.rs`, `clickhouse.rs`, their reports in
//! `*_reports.rs`); `format.rs` prints for both, `follow.rs` is `tail -f`.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::load_or_report;
use crate::querylog::QueryLogConfig;
use crate::timefmt::{now_us, parse_time_us};

mod clickhouse;
mod csv_export;
mod follow;
mod format;
mod sqlite;
#[cfg(test)]
mod tests;

pub use crate::querylog::read::{
    write_csv_line, Filters, LogsError, SuspiciousClient, TopCategory, TopClient, TopDomain,
    TopReport, CSV_HEADER,
};
pub use csv_export::CsvExport;
pub use sqlite::run_logs;

use follow::Follow;
use format::{print_clients, print_top};

/// Run `dnsward logs --config PATH [--source S] COMMAND`, writing to stdout.
pub fn run(path: &Path, source: Option<LogSource>, command: LogsCommand) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let Some(q) = config.querylog.as_ref() else {
        eprintln!("error: {}: no [querylog] is configured", path.display());
        return ExitCode::from(2);
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match run_logs_from(q, source, command, &mut out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            ExitCode::from(2)
        }
    }
}

/// Which store `dnsward logs` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogSource {
    Sqlite,
    Clickhouse,
}

/// Run one `dnsward logs` subcommand on the chosen store (default: SQLite when configured,
/// else ClickHouse).
pub fn run_logs_from(
    cfg: &QueryLogConfig,
    source: Option<LogSource>,
    cmd: LogsCommand,
    out: &mut dyn Write,
) -> Result<(), LogsError> {
    let source = match (&cmd, source) {
        (LogsCommand::InitClickhouse { .. }, _) => LogSource::Clickhouse,
        (_, Some(s)) => s,
        (_, None) if cfg.sqlite.is_none() && cfg.clickhouse.is_some() => LogSource::Clickhouse,
        (_, None) => LogSource::Sqlite,
    };
    match source {
        LogSource::Sqlite => {
            let db = cfg.sqlite.as_ref().ok_or_else(|| {
                LogsError::InvalidArgument("no [querylog] sqlite store is configured".into())
            })?;
            run_logs(db, cmd, out)
        }
        LogSource::Clickhouse => clickhouse::run_logs(cfg, cmd, out),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum LogsCommand {
    /// Latest queries, oldest first; -f keeps printing new ones
    Tail {
        /// Keep polling for new queries
        #[arg(short, long)]
        follow: bool,
        /// How many of the latest queries to show first
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: usize,
        /// Only queries after this time (2h, 7d, RFC 3339)
        #[arg(long)]
        since: Option<String>,
        #[command(flatten)]
        filters: Filters,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
        /// Poll interval of --follow, in milliseconds
        #[arg(long, default_value_t = 1000, hide = true)]
        poll_ms: u64,
        /// Stop following after this many polls (for tests and scripts)
        #[arg(long, hide = true)]
        max_polls: Option<u64>,
    },
    /// Top blocked domains, top clients by blocked attempts, and blocked queries per category
    Top {
        /// Window start (2h, 7d, RFC 3339)
        #[arg(long, default_value = "24h")]
        since: String,
        /// Rows per section
        #[arg(short = 'n', long, default_value_t = 10)]
        limit: usize,
        /// Only clients of this policy group
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Clients that look infected: repeated blocked attempts or many distinct blocked domains
    Clients {
        #[arg(long, default_value = "24h")]
        since: String,
        /// Flag a client with at least this many blocked queries
        #[arg(long, default_value_t = 10)]
        min_blocked: u64,
        /// Flag a client that tried at least this many distinct blocked domains
        #[arg(long, default_value_t = 3)]
        min_domains: u64,
        /// Count only these categories (repeatable), e.g. --category malware --category phishing
        #[arg(long)]
        category: Vec<String>,
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: usize,
        /// Only clients of this policy group
        #[arg(long)]
        group: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Create the ClickHouse database, table and per-minute rollups ([querylog] clickhouse)
    InitClickhouse {
        /// Rows (and rollups) older than this many days are deleted by ClickHouse (TTL;
        /// servers before 19.6 have no TTL: see README)
        #[arg(long, default_value_t = 90, value_parser = clap::value_parser!(u32).range(1..=36500))]
        ttl_days: u32,
    },
    /// Export queries as CSV or JSON lines
    Export {
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        filters: Filters,
    },
}

/// What each store answers; [`run_on`] turns a command's options into these calls, and
/// `format` prints the answers of both stores alike.
trait LogStore {
    /// The latest `limit` matching rows, oldest first; with `follow`, then the new ones.
    fn tail(
        &self,
        limit: usize,
        since: Option<i64>,
        f: &Filters,
        json: bool,
        follow: Option<Follow>,
        out: &mut dyn Write,
    ) -> Result<(), LogsError>;

    fn top(
        &self,
        since: i64,
        now: i64,
        limit: usize,
        group: Option<&str>,
    ) -> Result<TopReport, LogsError>;

    fn suspicious_clients(
        &self,
        since: i64,
        min_blocked: u64,
        min_domains: u64,
        categories: &[String],
        limit: usize,
        group: Option<&str>,
    ) -> Result<Vec<SuspiciousClient>, LogsError>;

    /// Every matching row between the two times, oldest first, streamed to `out`.
    fn export(
        &self,
        format: ExportFormat,
        since: Option<i64>,
        until: Option<i64>,
        f: &Filters,
        out: &mut dyn Write,
    ) -> Result<(), LogsError>;
}

/// Run one query command on `store`, writing to `out`.
fn run_on(store: &dyn LogStore, cmd: LogsCommand, out: &mut dyn Write) -> Result<(), LogsError> {
    let now = now_us();
    let time =
        |s: &str| parse_time_us(s, now).map_err(|e| LogsError::InvalidArgument(e.to_string()));
    match cmd {
        LogsCommand::Tail {
            follow,
            limit,
            since,
            filters,
            json,
            poll_ms,
            max_polls,
        } => {
            let since = since.as_deref().map(time).transpose()?;
            let follow = Follow::asked(follow, poll_ms, max_polls);
            store.tail(limit, since, &filters, json, follow, out)
        }
        LogsCommand::Top {
            since,
            limit,
            group,
            json,
        } => {
            let r = store.top(time(&since)?, now, limit, group.as_deref())?;
            print_top(&r, json, out)
        }
        LogsCommand::Clients {
            since,
            min_blocked,
            min_domains,
            category,
            limit,
            group,
            json,
        } => {
            let r = store.suspicious_clients(
                time(&since)?,
                min_blocked,
                min_domains,
                &category,
                limit,
                group.as_deref(),
            )?;
            print_clients(&r, json, out)
        }
        LogsCommand::Export {
            format,
            since,
            until,
            filters,
        } => {
            let since = since.as_deref().map(time).transpose()?;
            let until = until.as_deref().map(time).transpose()?;
            store.export(format, since, until, &filters, out)
        }
        // the callers create the schema before connecting a reader
        LogsCommand::InitClickhouse { .. } => Err(LogsError::InvalidArgument(
            "init-clickhouse is not a query".into(),
        )),
    }
}
