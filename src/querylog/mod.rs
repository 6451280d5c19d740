//! Query log: every query becomes one [`QueryEvent`]; [`QueryLog::emit`] applies the
//! `log_allowed` filter and the `client_ip` privacy mode and pushes the event onto one bounded,
//! non-blocking queue per sink ([`bus::SinkQueue`]). Each sink (SQLite, JSON lines, dnstap)
//! drains its queue in its own background task. A full queue drops its oldest event and
//! counts it; nothing here ever blocks or slows the answer path.
//!
//! A sink that cannot be opened (unwritable path, corrupt database, collector down) does not
//! stop the server: its task logs the reason, retries with backoff and the queue drops and
//! counts meanwhile. [`QueryLog::start`] fails only for configuration problems.

pub mod bus;
pub mod cli;
pub mod clickhouse_client;
pub mod clickhouse_read;
pub mod event;
pub mod sinks;
pub mod spool;

use std::hash::Hasher;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

pub use bus::{EventBatch, SinkQueue, SinkStats};
pub use cli::{run_logs, LogsCommand};
pub use event::{
    Answers, ClientId, EventAction, LogRow, LoggedEvent, QueryEvent, Transport, Trigger,
};

/// Events a producer collects before pushing them to the sinks' queues.
pub const BATCH_EVENTS: usize = 256;
/// Longest an event waits in a producer's batch (the sinks add at most their flush interval).
pub const BATCH_MAX_AGE: Duration = Duration::from_millis(100);

/// One producer's events not yet pushed; see [`QueryLog::emit_batched`].
pub struct EventBatcher {
    events: Vec<LoggedEvent>,
    oldest: std::time::Instant,
}

impl Default for EventBatcher {
    fn default() -> Self {
        EventBatcher {
            events: Vec::with_capacity(BATCH_EVENTS),
            oldest: std::time::Instant::now(),
        }
    }
}

/// How long `shutdown` waits for the sinks to flush.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often drop counts are reported.
pub const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum QueryLogError {
    #[error("invalid [querylog] configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("client_ip = \"hash\": hash key file {path}: {msg}")]
    HashKey { path: PathBuf, msg: String },
    #[error("query log database {path}: {msg}")]
    Db { path: PathBuf, msg: String },
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Clickhouse(#[from] clickhouse_client::ClickhouseError),
}

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

/// The `[querylog]` table of config.toml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryLogConfig {
    /// SQLite database (WAL mode); the `dnsward logs` commands read it.
    #[serde(default)]
    pub sqlite: Option<PathBuf>,
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

    fn has_sinks(&self) -> bool {
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

/// The `client_ip` mode with its key, applied in `emit`.
#[derive(Clone, Debug)]
pub(crate) enum Privacy {
    Full,
    Truncate,
    Hash { k0: u64, k1: u64 },
}

impl Privacy {
    pub(crate) fn apply(&self, client: std::net::SocketAddr) -> ClientId {
        // An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d; without this a
        // /56 "truncation" of it would keep the whole IPv4 address.
        let ip = client.ip().to_canonical();
        match self {
            Privacy::Full => ClientId::Addr {
                ip,
                port: Some(client.port()),
            },
            Privacy::Truncate => ClientId::Addr {
                ip: truncate_ip(ip),
                port: None,
            },
            Privacy::Hash { k0, k1 } => {
                let mut h = siphasher::sip::SipHasher24::new_with_keys(*k0, *k1);
                match ip {
                    IpAddr::V4(a) => h.write(&a.octets()),
                    IpAddr::V6(a) => h.write(&a.octets()),
                }
                ClientId::Token(h.finish())
            }
        }
    }
}

/// IPv4 to its /24, IPv6 to its /56.
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(a) => IpAddr::V4(ipnet::Ipv4Net::new_assert(a, 24).network()),
        IpAddr::V6(a) => IpAddr::V6(ipnet::Ipv6Net::new_assert(a, 56).network()),
    }
}

