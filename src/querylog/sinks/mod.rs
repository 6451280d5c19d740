//! The sinks, the one [`Sink`] trait and the one loop that drives them all ([`supervise`]).
//!
//! Every sink does blocking I/O (files, sockets, HTTP), so each runs on a thread of its own
//! at a lower priority ([`SinkThread`], [`OnThread`], [`run_blocking_sink`]): the async task
//! waits for events, hands the sink and a batch to that thread, and gets the sink back. The
//! encoding happens there too, never on the answer path or the shared runtime.
//! Common rules: flush at least every [`FLUSH_INTERVAL`]; a sink that cannot open retries with
//! [`Backoff`] while its queue keeps the newest events (the oldest drop, counted); a failed
//! write counts its batch as dropped, records the error and reopens.

pub mod clickhouse;
pub mod dnstap;
pub mod jsonl;
pub mod sqlite;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::bus::Queued;
use super::bus::SinkQueue;

/// Why a sink could not open, write or keep its store. Logged, and kept as the sink's last
/// error (its text).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The sink's thread died with an earlier call; the sink is lost.
    #[error("the sink's thread failed earlier")]
    ThreadGone,
    /// A call on the sink's thread panicked.
    #[error("the sink's thread failed")]
    ThreadFailed,
    #[error("not open")]
    NotOpen,
    #[error("{}: cannot open for appending: {source}", path.display())]
    JsonlOpen {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: write failed: {source}", path.display())]
    JsonlWrite {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    SqliteOpen {
        path: PathBuf,
        source: sqlite::OpenError,
    },
    #[error("{}: insert failed: {source}", path.display())]
    SqliteInsert {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{}: retention failed: {source}", path.display())]
    SqliteRetention {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// `action`: "connect", or "create" for a file target.
    #[error("dnstap {target}: {action}: {source}")]
    DnstapOpen {
        target: dnstap::DnstapTarget,
        action: &'static str,
        source: std::io::Error,
    },
    #[error("dnstap {0}: not connected")]
    DnstapNotConnected(dnstap::DnstapTarget),
    #[error("dnstap {0}: write timed out (collector not reading)")]
    DnstapTimedOut(dnstap::DnstapTarget),
    #[error("dnstap {target}: write: {source}")]
    DnstapWrite {
        target: dnstap::DnstapTarget,
        source: std::io::Error,
    },
    /// An insert the server refused or that did not reach it; `hint` says what to do when
    /// the table is missing (else empty).
    #[error("{source}{hint}")]
    ClickhouseInsert {
        source: crate::querylog::clickhouse_client::ClickhouseError,
        hint: &'static str,
    },
    #[error(transparent)]
    Clickhouse(#[from] crate::querylog::clickhouse_client::ClickhouseError),
    #[error("no spool")]
    NoSpool,
    #[error(transparent)]
    Spool(#[from] crate::querylog::spool::SpoolError),
}

/// Every sink writes what it has at least this often (the spec asks for once a second).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// How often a blocking sink writes and how much at once.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// write at least this often (at most [`FLUSH_INTERVAL`]... a second)
    pub interval: Duration,
    /// events handed over in one `write_batch` (one SQLite transaction)
    pub max_batch: usize,
}

impl Pace {
    /// JSON lines: small, frequent appends.
    pub const JSONL: Pace = Pace {
        interval: FLUSH_INTERVAL,
        max_batch: MAX_BATCH,
    };
    /// SQLite: few, large transactions. Each commit rewrites every index page it touched
    /// (a qname index page per distinct name), so the cost per row falls steeply with the
    /// size of the transaction (measured: 4,096 rows per commit cost 2.7x what 65,536 do).
    pub const SQLITE: Pace = Pace {
        interval: Duration::from_millis(500),
        max_batch: 65_536,
    };
}
/// Retention and similar housekeeping (also run once right after opening).
pub const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(60);
/// Largest batch handed to a sink in one go (one SQLite transaction).
pub const MAX_BATCH: usize = 4096;

/// Reconnect / reopen delays: 0.5 s doubling up to 30 s.
#[derive(Debug)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: Self::FIRST }
    }
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_millis(500);
    pub const MAX: Duration = Duration::from_secs(30);
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

/// A sink whose I/O blocks. Each method runs on the blocking pool.
pub trait BlockingSink: Send + 'static {
    /// Human description for messages, e.g. "sqlite /var/lib/dnsward/q.db".
    fn describe(&self) -> String;
    fn is_open(&self) -> bool;
    /// Open (or reopen) the sink.
    fn open(&mut self) -> Result<(), SinkError>;
    /// Write and make durable enough to be read by others (flushed). Returns how many
    /// events were written; the rest of the batch was left out by the sink's own filter.
    fn write_batch(&mut self, batch: &[Queued]) -> Result<u64, SinkError>;
    /// `write_batch` for a sink that may hold events back (a spool): what became of them,
    /// and of events held from earlier. Default: the batch is written, or left out by the
    /// sink's own filter (`skipped`).
    fn write_counted(&mut self, batch: &[Queued], events: usize) -> Result<Delivered, SinkError> {
        self.write_batch(batch).map(|written| {
            let written = written.min(events as u64);
            Delivered {
                written,
                skipped: events as u64 - written,
                ..Default::default()
            }
        })
    }
    /// Does this sink hold events back (so [`BlockingSink::catch_up`] is worth a call)?
    const HOLDS_EVENTS: bool = false;
    /// See [`Sink::catch_up`].
    fn catch_up(&mut self) -> Delivered {
        Delivered::default()
    }
    /// Periodic housekeeping (retention).
    fn maintenance(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Drop handles after a failure or at shutdown; the next `open` starts afresh.
    fn close(&mut self);
}

/// How much lower than the answer path a sink thread runs by default (nice steps, config
/// `sink_nice`). Under overload the CPU goes to answering first; a sink that cannot keep up
/// falls behind and its queue drops the oldest events, counted ("never slow DNS"). With CPU
/// to spare it changes nothing.
pub const DEFAULT_SINK_NICE: i32 = 10;

/// A thread of its own for one sink's blocking I/O, `nice` steps below the process. (Not
/// tokio's blocking pool: its threads are shared, and a thread's priority cannot be raised
/// back without privileges.)
pub struct SinkThread {
    jobs: std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>,
}

impl SinkThread {
    pub fn spawn(name: &str, nice: i32) -> std::io::Result<SinkThread> {
        let (jobs, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new()
            .name(format!("querylog-{name}"))
            .spawn(move || {
                if nice > 0 {
                    lower_this_threads_priority(nice);
                }
                // Ends when the sink's task drops its `SinkThread`.
                for job in rx {
                    job();
                }
            })?;
        Ok(SinkThread { jobs })
    }

    /// Run `f` on this thread with the sink, and get the sink back (None: the job panicked).
    pub async fn run<S, R, F>(&self, sink: S, f: F) -> Option<(S, R)>
    where
        S: Send + 'static,
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move || {
            let mut s = sink;
            let r = f(&mut s);
            let _ = tx.send((s, r));
        });
        if self.jobs.send(job).is_err() {
            tracing::error!("querylog: sink thread is gone; this sink stops");
            return None;
        }
        match rx.await {
            Ok(x) => Some(x),
            Err(_) => {
                tracing::error!("querylog: sink worker failed; this sink stops");
                None
            }
        }
    }
}

/// Raise the calling thread's nice value by `steps` (Linux: a thread id is a valid
/// PRIO_PROCESS target and affects that thread only). Best effort: a failure is logged.
fn lower_this_threads_priority(steps: i32) {
    // SAFETY: plain syscalls on the calling thread's own id; no memory is shared.
    let (tid, current) = unsafe {
        let tid = libc::gettid();
        *libc::__errno_location() = 0;
        let cur = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        (
            tid,
            if *libc::__errno_location() != 0 {
                0
            } else {
                cur
            },
        )
    };
    let want = (current + steps).min(19);
    // SAFETY: as above.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, want) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "querylog: cannot lower the sink thread's priority");
    }
}

/// What became of events a sink was handed (or held from earlier, for a sink with a spool).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// stored where readers find them
    pub written: u64,
    /// left out by the sink's own filter (SQLite without allowed events)
    pub skipped: u64,
    /// given up on (a full spool, say)
    pub dropped: u64,
    /// a failure the sink worked around (spooled instead of sent): counted, kept as last error
    pub error: Option<String>,
}

