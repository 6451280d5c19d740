//! `dnsward logs ... --source clickhouse`: the same commands and the same output as over
//! SQLite (`format.rs` prints both), from the fleet's ClickHouse table. Rows are read as
//! JSONEachRow over HTTP and turned into the same values (`LogRow`, `TopReport`,
//! `SuspiciousClient`); ties are broken in Rust by the client's text, as SQLite does. `top`
//! and `clients` are in `clickhouse_reports.rs`.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use super::follow::{print_latest, Follow};
use super::format::{write_csv_line, SuspiciousClient, TopReport, CSV_HEADER};
use super::{run_on, ExportFormat, Filters, LogStore, LogsCommand, LogsError};
use crate::querylog::clickhouse_client::{ClickhouseError, ClickhouseTarget, Client, Version};
use crate::querylog::event::{EventAction, LogRow};
use crate::querylog::QueryLogConfig;
use crate::timefmt::{format_ts_us, now_us};

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
        stmts.len().saturating_sub(2),
        v.major,
        v.minor,
        if v.is_legacy() {
            " (before 19.6: no TTL, client as FixedString(16))"
        } else {
            ""
        }
    )?;
    Ok(())
}

/// A SQL string literal.
pub(super) fn lit(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('\'');
    for c in s.chars() {
        if c == '\'' || c == '\\' {
            o.push('\\');
        }
        o.push(c);
    }
    o.push('\'');
    o
}

/// A row as selected by [`ChReader::row_columns`].
#[derive(Deserialize)]
struct ChRow {
    ts_us: i64,
    /// (aliases are visible in WHERE: `client` must stay the column)
    client_text: String,
    client_hash: u64,
    client_port: Option<u16>,
    transport: String,
    qname: String,
    qtype: String,
    rcode: String,
    action: String,
    category: String,
    list: String,
    rule: String,
    trigger: String,
    cached: u8,
    answers: Vec<String>,
    latency_us: u32,
    instance: String,
    client_name: String,
    client_group: String,
}

pub(super) fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The client's text as the other stores write it: the address (IPv4 unmapped) or `h:` token.
pub(super) fn client_text(addr: &str, hash: u64) -> String {
    if hash != 0 {
        return format!("h:{hash:016x}");
    }
    match addr.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => addr.to_string(),
    }
}

impl ChRow {
    fn into_logrow(self) -> Result<LogRow, String> {
        Ok(LogRow {
            time: format_ts_us(self.ts_us),
            ts_us: self.ts_us,
            client: client_text(&self.client_text, self.client_hash),
            client_port: self.client_port,
            transport: self.transport.parse()?,
            qname: self.qname,
            qtype: self.qtype,
            rcode: self.rcode,
            action: self.action.parse()?,
            category: none_if_empty(self.category),
            list: none_if_empty(self.list),
            rule: none_if_empty(self.rule),
            trigger: none_if_empty(self.trigger).map(|t| t.parse()).transpose()?,
            cached: self.cached != 0,
            answers: self.answers.iter().filter_map(|a| a.parse().ok()).collect(),
            latency_us: self.latency_us,
            server: self.instance,
            client_name: none_if_empty(self.client_name),
            group: none_if_empty(self.client_group),
        })
    }
}

pub(super) struct ChReader {
    client: Client,
    /// The table's `client` column is `FixedString(16)`: created on a server before 19.6,
    /// perhaps upgraded since (today's engines no longer print it with `toString`).
    fixed_client: bool,
}

/// JSON numbers, not strings, for 64-bit integers (the default quotes them).
const JSON_SETTINGS: &[(&str, &str)] = &[("output_format_json_quote_64bit_integers", "0")];

impl ChReader {
    fn connect(client: Client) -> Result<ChReader, LogsError> {
        let version: Version = client.version()?;
        let t = &client.target;
        let column = client.query(
            &format!(
                "SELECT type FROM system.columns WHERE database = {} AND table = {} AND name = 'client'",
                lit(&t.database),
                lit(&t.table)
            ),
            &[],
        )?;
        let fixed_client = match column.trim() {
            "" => version.is_legacy(),
            ty => ty == "FixedString(16)",
        };
        Ok(ChReader {
            client,
            fixed_client,
        })
    }

    pub(super) fn table(&self) -> String {
        self.client.target.table_ref()
    }

    fn bad(&self, msg: impl std::fmt::Display) -> LogsError {
        ClickhouseError::BadAnswer {
            url: self.client.target.url.clone(),
            msg: msg.to_string(),
        }
        .into()
    }