/// Read the hash key (32 hex digits = 128 bits), or create it with a random key when it does
/// not exist yet. `explicit`: the operator named the file, so any failure is a config error.
fn load_or_create_hash_key(path: &Path) -> Result<(u64, u64), String> {
    match std::fs::read_to_string(path) {
        Ok(s) => parse_hash_key(s.trim()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut buf = [0u8; 16];
            getrandom::fill(&mut buf).map_err(|e| format!("no random source: {e}"))?;
            let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
                }
            }
            write_private_file(path, format!("{hex}\n").as_bytes())
                .map_err(|e| format!("cannot create: {e}"))?;
            tracing::info!(path = %path.display(), "querylog: generated a new client hash key");
            parse_hash_key(&hex)
        }
        Err(e) => Err(format!("cannot read: {e}")),
    }
}

fn write_private_file(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

fn parse_hash_key(s: &str) -> Result<(u64, u64), String> {
    if s.len() != 32 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 32 hexadecimal digits (a 128-bit key)".into());
    }
    let k0 = u64::from_str_radix(&s[..16], 16).map_err(|e| e.to_string())?;
    let k1 = u64::from_str_radix(&s[16..], 16).map_err(|e| e.to_string())?;
    Ok((k0, k1))
}

struct Inner {
    log_allowed: bool,
    privacy: Privacy,
    queues: Vec<Arc<SinkQueue>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    reporter: Mutex<Option<JoinHandle<()>>>,
}

/// Handle to the query log. Cheap to clone; every clone feeds the same sinks.
#[derive(Clone)]
pub struct QueryLog {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for QueryLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryLog")
            .field("sinks", &self.stats())
            .finish()
    }
}

impl QueryLog {
    /// A query log that records nothing; `emit` returns at once.
    pub fn disabled() -> QueryLog {
        QueryLog {
            inner: Arc::new(Inner {
                log_allowed: false,
                privacy: Privacy::Full,
                queues: Vec::new(),
                tasks: Mutex::new(Vec::new()),
                reporter: Mutex::new(None),
            }),
        }
    }