impl Delivered {
    pub fn written(n: usize) -> Delivered {
        Delivered {
            written: n as u64,
            ..Default::default()
        }
    }
}

/// The one sink interface [`supervise`] drives; every sink today is a [`BlockingSink`] behind
/// [`OnThread`], and an async sink would implement this directly. Errors are messages for the operator (logged and kept as
/// the sink's `last_error`).
#[async_trait::async_trait]
pub trait Sink: Send + 'static {
    /// Human description for messages, e.g. "sqlite /var/lib/dnsward/q.db".
    fn describe(&self) -> String;
    fn is_open(&self) -> bool;
    /// Open (or reopen) the sink.
    async fn open(&mut self) -> Result<(), SinkError>;
    /// Write `events` events held in `batch`. `Err`: the batch is lost (counted by the caller)
    /// and the sink is closed and reopened with back-off.
    async fn write(
        &mut self,
        batch: Vec<Queued>,
        events: usize,
    ) -> (Vec<Queued>, Result<Delivered, SinkError>);
    /// Deliver what the sink still holds (a spool being replayed); called on every wake-up
    /// while open.
    async fn catch_up(&mut self) -> Delivered {
        Delivered::default()
    }
    /// Periodic housekeeping (retention).
    async fn maintenance(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Drop handles after a failure or at shutdown; the next `open` starts afresh.
    async fn close(&mut self);
}

