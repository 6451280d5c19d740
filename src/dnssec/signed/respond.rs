//! The responder over a signed zone: what an authoritative server answers with DO=1 —
//! answers (following in-zone CNAMEs), referrals with DS or a proof of no DS, NODATA,
//! NXDOMAIN and wildcard expansions, each with its NSEC or NSEC3 records and their RRSIGs.

use std::collections::BTreeSet;

use hickory_proto::dnssec::Nsec3HashAlgorithm;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::{DenialChain, SignedZone};

impl SignedZone {
    /// The response of an authoritative server for this zone to (qname, qtype) with DO=1.
    /// CNAMEs within the zone are followed (at most 8).
    pub fn respond(&self, qname: &Name, qtype: RecordType) -> Message {
        let mut qname = qname.to_lowercase();
        let mut msg = Message::response(0, OpCode::Query);
        msg.add_query(Query::query(qname.clone(), qtype));
        msg.metadata.authoritative = true;
        if !self.apex.zone_of(&qname) {
            msg.metadata.response_code = ResponseCode::Refused;
            return msg;
        }
        for _ in 0..8 {
            match self.answer_into(&mut msg, &qname, qtype) {
                Some(target) if self.apex.zone_of(&target) => qname = target,
                _ => break,
            }
        }
        msg
    }

    /// Adds the answer for (qname, qtype) to `msg`; returns the CNAME target to follow.
    fn answer_into(&self, msg: &mut Message, qname: &Name, qtype: RecordType) -> Option<Name> {
        let delegation = self
            .delegations(&self.records)
            .into_iter()
            .find(|d| d.zone_of(qname));
        if let Some(cut) = delegation.filter(|d| !(d == qname && qtype == RecordType::DS)) {
            msg.metadata.authoritative = false;
            msg.authorities.extend(self.rrset(&cut, RecordType::NS));
            let ds = self.rrset(&cut, RecordType::DS);
            if ds.is_empty() {
                msg.authorities.extend(self.nodata_proof(&cut));
            } else {
                msg.authorities.extend(ds);
            }
            return None;
        }
        let exact = self.rrset(qname, qtype);
        if !exact.is_empty() {
            msg.answers.extend(exact);
            return None;
        }
        let cname = self.rrset(qname, RecordType::CNAME);
        if !cname.is_empty() {
            let target = cname.iter().find_map(|r| match &r.data {
                RData::CNAME(c) => Some(c.0.to_lowercase()),
                _ => None,
            });
            msg.answers.extend(cname);
            return target;
        }
        if self.exists(qname) {
            self.negative(msg, self.nodata_proof(qname));
            return None;
        }
        let ce = self.closest_encloser(qname);
        let wildcard = ce.prepend_label("*").expect("wildcard name");
        if self.has_name(&wildcard) {
            let expansion = self.rrset(&wildcard, qtype);
            let mut proof = self.no_name_proof(qname, &ce, false);
            if expansion.is_empty() {
                proof.extend(self.nodata_proof(&wildcard));
                self.negative(msg, proof);
            } else {
                msg.answers.extend(expansion.into_iter().map(|mut r| {
                    r.name = qname.clone();
                    r
                }));
                msg.authorities.extend(proof);
            }
            return None;
        }
        let proof = self.no_name_proof(qname, &ce, true);
        self.negative(msg, proof);
        msg.metadata.response_code = ResponseCode::NXDomain;
        None
    }

    fn negative(&self, msg: &mut Message, proof: Vec<Record>) {
        msg.authorities
            .extend(self.rrset(&self.apex, RecordType::SOA));
        for r in proof {
            if !msg.authorities.contains(&r) {
                msg.authorities.push(r);
            }
        }
    }

