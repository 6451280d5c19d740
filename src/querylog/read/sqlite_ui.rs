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

    /// The blocked rows through the blocked rows' name index (the whole window: only that
    /// name's rows are read); the others by reading the scan range ([`scan_range`]) in table
    /// order (there is no name index over all rows: it would cost every insert).
    fn domain_rows(&self, qname: &str, w: &Window) -> Result<Rows, LogsError> {
        let run = || -> rusqlite::Result<Rows> {
            let mut rows: Vec<Slim> = self
                .conn
                .prepare(&format!(
                    "SELECT {SLIM_COLUMNS} FROM queries INDEXED BY queries_blocked_qname
                     WHERE action = 'blocked' AND qname = ?3 AND ts_us >= ?1 AND ts_us < ?2
                     ORDER BY ts_us DESC, id DESC LIMIT ?4"
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

    /// Newest first, in slices of the window ([`slice_start`]), until the page is full.
    fn search(&self, s: &Search) -> Result<Vec<LogRow>, LogsError> {
        search_in_slices(&self.conn, s).map_err(|e| self.failed(e))
    }
}

/// A search's first slice holds the window's newest rows, as many as the page asks for (its
/// offset and limit) and at least this many; each next one twice as many, up to
/// [`SLICE_ROWS_MAX`]: a search that fills its page from the newest rows reads few, a
/// selective one reads the window in large slices.
const SLICE_ROWS_FIRST: i64 = 256;
const SLICE_ROWS_MAX: i64 = 262_144;

/// Where the slice of the newest `n` rows in `[since, upper)` starts: the time of the `n`-th
/// newest (the slice is every row from that time on, so it never splits a time), or `since`
/// when fewer are left. From the time index alone (stepping over entries, no row read).
fn slice_start(
    conn: &rusqlite::Connection,
    since: i64,
    upper: i64,
    n: i64,
) -> rusqlite::Result<i64> {
    let nth: Option<i64> = conn
        .prepare_cached(
            "SELECT ts_us FROM queries INDEXED BY queries_ts
             WHERE ts_us >= ?1 AND ts_us < ?2 ORDER BY ts_us DESC LIMIT 1 OFFSET ?3",
        )?
        .query_row(rusqlite::params![since, upper, n - 1], |r| r.get(0))
        .optional()?;
    Ok(nth.unwrap_or(since))
}

/// A search's WHERE (every filter; its window when `window`) and parameters.
fn search_where(s: &Search, window: bool) -> (String, Vec<Value>) {
    let (since, until) = if window {
        (Some(s.since), Some(s.until))
    } else {
        (None, None)
    };
    let (mut w, mut p) = where_clause(&s.filters, since, until);
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
    (w, p)
}

/// A search's page, the window read newest first in slices ([`slice_start`]). Within a slice
/// the time index is walked oldest first and the matches sorted (`+` keeps the index from
/// giving the order): each row's table lookup is then the next row of the table, where
/// walking newest first made every lookup a descent from the root (a selective search over
/// an hour took 2.6 times as long). The slices cover disjoint times, newest first, so their
/// rows in slice order are the window's in the page's order (`ts_us DESC, id DESC`).
fn search_in_slices(conn: &rusqlite::Connection, s: &Search) -> rusqlite::Result<Vec<LogRow>> {
    // the slice's times alone bound the index range (a slice lies inside the window)
    let (w, p) = search_where(s, false);
    let n = p.len();
    let mut st = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM queries INDEXED BY queries_ts
         WHERE ts_us >= ?{lo} AND ts_us < ?{hi} AND {w}
         ORDER BY +ts_us DESC, +id DESC LIMIT ?{lim}",
        lo = n + 1,
        hi = n + 2,
        lim = n + 3,
    ))?;
    let (mut skip, mut want) = (s.offset, s.limit.min(SEARCH_ROWS));
    let mut out = Vec::with_capacity(want);
    let first =
        ((skip + want).min(i64::MAX as usize) as i64).clamp(SLICE_ROWS_FIRST, SLICE_ROWS_MAX);
    let (mut upper, mut slice) = (s.until, first);
    while want > 0 && upper > s.since {
        let lower = slice_start(conn, s.since, upper, slice)?;
        let mut q = p.clone();
        let limit = (skip + want).min(i64::MAX as usize) as i64;
        q.extend([lower, upper, limit].map(Value::Integer));
        let mut rows = st.query(rusqlite::params_from_iter(q.iter()))?;
        while let Some(r) = rows.next()? {
            if skip > 0 {
                skip -= 1;
            } else {
                out.push(row_to_logrow(r)?);
                want -= 1;
            }
        }
        upper = lower;
        slice = (slice * 2).min(SLICE_ROWS_MAX);
    }
    Ok(out)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::event::EventAction;
    use crate::querylog::read::Filters;
    use crate::querylog::sinks::sqlite::{insert_batch, open_for_writing};
    use crate::querylog::testutil::{event, logged};

    const T0: i64 = 1_714_564_800_000_000;

    /// 40,000 rows over 40 s written as the sink writes them, out of time order within
    /// each batch, some rows 20 s late, 3,000 rows at one time (more than a first slice);
    /// 40 names (one rare), 10 clients, every 7th row blocked.
    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.db");
        let mut c = open_for_writing(&p).unwrap();
        let rows: Vec<_> = (0..40_000i64)
            .map(|i| {
                let blocked = i % 7 == 0;
                let action = if blocked {
                    EventAction::Blocked
                } else {
                    EventAction::Allowed
                };
                let name = match i {
                    _ if i % 4_999 == 3 => "rare.example".to_string(),
                    _ if blocked => format!("c2-{}.evil.example", i % 3),
                    _ => format!("n{}.example", (i * 7_919) % 37),
                };
                let mut e = event(&name, action);
                e.ts_us = match i {
                    _ if i % 997 == 5 => T0 + i * 1_000 - 20_000_000,
                    20_000..23_000 => T0 + 20_000_000,
                    _ => T0 + (i ^ 0x3f) * 1_000,
                };
                e.client = format!("10.0.0.{}:5300", i % 10).parse().unwrap();
                e.qtype = if i % 5 == 0 { "AAAA" } else { "A" }.into();
                logged(e)
            })
            .collect();
        for batch in rows.chunks(4_096) {
            insert_batch(&mut c, batch).unwrap();
        }
        drop(c);
        let s = SqliteStore::open(&p).unwrap();
        (dir, s)
    }

    /// The page as one plain query over every row would give it.
    fn plain(conn: &rusqlite::Connection, s: &Search) -> Vec<LogRow> {
        let (w, mut p) = search_where(s, true);
        p.push(Value::Integer(s.limit.min(SEARCH_ROWS) as i64));
        p.push(Value::Integer(s.offset as i64));
        let n = p.len();
        conn.prepare(&format!(
            "SELECT {COLUMNS} FROM queries NOT INDEXED WHERE {w}
             ORDER BY ts_us DESC, id DESC LIMIT ?{} OFFSET ?{n}",
            n - 1
        ))
        .unwrap()
        .query_map(rusqlite::params_from_iter(p.iter()), row_to_logrow)
        .unwrap()
        .map(Result::unwrap)
        .collect()
    }

    #[test]
    fn searches_in_slices_give_the_rows_of_a_plain_scan() {
        let (_dir, st) = store();
        let all = |f: Filters| Search {
            filters: f,
            since: T0 - 60_000_000,
            until: T0 + 60_000_000,
            limit: 1_000,
            ..Search::default()
        };
        let name = |n: &str| Search {
            qname: Some(n.into()),
            ..all(Filters::default())
        };
        let searches = [
            Search {
                limit: 50,
                ..all(Filters::default())
            },
            name("rare.example"),
            name("n3.example"),
            Search {
                offset: 700,
                ..name("n5.example")
            },
            Search {
                offset: 30,
                limit: 40,
                ..all(Filters {
                    client: Some("10.0.0.3".into()),
                    ..Filters::default()
                })
            },
            all(Filters {
                action: Some(EventAction::Blocked),
                qname_suffix: Some("evil.example".into()),
                ..Filters::default()
            }),
            Search {
                qtype: Some("AAAA".into()),
                offset: 2_500,
                ..all(Filters::default())
            },
            // cut at the time 3,000 rows share, at either end
            Search {
                since: T0 + 20_000_000,
                until: T0 + 25_000_000,
                offset: 2_100,
                ..all(Filters::default())
            },
            Search {
                since: T0 + 10_000_000,
                until: T0 + 20_000_001,
                ..name("n1.example")
            },
            Search {
                since: T0 + 50_000_000,
                ..all(Filters::default())
            },
            // a slice that ends inside the 2,998 rows at one time takes them all, the next
            // none of them
            Search {
                since: T0 + 19_000_000,
                until: T0 + 21_000_000,
                qtype: Some("AAAA".into()),
                ..all(Filters::default())
            },
            Search {
                limit: 10,
                offset: 3,
                ..name("n2.example")
            },
        ];
        for s in &searches {
            let want = plain(&st.conn, s);
            assert_eq!(st.search(s).unwrap(), want, "{s:?}");
        }
        assert_eq!(plain(&st.conn, &name("rare.example")).len(), 9);
        // a full page from inside the 2,998 rows at one time
        assert_eq!(plain(&st.conn, &searches[7]).len(), 1_000);
    }

    #[test]
    fn a_names_page_has_the_rows_of_a_plain_scan() {
        let (_dir, st) = store();
        let key = |r: &Slim| {
            (
                r.ts_us,
                r.client.clone(),
                r.qname.clone(),
                r.blocked,
                r.category.clone(),
                r.list.clone(),
                r.rule.clone(),
            )
        };
        for (qname, since, until) in [
            ("c2-1.evil.example", T0 - 60_000_000, T0 + 60_000_000),
            ("n3.example", T0 - 60_000_000, T0 + 60_000_000),
            ("rare.example", T0, T0 + 30_000_000),
            ("c2-2.evil.example", T0 + 20_000_000, T0 + 20_000_001),
        ] {
            let w = Window::new(since, until, 120);
            let mut got: Vec<_> = st
                .domain_rows(qname, &w)
                .unwrap()
                .rows
                .iter()
                .map(key)
                .collect();
            let mut want: Vec<_> = st
                .conn
                .prepare(&format!(
                    "SELECT {SLIM_COLUMNS} FROM queries NOT INDEXED
                     WHERE qname = ?1 AND ts_us >= ?2 AND ts_us < ?3"
                ))
                .unwrap()
                .query_map(rusqlite::params![qname, w.since, w.until], slim)
                .unwrap()
                .map(|r| key(&r.unwrap()))
                .collect();
            assert!(!want.is_empty(), "{qname}");
            got.sort();
            want.sort();
            assert_eq!(got, want, "{qname}");
        }
    }
}
