//! SQLite sink: one row per event in table `queries`, WAL mode, batched inserts (one
//! transaction per batch) on the blocking pool, retention by age and by size.
//!
//! Layout (schema 5), chosen by measurement (bench/README.md): an allowed event pays for the
//! row and the time index (appended at its end) only. Every index whose insertion point is
//! random per event (qname, client) is partial, over blocked rows, which are the ones
//! `logs top`, `logs clients` and the dashboard's name page read. Two small tables kept in the same transaction as the
//! rows replace the full indexes: `minute_counts` (queries per minute, action, group,
//! category, list and resolver: the totals of `logs top`, the dashboard's timeline and its
//! blocks per list) and `client_hours` (the id range of each client's rows per hour:
//! `logs tail --client` reads only those ranges).
//!
//! The `dnsward logs` commands read the same file (read-only) while the server writes it;
//! WAL lets them run side by side.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use super::{BlockingSink, SinkError};
use crate::querylog::bus::Queued;
use crate::querylog::event::{answers_from_text, EventAction, LogRow};
use crate::timefmt::{format_ts_us, now_us};

mod insert;
pub use insert::insert_batch;

/// 2: `client_name` and `client_group` (per-client groups).
/// 3: partial indexes over blocked rows instead of `queries_qname`, `queries_action_ts` and
/// `queries_client_ts`; the `minute_counts` and `client_hours` tables.
/// 4: `minute_counts` also per category, list and resolver (`server`), so the dashboard's
/// timeline, its split by category and list, and its scopes read only the rollup.
/// 5: `queries_blocked_qname`, the blocked rows by name (a name's page reads only its own
/// blocked rows, not all of the window's).
pub const SCHEMA_VERSION: i64 = 5;

/// A rollup minute: `ts_us / MINUTE_US`, truncating as SQLite's integer division does.
pub const MINUTE_US: i64 = 60_000_000;
/// A `client_hours` hour: `ts_us / HOUR_US`.
pub const HOUR_US: i64 = 3_600_000_000;

/// The per-minute rollup: queries per minute, action, group, category, list and resolver
/// (the row's `server`); a NULL group, category or list is ''.
macro_rules! minute_counts_table {
    () => {
        "CREATE TABLE IF NOT EXISTS minute_counts (
    minute       INTEGER NOT NULL,
    action       TEXT    NOT NULL,
    client_group TEXT    NOT NULL,
    category     TEXT    NOT NULL,
    list         TEXT    NOT NULL,
    server       TEXT    NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (minute, action, client_group, category, list, server)
) WITHOUT ROWID;
"
    };
}

/// The schema. The partial indexes cover every column `logs top` and `logs clients` read,
/// so those never touch the table. `client` is text: an address, a truncated network address or an `h:` token
/// (see `client_ip`); `client_port` is NULL unless `client_ip = "full"`. `answers` is a
/// comma-separated list of addresses. Wire bytes are not stored.
pub const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS queries (
    id          INTEGER PRIMARY KEY,
    ts_us       INTEGER NOT NULL,
    client      TEXT    NOT NULL,
    client_port INTEGER,
    transport   TEXT    NOT NULL,
    qname       TEXT    NOT NULL,
    qtype       TEXT    NOT NULL,
    rcode       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    category    TEXT,
    list        TEXT,
    rule        TEXT,
    trigger     TEXT,
    cached      INTEGER NOT NULL,
    answers     TEXT    NOT NULL,
    latency_us  INTEGER NOT NULL,
    server      TEXT    NOT NULL,
    client_name TEXT,
    client_group TEXT
);
CREATE INDEX IF NOT EXISTS queries_ts ON queries(ts_us);
CREATE INDEX IF NOT EXISTS queries_blocked_ts
    ON queries(ts_us, qname, client, category, client_name, client_group)
    WHERE action = 'blocked';
CREATE INDEX IF NOT EXISTS queries_blocked_client
    ON queries(client, ts_us, qname, category, client_group)
    WHERE action = 'blocked';
CREATE INDEX IF NOT EXISTS queries_blocked_qname
    ON queries(qname, ts_us)
    WHERE action = 'blocked';
",
    minute_counts_table!(),
    "
CREATE TABLE IF NOT EXISTS client_hours (
    client   TEXT    NOT NULL,
    hour     INTEGER NOT NULL,
    first_id INTEGER NOT NULL,
    last_id  INTEGER NOT NULL,
    PRIMARY KEY (client, hour)
) WITHOUT ROWID;
"
);

