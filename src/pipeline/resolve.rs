//! Cache misses: one upstream resolution per question however many clients ask at once
//! (request coalescing), the result stored in the packet cache, stale answers when upstream fails.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, Record};
use tokio::sync::watch;

use crate::cache::{CachedAnswer, PacketCache, MAX_TTL};
use crate::metrics::Metrics;
use crate::upstream::{ClientFlags, Upstream};

#[derive(Clone)]
pub enum Outcome {
    Answer {
        answer: Arc<CachedAnswer>,
        stale: bool,
    },
    /// SERVFAIL, with the Extended DNS Error (code, text) that says why, when known.
    Failed(Option<(u16, Arc<str>)>),
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct ResolveStats {
    pub upstream_queries: u64,
    pub upstream_failures: u64,
    pub coalesced: u64,
}

pub struct Resolve {
    upstream: Arc<dyn Upstream>,
    cache: Arc<PacketCache>,
    inflight: DashMap<Box<[u8]>, watch::Receiver<Option<Outcome>>, ahash::RandomState>,
    /// A waiting client gives up after this long (a little over the upstream timeout).
    wait_limit: Duration,
    upstream_queries: AtomicU64,
    upstream_failures: AtomicU64,
    coalesced: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Resolve {
    pub fn new(
        upstream: Arc<dyn Upstream>,
        cache: Arc<PacketCache>,
        upstream_timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            upstream,
            cache,
            inflight: DashMap::with_hasher(ahash::RandomState::new()),
            wait_limit: upstream_timeout + Duration::from_millis(250),
            upstream_queries: AtomicU64::new(0),
            upstream_failures: AtomicU64::new(0),
            coalesced: AtomicU64::new(0),
            metrics,
        }
    }

    /// Resolves `query` (lower-cased) for the cache `key`, joining a resolution already under way.
    pub async fn resolve(
        self: &Arc<Self>,
        key: &[u8],
        query: Query,
        flags: ClientFlags,
    ) -> Outcome {
        let mut rx = match self.inflight.entry(key.into()) {
            Entry::Occupied(o) => {
                self.coalesced.fetch_add(1, Ordering::Relaxed);
                o.get().clone()
            }
            Entry::Vacant(v) => {
                let (tx, rx) = watch::channel(None);
                v.insert(rx.clone());
                let entry = InflightEntry {
                    resolve: Arc::clone(self),
                    key: key.into(),
                };
                // Spawned so that a client giving up does not cancel the others' resolution.
                tokio::spawn(async move {
                    let outcome = entry.resolve.fetch(&entry.key, query, flags).await;
                    drop(entry);
                    let _ = tx.send(Some(outcome));
                });
                rx
            }
        };
        let waited = tokio::time::timeout(self.wait_limit, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(v)) => v.clone().unwrap_or(Outcome::Failed(None)),
            _ => Outcome::Failed(Some((22, Arc::from("no answer from upstream in time")))),
        }
    }

    async fn fetch(&self, key: &[u8], query: Query, flags: ClientFlags) -> Outcome {
        self.upstream_queries.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let result = self.upstream.resolve(query.clone(), flags).await;
        let mut ede = None;
        self.metrics
            .upstream_latency
            .observe(started.elapsed().as_secs_f64());
        let built = match result {
            Ok(msg)
                if !matches!(
                    msg.metadata.response_code,
                    ResponseCode::ServFail | ResponseCode::Refused
                ) =>
            {
                cacheable_answer(&query, msg, flags.dnssec_ok).map(Arc::new)
            }
            Ok(msg) => {
                tracing::debug!(query = %query, rcode = %msg.metadata.response_code, "upstream failed");
                None
            }
            Err(e) => {
                tracing::debug!(query = %query, error = %e, "upstream failed");
                ede = e.ede().map(|(code, text)| (code, Arc::from(text)));
                None
            }
        };
        match built {
            Some(answer) => {
                self.cache.insert(key.into(), Arc::clone(&answer));
                Outcome::Answer {
                    answer,
                    stale: false,
                }
            }
            None => {
                self.upstream_failures.fetch_add(1, Ordering::Relaxed);
                self.metrics.upstream_errors.inc();
                match self.cache.stale(key, Instant::now()) {
                    Some(answer) => Outcome::Answer {
                        answer,
                        stale: true,
                    },
                    None => Outcome::Failed(ede),
                }
            }
        }
    }

    /// Refreshes the cache entry under `key` in the background (an entry asked for in the
    /// last 10 % of its TTL): popular names never expire under load. A failure leaves the entry
    /// as it is.
    pub fn prefetch(self: &Arc<Self>, key: &[u8], query: Query, flags: ClientFlags) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        self.metrics.prefetches.inc();
        let this = Arc::clone(self);
        let key: Box<[u8]> = key.into();
        let flags = ClientFlags {
            refresh: true,
            ..flags
        };
        runtime.spawn(async move {
            this.fetch(&key, query, flags).await;
        });
    }

    pub fn upstream(&self) -> &Arc<dyn Upstream> {
        &self.upstream
    }

    pub fn stats(&self) -> ResolveStats {
        ResolveStats {
            upstream_queries: self.upstream_queries.load(Ordering::Relaxed),
            upstream_failures: self.upstream_failures.load(Ordering::Relaxed),
            coalesced: self.coalesced.load(Ordering::Relaxed),
        }
    }
}

/// Re-encodes an upstream answer as we cache it: ID 0, our flags (RA, never AA or AD), the
/// lower-cased question, TTLs capped, negative TTL per RFC 2308 (min of SOA TTL and MINIMUM).
pub fn cacheable_answer(query: &Query, upstream: Message, dnssec_ok: bool) -> Option<CachedAnswer> {
    let upstream = upstream.maybe_strip_dnssec_records(dnssec_ok);
    let mut m = Message::response(0, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.metadata.response_code = upstream.metadata.response_code;
    let secure = upstream.metadata.authentic_data;
    m.add_query(query.clone());
    let cap = |mut r: Record| {
        r.ttl = r.ttl.min(MAX_TTL);
        if let RData::SOA(soa) = &r.data {
            r.ttl = r.ttl.min(soa.minimum);
        }
        r
    };
    m.answers = upstream.answers.into_iter().map(cap).collect();
    m.authorities = upstream.authorities.into_iter().map(cap).collect();
    m.additionals = upstream.additionals.into_iter().map(cap).collect();
    let mut cname_targets = Vec::new();
    let mut addresses: Vec<IpAddr> = Vec::new();
    for r in &m.answers {
        match &r.data {
            RData::CNAME(c) => cname_targets.push(lower_no_dot(&c.0.to_ascii()).into()),
            RData::A(a) => addresses.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => addresses.push(IpAddr::V6(a.0)),
            _ => {}
        }
    }
    let wire = m.to_vec().ok()?;
    CachedAnswer::new(
        wire,
        u16::from(m.metadata.response_code) as u8,
        cname_targets,
        addresses,
    )
    .map(|a| a.secure(secure))
}

pub fn lower_no_dot(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// The in-flight entry of one resolution, removed however the resolution ends: a task
/// cancelled with its runtime (a UDP worker stopping) must not leave an entry that every
/// later query for the name would join and wait on in vain.
struct InflightEntry {
    resolve: Arc<Resolve>,
    key: Box<[u8]>,
}

impl Drop for InflightEntry {
    fn drop(&mut self) {
        self.resolve.inflight.remove(&self.key);
    }
}
