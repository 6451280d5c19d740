//! Query log: every query becomes one [`QueryEvent`]; [`QueryLog::emit`] applies the
//! `log_allowed` filter and the `client_ip` privacy mode and pushes the event onto one bounded,
//! non-blocking queue per sink ([`bus::SinkQueue`]). Each sink (SQLite, JSON lines, dnstap,
//! ClickHouse) drains its queue in its own background task and does its work on a niced thread
//! of its own. A full queue drops its oldest event and counts it; nothing here ever blocks or
//! slows the answer path.
//!
//! A sink that cannot be opened (unwritable path, corrupt database, collector down) does not
//! stop the server: its task logs the reason, retries with backoff and the queue drops and
//! counts meanwhile. [`QueryLog::start`] fails only for configuration problems.

pub mod bus;
pub mod clickhouse_client;
pub mod clickhouse_compress;
pub mod event;
pub mod read;
pub mod sinks;
pub mod spool;

mod config;
mod privacy;
#[cfg(test)]
mod tests;
#[cfg(test)]
pub(crate) use tests::testutil;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use bus::{EventBatch, SinkQueue, SinkStats};
pub use config::{ClientIpMode, QueryLogConfig};
pub use event::{
    Answers, ClientId, EventAction, LogRow, LoggedEvent, QueryEvent, Transport, Trigger,
};
use privacy::load_or_create_hash_key;
pub(crate) use privacy::Privacy;
pub use privacy::{truncate_ip, HashKeyError};

/// Events a producer collects before pushing them to the sinks' queues.
pub const BATCH_EVENTS: usize = 256;
/// Longest an event waits in a producer's batch (the sinks add at most their flush interval).
pub const BATCH_MAX_AGE: Duration = Duration::from_millis(100);

/// One producer's events not yet pushed; see [`QueryLog::emit_batched`].
pub struct EventBatcher {
    events: Vec<LoggedEvent>,
    /// Events only the consumers want (allowed queries with `log_allowed = false`).
    consumer_only: Vec<LoggedEvent>,
    oldest: std::time::Instant,
}

impl Default for EventBatcher {
    fn default() -> Self {
        EventBatcher {
            events: Vec::with_capacity(BATCH_EVENTS),
            consumer_only: Vec::new(),
            oldest: std::time::Instant::now(),
        }
    }
}

/// A reader of the event stream beside the sinks (the alerts, `src/alerts`): its own bounded
/// queue, fed with the same batches, drained by its owner.
pub struct Consumer {
    pub queue: Arc<SinkQueue>,
    /// It wants allowed queries too, whatever `log_allowed` says for the sinks.
    pub all_actions: bool,
    /// With `all_actions`: which allowed queries it wants, judged on the answer path from the
    /// query name and the arrival time (µs since the epoch) before the event is built.
    /// None: all of them.
    pub allowed_filter: Option<NameFilter>,
}

/// See [`Consumer::allowed_filter`].
pub type NameFilter = Arc<dyn Fn(&str, i64) -> bool + Send + Sync>;

