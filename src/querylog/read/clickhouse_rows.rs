//! `tail`, `tail -f` and `export` over ClickHouse: the same rows as over SQLite, in time
//! order (the table has no order of insertion), `--ref` checked here ([`keep`]).

use std::io::Write;

use super::clickhouse::{keep, ChReader, ChRow};
use super::store::{Cursor, ExportFormat, ExportQuery, TailQuery};
use super::{write_csv_line, LogsError, CSV_HEADER};
use crate::querylog::event::LogRow;

impl ChReader {
    /// The latest rows, oldest first, and the time of the last (or of the newest row in the
    /// table when none matches).
    pub(super) fn read_latest(&self, q: &TailQuery) -> Result<(Vec<LogRow>, Cursor), LogsError> {
        let f = &q.filters;
        let w = self.where_clause(f, q.since, None);
        // With --ref the hash is checked here, so the limit too.
        let sql_limit = if f.reference.is_some() {
            String::new()
        } else {
            format!(" LIMIT {}", q.limit)
        };
        let mut rows = self.rows(
            &format!(
                "SELECT {} FROM {} WHERE {w} ORDER BY ts_us DESC{sql_limit}",
                self.row_columns(),
                self.table()
            ),
            f,
        )?;
        rows.truncate(q.limit);
        rows.reverse();
        let last = match rows.last() {
            Some(r) => r.ts_us,
            None => {
                let t = self
                    .client
                    .query(&format!("SELECT max(ts_us) FROM {}", self.table()), &[])?;
                t.trim().parse().unwrap_or(0)
            }
        };
        Ok((rows, Cursor(last)))
    }

    /// Matching rows after the cursor's time. Rows that arrive later with an older time than
    /// the last shown (another resolver's late batch) are not shown.
    pub(super) fn read_newer(
        &self,
        q: &TailQuery,
        after: &mut Cursor,
    ) -> Result<Vec<LogRow>, LogsError> {
        let w = self.where_clause(&q.filters, q.since, None);
        let new = self.rows(
            &format!(
                "SELECT {} FROM {} WHERE {w} AND ts_us > {} ORDER BY ts_us LIMIT 10000",
                self.row_columns(),
                self.table(),
                after.0
            ),
            &q.filters,
        )?;
        if let Some(l) = new.last() {
            after.0 = l.ts_us;
        }
        Ok(new)
    }

    /// Streams: rows are written as they arrive, never all held.
    pub(super) fn write_export(
        &self,
        q: &ExportQuery,
        out: &mut dyn Write,
    ) -> Result<(), LogsError> {
        let f = &q.filters;
        let w = self.where_clause(f, q.since, q.until);
        let sql = format!(
            "SELECT {} FROM {} WHERE {w} ORDER BY ts_us",
            self.row_columns(),
            self.table()
        );
        if q.format == ExportFormat::Csv {
            writeln!(out, "{CSV_HEADER}")?;
        }
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
        let mut line = String::new();
        self.stream(&sql, |r: ChRow| {
            let r = r.into_logrow().map_err(|e| self.bad(e))?;
            if !keep(&r, f) {
                return Ok(());
            }
            match q.format {
                ExportFormat::Csv => {
                    write_csv_line(&mut line, &r);
                    out.write_all(line.as_bytes())?;
                }
                ExportFormat::Jsonl => {
                    serde_json::to_writer(&mut out, &r).map_err(std::io::Error::from)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(())
        })?;
        out.flush()?;
        Ok(())
    }
}
