//! The [`LogReader`] of the SQLite store (`tail` and `export` in `sqlite_rows.rs`, `top` and
//! `clients` in `sqlite_reports.rs`) and the dashboard's reads: the timeline and the resolvers
//! from the `minute_counts` rollup alone, a client's rows through its `client_hours` id
//! ranges, a name's rows and searches over the time index, each within a window and a row
//! limit.

use std::io::Write;

use rusqlite::types::Value;
use rusqlite::OptionalExtension;

use super::sqlite::{client_id_ranges, where_clause, SqliteStore};
use super::sqlite_reports::{self, scope_cond};
use super::store::{ClientsQuery, Cursor, ExportQuery, LogReader, Scope, TailQuery, TopQuery};
use super::ui::{Rows, Search, Slim, Timeline, Window, DRILL_ROWS, NAME_SCAN_ROWS, SEARCH_ROWS};
use super::{LogsError, SuspiciousClient, TopReport};
use crate::querylog::event::LogRow;
use crate::querylog::sinks::sqlite::{row_to_logrow, COLUMNS, MINUTE_US};

const SLIM_COLUMNS: &str =
    "ts_us, client, qname, action = 'blocked', category, list, rule, client_name, client_group";

fn slim(r: &rusqlite::Row<'_>) -> rusqlite::Result<Slim> {
    Ok(Slim {
        ts_us: r.get(0)?,
        client: r.get(1)?,
        qname: r.get(2)?,
        blocked: r.get(3)?,
        category: r.get(4)?,
        list: r.get(5)?,
        rule: r.get(6)?,
        client_name: r.get(7)?,
        group: r.get(8)?,
    })
}

impl LogReader for SqliteStore {
    fn latest(&self, q: &TailQuery) -> Result<(Vec<LogRow>, Cursor), LogsError> {
        self.read_latest(q).map_err(|e| self.failed(e))
    }

    fn newer(&self, q: &TailQuery, after: &mut Cursor) -> Result<Vec<LogRow>, LogsError> {
        self.read_newer(q, after).map_err(|e| self.failed(e))
    }

    fn export(&self, q: &ExportQuery, out: &mut dyn Write) -> Result<(), LogsError> {
        self.write_export(q, out).map_err(|e| self.failed(e))
    }

    fn top(&self, q: &TopQuery) -> Result<TopReport, LogsError> {
        sqlite_reports::top(&self.conn, q).map_err(|e| self.failed(e))
    }

    fn suspicious_clients(&self, q: &ClientsQuery) -> Result<Vec<SuspiciousClient>, LogsError> {
        sqlite_reports::suspicious_clients(&self.conn, q).map_err(|e| self.failed(e))
    }

    fn resolvers(&self, w: &Window) -> Result<Vec<String>, LogsError> {
        let run = || -> rusqlite::Result<Vec<String>> {
            self.conn
                .prepare_cached(
                    "SELECT DISTINCT server FROM minute_counts
                     WHERE minute >= ?1 AND minute < ?2 ORDER BY 1",
                )?
                .query_map([w.since / MINUTE_US, w.until / MINUTE_US], |r| r.get(0))?
                .collect()
        };
        run().map_err(|e| self.failed(e))
    }

    /// From `minute_counts` alone: per minute, action, category and list (the window's
    /// minutes are whole), so a day's timeline reads some thousand rollup rows, not the rows.
    fn timeline(&self, w: &Window, scope: &Scope) -> Result<Timeline, LogsError> {
        let run = || -> rusqlite::Result<Timeline> {
            let mut p = vec![
                Value::Integer(w.since / MINUTE_US),
                Value::Integer(w.until / MINUTE_US),
            ];
            let (sc, sv) = scope_cond(scope.group.as_deref(), scope.resolver.as_deref(), 3);
            p.extend(sv);
            let mut st = self.conn.prepare(&format!(
                "SELECT minute, action = 'blocked', category, list, sum(n) FROM minute_counts
                 WHERE minute >= ?1 AND minute < ?2{sc} GROUP BY 1, 2, 3, 4"
            ))?;
            let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
            let (mut counts, mut blocked) = (Vec::new(), Vec::new());
            while let Some(r) = rows.next()? {
                let t = r.get::<_, i64>(0)? * MINUTE_US;
                let (is_blocked, n): (bool, u64) = (r.get(1)?, r.get(4)?);
                counts.push((t, is_blocked, n));
                if is_blocked {
                    let text = |i| -> rusqlite::Result<Option<String>> {
                        Ok(Some(r.get::<_, String>(i)?).filter(|s| !s.is_empty()))
                    };
                    blocked.push((t, text(2)?, text(3)?, n));
                }
            }
            Ok(Timeline::build(w, counts, blocked))
        };
        run().map_err(|e| self.failed(e))
    }

