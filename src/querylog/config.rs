//! The `[querylog]` table: its keys, defaults and checks.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{clickhouse_client, sinks};

/// `client_ip` in `[querylog]`: what is recorded about the client.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientIpMode {
    /// address and source port
    #[default]
    Full,
    /// IPv4 /24, IPv6 /56 network address; no port
    Truncate,
    /// keyed hash of the address (`h:` + 16 hex digits); no port
    Hash,
}

fn default_true() -> bool {
    true
}
fn default_jsonl_max_size_mb() -> u64 {
    100
}
fn default_jsonl_keep() -> u32 {
    5
}
fn default_queue_size() -> usize {
    131_072
}
fn default_clickhouse_database() -> String {
    "dnsward".into()
}
fn default_clickhouse_table() -> String {
    "queries".into()
}
fn default_clickhouse_spool_mb() -> u64 {
    256
}
fn default_sqlite_cache_mb() -> u64 {
    64
}

/// The `[querylog]` table of config.toml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogConfig {
    /// SQLite database (WAL mode); the `dnsward logs` commands read it.
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
    /// The SQLite writer's page cache, the bound of its memory (it fills as the database
    /// grows, then stays): large enough for the indexes' hot pages under load.
    #[serde(default = "default_sqlite_cache_mb")]
    pub sqlite_cache_mb: u64,
    /// JSON lines file, rotated by size to `file.1` .. `file.<jsonl_keep>`.
    #[serde(default)]
    pub jsonl: Option<PathBuf>,
    /// dnstap Frame Streams output: `unix:/PATH`, `tcp:IP:PORT`, or `file:/PATH`.
    #[serde(default)]
    pub dnstap: Option<String>,
    /// Log allowed queries too (blocked, refused and servfail are always logged).
    #[serde(default = "default_true")]
    pub log_allowed: bool,
    /// `false`: SQLite keeps only blocked, refused and failed queries while the other sinks
    /// get every query (allowed queries are the bulk of the rows and of the cost). Absent:
    /// as `log_allowed`.
    #[serde(default)]
    pub sqlite_log_allowed: Option<bool>,
    /// Delete SQLite rows older than this.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Keep the SQLite database under this size, deleting the oldest rows.
    #[serde(default)]
    pub max_size_mb: Option<u64>,
    #[serde(default = "default_jsonl_max_size_mb")]
    pub jsonl_max_size_mb: u64,
    #[serde(default = "default_jsonl_keep")]
    pub jsonl_keep: u32,
    #[serde(default)]
    pub client_ip: ClientIpMode,
    /// Key for `client_ip = "hash"`. Absent: a random key is generated once in
    /// `querylog.hashkey` next to the SQLite database (else the JSON lines file, else
    /// `/var/lib/dnsward/`) and reused.
    #[serde(default)]
    pub hash_key_file: Option<PathBuf>,
    /// Events each sink may hold before the oldest are dropped.
    #[serde(default = "default_queue_size")]
    pub queue_size: usize,
    /// How many nice steps below the answer path the SQLite, JSON lines and ClickHouse threads run
    /// (0..=19). Under overload answers come first and a sink that falls behind drops (and
    /// counts) its oldest events; 0 keeps the log complete at the cost of answers.
    #[serde(default = "default_sink_nice")]
    pub sink_nice: i32,
    /// ClickHouse HTTP interface, e.g. `http://127.0.0.1:8123` (the fleet store).
    #[serde(default)]
    pub clickhouse: Option<String>,
    #[serde(default = "default_clickhouse_database")]
    pub clickhouse_database: String,
    #[serde(default = "default_clickhouse_table")]
    pub clickhouse_table: String,
    /// HTTP basic auth user (absent: ClickHouse's `default` user without a password).
    #[serde(default)]
    pub clickhouse_user: Option<String>,
    /// File holding the user's password (one line).
    #[serde(default)]
    pub clickhouse_password_file: Option<PathBuf>,
    /// Disk spool that keeps events while ClickHouse is unavailable; 0 = none.
    #[serde(default = "default_clickhouse_spool_mb")]
    pub clickhouse_spool_mb: u64,
    /// Where the spool lives. Absent: `clickhouse-spool/` in the state directory (beside
    /// the SQLite database, else the JSON lines file, else `/var/lib/dnsward/`).
    #[serde(default)]
    pub clickhouse_spool_dir: Option<PathBuf>,
}

fn default_sink_nice() -> i32 {
    sinks::DEFAULT_SINK_NICE
}

