//! Aggressive use of the DNSSEC-validated cache (RFC 8198): the NSEC and NSEC3 records of
//! validated negative answers, kept per zone, answer later questions whose non-existence they
//! already prove, without asking the zone's servers. A random-subdomain flood against a signed
//! zone ("water torture") then costs the zone's servers about one query per NSEC span instead
//! of one per question.
//!
//! Only records from answers the validator judged secure are kept (the caller's duty); NSEC3
//! opt-out spans and NSEC3 with too many iterations prove nothing here (RFC 8198 section 5.4),
//! and wildcard expansions are left to the zone's servers.

use std::collections::HashMap;

use data_encoding::BASE32_DNSSEC;
use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use parking_lot::Mutex;

use super::response::{Denial, Want};
use super::{nsec, nsec3};

/// Zones with cached denial records, and records kept per zone: a flood grows the set by at
/// most one span per question until it covers the zone, so the bounds only limit memory.
const MAX_ZONES: usize = 4096;
const MAX_RECORDS_PER_ZONE: usize = 1024;

/// A record with the RRSIGs that cover it and the unix time it stops being usable.
#[derive(Clone)]
struct Kept {
    record: Record,
    sigs: Vec<Record>,
    expires: u32,
}

#[derive(Default)]
struct ZoneDenials {
    /// The zone's SOA (with its RRSIGs): the authority section of a synthesized answer.
    soa: Option<Kept>,
    /// NSEC or NSEC3 records, one per owner.
    denials: Vec<Kept>,
}

/// What a synthesized negative answer carries.
pub struct Synthesized {
    pub rcode: ResponseCode,
    /// The SOA and the NSEC/NSEC3 records of the proof, each with its RRSIGs; TTLs are what
    /// is left of the cached ones.
    pub authority: Vec<Record>,
}

/// Validated denial records per zone apex.
pub struct DenialCache {
    zones: Mutex<HashMap<Name, ZoneDenials>>,
    max_nsec3_iterations: u16,
}

impl DenialCache {
    pub fn new(max_nsec3_iterations: u16) -> Self {
        DenialCache {
            zones: Mutex::new(HashMap::new()),
            max_nsec3_iterations,
        }
    }