    /// The blocked rows through the blocked rows' client index (the whole window); the others
    /// from the client's `client_hours` id ranges within the scan range ([`scan_range`]).
    fn client_rows(&self, client: &str, w: &Window) -> Result<Rows, LogsError> {
        let run = || -> rusqlite::Result<Rows> {
            let mut rows: Vec<Slim> = self
                .conn
                .prepare(&format!(
                    "SELECT {SLIM_COLUMNS} FROM queries INDEXED BY queries_blocked_client
                     WHERE client = ?1 AND action = 'blocked' AND ts_us >= ?2 AND ts_us < ?3
                     ORDER BY ts_us DESC LIMIT ?4"
                ))?
                .query_map(
                    rusqlite::params![client, w.since, w.until, DRILL_ROWS as i64],
                    slim,
                )?
                .collect::<Result<_, _>>()?;
            let (from, to, truncated) = scan_range(&self.conn, w)?;
            let mut st = self.conn.prepare(&format!(
                "SELECT {SLIM_COLUMNS} FROM queries
                 WHERE id BETWEEN ?1 AND ?2 AND client = ?3 AND ts_us >= ?4 AND ts_us < ?5
                   AND action != 'blocked'
                 ORDER BY id DESC LIMIT ?6"
            ))?;
            for (first, last) in client_id_ranges(&self.conn, client, Some(w.since))? {
                let (first, last) = (first.max(from), last.min(to));
                let left = DRILL_ROWS.saturating_sub(rows.len());
                if left == 0 || first > last {
                    continue;
                }
                let found = st.query_map(
                    rusqlite::params![first, last, client, w.since, w.until, left as i64],
                    slim,
                )?;
                for r in found {
                    rows.push(r?);
                }
            }
            rows.sort_by_key(|r| std::cmp::Reverse(r.ts_us));
            rows.truncate(DRILL_ROWS);
            Ok(Rows { rows, truncated })
        };
        run().map_err(|e| self.failed(e))
    }

    /// The blocked rows through the blocked rows' index (the whole window); the others by
    /// reading the scan range ([`scan_range`]) in table order (there is no name index over all
    /// rows: it would cost every insert).
    fn domain_rows(&self, qname: &str, w: &Window) -> Result<Rows, LogsError> {
        let run = || -> rusqlite::Result<Rows> {
            let mut rows: Vec<Slim> = self
                .conn
                .prepare(&format!(
                    "SELECT {SLIM_COLUMNS} FROM queries INDEXED BY queries_blocked_ts
                     WHERE action = 'blocked' AND ts_us >= ?1 AND ts_us < ?2 AND qname = ?3
                     ORDER BY ts_us DESC LIMIT ?4"
                ))?
                .query_map(
                    rusqlite::params![w.since, w.until, qname, DRILL_ROWS as i64],
                    slim,
                )?
                .collect::<Result<_, _>>()?;
            let (from, to, truncated) = scan_range(&self.conn, w)?;
            let others: Vec<Slim> = self
                .conn
                .prepare(&format!(
                    "SELECT {SLIM_COLUMNS} FROM queries
                     WHERE id BETWEEN ?1 AND ?2 AND ts_us >= ?3 AND ts_us < ?4 AND qname = ?5
                       AND action != 'blocked'
                     ORDER BY id DESC LIMIT ?6"
                ))?
                .query_map(
                    rusqlite::params![from, to, w.since, w.until, qname, DRILL_ROWS as i64],
                    slim,
                )?
                .collect::<Result<_, _>>()?;
            rows.extend(others);
            rows.sort_by_key(|r| std::cmp::Reverse(r.ts_us));
            rows.truncate(DRILL_ROWS);
            Ok(Rows { rows, truncated })
        };
        run().map_err(|e| self.failed(e))
    }

    fn search(&self, s: &Search) -> Result<Vec<LogRow>, LogsError> {
        let run = || -> rusqlite::Result<Vec<LogRow>> {
            let (mut w, mut p) = where_clause(&s.filters, Some(s.since), Some(s.until));
            for (col, v) in [
                ("qname", &s.qname),
                ("qtype", &s.qtype),
                ("rcode", &s.rcode),
                ("list", &s.list),
                ("server", &s.resolver),
            ] {
                if let Some(v) = v {
                    p.push(Value::Text(v.clone()));
                    w.push_str(&format!(" AND {col} = ?{}", p.len()));
                }
            }
            p.push(Value::Integer(s.limit.min(SEARCH_ROWS) as i64));
            p.push(Value::Integer(s.offset.min(i64::MAX as usize) as i64));
            let n = p.len();
            self.conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM queries INDEXED BY queries_ts WHERE {w}
                     ORDER BY ts_us DESC, id DESC LIMIT ?{} OFFSET ?{n}",
                    n - 1
                ))?
                .query_map(rusqlite::params_from_iter(p.iter()), row_to_logrow)?
                .collect()
        };
        run().map_err(|e| self.failed(e))
    }
}

/// Rows reach the store up to a few seconds out of time order (batches): id ranges found from
/// times are widened by this many ids.
const ID_SLACK: i64 = 100_000;

/// The id range a drill-down reads in table order for the rows no index covers: the window's
/// rows (found through the time index at both ends), at most [`NAME_SCAN_ROWS`] of its latest;
/// and whether that cut the window.
fn scan_range(conn: &rusqlite::Connection, w: &Window) -> rusqlite::Result<(i64, i64, bool)> {
    let edge = |sql: &str, t: i64| -> rusqlite::Result<Option<i64>> {
        conn.query_row(sql, [t], |r| r.get(0)).optional()
    };
    let Some(last) = edge(
        "SELECT id FROM queries INDEXED BY queries_ts WHERE ts_us < ?1 ORDER BY ts_us DESC LIMIT 1",
        w.until,
    )?
    else {
        return Ok((0, -1, false));
    };
    let first = edge(
        "SELECT id FROM queries INDEXED BY queries_ts WHERE ts_us >= ?1 ORDER BY ts_us LIMIT 1",
        w.since,
    )?
    .unwrap_or(last);
    let first = first - ID_SLACK;
    let to = last + ID_SLACK;
    let cut = last - NAME_SCAN_ROWS;
    Ok((first.max(cut), to, cut > first))
}