    /// Validate the config and start one background task per configured sink on the current
    /// tokio runtime. Sinks that cannot be opened now are retried in the background.
    pub async fn start(cfg: &QueryLogConfig) -> Result<QueryLog, QueryLogError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(QueryLogError::Config(problems));
        }
        if !cfg.has_sinks() {
            return Ok(QueryLog::disabled());
        }
        let privacy = match cfg.client_ip {
            ClientIpMode::Full => Privacy::Full,
            ClientIpMode::Truncate => Privacy::Truncate,
            ClientIpMode::Hash => {
                let (k0, k1) = match &cfg.hash_key_file {
                    Some(p) => {
                        load_or_create_hash_key(p).map_err(|msg| QueryLogError::HashKey {
                            path: p.clone(),
                            msg,
                        })?
                    }
                    None => {
                        let p = cfg.default_hash_key_path();
                        match load_or_create_hash_key(&p) {
                            Ok(k) => k,
                            Err(msg) => {
                                // Not fatal: tokens stay consistent until the next restart.
                                tracing::error!(path = %p.display(), error = %msg,
                                    "querylog: cannot keep a client hash key; using a key for this run only \
                                     (set querylog.hash_key_file to a writable path for stable tokens)");
                                let mut b = [0u8; 16];
                                let _ = getrandom::fill(&mut b);
                                (
                                    u64::from_le_bytes(b[..8].try_into().unwrap_or_default()),
                                    u64::from_le_bytes(b[8..].try_into().unwrap_or_default()),
                                )
                            }
                        }
                    }
                };
                Privacy::Hash { k0, k1 }
            }
        };
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        if let Some(path) = &cfg.sqlite {
            let pace = sinks::Pace::SQLITE;
            let q = Arc::new(SinkQueue::new("sqlite", cfg.queue_size, pace.max_batch));
            let mut sink =
                sinks::sqlite::SqliteSink::new(path.clone(), cfg.retention_days, cfg.max_size_mb);
            sink.keep_allowed = cfg.sqlite_log_allowed.unwrap_or(cfg.log_allowed);
            tasks.push(tokio::spawn(sinks::run_blocking_sink(
                sink,
                q.clone(),
                pace,
                cfg.sink_nice,
                Some(sinks::MAINTENANCE_INTERVAL),
            )));
            queues.push(q);
        }
        if let Some(path) = &cfg.jsonl {
            let pace = sinks::Pace::JSONL;
            let q = Arc::new(SinkQueue::new("jsonl", cfg.queue_size, pace.max_batch));
            let sink = sinks::jsonl::JsonlSink::new(
                path.clone(),
                cfg.jsonl_max_size_mb.saturating_mul(1024 * 1024),
                cfg.jsonl_keep,
            );
            tasks.push(tokio::spawn(sinks::run_blocking_sink(
                sink,
                q.clone(),
                pace,
                cfg.sink_nice,
                None,
            )));
            queues.push(q);
        }
        if let Some(addr) = &cfg.dnstap {
            let target = sinks::dnstap::DnstapTarget::parse(addr)
                .map_err(|e| QueryLogError::Config(vec![e]))?;
            let q = Arc::new(SinkQueue::new(
                "dnstap",
                cfg.queue_size,
                sinks::dnstap::MAX_BATCH,
            ));
            tasks.push(tokio::spawn(sinks::dnstap::run(target, q.clone())));
            queues.push(q);
        }
        if let Some(target) = clickhouse_client::ClickhouseTarget::from_config(cfg)? {
            let spool = (cfg.clickhouse_spool_mb > 0).then(|| sinks::clickhouse::SpoolConfig {
                dir: cfg.clickhouse_spool_dir(),
                max_bytes: cfg.clickhouse_spool_mb.saturating_mul(1024 * 1024),
            });
            let pace = sinks::clickhouse::PACE;
            let q = Arc::new(SinkQueue::new("clickhouse", cfg.queue_size, pace.max_batch));
            tasks.push(tokio::spawn(sinks::run_blocking_sink(
                sinks::clickhouse::ClickhouseSink::new(target, spool),
                q.clone(),
                pace,
                cfg.sink_nice,
                None,
            )));
            queues.push(q);
        }
        let reporter = tokio::spawn(report_drops(queues.clone()));
        Ok(QueryLog {
            inner: Arc::new(Inner {
                log_allowed: cfg.log_allowed,
                privacy,
                queues,
                tasks: Mutex::new(tasks),
                reporter: Mutex::new(Some(reporter)),
            }),
        })
    }

    /// Would an event with this action be recorded? (Lets the answer path skip building it.)
    pub fn wants(&self, action: EventAction) -> bool {
        let inner = &*self.inner;
        !inner.queues.is_empty() && (inner.log_allowed || action != EventAction::Allowed)
    }

    fn logged(&self, ev: QueryEvent) -> Option<LoggedEvent> {
        if !self.wants(ev.action) {
            return None;
        }
        let client = self.inner.privacy.apply(ev.client);
        Some(LoggedEvent { ev, client })
    }

    /// Answer-path entry point for one event on its own (TCP, upstream misses). Never blocks,
    /// never awaits. Drops allowed queries when `log_allowed = false`.
    pub fn emit(&self, ev: QueryEvent) {
        if let Some(l) = self.logged(ev) {
            self.push(Arc::new(vec![l]));
        }
    }

    /// Like `emit`, but collects the event in `batcher` and pushes a whole batch when it is
    /// full or its oldest event is [`BATCH_MAX_AGE`] old. For a thread that answers many
    /// queries (a UDP worker): the queues' lock and the batch allocation are paid once per
    /// [`BATCH_EVENTS`] queries. The caller must also call [`QueryLog::flush_due`] when idle and
    /// [`QueryLog::flush`] before it stops.
    pub fn emit_batched(
        &self,
        batcher: &mut EventBatcher,
        ev: QueryEvent,
        now: std::time::Instant,
    ) {
        if let Some(l) = self.logged(ev) {
            if batcher.events.is_empty() {
                batcher.oldest = now;
            }
            batcher.events.push(l);
            if batcher.events.len() >= BATCH_EVENTS {
                self.flush(batcher);
            }
        }
    }

    /// Push the batch if its oldest event has waited [`BATCH_MAX_AGE`].
    pub fn flush_due(&self, batcher: &mut EventBatcher, now: std::time::Instant) {
        if !batcher.events.is_empty()
            && now.saturating_duration_since(batcher.oldest) >= BATCH_MAX_AGE
        {
            self.flush(batcher);
        }
    }

    /// Push whatever the batcher holds.
    pub fn flush(&self, batcher: &mut EventBatcher) {
        if batcher.events.is_empty() {
            return;
        }
        let events = std::mem::replace(&mut batcher.events, Vec::with_capacity(BATCH_EVENTS));
        self.push(Arc::new(events));
    }

    fn push(&self, batch: EventBatch) {
        let Some((last, rest)) = self.inner.queues.split_last() else {
            return;
        };
        for q in rest {
            q.push(batch.clone());
        }
        last.push(batch);
    }

    /// Counters per sink, in the order sqlite, jsonl, dnstap, clickhouse (configured ones only).
    pub fn stats(&self) -> Vec<SinkStats> {
        self.inner.queues.iter().map(|q| q.stats()).collect()
    }

    /// Is anything configured?
    pub fn is_enabled(&self) -> bool {
        !self.inner.queues.is_empty()
    }

    /// Stop accepting events, flush every sink, wait at most [`SHUTDOWN_TIMEOUT`]. Events that
    /// could not be written by then are counted as dropped. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &*self.inner;
        for q in &inner.queues {
            q.close();
        }
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *bus_lock(&inner.tasks));
        let deadline = tokio::time::Instant::now() + SHUTDOWN_TIMEOUT;
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                tracing::error!(
                    "querylog: a sink did not finish within {:?}; abandoning it",
                    SHUTDOWN_TIMEOUT
                );
                t.abort();
            }
        }
        if let Some(r) = bus_lock(&inner.reporter).take() {
            r.abort();
        }
        for q in &inner.queues {
            let lost = q.discard_all();
            let s = q.stats();
            if s.dropped > 0 || lost > 0 {
                tracing::warn!(
                    sink = s.name,
                    dropped = s.dropped,
                    written = s.written,
                    "querylog: events lost in total (queue overflow, failed writes, shutdown)"
                );
            }
        }
    }
}

