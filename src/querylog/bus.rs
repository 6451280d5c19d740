//! The bounded, non-blocking queue between the answer path and one sink.
//!
//! Every sink has its own [`SinkQueue`], so a slow sink (a dnstap collector that stopped
//! reading) never costs another sink its events. The queue holds [`EventBatch`]es: a UDP worker
//! collects up to a few hundred events before it pushes them (see `QueryLog::emit_batched`), so
//! the lock and the reference counts are paid per batch, not per query. `push` never awaits,
//! never blocks on the sink, and never allocates (the ring is allocated up front). Capacity is
//! counted in events; when it would be exceeded the OLDEST batches are dropped and the sink's
//! drop counter goes up by their events: under pressure, the newest events are the ones an
//! analyst looks at first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::Notify;

use super::event::LoggedEvent;

/// Events pushed together; shared by every sink (one allocation per batch).
pub type EventBatch = Arc<Vec<LoggedEvent>>;

/// Emptied batch vectors, handed back by the last sink done with them so the answer path
/// reuses them: a fresh vector per batch (tens of kilobytes) kept the answer thread zeroing
/// new pages. Bounded; a vector beyond the bound, or too small to be worth keeping, is freed.
static SPARE_BATCHES: Mutex<Vec<Vec<LoggedEvent>>> = Mutex::new(Vec::new());
const SPARE_BATCHES_MAX: usize = 64;

/// An empty vector for `capacity` events, reused when one is spare.
pub fn spare_batch(capacity: usize) -> Vec<LoggedEvent> {
    lock(&SPARE_BATCHES)
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// A batch as a queue holds it: its oldest `skip` events were dropped from this queue.
#[derive(Clone)]
pub struct Queued {
    batch: EventBatch,
    skip: usize,
}

impl Queued {
    pub fn new(batch: EventBatch) -> Queued {
        Queued { batch, skip: 0 }
    }
    pub fn events(&self) -> &[LoggedEvent] {
        &self.batch[self.skip..]
    }
    fn len(&self) -> usize {
        self.batch.len() - self.skip
    }

    /// Done with this batch: when no other sink holds it, its events are dropped here and the
    /// emptied vector goes back for [`spare_batch`].
    pub fn recycle(self, min_capacity: usize) {
        if let Some(mut v) = Arc::into_inner(self.batch) {
            if v.capacity() >= min_capacity {
                v.clear();
                let mut spare = lock(&SPARE_BATCHES);
                if spare.len() < SPARE_BATCHES_MAX {
                    spare.push(v);
                }
            }
        }
    }
}

/// Counters of one sink, as reported by `QueryLog::stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// "sqlite", "jsonl" or "dnstap"
    pub name: String,
    /// events waiting in the queue now
    pub queued: usize,
    /// events handed to the sink and written
    pub written: u64,
    /// events handed to the sink and left out by its own filter (SQLite with
    /// `sqlite_log_allowed = false` skips allowed events): not lost, not written
    pub skipped: u64,
    /// events lost: queue overflow, failed writes, sink unavailable at shutdown
    pub dropped: u64,
    /// failures seen (open, write, connect, maintenance)
    pub errors: u64,
    pub last_error: Option<String>,
}

