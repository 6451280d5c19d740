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
//! library's [`LogReader`] (`querylog::read`, implemented once by each store), each command's
//! options turned into one query value; `format.rs` prints for both, `follow.rs` is
//! `tail -f`, `clickhouse.rs` connects to ClickHouse and creates its schema.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use super::load_or_report;
use crate::querylog::QueryLogConfig;
use crate::timefmt::{now_us, parse_time_us};

mod clickhouse;
mod follow;
mod format;
#[cfg(test)]
mod tests;

use crate::querylog::read::sqlite::SqliteStore;
pub use crate::querylog::read::{
    write_csv_line, CsvExport, ExportFormat, Filters, LogsError, SuspiciousClient, TopCategory,
    TopClient, TopDomain, TopReport, CSV_HEADER,
};
use crate::querylog::read::{ClientsQuery, ExportQuery, LogReader, TailQuery, TopQuery};

use follow::{print_latest, Follow};
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

/// Run one `dnsward logs` subcommand against the SQLite store `db`, writing to `out`.
pub fn run_logs(db: &Path, cmd: LogsCommand, out: &mut dyn Write) -> Result<(), LogsError> {
    let store = SqliteStore::open(db)?;
    if let LogsCommand::InitClickhouse { .. } = cmd {
        return Err(LogsError::InvalidArgument(
            "init-clickhouse works on [querylog] clickhouse, not on SQLite".into(),
        ));
    }
    run_on(&store, cmd, out)
}

/// Run one query command on `store`, writing to `out`: the command's options become the
/// reader's query, `format` prints the answer alike for both stores.
fn run_on(store: &dyn LogReader, cmd: LogsCommand, out: &mut dyn Write) -> Result<(), LogsError> {
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
            let q = TailQuery {
                limit,
                since: since.as_deref().map(time).transpose()?,
                filters,
            };
            let follow = Follow::asked(follow, poll_ms, max_polls);
            let (rows, mut cursor) = store.latest(&q)?;
            print_latest(&rows, json, follow.is_some(), out)?;
            match follow {
                Some(f) => f.print_new(json, out, || store.newer(&q, &mut cursor)),
                None => Ok(()),
            }
        }
        LogsCommand::Top {
            since,
            limit,
            group,
            json,
        } => {
            let q = TopQuery {
                since: time(&since)?,
                until: now,
                limit,
                group,
                resolver: None,
            };
            print_top(&store.top(&q)?, json, out)
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
            let q = ClientsQuery {
                window: (time(&since)?, now),
                min_blocked,
                min_domains,
                categories: category,
                limit,
                group,
                resolver: None,
            };
            print_clients(&store.suspicious_clients(&q)?, json, out)
        }
        LogsCommand::Export {
            format,
            since,
            until,
            filters,
        } => {
            let q = ExportQuery {
                format,
                since: since.as_deref().map(time).transpose()?,
                until: until.as_deref().map(time).transpose()?,
                filters,
            };
            store.export(&q, out)
        }
        // the callers create the schema before connecting a reader
        LogsCommand::InitClickhouse { .. } => Err(LogsError::InvalidArgument(
            "init-clickhouse is not a query".into(),
        )),
    }
}