    /// Keeps the SOA and the NSEC/NSEC3 records (with their RRSIGs) of a negative answer from
    /// `zone` that the validator judged secure. A record lives for its TTL, capped by the
    /// SOA's negative TTL (RFC 8198 section 5.4).
    pub fn remember(&self, zone: &Name, authority: &[Record], now: u32) {
        let zone = zone.to_lowercase();
        let negative_ttl = authority
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) if r.name == zone => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .unwrap_or(0);
        if negative_ttl == 0 {
            return;
        }
        let sigs_of = |r: &Record| -> Vec<Record> {
            authority
                .iter()
                .filter(|s| {
                    s.name == r.name
                        && matches!(&s.data, RData::DNSSEC(DNSSECRData::RRSIG(sig))
                            if sig.input().type_covered == r.record_type())
                })
                .cloned()
                .collect()
        };
        let kept = |r: &Record| Kept {
            record: r.clone(),
            sigs: sigs_of(r),
            expires: now.saturating_add(r.ttl.min(negative_ttl)),
        };
        let mut zones = self.zones.lock();
        if zones.len() >= MAX_ZONES && !zones.contains_key(&zone) {
            zones.retain(|_, z| z.denials.iter().any(|k| k.expires > now));
            if zones.len() >= MAX_ZONES {
                zones.clear();
            }
        }
        let entry = zones.entry(zone.clone()).or_default();
        for r in authority {
            match r.record_type() {
                RecordType::SOA if r.name == zone => entry.soa = Some(kept(r)),
                RecordType::NSEC | RecordType::NSEC3 if zone.zone_of(&r.name) => {
                    entry
                        .denials
                        .retain(|k| k.record.name != r.name && k.expires > now);
                    if entry.denials.len() >= MAX_RECORDS_PER_ZONE {
                        entry.denials.remove(0);
                    }
                    entry.denials.push(kept(r));
                }
                _ => {}
            }
        }
    }

    /// A negative answer for (`name`, `qtype`) proven by cached records of the closest zone
    /// above `name` that has any, or `None` (then ask the servers).
    pub fn synthesize(&self, name: &Name, qtype: RecordType, now: u32) -> Option<Synthesized> {
        if matches!(qtype, RecordType::DS | RecordType::ANY | RecordType::RRSIG) {
            return None;
        }
        let name = name.to_lowercase();
        let zones = self.zones.lock();
        let mut apex = name.clone();
        let zone = loop {
            if let Some(z) = zones.get(&apex) {
                break z;
            }
            if apex.is_root() {
                return None;
            }
            apex = apex.base_name();
        };
        let soa = zone.soa.as_ref().filter(|k| k.expires > now)?;
        let live: Vec<&Kept> = zone.denials.iter().filter(|k| k.expires > now).collect();
        let (rcode, used) = self.prove(&live, &apex, &name, qtype)?;
        let mut authority = Vec::new();
        for k in std::iter::once(soa).chain(used) {
            let ttl = k.expires.saturating_sub(now);
            for r in std::iter::once(&k.record).chain(&k.sigs) {
                let mut r = r.clone();
                r.ttl = r.ttl.min(ttl);
                authority.push(r);
            }
        }
        Some(Synthesized { rcode, authority })
    }

    /// NXDOMAIN, else NODATA, proven with `live`; the records the proof may use (all of the
    /// zone's live ones of the chain's kind: the proof functions pick their own).
    fn prove<'a>(
        &self,
        live: &[&'a Kept],
        apex: &Name,
        name: &Name,
        qtype: RecordType,
    ) -> Option<(ResponseCode, Vec<&'a Kept>)> {
        let mut nsecs = Vec::new();
        let mut nsec3s = Vec::new();
        for k in live {
            match &k.record.data {
                RData::DNSSEC(DNSSECRData::NSEC(n)) => nsecs.push((&k.record.name, n)),
                RData::DNSSEC(DNSSECRData::NSEC3(n)) => nsec3s.push((&k.record.name, n)),
                _ => {}
            }
        }
        let attempt = |want: &Want| -> Option<Denial> {
            let proved = if !nsec3s.is_empty() {
                nsec3::prove(&nsec3s, apex, name, want, self.max_nsec3_iterations)
            } else if !nsecs.is_empty() {
                nsec::prove(&nsecs, apex, name, want)
            } else {
                return None;
            };
            proved.ok()
        };
        let rcode = match attempt(&Want::NoName) {
            Some(Denial::NoName) => ResponseCode::NXDomain,
            _ => match attempt(&Want::NoData(qtype))? {
                Denial::NoType { delegation: false } => ResponseCode::NoError,
                // Opt-out, too many iterations, a delegation: the servers must answer.
                _ => return None,
            },
        };
        let relevant3 = if nsec3s.is_empty() {
            Vec::new()
        } else {
            nsec3::relevant_hashes(&nsec3s, apex, name, self.max_nsec3_iterations)
        };
        let used = live
            .iter()
            .copied()
            .filter(|k| proof_record(k, apex, name, &relevant3))
            .collect();
        Some((rcode, used))
    }
}

/// Whether a cached denial record belongs in the answer for `name`: an NSEC whose span holds
/// the name, one of its ancestors or the wildcard below one; an NSEC3 among `relevant3`
/// (owner hashes, see `nsec3::relevant_hashes`).
fn proof_record(k: &Kept, apex: &Name, name: &Name, relevant3: &[Vec<u8>]) -> bool {
    match &k.record.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => {
            let owner = &k.record.name;
            let next = n.next_domain_name();
            let spans = |target: &Name| {
                if owner < next {
                    owner <= target && target < next
                } else {
                    owner <= target && apex.zone_of(target)
                }
            };
            let mut candidate = name.clone();
            loop {
                if spans(&candidate) {
                    return true;
                }
                if let Ok(w) = candidate.prepend_label("*") {
                    if spans(&w) {
                        return true;
                    }
                }
                if candidate == *apex || candidate.is_root() {
                    return false;
                }
                candidate = candidate.base_name();
            }
        }
        RData::DNSSEC(DNSSECRData::NSEC3(_)) => k
            .record
            .name
            .iter()
            .next()
            .and_then(|label| BASE32_DNSSEC.decode(&label.to_ascii_lowercase()).ok())
            .is_some_and(|hash| relevant3.contains(&hash)),
        _ => false,
    }
}
