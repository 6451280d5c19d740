//! Talking to ClickHouse over its HTTP interface (port 8123): where it is, who we are, the
//! server's version, queries, compressed inserts, and the schema of
//! `packaging/clickhouse/schema.sql` (`dnsward logs init-clickhouse`).
//!
//! Written on reqwest rather than the official `clickhouse` crate: that crate validates row
//! types with `RowBinaryWithNamesAndTypes`, which Debian's server (18.16, which the tests run)
//! does not know. Its LZ4 framing, which every version takes with `decompress=1`, is rebuilt
//! from crates in `clickhouse_compress`.
//! RowBinary itself is written by hand in `sinks/clickhouse.rs`, to the format's spec.

use std::path::Path;
use std::time::Duration;

use super::clickhouse_compress::BodyEncoding;
use super::QueryLogConfig;

/// The shipped schema; names and TTL are substituted by [`schema_statements`].
pub const SCHEMA_SQL: &str = include_str!("../../packaging/clickhouse/schema.sql");

#[derive(Debug, thiserror::Error)]
pub enum ClickhouseError {
    #[error("{0}")]
    Config(String),
    #[error("ClickHouse {url}: {msg}")]
    Unreachable { url: String, msg: String },
    #[error("ClickHouse {url} answered HTTP {status}: {body}")]
    Refused {
        url: String,
        status: u16,
        body: String,
    },
    #[error("ClickHouse {url}: unexpected answer: {msg}")]
    BadAnswer { url: String, msg: String },
}

impl ClickhouseError {
    /// The server is there but refused (bad SQL, missing table, wrong password...).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ClickhouseError::Refused { .. })
    }
}

/// Where the query log lives in ClickHouse, from `[querylog]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClickhouseTarget {
    /// base URL, no trailing slash, e.g. `http://127.0.0.1:8123`
    pub url: String,
    pub database: String,
    pub table: String,
    pub user: Option<String>,
    pub password: Option<String>,
}

/// A database or table name we put into SQL unquoted: letters, digits, underscores.
fn is_identifier(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
        && s.len() <= 64
}

/// Every problem with the `clickhouse*` keys, one sentence each.
pub fn validate(cfg: &QueryLogConfig) -> Vec<String> {
    let mut p = Vec::new();
    if let Some(u) = &cfg.clickhouse {
        match reqwest::Url::parse(u) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") => p.push(format!(
                "querylog.clickhouse: {u:?}: expected an http:// or https:// URL"
            )),
            Ok(url) if url.host_str().is_none_or(str::is_empty) => {
                p.push(format!("querylog.clickhouse: {u:?}: no host"))
            }
            Ok(url) if url.query().is_some() || url.path() != "/" => p.push(format!(
                "querylog.clickhouse: {u:?}: give only scheme, host and port, e.g. http://127.0.0.1:8123"
            )),
            Ok(_) => {}
            Err(e) => p.push(format!(
                "querylog.clickhouse: {u:?}: {e} (expected e.g. http://127.0.0.1:8123)"
            )),
        }
    }
    for (key, v) in [
        ("clickhouse_database", &cfg.clickhouse_database),
        ("clickhouse_table", &cfg.clickhouse_table),
    ] {
        if !is_identifier(v) {
            p.push(format!(
                "querylog.{key}: {v:?} must be letters, digits and underscores (at most 64)"
            ));
        }
    }
    if cfg.clickhouse_user.as_deref() == Some("") {
        p.push("querylog.clickhouse_user: empty".into());
    }
    if cfg
        .clickhouse_password_file
        .as_ref()
        .is_some_and(|x| x.as_os_str().is_empty())
    {
        p.push("querylog.clickhouse_password_file: empty path".into());
    }
    if cfg.clickhouse_spool_mb > 1_048_576 {
        p.push(format!(
            "querylog.clickhouse_spool_mb: {} is more than 1 TiB",
            cfg.clickhouse_spool_mb
        ));
    }
    if cfg.clickhouse_password_file.is_some() && cfg.clickhouse_user.is_none() {
        p.push("querylog.clickhouse_password_file needs querylog.clickhouse_user (the password is sent with that user)".into());
    }
    if cfg.clickhouse.is_none()
        && (cfg.clickhouse_user.is_some() || cfg.clickhouse_password_file.is_some())
    {
        p.push("querylog.clickhouse_user/clickhouse_password_file are set but querylog.clickhouse is not".into());
    }
    p
}

impl ClickhouseTarget {
    /// None when `[querylog] clickhouse` is not set. Reads the password file.
    pub fn from_config(cfg: &QueryLogConfig) -> Result<Option<ClickhouseTarget>, ClickhouseError> {
        let Some(url) = &cfg.clickhouse else {
            return Ok(None);
        };
        let password = match &cfg.clickhouse_password_file {
            Some(p) => Some(read_password(p)?),
            None => None,
        };
        Ok(Some(ClickhouseTarget {
            url: url.trim_end_matches('/').to_string(),
            database: cfg.clickhouse_database.clone(),
            table: cfg.clickhouse_table.clone(),
            user: cfg.clickhouse_user.clone(),
            password,
        }))
    }