/// A [`BlockingSink`] as a [`Sink`]: every call runs on its own [`SinkThread`].
pub struct OnThread<S: BlockingSink> {
    /// None while a call runs on the thread, or after the thread failed
    sink: Option<S>,
    what: String,
    open: bool,
    worker: SinkThread,
}

impl<S: BlockingSink> OnThread<S> {
    pub fn spawn(sink: S, name: &str, nice: i32) -> std::io::Result<OnThread<S>> {
        Ok(OnThread {
            what: sink.describe(),
            sink: Some(sink),
            open: false,
            worker: SinkThread::spawn(name, nice)?,
        })
    }

    /// Run `f` on the thread. Err when the thread is gone or a job panicked (the sink is lost
    /// then; every later call fails, counted).
    async fn call<R: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut S) -> R + Send + 'static,
    ) -> Result<R, SinkError> {
        let s = self.sink.take().ok_or(SinkError::ThreadGone)?;
        let (s, r) = self
            .worker
            .run(s, move |s| {
                let r = f(s);
                (s.is_open(), r)
            })
            .await
            .ok_or(SinkError::ThreadFailed)?;
        self.open = r.0;
        self.sink = Some(s);
        Ok(r.1)
    }
}

#[async_trait::async_trait]
impl<S: BlockingSink> Sink for OnThread<S> {
    fn describe(&self) -> String {
        self.what.clone()
    }
    fn is_open(&self) -> bool {
        self.open
    }
    async fn open(&mut self) -> Result<(), SinkError> {
        self.call(|s| s.open()).await?
    }
    async fn write(
        &mut self,
        batch: Vec<Queued>,
        events: usize,
    ) -> (Vec<Queued>, Result<Delivered, SinkError>) {
        match self
            .call(move |s| (s.write_counted(&batch, events), batch))
            .await
        {
            Ok((r, batch)) => (batch, r),
            Err(e) => (Vec::new(), Err(e)),
        }
    }
    async fn catch_up(&mut self) -> Delivered {
        if !S::HOLDS_EVENTS || !self.open {
            return Delivered::default();
        }
        self.call(|s| s.catch_up()).await.unwrap_or_default()
    }
    async fn maintenance(&mut self) -> Result<(), SinkError> {
        self.call(|s| s.maintenance()).await?
    }
    async fn close(&mut self) {
        let _ = self.call(|s| s.close()).await;
        self.open = false;
    }
}

/// The background task of one blocking sink. Ends after `queue.close()` once the queue is
/// written (or counted as dropped when the sink is unavailable).
pub async fn run_blocking_sink<S: BlockingSink>(
    sink: S,
    queue: Arc<SinkQueue>,
    pace: Pace,
    nice: i32,
    maintenance: Option<Duration>,
) {
    let what = sink.describe();
    match OnThread::spawn(sink, queue.name(), nice) {
        Ok(s) => supervise(s, queue, pace, maintenance).await,
        Err(e) => {
            tracing::error!(sink = %what, error = %e, "querylog: cannot start the sink thread; this sink is off");
            queue.record_error(format!("cannot start the sink thread: {e}"));
            queue.close();
            queue.discard_all();
        }
    }
}