pub struct SinkQueue {
    name: &'static str,
    cap: usize,
    /// wake the sink early once this many events wait (it also wakes on its own timer)
    wake_at: usize,
    ring: Mutex<Ring>,
    notify: Notify,
    closed: AtomicBool,
    written: AtomicU64,
    skipped: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

#[derive(Default)]
struct Ring {
    batches: VecDeque<Queued>,
    /// events in `batches`
    events: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the VecDeque/Option inconsistent in a
    // way that matters here; keep logging rather than propagate the poison.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SinkQueue {
    /// `cap` events at most. The consumer, which takes up to `max_batch` events at a time,
    /// is woken early once a quarter of the queue or a full batch waits.
    pub fn new(name: &'static str, cap: usize, max_batch: usize) -> SinkQueue {
        let cap = cap.max(1);
        SinkQueue {
            name,
            cap,
            wake_at: (cap / 4).min(max_batch).max(1),
            ring: Mutex::new(Ring {
                batches: VecDeque::with_capacity(cap.min(1 << 16)),
                events: 0,
            }),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            written: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Answer-path side. Never blocks on the consumer, never awaits.
    pub fn push(&self, batch: EventBatch) {
        let n = batch.len();
        if n == 0 {
            return;
        }
        if self.closed.load(Ordering::Relaxed) {
            self.dropped.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        let mut evicted = Vec::new();
        let mut lost = 0;
        let len = {
            let mut guard = lock(&self.ring);
            let ring = &mut *guard;
            let mut new = Queued::new(batch);
            // Drop the oldest events until the new batch fits (part of a batch if need be;
            // part of the new one when it alone is larger than the queue).
            let mut excess = (ring.events + n).saturating_sub(self.cap);
            while excess > 0 {
                let Some(front) = ring.batches.front_mut() else {
                    new.skip += excess;
                    lost += excess;
                    break;
                };
                let take = front.len().min(excess);
                front.skip += take;
                ring.events -= take;
                lost += take;
                excess -= take;
                if front.len() == 0 {
                    evicted.extend(ring.batches.pop_front());
                }
            }
            if new.len() > 0 {
                ring.events += new.len();
                ring.batches.push_back(new);
            }
            ring.events
        };
        if lost > 0 {
            self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
        }
        // `evicted` is freed here, outside the lock.
        drop(evicted);
        if len >= self.wake_at {
            self.notify.notify_one();
        }
    }

    /// Consumer side: move the oldest batches into `out` until about `max` events (at least
    /// one batch); returns the number of events moved.
    pub fn drain_into(&self, max: usize, out: &mut Vec<Queued>) -> usize {
        let mut ring = lock(&self.ring);
        let mut n = 0;
        while let Some(front) = ring.batches.front() {
            if n > 0 && n + front.len() > max {
                break;
            }
            n += front.len();
            let b = ring.batches.pop_front().expect("front exists");
            out.push(b);
        }
        ring.events -= n;
        n
    }

    /// Events waiting.
    pub fn len(&self) -> usize {
        lock(&self.ring).events
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Wait until woken by a filling queue or by `close`.
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Stop accepting events (later pushes count as dropped) and wake the consumer.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.notify.notify_one();
        self.notify.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Count everything still queued as dropped (sink gave up or shut down unflushed).
    pub fn discard_all(&self) -> u64 {
        let n = {
            let mut ring = lock(&self.ring);
            let n = ring.events;
            ring.batches.clear();
            ring.events = 0;
            n as u64
        };
        self.dropped.fetch_add(n, Ordering::Relaxed);
        n
    }

    pub fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_skipped(&self, n: u64) {
        self.skipped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_dropped(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Record a failure: counted, kept as `last_error`.
    pub fn record_error(&self, msg: impl Into<String>) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        *lock(&self.last_error) = Some(msg.into());
    }

    pub fn stats(&self) -> SinkStats {
        SinkStats {
            name: self.name.to_string(),
            queued: self.len(),
            written: self.written.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: lock(&self.last_error).clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::event::*;

    fn ev(i: i64) -> EventBatch {
        let mut e =
            crate::querylog::testutil::event(&format!("n{i}.example"), EventAction::Allowed);
        e.ts_us = i;
        Arc::new(vec![LoggedEvent {
            ev: e,
            client: ClientId::Token(1),
        }])
    }

    fn ts(out: &[Queued]) -> Vec<i64> {
        out.iter()
            .flat_map(|b| b.events())
            .map(|e| e.ev.ts_us)
            .collect()
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = SinkQueue::new("t", 4, 2);
        for i in 0..10 {
            q.push(ev(i));
        }
        let s = q.stats();
        assert_eq!(s.queued, 4);
        assert_eq!(s.dropped, 6);
        let mut out = Vec::new();
        assert_eq!(q.drain_into(100, &mut out), 4);
        assert_eq!(ts(&out), vec![6, 7, 8, 9], "the newest events survive");
    }

    #[test]
    fn batches_count_by_events_and_drop_whole() {
        let q = SinkQueue::new("t", 10, 5);
        let batch = |from: i64, n: i64| {
            Arc::new(
                (from..from + n)
                    .map(|i| ev(i)[0].clone())
                    .collect::<Vec<_>>(),
            )
        };
        q.push(batch(0, 4));
        q.push(batch(4, 4));
        assert_eq!(q.len(), 8);
        q.push(batch(8, 4)); // 12 > 10: the two oldest events go
        let s = q.stats();
        assert_eq!((s.queued, s.dropped), (10, 2));
        let mut out = Vec::new();
        assert_eq!(q.drain_into(3, &mut out), 2, "stops before going past max");
        assert_eq!(ts(&out), vec![2, 3]);
        out.clear();
        assert_eq!(q.drain_into(1, &mut out), 4, "but always takes one batch");
        assert_eq!(ts(&out), vec![4, 5, 6, 7]);
        q.push(batch(12, 25)); // larger than the queue: only its newest 10 stay
        let s = q.stats();
        assert_eq!((s.queued, s.dropped), (10, 2 + 4 + 15));
        out.clear();
        assert_eq!(q.drain_into(100, &mut out), 10);
        assert_eq!(ts(&out), (27..37).collect::<Vec<_>>());
        assert!(q.is_empty());
        q.push(Arc::new(Vec::new()));
        assert_eq!(q.stats().queued, 0);
    }

    #[test]
    fn drain_respects_max_and_order() {
        let q = SinkQueue::new("t", 100, 50);
        for i in 0..10 {
            q.push(ev(i));
        }
        let mut out = Vec::new();
        q.drain_into(3, &mut out);
        assert_eq!(ts(&out), vec![0, 1, 2]);
        assert_eq!(q.len(), 7);
    }

    #[test]
    fn closed_queue_counts_pushes_as_dropped() {
        let q = SinkQueue::new("t", 100, 50);
        q.push(ev(1));
        q.close();
        q.push(ev(2));
        assert_eq!(q.stats().dropped, 1);
        assert_eq!(q.discard_all(), 1);
        assert_eq!(q.stats().dropped, 2);
    }

    #[test]
    fn the_last_sink_to_recycle_a_batch_drops_its_events() {
        let batch = ev(1);
        let qname = Arc::clone(&batch[0].ev.qname);
        let (a, b) = (Queued::new(Arc::clone(&batch)), Queued::new(batch));
        a.recycle(1);
        assert_eq!(
            Arc::strong_count(&qname),
            2,
            "another sink still holds the batch"
        );
        b.recycle(1);
        assert_eq!(Arc::strong_count(&qname), 1, "the events are dropped");
        assert!(spare_batch(4).is_empty(), "a spare batch comes back empty");
    }

    #[test]
    fn errors_are_counted_and_last_kept() {
        let q = SinkQueue::new("t", 1, 1);
        q.record_error("a");
        q.record_error("b");
        let s = q.stats();
        assert_eq!((s.errors, s.last_error.as_deref()), (2, Some("b")));
    }
}
