//! `dnsward logs ... --source clickhouse`: the same commands and the same output as over
//! SQLite (`format.rs` prints both), from the fleet's ClickHouse table read through
//! `querylog::read::clickhouse`.

use std::io::Write;
use std::time::Duration;

use super::follow::{print_latest, Follow};
use super::{run_on, ExportFormat, Filters, LogStore, LogsCommand, LogsError};
use crate::querylog::clickhouse_client::{ClickhouseTarget, Client};
use crate::querylog::read::clickhouse::{keep, ChReader, ChRow};
use crate::querylog::read::{write_csv_line, SuspiciousClient, TopReport, CSV_HEADER};
use crate::querylog::QueryLogConfig;

/// Queries of `dnsward logs` may take this long.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

/// Run one `dnsward logs` subcommand on `[querylog] clickhouse`, `init-clickhouse` included.
pub(super) fn run_logs(
    cfg: &QueryLogConfig,
    cmd: LogsCommand,
    out: &mut dyn Write,
) -> Result<(), LogsError> {
    let target = ClickhouseTarget::from_config(cfg)?.ok_or_else(|| {
        LogsError::InvalidArgument("no [querylog] clickhouse is configured".into())
    })?;
    let client = Client::new(target, QUERY_TIMEOUT)?;
    if let LogsCommand::InitClickhouse { ttl_days } = cmd {
        return init_schema(&client, ttl_days, out);
    }
    run_on(&ChReader::connect(client)?, cmd, out)
}

/// `init-clickhouse`: create the schema and say what was created.
fn init_schema(client: &Client, ttl_days: u32, out: &mut dyn Write) -> Result<(), LogsError> {
    let (v, stmts) = client.init_schema(ttl_days)?;
    writeln!(
        out,
        "created {} and its {} per-minute rollups on ClickHouse {}.{}{}",
        client.target.table_ref(),
        stmts
            .iter()
            .filter(|s| s.contains("MATERIALIZED VIEW"))
            .count(),
        v.major,
        v.minor,
        if v.is_legacy() {
            " (before 19.6: no TTL, client as FixedString(16))"
        } else {
            ""
        }
    )?;
    writeln!(
        out,
        "created the alert history {} and {}",
        crate::alerts::history_ch::alerts_table(&client.target),
        crate::alerts::history_ch::deliveries_table(&client.target)
    )?;
    Ok(())
}

impl LogStore for ChReader {
    fn tail(
        &self,
        limit: usize,
        since: Option<i64>,
        f: &Filters,
        json: bool,
        follow: Option<Follow>,
        out: &mut dyn Write,
    ) -> Result<(), LogsError> {
        let w = self.where_clause(f, since, None);
        // With --ref the hash is checked here, so the limit too.
        let sql_limit = if f.reference.is_some() {
            String::new()
        } else {
            format!(" LIMIT {limit}")
        };
        let mut rows = self.rows(
            &format!(
                "SELECT {} FROM {} WHERE {w} ORDER BY ts_us DESC{sql_limit}",
                self.row_columns(),
                self.table()
            ),
            f,
        )?;
        rows.truncate(limit);
        rows.reverse();
        print_latest(&rows, json, follow.is_some(), out)?;
        let Some(follow) = follow else {
            return Ok(());
        };
        // Follow by time: rows that arrive later with an older time than the last shown
        // (another resolver's late batch) are not shown.
        let mut last = match rows.last() {
            Some(r) => r.ts_us,
            None => {
                let t = self
                    .client
                    .query(&format!("SELECT max(ts_us) FROM {}", self.table()), &[])?;
                t.trim().parse().unwrap_or(0)
            }
        };
        follow.print_new(json, out, || {
            let new = self.rows(
                &format!(
                    "SELECT {} FROM {} WHERE {w} AND ts_us > {last} ORDER BY ts_us LIMIT 10000",
                    self.row_columns(),
                    self.table()
                ),
                f,
            )?;
            if let Some(l) = new.last() {
                last = l.ts_us;
            }
            Ok(new)
        })
    }

    /// Streams: rows are written as they arrive, never all held.
    fn export(
        &self,
        format: ExportFormat,
        since: Option<i64>,
        until: Option<i64>,
        f: &Filters,
        out: &mut dyn Write,
    ) -> Result<(), LogsError> {
        let w = self.where_clause(f, since, until);
        let sql = format!(
            "SELECT {} FROM {} WHERE {w} ORDER BY ts_us",
            self.row_columns(),
            self.table()
        );
        if format == ExportFormat::Csv {
            writeln!(out, "{CSV_HEADER}")?;
        }
        let mut out = std::io::BufWriter::with_capacity(256 * 1024, out);
        let mut line = String::new();
        self.stream(&sql, |r: ChRow| {
            let r = r.into_logrow().map_err(|e| self.bad(e))?;
            if !keep(&r, f) {
                return Ok(());
            }
            match format {
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

    fn top(
        &self,
        since: i64,
        now: i64,
        limit: usize,
        group: Option<&str>,
    ) -> Result<TopReport, LogsError> {
        self.read_top(since, now, limit, group)
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
        self.read_suspicious_clients(
            (since, crate::timefmt::now_us()),
            min_blocked,
            min_domains,
            categories,
            limit,
            group,
        )
    }
}
