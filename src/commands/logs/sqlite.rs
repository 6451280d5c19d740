//! `dnsward logs` over the SQLite store: opened read-only, `tail` (through the
//! `client_hours` id ranges for `--client`) and `export`; `top` and `clients` are in
//! `sqlite_reports.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::csv_export::CsvExport;
use super::follow::{print_latest, Follow};
use super::format::{SuspiciousClient, TopReport, CSV_HEADER};
use super::{run_on, sqlite_reports, ExportFormat, Filters, LogStore, LogsCommand, LogsError};
use crate::querylog::event::{EventAction, LogRow};
use crate::querylog::sinks::sqlite::{row_to_logrow, COLUMNS, HOUR_US, SCHEMA_VERSION};
use crate::timefmt::now_us;

fn db_err(db: &Path, e: impl std::fmt::Display) -> LogsError {
    LogsError::Db {
        path: db.to_path_buf(),
        msg: e.to_string(),
    }
}

/// Open the query log read-only and check it is one.
fn open_read_only(db: &Path) -> Result<Connection, LogsError> {
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
    let store = SqliteStore {
        conn: open_read_only(db)?,
        db: db.to_path_buf(),
    };
    if let LogsCommand::InitClickhouse { .. } = cmd {
        return Err(LogsError::InvalidArgument(
            "init-clickhouse works on [querylog] clickhouse, not on SQLite".into(),
        ));
    }
    run_on(&store, cmd, out)
}

/// The store opened read-only, and its path for error messages.
struct SqliteStore {
    conn: Connection,
    db: PathBuf,
}

impl SqliteStore {
    fn failed(&self, e: impl Into<ReadError>) -> LogsError {
        match e.into() {
            ReadError::Db(e) => db_err(&self.db, format!("query failed: {e}")),
            ReadError::Io(e) => LogsError::Io(e),
        }
    }
}

impl LogStore for SqliteStore {
    fn tail(
        &self,
        limit: usize,
        since: Option<i64>,
        f: &Filters,
        json: bool,
        follow: Option<Follow>,
        out: &mut dyn Write,
    ) -> Result<(), LogsError> {
        tail(&self.conn, limit, since, f, json, follow, out).map_err(|e| self.failed(e))
    }

    fn top(
        &self,
        since: i64,
        now: i64,
        limit: usize,
        group: Option<&str>,
    ) -> Result<TopReport, LogsError> {
        sqlite_reports::top(&self.conn, since, now, limit, group).map_err(|e| self.failed(e))
    }

    fn suspicious_clients(
        &self,
        since: i64,
        min_blocked: u64,
        min_domains: u64,
        categories: &[String],
        limit: usize,
        group: Option<&str>,
    ) -> Result<Vec<SuspiciousClient>, LogsError> {
        sqlite_reports::suspicious_clients(
            &self.conn,
            since,
            min_blocked,
            min_domains,
            categories,
            limit,
            group,
        )
        .map_err(|e| self.failed(e))
    }

    fn export(
        &self,
        format: ExportFormat,
        since: Option<i64>,
        until: Option<i64>,
        f: &Filters,
        out: &mut dyn Write,
    ) -> Result<(), LogsError> {
        export(&self.conn, format, since, until, f, out).map_err(|e| self.failed(e))
    }
}

/// What a read fails with, before [`SqliteStore::failed`] names the database in it.
enum ReadError {
    Db(rusqlite::Error),
    Io(std::io::Error),
}
impl From<rusqlite::Error> for ReadError {
    fn from(e: rusqlite::Error) -> Self {
        ReadError::Db(e)
    }
}
impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        ReadError::Io(e)
    }
}
impl From<serde_json::Error> for ReadError {
    fn from(e: serde_json::Error) -> Self {
        ReadError::Io(e.into())
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

fn tail(
    conn: &Connection,
    limit: usize,
    since: Option<i64>,
    f: &Filters,
    json: bool,
    follow: Option<Follow>,
    out: &mut dyn Write,
) -> Result<(), ReadError> {
    let mut rows = latest_rows(conn, limit, since, f)?;
    rows.reverse();
    let mut last_id = match rows.last() {
        Some(r) => r.1,
        None => conn.query_row("SELECT coalesce(max(id), 0) FROM queries", [], |r| r.get(0))?,
    };
    let rows: Vec<LogRow> = rows.into_iter().map(|(r, _)| r).collect();
    print_latest(&rows, json, follow.is_some(), out)?;
    let Some(follow) = follow else {
        return Ok(());
    };
    let (w, mut p) = where_clause(f, since, None);
    p.push(Value::Integer(0));
    let idx = p.len();
    let sql = format!(
        "SELECT {COLUMNS}, id FROM queries WHERE {w} AND id > ?{idx} ORDER BY id LIMIT 10000"
    );
    follow.print_new(json, out, || -> Result<Vec<LogRow>, ReadError> {
        p[idx - 1] = Value::Integer(last_id);
        let new: Vec<(LogRow, i64)> = conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                Ok((row_to_logrow(r)?, r.get(18)?))
            })?
            .collect::<Result<_, _>>()?;
        if let Some(l) = new.last() {
            last_id = l.1;
        }
        Ok(new.into_iter().map(|(r, _)| r).collect())
    })
}

fn export(
    conn: &Connection,
    format: ExportFormat,
    since: Option<i64>,
    until: Option<i64>,
    f: &Filters,
    out: &mut dyn Write,
) -> Result<(), ReadError> {
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
    match format {
        // straight from the rows: the LogRow path halves the export rate
        ExportFormat::Csv => {
            let mut csv = CsvExport::default();
            while let Some(r) = rows.next()? {
                out.write_all(csv.line(r)?.as_bytes())?;
            }
        }
        ExportFormat::Jsonl => {
            while let Some(r) = rows.next()? {
                serde_json::to_writer(&mut *out, &row_to_logrow(r)?)?;
                out.write_all(b"\n")?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