    /// `database.table`
    pub fn table_ref(&self) -> String {
        format!("{}.{}", self.database, self.table)
    }
}

fn read_password(p: &Path) -> Result<String, ClickhouseError> {
    let s = std::fs::read_to_string(p).map_err(|e| {
        ClickhouseError::Config(format!(
            "querylog.clickhouse_password_file {}: {e}",
            p.display()
        ))
    })?;
    // One line; a trailing newline from `echo` is not part of the password.
    Ok(s.trim_end_matches(['\n', '\r']).to_string())
}

/// Server version, for the few schema forms older servers need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
}

impl Version {
    pub fn parse(s: &str) -> Option<Version> {
        let mut it = s.trim().split('.');
        Some(Version {
            major: it.next()?.parse().ok()?,
            minor: it.next()?.parse().ok()?,
        })
    }
    /// Before 19.6: no `IPv6` type (FixedString(16), the same 16 bytes), no TTL, and
    /// LowCardinality behind `allow_experimental_low_cardinality_type`.
    pub fn is_legacy(self) -> bool {
        self < Version {
            major: 19,
            minor: 6,
        }
    }
}

/// A blocking HTTP client for one ClickHouse server. Blocking on purpose: the sink runs it on
/// its own lower-priority thread and the CLI is synchronous; never create or drop it on an
/// async runtime thread.
pub struct Client {
    http: reqwest::blocking::Client,
    pub target: ClickhouseTarget,
}

impl Client {
    pub fn new(target: ClickhouseTarget, timeout: Duration) -> Result<Client, ClickhouseError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .build()
            .map_err(|e| ClickhouseError::Config(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client { http, target })
    }

    fn request(&self, params: &[(&str, &str)]) -> reqwest::blocking::RequestBuilder {
        let mut rb = self
            .http
            .post(format!("{}/", self.target.url))
            .query(params);
        if let Some(u) = &self.target.user {
            rb = rb.basic_auth(u, self.target.password.as_deref());
        }
        rb
    }

    fn send(&self, rb: reqwest::blocking::RequestBuilder) -> Result<String, ClickhouseError> {
        let url = self.target.url.clone();
        let resp = rb.send().map_err(|e| ClickhouseError::Unreachable {
            url: url.clone(),
            msg: error_chain(&e),
        })?;
        let status = resp.status();
        let body = resp.text().map_err(|e| ClickhouseError::Unreachable {
            url: url.clone(),
            msg: format!("reading the answer: {}", error_chain(&e)),
        })?;
        if !status.is_success() {
            return Err(ClickhouseError::Refused {
                url,
                status: status.as_u16(),
                body: body.trim().chars().take(500).collect(),
            });
        }
        Ok(body)
    }

    /// Run `sql` (sent as the request body) with ClickHouse `settings`; the answer's text.
    pub fn query(&self, sql: &str, settings: &[(&str, &str)]) -> Result<String, ClickhouseError> {
        self.send(self.request(settings).body(sql.to_string()))
    }

    /// Run `sql` and hand back the answer to be read as it arrives (large exports).
    pub fn query_stream(
        &self,
        sql: &str,
        settings: &[(&str, &str)],
    ) -> Result<impl std::io::Read, ClickhouseError> {
        let url = self.target.url.clone();
        let resp = self
            .request(settings)
            .body(sql.to_string())
            .send()
            .map_err(|e| ClickhouseError::Unreachable {
                url: url.clone(),
                msg: error_chain(&e),
            })?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            return Err(ClickhouseError::Refused {
                url,
                status: status.as_u16(),
                body: body.trim().chars().take(500).collect(),
            });
        }
        Ok(resp)
    }

    /// `INSERT ... FORMAT RowBinary` with a compressed body of rows.
    pub fn insert(
        &self,
        insert_sql: &str,
        body: bytes::Bytes,
        encoding: BodyEncoding,
    ) -> Result<(), ClickhouseError> {
        let rb = match encoding {
            BodyEncoding::NativeLz4 => self.request(&[("query", insert_sql), ("decompress", "1")]),
            BodyEncoding::Gzip => self
                .request(&[("query", insert_sql)])
                .header("Content-Encoding", "gzip"),
        };
        self.send(rb.body(body)).map(drop)
    }

    /// `INSERT ... FORMAT <text format>` with `body` as its data (the alert history's
    /// JSONEachRow rows).
    pub fn insert_text(&self, insert_sql: &str, body: String) -> Result<(), ClickhouseError> {
        self.send(self.request(&[("query", insert_sql)]).body(body))
            .map(drop)
    }

    pub fn version(&self) -> Result<Version, ClickhouseError> {
        let v = self.query("SELECT version()", &[])?;
        Version::parse(&v).ok_or_else(|| ClickhouseError::BadAnswer {
            url: self.target.url.clone(),
            msg: format!("version {v:?}"),
        })
    }

    /// Create the database, the table and the per-minute rollups (idempotent). Returns the
    /// statements run.
    pub fn init_schema(&self, ttl_days: u32) -> Result<(Version, Vec<String>), ClickhouseError> {
        let version = self.version()?;
        let stmts = schema_statements(&self.target, ttl_days, version);
        let settings: &[(&str, &str)] = if version.is_legacy() {
            &[("allow_experimental_low_cardinality_type", "1")]
        } else {
            &[]
        };
        for s in &stmts {
            self.query(s, settings)?;
        }
        Ok((version, stmts))
    }
}