/// `minute_counts` of minutes `?1..?2` counted from the rows (NULL -> '').
const ROLLUP_FROM_ROWS: &str = "INSERT INTO minute_counts
        (minute, action, client_group, category, list, server, n)
    SELECT ts_us / 60000000, action, coalesce(client_group, ''), coalesce(category, ''),
        coalesce(list, ''), server, count(*) FROM queries
    WHERE ts_us >= ?1 * 60000000 AND ts_us < ?2 * 60000000 GROUP BY 1, 2, 3, 4, 5, 6";

/// Columns in the order [`row_to_logrow`] reads them.
pub const COLUMNS: &str = "ts_us, client, client_port, transport, qname, qtype, rcode, action, \
     category, list, rule, trigger, cached, answers, latency_us, server, client_name, client_group";

/// A stored value that does not parse, as rusqlite reports a bad column.
pub fn bad_value(col: usize, v: String, e: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        col,
        rusqlite::types::Type::Text,
        format!("unexpected value {v:?}: {e}").into(),
    )
}

/// Read one row selected with [`COLUMNS`] (columns 0..=17).
pub fn row_to_logrow(r: &rusqlite::Row<'_>) -> rusqlite::Result<LogRow> {
    let ts_us: i64 = r.get(0)?;
    let transport: String = r.get(3)?;
    let action: String = r.get(7)?;
    let trigger: Option<String> = r.get(11)?;
    let answers: String = r.get(13)?;
    Ok(LogRow {
        time: format_ts_us(ts_us),
        ts_us,
        client: r.get(1)?,
        client_port: r.get(2)?,
        transport: transport
            .parse()
            .map_err(|e| bad_value(3, transport.clone(), e))?,
        qname: r.get(4)?,
        qtype: r.get(5)?,
        rcode: r.get(6)?,
        action: action
            .parse()
            .map_err(|e| bad_value(7, action.clone(), e))?,
        category: r.get(8)?,
        list: r.get(9)?,
        rule: r.get(10)?,
        trigger: match trigger {
            Some(t) => Some(t.parse().map_err(|e| bad_value(11, t.clone(), e))?),
            None => None,
        },
        cached: r.get(12)?,
        answers: answers_from_text(&answers),
        latency_us: r.get(14)?,
        server: r.get(15)?,
        client_name: r.get(16)?,
        group: r.get(17)?,
    })
}

/// Why a store could not be opened for writing.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create directory {}: {source}", dir.display())]
    CreateDir {
        dir: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open: {0}")]
    Open(rusqlite::Error),
    /// A step of bringing the store up (`step` names the pragma or the schema change).
    #[error(
        "{step}: {source} (is it a dnsward query log database, and not locked by another program?)"
    )]
    Step {
        step: &'static str,
        source: rusqlite::Error,
    },
    #[error("cannot switch to WAL mode (got {0})")]
    NotWal(String),
    #[error("schema version {0} is newer than this dnsward understands ({SCHEMA_VERSION})")]
    NewerSchema(i64),
}

/// Open (creating if needed) for writing and bring the schema up.
pub fn open_for_writing(path: &Path) -> Result<Connection, OpenError> {
    if let Some(dir) = path.parent() {
        if !dir.as_os_str().is_empty() && !dir.exists() {
            std::fs::create_dir_all(dir).map_err(|source| OpenError::CreateDir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
    }
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(OpenError::Open)?;
    let ctx = |step: &'static str, source: rusqlite::Error| OpenError::Step { step, source };
    conn.busy_timeout(std::time::Duration::from_secs(2))
        .map_err(|e| ctx("busy_timeout", e))?;
    // Must precede the first table of a new file; ignored on an existing one.
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .map_err(|e| ctx("auto_vacuum", e))?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
        .map_err(|e| ctx("journal_mode", e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NotWal(mode));
    }
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| ctx("synchronous", e))?;
    // A page cache large enough for the four indexes' hot pages: without it every batch
    // spills and re-reads index pages (the biggest cost of logging under load).
    conn.pragma_update(None, "cache_size", -65536)
        .map_err(|e| ctx("cache_size", e))?;
    conn.pragma_update(None, "temp_store", "MEMORY")
        .map_err(|e| ctx("temp_store", e))?;
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| ctx("user_version", e))?;
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema(version));
    }
    if version == 1 {
        // A version-1 store predates groups: add their columns (NULL in old rows) before
        // the schema's indexes name them.
        conn.execute_batch("ALTER TABLE queries ADD COLUMN client_name TEXT; ALTER TABLE queries ADD COLUMN client_group TEXT;")
            .map_err(|e| ctx("upgrading the schema to version 2", e))?;
    }
    conn.execute_batch(SCHEMA)
        .map_err(|e| ctx("creating the schema", e))?;
    if (1..3).contains(&version) {
        upgrade_to_3(&mut conn).map_err(|e| ctx("upgrading the schema to version 3", e))?;
    }
    if version == 3 {
        upgrade_to_4(&mut conn).map_err(|e| ctx("upgrading the schema to version 4", e))?;
    }
    if version < SCHEMA_VERSION {
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)
            .map_err(|e| ctx("user_version", e))?;
    }
    Ok(conn)
}

