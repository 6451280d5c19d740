//! `dnsward logs ...`: read the SQLite query log (read-only) for people on duty.
//!
//! - `tail`    latest queries, with filters; `-f` follows new rows
//! - `top`     top blocked domains, top clients by blocked attempts, blocked per category
//! - `clients` clients that look infected (repeated blocked attempts / many distinct blocked
//!   domains), with first and last seen
//! - `export`  CSV or JSON lines between two times
//!
//! Tables by default; `--json` for machines (`tail --json` writes one object per line so it
//! can be followed). Times: `2h`, `7d`, `30m`, RFC 3339, or a date.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};
use serde::Serialize;

use super::load_or_report;
use crate::querylog::clickhouse_client::ClickhouseError;
use crate::querylog::event::{EventAction, LogRow};
use crate::querylog::sinks::sqlite::{row_to_logrow, COLUMNS, HOUR_US, MINUTE_US, SCHEMA_VERSION};
use crate::timefmt::{format_ts, now_us, parse_time_us};

mod clickhouse;
mod clickhouse_reports;

pub use clickhouse::{run_logs_from, LogSource};

/// Why a `dnsward logs` command failed; printed as `error: CONFIG: ...` (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("query log database {path}: {msg}")]
    Db { path: PathBuf, msg: String },
    /// A bad time, or a command the chosen store cannot run.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Clickhouse(#[from] ClickhouseError),
}

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

fn parse_reference(s: &str) -> Result<String, String> {
    crate::blockpage::reference::normalize(s).ok_or_else(|| {
        format!("{s:?} is not a block page reference ID (10 characters, e.g. 0M7K4-Q2ZD9)")
    })
}

fn parse_action(s: &str) -> Result<EventAction, String> {
    s.parse()
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

fn db_err(db: &Path, e: impl std::fmt::Display) -> LogsError {
    LogsError::Db {
        path: db.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Open the query log read-only and check it is one.
pub fn open_read_only(db: &Path) -> Result<Connection, LogsError> {
    if !db.exists() {
        return Err(db_err(
            db,
            "does not exist (is [querylog] sqlite set, and has the server started?)",
        ));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| db_err(db, format!("cannot open: {e}")))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(|e| db_err(db, e))?;
    let has: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'queries'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| db_err(db, format!("cannot read: {e}")))?;
    if has == 0 {
        return Err(db_err(
            db,
            "is not a dnsward query log (no table `queries`)",
        ));
    }
    // Read-only cannot upgrade: the server adds the newer columns when it opens the store.
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| db_err(db, e))?;
    if version < SCHEMA_VERSION {
        return Err(db_err(db, format!("was written by an older dnsward (schema {version}); start `dnsward serve` once to upgrade it")));
    }
    // `--ref`: the block page's reference ID is derived from name and time, not stored.
    conn.create_scalar_function(
        "dnsward_ref",
        2,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(crate::blockpage::reference::reference(
                &ctx.get::<String>(0)?,
                ctx.get::<i64>(1)?,
            ))
        },
    )
    .map_err(|e| db_err(db, e))?;
    Ok(conn)
}

/// Run one `dnsward logs` subcommand against `db`, writing to `out`.
pub fn run_logs(db: &Path, cmd: LogsCommand, out: &mut dyn Write) -> Result<(), LogsError> {
    let now = now_us();
    let time = |s: &str| parse_time_us(s, now).map_err(LogsError::InvalidArgument);
    let conn = open_read_only(db)?;
    let q = |e: rusqlite::Error| db_err(db, format!("query failed: {e}"));
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
            tail(&conn, limit, since, &filters, json, follow, out).map_err(|e| match e {
                CliErr::Db(e) => q(e),
                CliErr::Io(e) => LogsError::Io(e),
            })
        }
        LogsCommand::Top {
            since,
            limit,
            group,
            json,
        } => {
            let since = time(&since)?;
            let r = top(&conn, since, now, limit, group.as_deref()).map_err(q)?;
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
            let since = time(&since)?;
            let r = suspicious_clients(
                &conn,
                since,
                min_blocked,
                min_domains,
                &category,
                limit,
                group.as_deref(),
            )
            .map_err(q)?;
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
            export(&conn, format, since, until, &filters, out).map_err(|e| match e {
                CliErr::Db(e) => q(e),
                CliErr::Io(e) => LogsError::Io(e),
            })
        }
        LogsCommand::InitClickhouse { .. } => Err(LogsError::InvalidArgument(
            "init-clickhouse works on [querylog] clickhouse, not on SQLite".into(),
        )),
    }
}

enum CliErr {
    Db(rusqlite::Error),
    Io(std::io::Error),
}
impl From<rusqlite::Error> for CliErr {
    fn from(e: rusqlite::Error) -> Self {
        CliErr::Db(e)
    }
}
impl From<std::io::Error> for CliErr {
    fn from(e: std::io::Error) -> Self {
        CliErr::Io(e)
    }
}
impl From<serde_json::Error> for CliErr {
    fn from(e: serde_json::Error) -> Self {
        CliErr::Io(e.into())
    }
}

