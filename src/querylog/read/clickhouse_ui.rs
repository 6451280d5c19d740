//! The [`LogReader`] of ClickHouse (`tail` and `export` in `clickhouse_rows.rs`, `top` and
//! `clients` in `clickhouse_reports.rs`) and the dashboard's reads: the same rows and counts as `sqlite_ui.rs` selects,
//! each query narrowed by the table's sort key (`time`) and a row limit.

use std::io::Write;

use serde::Deserialize;

use super::clickhouse::{client_text, lit, none_if_empty, ChReader};
use super::store::{ClientsQuery, Cursor, ExportQuery, LogReader, Scope, TailQuery, TopQuery};
use super::ui::{Rows, Search, Slim, Timeline, Window, DRILL_ROWS, SEARCH_ROWS};
use super::{LogsError, SuspiciousClient, TopReport};
use crate::querylog::event::LogRow;

#[derive(Deserialize)]
struct ChSlim {
    ts_us: i64,
    client_text: String,
    client_hash: u64,
    qname: String,
    blocked: u8,
    category: String,
    list: String,
    rule: String,
    client_name: String,
    client_group: String,
}

impl ChSlim {
    fn into_slim(self) -> Slim {
        Slim {
            ts_us: self.ts_us,
            client: client_text(&self.client_text, self.client_hash),
            qname: self.qname,
            blocked: self.blocked != 0,
            category: none_if_empty(self.category),
            list: none_if_empty(self.list),
            rule: none_if_empty(self.rule),
            client_name: none_if_empty(self.client_name),
            group: none_if_empty(self.client_group),
        }
    }
}

impl ChReader {
    fn window_conds(w: &Window) -> String {
        let mut c = Self::time_conds(Some(w.since), Some(w.until));
        // the sort key's upper bound too
        c.push(format!(
            "time < toDateTime({})",
            w.until.div_euclid(1_000_000) + 1
        ));
        c.join(" AND ")
    }

    fn slim_rows(&self, cond: &str, w: &Window) -> Result<Rows, LogsError> {
        let mut rows = Vec::new();
        self.stream(
            &format!(
                "SELECT ts_us, {} AS client_text, client_hash, qname, action = 'blocked' AS blocked,
                        category, list, rule, client_name, client_group
                 FROM {} WHERE {} AND {cond} ORDER BY ts_us DESC LIMIT {DRILL_ROWS}",
                self.client_expr(),
                self.table(),
                Self::window_conds(w)
            ),
            |r: ChSlim| {
                rows.push(r.into_slim());
                Ok(())
            },
        )?;
        Ok(Rows {
            rows,
            truncated: false,
        })
    }

    /// The per-minute rollup `init-clickhouse` creates beside the table.
    fn minute_actions(&self) -> String {
        format!("{}_minute_actions", self.table())
    }

    /// The rollup's minutes of a window (its bounds are whole minutes).
    fn minute_conds(w: &Window) -> String {
        format!(
            "minute >= toDateTime({}) AND minute < toDateTime({})",
            w.since.div_euclid(1_000_000).max(0),
            w.until.div_euclid(1_000_000).max(0)
        )
    }

    /// The rollup's rows of the window, per minute: what `Timeline::build` takes.
    fn timeline_from_rollup(
        &self,
        w: &Window,
        resolver: Option<&str>,
    ) -> Result<Timeline, LogsError> {
        #[derive(Deserialize)]
        struct M {
            m: i64,
            blocked: u8,
            category: String,
            list: String,
            n: u64,
        }
        let (mut counts, mut blocked) = (Vec::new(), Vec::new());
        self.stream(
            &format!(
                "SELECT toUInt32(minute) AS m, action = 'blocked' AS blocked, category, list,
                        sum(queries) AS n
                 FROM {} WHERE {}{} GROUP BY m, blocked, category, list",
                self.minute_actions(),
                Self::minute_conds(w),
                Self::scope_cond(None, resolver)
            ),
            |r: M| {
                let t = r.m * 1_000_000;
                counts.push((t, r.blocked != 0, r.n));
                if r.blocked != 0 {
                    blocked.push((t, none_if_empty(r.category), none_if_empty(r.list), r.n));
                }
                Ok(())
            },
        )?;
        Ok(Timeline::build(w, counts, blocked))
    }