/// Version 2 -> 3 in one transaction: the two full indexes go (the partial ones were
/// created with the schema), the rollup is computed from the rows already stored. On a
/// 10-million-row store this takes some seconds, once.
fn upgrade_to_3(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch(
        "DROP INDEX IF EXISTS queries_qname; DROP INDEX IF EXISTS queries_action_ts;
         DROP INDEX IF EXISTS queries_client_ts;
         DELETE FROM minute_counts; DELETE FROM client_hours;
         INSERT INTO client_hours (client, hour, first_id, last_id)
             SELECT client, ts_us / 3600000000, min(id), max(id) FROM queries GROUP BY 1, 2;",
    )?;
    tx.execute(
        ROLLUP_FROM_ROWS,
        params![i64::MIN / MINUTE_US, i64::MAX / MINUTE_US],
    )?;
    tx.commit()
}

/// Version 3 -> 4 in one transaction: `minute_counts` gets its category, list and resolver
/// columns, counted again from the rows (a full scan: some seconds on a 10-million-row
/// store, once).
fn upgrade_to_4(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    tx.execute_batch("DROP TABLE minute_counts;")?;
    tx.execute_batch(minute_counts_table!())?;
    tx.execute(
        ROLLUP_FROM_ROWS,
        params![i64::MIN / MINUTE_US, i64::MAX / MINUTE_US],
    )?;
    tx.commit()
}

/// After rows were deleted: drop the rollup of minutes before the oldest row left and
/// recount that row's minute, which may have lost part of its rows.
fn trim_rollup(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction()?;
    let oldest: Option<i64> = tx.query_row("SELECT min(ts_us) FROM queries", [], |r| r.get(0))?;
    match oldest {
        None => {
            tx.execute_batch("DELETE FROM minute_counts; DELETE FROM client_hours;")?;
        }
        Some(ts) => {
            // an hour's id range may still name deleted rows: harmless, they are not found
            tx.execute(
                "DELETE FROM client_hours WHERE hour < ?1",
                params![ts / HOUR_US],
            )?;
            let first = ts / MINUTE_US;
            tx.execute(
                "DELETE FROM minute_counts WHERE minute <= ?1",
                params![first],
            )?;
            tx.execute(ROLLUP_FROM_ROWS, params![first, first + 1])?;
        }
    }
    tx.commit()
}

/// Bytes held by live pages (free pages excluded).
pub fn used_bytes(conn: &Connection) -> rusqlite::Result<u64> {
    let pages: i64 = conn.pragma_query_value(None, "page_count", |r| r.get(0))?;
    let free: i64 = conn.pragma_query_value(None, "freelist_count", |r| r.get(0))?;
    let size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
    Ok(((pages - free).max(0) * size) as u64)
}

/// What retention removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub deleted_by_age: u64,
    pub deleted_by_size: u64,
}