/// WHERE clause and parameters for the filters.
fn where_clause(f: &Filters, since: Option<i64>, until: Option<i64>) -> (String, Vec<Value>) {
    let mut w = vec!["1".to_string()];
    let mut p: Vec<Value> = Vec::new();
    let mut add = |cond: &str, v: Value| {
        p.push(v);
        w.push(cond.replace('?', &format!("?{}", p.len())));
    };
    if let Some(s) = since {
        add("ts_us >= ?", Value::Integer(s));
    }
    if let Some(u) = until {
        add("ts_us < ?", Value::Integer(u));
    }
    if let Some(c) = &f.client {
        add("client = ?", Value::Text(c.trim().to_string()));
    }
    if let Some(a) = f.action {
        add("action = ?", Value::Text(a.as_str().to_string()));
    }
    if let Some(c) = &f.category {
        add("category = ?", Value::Text(c.clone()));
    }
    if let Some(s) = &f.qname_suffix {
        let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
        // exact, or ends with "." + suffix; substr() instead of LIKE so '_' and '%' in
        // names are not wildcards
        add(
            "(qname = ? OR substr(qname, -length(?) - 1) = '.' || ?)",
            Value::Text(s),
        );
    }
    if let Some(n) = &f.client_name {
        add("client_name = ?", Value::Text(n.clone()));
    }
    if let Some(g) = &f.group {
        add("client_group = ?", Value::Text(g.clone()));
    }
    if let Some(id) = &f.reference {
        // The ID names its day; the hash is compared only on that day's blocked rows.
        if let Some((start, end)) = crate::blockpage::reference::day_range(id, now_us()) {
            add("ts_us >= ?", Value::Integer(start));
            add("ts_us < ?", Value::Integer(end));
        }
        add(
            "action = ?",
            Value::Text(EventAction::Blocked.as_str().to_string()),
        );
        add("dnsward_ref(qname, ts_us) = ?", Value::Text(id.clone()));
    }
    (w.join(" AND "), p)
}

pub(crate) const TAIL_HEADERS: [&str; 11] = [
    "TIME", "CLIENT", "NAME", "PROTO", "TYPE", "QNAME", "ACTION", "RCODE", "CATEGORY", "LIST", "MS",
];

pub(crate) fn tail_cells(r: &LogRow) -> Vec<String> {
    vec![
        format_ts(r.ts_us, 3),
        match r.client_port {
            Some(p) if r.client.contains(':') => format!("[{}]:{p}", r.client),
            Some(p) => format!("{}:{p}", r.client),
            None => r.client.clone(),
        },
        r.client_name.clone().unwrap_or_else(|| "-".into()),
        r.transport.to_string(),
        r.qtype.clone(),
        r.qname.clone(),
        r.action.to_string() + if r.cached { "*" } else { "" },
        r.rcode.clone(),
        r.category.clone().unwrap_or_else(|| "-".into()),
        r.list.clone().unwrap_or_else(|| "-".into()),
        format!("{:.1}", f64::from(r.latency_us) / 1000.0),
    ]
}

#[allow(clippy::too_many_arguments)]
/// The latest `limit` matching rows with their ids, newest first. With `--client`, only the
/// id ranges `client_hours` names for that client are read (there is no client index on
/// all rows: it was the costliest part of writing one).
fn latest_rows(
    conn: &Connection,
    limit: usize,
    since: Option<i64>,
    f: &Filters,
) -> rusqlite::Result<Vec<(LogRow, i64)>> {
    let (w, mut p) = where_clause(f, since, None);
    let ranges = match &f.client {
        Some(c) => client_id_ranges(conn, c.trim(), since)?,
        None => vec![(i64::MIN, i64::MAX)],
    };
    p.push(Value::Integer(0));
    p.push(Value::Integer(0));
    p.push(Value::Integer(0));
    let n = p.len();
    let sql = format!(
        "SELECT {COLUMNS}, id FROM queries WHERE {w} AND id BETWEEN ?{} AND ?{} \
         ORDER BY id DESC LIMIT ?{n}",
        n - 2,
        n - 1
    );
    let mut st = conn.prepare(&sql)?;
    let mut rows: Vec<(LogRow, i64)> = Vec::new();
    for (first, last) in ranges {
        let left = limit.saturating_sub(rows.len());
        if left == 0 {
            break;
        }
        p[n - 3] = Value::Integer(first);
        p[n - 2] = Value::Integer(last);
        p[n - 1] = Value::Integer(left.min(i64::MAX as usize) as i64);
        let found = st.query_map(rusqlite::params_from_iter(p.iter()), |r| {
            Ok((row_to_logrow(r)?, r.get(18)?))
        })?;
        for r in found {
            rows.push(r?);
        }
    }
    Ok(rows)
}

