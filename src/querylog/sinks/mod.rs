//! The sinks and the loop that drives the file-backed ones.
//!
//! SQLite and JSON lines do blocking file I/O, so their work runs on a thread of their own at a
//! lower priority ([`SinkThread`], [`run_blocking_sink`]): the async task waits for events,
//! hands the sink and a batch to that thread, and gets the sink back. dnstap is socket I/O and has its own async loop.
//! Common rules: flush at least every [`FLUSH_INTERVAL`]; a sink that cannot open retries with
//! [`Backoff`] while its queue keeps the newest events (the oldest drop, counted); a failed
//! write counts its batch as dropped, records the error and reopens.

pub mod dnstap;
pub mod jsonl;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::bus::Queued;
use super::bus::SinkQueue;

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
    fn open(&mut self) -> Result<(), String>;
    /// Write and make durable enough to be read by others (flushed). Returns how many
    /// events were written; the rest of the batch was left out by the sink's own filter.
    fn write_batch(&mut self, batch: &[Queued]) -> Result<u64, String>;
    /// Periodic housekeeping (retention).
    fn maintenance(&mut self) -> Result<(), String> {
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
    let worker = match SinkThread::spawn(queue.name(), nice) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(sink = %what, error = %e, "querylog: cannot start the sink thread; this sink is off");
            queue.record_error(format!("cannot start the sink thread: {e}"));
            queue.close();
            queue.discard_all();
            return;
        }
    };
    let mut sink = Some(sink);
    let mut backoff = Backoff::default();
    let mut retry_at = Instant::now();
    let mut maint_at = Instant::now();
    let mut reported_down = false;
    let mut maintained_once = false;
    let mut batch: Vec<Queued> = Vec::new();
    loop {
        let Some(mut s) = sink.take() else { break };
        let closing = queue.is_closed();
        let now = Instant::now();
        if !s.is_open() && (now >= retry_at || closing) {
            let Some((s2, r)) = worker.run(s, |s| s.open()).await else {
                break;
            };
            s = s2;
            match r {
                Ok(()) => {
                    if reported_down {
                        tracing::info!(sink = %what, "querylog: sink is writable again");
                    }
                    reported_down = false;
                    backoff.reset();
                }
                Err(e) => {
                    let d = backoff.next_delay();
                    retry_at = Instant::now() + d;
                    if !reported_down {
                        tracing::error!(sink = %what, error = %e,
                            "querylog: cannot open sink; events are queued then dropped (counted) until it works; retrying");
                    } else {
                        tracing::debug!(sink = %what, error = %e, retry_in = ?d, "querylog: sink still unavailable");
                    }
                    reported_down = true;
                    queue.record_error(e);
                }
            }
        }
        if s.is_open() {
            if let Some(every) = maintenance {
                if Instant::now() >= maint_at && (!closing || !maintained_once) {
                    maint_at = Instant::now() + every;
                    maintained_once = true;
                    let Some((s2, r)) = worker.run(s, |s| s.maintenance()).await else {
                        break;
                    };
                    s = s2;
                    if let Err(e) = r {
                        tracing::error!(sink = %what, error = %e, "querylog: maintenance failed");
                        queue.record_error(e);
                    }
                }
            }
            batch.clear();
            let n = queue.drain_into(pace.max_batch, &mut batch);
            if n > 0 {
                let b = std::mem::take(&mut batch);
                let Some((s2, (r, b))) = worker.run(s, move |s| (s.write_batch(&b), b)).await
                else {
                    queue.add_dropped(n as u64);
                    break;
                };
                s = s2;
                batch = b;
                batch.clear(); // free the events now, not at the next drain
                match r {
                    Ok(written) => {
                        let written = written.min(n as u64);
                        queue.add_written(written);
                        queue.add_skipped(n as u64 - written);
                    }
                    Err(e) => {
                        queue.add_dropped(n as u64);
                        tracing::error!(sink = %what, error = %e, lost = n,
                            "querylog: write failed; batch dropped, reopening");
                        queue.record_error(e);
                        s.close();
                        reported_down = true;
                        retry_at = Instant::now() + backoff.next_delay();
                    }
                }
                if queue.len() >= pace.max_batch || (closing && !queue.is_empty() && s.is_open()) {
                    sink = Some(s);
                    continue;
                }
            }
        }
        if closing {
            let lost = queue.discard_all();
            if lost > 0 {
                tracing::error!(sink = %what, lost, "querylog: sink unavailable at shutdown; events dropped");
            }
            if let Some((s2, ())) = worker.run(s, |s| s.close()).await {
                drop(s2);
            }
            break;
        }
        let open = s.is_open();
        sink = Some(s);
        if open {
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