impl Default for QueryLogConfig {
    fn default() -> Self {
        QueryLogConfig {
            sqlite: None,
            sqlite_cache_mb: default_sqlite_cache_mb(),
            jsonl: None,
            dnstap: None,
            log_allowed: true,
            sqlite_log_allowed: None,
            retention_days: None,
            max_size_mb: None,
            jsonl_max_size_mb: default_jsonl_max_size_mb(),
            jsonl_keep: default_jsonl_keep(),
            client_ip: ClientIpMode::Full,
            hash_key_file: None,
            queue_size: default_queue_size(),
            sink_nice: default_sink_nice(),
            clickhouse: None,
            clickhouse_database: default_clickhouse_database(),
            clickhouse_table: default_clickhouse_table(),
            clickhouse_user: None,
            clickhouse_password_file: None,
            clickhouse_spool_mb: default_clickhouse_spool_mb(),
            clickhouse_spool_dir: None,
        }
    }
}

impl QueryLogConfig {
    /// Every problem in the table, each as one sentence naming the key.
    pub fn validate(&self) -> Vec<String> {
        let mut p = Vec::new();
        let empty = |o: &Option<PathBuf>| o.as_ref().is_some_and(|x| x.as_os_str().is_empty());
        if empty(&self.sqlite) {
            p.push("querylog.sqlite: empty path".to_string());
        }
        if empty(&self.jsonl) {
            p.push("querylog.jsonl: empty path".to_string());
        }
        if !(1..=65_536).contains(&self.sqlite_cache_mb) {
            p.push(format!(
                "querylog.sqlite_cache_mb: {} is outside 1..=65536",
                self.sqlite_cache_mb
            ));
        }
        if empty(&self.hash_key_file) {
            p.push("querylog.hash_key_file: empty path".to_string());
        }
        if let (Some(a), Some(b)) = (&self.sqlite, &self.jsonl) {
            if a == b {
                p.push(format!(
                    "querylog.sqlite and querylog.jsonl are the same file {}",
                    a.display()
                ));
            }
        }
        if let Some(d) = &self.dnstap {
            if let Err(e) = sinks::dnstap::DnstapTarget::parse(d) {
                p.push(format!("querylog.dnstap: {e}"));
            }
        }
        if self.retention_days == Some(0) {
            p.push(
                "querylog.retention_days: must be at least 1 (leave it out to keep rows forever)"
                    .into(),
            );
        }
        if self.max_size_mb == Some(0) {
            p.push(
                "querylog.max_size_mb: must be at least 1 (leave it out for no size limit)".into(),
            );
        }
        if self.jsonl_max_size_mb == 0 {
            p.push("querylog.jsonl_max_size_mb: must be at least 1".into());
        }
        if self.jsonl_keep > 1000 {
            p.push(format!(
                "querylog.jsonl_keep: {} is more than 1000 rotated files",
                self.jsonl_keep
            ));
        }
        if !(0..=19).contains(&self.sink_nice) {
            p.push(format!(
                "querylog.sink_nice: {} is outside 0..=19",
                self.sink_nice
            ));
        }
        if !(16..=16_777_216).contains(&self.queue_size) {
            p.push(format!(
                "querylog.queue_size: {} is outside 16..=16777216",
                self.queue_size
            ));
        }
        if self.sqlite_log_allowed == Some(true) && !self.log_allowed {
            p.push("querylog.sqlite_log_allowed = true needs log_allowed = true (allowed queries are not logged at all)".into());
        }
        if self.hash_key_file.is_some() && self.client_ip != ClientIpMode::Hash {
            p.push("querylog.hash_key_file is set but client_ip is not \"hash\"".into());
        }
        p.extend(clickhouse_client::validate(self));
        p
    }

    pub(super) fn has_sinks(&self) -> bool {
        self.sqlite.is_some()
            || self.jsonl.is_some()
            || self.dnstap.is_some()
            || self.clickhouse.is_some()
    }

    /// The ClickHouse spool directory (see `clickhouse_spool_dir`).
    pub fn clickhouse_spool_dir(&self) -> PathBuf {
        self.clickhouse_spool_dir.clone().unwrap_or_else(|| {
            let key = self.default_hash_key_path();
            key.parent()
                .unwrap_or(Path::new("/var/lib/dnsward"))
                .join("clickhouse-spool")
        })
    }

    /// Where the hash key lives when `hash_key_file` is not set.
    pub fn default_hash_key_path(&self) -> PathBuf {
        let dir = self
            .sqlite
            .as_deref()
            .or(self.jsonl.as_deref())
            .and_then(Path::parent)
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("/var/lib/dnsward"));
        dir.join("querylog.hashkey")
    }
}