/// The id ranges holding `client`'s rows since `since`, merged where they overlap, newest
/// first.
fn client_id_ranges(
    conn: &Connection,
    client: &str,
    since: Option<i64>,
) -> rusqlite::Result<Vec<(i64, i64)>> {
    let hour = since.map_or(i64::MIN, |s| s / HOUR_US);
    let mut ranges: Vec<(i64, i64)> = conn
        .prepare_cached(
            "SELECT first_id, last_id FROM client_hours WHERE client = ?1 AND hour >= ?2",
        )?
        .query_map(rusqlite::params![client, hour], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match merged.last_mut() {
            Some(m) if first <= m.1 => m.1 = m.1.max(last),
            _ => merged.push((first, last)),
        }
    }
    merged.reverse();
    Ok(merged)
}

/// `tail -f`: how often to look for new rows, and (for tests) how many times. Shared by
/// the SQLite and ClickHouse sources.
pub(crate) struct Follow {
    pub(crate) poll: Duration,
    pub(crate) max_polls: Option<u64>,
}

impl Follow {
    /// From `tail`'s options: `None` without `-f`.
    pub(crate) fn asked(follow: bool, poll_ms: u64, max_polls: Option<u64>) -> Option<Follow> {
        follow.then(|| Follow {
            poll: Duration::from_millis(poll_ms),
            max_polls,
        })
    }
}

fn tail(
    conn: &Connection,
    limit: usize,
    since: Option<i64>,
    f: &Filters,
    json: bool,
    follow: Option<Follow>,
    out: &mut dyn Write,
) -> Result<(), CliErr> {
    let mut rows = latest_rows(conn, limit, since, f)?;
    rows.reverse();
    let mut last_id = rows.last().map(|r| r.1);
    if last_id.is_none() {
        last_id =
            Some(conn.query_row("SELECT coalesce(max(id), 0) FROM queries", [], |r| r.get(0))?);
    }
    let print = |rows: &[(LogRow, i64)], header: bool, out: &mut dyn Write| -> Result<(), CliErr> {
        let rows: Vec<&LogRow> = rows.iter().map(|(r, _)| r).collect();
        Ok(print_tail_rows(&rows, json, header, out)?)
    };
    let Some(Follow { poll, max_polls }) = follow else {
        if rows.is_empty() && !json {
            writeln!(out, "(no matching queries)")?;
            return Ok(());
        }
        return print(&rows, true, out);
    };
    print(&rows, true, out)?;
    let (w, mut p) = where_clause(f, since, None);
    p.push(Value::Integer(0));
    let idx = p.len();
    let sql = format!(
        "SELECT {COLUMNS}, id FROM queries WHERE {w} AND id > ?{idx} ORDER BY id LIMIT 10000"
    );
    let mut polls = 0u64;
    loop {
        if max_polls.is_some_and(|m| polls >= m) {
            return Ok(());
        }
        std::thread::sleep(poll);
        polls += 1;
        p[idx - 1] = Value::Integer(last_id.unwrap_or(0));
        let new: Vec<(LogRow, i64)> = conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                Ok((row_to_logrow(r)?, r.get(18)?))
            })?
            .collect::<Result<_, _>>()?;
        if let Some(l) = new.last() {
            last_id = Some(l.1);
            print(&new, false, out)?;
        }
    }
}