    /// Every row of the window, counted per bucket.
    fn timeline_from_rows(&self, w: &Window, scope: &Scope) -> Result<Timeline, LogsError> {
        let t = self.table();
        let conds = Self::window_conds(w);
        let gc = Self::scope_cond(scope.group.as_deref(), scope.resolver.as_deref());
        let bucket = format!(
            "intDiv(ts_us - {s}, {b}) * {b} + {s}",
            s = w.since,
            b = w.bucket
        );
        #[derive(Deserialize)]
        struct C {
            t: i64,
            blocked: u8,
            n: u64,
        }
        let mut counts = Vec::new();
        self.stream(
            &format!(
                "SELECT {bucket} AS t, action = 'blocked' AS blocked, count() AS n
                 FROM {t} WHERE {conds}{gc} GROUP BY t, blocked"
            ),
            |r: C| {
                counts.push((r.t, r.blocked != 0, r.n));
                Ok(())
            },
        )?;
        #[derive(Deserialize)]
        struct B {
            t: i64,
            category: String,
            list: String,
            n: u64,
        }
        let mut blocked = Vec::new();
        self.stream(
            &format!(
                "SELECT {bucket} AS t, category, list, count() AS n
                 FROM {t} WHERE {conds}{gc} AND action = 'blocked' GROUP BY t, category, list"
            ),
            |r: B| {
                blocked.push((r.t, none_if_empty(r.category), none_if_empty(r.list), r.n));
                Ok(())
            },
        )?;
        Ok(Timeline::build(w, counts, blocked))
    }
}

impl LogReader for ChReader {
    fn latest(&self, q: &TailQuery) -> Result<(Vec<LogRow>, Cursor), LogsError> {
        self.read_latest(q)
    }

    fn newer(&self, q: &TailQuery, after: &mut Cursor) -> Result<Vec<LogRow>, LogsError> {
        self.read_newer(q, after)
    }

    fn export(&self, q: &ExportQuery, out: &mut dyn Write) -> Result<(), LogsError> {
        self.write_export(q, out)
    }

    fn top(&self, q: &TopQuery) -> Result<TopReport, LogsError> {
        self.read_top(q)
    }

    fn suspicious_clients(&self, q: &ClientsQuery) -> Result<Vec<SuspiciousClient>, LogsError> {
        self.read_suspicious_clients(q)
    }

    /// From the per-minute rollup when it is there, else from the rows.
    fn resolvers(&self, w: &Window) -> Result<Vec<String>, LogsError> {
        #[derive(Deserialize)]
        struct R {
            instance: String,
        }
        let read = |from: String, conds: String| {
            let mut v = Vec::new();
            self.stream(
                &format!("SELECT DISTINCT instance FROM {from} WHERE {conds} ORDER BY instance"),
                |r: R| {
                    v.push(r.instance);
                    Ok(())
                },
            )
            .map(|()| v)
        };
        rollup_or_rows(
            || read(self.minute_actions(), Self::minute_conds(w)),
            || read(self.table(), Self::window_conds(w)),
        )
    }

    /// Without a group scope from the per-minute rollup `<table>_minute_actions` (per minute,
    /// resolver, action, category and list), as the SQLite store reads `minute_counts`; it
    /// has no group, so a group's timeline (or a table without the rollup) reads the rows.
    fn timeline(&self, w: &Window, scope: &Scope) -> Result<Timeline, LogsError> {
        if scope.group.is_some() {
            return self.timeline_from_rows(w, scope);
        }
        rollup_or_rows(
            || self.timeline_from_rollup(w, scope.resolver.as_deref()),
            || self.timeline_from_rows(w, scope),
        )
    }

    fn client_rows(&self, client: &str, w: &Window) -> Result<Rows, LogsError> {
        self.slim_rows(&self.client_cond(client), w)
    }

    fn domain_rows(&self, qname: &str, w: &Window) -> Result<Rows, LogsError> {
        self.slim_rows(&format!("qname = {}", lit(qname)), w)
    }

    fn search(&self, s: &Search) -> Result<Vec<LogRow>, LogsError> {
        let mut w = self.where_clause(&s.filters, Some(s.since), Some(s.until));
        for (col, v) in [
            ("qname", &s.qname),
            ("qtype", &s.qtype),
            ("rcode", &s.rcode),
            ("list", &s.list),
            ("instance", &s.resolver),
        ] {
            if let Some(v) = v {
                w.push_str(&format!(" AND {col} = {}", lit(v)));
            }
        }
        self.rows(
            &format!(
                "SELECT {} FROM {} WHERE {w} ORDER BY ts_us DESC LIMIT {}, {}",
                self.row_columns(),
                self.table(),
                s.offset,
                s.limit.min(SEARCH_ROWS)
            ),
            &s.filters,
        )
    }
}

/// `rollup()`, or `rows()` when ClickHouse refuses the rollup (a table created without its
/// views): both give the same counts.
fn rollup_or_rows<T>(
    rollup: impl FnOnce() -> Result<T, LogsError>,
    rows: impl FnOnce() -> Result<T, LogsError>,
) -> Result<T, LogsError> {
    match rollup() {
        Err(LogsError::Clickhouse(e)) if e.is_refusal() => rows(),
        r => r,
    }
}
