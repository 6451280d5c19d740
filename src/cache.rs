//! The packet cache: (lower-cased qname, qtype, qclass, DO, CD) -> the encoded upstream answer.
//!
//! Entries hold answers as they came from upstream, before any policy, with the offsets of
//! every TTL so a hit is a copy plus a few patched bytes. Expired entries are kept for
//! `serve_stale` and only served when every upstream fails (RFC 8767).

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::dnswire;

/// TTL given to answers served stale (RFC 8767 recommends 30 s).
pub const STALE_TTL: u32 = 30;
/// Longest we keep any answer fresh, whatever upstream says.
pub const MAX_TTL: u32 = 86_400;
/// Negative answers without an SOA are cached this long: RFC 2308 section 5 says they should
/// not be cached at all; a few seconds (Unbound keeps them 5 s) spares upstream a flood.
pub const DEFAULT_NEGATIVE_TTL: u32 = 5;

/// One cached answer.
#[derive(Debug)]
pub struct CachedAnswer {
    /// The response as encoded for the lower-cased question, ID 0, no OPT record.
    pub wire: Box<[u8]>,
    ttl_offsets: Box<[u16]>,
    pub inserted: Instant,
    /// Seconds the answer stays fresh (smallest TTL in it, bounded).
    pub ttl: u32,
    pub rcode: u8,
    /// CNAME targets in the answer chain (lower case, no trailing dot), for response policy.
    pub cname_targets: Box<[Box<str>]>,
    /// A/AAAA addresses in the answer, for response policy and the query log (shared with
    /// the log's events, hence `Arc`).
    pub addresses: Arc<[IpAddr]>,
    /// The question name (lower case, no trailing dot), made once so that logging a cache
    /// hit does not build it again.
    pub qname: Arc<str>,
    /// DNSSEC-validated: AD is set for clients that ask for it (DO or AD in the query).
    pub secure: bool,
    /// A background refresh of this entry was started (at most one per entry).
    prefetch_claimed: AtomicBool,
}

impl CachedAnswer {
    /// `wire` must be a valid encoded response (from hickory's encoder) without OPT.
    pub fn new(
        wire: Vec<u8>,
        rcode: u8,
        cname_targets: Vec<Box<str>>,
        addresses: Vec<IpAddr>,
    ) -> Option<Self> {
        let (offsets, min_ttl) = dnswire::ttl_offsets(&wire)?;
        let ttl = min_ttl.unwrap_or(DEFAULT_NEGATIVE_TTL).min(MAX_TTL);
        let has_question = wire.get(4..6).is_some_and(|c| c != [0, 0]);
        let qname =
            match dnswire::question_name_end(&wire, dnswire::HEADER_LEN).filter(|_| has_question) {
                Some(end) => Arc::from(dnswire::name_to_string(&wire[dnswire::HEADER_LEN..end])),
                None => Arc::from(""),
            };
        Some(Self {
            wire: wire.into_boxed_slice(),
            ttl_offsets: offsets.into_boxed_slice(),
            inserted: Instant::now(),
            ttl,
            rcode,
            cname_targets: cname_targets.into_boxed_slice(),
            addresses: Arc::from(addresses),
            qname,
            secure: false,
            prefetch_claimed: AtomicBool::new(false),
        })
    }

    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Whether a hit at `now` should refresh this entry in the background: it is in the last
    /// 10 % of its TTL (Unbound's `prefetch`), and no refresh was started for it yet (the first
    /// caller claims it).
    pub fn claim_prefetch(&self, now: Instant) -> bool {
        let age = now.saturating_duration_since(self.inserted).as_millis() as u64;
        let ttl = self.ttl as u64 * 1000;
        ttl > 0 && age * 10 >= ttl * 9 && !self.prefetch_claimed.swap(true, Ordering::Relaxed)
    }