/// reqwest's message and its causes ("error sending request: ... Connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The shipped schema for this target and server: its statements with the configured names
/// (`dnsward.queries` in the file), the TTL, and on servers before 19.6 the older forms
/// (lines marked `-- ttl` dropped, `IPv6` as `FixedString(16)`).
pub fn schema_statements(t: &ClickhouseTarget, ttl_days: u32, v: Version) -> Vec<String> {
    let mut text = String::new();
    for line in SCHEMA_SQL.lines() {
        let code = line.split("--").next().unwrap_or("");
        if v.is_legacy() && line.trim_end().ends_with("-- ttl") {
            continue;
        }
        text.push_str(code);
        text.push('\n');
    }
    let mut text = text
        .replace("dnsward.queries", &t.table_ref())
        .replace(
            "CREATE DATABASE IF NOT EXISTS dnsward",
            &format!("CREATE DATABASE IF NOT EXISTS {}", t.database),
        )
        .replace("INTERVAL 90 DAY", &format!("INTERVAL {ttl_days} DAY"));
    if v.is_legacy() {
        text = text.replace("IPv6", "FixedString(16)");
    }
    text.split(';')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> ClickhouseTarget {
        ClickhouseTarget {
            url: "http://127.0.0.1:8123".into(),
            database: "fleet".into(),
            table: "q".into(),
            user: None,
            password: None,
        }
    }

    #[test]
    fn schema_names_ttl_and_legacy_forms() {
        let new = schema_statements(
            &target(),
            30,
            Version {
                major: 24,
                minor: 3,
            },
        );
        let old = schema_statements(
            &target(),
            30,
            Version {
                major: 18,
                minor: 16,
            },
        );
        assert_eq!(new.len(), old.len());
        assert!(
            new[0].starts_with("CREATE DATABASE IF NOT EXISTS fleet"),
            "{}",
            new[0]
        );
        let all = new.join("\n");
        assert!(
            all.contains("TABLE IF NOT EXISTS fleet.q\n")
                && all.contains("VIEW IF NOT EXISTS fleet.q_minute_"),
            "{all}"
        );
        assert!(!all.contains("dnsward."), "{all}");
        assert!(
            all.contains("client      IPv6,") && all.contains("TTL time + INTERVAL 30 DAY"),
            "{all}"
        );
        let all = old.join("\n");
        assert!(
            all.contains("client      FixedString(16),") && !all.contains("TTL"),
            "{all}"
        );
        assert!(!all.contains("--"), "comments are stripped: {all}");
    }

    #[test]
    fn versions_and_identifiers() {
        assert_eq!(
            Version::parse("18.16.1"),
            Some(Version {
                major: 18,
                minor: 16
            })
        );
        assert!(Version::parse("18.16.1").unwrap().is_legacy());
        assert!(!Version::parse("24.8.4.13").unwrap().is_legacy());
        assert_eq!(Version::parse("x"), None);
        assert!(is_identifier("dns_log2") && !is_identifier("2x") && !is_identifier("a;b"));
    }

    #[test]
    fn config_problems_are_named() {
        let c = QueryLogConfig {
            clickhouse: Some("ftp://x".into()),
            clickhouse_table: "a b".into(),
            clickhouse_user: Some(String::new()),
            ..Default::default()
        };
        let p = validate(&c);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert!(p[0].contains("http://"), "{p:#?}");
        let c = QueryLogConfig {
            clickhouse: Some("http://127.0.0.1:8123".into()),
            clickhouse_password_file: Some("/etc/dnsward/ch.pass".into()),
            ..Default::default()
        };
        assert!(
            validate(&c)[0].contains("needs querylog.clickhouse_user"),
            "{:?}",
            validate(&c)
        );
        let c = QueryLogConfig {
            clickhouse: Some("http://127.0.0.1:8123/?x=1".into()),
            ..Default::default()
        };
        assert_eq!(validate(&c).len(), 1);
        let c = QueryLogConfig {
            clickhouse: Some("http://127.0.0.1:8123".into()),
            ..Default::default()
        };
        assert!(validate(&c).is_empty(), "{:?}", validate(&c));
    }
}