/// `tail`'s rows: a table (with its header line when `header`) or JSON lines.
pub(crate) fn print_tail_rows(
    rows: &[&LogRow],
    json: bool,
    header: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if json {
        for r in rows {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
    } else {
        let cells: Vec<Vec<String>> = rows.iter().map(|r| tail_cells(r)).collect();
        write_table(
            out,
            if header {
                Some(&TAIL_HEADERS[..])
            } else {
                None
            },
            &cells,
            &[10],
        )?;
    }
    out.flush()
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

/// `AND client_group = ?N` and its parameter, when a group is asked for.
fn group_cond(group: Option<&str>, n: usize) -> (String, Option<Value>) {
    match group {
        Some(g) => (
            format!(" AND client_group = ?{n}"),
            Some(Value::Text(g.to_string())),
        ),
        None => (String::new(), None),
    }
}

/// Queries and blocked queries since `since`: whole minutes from the `minute_counts` rollup,
/// the rows of `since`'s own minute counted one by one (so the figure is exact).
fn totals_since(
    conn: &Connection,
    since: i64,
    group: Option<&str>,
) -> rusqlite::Result<(u64, u64)> {
    let minute = since / MINUTE_US;
    let (gc, gv) = group_cond(group, 2);
    let mut p = vec![Value::Integer(minute)];
    p.extend(gv.clone());
    let (q1, b1): (u64, u64) = conn.query_row(
        &format!(
            "SELECT coalesce(sum(n), 0), coalesce(sum(CASE WHEN action = 'blocked' THEN n END), 0)
             FROM minute_counts WHERE minute > ?1{gc}"
        ),
        rusqlite::params_from_iter(p.iter()),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (gc, _) = group_cond(group, 3);
    let mut p = vec![
        Value::Integer(since),
        Value::Integer((minute + 1) * MINUTE_US),
    ];
    p.extend(gv);
    let (q2, b2): (u64, u64) = conn.query_row(
        &format!(
            "SELECT count(*), coalesce(sum(action = 'blocked'), 0) FROM queries
             WHERE ts_us >= ?1 AND ts_us < ?2{gc}"
        ),
        rusqlite::params_from_iter(p.iter()),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok((q1 + q2, b1 + b2))
}

/// Counts and distinct counts of one group of blocked rows.
#[derive(Default)]
struct Tally {
    blocked: u64,
    distinct: u64,
    distinct2: u64,
    label: Option<String>,
}

/// The three sections of `top` in one pass over the blocked rows (read from the covering
/// index `queries_blocked_ts`): three GROUP BYs with count(DISTINCT) took three times as long.
/// Names, clients and categories are interned; distinct counts come from sets of pairs.
fn blocked_summary(
    conn: &Connection,
    since: i64,
    group: Option<&str>,
    limit: usize,
) -> rusqlite::Result<(Vec<TopDomain>, Vec<TopClient>, Vec<TopCategory>)> {
    use std::collections::{HashMap, HashSet};
    fn intern(ids: &mut HashMap<String, u32>, tallies: &mut Vec<Tally>, key: &str) -> u32 {
        if let Some(&i) = ids.get(key) {
            return i;
        }
        let i = tallies.len() as u32;
        ids.insert(key.to_string(), i);
        tallies.push(Tally::default());
        i
    }
    fn raise(label: &mut Option<String>, v: Option<&str>) {
        // SQL max(): NULLs ignored, the greatest text wins
        if let Some(v) = v {
            if label.as_deref().is_none_or(|l| v > l) {
                *label = Some(v.to_string());
            }
        }
    }
    let (gc, gv) = group_cond(group, 2);
    let mut p = vec![Value::Integer(since)];
    p.extend(gv);
    let mut st = conn.prepare(&format!(
        "SELECT qname, client, category, client_name FROM queries INDEXED BY queries_blocked_ts
         WHERE action = 'blocked' AND ts_us >= ?1{gc}"
    ))?;
    let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
    let (mut name_ids, mut client_ids, mut cat_ids) =
        (HashMap::new(), HashMap::new(), HashMap::new());
    let (mut names, mut clients, mut cats) = (Vec::new(), Vec::new(), Vec::new());
    let mut cat_keys: Vec<Option<String>> = Vec::new();
    let (mut name_client, mut cat_client, mut cat_name) =
        (HashSet::new(), HashSet::new(), HashSet::new());
    while let Some(r) = rows.next()? {
        let category: Option<&str> = r.get_ref(2)?.as_str_or_null()?;
        let n = intern(&mut name_ids, &mut names, r.get_ref(0)?.as_str()?);
        let c = intern(&mut client_ids, &mut clients, r.get_ref(1)?.as_str()?);
        // NULL category is a group of its own: keyed apart from any text
        let k = match category {
            Some(t) => format!("+{t}"),
            None => "-".to_string(),
        };
        let g = intern(&mut cat_ids, &mut cats, &k);
        if g as usize == cat_keys.len() {
            cat_keys.push(category.map(str::to_string));
        }
        names[n as usize].blocked += 1;
        raise(&mut names[n as usize].label, category);
        clients[c as usize].blocked += 1;
        raise(
            &mut clients[c as usize].label,
            r.get_ref(3)?.as_str_or_null()?,
        );
        cats[g as usize].blocked += 1;
        if name_client.insert((n, c)) {
            names[n as usize].distinct += 1;
            clients[c as usize].distinct += 1;
        }
        if cat_client.insert((g, c)) {
            cats[g as usize].distinct += 1;
        }
        if cat_name.insert((g, n)) {
            cats[g as usize].distinct2 += 1;
        }
    }
    fn ranked<K: Ord + Clone>(
        ids: HashMap<K, u32>,
        mut tallies: Vec<Tally>,
        limit: usize,
    ) -> Vec<(K, Tally)> {
        let mut v: Vec<(K, Tally)> = ids
            .into_iter()
            .map(|(k, i)| (k, std::mem::take(&mut tallies[i as usize])))
            .collect();
        v.sort_by(|a, b| b.1.blocked.cmp(&a.1.blocked).then_with(|| a.0.cmp(&b.0)));
        v.truncate(limit);
        v
    }
    let domains = ranked(name_ids, names, limit)
        .into_iter()
        .map(|(qname, t)| TopDomain {
            qname,
            blocked: t.blocked,
            clients: t.distinct,
            category: t.label,
        })
        .collect();
    let top_clients = ranked(client_ids, clients, limit)
        .into_iter()
        .map(|(client, t)| TopClient {
            client,
            client_name: t.label,
            blocked: t.blocked,
            domains: t.distinct,
        })
        .collect();
    // categories sort by their value (NULL first, as in SQL), not by the interning key
    let cat_ids: HashMap<Option<String>, u32> = cat_ids
        .into_values()
        .map(|i| (cat_keys[i as usize].clone(), i))
        .collect();
    let categories = ranked(cat_ids, cats, limit)
        .into_iter()
        .map(|(category, t)| TopCategory {
            category,
            blocked: t.blocked,
            clients: t.distinct,
            domains: t.distinct2,
        })
        .collect();
    Ok((domains, top_clients, categories))
}

pub fn top(
    conn: &Connection,
    since: i64,
    now: i64,
    limit: usize,
    group: Option<&str>,
) -> rusqlite::Result<TopReport> {
    let (queries, blocked) = totals_since(conn, since, group)?;
    let (domains, clients, categories) = blocked_summary(conn, since, group, limit)?;
    Ok(TopReport {
        since: format_ts(since, 0),
        until: format_ts(now, 0),
        group: group.map(str::to_string),
        queries,
        blocked,
        domains,
        clients,
        categories,
    })
}

pub(crate) fn print_top(r: &TopReport, json: bool, out: &mut dyn Write) -> Result<(), LogsError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, r).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let pct = if r.queries > 0 {
        100.0 * r.blocked as f64 / r.queries as f64
    } else {
        0.0
    };
    let group = r
        .group
        .as_ref()
        .map(|g| format!(" (group {g})"))
        .unwrap_or_default();
    writeln!(
        out,
        "{} .. {}{group}: {} queries, {} blocked ({pct:.1}%)",
        r.since, r.until, r.queries, r.blocked
    )?;
    writeln!(out, "\nTop blocked domains")?;
    let rows: Vec<Vec<String>> = r
        .domains
        .iter()
        .map(|d| {
            vec![
                d.qname.clone(),
                d.blocked.to_string(),
                d.clients.to_string(),
                opt(&d.category),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&["DOMAIN", "BLOCKED", "CLIENTS", "CATEGORY"]),
        &rows,
        &[1, 2],
    )?;
    writeln!(out, "\nTop clients by blocked attempts")?;
    let rows: Vec<Vec<String>> = r
        .clients
        .iter()
        .map(|c| {
            vec![
                c.client.clone(),
                opt(&c.client_name),
                c.blocked.to_string(),
                c.domains.to_string(),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&["CLIENT", "NAME", "BLOCKED", "DOMAINS"]),
        &rows,
        &[2, 3],
    )?;
    writeln!(out, "\nBlocked per category")?;
    let rows: Vec<Vec<String>> = r
        .categories
        .iter()
        .map(|c| {
            vec![
                opt(&c.category),
                c.blocked.to_string(),
                c.clients.to_string(),
                c.domains.to_string(),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&["CATEGORY", "BLOCKED", "CLIENTS", "DOMAINS"]),
        &rows,
        &[1, 2, 3],
    )?;
    Ok(())
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

pub fn suspicious_clients(
    conn: &Connection,
    since: i64,
    min_blocked: u64,
    min_domains: u64,
    categories: &[String],
    limit: usize,
    group: Option<&str>,
) -> rusqlite::Result<Vec<SuspiciousClient>> {
    let mut params: Vec<Value> = vec![
        Value::Integer(since),
        Value::Integer(min_blocked.min(i64::MAX as u64) as i64),
        Value::Integer(min_domains.min(i64::MAX as u64) as i64),
        Value::Integer(limit.min(i64::MAX as usize) as i64),
    ];
    let mut cat_cond = String::new();
    if !categories.is_empty() {
        let marks: Vec<String> = categories
            .iter()
            .map(|c| {
                params.push(Value::Text(c.clone()));
                format!("?{}", params.len())
            })
            .collect();
        cat_cond = format!(" AND category IN ({})", marks.join(", "));
    }
    let (group_cond1, gv) = group_cond(group, params.len() + 1);
    params.extend(gv);
    let sql = format!(
        "SELECT client, count(*) AS blocked, count(DISTINCT qname) AS domains, min(ts_us), max(ts_us),
                coalesce(group_concat(DISTINCT category), ''), max(client_name)
         FROM queries INDEXED BY queries_blocked_ts
         WHERE action = 'blocked' AND ts_us >= ?1{cat_cond}{group_cond1}
         GROUP BY client HAVING blocked >= ?2 OR domains >= ?3
         ORDER BY domains DESC, blocked DESC, client LIMIT ?4"
    );
    let mut list: Vec<SuspiciousClient> = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            let cats: String = r.get(5)?;
            let mut categories: Vec<String> = cats
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            categories.sort();
            Ok(SuspiciousClient {
                client: r.get(0)?,
                client_name: r.get(6)?,
                blocked: r.get(1)?,
                domains: r.get(2)?,
                categories,
                first_seen: format_ts(r.get(3)?, 0),
                last_seen: format_ts(r.get(4)?, 0),
                top_domains: Vec::new(),
            })
        })?
        .collect::<Result<_, _>>()?;
    let marks: Vec<String> = (0..categories.len())
        .map(|i| format!("?{}", i + 3))
        .collect();
    let cat_cond = if categories.is_empty() {
        String::new()
    } else {
        format!(" AND category IN ({})", marks.join(", "))
    };
    let (group_cond2, _) = group_cond(group, categories.len() + 3);
    let sql = format!(
        "SELECT qname FROM queries WHERE action = 'blocked' AND client = ?1 AND ts_us >= ?2{cat_cond}{group_cond2}
         GROUP BY qname ORDER BY count(*) DESC, qname LIMIT 3"
    );
    let mut st = conn.prepare(&sql)?;
    for c in &mut list {
        let mut p: Vec<Value> = vec![Value::Text(c.client.clone()), Value::Integer(since)];
        p.extend(categories.iter().map(|c| Value::Text(c.clone())));
        p.extend(group.map(|g| Value::Text(g.to_string())));
        c.top_domains = st
            .query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(list)
}

pub(crate) fn print_clients(
    list: &[SuspiciousClient],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), LogsError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, list).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(out, "(no client crosses the thresholds)")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.client.clone(),
                opt(&c.client_name),
                c.blocked.to_string(),
                c.domains.to_string(),
                c.categories.join(","),
                c.first_seen.clone(),
                c.last_seen.clone(),
                c.top_domains.join(" "),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&[
            "CLIENT",
            "NAME",
            "BLOCKED",
            "DOMAINS",
            "CATEGORIES",
            "FIRST SEEN",
            "LAST SEEN",
            "TOP DOMAINS",
        ]),
        &rows,
        &[2, 3],
    )?;
    Ok(())
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

fn export(
    conn: &Connection,
    format: ExportFormat,
    since: Option<i64>,
    until: Option<i64>,
    f: &Filters,
    out: &mut dyn Write,
) -> Result<(), CliErr> {
    // stdout is line-buffered: one write per row would cap the export rate
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    let out: &mut dyn Write = &mut out;
    let (w, p) = where_clause(f, since, until);
    let sql = format!("SELECT {COLUMNS} FROM queries WHERE {w} ORDER BY ts_us, id");
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
    if format == ExportFormat::Csv {
        writeln!(out, "{CSV_HEADER}")?;
    }
    let mut line = String::with_capacity(256);
    while let Some(r) = rows.next()? {
        let row = row_to_logrow(r)?;
        match format {
            ExportFormat::Csv => {
                write_csv_line(&mut line, &row);
                out.write_all(line.as_bytes())?;
            }
            ExportFormat::Jsonl => {
                serde_json::to_writer(&mut *out, &row)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// An aligned table: columns separated by two spaces, `right` columns right-aligned.
fn write_table(
    out: &mut dyn Write,
    headers: Option<&[&str]>,
    rows: &[Vec<String>],
    right: &[usize],
) -> std::io::Result<()> {
    let ncol = headers
        .map(|h| h.len())
        .or_else(|| rows.first().map(|r| r.len()))
        .unwrap_or(0);
    let mut width = vec![0usize; ncol];
    for (i, h) in headers.unwrap_or(&[]).iter().enumerate() {
        width[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate().take(ncol) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.enumerate().take(ncol) {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = width[i].saturating_sub(c.chars().count());
            if right.contains(&i) {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    if let Some(h) = headers {
        line(&mut h.iter().copied())?;
    }
    for r in rows {
        line(&mut r.iter().map(String::as_str))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::event::*;
    use crate::querylog::sinks::sqlite::{insert_batch, open_for_writing};
    use crate::querylog::testutil::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: LogsCommand,
    }

    fn cmd(args: &str) -> LogsCommand {
        Cli::try_parse_from(std::iter::once("logs").chain(args.split_whitespace()))
            .unwrap()
            .cmd
    }

    const H: i64 = 3_600_000_000;

    fn ev_at(
        ago_h: f64,
        client: &str,
        qname: &str,
        action: EventAction,
        category: Option<&str>,
    ) -> LoggedEvent {
        let mut e = event(qname, action);
        e.ts_us = now_us() - (ago_h * H as f64) as i64;
        e.client = format!("{client}:4000").parse().unwrap();
        e.category = category.map(|c| c.to_string().into());
        logged(e)
    }

    /// A: infected (12 blocked, 4 malware domains); B: 2 ad blocks; C: allowed only;
    /// D: one old block three days ago.
    fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.db");
        let mut c = open_for_writing(&p).unwrap();
        let mut b = vec![ev_at(
            72.0,
            "10.0.0.4",
            "old.evil.example",
            EventAction::Blocked,
            Some("malware"),
        )];
        for i in 0..12 {
            let d = [
                "c2.evil.example",
                "c2.evil.example",
                "c2.evil.example",
                "drop.bad.example",
                "x.evil.example",
                "pay.bad.example",
            ][i % 6];
            b.push(ev_at(
                3.0 - i as f64 * 0.05,
                "10.0.0.1",
                d,
                EventAction::Blocked,
                Some("malware"),
            ));
        }
        b.push(ev_at(
            1.0,
            "10.0.0.2",
            "ads.example",
            EventAction::Blocked,
            Some("ads"),
        ));
        b.push(ev_at(
            0.9,
            "10.0.0.2",
            "ads.example",
            EventAction::Blocked,
            Some("ads"),
        ));
        for i in 0..5 {
            b.push(ev_at(
                0.5 - i as f64 * 0.01,
                "10.0.0.3",
                &format!("ok{i}.notevil.example"),
                EventAction::Allowed,
                None,
            ));
        }
        insert_batch(&mut c, &b).unwrap();
        (dir, p)
    }

    fn run(db: &Path, args: &str) -> String {
        let mut out = Vec::new();
        run_logs(db, cmd(args), &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn tail_client_reads_the_clients_hours_across_batches() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let mut c = open_for_writing(&db).unwrap();
        // 10.0.0.9 asks in hours 5, 3 and 0 back, between other clients, in three batches
        for (batch, ago) in [5.0, 3.0, 0.2].into_iter().enumerate() {
            let b: Vec<_> = (0..6)
                .map(|i| {
                    let client = if i % 2 == 0 { "10.0.0.9" } else { "10.0.0.8" };
                    let name = format!("b{batch}-{i}.example");
                    ev_at(
                        ago - i as f64 * 0.01,
                        client,
                        &name,
                        EventAction::Allowed,
                        None,
                    )
                })
                .collect();
            insert_batch(&mut c, &b).unwrap();
        }
        let names = |args: &str| -> Vec<String> {
            run(&db, args)
                .lines()
                .map(|l| serde_json::from_str::<LogRow>(l).unwrap().qname)
                .collect()
        };
        assert_eq!(
            names("tail --json -n 4 --client 10.0.0.9"),
            [
                "b1-4.example",
                "b2-0.example",
                "b2-2.example",
                "b2-4.example"
            ]
            .map(String::from),
            "the latest four of that client, across two hours, oldest first"
        );
        assert_eq!(
            names("tail --json -n 2 --client 10.0.0.9")[1],
            "b2-4.example"
        );
        assert_eq!(
            names("tail --json -n 50 --client 10.0.0.9 --since 4h").len(),
            6
        );
        assert_eq!(names("tail --json -n 50 --client 10.0.0.9").len(), 9);
        assert!(names("tail --json --client 10.9.9.9").is_empty());
    }

    #[test]
    fn tail_shows_latest_oldest_first_with_filters() {
        let (_d, db) = fixture();
        let out = run(&db, "tail -n 3");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(
            lines[0].starts_with("TIME")
                && lines[0].contains("QNAME")
                && lines[0].contains("CATEGORY")
        );
        assert!(
            lines[1].contains("ok2.notevil.example") && lines[3].contains("ok4.notevil.example"),
            "{out}"
        );
        assert!(
            lines[1].contains("10.0.0.3:4000") && lines[1].contains("allowed*"),
            "{out}"
        );
        // columns are aligned: QNAME starts at the same offset on every line
        let col = lines[0].find("QNAME").unwrap();
        for l in &lines[1..] {
            assert_eq!(&l[col..col + 2], "ok", "{out}");
        }

        let out = run(&db, "tail --json --client 10.0.0.2 --action blocked");
        let rows: Vec<LogRow> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|r| r.client == "10.0.0.2"
            && r.qname == "ads.example"
            && r.action == EventAction::Blocked));
        assert!(rows[0].ts_us < rows[1].ts_us);

        let out = run(&db, "tail --json -n 100 --qname-suffix Evil.Example.");
        let names: std::collections::BTreeSet<String> = out
            .lines()
            .map(|l| serde_json::from_str::<LogRow>(l).unwrap().qname)
            .collect();
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["c2.evil.example", "old.evil.example", "x.evil.example"]
        );

        let out = run(&db, "tail --json -n 100 --category ads --since 2h");
        assert_eq!(out.lines().count(), 2);
        assert_eq!(
            run(&db, "tail --client 192.0.2.99"),
            "(no matching queries)\n"
        );
    }

    #[test]
    fn tail_follow_prints_new_rows() {
        let (_d, db) = fixture();
        let db2 = db.clone();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let mut c = open_for_writing(&db2).unwrap();
            insert_batch(
                &mut c,
                [&ev_at(
                    0.0,
                    "10.0.0.9",
                    "late.evil.example",
                    EventAction::Blocked,
                    Some("malware"),
                )],
            )
            .unwrap();
        });
        let out = run(&db, "tail -f -n 1 --poll-ms 100 --max-polls 6");
        writer.join().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert!(lines[1].contains("ok4.notevil.example"));
        assert!(
            lines[2].contains("late.evil.example") && lines[2].contains("10.0.0.9"),
            "{out}"
        );
    }

    #[test]
    fn top_table_and_json() {
        let (_d, db) = fixture();
        let out = run(&db, "top");
        assert!(out.contains("19 queries, 14 blocked (73.7%)"), "{out}");
        let dom = out
            .lines()
            .skip_while(|l| !l.starts_with("Top blocked domains"))
            .nth(2)
            .unwrap();
        let cells: Vec<&str> = dom.split_whitespace().collect();
        assert_eq!(cells, ["c2.evil.example", "6", "1", "malware"], "{out}");
        assert!(!out.contains("old.evil.example"), "outside 24h: {out}");

        let v: serde_json::Value =
            serde_json::from_str(&run(&db, "top --json --since 7d -n 2")).unwrap();
        assert_eq!(v["queries"], 20);
        assert_eq!(v["blocked"], 15);
        assert_eq!(v["domains"].as_array().unwrap().len(), 2);
        assert_eq!(v["domains"][0]["qname"], "c2.evil.example");
        assert_eq!(
            v["clients"][0],
            serde_json::json!({"client": "10.0.0.1", "blocked": 12, "domains": 4})
        );
        assert_eq!(v["clients"][1]["client"], "10.0.0.2");
        assert_eq!(
            v["categories"][0],
            serde_json::json!({"category": "malware", "blocked": 13, "clients": 2, "domains": 5})
        );
    }

    #[test]
    fn clients_flags_infected_hosts() {
        let (_d, db) = fixture();
        let out = run(&db, "clients");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].starts_with("CLIENT") && lines[0].contains("FIRST SEEN"));
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            &cells[..5],
            ["10.0.0.1", "-", "12", "4", "malware"],
            "{out}"
        );
        assert_eq!(cells[7], "c2.evil.example", "{out}");

        let v: Vec<serde_json::Value> = serde_json::from_str(&run(
            &db,
            "clients --json --min-blocked 2 --min-domains 100",
        ))
        .unwrap();
        let names: Vec<&str> = v.iter().map(|c| c["client"].as_str().unwrap()).collect();
        assert_eq!(names, ["10.0.0.1", "10.0.0.2"]);
        assert_eq!(v[1]["categories"], serde_json::json!(["ads"]));
        assert!(v[0]["first_seen"].as_str().unwrap() < v[0]["last_seen"].as_str().unwrap());
        assert_eq!(v[0]["top_domains"][0], "c2.evil.example");

        let v: Vec<serde_json::Value> = serde_json::from_str(&run(
            &db,
            "clients --json --since 7d --min-blocked 1 --category malware",
        ))
        .unwrap();
        let names: Vec<&str> = v.iter().map(|c| c["client"].as_str().unwrap()).collect();
        assert_eq!(names, ["10.0.0.1", "10.0.0.4"]);
        assert_eq!(
            run(&db, "clients --min-blocked 1000 --min-domains 1000"),
            "(no client crosses the thresholds)\n"
        );
    }

    #[test]
    fn export_csv_and_jsonl_with_time_window() {
        let (_d, db) = fixture();
        let out = run(&db, "export --format csv --since 2h");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 1 + 7, "{out}");
        assert!(lines[1].contains(",10.0.0.2,4000,udp,ads.example,A,NXDOMAIN,blocked,ads,threat-feed,*.evil.example,qname,false,,1234,edge-1"), "{}", lines[1]);
        assert!(
            lines[7].contains("\"198.51.100.7,2001:db8::7\""),
            "{}",
            lines[7]
        );

        let now = now_us();
        let until = format_ts(now - 2 * H, 0);
        let out = run(&db, &format!("export --format jsonl --until {until}"));
        let rows: Vec<LogRow> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 1 + 12, "rows older than 2h");
        assert!(rows.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));
        assert_eq!(rows[0].qname, "old.evil.example");
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.db");
        let e = run_logs(&missing, cmd("tail"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not exist"), "{e}");
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, vec![7u8; 4096]).unwrap();
        let e = run_logs(&junk, cmd("top"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a database"), "{e}");
        let old = dir.path().join("old.db");
        let c = Connection::open(&old).unwrap();
        c.execute_batch("CREATE TABLE queries (id INTEGER PRIMARY KEY); PRAGMA user_version = 1;")
            .unwrap();
        drop(c);
        let e = run_logs(&old, cmd("tail"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("older dnsward (schema 1)") && e.contains("dnsward serve"),
            "{e}"
        );
        let (_d, db) = fixture();
        let e = run_logs(&db, cmd("top --since yesterday"), &mut Vec::new())
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a time"), "{e}");
        assert!(Cli::try_parse_from(["logs", "tail", "--action", "maybe"]).is_err());
        assert!(Cli::try_parse_from(["logs", "export", "--format", "xml"]).is_err());
    }
}
