//! The [`LogReader`] of the SQLite store (`tail` and `export` in `sqlite_rows.rs`, `top` and
//! `clients` in `sqlite_reports.rs`) and the dashboard's reads: the timeline from the `minute_counts` rollup
//! and the blocked rows' partial index, a client's rows through its `client_hours` id ranges,
//! a name's rows and searches over the time index, each within a window and a row limit.

use std::io::Write;

use rusqlite::types::Value;
use rusqlite::OptionalExtension;

use super::sqlite::{client_id_ranges, where_clause, SqliteStore};
use super::sqlite_reports;
use super::store::{ClientsQuery, Cursor, ExportQuery, LogReader, TailQuery, TopQuery};
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

    fn timeline(&self, w: &Window, group: Option<&str>) -> Result<Timeline, LogsError> {
        let run = || -> rusqlite::Result<Timeline> {
            let gc = if group.is_some() {
                " AND client_group = ?3"
            } else {
                ""
            };
            let mut p = vec![
                Value::Integer(w.since / MINUTE_US),
                Value::Integer(w.until / MINUTE_US),
            ];
            p.extend(group.map(|g| Value::Text(g.to_string())));
            let counts: Vec<(i64, bool, u64)> = self
                .conn
                .prepare(&format!(
                    "SELECT minute, action = 'blocked', sum(n) FROM minute_counts
                     WHERE minute >= ?1 AND minute < ?2{gc} GROUP BY 1, 2"
                ))?
                .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                    Ok((r.get::<_, i64>(0)? * MINUTE_US, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut p = vec![
                Value::Integer(w.since),
                Value::Integer(w.until),
                Value::Integer(w.bucket),
            ];
            let gc = if let Some(g) = group {
                p.push(Value::Text(g.to_string()));
                " AND client_group = ?4"
            } else {
                ""
            };
            let blocked: Vec<(i64, Option<String>, Option<String>, u64)> = self
                .conn
                .prepare(&format!(
                    "SELECT ?1 + (ts_us - ?1) / ?3 * ?3, category, list, count(*)
                     FROM queries INDEXED BY queries_blocked_ts
                     WHERE action = 'blocked' AND ts_us >= ?1 AND ts_us < ?2{gc}
                     GROUP BY 1, 2, 3"
                ))?
                .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?
                .collect::<Result<_, _>>()?;
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
