//! Reading one authoritative server's reply: is it an answer (possibly a CNAME/DNAME chain), a
//! negative answer, a referral, or useless (lame)? Everything is scrubbed on the way: only
//! records inside the bailiwick of the zone we asked, on the chain of the question, or glue for
//! the referral's name servers survive. Nothing else reaches the caches or the client.

use std::collections::HashSet;
use std::net::IpAddr;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinDecodable;

use super::delegation::{NameServer, MAX_ADDRS_PER_NS, MAX_NS_PER_ZONE};

/// Longest CNAME/DNAME chain followed, across all zones (Unbound stops at 11 restarts).
pub const MAX_CHAIN: usize = 12;

#[derive(Debug)]
pub enum Classified {
    /// A positive or negative answer from the zone's authority.
    Answer(ZoneAnswer),
    /// A referral to a zone cut below the zone we asked.
    Referral {
        zone: Name,
        servers: Vec<NameServer>,
        ttl: u32,
    },
    /// No answer, no referral, or a referral up or sideways: ask another server.
    Lame,
    /// The chain loops inside this reply.
    Loop(Name),
}

#[derive(Debug, Clone)]
pub struct ZoneAnswer {
    pub rcode: ResponseCode,
    /// The chain from the question's name, in order: CNAMEs (DNAMEs with their synthesized
    /// CNAMEs) and the final RRset, with covering RRSIGs.
    pub records: Vec<Record>,
    /// For negative answers: SOA and NSEC/NSEC3 (with RRSIGs) proving them.
    pub authority: Vec<Record>,
    /// Where the chain leaves this zone: resolution continues at this name.
    pub continue_at: Option<Name>,
    /// The last name of the chain inside this zone (the name a negative answer is about).
    pub last: Name,
    /// The zone cut whose servers were asked.
    pub asked: Name,
}

impl ZoneAnswer {
    /// The apex of the zone this answer really came from: `asked`, or a zone below it that the
    /// same servers also serve, as its SOA owner or RRSIG signer shows (a server authoritative
    /// for parent and child answers from the child, without a referral).
    pub fn apex(&self, asked: &Name) -> Name {
        let mut apex = asked.clone();
        for r in self.authority.iter().chain(self.records.iter()) {
            let candidate = match &r.data {
                RData::SOA(_) => r.name.clone(),
                RData::DNSSEC(DNSSECRData::RRSIG(sig)) => sig.input().signer_name.clone(),
                _ => continue,
            };
            if asked.zone_of(&candidate)
                && candidate.num_labels() > apex.num_labels()
                && candidate.zone_of(&r.name)
            {
                apex = candidate;
            }
        }
        apex
    }

    /// The zone the validator is told this answer came from: `apex`, widened to the closest
    /// common ancestor of it and every RRSIG signer of the chain inside the zone asked. A
    /// chain that crosses from a zone into a child the same servers serve carries both
    /// zones' signatures, and each RRset must be verified with its own signer's keys.
    pub fn validation_zone(&self, apex: &Name) -> Name {
        let mut zone = apex.clone();
        for r in &self.records {
            let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data else {
                continue;
            };
            let signer = &sig.input().signer_name;
            if self.asked.zone_of(signer) {
                while !zone.zone_of(signer) && !zone.is_root() {
                    zone = zone.base_name();
                }
            }
        }
        zone
    }
}

