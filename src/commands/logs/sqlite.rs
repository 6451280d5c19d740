//! `dnsward logs` over the SQLite store (`querylog::read::sqlite`): `tail` (through the
//! `client_hours` id ranges for `--client`) and `export`; `top` and `clients` are the
//! library's.

use std::io::Write;
use std::path::Path;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::csv_export::CsvExport;
use super::follow::{print_latest, Follow};
use super::{run_on, ExportFormat, Filters, LogStore, LogsCommand, LogsError};
use crate::querylog::event::LogRow;
use crate::querylog::read::sqlite::{latest_rows, where_clause, ReadError, SqliteStore};
use crate::querylog::read::{sqlite_reports, SuspiciousClient, TopReport, CSV_HEADER};
use crate::querylog::sinks::sqlite::{row_to_logrow, COLUMNS};

/// Run one `dnsward logs` subcommand against `db`, writing to `out`.
pub fn run_logs(db: &Path, cmd: LogsCommand, out: &mut dyn Write) -> Result<(), LogsError> {
    let store = SqliteStore::open(db)?;
    if let LogsCommand::InitClickhouse { .. } = cmd {
        return Err(LogsError::InvalidArgument(
            "init-clickhouse works on [querylog] clickhouse, not on SQLite".into(),
        ));
    }
    run_on(&store, cmd, out)
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
            (since, crate::timefmt::now_us()),
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