fn bus_lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every minute: a warning per sink that lost events since the last report.
async fn report_drops(queues: Vec<Arc<SinkQueue>>) {
    let mut last: Vec<u64> = queues.iter().map(|q| q.dropped()).collect();
    let mut tick = tokio::time::interval(DROP_REPORT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (q, prev) in queues.iter().zip(last.iter_mut()) {
            let s = q.stats();
            let delta = s.dropped.saturating_sub(*prev);
            *prev = s.dropped;
            if delta > 0 {
                tracing::warn!(
                    sink = s.name,
                    dropped_last_minute = delta,
                    dropped_total = s.dropped,
                    queued = s.queued,
                    last_error = s.last_error.as_deref().unwrap_or(""),
                    "querylog: events dropped"
                );
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub fn event(qname: &str, action: EventAction) -> QueryEvent {
        QueryEvent {
            ts_us: 1_714_564_800_123_456,
            client: "192.0.2.77:53001".parse().unwrap(),
            transport: Transport::Udp,
            qname: qname.into(),
            qtype: "A".into(),
            rcode: if action == EventAction::Blocked {
                "NXDOMAIN".into()
            } else {
                "NOERROR".into()
            },
            action,
            category: (action == EventAction::Blocked).then(|| "malware".into()),
            list: (action == EventAction::Blocked).then(|| "threat-feed".into()),
            rule: (action == EventAction::Blocked).then(|| "*.evil.example".to_string()),
            trigger: (action == EventAction::Blocked).then_some(Trigger::Qname),
            cached: action == EventAction::Allowed,
            answers: if action == EventAction::Allowed {
                vec![
                    "198.51.100.7".parse().unwrap(),
                    "2001:db8::7".parse().unwrap(),
                ]
                .into()
            } else {
                Answers::default()
            },
            latency_us: 1234,
            server: Arc::from("edge-1"),
            client_name: None,
            group: None,
            query_wire: None,
            response_wire: None,
        }
    }

    pub fn logged(ev: QueryEvent) -> LoggedEvent {
        let client = Privacy::Full.apply(ev.client);
        LoggedEvent { ev, client }
    }

    /// The events as the one batch a sink gets.
    pub fn batch(evs: &[LoggedEvent]) -> Vec<bus::Queued> {
        vec![bus::Queued::new(Arc::new(evs.to_vec()))]
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    fn cfg_toml(s: &str) -> Result<QueryLogConfig, String> {
        // minimal TOML-free check: serde_json stands in for the config deserializer here
        serde_json::from_str(s).map_err(|e| e.to_string())
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c = cfg_toml(r#"{"sqlite": "/tmp/q.db"}"#).unwrap();
        assert!(c.log_allowed);
        assert_eq!(c.jsonl_max_size_mb, 100);
        assert_eq!(c.jsonl_keep, 5);
        assert_eq!(c.queue_size, 131_072);
        assert_eq!(c.client_ip, ClientIpMode::Full);
        assert!(c.validate().is_empty());
        let e = cfg_toml(r#"{"sqlite": "/tmp/q.db", "sqllite": 1}"#).unwrap_err();
        assert!(e.contains("unknown field `sqllite`"), "{e}");
        let c = cfg_toml(r#"{"client_ip": "truncate", "log_allowed": false}"#).unwrap();
        assert_eq!(c.client_ip, ClientIpMode::Truncate);
        assert!(!c.log_allowed);
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = QueryLogConfig {
            sqlite: Some("/x/q".into()),
            jsonl: Some("/x/q".into()),
            dnstap: Some("udp:1.2.3.4:6000".into()),
            retention_days: Some(0),
            max_size_mb: Some(0),
            jsonl_max_size_mb: 0,
            queue_size: 1,
            sink_nice: 20,
            hash_key_file: Some("/k".into()),
            log_allowed: false,
            sqlite_log_allowed: Some(true),
            ..Default::default()
        };
        let p = c.validate();
        assert_eq!(p.len(), 9, "{p:#?}");
        assert!(
            p.iter()
                .any(|m| m == "querylog.sink_nice: 20 is outside 0..=19"),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("sqlite_log_allowed = true needs log_allowed = true")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("querylog.dnstap:") && m.contains("udp:1.2.3.4:6000")),
            "{p:#?}"
        );
        for bad in [
            "tcp:localhost:6000",
            "tcp:127.0.0.1",
            "unix:relative/sock",
            "unix:",
            "tcp:127.0.0.1:0",
        ] {
            let c = QueryLogConfig {
                dnstap: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(c.validate().len(), 1, "{bad} should be rejected");
        }
        for good in [
            "tcp:127.0.0.1:6000",
            "tcp:[::1]:6000",
            "unix:/run/dnstap.sock",
            "file:/var/log/d.tap",
        ] {
            let c = QueryLogConfig {
                dnstap: Some(good.into()),
                ..Default::default()
            };
            assert!(
                c.validate().is_empty(),
                "{good} should be accepted: {:?}",
                c.validate()
            );
        }
    }

    #[tokio::test]
    async fn start_rejects_bad_config_with_all_messages() {
        let c = QueryLogConfig {
            dnstap: Some("bogus".into()),
            queue_size: 0,
            ..Default::default()
        };
        let e = QueryLog::start(&c).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("querylog.dnstap") && msg.contains("querylog.queue_size"),
            "{msg}"
        );
    }

    #[test]
    fn truncation_masks_v4_24_and_v6_56() {
        assert_eq!(
            truncate_ip("192.0.2.77".parse().unwrap()),
            "192.0.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            truncate_ip("2001:db8:aaaa:bbcc:dddd::1".parse().unwrap()),
            "2001:db8:aaaa:bb00::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn privacy_modes() {
        let c: std::net::SocketAddr = "192.0.2.77:53001".parse().unwrap();
        assert_eq!(
            Privacy::Full.apply(c),
            ClientId::Addr {
                ip: c.ip(),
                port: Some(53001)
            }
        );
        assert_eq!(
            Privacy::Truncate.apply(c),
            ClientId::Addr {
                ip: "192.0.2.0".parse().unwrap(),
                port: None
            }
        );
        // v4-mapped v6 from a dual-stack socket is truncated as IPv4, not as a /56
        let mapped: std::net::SocketAddr = "[::ffff:192.0.2.77]:1".parse().unwrap();
        assert_eq!(Privacy::Truncate.apply(mapped).to_string(), "192.0.2.0");
        let h = Privacy::Hash { k0: 1, k1: 2 };
        let t1 = h.apply(c);
        let t2 = h.apply("192.0.2.77:9".parse().unwrap());
        let t3 = h.apply("192.0.2.78:53001".parse().unwrap());
        let other_key = Privacy::Hash { k0: 1, k1: 3 }.apply(c);
        assert!(matches!(t1, ClientId::Token(_)));
        assert_eq!(t1, t2, "same client, same token (port ignored)");
        assert_ne!(t1, t3);
        assert_ne!(t1, other_key, "the key matters");
        assert_eq!(h.apply(mapped), t1, "mapped form hashes like the IPv4 form");
        let s = t1.to_string();
        assert!(
            s.starts_with("h:") && s.len() == 18 && !s.contains("192"),
            "{s}"
        );
    }

    #[test]
    fn hash_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/key");
        let k1 = load_or_create_hash_key(&p).unwrap();
        let k2 = load_or_create_hash_key(&p).unwrap();
        assert_eq!(k1, k2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&p, "zz").unwrap();
        assert!(load_or_create_hash_key(&p)
            .unwrap_err()
            .contains("32 hexadecimal"));
        let c = QueryLogConfig {
            sqlite: Some("/var/db/dnsward/q.db".into()),
            ..Default::default()
        };
        assert_eq!(
            c.default_hash_key_path(),
            PathBuf::from("/var/db/dnsward/querylog.hashkey")
        );
    }

    #[tokio::test]
    async fn bad_explicit_hash_key_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "not a key").unwrap();
        let c = QueryLogConfig {
            jsonl: Some(dir.path().join("q.jsonl")),
            client_ip: ClientIpMode::Hash,
            hash_key_file: Some(key),
            ..Default::default()
        };
        assert!(matches!(
            QueryLog::start(&c).await,
            Err(QueryLogError::HashKey { .. })
        ));
    }

    fn read_db(p: &Path) -> Vec<LogRow> {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut st = c
            .prepare(&format!(
                "SELECT {} FROM queries ORDER BY id",
                sinks::sqlite::COLUMNS
            ))
            .unwrap();
        st.query_map([], sinks::sqlite::row_to_logrow)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn read_jsonl(p: &Path) -> Vec<LogRow> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The row for `ev` as recorded under a privacy mode that gives `client` and `port`.
    fn expected(ev: &QueryEvent, client: &str, port: Option<u16>) -> LogRow {
        let row = LogRow::from_logged(&LoggedEvent {
            ev: ev.clone(),
            client: ClientId::Token(0),
        });
        LogRow {
            client: client.to_string(),
            client_port: port,
            ..row
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emit_reaches_sqlite_and_jsonl_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            sqlite: Some(dir.path().join("db/q.db")),
            jsonl: Some(dir.path().join("q.jsonl")),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let mut blocked = event("c2.evil.example", EventAction::Blocked);
        blocked.transport = Transport::Doh;
        blocked.query_wire = Some(bytes::Bytes::from_static(b"wire"));
        let mut allowed = event("www.example.org", EventAction::Allowed);
        allowed.ts_us += 5;
        allowed.client = "[2001:db8::5]:40000".parse().unwrap();
        log.clone().emit(blocked.clone());
        log.emit(allowed.clone());
        log.shutdown().await;
        let want = vec![
            expected(&blocked, "192.0.2.77", Some(53001)),
            expected(&allowed, "2001:db8::5", Some(40000)),
        ];
        assert_eq!(read_db(cfg.sqlite.as_ref().unwrap()), want);
        assert_eq!(read_jsonl(cfg.jsonl.as_ref().unwrap()), want);
        for s in log.stats() {
            assert_eq!(
                (s.written, s.dropped, s.errors, s.queued),
                (2, 0, 0, 0),
                "{s:?}"
            );
        }
        assert_eq!(
            log.stats()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["sqlite", "jsonl"]
        );
        // after shutdown, emit still returns and counts
        log.emit(allowed);
        assert_eq!(log.stats()[0].dropped, 1);
    }

    #[tokio::test]
    async fn sinks_flush_within_a_second_without_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            jsonl: Some(dir.path().join("q.jsonl")),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("a.example", EventAction::Blocked));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(read_jsonl(cfg.jsonl.as_ref().unwrap()).len(), 1);
        log.shutdown().await;
    }

    #[tokio::test]
    async fn log_allowed_false_drops_allowed_only() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            jsonl: Some(dir.path().join("q.jsonl")),
            log_allowed: false,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("ok.example", EventAction::Allowed));
        log.emit(event("bad.example", EventAction::Blocked));
        let mut sf = event("broken.example", EventAction::Servfail);
        sf.rcode = "SERVFAIL".into();
        log.emit(sf);
        log.emit(event("ok2.example", EventAction::Allowed));
        log.shutdown().await;
        let names: Vec<String> = read_jsonl(cfg.jsonl.as_ref().unwrap())
            .into_iter()
            .map(|r| r.qname)
            .collect();
        assert_eq!(names, ["bad.example", "broken.example"]);
        assert_eq!(log.stats()[0].dropped, 0, "filtered events are not drops");
    }

    #[tokio::test]
    async fn privacy_modes_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let cfg = QueryLogConfig {
            sqlite: Some(db.clone()),
            client_ip: ClientIpMode::Hash,
            ..Default::default()
        };
        let mut tokens = Vec::new();
        for _ in 0..2 {
            // two runs: the generated key is reused, so tokens stay stable
            let log = QueryLog::start(&cfg).await.unwrap();
            log.emit(event("a.example", EventAction::Blocked));
            log.shutdown().await;
        }
        assert!(dir.path().join("querylog.hashkey").exists());
        for r in read_db(&db) {
            assert!(
                r.client.starts_with("h:") && r.client.len() == 18,
                "{}",
                r.client
            );
            assert_eq!(r.client_port, None);
            tokens.push(r.client);
        }
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0], tokens[1]);

        let cfg = QueryLogConfig {
            jsonl: Some(dir.path().join("t.jsonl")),
            client_ip: ClientIpMode::Truncate,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("a.example", EventAction::Blocked));
        let mut e6 = event("b.example", EventAction::Blocked);
        e6.client = "[2001:db8:1:2ff:1::9]:5".parse().unwrap();
        log.emit(e6);
        log.shutdown().await;
        let rows = read_jsonl(cfg.jsonl.as_ref().unwrap());
        assert_eq!(
            (rows[0].client.as_str(), rows[0].client_port),
            ("192.0.2.0", None)
        );
        assert_eq!(
            (rows[1].client.as_str(), rows[1].client_port),
            ("2001:db8:1:200::", None)
        );
    }

    #[tokio::test]
    async fn unopenable_sinks_do_not_fail_start_and_count_drops() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let corrupt = dir.path().join("corrupt.db");
        std::fs::write(&corrupt, vec![0x55u8; 8192]).unwrap();
        let cfg = QueryLogConfig {
            sqlite: Some(corrupt.clone()),
            jsonl: Some(file.join("q.jsonl")), // parent is a file: cannot be created
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        for i in 0..10 {
            log.emit(event(&format!("n{i}.example"), EventAction::Blocked));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        log.shutdown().await;
        let st = log.stats();
        for s in &st {
            assert_eq!((s.written, s.dropped, s.queued), (0, 10, 0), "{s:?}");
            assert!(s.errors >= 1, "{s:?}");
        }
        assert!(
            st[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("not a database"),
            "{st:?}"
        );
        assert!(
            st[1].last_error.as_deref().unwrap().contains("plain-file"),
            "{st:?}"
        );
        assert_eq!(
            std::fs::read(&corrupt).unwrap(),
            vec![0x55u8; 8192],
            "a corrupt file is left alone"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emit_never_waits_for_a_full_queue() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            sqlite: Some(dir.path().join("q.db")),
            jsonl: Some(dir.path().join("q.jsonl")),
            queue_size: 16,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let ev = event("flood.example", EventAction::Blocked);
        let t = std::time::Instant::now();
        for i in 0..100_000 {
            let mut e = ev.clone();
            e.ts_us += i;
            log.emit(e);
        }
        let took = t.elapsed();
        log.shutdown().await;
        for s in log.stats() {
            assert!(s.dropped > 0, "{s:?}");
            assert_eq!(
                s.written + s.dropped,
                100_000,
                "every event is written or counted: {s:?}"
            );
        }
        eprintln!("100k emits took {took:?}");
    }

    #[tokio::test]
    async fn skipped_allowed_events_are_not_counted_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let cfg = QueryLogConfig {
            sqlite: Some(db.clone()),
            sqlite_log_allowed: Some(false),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        for (i, action) in [
            EventAction::Allowed,
            EventAction::Blocked,
            EventAction::Allowed,
        ]
        .into_iter()
        .enumerate()
        {
            log.emit(event(&format!("n{i}.example"), action));
        }
        log.shutdown().await;
        let s = &log.stats()[0];
        assert_eq!((s.written, s.skipped, s.dropped), (1, 2, 0), "{s:?}");
        assert_eq!(read_db(&db).len(), 1);
    }

    #[tokio::test]
    async fn retention_runs_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        {
            let mut c = sinks::sqlite::open_for_writing(&db).unwrap();
            let mut old = event("old.example", EventAction::Blocked);
            old.ts_us = crate::timefmt::now_us() - 3 * 86_400_000_000;
            sinks::sqlite::insert_batch(&mut c, &[testutil::logged(old)]).unwrap();
        }
        let cfg = QueryLogConfig {
            sqlite: Some(db.clone()),
            retention_days: Some(2),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let mut new = event("new.example", EventAction::Blocked);
        new.ts_us = crate::timefmt::now_us();
        log.emit(new);
        log.shutdown().await;
        let names: Vec<String> = read_db(&db).into_iter().map(|r| r.qname).collect();
        assert_eq!(names, ["new.example"]);
    }

    #[tokio::test]
    async fn disabled_and_sinkless_logs_accept_events() {
        let l = QueryLog::disabled();
        l.emit(event("a.example", EventAction::Allowed));
        assert!(l.stats().is_empty());
        l.shutdown().await;
        let l = QueryLog::start(&QueryLogConfig::default()).await.unwrap();
        assert!(!l.is_enabled());
        l.emit(event("a.example", EventAction::Blocked));
    }
}