/// Classifies `reply` from a server of `zone` to the question (`qname`, `qtype`).
pub fn classify(reply: &Message, zone: &Name, qname: &Name, qtype: RecordType) -> Classified {
    let rcode = reply.metadata.response_code;
    if !matches!(rcode, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Classified::Lame;
    }
    let chain = match walk_chain(reply, zone, qname, qtype) {
        Ok(c) => c,
        Err(name) => return Classified::Loop(name),
    };
    let answered = chain.found;
    if answered || chain.continue_at.is_some() {
        // A wildcard expansion comes with the NSEC/NSEC3 proving the name itself absent.
        let mut authority = negative_proof(reply, zone, &chain.last);
        authority.retain(|r| r.record_type() != RecordType::SOA && !covers(r, RecordType::SOA));
        return Classified::Answer(ZoneAnswer {
            rcode: ResponseCode::NoError,
            records: chain.records,
            authority,
            continue_at: chain.continue_at,
            last: chain.last,
            asked: zone.clone(),
        });
    }
    // Nothing for the chain's last name in this reply: a referral, a negative answer, or lame.
    let last = chain.last;
    // A referral whatever the AA bit says (some servers set it on referrals): no data, no SOA,
    // NS records for a cut below the zone.
    if rcode == ResponseCode::NoError && !has_soa(reply, zone) {
        if let Some(referral) = referral(reply, zone, &last, qtype) {
            return referral;
        }
    }
    let authority = negative_proof(reply, zone, &last);
    let has_soa = authority.iter().any(|r| r.record_type() == RecordType::SOA);
    // NODATA without SOA or NS (RFC 2308 section 2.2, "type 3"): the server shows other data
    // at the name and none of the type asked.
    let other_data_only = rcode == ResponseCode::NoError
        && reply.answers.iter().any(|r| r.name == last)
        && !reply
            .authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS);
    if rcode == ResponseCode::NXDomain || has_soa || reply.metadata.authoritative || other_data_only
    {
        return Classified::Answer(ZoneAnswer {
            rcode,
            records: chain.records,
            authority,
            continue_at: None,
            last,
            asked: zone.clone(),
        });
    }
    Classified::Lame
}

struct Chain {
    records: Vec<Record>,
    found: bool,
    continue_at: Option<Name>,
    last: Name,
}

/// Follows the question's name through CNAMEs and DNAMEs inside this reply and this zone.
fn walk_chain(
    reply: &Message,
    zone: &Name,
    qname: &Name,
    qtype: RecordType,
) -> Result<Chain, Name> {
    let mut records = Vec::new();
    let mut current = qname.clone();
    let mut seen: HashSet<Name> = HashSet::new();
    // DNAMEs applied so far: one that applies again rewrites into its own subtree, growing
    // the name each time (RFC 6672 3.3's loop), as much a loop as a CNAME seen twice.
    let mut dnames: HashSet<Name> = HashSet::new();
    for _ in 0..=MAX_CHAIN {
        if !zone.zone_of(&current) {
            // The rest of the chain is another zone's to answer.
            return Ok(Chain {
                records,
                found: false,
                continue_at: Some(current.clone()),
                last: current,
            });
        }
        if !seen.insert(current.to_lowercase()) {
            return Err(current);
        }
        let own: Vec<Record> = rrset_at(reply, &current, qtype).cloned().collect();
        // QTYPE=RRSIG: the signatures are the answer (RFC 4035 section 2.2).
        let answered = if qtype == RecordType::RRSIG {
            !own.is_empty()
        } else {
            own.iter().any(|r| r.record_type() != RecordType::RRSIG)
        };
        if answered {
            records.extend(own);
            return Ok(Chain {
                records,
                found: true,
                continue_at: None,
                last: current,
            });
        }
        // A DNAME first: its synthesized CNAME is ours, not the one the server may add.
        if let Some((dname, target)) = dname_for(reply, zone, &current) {
            if !dnames.insert(dname.name.to_lowercase()) {
                return Err(current);
            }
            records.extend(rrset_at(reply, &dname.name, RecordType::DNAME).cloned());
            records.push(Record::from_rdata(
                current.clone(),
                dname.ttl,
                RData::CNAME(CNAME(target.clone())),
            ));
            current = target;
            continue;
        }
        if qtype != RecordType::CNAME {
            if let Some(target) = reply.answers.iter().find_map(|r| match &r.data {
                RData::CNAME(CNAME(t)) if r.name == current => Some(t.clone()),
                _ => None,
            }) {
                records.extend(rrset_at(reply, &current, RecordType::CNAME).cloned());
                current = target;
                continue;
            }
        }
        let moved = !records.is_empty();
        // Chain stopped inside the zone with no data for its last name: negative or referral
        // (unless the server simply did not include the target: then ask for it).
        let continue_at = (moved
            && reply.metadata.response_code == ResponseCode::NoError
            && !has_soa(reply, zone))
        .then(|| current.clone());
        return Ok(Chain {
            records,
            found: false,
            continue_at,
            last: current,
        });
    }
    Err(current)
}

fn has_soa(reply: &Message, zone: &Name) -> bool {
    reply
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA && zone.zone_of(&r.name))
}

