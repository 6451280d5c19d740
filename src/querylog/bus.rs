//! The bounded, non-blocking queue between the answer path and one sink.
//!
//! Every sink has its own [`SinkQueue`], so a slow sink (a dnstap collector that stopped
//! reading) never costs another sink its events. `push` is what `QueryLog::emit` calls on the
//! answer path: it takes a short uncontended-in-practice mutex, never awaits, never blocks on
//! the sink, and never allocates (the ring is allocated up front). When the ring is full the
//! OLDEST event is dropped and the sink's drop counter goes up: under pressure, the newest
//! events are the ones an analyst looks at first.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::Notify;

use super::event::LoggedEvent;

/// Counters of one sink, as reported by `QueryLog::stats`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SinkStats {
    /// "sqlite", "jsonl" or "dnstap"
    pub name: String,
    /// events waiting in the queue now
    pub queued: usize,
    /// events written to the sink
    pub written: u64,
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
    ring: Mutex<VecDeque<Arc<LoggedEvent>>>,
    notify: Notify,
    closed: AtomicBool,
    written: AtomicU64,
    dropped: AtomicU64,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the VecDeque/Option inconsistent in a
    // way that matters here; keep logging rather than propagate the poison.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl SinkQueue {
    pub fn new(name: &'static str, cap: usize) -> SinkQueue {
        let cap = cap.max(1);
        SinkQueue {
            name,
            cap,
            wake_at: (cap / 2).clamp(1, 4096),
            ring: Mutex::new(VecDeque::with_capacity(cap)),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
            written: AtomicU64::new(0),
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
    pub fn push(&self, ev: Arc<LoggedEvent>) {
        if self.closed.load(Ordering::Relaxed) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let (len, evicted) = {
            let mut ring = lock(&self.ring);
            let evicted = if ring.len() >= self.cap { ring.pop_front() } else { None };
            ring.push_back(ev);
            (ring.len(), evicted)
        };
        if evicted.is_some() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        // `evicted` is freed here, outside the lock.
        drop(evicted);
        if len >= self.wake_at {
            self.notify.notify_one();
        }
    }

    /// Consumer side: move up to `max` of the oldest events into `out`.
    pub fn drain_into(&self, max: usize, out: &mut Vec<Arc<LoggedEvent>>) -> usize {
        let mut ring = lock(&self.ring);
        let n = ring.len().min(max);
        out.extend(ring.drain(..n));
        n
    }

    pub fn len(&self) -> usize {
        lock(&self.ring).len()
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
            let n = ring.len();
            ring.clear();
            n as u64
        };
        self.dropped.fetch_add(n, Ordering::Relaxed);
        n
    }

    pub fn add_written(&self, n: u64) {
        self.written.fetch_add(n, Ordering::Relaxed);
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

    fn ev(i: i64) -> Arc<LoggedEvent> {
        Arc::new(LoggedEvent {
            ev: QueryEvent {
                ts_us: i,
                client: "192.0.2.1:5353".parse().unwrap(),
                transport: Transport::Udp,
                qname: format!("n{i}.example"),
                qtype: "A".into(),
                rcode: "NOERROR".into(),
                action: EventAction::Allowed,
                category: None,
                list: None,
                rule: None,
                trigger: None,
                cached: false,
                answers: vec![],
                latency_us: 1,
                server: Arc::from("s"),
                query_wire: None,
                response_wire: None,
            },
            client: ClientId::Token(1),
        })
    }

    #[test]
    fn full_queue_drops_oldest_and_counts() {
        let q = SinkQueue::new("t", 4);
        for i in 0..10 {
            q.push(ev(i));
        }
        let s = q.stats();
        assert_eq!(s.queued, 4);
        assert_eq!(s.dropped, 6);
        let mut out = Vec::new();
        assert_eq!(q.drain_into(100, &mut out), 4);
        let ts: Vec<i64> = out.iter().map(|e| e.ev.ts_us).collect();
        assert_eq!(ts, vec![6, 7, 8, 9], "the newest events survive");
    }

    #[test]
    fn drain_respects_max_and_order() {
        let q = SinkQueue::new("t", 100);
        for i in 0..10 {
            q.push(ev(i));
        }
        let mut out = Vec::new();
        q.drain_into(3, &mut out);
        assert_eq!(out.iter().map(|e| e.ev.ts_us).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(q.len(), 7);
    }

    #[test]
    fn closed_queue_counts_pushes_as_dropped() {
        let q = SinkQueue::new("t", 100);
        q.push(ev(1));
        q.close();
        q.push(ev(2));
        assert_eq!(q.stats().dropped, 1);
        assert_eq!(q.discard_all(), 1);
        assert_eq!(q.stats().dropped, 2);
    }

    #[test]
    fn errors_are_counted_and_last_kept() {
        let q = SinkQueue::new("t", 1);
        q.record_error("a");
        q.record_error("b");
        let s = q.stats();
        assert_eq!((s.errors, s.last_error.as_deref()), (2, Some("b")));
    }
}
