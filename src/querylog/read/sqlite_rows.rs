//! `tail`, `tail -f` and `export` over the SQLite store: the latest rows (through the
//! `client_hours` id ranges for one client), the rows after an id, and every matching row
//! streamed in time order (CSV straight from the rows, [`CsvExport`]).

use std::io::Write;

use rusqlite::types::Value;

use super::csv_export::CsvExport;
use super::sqlite::{latest_rows, where_clause, ReadError, SqliteStore};
use super::store::{Cursor, ExportFormat, ExportQuery, TailQuery};
use super::CSV_HEADER;
use crate::querylog::event::LogRow;
use crate::querylog::sinks::sqlite::{row_to_logrow, COLUMNS};

/// Rows `tail -f` reads per poll at most.
const FOLLOW_ROWS: i64 = 10_000;

impl SqliteStore {
    /// The latest rows, oldest first, and the id of the last (or of the newest row in the
    /// store when none matches).
    pub(super) fn read_latest(&self, q: &TailQuery) -> Result<(Vec<LogRow>, Cursor), ReadError> {
        let mut rows = latest_rows(&self.conn, q.limit, q.since, &q.filters)?;
        rows.reverse();
        let last_id = match rows.last() {
            Some(r) => r.1,
            None => self
                .conn
                .query_row("SELECT coalesce(max(id), 0) FROM queries", [], |r| r.get(0))?,
        };
        Ok((rows.into_iter().map(|(r, _)| r).collect(), Cursor(last_id)))
    }

    /// Matching rows with an id after the cursor's, in id order.
    pub(super) fn read_newer(
        &self,
        q: &TailQuery,
        after: &mut Cursor,
    ) -> Result<Vec<LogRow>, ReadError> {
        let (w, mut p) = where_clause(&q.filters, q.since, None);
        p.push(Value::Integer(after.0));
        let idx = p.len();
        let sql = format!(
            "SELECT {COLUMNS}, id FROM queries WHERE {w} AND id > ?{idx} ORDER BY id LIMIT {FOLLOW_ROWS}"
        );
        let new: Vec<(LogRow, i64)> = self
            .conn
            .prepare_cached(&sql)?
            .query_map(rusqlite::params_from_iter(p.iter()), |r| {
                Ok((row_to_logrow(r)?, r.get(18)?))
            })?
            .collect::<Result<_, _>>()?;
        if let Some(l) = new.last() {
            after.0 = l.1;
        }
        Ok(new.into_iter().map(|(r, _)| r).collect())
    }

    /// Every matching row, oldest first, to `out` (buffered: stdout is line-buffered, and one
    /// write per row would cap the export rate).
    pub(super) fn write_export(
        &self,
        q: &ExportQuery,
        out: &mut dyn Write,
    ) -> Result<(), ReadError> {
        let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
        let out: &mut dyn Write = &mut out;
        let (w, p) = where_clause(&q.filters, q.since, q.until);
        let sql = format!("SELECT {COLUMNS} FROM queries WHERE {w} ORDER BY ts_us, id");
        let mut st = self.conn.prepare(&sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
        match q.format {
            // straight from the rows: the LogRow path halves the export rate
            ExportFormat::Csv => {
                writeln!(out, "{CSV_HEADER}")?;
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
}