    /// Denial records showing `name` exists without the asked type (or is an ENT).
    fn nodata_proof(&self, name: &Name) -> Vec<Record> {
        match self.options.denial {
            DenialChain::Nsec => {
                let owner = if self.has_name(name) {
                    name.clone()
                } else {
                    self.nsec_covering(name)
                };
                self.rrset(&owner, RecordType::NSEC)
            }
            DenialChain::Nsec3 { .. } => match self.nsec3_matching(name) {
                Some(owner) => self.rrset(&owner, RecordType::NSEC3),
                // Opt-out: no NSEC3 at the name; prove the closest encloser and the span.
                None => self.no_name_proof(name, &self.closest_encloser(name), false),
            },
        }
    }

    /// Denial records showing `name` does not exist below `ce`; with `wildcard_too`, that
    /// `*.ce` does not exist either.
    fn no_name_proof(&self, name: &Name, ce: &Name, wildcard_too: bool) -> Vec<Record> {
        let wildcard = ce.prepend_label("*").expect("wildcard name");
        let mut out = Vec::new();
        match self.options.denial {
            DenialChain::Nsec => {
                out.extend(self.rrset(&self.nsec_covering(name), RecordType::NSEC));
                if wildcard_too {
                    out.extend(self.rrset(&self.nsec_covering(&wildcard), RecordType::NSEC));
                }
            }
            DenialChain::Nsec3 { .. } => {
                let next_closer = name.trim_to(ce.iter().count() + 1);
                if let Some(owner) = self.nsec3_matching(ce) {
                    out.extend(self.rrset(&owner, RecordType::NSEC3));
                }
                out.extend(self.rrset(&self.nsec3_covering(&next_closer), RecordType::NSEC3));
                if wildcard_too {
                    out.extend(self.rrset(&self.nsec3_covering(&wildcard), RecordType::NSEC3));
                }
            }
        }
        out.dedup();
        out
    }

    fn names(&self) -> BTreeSet<Name> {
        self.records
            .iter()
            .filter(|r| !matches!(r.record_type(), RecordType::NSEC3 | RecordType::RRSIG))
            .map(|r| r.name.clone())
            .collect()
    }

    fn has_name(&self, name: &Name) -> bool {
        self.records
            .iter()
            .any(|r| &r.name == name && r.record_type() != RecordType::NSEC3)
    }

    /// The name exists: it owns records or is an empty non-terminal.
    fn exists(&self, name: &Name) -> bool {
        self.names().iter().any(|n| name.zone_of(n))
    }

    fn closest_encloser(&self, name: &Name) -> Name {
        let mut ce = name.base_name();
        while !self.exists(&ce) && ce != self.apex {
            ce = ce.base_name();
        }
        ce
    }

    fn nsec_covering(&self, name: &Name) -> Name {
        let owners: Vec<Name> = self
            .records
            .iter()
            .filter(|r| r.record_type() == RecordType::NSEC)
            .map(|r| r.name.clone())
            .collect();
        // Without a chain (an unsigned zone) the apex stands in; it owns no NSEC.
        owners
            .iter()
            .filter(|o| *o < name)
            .max()
            .or_else(|| owners.iter().max())
            .cloned()
            .unwrap_or_else(|| self.apex.clone())
    }

    fn nsec3_hash(&self, name: &Name) -> Vec<u8> {
        let DenialChain::Nsec3 {
            iterations,
            ref salt,
            ..
        } = self.options.denial
        else {
            return Vec::new();
        };
        Nsec3HashAlgorithm::SHA1
            .hash(salt, name, iterations)
            .expect("hash")
            .as_ref()
            .to_vec()
    }

    fn nsec3_matching(&self, name: &Name) -> Option<Name> {
        let h = self.nsec3_hash(name);
        self.nsec3_owners
            .contains_key(&h)
            .then(|| self.nsec3_owner(&h))
    }

    fn nsec3_covering(&self, name: &Name) -> Name {
        let h = self.nsec3_hash(name);
        let before = self
            .nsec3_owners
            .range(..h)
            .next_back()
            .or_else(|| self.nsec3_owners.iter().next_back());
        before
            .map(|(h, _)| self.nsec3_owner(h))
            .unwrap_or_else(|| self.apex.clone())
    }
}
