//! NSEC3 denial of existence (RFC 5155 section 8, RFC 9276).
//!
//! Input: NSEC3 records already verified with the zone's keys. Records not directly under
//! `apex`, with undecodable owner hashes, or with parameters other than the first record's
//! are ignored (RFC 5155 section 8.2). The iteration count is checked before any hash is
//! computed, and each name is hashed at most once per proof.

use std::collections::HashMap;

use data_encoding::BASE32_DNSSEC;
use hickory_proto::dnssec::rdata::NSEC3;
use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::rr::{Name, RecordType};

use super::nsec::{fail, DenialError, DenialFailure};
use super::response::{Denial, Want};

struct Entry<'a> {
    hash: Vec<u8>,
    nsec3: &'a NSEC3,
}

struct Chain<'a> {
    salt: &'a [u8],
    iterations: u16,
    entries: Vec<Entry<'a>>,
    hashes: HashMap<Name, Vec<u8>>,
}

/// Proves `want` for `name` with verified NSEC3s of the zone `apex`.
pub(crate) fn prove(
    nsec3s: &[(&Name, &NSEC3)],
    apex: &Name,
    name: &Name,
    want: &Want,
    max_iterations: u16,
) -> Result<Denial, DenialError> {
    let Some(mut chain) = Chain::new(nsec3s, apex) else {
        return fail(DenialFailure::Nsec3NoUsable(apex.clone()));
    };
    if chain.iterations > max_iterations {
        return Ok(Denial::IterationsTooHigh(chain.iterations));
    }
    match want {
        Want::NoName => {
            let h = chain.hash(name)?;
            if chain.matching(&h).is_some() {
                return fail(DenialFailure::Nsec3Exists(name.clone()));
            }
            let (ce, opt_out) = chain.closest_encloser(apex, name)?;
            let wildcard = wildcard_at(&ce)?;
            let wh = chain.hash(&wildcard)?;
            if chain.covering(&wh).is_none() {
                return fail(DenialFailure::Nsec3NoNameProof(wildcard));
            }
            // Opt-out spans may hide unsigned delegations: like Unbound, the proof is insecure.
            Ok(if opt_out {
                Denial::OptOut
            } else {
                Denial::NoName
            })
        }
        Want::NoData(qtype) => no_data(&mut chain, apex, name, *qtype),
        Want::Wildcard { source } => {
            let source_labels = source.iter().count();
            if !source.zone_of(name) || name.iter().count() <= source_labels {
                return fail(DenialFailure::NotBelowWildcard {
                    name: name.clone(),
                    wildcard: source.clone(),
                });
            }
            let next_closer = name.trim_to(source_labels + 1);
            let h = chain.hash(&next_closer)?;
            if chain.covering(&h).is_none() {
                return fail(DenialFailure::NextCloser(next_closer));
            }
            Ok(Denial::NoName)
        }
    }
}

fn no_data(
    chain: &mut Chain<'_>,
    apex: &Name,
    name: &Name,
    qtype: RecordType,
) -> Result<Denial, DenialError> {
    let h = chain.hash(name)?;
    if let Some(entry) = chain.matching(&h) {
        let types = entry.nsec3.type_set();
        if types.contains(qtype) || types.contains(RecordType::CNAME) {
            return fail(DenialFailure::Nsec3TypePresent {
                name: name.clone(),
                qtype,
            });
        }
        let delegation = types.contains(RecordType::NS) && !types.contains(RecordType::SOA);
        if qtype == RecordType::DS {
            if types.contains(RecordType::SOA) {
                return fail(DenialFailure::Nsec3ChildSide(name.clone()));
            }
        } else if entry.nsec3.is_ancestor_delegation() {
            return fail(DenialFailure::Nsec3ParentSide(name.clone()));
        }
        return Ok(Denial::NoType { delegation });
    }
    let (ce, opt_out) = chain.closest_encloser(apex, name)?;
    if qtype == RecordType::DS {
        // RFC 5155 section 8.6: no NSEC3 at the name, and the next closer name is covered
        // by an opt-out span: an unsigned delegation may be there.
        return if opt_out {
            Ok(Denial::OptOut)
        } else {
            fail(DenialFailure::NotOptOut(name.clone()))
        };
    }
    let wildcard = wildcard_at(&ce)?;
    let wh = chain.hash(&wildcard)?;
    match chain.matching(&wh) {
        Some(e)
            if !e.nsec3.type_set().contains(qtype)
                && !e.nsec3.type_set().contains(RecordType::CNAME) =>
        {
            Ok(Denial::NoType { delegation: false })
        }
        Some(_) => fail(DenialFailure::WildcardHasType { wildcard, qtype }),
        None => fail(DenialFailure::Nsec3NoTypeProof {
            name: name.clone(),
            qtype,
        }),
    }
}

