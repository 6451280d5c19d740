//! The SQLite store read-only: opening and checking it, the filters' WHERE clause, the latest
//! rows through the `client_hours` id ranges; `top` and `clients` in `sqlite_reports.rs`, the
//! dashboard's reads in `sqlite_ui.rs`. `dnsward logs` (tail, export) and the admin
//! dashboard both read through here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags};

use super::{Filters, LogsError, StoreProblem};
use crate::querylog::event::{EventAction, LogRow};
use crate::querylog::sinks::sqlite::{row_to_logrow, COLUMNS, HOUR_US, SCHEMA_VERSION};
use crate::timefmt::now_us;

fn db_err<'a>(db: &'a Path, step: &'static str) -> impl FnOnce(rusqlite::Error) -> LogsError + 'a {
    move |source| LogsError::Db {
        path: db.to_path_buf(),
        step,
        source,
    }
}

fn not_a_store(db: &Path, problem: StoreProblem) -> LogsError {
    LogsError::Store {
        path: db.to_path_buf(),
        problem,
    }
}

/// Open the query log read-only and check it is one.
pub fn open_read_only(db: &Path) -> Result<Connection, LogsError> {
    if !db.exists() {
        return Err(not_a_store(db, StoreProblem::Missing));
    }
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(db_err(db, "cannot open"))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(db_err(db, "busy_timeout"))?;
    let has: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'queries'",
            [],
            |r| r.get(0),
        )
        .map_err(db_err(db, "cannot read"))?;
    if has == 0 {
        return Err(not_a_store(db, StoreProblem::NotALog));
    }
    // Read-only cannot upgrade: the server adds the newer columns when it opens the store.
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(db_err(db, "user_version"))?;
    if version < SCHEMA_VERSION {
        return Err(not_a_store(db, StoreProblem::OlderSchema(version)));
    }
    // `--ref`: the block page's reference ID is derived from name and time, not stored.
    conn.create_scalar_function(
        "dnsward_ref",
        2,
        rusqlite::functions::FunctionFlags::SQLITE_UTF8
            | rusqlite::functions::FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(crate::refid::reference(
                &ctx.get::<String>(0)?,
                ctx.get::<i64>(1)?,
            ))
        },
    )
    .map_err(db_err(db, "dnsward_ref"))?;
    Ok(conn)
}

/// The store opened read-only, and its path for error messages.
pub struct SqliteStore {
    pub conn: Connection,
    pub db: PathBuf,
}

impl SqliteStore {
    /// Open `db` read-only.
    pub fn open(db: &Path) -> Result<SqliteStore, LogsError> {
        Ok(SqliteStore {
            conn: open_read_only(db)?,
            db: db.to_path_buf(),
        })
    }

    pub fn failed(&self, e: impl Into<ReadError>) -> LogsError {
        match e.into() {
            ReadError::Db(e) => db_err(&self.db, "query failed")(e),
            ReadError::Io(e) => LogsError::Io(e),
        }
    }
}

/// What a read fails with, before [`SqliteStore::failed`] names the database in it.
pub enum ReadError {
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
pub fn where_clause(f: &Filters, since: Option<i64>, until: Option<i64>) -> (String, Vec<Value>) {
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
        if let Some((start, end)) = crate::refid::day_range(id, now_us()) {
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
pub fn latest_rows(
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
pub fn client_id_ranges(
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
