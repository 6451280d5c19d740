//! Reading the query log's stores: the SQLite file (read-only) and the fleet's ClickHouse
//! table, with the same answers from both. `dnsward logs` (`commands::logs`) and the admin
//! dashboard (`admin::ui`) read through here: the filters, the reports' values, the CSV form of
//! a row, and the one [`LogReader`] both stores implement (`store.rs`), each method taking one
//! query value.

use std::path::PathBuf;

use serde::Serialize;

use crate::querylog::clickhouse_client::ClickhouseError;
use crate::querylog::event::{EventAction, LogRow};

pub mod clickhouse;
pub mod clickhouse_reports;
pub mod clickhouse_rows;
pub mod clickhouse_ui;
pub mod csv_export;
pub mod sqlite;
pub mod sqlite_reports;
pub mod sqlite_rows;
pub mod sqlite_ui;
pub mod store;
pub mod ui;

pub use csv_export::CsvExport;
pub use store::{
    ClientsQuery, Cursor, ExportFormat, ExportQuery, LogReader, Scope, TailQuery, TopQuery,
};
pub use ui::Search;

/// Why a read failed; `dnsward logs` prints it as `error: CONFIG: ...` (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    /// The file is not a store this reader can use.
    #[error("query log database {}: {problem}", path.display())]
    Store {
        path: PathBuf,
        problem: StoreProblem,
    },
    /// SQLite failed at `step` (opening, or a query).
    #[error("query log database {}: {step}: {source}", path.display())]
    Db {
        path: PathBuf,
        step: &'static str,
        source: rusqlite::Error,
    },
    /// A bad time, or a command the chosen store cannot run.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Clickhouse(#[from] ClickhouseError),
}

/// Why a file is not a SQLite store `dnsward logs` can read.
#[derive(Debug, thiserror::Error)]
pub enum StoreProblem {
    #[error("does not exist (is [querylog] sqlite set, and has the server started?)")]
    Missing,
    #[error("is not a dnsward query log (no table `queries`)")]
    NotALog,
    /// Read-only cannot upgrade: the server brings the schema up when it opens the store.
    #[error(
        "was written by an older dnsward (schema {0}); start `dnsward serve` once to upgrade it"
    )]
    OlderSchema(i64),
}

/// A filter's text that does not parse (clap prints it after the option).
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{0:?} is not a block page reference ID (10 characters, e.g. 0M7K4-Q2ZD9)")]
    Reference(String),
    /// The action's own message (`EventAction`'s parser names the accepted values).
    #[error("{0}")]
    Action(String),
}

/// Filters shared by `tail` and `export`.
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct Filters {
    /// Only this client (address, truncated network address or h: token, as stored)
    #[arg(long)]
    pub client: Option<String>,
    /// Only this action: allowed, blocked, refused, servfail
    #[arg(long, value_parser = parse_action)]
    pub action: Option<EventAction>,
    /// Only this category (as in the block lists' configuration)
    #[arg(long)]
    pub category: Option<String>,
    /// Only names equal to or under this domain (example.com matches a.example.com)
    #[arg(long)]
    pub qname_suffix: Option<String>,
    /// Only this named client (its `[[clients]] name`)
    #[arg(long)]
    pub client_name: Option<String>,
    /// Only clients of this policy group
    #[arg(long)]
    pub group: Option<String>,
    /// Only the blocked queries a block page reference ID stands for (e.g. 0M7K4-Q2ZD9)
    #[arg(long = "ref", value_parser = parse_reference)]
    pub reference: Option<String>,
}

fn parse_reference(s: &str) -> Result<String, FilterError> {
    crate::refid::normalize(s).ok_or_else(|| FilterError::Reference(s.to_string()))
}

fn parse_action(s: &str) -> Result<EventAction, FilterError> {
    s.parse().map_err(FilterError::Action)
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopDomain {
    pub qname: String,
    pub blocked: u64,
    pub clients: u64,
    pub category: Option<String>,
}
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopClient {
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub blocked: u64,
    pub domains: u64,
}
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopCategory {
    pub category: Option<String>,
    pub blocked: u64,
    pub clients: u64,
    pub domains: u64,
}
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopReport {
    pub since: String,
    pub until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub queries: u64,
    pub blocked: u64,
    pub domains: Vec<TopDomain>,
    pub clients: Vec<TopClient>,
    pub categories: Vec<TopCategory>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SuspiciousClient {
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub blocked: u64,
    pub domains: u64,
    pub categories: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// the most tried blocked domains, most first (at most 3)
    pub top_domains: Vec<String>,
}

/// CSV columns, the same names as the JSON fields.
pub const CSV_HEADER: &str = "time,ts_us,client,client_port,transport,qname,qtype,rcode,action,category,list,rule,trigger,cached,answers,latency_us,server,client_name,group";

/// One CSV field (RFC 4180 quoting), appended to `line`.
fn push_csv_field(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

/// One export row as a CSV line (with its newline), written into `line` (cleared first):
/// no allocation per field, so `export` keeps its rate.
pub fn write_csv_line(line: &mut String, r: &LogRow) {
    use std::fmt::Write as _;
    line.clear();
    let text = |line: &mut String, v: &str| {
        push_csv_field(line, v);
        line.push(',');
    };
    text(line, &r.time);
    let _ = write!(line, "{},", r.ts_us);
    text(line, &r.client);
    if let Some(p) = r.client_port {
        let _ = write!(line, "{p}");
    }
    line.push(',');
    text(line, r.transport.as_str());
    text(line, &r.qname);
    text(line, &r.qtype);
    text(line, &r.rcode);
    text(line, r.action.as_str());
    text(line, r.category.as_deref().unwrap_or(""));
    text(line, r.list.as_deref().unwrap_or(""));
    text(line, r.rule.as_deref().unwrap_or(""));
    text(line, r.trigger.map(|t| t.as_str()).unwrap_or(""));
    let _ = write!(line, "{},", r.cached);
    let answers_at = line.len();
    for (i, a) in r.answers.iter().enumerate() {
        let _ = if i == 0 {
            write!(line, "{a}")
        } else {
            write!(line, ",{a}")
        };
    }
    if r.answers.len() > 1 {
        // several addresses are joined with ',': quote them as one field
        line.insert(answers_at, '"');
        line.push('"');
    }
    let _ = write!(line, ",{},", r.latency_us);
    text(line, &r.server);
    text(line, r.client_name.as_deref().unwrap_or(""));
    push_csv_field(line, r.group.as_deref().unwrap_or(""));
    line.push('\n');
}

/// How long one dashboard query to ClickHouse may take.
const UI_QUERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The store to read: `[querylog] sqlite` unless `clickhouse` is asked for (or SQLite is not
/// configured). Opened per request: SQLite read-only, ClickHouse as one HTTP client.
pub fn open_reader(
    cfg: &crate::querylog::QueryLogConfig,
    clickhouse: bool,
) -> Result<Box<dyn LogReader>, LogsError> {
    if clickhouse || cfg.sqlite.is_none() {
        let target = crate::querylog::clickhouse_client::ClickhouseTarget::from_config(cfg)?
            .ok_or_else(|| {
                LogsError::InvalidArgument("no [querylog] sqlite or clickhouse store".into())
            })?;
        let client = crate::querylog::clickhouse_client::Client::new(target, UI_QUERY_TIMEOUT)?;
        return Ok(Box::new(clickhouse::ChReader::connect(client)?));
    }
    let db = cfg.sqlite.as_ref().expect("checked above");
    Ok(Box::new(sqlite::SqliteStore::open(db)?))
}