    pub fn age(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.inserted)
            .as_secs()
            .min(u32::MAX as u64) as u32
    }

    pub fn is_fresh(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.inserted) < Duration::from_secs(self.ttl as u64)
    }

    /// Writes the answer for a client into `out`: its ID and question spelling, RD/CD as it
    /// asked, AD when the answer is secure and the client asked for AD (`wants_ad`: DO or AD
    /// set, RFC 6840 5.7), TTLs aged (or `STALE_TTL` when serving stale).
    #[allow(clippy::too_many_arguments)] // each argument is one field patched into the copy
    pub fn render(
        &self,
        out: &mut Vec<u8>,
        id: u16,
        query_flags: u16,
        qname: &[u8],
        now: Instant,
        stale: bool,
        wants_ad: bool,
    ) {
        out.clear();
        out.extend_from_slice(&self.wire);
        dnswire::set_u16(out, 0, id);
        let keep = dnswire::FLAG_RD | dnswire::FLAG_CD;
        let mut flags =
            (dnswire::get_u16(out, 2) & !(keep | dnswire::FLAG_AD)) | (query_flags & keep);
        if self.secure && wants_ad && !stale {
            flags |= dnswire::FLAG_AD;
        }
        dnswire::set_u16(out, 2, flags);
        // The question was stored lower-cased; echo the client's spelling (0x20 clients check it).
        let qend = dnswire::HEADER_LEN + qname.len();
        if out.len() >= qend {
            out[dnswire::HEADER_LEN..qend].copy_from_slice(qname);
        }
        let age = self.age(now);
        for &off in self.ttl_offsets.iter() {
            let off = off as usize;
            let ttl = if stale {
                STALE_TTL
            } else {
                dnswire::read_u32(&self.wire, off).saturating_sub(age)
            };
            dnswire::write_u32(out, off, ttl);
        }
    }
}

/// Result of a cache lookup.
pub enum Lookup {
    Fresh(Arc<CachedAnswer>),
    /// Expired but within the serve-stale window: use only if upstream fails.
    Stale(Arc<CachedAnswer>),
    Miss,
}

#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub stale_served: u64,
    pub entries: usize,
    pub evictions: u64,
}

pub struct PacketCache {
    // aHash: fast, and keyed per process so clients cannot aim names at one bucket.
    map: DashMap<Box<[u8]>, Arc<CachedAnswer>, ahash::RandomState>,
    capacity: usize,
    stale_window: Duration,
    hits: AtomicU64,
    misses: AtomicU64,
    stale_served: AtomicU64,
    evictions: AtomicU64,
    evicting: AtomicBool,
}

impl PacketCache {
    pub fn new(capacity: usize, stale_window: Duration) -> Self {
        Self {
            map: DashMap::with_capacity_and_hasher(
                capacity.min(1 << 16),
                ahash::RandomState::new(),
            ),
            capacity: capacity.max(1),
            stale_window,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            evicting: AtomicBool::new(false),
        }
    }

    /// Builds the key of a question into `key` (cleared first). The last byte holds DO (bit 0)
    /// and CD (bit 1); `pipeline::dns64` sets bit 7 for the answers it synthesizes.
    pub fn key_into(
        key: &mut Vec<u8>,
        qname: &[u8],
        qtype: u16,
        qclass: u16,
        dnssec_ok: bool,
        cd: bool,
    ) {
        key.clear();
        dnswire::lowercase_name_into(qname, key);
        key.extend_from_slice(&qtype.to_be_bytes());
        key.extend_from_slice(&qclass.to_be_bytes());
        key.push(dnssec_ok as u8 | (cd as u8) << 1);
    }

