//! What one response proves: its answer RRsets verified with the keys of their signer zone,
//! wildcard expansions with their proof that the exact name does not exist, NXDOMAIN and
//! NODATA with their denial proofs, and referrals with a signed DS or a proof of no DS.

use std::sync::Arc;

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC, NSEC3};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::chain::{Context, ZoneSecurity};
use super::verify::{rrsets, verify_rrset, Budget, Rrset, ZoneKey};
use super::{ede, nsec, nsec3, Bogus, Security};

/// What a denial proof is asked to show about a name.
#[derive(Clone, Debug)]
pub(crate) enum Want {
    /// NXDOMAIN: the name does not exist and no wildcard could have produced it.
    NoName,
    /// NODATA: the name (or the wildcard that would match it) has no RRset of this type.
    NoData(RecordType),
    /// A wildcard expansion from `*.source`: the name itself does not exist.
    Wildcard { source: Name },
}

impl std::fmt::Display for Want {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Want::NoName => f.write_str("NXDOMAIN"),
            Want::NoData(t) => write!(f, "NODATA ({t})"),
            Want::Wildcard { source } => write!(f, "the wildcard expansion from *.{source}"),
        }
    }
}

/// What a denial proof showed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    NoName,
    /// The type is absent; `delegation`: the name is an unsigned zone cut (NS, no SOA).
    NoType {
        delegation: bool,
    },
    /// An NSEC3 opt-out span covers the name: insecure.
    OptOut,
    /// NSEC3 iterations above `Limits::nsec3_max_iterations`: insecure (RFC 9276).
    IterationsTooHigh(u16),
}

impl Denial {
    fn to_security(self) -> Security {
        match self {
            Denial::NoName | Denial::NoType { .. } => Security::Secure,
            Denial::OptOut | Denial::IterationsTooHigh(_) => Security::Insecure,
        }
    }
}

type Keys = Arc<Vec<ZoneKey>>;