    /// The client column as text (18.16 has no IPv6 type to print).
    pub(super) fn client_expr(&self) -> &'static str {
        if self.fixed_client {
            "IPv6NumToString(client)"
        } else {
            "toString(client)"
        }
    }

    fn row_columns(&self) -> String {
        format!(
            "ts_us, {} AS client_text, client_hash, client_port, transport, qname, qtype, rcode, action, \
             category, list, rule, trigger, cached, answers, latency_us, instance, client_name, client_group",
            self.client_expr()
        )
    }

    /// `client = ...` for a client as the other stores write it.
    pub(super) fn client_cond(&self, c: &str) -> String {
        let c = c.trim();
        if let Some(h) = c.strip_prefix("h:") {
            return match u64::from_str_radix(h, 16) {
                Ok(v) => format!("client_hash = {v}"),
                Err(_) => "0".into(),
            };
        }
        let Ok(ip) = c.parse::<IpAddr>() else {
            return "0".into();
        };
        let v6 = match ip.to_canonical() {
            IpAddr::V4(a) => a.to_ipv6_mapped(),
            IpAddr::V6(a) => a,
        };
        if self.fixed_client {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02X}")).collect();
            format!("client = toFixedString(unhex('{hex}'), 16) AND client_hash = 0")
        } else {
            format!("client = toIPv6('{v6}') AND client_hash = 0")
        }
    }

    pub(super) fn time_conds(since: Option<i64>, until: Option<i64>) -> Vec<String> {
        let mut w = Vec::new();
        if let Some(s) = since {
            // `time` too, so the sort key narrows the scan
            w.push(format!(
                "time >= toDateTime({})",
                s.div_euclid(1_000_000).max(0)
            ));
            w.push(format!("ts_us >= {s}"));
        }
        if let Some(u) = until {
            w.push(format!("ts_us < {u}"));
        }
        w
    }

    /// WHERE for the filters (the `--ref` hash itself is checked in Rust, see [`keep`]).
    fn where_clause(&self, f: &Filters, since: Option<i64>, until: Option<i64>) -> String {
        let mut w = vec!["1".to_string()];
        w.extend(Self::time_conds(since, until));
        if let Some(c) = &f.client {
            w.push(self.client_cond(c));
        }
        if let Some(a) = f.action {
            w.push(format!("action = {}", lit(a.as_str())));
        }
        if let Some(c) = &f.category {
            w.push(format!("category = {}", lit(c)));
        }
        if let Some(s) = &f.qname_suffix {
            let s = s.trim().trim_end_matches('.').to_ascii_lowercase();
            let rev: String = format!(".{s}").chars().rev().collect();
            w.push(format!(
                "(qname = {} OR startsWith(qname_rev, {}))",
                lit(&s),
                lit(&rev)
            ));
        }
        if let Some(n) = &f.client_name {
            w.push(format!("client_name = {}", lit(n)));
        }
        if let Some(g) = &f.group {
            w.push(format!("client_group = {}", lit(g)));
        }
        if let Some(id) = &f.reference {
            if let Some((start, end)) = crate::blockpage::reference::day_range(id, now_us()) {
                w.extend(Self::time_conds(Some(start), Some(end)));
            }
            w.push(format!("action = {}", lit(EventAction::Blocked.as_str())));
        }
        w.join(" AND ")
    }

    /// Rows of `sql` (JSONEachRow), each handed to `each`.
    pub(super) fn stream<T: serde::de::DeserializeOwned>(
        &self,
        sql: &str,
        mut each: impl FnMut(T) -> Result<(), LogsError>,
    ) -> Result<(), LogsError> {
        let answer = self
            .client
            .query_stream(&format!("{sql} FORMAT JSONEachRow"), JSON_SETTINGS)?;
        for line in std::io::BufReader::with_capacity(256 * 1024, answer).lines() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let v: T = serde_json::from_str(&line).map_err(|e| self.bad(format!("{e}: {line}")))?;
            each(v)?;
        }
        Ok(())
    }

    fn rows(&self, sql: &str, f: &Filters) -> Result<Vec<LogRow>, LogsError> {
        let mut out = Vec::new();
        self.stream(sql, |r: ChRow| {
            let r = r.into_logrow().map_err(|e| self.bad(e))?;
            if keep(&r, f) {
                out.push(r);
            }
            Ok(())
        })?;
        Ok(out)
    }
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
        self.read_suspicious_clients(since, min_blocked, min_domains, categories, limit, group)
    }
}

/// The filters ClickHouse cannot check: the block page reference ID (a keyed hash of name and
/// day, computed as the block page does).
fn keep(r: &LogRow, f: &Filters) -> bool {
    match &f.reference {
        Some(id) => crate::blockpage::reference::reference(&r.qname, r.ts_us) == *id,
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_escaped() {
        assert_eq!(lit("a'b\\c"), r"'a\'b\\c'");
    }

    #[test]
    fn clients_read_back_as_written() {
        assert_eq!(client_text("::ffff:192.0.2.77", 0), "192.0.2.77");
        assert_eq!(client_text("2001:db8::5", 0), "2001:db8::5");
        assert_eq!(client_text("::", 0xab), "h:00000000000000ab");
    }
}