    pub fn lookup(&self, key: &[u8], now: Instant) -> Lookup {
        let found = self.map.get(key).map(|e| Arc::clone(e.value()));
        match found {
            Some(e) if e.is_fresh(now) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Fresh(e)
            }
            Some(e) if self.within_stale_window(&e, now) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Stale(e)
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    /// A stale copy, if any, for when upstream failed.
    pub fn stale(&self, key: &[u8], now: Instant) -> Option<Arc<CachedAnswer>> {
        let e = self.map.get(key).map(|e| Arc::clone(e.value()))?;
        if self.within_stale_window(&e, now) || e.is_fresh(now) {
            self.stale_served.fetch_add(1, Ordering::Relaxed);
            Some(e)
        } else {
            None
        }
    }

    fn within_stale_window(&self, e: &CachedAnswer, now: Instant) -> bool {
        now.saturating_duration_since(e.inserted)
            < Duration::from_secs(e.ttl as u64) + self.stale_window
    }

    pub fn insert(&self, key: Box<[u8]>, answer: Arc<CachedAnswer>) {
        if self.map.len() >= self.capacity {
            self.evict();
        }
        self.map.insert(key, answer);
    }

    /// Makes room: first everything past its stale window, then arbitrary entries (hash order)
    /// down to 90% of capacity. One thread evicts at a time; others insert meanwhile.
    fn evict(&self) {
        if self.evicting.swap(true, Ordering::Acquire) {
            return;
        }
        let now = Instant::now();
        let before = self.map.len();
        self.map.retain(|_, e| self.within_stale_window(e, now));
        let target = self.capacity - self.capacity / 10;
        let mut excess = self.map.len().saturating_sub(target);
        if excess > 0 {
            self.map.retain(|_, _| {
                if excess > 0 {
                    excess -= 1;
                    false
                } else {
                    true
                }
            });
        }
        let removed = before.saturating_sub(self.map.len());
        self.evictions.fetch_add(removed as u64, Ordering::Relaxed);
        self.evicting.store(false, Ordering::Release);
    }

    /// Removes every entry (or the entries of one lower-cased wire name).
    pub fn flush(&self, qname_lower: Option<&[u8]>) -> usize {
        let before = self.map.len();
        match qname_lower {
            None => self.map.clear(),
            Some(name) => self
                .map
                .retain(|k, _| !(k.len() == name.len() + 5 && k.starts_with(name))),
        }
        before.saturating_sub(self.map.len())
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            stale_served: self.stale_served.load(Ordering::Relaxed),
            entries: self.map.len(),
            evictions: self.evictions.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, OpCode, Query};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn answer(ttl: u32) -> Arc<CachedAnswer> {
        let mut m = Message::response(0, OpCode::Query);
        let name = Name::from_ascii("www.example.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(
            name,
            ttl,
            RData::A("192.0.2.1".parse().unwrap()),
        ));
        Arc::new(CachedAnswer::new(m.to_vec().unwrap(), 0, vec![], vec![]).unwrap())
    }

    fn key(name: &[u8]) -> Box<[u8]> {
        let mut k = Vec::new();
        PacketCache::key_into(&mut k, name, 1, 1, false, false);
        k.into_boxed_slice()
    }

    #[test]
    fn key_ignores_case() {
        assert_eq!(
            key(b"\x03WWW\x07example\x00"),
            key(b"\x03www\x07EXAMPLE\x00")
        );
    }

    #[test]
    fn hit_then_capacity_bound() {
        let c = PacketCache::new(10, Duration::from_secs(60));
        let now = Instant::now();
        c.insert(key(b"\x01a\x00"), answer(300));
        assert!(matches!(
            c.lookup(&key(b"\x01A\x00"), now),
            Lookup::Fresh(_)
        ));
        assert!(matches!(c.lookup(&key(b"\x01b\x00"), now), Lookup::Miss));
        for i in 0..100u8 {
            c.insert(key(&[1, b'a' + (i % 26), 1, i, 0]), answer(300));
        }
        assert!(c.stats().entries <= 10, "{:?}", c.stats());
        assert!(c.stats().evictions > 0);
        assert_eq!(c.stats().hits, 1);
    }

    #[test]
    fn zero_ttl_is_stale_at_once_and_render_patches() {
        let c = PacketCache::new(10, Duration::from_secs(60));
        c.insert(key(b"\x03www\x07example\x00"), answer(0));
        let now = Instant::now();
        let Lookup::Stale(e) = c.lookup(&key(b"\x03www\x07example\x00"), now) else {
            panic!("expected stale")
        };
        let mut out = Vec::new();
        e.render(
            &mut out,
            0xBEEF,
            dnswire::FLAG_RD,
            b"\x03WwW\x07example\x00",
            now,
            true,
            false,
        );
        let m = Message::from_vec(&out).unwrap();
        assert_eq!(m.metadata.id, 0xBEEF);
        assert_eq!(m.answers[0].ttl, STALE_TTL);
        assert_eq!(m.queries[0].name().to_ascii(), "WwW.example.");
    }
}