impl Context<'_> {
    pub async fn validate(
        &self,
        query: &Query,
        response: &Message,
        zone: &Name,
        budget: &mut Budget,
    ) -> Security {
        let qname = query.name().to_lowercase();
        let qtype = query.query_type();
        if self.validator.under_negative_anchor(&qname) {
            return Security::Insecure;
        }
        let rcode = response.metadata.response_code;
        if rcode != ResponseCode::NoError && rcode != ResponseCode::NXDomain {
            return Security::Indeterminate;
        }
        match self.zone_security(zone, budget).await {
            ZoneSecurity::Secure { .. } => {}
            other => return other.to_security(),
        }
        if qtype == RecordType::RRSIG && rcode == ResponseCode::NoError {
            // RRSIGs are not signed themselves (RFC 4035 2.2): the data goes out, never AD.
            return Security::Insecure;
        }

        let answers = rrsets(&response.answers);
        let authority = rrsets(&response.authorities);
        let mut result = Security::Secure;
        let mut wildcards = Vec::new();
        let dnames = dname_targets(&answers);
        for set in &answers {
            // A CNAME synthesized from a DNAME is unsigned; the DNAME RRset vouches for it
            // (RFC 6672 section 5.3.3; the DNAME itself is verified in this loop).
            if set.rtype == RecordType::CNAME && set.sigs.is_empty() && synthesized(set, &dnames) {
                continue;
            }
            match self.verify_answer_set(set, zone, budget).await {
                Ok((security, wildcard)) => {
                    result = result.and(security);
                    wildcards.extend(wildcard);
                }
                Err(security) => return security,
            }
        }

        let target = chain_target(&qname, &answers);
        let positive = rcode == ResponseCode::NoError
            && answers
                .iter()
                .any(|s| s.name == target && (s.rtype == qtype || qtype == RecordType::ANY));
        if positive {
            for (owner, source, signer, keys) in wildcards {
                let want = Want::Wildcard { source };
                match self.prove_absence(&owner, want, response, &signer, &keys, budget) {
                    Ok((denial, _)) => result = result.and(denial.to_security()),
                    Err(b) => return Security::Bogus(b),
                }
            }
            return result;
        }
        let denial_present = authority.iter().any(|s| {
            matches!(
                s.rtype,
                RecordType::SOA | RecordType::NSEC | RecordType::NSEC3
            )
        });
        if !answers.is_empty() && rcode == ResponseCode::NoError && !denial_present {
            // The chain leaves this response (another zone, or a child on other servers):
            // what is here is validated; the iterator validates the rest when it follows it.
            return result;
        }
        if let Some(child) = referral_child(rcode, &answers, &authority, zone) {
            return result.and(
                self.validate_referral(&child, response, &authority, zone, budget)
                    .await,
            );
        }
        // NXDOMAIN or NODATA for the end of the CNAME chain.
        let want = if rcode == ResponseCode::NXDomain {
            Want::NoName
        } else {
            Want::NoData(qtype)
        };
        let (signer, keys) = match self.authority_keys(&authority, &target, zone, budget).await {
            Ok(k) => k,
            Err(security) => return security,
        };
        match self.prove_absence(&target, want, response, &signer, &keys, budget) {
            Ok((denial, _)) => result.and(denial.to_security()),
            Err(b) => Security::Bogus(b),
        }
    }

    /// Verifies one answer RRset with the keys of its signer. `Ok` carries its security and,
    /// for a secure wildcard expansion, what the proof of the exact name's absence needs.
    async fn verify_answer_set(
        &self,
        set: &Rrset<'_>,
        zone: &Name,
        budget: &mut Budget,
    ) -> Result<(Security, Option<(Name, Name, Name, Keys)>), Security> {
        // A DS RRset lives on the parent side of its owner.
        let home = if set.rtype == RecordType::DS {
            set.name.base_name()
        } else {
            set.name.clone()
        };
        let signer = set
            .sigs
            .iter()
            .map(|(s, _)| s.input().signer_name.to_lowercase())
            .find(|s| zone.zone_of(s) && s.zone_of(&home));
        let Some(signer) = signer else {
            return match self.zone_security(&home, budget).await {
                ZoneSecurity::Secure { .. } => Err(Security::Bogus(Bogus::new(
                    ede::RRSIGS_MISSING,
                    format!(
                        "no RRSIG by {zone} or a zone below it for {} {}",
                        set.name, set.rtype
                    ),
                ))),
                other => Ok((other.to_security(), None)),
            };
        };
        let keys = self.signer_keys(&signer, budget).await?;
        let limits = &self.validator.limits;
        match verify_rrset(set, &signer, &keys, self.now, limits, budget) {
            Ok(v) if v.labels < set.name.num_labels() => {
                let source = set.name.trim_to(v.labels as usize);
                Ok((
                    Security::Secure,
                    Some((set.name.clone(), source, signer, keys)),
                ))
            }
            Ok(_) => Ok((Security::Secure, None)),
            Err(b) => Err(Security::Bogus(b)),
        }
    }

    /// The keys of `signer`, which must be a secure zone apex; `Err` is the verdict to return.
    async fn signer_keys(&self, signer: &Name, budget: &mut Budget) -> Result<Keys, Security> {
        match self.zone_security(signer, budget).await {
            ZoneSecurity::Secure { zone, keys } if &zone == signer => Ok(keys),
            ZoneSecurity::Secure { zone, .. } => Err(Security::Bogus(Bogus::new(
                ede::DNSSEC_BOGUS,
                format!("RRSIG signer {signer} is not a zone apex (it is inside {zone})"),
            ))),
            other => Err(other.to_security()),
        }
    }

    /// The signer of the authority section's SOA/NSEC/NSEC3/DS RRsets and its keys. Without
    /// any RRSIG there, the zone holding `target` decides: unsigned is fine only if insecure.
    async fn authority_keys(
        &self,
        authority: &[Rrset<'_>],
        target: &Name,
        zone: &Name,
        budget: &mut Budget,
    ) -> Result<(Name, Keys), Security> {
        let relevant = |s: &&Rrset<'_>| {
            matches!(
                s.rtype,
                RecordType::SOA | RecordType::NSEC | RecordType::NSEC3 | RecordType::DS
            )
        };
        let signer = authority
            .iter()
            .filter(relevant)
            .flat_map(|s| {
                s.sigs
                    .iter()
                    .map(|(sig, _)| sig.input().signer_name.to_lowercase())
            })
            .find(|s| zone.zone_of(s) && s.zone_of(target));
        if let Some(signer) = signer {
            let keys = self.signer_keys(&signer, budget).await?;
            return Ok((signer, keys));
        }
        let soa = authority
            .iter()
            .find(|s| s.rtype == RecordType::SOA && zone.zone_of(&s.name));
        // Without an SOA the zone asked decides; a forwarder's answer names no zone (the root
        // stands for it), so there the name itself does.
        let home = match soa {
            Some(s) => s.name.clone(),
            None if zone.is_root() => target.clone(),
            None => zone.clone(),
        };
        match self.zone_security(&home, budget).await {
            ZoneSecurity::Secure { .. } => {
                let code = if authority.iter().any(|s| relevant(&s)) {
                    ede::RRSIGS_MISSING
                } else {
                    ede::NSEC_MISSING
                };
                Err(Security::Bogus(Bogus::new(
                    code,
                    format!("no signed denial of existence for {target} in {home}"),
                )))
            }
            other => Err(other.to_security()),
        }
    }

    async fn validate_referral(
        &self,
        child: &Name,
        response: &Message,
        authority: &[Rrset<'_>],
        zone: &Name,
        budget: &mut Budget,
    ) -> Security {
        if let Some(ds) = authority
            .iter()
            .find(|s| s.rtype == RecordType::DS && &s.name == child)
        {
            return match self.verify_answer_set(ds, zone, budget).await {
                Ok((security, _)) => security,
                Err(security) => security,
            };
        }
        let (signer, keys) = match self.authority_keys(authority, child, zone, budget).await {
            Ok(k) => k,
            Err(security) => return security,
        };
        let want = Want::NoData(RecordType::DS);
        match self.prove_absence(child, want, response, &signer, &keys, budget) {
            Ok((
                Denial::NoType { delegation: true } | Denial::OptOut | Denial::IterationsTooHigh(_),
                ttl,
            )) => {
                // Remember the insecure cut: the next question for the child fetches no DS.
                self.remember_insecure(child, format!("referral from {signer} proves no DS"), ttl);
                Security::Insecure
            }
            Ok(_) => Security::Bogus(Bogus::new(
                ede::DNSSEC_BOGUS,
                format!("referral to {child}, which the NSEC chain says is no delegation"),
            )),
            Err(b) => Security::Bogus(b),
        }
    }

    /// Verifies the authority section's SOA, NSEC and NSEC3 RRsets with the keys of `apex`
    /// and proves `want` for `name` with them. Returns what was proved and for how long.
    pub(crate) fn prove_absence(
        &self,
        name: &Name,
        want: Want,
        message: &Message,
        apex: &Name,
        keys: &[ZoneKey],
        budget: &mut Budget,
    ) -> Result<(Denial, u32), Bogus> {
        let limits = &self.validator.limits;
        let authority = rrsets(&message.authorities);
        let mut ttl = u32::MAX;
        let mut nsecs: Vec<(&Name, &NSEC)> = Vec::new();
        let mut nsec3s: Vec<(&Name, &NSEC3)> = Vec::new();
        let wanted = |s: &&Rrset<'_>| {
            apex.zone_of(&s.name)
                && matches!(
                    s.rtype,
                    RecordType::SOA | RecordType::NSEC | RecordType::NSEC3
                )
        };
        for set in authority
            .iter()
            .filter(wanted)
            .take(limits.max_denial_records)
        {
            let verified = verify_rrset(set, apex, keys, self.now, limits, budget)?;
            ttl = ttl.min(verified.ttl);
            for record in &set.records {
                match &record.data {
                    RData::DNSSEC(DNSSECRData::NSEC(n)) => nsecs.push((&record.name, n)),
                    RData::DNSSEC(DNSSECRData::NSEC3(n)) => nsec3s.push((&record.name, n)),
                    _ => {}
                }
            }
        }
        let name = name.to_lowercase();
        let proved = if !nsec3s.is_empty() {
            nsec3::prove(&nsec3s, apex, &name, &want, limits.nsec3_max_iterations)
        } else if !nsecs.is_empty() {
            nsec::prove(&nsecs, apex, &name, &want)
        } else {
            return Err(Bogus::new(
                ede::NSEC_MISSING,
                format!("no NSEC or NSEC3 record proves {want} for {name}"),
            ));
        };
        match proved {
            Ok(denial) => Ok((denial, if ttl == u32::MAX { 0 } else { ttl })),
            Err(reason) => Err(Bogus::new(ede::DNSSEC_BOGUS, reason.to_string())),
        }
    }
}