/// The one supervisor loop of every sink: open with back-off while its queue keeps the newest
/// events, write batches at `pace`, count what was written and dropped, run maintenance,
/// flush and close at shutdown. Ends after `queue.close()`.
pub async fn supervise<S: Sink>(
    mut sink: S,
    queue: Arc<SinkQueue>,
    pace: Pace,
    maintenance: Option<Duration>,
) {
    let what = sink.describe();
    let mut reopen = Reopen {
        backoff: Backoff::default(),
        retry_at: Instant::now(),
        reported_down: false,
    };
    let mut maint_at = Instant::now();
    let mut maintained_once = false;
    let mut batch: Vec<Queued> = Vec::new();
    loop {
        let closing = queue.is_closed();
        if !sink.is_open() && reopen.due(closing) {
            reopen.open(&mut sink, &queue, &what).await;
        }
        if sink.is_open() {
            if let Some(every) = maintenance {
                if Instant::now() >= maint_at && (!closing || !maintained_once) {
                    maint_at = Instant::now() + every;
                    maintained_once = true;
                    if let Err(e) = sink.maintenance().await {
                        tracing::error!(sink = %what, error = %e, "querylog: maintenance failed");
                        queue.record_error(e.to_string());
                    }
                }
            }
            count(&queue, sink.catch_up().await);
            batch.clear();
            let n = queue.drain_into(pace.max_batch, &mut batch);
            if n > 0 {
                write(&mut sink, &queue, &mut batch, n, &what, &mut reopen).await;
                if sink.is_open()
                    && (queue.len() >= pace.max_batch || (closing && !queue.is_empty()))
                {
                    continue;
                }
            }
        }
        if closing {
            let lost = queue.discard_all();
            if lost > 0 {
                tracing::error!(sink = %what, lost, "querylog: sink unavailable at shutdown; events dropped");
            }
            sink.close().await;
            break;
        }
        if sink.is_open() {
            tokio::select! {
                _ = queue.notified() => {}
                _ = tokio::time::sleep(pace.interval) => {}
            }
        } else {
            // Down: do not wake per event (the queue drops oldest by itself); poll for
            // the retry time and for shutdown.
            tokio::time::sleep(FLUSH_INTERVAL).await;
        }
    }
}

/// When [`supervise`] (re)opens its sink: back-off after failures, one error line per outage.
struct Reopen {
    backoff: Backoff,
    retry_at: Instant,
    reported_down: bool,
}

impl Reopen {
    /// At shutdown a sink that has not failed lately gets one more chance to open.
    fn due(&self, closing: bool) -> bool {
        Instant::now() >= self.retry_at || (closing && !self.reported_down)
    }

    async fn open<S: Sink>(&mut self, sink: &mut S, queue: &SinkQueue, what: &str) {
        match sink.open().await {
            Ok(()) => {
                if self.reported_down {
                    tracing::info!(sink = %what, "querylog: sink is writable again");
                }
                self.reported_down = false;
                self.backoff.reset();
            }
            Err(e) => {
                let d = self.backoff.next_delay();
                self.retry_at = Instant::now() + d;
                if !self.reported_down {
                    tracing::error!(sink = %what, error = %e,
                        "querylog: cannot open sink; events are queued then dropped (counted) until it works; retrying");
                } else {
                    tracing::debug!(sink = %what, error = %e, retry_in = ?d, "querylog: sink still unavailable");
                }
                self.reported_down = true;
                queue.record_error(e.to_string());
            }
        }
    }

    /// A write failed (the sink is closed): reopen after the back-off delay.
    fn write_failed(&mut self) {
        self.reported_down = true;
        self.retry_at = Instant::now() + self.backoff.next_delay();
    }
}

/// What became of events, counted in the sink's queue.
fn count(queue: &SinkQueue, d: Delivered) {
    queue.add_written(d.written);
    queue.add_skipped(d.skipped);
    queue.add_dropped(d.dropped);
    if let Some(e) = d.error {
        queue.record_error(e);
    }
}

/// Writes the `n` events drained into `batch` and counts them; a failed write drops them
/// (counted) and closes the sink. `batch` comes back empty, its vector kept for reuse.
async fn write<S: Sink>(
    sink: &mut S,
    queue: &SinkQueue,
    batch: &mut Vec<Queued>,
    n: usize,
    what: &str,
    reopen: &mut Reopen,
) {
    let (b, r) = sink.write(std::mem::take(batch), n).await;
    *batch = b;
    // free the events now, not at the next drain
    for q in batch.drain(..) {
        q.recycle(crate::querylog::BATCH_EVENTS);
    }
    match r {
        Ok(d) => count(queue, d),
        Err(e) => {
            queue.add_dropped(n as u64);
            tracing::error!(sink = %what, error = %e, lost = n,
                "querylog: write failed; batch dropped, reopening");
            queue.record_error(e.to_string());
            sink.close().await;
            reopen.write_failed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nice_of_this_thread() -> i32 {
        // SAFETY: reads the calling thread's own priority.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn sink_thread_runs_jobs_below_the_callers_priority_and_returns_the_sink() {
        let ours = nice_of_this_thread();
        let t = SinkThread::spawn("test", DEFAULT_SINK_NICE).unwrap();
        let (sink, theirs) = t
            .run(vec![1u8], |v| {
                v.push(2);
                nice_of_this_thread()
            })
            .await
            .unwrap();
        assert_eq!(sink, vec![1, 2]);
        assert_eq!(theirs, (ours + DEFAULT_SINK_NICE).min(19));
        // a job that panics is reported as None, not a hang
        assert!(t.run((), |_| -> () { panic!("boom") }).await.is_none());
    }
}
