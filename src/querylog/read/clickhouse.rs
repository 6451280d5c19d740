//! The fleet's ClickHouse table read as the SQLite store is: rows are read as JSONEachRow
//! over HTTP and turned into the same values (`LogRow`, `TopReport`, `SuspiciousClient`);
//! ties are broken in Rust by the client's text, as SQLite does. `top` and `clients` are in
//! `clickhouse_reports.rs`, the dashboard's reads in `clickhouse_ui.rs`.

use std::io::BufRead;
use std::net::IpAddr;

use serde::Deserialize;

use super::{Filters, LogsError};
use crate::querylog::clickhouse_client::{ClickhouseError, Client, Version};
use crate::querylog::event::{EventAction, LogRow};
use crate::timefmt::{format_ts_us, now_us};

/// A SQL string literal.
pub fn lit(s: &str) -> String {
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
pub struct ChRow {
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

pub fn none_if_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// The client's text as the other stores write it: the address (IPv4 unmapped) or `h:` token.
pub fn client_text(addr: &str, hash: u64) -> String {
    if hash != 0 {
        return format!("h:{hash:016x}");
    }
    match addr.parse::<IpAddr>() {
        Ok(ip) => ip.to_canonical().to_string(),
        Err(_) => addr.to_string(),
    }
}

/// A stored text that is not one of the values dnsward writes (the parser's message says
/// which are).
#[derive(Debug, thiserror::Error)]
#[error("column {column}: {message}")]
pub struct BadColumn {
    pub column: &'static str,
    pub message: String,
}

fn column<T: std::str::FromStr<Err = String>>(
    column: &'static str,
    text: &str,
) -> Result<T, BadColumn> {
    text.parse()
        .map_err(|message| BadColumn { column, message })
}

impl ChRow {
    pub fn into_logrow(self) -> Result<LogRow, BadColumn> {
        Ok(LogRow {
            time: format_ts_us(self.ts_us),
            ts_us: self.ts_us,
            client: client_text(&self.client_text, self.client_hash),
            client_port: self.client_port,
            transport: column("transport", &self.transport)?,
            qname: self.qname,
            qtype: self.qtype,
            rcode: self.rcode,
            action: column("action", &self.action)?,
            category: none_if_empty(self.category),
            list: none_if_empty(self.list),
            rule: none_if_empty(self.rule),
            trigger: none_if_empty(self.trigger)
                .map(|t| column("trigger", &t))
                .transpose()?,
            cached: self.cached != 0,
            answers: self.answers.iter().filter_map(|a| a.parse().ok()).collect(),
            latency_us: self.latency_us,
            server: self.instance,
            client_name: none_if_empty(self.client_name),
            group: none_if_empty(self.client_group),
        })
    }
}

pub struct ChReader {
    pub client: Client,
    /// The table's `client` column is `FixedString(16)`: created on a server before 19.6,
    /// perhaps upgraded since (today's engines no longer print it with `toString`).
    pub fixed_client: bool,
}

/// JSON numbers, not strings, for 64-bit integers (the default quotes them).
const JSON_SETTINGS: &[(&str, &str)] = &[("output_format_json_quote_64bit_integers", "0")];

impl ChReader {
    pub fn connect(client: Client) -> Result<ChReader, LogsError> {
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

    pub fn table(&self) -> String {
        self.client.target.table_ref()
    }

    pub fn bad(&self, msg: impl std::fmt::Display) -> LogsError {
        ClickhouseError::BadAnswer {
            url: self.client.target.url.clone(),
            msg: msg.to_string(),
        }
        .into()
    }

    /// The client column as text (18.16 has no IPv6 type to print).
    pub fn client_expr(&self) -> &'static str {
        if self.fixed_client {
            "IPv6NumToString(client)"
        } else {
            "toString(client)"
        }
    }

    pub fn row_columns(&self) -> String {
        format!(
            "ts_us, {} AS client_text, client_hash, client_port, transport, qname, qtype, rcode, action, \
             category, list, rule, trigger, cached, answers, latency_us, instance, client_name, client_group",
            self.client_expr()
        )
    }

    /// `client = ...` for a client as the other stores write it.
    pub fn client_cond(&self, c: &str) -> String {
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

    pub fn time_conds(since: Option<i64>, until: Option<i64>) -> Vec<String> {
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
    pub fn where_clause(&self, f: &Filters, since: Option<i64>, until: Option<i64>) -> String {
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
            if let Some((start, end)) = crate::refid::day_range(id, now_us()) {
                w.extend(Self::time_conds(Some(start), Some(end)));
            }
            w.push(format!("action = {}", lit(EventAction::Blocked.as_str())));
        }
        w.join(" AND ")
    }

    /// Rows of `sql` (JSONEachRow), each handed to `each`.
    pub fn stream<T: serde::de::DeserializeOwned>(
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

    pub fn rows(&self, sql: &str, f: &Filters) -> Result<Vec<LogRow>, LogsError> {
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

/// The filters ClickHouse cannot check: the block page reference ID (a keyed hash of name and
/// day, computed as the block page does).
pub fn keep(r: &LogRow, f: &Filters) -> bool {
    match &f.reference {
        Some(id) => crate::refid::reference(&r.qname, r.ts_us) == *id,
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