/// Delete rows older than `retention_days` (relative to `now_us`), then the oldest rows until
/// the live data fits in 90% of `max_size_mb`. Works in chunks so inserts are not held up
/// for long.
pub fn enforce_retention(
    conn: &mut Connection,
    now_us: i64,
    retention_days: Option<u32>,
    max_size_mb: Option<u64>,
) -> rusqlite::Result<RetentionReport> {
    let mut rep = RetentionReport::default();
    if let Some(days) = retention_days {
        let cutoff = now_us - i64::from(days) * 86_400 * 1_000_000;
        loop {
            let n = conn.execute(
                "DELETE FROM queries WHERE id IN (SELECT id FROM queries WHERE ts_us < ?1 LIMIT 20000)",
                params![cutoff],
            )?;
            rep.deleted_by_age += n as u64;
            if n == 0 {
                break;
            }
        }
    }
    if let Some(mb) = max_size_mb {
        let max = mb.saturating_mul(1024 * 1024);
        if used_bytes(conn)? > max {
            let target = max / 10 * 9;
            for _ in 0..64 {
                let used = used_bytes(conn)?;
                if used <= target {
                    break;
                }
                let total: i64 =
                    conn.query_row("SELECT count(*) FROM queries", [], |r| r.get(0))?;
                if total == 0 {
                    break;
                }
                let frac = (used - target) as f64 / used as f64;
                let n = ((total as f64 * frac * 1.1) as i64)
                    .max(total / 20)
                    .clamp(1, total);
                let deleted = conn.execute(
                    "DELETE FROM queries WHERE id <= (SELECT id FROM queries ORDER BY id LIMIT 1 OFFSET ?1)",
                    params![n - 1],
                )?;
                rep.deleted_by_size += deleted as u64;
            }
        }
    }
    if rep.deleted_by_age + rep.deleted_by_size > 0 {
        trim_rollup(conn)?;
        // Give freed pages back to the file system (auto_vacuum = INCREMENTAL) and keep the
        // WAL short. Both are best effort: a reader may hold the WAL.
        // incremental_vacuum frees one page per step: step it to the end.
        let _ = conn
            .prepare("PRAGMA incremental_vacuum")
            .and_then(|mut st| {
                let mut rows = st.query([])?;
                while rows.next()?.is_some() {}
                Ok(())
            });
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
    Ok(rep)
}

pub struct SqliteSink {
    /// store allowed queries too (`sqlite_log_allowed`)
    pub keep_allowed: bool,
    path: PathBuf,
    retention_days: Option<u32>,
    max_size_mb: Option<u64>,
    /// `[querylog] sqlite_cache_mb`
    pub cache_mb: u64,
    conn: Option<Connection>,
}

impl SqliteSink {
    pub fn new(path: PathBuf, retention_days: Option<u32>, max_size_mb: Option<u64>) -> SqliteSink {
        SqliteSink {
            keep_allowed: true,
            path,
            retention_days,
            max_size_mb,
            cache_mb: 64,
            conn: None,
        }
    }
}

impl BlockingSink for SqliteSink {
    fn describe(&self) -> String {
        format!("sqlite {}", self.path.display())
    }
    fn is_open(&self) -> bool {
        self.conn.is_some()
    }
    fn open(&mut self) -> Result<(), SinkError> {
        let conn = open_for_writing(&self.path).map_err(|source| SinkError::SqliteOpen {
            path: self.path.clone(),
            source,
        })?;
        let kib = i64::try_from(self.cache_mb.saturating_mul(1024)).unwrap_or(i64::MAX);
        conn.pragma_update(None, "cache_size", -kib)
            .map_err(|e| SinkError::SqliteOpen {
                path: self.path.clone(),
                source: OpenError::Step {
                    step: "cache_size",
                    source: e,
                },
            })?;
        self.conn = Some(conn);
        Ok(())
    }
    fn write_batch(&mut self, batch: &[Queued]) -> Result<u64, SinkError> {
        let conn = self.conn.as_mut().ok_or(SinkError::NotOpen)?;
        let keep_allowed = self.keep_allowed;
        let events = batch.iter().flat_map(|b| b.events());
        // only what was inserted counts as written (skipped allowed events are not)
        insert_batch(
            conn,
            events.filter(|e| keep_allowed || e.ev.action != EventAction::Allowed),
        )
        .map_err(|source| SinkError::SqliteInsert {
            path: self.path.clone(),
            source,
        })
    }
    fn maintenance(&mut self) -> Result<(), SinkError> {
        if self.retention_days.is_none() && self.max_size_mb.is_none() {
            return Ok(());
        }
        let conn = self.conn.as_mut().ok_or(SinkError::NotOpen)?;
        let rep = enforce_retention(conn, now_us(), self.retention_days, self.max_size_mb)
            .map_err(|source| SinkError::SqliteRetention {
                path: self.path.clone(),
                source,
            })?;
        if rep != RetentionReport::default() {
            tracing::info!(db = %self.path.display(), by_age = rep.deleted_by_age, by_size = rep.deleted_by_size,
                "querylog: retention deleted old rows");
        }
        Ok(())
    }
    fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            if let Err((_, e)) = c.close() {
                tracing::warn!(db = %self.path.display(), error = %e, "querylog: closing the database failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::event::*;
    use crate::querylog::testutil::*;
    use std::sync::Arc;

    fn all_rows(conn: &Connection) -> Vec<LogRow> {
        let mut st = conn
            .prepare(&format!("SELECT {COLUMNS} FROM queries ORDER BY id"))
            .unwrap();
        st.query_map([], row_to_logrow)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn a_version_1_store_gets_the_group_columns() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("old.db");
        {
            // The version-1 table: no client_name, no client_group; one old row.
            let c = Connection::open(&p).unwrap();
            // (the table only: version 1 had other indexes)
            let table = &SCHEMA[..SCHEMA.find("CREATE INDEX").unwrap()];
            let v1 = table.replace(
                "    server      TEXT    NOT NULL,\n    client_name TEXT,\n    client_group TEXT\n",
                "    server      TEXT    NOT NULL\n",
            );
            assert_ne!(v1, table);
            c.execute_batch(&v1).unwrap();
            c.pragma_update(None, "user_version", 1).unwrap();
            c.execute(
                "INSERT INTO queries (ts_us, client, transport, qname, qtype, rcode, action, cached, answers, latency_us, server) \
                 VALUES (1, '10.0.0.1', 'udp', 'old.example', 'A', 'NOERROR', 'allowed', 0, '', 5, 'edge-1')",
                [],
            )
            .unwrap();
        }
        let mut c = open_for_writing(&p).unwrap();
        let mut ev = event("x.evil.example", EventAction::Blocked);
        ev.client_name = Some("Finance dept, PC-17".into());
        ev.group = Some("finance".into());
        let a = logged(ev);
        insert_batch(&mut c, [&a]).unwrap();
        let rows = all_rows(&c);
        assert_eq!(rows[0].qname, "old.example");
        assert_eq!(
            (rows[0].client_name.as_deref(), rows[0].group.as_deref()),
            (None, None)
        );
        assert_eq!(rows[1], LogRow::from_logged(&a));
        assert_eq!(rows[1].client_name.as_deref(), Some("Finance dept, PC-17"));
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        drop(c);
        // and opening it again (already version 2) changes nothing
        assert_eq!(all_rows(&open_for_writing(&p).unwrap()).len(), 2);
    }

    /// `minute_counts` per minute, action and group.
    fn rollup(conn: &Connection) -> Vec<(i64, String, String, i64)> {
        conn.prepare(
            "SELECT minute, action, client_group, sum(n) FROM minute_counts
             GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    fn at(ts_us: i64, action: EventAction, group: Option<&str>) -> LoggedEvent {
        let mut e = event(&format!("t{ts_us}.example"), action);
        e.ts_us = ts_us;
        e.group = group.map(Arc::from);
        logged(e)
    }

    #[test]
    fn minute_counts_follow_inserts_and_retention() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        let m = MINUTE_US;
        let batch = [
            at(10 * m, EventAction::Allowed, None),
            at(10 * m + 5, EventAction::Allowed, None),
            at(10 * m + 7, EventAction::Blocked, Some("lab")),
            at(11 * m + 1, EventAction::Allowed, None),
        ];
        assert_eq!(insert_batch(&mut c, &batch).unwrap(), 4);
        insert_batch(&mut c, &[at(11 * m + 2, EventAction::Allowed, None)]).unwrap();
        let r = |m: i64, a: &str, g: &str, n: i64| (m, a.to_string(), g.to_string(), n);
        assert_eq!(
            rollup(&c),
            [
                r(10, "allowed", "", 2),
                r(10, "blocked", "lab", 1),
                r(11, "allowed", "", 2)
            ]
        );
        // retention by age removes rows up to 10m+5: minute 10 is recounted, not dropped
        let rep = enforce_retention(&mut c, 10 * m + 6 + 86_400_000_000, Some(1), None).unwrap();
        assert_eq!(rep.deleted_by_age, 2);
        assert_eq!(
            rollup(&c),
            [r(10, "blocked", "lab", 1), r(11, "allowed", "", 2)]
        );
        // client_hours: rows two days later start a new hour; retention of one day then
        // drops the old hour's range along with its rows
        let later = 2 * 86_400_000_000;
        insert_batch(&mut c, &[at(later, EventAction::Allowed, None)]).unwrap();
        let hours = |c: &Connection| -> Vec<i64> {
            c.prepare("SELECT hour FROM client_hours ORDER BY hour")
                .unwrap()
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(hours(&c), [0, later / HOUR_US]);
        enforce_retention(&mut c, later + 60, Some(1), None).unwrap();
        assert_eq!(hours(&c), [later / HOUR_US]);
        assert_eq!(rollup(&c), [r(later / MINUTE_US, "allowed", "", 1)]);
    }

    #[test]
    fn a_version_2_store_is_upgraded_to_the_partial_indexes_and_the_rollup() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v2.db");
        {
            let mut c = open_for_writing(&p).unwrap();
            insert_batch(
                &mut c,
                &[
                    at(3 * MINUTE_US, EventAction::Allowed, None),
                    at(3 * MINUTE_US + 1, EventAction::Blocked, None),
                ],
            )
            .unwrap();
            // back to schema 2: its four full indexes, no rollup
            c.execute_batch(
                "DROP INDEX queries_blocked_ts; DROP INDEX queries_blocked_client;
                 DROP TABLE minute_counts; DROP TABLE client_hours;
                 CREATE INDEX queries_client_ts ON queries(client, ts_us);
                 CREATE INDEX queries_qname ON queries(qname);
                 CREATE INDEX queries_action_ts ON queries(action, ts_us);
                 PRAGMA user_version = 2;",
            )
            .unwrap();
        }
        let c = open_for_writing(&p).unwrap();
        let idx: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='queries' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            idx,
            [
                "queries_blocked_client",
                "queries_blocked_qname",
                "queries_blocked_ts",
                "queries_ts"
            ]
        );
        let r = |a: &str| (3, a.to_string(), String::new(), 1);
        assert_eq!(rollup(&c), [r("allowed"), r("blocked")]);
        let hours: Vec<(String, i64, i64, i64)> = c
            .prepare("SELECT client, hour, first_id, last_id FROM client_hours")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(hours, [(all_rows(&c)[0].client.clone(), 0, 1, 2)]);
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(all_rows(&c).len(), 2);
    }

    /// `minute_counts` in full: (minute, action, group, category, list, server, n).
    type Rollup = Vec<(i64, String, String, String, String, String, i64)>;
    fn full_rollup(conn: &Connection) -> Rollup {
        conn.prepare(
            "SELECT minute, action, client_group, category, list, server, n FROM minute_counts
             ORDER BY 1, 2, 3, 4, 5, 6",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn a_version_3_store_gets_the_rollup_per_category_list_and_resolver() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v3.db");
        let m = MINUTE_US;
        let mut other = at(4 * m + 2, EventAction::Blocked, Some("lab"));
        other.ev.server = Arc::from("edge-2");
        other.ev.list = Some("runtime".into());
        let batch = [
            at(3 * m, EventAction::Allowed, None),
            at(3 * m + 1, EventAction::Blocked, None),
            at(3 * m + 2, EventAction::Blocked, None),
            at(4 * m, EventAction::Blocked, Some("lab")),
            other,
        ];
        let written = {
            let mut c = open_for_writing(&p).unwrap();
            insert_batch(&mut c, &batch).unwrap();
            let written = full_rollup(&c);
            // back to schema 3: the rollup per minute, action and group only
            c.execute_batch(
                "DROP TABLE minute_counts;
                 CREATE TABLE minute_counts (minute INTEGER NOT NULL, action TEXT NOT NULL,
                     client_group TEXT NOT NULL, n INTEGER NOT NULL,
                     PRIMARY KEY (minute, action, client_group)) WITHOUT ROWID;
                 INSERT INTO minute_counts VALUES (3, 'allowed', '', 1), (3, 'blocked', '', 2),
                     (4, 'blocked', 'lab', 2);
                 PRAGMA user_version = 3;",
            )
            .unwrap();
            written
        };
        let c = open_for_writing(&p).unwrap();
        let v: i64 = c
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        let r = |m: i64, a: &str, g: &str, cat: &str, l: &str, s: &str, n: i64| {
            (m, a.into(), g.into(), cat.into(), l.into(), s.into(), n)
        };
        let server = batch[0].ev.server.to_string();
        let expected: Rollup = vec![
            r(3, "allowed", "", "", "", &server, 1),
            r(3, "blocked", "", "malware", "threat-feed", &server, 2),
            r(4, "blocked", "lab", "malware", "runtime", "edge-2", 1),
            r(4, "blocked", "lab", "malware", "threat-feed", &server, 1),
        ];
        // counted again from the rows: what the sink writes with them
        assert_eq!(full_rollup(&c), expected);
        assert_eq!(written, expected);
        assert_eq!(all_rows(&c).len(), 5);
        // and opening it again (now the current version) changes nothing
        drop(c);
        assert_eq!(full_rollup(&open_for_writing(&p).unwrap()), expected);
    }

    #[test]
    fn batch_insert_stores_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/q.db");
        let mut c = open_for_writing(&p).unwrap();
        let mut ev = event("x.evil.example", EventAction::Blocked);
        ev.trigger = Some(Trigger::Cname);
        ev.transport = Transport::Dot;
        let a = logged(ev.clone());
        let b = logged(event("ok.example", EventAction::Allowed));
        insert_batch(&mut c, [&a, &b]).unwrap();
        let rows = all_rows(&c);
        assert_eq!(rows, vec![LogRow::from_logged(&a), LogRow::from_logged(&b)]);
        assert_eq!(rows[0].trigger, Some(Trigger::Cname));
        assert_eq!(rows[1].answers.len(), 2);
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let idx: Vec<String> = c
            .prepare("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='queries' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            idx,
            [
                "queries_blocked_client",
                "queries_blocked_qname",
                "queries_blocked_ts",
                "queries_ts"
            ]
        );
        let answers: String = c
            .query_row("SELECT answers FROM queries WHERE id = 2", [], |r| r.get(0))
            .unwrap();
        assert_eq!(answers, "198.51.100.7,2001:db8::7");
    }

    #[test]
    fn retention_by_age_deletes_only_old_rows() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        let now = 1_800_000_000_000_000i64;
        let day = 86_400_000_000i64;
        let batch: Vec<_> = [now - 10 * day, now - 8 * day, now - 6 * day, now - day, now]
            .iter()
            .map(|&ts| {
                let mut e = event(&format!("t{ts}.example"), EventAction::Allowed);
                e.ts_us = ts;
                logged(e)
            })
            .collect();
        insert_batch(&mut c, &batch).unwrap();
        let rep = enforce_retention(&mut c, now, Some(7), None).unwrap();
        assert_eq!(
            rep,
            RetentionReport {
                deleted_by_age: 2,
                deleted_by_size: 0
            }
        );
        let left: Vec<i64> = all_rows(&c).iter().map(|r| r.ts_us).collect();
        assert_eq!(left, vec![now - 6 * day, now - day, now]);
    }

    #[test]
    fn retention_by_size_keeps_the_newest_rows_under_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        let mut batch = Vec::new();
        for i in 0..12_000i64 {
            let mut e = event(
                &format!("host-{i:06}-{}.example", "x".repeat(100)),
                EventAction::Blocked,
            );
            e.ts_us = 1_000_000 + i;
            batch.push(logged(e));
        }
        insert_batch(&mut c, &batch).unwrap();
        assert!(
            used_bytes(&c).unwrap() > 2 * 1024 * 1024,
            "test needs more than 2 MB of data"
        );
        let rep = enforce_retention(&mut c, 0, None, Some(1)).unwrap();
        assert!(rep.deleted_by_size > 0);
        assert!(
            used_bytes(&c).unwrap() <= 1024 * 1024,
            "used {}",
            used_bytes(&c).unwrap()
        );
        let (n, max_ts): (i64, i64) = c
            .query_row("SELECT count(*), max(ts_us) FROM queries", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!(max_ts, 1_000_000 + 11_999, "the newest row survives");
        assert_eq!(n as u64 + rep.deleted_by_size, 12_000);
        let min_ts: i64 = c
            .query_row("SELECT min(ts_us) FROM queries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(min_ts, 1_000_000 + 12_000 - n, "only the oldest rows went");
        // the file shrank too (auto_vacuum = INCREMENTAL)
        let file = std::fs::metadata(dir.path().join("q.db")).unwrap().len();
        assert!(file <= 1024 * 1024 + 64 * 1024, "file is {file} bytes");
    }

    #[test]
    fn corrupt_file_gives_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.db");
        std::fs::write(&p, vec![b'x'; 8192]).unwrap();
        let e = open_for_writing(&p).unwrap_err();
        assert!(e.to_string().contains("not a database"), "{e}");
        // the file was not touched
        assert_eq!(std::fs::read(&p).unwrap(), vec![b'x'; 8192]);
    }
}
