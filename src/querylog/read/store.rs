//! The one interface to the query log's stores: [`LogReader`], implemented once by the SQLite
//! store (`sqlite_ui.rs`) and once by ClickHouse (`clickhouse_ui.rs`), and the query each of
//! its methods takes. `dnsward logs` (every command) and the dashboard (`admin::ui`) read
//! through it, so both stores answer both alike.

use std::io::Write;

use super::ui::{Rows, Search, Timeline, Window};
use super::{Filters, LogsError, SuspiciousClient, TopReport};
use crate::querylog::event::LogRow;

/// `dnsward logs top` and the dashboard's top lists over `[since, until)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TopQuery {
    pub since: i64,
    pub until: i64,
    /// Rows per section.
    pub limit: usize,
    /// Only clients of this policy group.
    pub group: Option<String>,
    /// Only queries answered by this resolver of the fleet (its `[server] name`).
    pub resolver: Option<String>,
}

/// `dnsward logs clients` and the dashboard's "clients that look infected".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientsQuery {
    /// `[since, until)` in µs.
    pub window: (i64, i64),
    /// Flag a client with at least this many blocked queries ...
    pub min_blocked: u64,
    /// ... or at least this many distinct blocked names.
    pub min_domains: u64,
    /// Count only these categories (none: all).
    pub categories: Vec<String>,
    pub limit: usize,
    pub group: Option<String>,
    /// Only queries answered by this resolver of the fleet.
    pub resolver: Option<String>,
}

/// `dnsward logs tail`: the latest `limit` matching rows since `since`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TailQuery {
    pub limit: usize,
    pub since: Option<i64>,
    pub filters: Filters,
}

/// How `export` writes rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    #[default]
    Csv,
    Jsonl,
}

/// `dnsward logs export`: every matching row in `[since, until)`, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportQuery {
    pub format: ExportFormat,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub filters: Filters,
}

/// Where `tail -f` is in a store: the last row id shown (SQLite) or its time (ClickHouse,
/// whose rows have no order of insertion).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(pub(crate) i64);

/// Which part of the log a dashboard view covers: one policy group's clients, one resolver of
/// the fleet (its `[server] name`, stored with each row), or both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scope {
    pub group: Option<String>,
    pub resolver: Option<String>,
}

/// What each store answers, for `dnsward logs` and for the dashboard. Every dashboard read is
/// bounded by a time window and a row limit; `export` streams.
pub trait LogReader: Send {
    /// `tail`: the latest matching rows, oldest first, and the cursor after them.
    fn latest(&self, q: &TailQuery) -> Result<(Vec<LogRow>, Cursor), LogsError>;

    /// `tail -f`: matching rows after `after` (at most 10,000), oldest first; moves `after`.
    fn newer(&self, q: &TailQuery, after: &mut Cursor) -> Result<Vec<LogRow>, LogsError>;

    /// `export`: every matching row, oldest first, written to `out` as it is read.
    fn export(&self, q: &ExportQuery, out: &mut dyn Write) -> Result<(), LogsError>;

    /// `top`: totals, the top blocked names, clients and categories.
    fn top(&self, q: &TopQuery) -> Result<TopReport, LogsError>;

    /// `clients`: the clients over either threshold, most distinct names first.
    fn suspicious_clients(&self, q: &ClientsQuery) -> Result<Vec<SuspiciousClient>, LogsError>;

    /// The resolvers (`[server] name`s) with rows in the window, sorted.
    fn resolvers(&self, w: &Window) -> Result<Vec<String>, LogsError>;

    /// Queries and blocked queries per bucket (from the per-minute rollups), the blocked ones
    /// split by category and list; only the scope's rows.
    fn timeline(&self, w: &Window, scope: &Scope) -> Result<Timeline, LogsError>;

    /// The latest rows (at most [`DRILL_ROWS`](super::ui::DRILL_ROWS)) of one client in the
    /// window.
    fn client_rows(&self, client: &str, w: &Window) -> Result<Rows, LogsError>;

    /// The latest rows (at most [`DRILL_ROWS`](super::ui::DRILL_ROWS)) asking for one name in
    /// the window.
    fn domain_rows(&self, qname: &str, w: &Window) -> Result<Rows, LogsError>;

    /// One page of matching rows, newest first.
    fn search(&self, s: &Search) -> Result<Vec<LogRow>, LogsError>;
}
