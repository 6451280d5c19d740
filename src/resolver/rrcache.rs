//! The record cache of the iterator: RRsets (with the RRSIGs that cover them), negative answers
//! (RFC 2308) — NXDOMAIN per name, which also covers every name below it (RFC 8020) — and recent
//! failures per question (RFC 9520). TTLs are clamped to [min_ttl, max_ttl] on the way in and
//! aged on the way out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// How long a failed question is answered from the failure cache (RFC 9520: at least 1 s,
/// at most 5 min; Unbound uses 5 s... we do too).
pub const FAILURE_TTL: Duration = Duration::from_secs(5);
/// Negative answers without an SOA are cached this long (RFC 2308 section 5: "should not be
/// cached"; Unbound keeps them 5 s).
const NEGATIVE_TTL_WITHOUT_SOA: u32 = 5;

/// What the cache knows about a question.
#[derive(Debug, Clone)]
pub enum Cached {
    /// The RRset of the asked type (or, for another type, the name's CNAME).
    Records(Vec<Record>),
    /// NODATA, with the authority records (SOA, NSEC/NSEC3) that came with it.
    NoData(Vec<Record>),
    /// NXDOMAIN for the name or an ancestor, with its authority records.
    NxDomain(Vec<Record>),
    Failed,
}

#[derive(Debug)]
struct Slot {
    records: Arc<[Record]>,
    negative: bool,
    /// DNSSEC-validated as secure when it entered the cache.
    secure: bool,
    inserted: Instant,
    expires: Instant,
}

impl Slot {
    fn aged(&self, now: Instant) -> Vec<Record> {
        let age = now
            .saturating_duration_since(self.inserted)
            .as_secs()
            .min(u32::MAX as u64) as u32;
        self.records
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.ttl = r.ttl.saturating_sub(age);
                r
            })
            .collect()
    }
}

pub struct RecordCache {
    rrsets: DashMap<(Name, RecordType), Slot, ahash::RandomState>,
    nxdomain: DashMap<Name, Slot, ahash::RandomState>,
    failures: DashMap<(Name, RecordType), Instant, ahash::RandomState>,
    capacity: usize,
    min_ttl: u32,
    max_ttl: u32,
}

impl RecordCache {
    pub fn new(capacity: usize, min_ttl: u32, max_ttl: u32) -> Self {
        Self {
            rrsets: DashMap::with_hasher(ahash::RandomState::new()),
            nxdomain: DashMap::with_hasher(ahash::RandomState::new()),
            failures: DashMap::with_hasher(ahash::RandomState::new()),
            capacity: capacity.max(1024),
            min_ttl,
            max_ttl: max_ttl.max(min_ttl),
        }
    }

    pub fn clamp(&self, ttl: u32) -> u32 {
        ttl.clamp(self.min_ttl, self.max_ttl)
    }

    /// What is cached for the question, and whether it was validated as secure.
    pub fn get(&self, name: &Name, rtype: RecordType) -> Option<(Cached, bool)> {
        let now = Instant::now();
        let name = name.to_lowercase();
        if let Some(until) = self.failures.get(&(name.clone(), rtype)) {
            if *until > now {
                return Some((Cached::Failed, false));
            }
        }
        if let Some(slot) = self
            .rrsets
            .get(&(name.clone(), rtype))
            .filter(|s| s.expires > now)
        {
            let cached = if slot.negative {
                Cached::NoData(slot.aged(now))
            } else {
                Cached::Records(slot.aged(now))
            };
            return Some((cached, slot.secure));
        }
        if rtype != RecordType::CNAME {
            if let Some(slot) = self
                .rrsets
                .get(&(name.clone(), RecordType::CNAME))
                .filter(|s| s.expires > now && !s.negative)
            {
                return Some((Cached::Records(slot.aged(now)), slot.secure));
            }
        }
        // RFC 8020: an NXDOMAIN for an ancestor means nothing exists below it.
        for n in (1..=name.num_labels()).rev() {
            let cut = name.trim_to(n as usize);
            if let Some(slot) = self.nxdomain.get(&cut).filter(|s| s.expires > now) {
                return Some((Cached::NxDomain(slot.aged(now)), slot.secure));
            }
        }
        None
    }

    /// Caches one RRset (all records share owner and type; RRSIGs covering it may be included).
    pub fn put_rrset(&self, name: &Name, rtype: RecordType, records: Vec<Record>, secure: bool) {
        if records.is_empty() {
            return;
        }
        let ttl = records.iter().map(|r| r.ttl).min().unwrap_or(0);
        self.insert_rrset(name, rtype, records, ttl, false, secure);
    }

    pub fn put_nodata(&self, name: &Name, rtype: RecordType, authority: Vec<Record>, secure: bool) {
        let ttl = negative_ttl(&authority);
        self.insert_rrset(name, rtype, authority, ttl, true, secure);
    }