/// The owner hashes of the NSEC3 records that match or cover `name`, each of its ancestors
/// down from `apex`, or the wildcard below each: every record a proof about `name` can use
/// (for answers built from a cache of many, RFC 8198). Empty above the iteration limit.
pub(crate) fn relevant_hashes(
    nsec3s: &[(&Name, &NSEC3)],
    apex: &Name,
    name: &Name,
    max_iterations: u16,
) -> Vec<Vec<u8>> {
    let Some(mut chain) = Chain::new(nsec3s, apex) else {
        return Vec::new();
    };
    if chain.iterations > max_iterations || !apex.zone_of(name) {
        return Vec::new();
    }
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut candidate = name.clone();
    loop {
        for target in [Some(candidate.clone()), candidate.prepend_label("*").ok()]
            .into_iter()
            .flatten()
        {
            let Ok(hash) = chain.hash(&target) else {
                continue;
            };
            if let Some(e) = chain.matching(&hash).or_else(|| chain.covering(&hash)) {
                if !out.contains(&e.hash) {
                    out.push(e.hash.clone());
                }
            }
        }
        if candidate == *apex || candidate.is_root() {
            return out;
        }
        candidate = candidate.base_name();
    }
}

impl<'a> Chain<'a> {
    fn new(nsec3s: &[(&Name, &'a NSEC3)], apex: &Name) -> Option<Self> {
        let mut entries: Vec<Entry<'a>> = Vec::new();
        let mut params: Option<(&'a [u8], u16)> = None;
        for (owner, nsec3) in nsec3s {
            if owner.iter().count() != apex.iter().count() + 1 || !apex.zone_of(owner) {
                continue;
            }
            if nsec3.hash_algorithm() != Nsec3HashAlgorithm::SHA1 {
                continue;
            }
            let (salt, iterations) = *params.get_or_insert((nsec3.salt(), nsec3.iterations()));
            if nsec3.salt() != salt || nsec3.iterations() != iterations {
                continue;
            }
            let Some(label) = owner.iter().next() else {
                continue;
            };
            let Ok(hash) = BASE32_DNSSEC.decode(&label.to_ascii_lowercase()) else {
                continue;
            };
            if hash.len() != nsec3.next_hashed_owner_name().len() {
                continue;
            }
            entries.push(Entry { hash, nsec3 });
        }
        let (salt, iterations) = params?;
        (!entries.is_empty()).then(|| Chain {
            salt,
            iterations,
            entries,
            hashes: HashMap::new(),
        })
    }

    fn hash(&mut self, name: &Name) -> Result<Vec<u8>, DenialError> {
        if let Some(h) = self.hashes.get(name) {
            return Ok(h.clone());
        }
        let digest = Nsec3HashAlgorithm::SHA1
            .hash(self.salt, name, self.iterations)
            .map_err(|error| DenialFailure::Hash {
                name: name.clone(),
                error,
            })?;
        let h = digest.as_ref().to_vec();
        self.hashes.insert(name.clone(), h.clone());
        Ok(h)
    }

    fn matching(&self, hash: &[u8]) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.hash == hash)
    }

    /// The NSEC3 whose span (owner hash, next hash) covers `hash`, the last one wrapping.
    fn covering(&self, hash: &[u8]) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| {
            let next = e.nsec3.next_hashed_owner_name();
            if e.hash.as_slice() < next {
                e.hash.as_slice() < hash && hash < next
            } else {
                e.hash.as_slice() < hash || hash < next
            }
        })
    }

    /// The closest provable encloser of a name that does not exist (RFC 5155 section 8.3):
    /// the longest ancestor with a matching NSEC3, and a covering NSEC3 for the next closer
    /// name. Returns the encloser and whether that cover is opt-out.
    fn closest_encloser(&mut self, apex: &Name, name: &Name) -> Result<(Name, bool), DenialError> {
        if !apex.zone_of(name) {
            return fail(DenialFailure::OutOfZone {
                name: name.clone(),
                apex: apex.clone(),
            });
        }
        let (apex_labels, name_labels) = (apex.iter().count(), name.iter().count());
        for k in (apex_labels..name_labels).rev() {
            let candidate = name.trim_to(k);
            let h = self.hash(&candidate)?;
            let Some(entry) = self.matching(&h) else {
                continue;
            };
            if entry.nsec3.is_ancestor_delegation() && k != apex_labels {
                return fail(DenialFailure::DelegationEncloser(candidate));
            }
            let next_closer = name.trim_to(k + 1);
            let nh = self.hash(&next_closer)?;
            return match self.covering(&nh) {
                Some(cover) => Ok((candidate, cover.nsec3.opt_out())),
                None => fail(DenialFailure::NextCloser(next_closer)),
            };
        }
        fail(DenialFailure::NoEncloser(name.clone()))
    }
}

fn wildcard_at(ce: &Name) -> Result<Name, DenialError> {
    ce.prepend_label("*").map_err(|error| {
        DenialFailure::Wildcard {
            encloser: ce.clone(),
            error,
        }
        .into()
    })
}