/// (owner, target) of every DNAME in the answer. hickory 0.26 has no DNAME rdata type, so
/// its target is read from the unknown rdata (sent uncompressed, RFC 6672 section 2.5).
fn dname_targets(answers: &[Rrset<'_>]) -> Vec<(Name, Name)> {
    let mut out = Vec::new();
    for set in answers.iter().filter(|s| s.rtype == RecordType::DNAME) {
        for record in &set.records {
            if let RData::Unknown { rdata, .. } = &record.data {
                let mut decoder = BinDecoder::new(&rdata.anything);
                if let Ok(target) = Name::read(&mut decoder) {
                    out.push((set.name.to_lowercase(), target.to_lowercase()));
                }
            }
        }
    }
    out
}

/// Whether an unsigned CNAME is what a DNAME of the answer synthesizes for its owner.
fn synthesized(cname: &Rrset<'_>, dnames: &[(Name, Name)]) -> bool {
    let Some(RData::CNAME(target)) = cname.records.first().map(|r| &r.data) else {
        return false;
    };
    let owner_labels: Vec<&[u8]> = cname.name.iter().collect();
    dnames.iter().any(|(dname, to)| {
        if dname == &cname.name || !dname.zone_of(&cname.name) {
            return false;
        }
        let prefix = &owner_labels[..owner_labels.len() - dname.iter().count()];
        Name::from_labels(prefix.iter().copied())
            .and_then(|p| p.append_name(to))
            .is_ok_and(|expected| expected == target.0)
    })
}

/// The name the answer's CNAME chain ends at (bounded by the number of RRsets).
fn chain_target(qname: &Name, answers: &[Rrset<'_>]) -> Name {
    let mut target = qname.clone();
    for _ in 0..answers.len() {
        let next = answers
            .iter()
            .find(|s| s.rtype == RecordType::CNAME && s.name == target)
            .and_then(|s| {
                s.records.first().and_then(|r| match &r.data {
                    RData::CNAME(c) => Some(c.0.to_lowercase()),
                    _ => None,
                })
            });
        match next {
            Some(n) if n != target => target = n,
            _ => break,
        }
    }
    target
}

/// A referral: NOERROR, no answer, no SOA, and an NS RRset for a name below `zone`.
fn referral_child(
    rcode: ResponseCode,
    answers: &[Rrset<'_>],
    authority: &[Rrset<'_>],
    zone: &Name,
) -> Option<Name> {
    if rcode != ResponseCode::NoError
        || !answers.is_empty()
        || authority.iter().any(|s| s.rtype == RecordType::SOA)
    {
        return None;
    }
    authority
        .iter()
        .find(|s| s.rtype == RecordType::NS && &s.name != zone && zone.zone_of(&s.name))
        .map(|s| s.name.to_lowercase())
}