    pub fn put_nxdomain(&self, name: &Name, authority: Vec<Record>, secure: bool) {
        let ttl = self.clamp(negative_ttl(&authority));
        let authority = self.clamped(authority, ttl);
        let now = Instant::now();
        self.make_room(now);
        self.nxdomain.insert(
            name.to_lowercase(),
            Slot {
                records: authority.into(),
                negative: true,
                secure,
                inserted: now,
                expires: now + Duration::from_secs(ttl as u64),
            },
        );
    }

    pub fn put_failure(&self, name: &Name, rtype: RecordType) {
        if self.failures.len() >= self.capacity {
            let now = Instant::now();
            self.failures.retain(|_, until| *until > now);
        }
        self.failures
            .insert((name.to_lowercase(), rtype), Instant::now() + FAILURE_TTL);
    }

    fn insert_rrset(
        &self,
        name: &Name,
        rtype: RecordType,
        records: Vec<Record>,
        ttl: u32,
        negative: bool,
        secure: bool,
    ) {
        let ttl = self.clamp(ttl);
        let records = self.clamped(records, ttl);
        let now = Instant::now();
        self.make_room(now);
        let slot = Slot {
            records: records.into(),
            negative,
            secure,
            inserted: now,
            expires: now + Duration::from_secs(ttl as u64),
        };
        self.rrsets.insert((name.to_lowercase(), rtype), slot);
    }

    /// Every record of an RRset gets the RRset's (clamped) TTL.
    fn clamped(&self, mut records: Vec<Record>, ttl: u32) -> Vec<Record> {
        for r in &mut records {
            r.ttl = ttl;
        }
        records
    }

    fn make_room(&self, now: Instant) {
        if self.rrsets.len() + self.nxdomain.len() < self.capacity {
            return;
        }
        self.rrsets.retain(|_, s| s.expires > now);
        self.nxdomain.retain(|_, s| s.expires > now);
        if self.rrsets.len() + self.nxdomain.len() >= self.capacity {
            let n = self.capacity / 10;
            let victims: Vec<(Name, RecordType)> = self
                .rrsets
                .iter()
                .take(n)
                .map(|e| e.key().clone())
                .collect();
            for v in victims {
                self.rrsets.remove(&v);
            }
            let victims: Vec<Name> = self
                .nxdomain
                .iter()
                .take(n)
                .map(|e| e.key().clone())
                .collect();
            for v in victims {
                self.nxdomain.remove(&v);
            }
        }
    }
}

/// RFC 2308: the negative TTL is the smaller of the SOA record's TTL and its MINIMUM field.
pub fn negative_ttl(authority: &[Record]) -> u32 {
    authority
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
            _ => None,
        })
        .unwrap_or(NEGATIVE_TTL_WITHOUT_SOA)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn soa(ttl: u32, minimum: u32) -> Record {
        let data = SOA::new(n("ns.example."), n("h.example."), 1, 2, 3, 4, minimum);
        Record::from_rdata(n("example."), ttl, RData::SOA(data))
    }

    #[test]
    fn nxdomain_covers_names_below_rfc8020() {
        let c = RecordCache::new(100, 0, 86_400);
        c.put_nxdomain(&n("x.example."), vec![soa(3600, 300)], false);
        match c.get(&n("a.b.X.example."), RecordType::A) {
            Some((Cached::NxDomain(auth), false)) => {
                assert_eq!(auth[0].ttl, 300, "negative TTL = min(SOA TTL, MINIMUM)")
            }
            other => panic!("{other:?}"),
        }
        assert!(c.get(&n("example."), RecordType::A).is_none());
    }

    #[test]
    fn ttls_are_clamped() {
        let c = RecordCache::new(100, 60, 600);
        c.put_rrset(
            &n("a.example."),
            RecordType::A,
            vec![Record::from_rdata(
                n("a.example."),
                5,
                RData::A(A::new(1, 2, 3, 4)),
            )],
            true,
        );
        c.put_rrset(
            &n("b.example."),
            RecordType::A,
            vec![Record::from_rdata(
                n("b.example."),
                99_999,
                RData::A(A::new(1, 2, 3, 4)),
            )],
            false,
        );
        let ttl = |name| match c.get(&n(name), RecordType::A) {
            Some((Cached::Records(r), _)) => r[0].ttl,
            other => panic!("{other:?}"),
        };
        assert_eq!(ttl("a.example."), 60);
        assert_eq!(ttl("b.example."), 600);
    }

    #[test]
    fn failures_are_remembered_briefly() {
        let c = RecordCache::new(100, 0, 86_400);
        c.put_failure(&n("broken.example."), RecordType::A);
        assert!(matches!(
            c.get(&n("broken.example."), RecordType::A),
            Some((Cached::Failed, _))
        ));
        assert!(c.get(&n("broken.example."), RecordType::AAAA).is_none());
    }
}