/// How long `shutdown` waits for the sinks to flush.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// How often drop counts are reported.
pub const DROP_REPORT_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum QueryLogError {
    #[error("invalid [querylog] configuration:\n  - {}", .0.join("\n  - "))]
    Config(Vec<String>),
    #[error("client_ip = \"hash\": hash key file {path}: {source}")]
    HashKey { path: PathBuf, source: HashKeyError },
    #[error("{0}")]
    Clickhouse(#[from] clickhouse_client::ClickhouseError),
}

struct Inner {
    log_allowed: bool,
    privacy: Privacy,
    queues: Vec<Arc<SinkQueue>>,
    /// Consumers' queues (see [`Consumer`]); not counted in `stats`.
    consumers: Vec<Arc<SinkQueue>>,
    consumers_all: bool,
    consumer_filter: Option<NameFilter>,
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
                consumers: Vec::new(),
                consumers_all: false,
                consumer_filter: None,
                tasks: Mutex::new(Vec::new()),
                reporter: Mutex::new(None),
            }),
        }
    }

    /// Validate the config and start one background task per configured sink on the current
    /// tokio runtime. Sinks that cannot be opened now are retried in the background.
    pub async fn start(cfg: &QueryLogConfig) -> Result<QueryLog, QueryLogError> {
        Self::start_with(Some(cfg), None).await
    }

    /// `start`, plus a consumer of the event stream; without `[querylog]` (`cfg` None) only
    /// the consumer gets events.
    pub async fn start_with(
        cfg: Option<&QueryLogConfig>,
        consumer: Option<Consumer>,
    ) -> Result<QueryLog, QueryLogError> {
        let mut log = match cfg {
            Some(cfg) => Self::start_sinks(cfg).await?,
            None => Self::disabled(),
        };
        if let Some(c) = consumer {
            // Not shared yet: `start_sinks` and `disabled` return the only handle.
            if let Some(inner) = Arc::get_mut(&mut log.inner) {
                inner.consumers.push(c.queue);
                inner.consumers_all |= c.all_actions;
                inner.consumer_filter = c.allowed_filter;
            }
        }
        Ok(log)
    }

    async fn start_sinks(cfg: &QueryLogConfig) -> Result<QueryLog, QueryLogError> {
        let problems = cfg.validate();
        if !problems.is_empty() {
            return Err(QueryLogError::Config(problems));
        }
        if !cfg.has_sinks() {
            return Ok(QueryLog::disabled());
        }
        let privacy = privacy_of(cfg)?;
        let mut queues = Vec::new();
        let mut tasks = Vec::new();
        if let Some(path) = &cfg.sqlite {
            let pace = sinks::Pace::SQLITE;
            let q = Arc::new(SinkQueue::new("sqlite", cfg.queue_size, pace.max_batch));
            let mut sink =
                sinks::sqlite::SqliteSink::new(path.clone(), cfg.retention_days, cfg.max_size_mb);
            sink.keep_allowed = cfg.sqlite_log_allowed.unwrap_or(cfg.log_allowed);
            sink.cache_mb = cfg.sqlite_cache_mb;
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
                .map_err(|e| QueryLogError::Config(vec![e.to_string()]))?;
            let pace = sinks::dnstap::PACE;
            let q = Arc::new(SinkQueue::new("dnstap", cfg.queue_size, pace.max_batch));
            tasks.push(tokio::spawn(sinks::run_blocking_sink(
                sinks::dnstap::DnstapSink::new(target),
                q.clone(),
                pace,
                cfg.sink_nice,
                None,
            )));
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
                consumers: Vec::new(),
                consumers_all: false,
                consumer_filter: None,
                tasks: Mutex::new(tasks),
                reporter: Mutex::new(Some(reporter)),
            }),
        })
    }

    /// Would an event with this action be recorded? (Lets the answer path skip building it.)
    pub fn wants(&self, action: EventAction) -> bool {
        self.sinks_want(action) || self.consumers_want(action)
    }

    /// For an allowed query: would its event be recorded, now that its name is known?
    /// (`wants` said yes for the action; a consumer's filter may still say no.)
    pub fn wants_allowed(&self, qname: &str, ts_us: i64) -> bool {
        self.sinks_want(EventAction::Allowed)
            || (self.consumers_want(EventAction::Allowed)
                && self
                    .inner
                    .consumer_filter
                    .as_ref()
                    .is_none_or(|f| f(qname, ts_us)))
    }

    fn sinks_want(&self, action: EventAction) -> bool {
        let inner = &*self.inner;
        !inner.queues.is_empty() && (inner.log_allowed || action != EventAction::Allowed)
    }

    fn consumers_want(&self, action: EventAction) -> bool {
        let inner = &*self.inner;
        !inner.consumers.is_empty() && (inner.consumers_all || action != EventAction::Allowed)
    }

    /// The event with privacy applied, and whether the sinks get it (else only the consumers).
    fn logged(&self, ev: QueryEvent) -> Option<(LoggedEvent, bool)> {
        let to_sinks = self.sinks_want(ev.action);
        if !to_sinks && !self.consumers_want(ev.action) {
            return None;
        }
        let client = self.inner.privacy.apply(ev.client);
        Some((LoggedEvent { ev, client }, to_sinks))
    }

    /// Answer-path entry point for one event on its own (TCP, upstream misses). Never blocks,
    /// never awaits. Drops allowed queries when `log_allowed = false`.
    pub fn emit(&self, ev: QueryEvent) {
        match self.logged(ev) {
            Some((l, true)) => self.push(Arc::new(vec![l])),
            Some((l, false)) => self.push_consumers(Arc::new(vec![l])),
            None => {}
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
        if let Some((l, to_sinks)) = self.logged(ev) {
            if batcher.events.is_empty() && batcher.consumer_only.is_empty() {
                batcher.oldest = now;
            }
            let v = match to_sinks {
                true => &mut batcher.events,
                false => &mut batcher.consumer_only,
            };
            v.push(l);
            if v.len() >= BATCH_EVENTS {
                self.flush(batcher);
            }
        }
    }

    /// Push the batch if its oldest event has waited [`BATCH_MAX_AGE`].
    pub fn flush_due(&self, batcher: &mut EventBatcher, now: std::time::Instant) {
        if !(batcher.events.is_empty() && batcher.consumer_only.is_empty())
            && now.saturating_duration_since(batcher.oldest) >= BATCH_MAX_AGE
        {
            self.flush(batcher);
        }
    }

    /// Push whatever the batcher holds.
    pub fn flush(&self, batcher: &mut EventBatcher) {
        if !batcher.consumer_only.is_empty() {
            let events = std::mem::take(&mut batcher.consumer_only);
            self.push_consumers(Arc::new(events));
        }
        if batcher.events.is_empty() {
            return;
        }
        let events = std::mem::replace(&mut batcher.events, bus::spare_batch(BATCH_EVENTS));
        self.push(Arc::new(events));
    }

    fn push(&self, batch: EventBatch) {
        let all = self.inner.queues.iter().chain(&self.inner.consumers);
        let n = self.inner.queues.len() + self.inner.consumers.len();
        for (i, q) in all.enumerate() {
            if i + 1 == n {
                q.push(batch);
                return;
            }
            q.push(batch.clone());
        }
    }

    fn push_consumers(&self, batch: EventBatch) {
        for q in &self.inner.consumers {
            q.push(batch.clone());
        }
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
        for q in inner.queues.iter().chain(&inner.consumers) {
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

/// How client addresses are written (`client_ip`); with `hash`, the key from
/// `hash_key_file`, or from the default path (a key for this run only when that fails).
fn privacy_of(cfg: &QueryLogConfig) -> Result<Privacy, QueryLogError> {
    let privacy = match cfg.client_ip {
        ClientIpMode::Full => Privacy::Full,
        ClientIpMode::Truncate => Privacy::Truncate,
        ClientIpMode::Hash => {
            let (k0, k1) = match &cfg.hash_key_file {
                Some(p) => load_or_create_hash_key(p).map_err(|source| QueryLogError::HashKey {
                    path: p.clone(),
                    source,
                })?,
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
    Ok(privacy)
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