/// A DNAME in the reply whose owner is a proper ancestor of `name`, inside the zone, and the
/// name it rewrites `name` to.
fn dname_for(reply: &Message, zone: &Name, name: &Name) -> Option<(Record, Name)> {
    reply.answers.iter().find_map(|r| {
        if r.record_type() != RecordType::DNAME
            || !zone.zone_of(&r.name)
            || !r.name.zone_of(name)
            || r.name == *name
        {
            return None;
        }
        let RData::Unknown { rdata, .. } = &r.data else {
            return None;
        };
        let target = Name::from_bytes(&rdata.anything).ok()?;
        let keep = (name.num_labels() - r.name.num_labels()) as usize;
        let labels: Vec<Vec<u8>> = name
            .iter()
            .take(keep)
            .map(|l| l.to_vec())
            .chain(target.iter().map(|l| l.to_vec()))
            .collect();
        // Too long for a domain name: the DNAME cannot apply (RFC 6672: YXDOMAIN); ignore it.
        let rewritten = Name::from_labels(labels).ok()?;
        Some((r.clone(), rewritten))
    })
}

/// The answer section's records at `name` of type `rtype` (any type for ANY), with the RRSIGs
/// covering them.
fn rrset_at<'a>(
    reply: &'a Message,
    name: &'a Name,
    rtype: RecordType,
) -> impl Iterator<Item = &'a Record> + 'a {
    reply.answers.iter().filter(move |r| {
        r.name == *name
            && (r.record_type() == rtype || rtype == RecordType::ANY || covers(r, rtype))
    })
}

fn covers(r: &Record, rtype: RecordType) -> bool {
    matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(sig)) if sig.input().type_covered == rtype)
}

/// A referral to a zone cut strictly below `zone` and at or above `name`; `None` when the
/// authority section has no NS at all; `Lame` for NS records pointing up or sideways.
fn referral(reply: &Message, zone: &Name, name: &Name, qtype: RecordType) -> Option<Classified> {
    let ns: Vec<&Record> = reply
        .authorities
        .iter()
        .filter(|r| r.record_type() == RecordType::NS)
        .collect();
    let first = ns.first()?;
    let cut = first.name.clone();
    let below_zone = zone.zone_of(&cut) && cut != *zone;
    if !below_zone || !cut.zone_of(name) {
        // The zone's own NS beside an authoritative (empty) answer is no referral. NS pointing
        // up or sideways is lame whatever the AA bit says: NS without SOA is no negative
        // answer (RFC 2308 section 2.2), so another server must be asked.
        let own_ns = cut == *zone && reply.metadata.authoritative;
        return (!own_ns).then_some(Classified::Lame);
    }
    if qtype == RecordType::DS && cut == *name {
        // A DS question answered with the child's delegation: the parent has no DS (the NSEC
        // proof, if any, is in the authority section).
        return None;
    }
    let mut servers: Vec<NameServer> = Vec::new();
    let mut ttl = u32::MAX;
    for r in ns.iter().filter(|r| r.name == cut) {
        let RData::NS(target) = &r.data else { continue };
        ttl = ttl.min(r.ttl);
        if servers.len() < MAX_NS_PER_ZONE && !servers.iter().any(|s| s.name == target.0) {
            servers.push(NameServer {
                name: target.0.clone(),
                addrs: Vec::new(),
            });
        }
    }
    // Glue: only for the listed name servers, and only inside the bailiwick of the zone we
    // asked (its servers are authoritative for nothing else).
    for r in &reply.additionals {
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        if !zone.zone_of(&r.name) {
            continue;
        }
        if let Some(s) = servers.iter_mut().find(|s| s.name == r.name) {
            if s.addrs.len() < MAX_ADDRS_PER_NS && !s.addrs.contains(&ip) {
                s.addrs.push(ip);
            }
        }
    }
    Some(Classified::Referral {
        zone: cut,
        servers,
        ttl: if ttl == u32::MAX { 0 } else { ttl },
    })
}

/// The SOA and NSEC/NSEC3 records (with their RRSIGs) of a negative answer, inside the zone.
fn negative_proof(reply: &Message, zone: &Name, name: &Name) -> Vec<Record> {
    reply
        .authorities
        .iter()
        .filter(|r| zone.zone_of(&r.name))
        .filter(|r| match r.record_type() {
            RecordType::SOA => r.name.zone_of(name),
            RecordType::NSEC | RecordType::NSEC3 => true,
            RecordType::RRSIG => {
                covers(r, RecordType::SOA)
                    || covers(r, RecordType::NSEC)
                    || covers(r, RecordType::NSEC3)
            }
            _ => false,
        })
        .cloned()
        .collect()
}
