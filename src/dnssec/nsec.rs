//! NSEC denial of existence (RFC 4035 sections 3.1.3 and 5.4, RFC 6840 section 4.1).
//!
//! Input: NSEC records already verified with the zone's keys, owned within `apex`.

use hickory_proto::dnssec::rdata::NSEC;
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::ProtoError;

use super::response::{Denial, Want};

/// Why NSEC or NSEC3 records do not prove a denial. The text is the EDE reason of the bogus
/// answer. Boxed: the names make the reason large, and a `Result` carrying it is returned on
/// every proof.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub(crate) struct DenialError(Box<DenialFailure>);

impl From<DenialFailure> for DenialError {
    fn from(f: DenialFailure) -> Self {
        DenialError(Box::new(f))
    }
}

pub(crate) fn fail<T>(f: DenialFailure) -> Result<T, DenialError> {
    Err(f.into())
}

/// What [`DenialError`] holds.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DenialFailure {
    #[error("no NSEC proves that {0} does not exist")]
    NoNameProof(Name),
    #[error("{name} has a closer encloser {encloser} than the wildcard at {wildcard}")]
    CloserEncloser {
        name: Name,
        encloser: Name,
        wildcard: Name,
    },
    #[error("the NSEC at {name} lists {qtype} or CNAME")]
    TypePresent { name: Name, qtype: RecordType },
    #[error("the NSEC at {0} is from the child side of the cut")]
    ChildSide(Name),
    #[error("the NSEC at {0} is a parent-side delegation NSEC")]
    ParentSide(Name),
    #[error("no NSEC matches or covers {0}")]
    NoMatchOrCover(Name),
    #[error("the wildcard {wildcard} has {qtype} or CNAME")]
    WildcardHasType { wildcard: Name, qtype: RecordType },
    #[error("no NSEC proves {name} {qtype} absent")]
    NoTypeProof { name: Name, qtype: RecordType },
    #[error("an NSEC shows that {0} exists")]
    Exists(Name),
    #[error("the NSEC chain shows {0} exists (an empty non-terminal)")]
    EmptyNonTerminal(Name),
    #[error("cannot form the wildcard at {encloser}: {error}")]
    Wildcard { encloser: Name, error: ProtoError },
    // NSEC3 (`nsec3.rs`); the wildcard variants above serve both.
    #[error("no usable NSEC3 record of {0}")]
    Nsec3NoUsable(Name),
    #[error("an NSEC3 shows that {0} exists")]
    Nsec3Exists(Name),
    #[error("no NSEC3 proves that {0} does not exist")]
    Nsec3NoNameProof(Name),
    #[error("{name} is not below the wildcard at {wildcard}")]
    NotBelowWildcard { name: Name, wildcard: Name },
    #[error("no NSEC3 covers the next closer name {0}")]
    NextCloser(Name),
    #[error("the NSEC3 of {name} lists {qtype} or CNAME")]
    Nsec3TypePresent { name: Name, qtype: RecordType },
    #[error("the NSEC3 of {0} is from the child side of the cut")]
    Nsec3ChildSide(Name),
    #[error("the NSEC3 of {0} is a parent-side delegation NSEC3")]
    Nsec3ParentSide(Name),
    #[error("no NSEC3 matches {0} and the span covering it is not opt-out")]
    NotOptOut(Name),
    #[error("no NSEC3 proves {name} {qtype} absent")]
    Nsec3NoTypeProof { name: Name, qtype: RecordType },
    #[error("cannot hash {name}: {error}")]
    Hash { name: Name, error: ProtoError },
    #[error("{name} is not in the zone {apex}")]
    OutOfZone { name: Name, apex: Name },
    #[error("the closest encloser {0} is a delegation")]
    DelegationEncloser(Name),
    #[error("no NSEC3 proves a closest encloser of {0}")]
    NoEncloser(Name),
}

/// Proves `want` for `name` with verified NSECs of the zone `apex`.
pub(crate) fn prove(
    nsecs: &[(&Name, &NSEC)],
    apex: &Name,
    name: &Name,
    want: &Want,
) -> Result<Denial, DenialError> {
    let nsecs: Vec<(&Name, &NSEC)> = nsecs
        .iter()
        .copied()
        .filter(|(owner, _)| apex.zone_of(owner))
        .collect();
    match want {
        Want::NoName => {
            let ce = no_name(&nsecs, apex, name)?;
            let wildcard = wildcard_at(&ce)?;
            if covering(&nsecs, apex, &wildcard).is_none() {
                return fail(DenialFailure::NoNameProof(wildcard));
            }
            Ok(Denial::NoName)
        }
        Want::NoData(qtype) => no_data(&nsecs, apex, name, *qtype),
        Want::Wildcard { source } => {
            let ce = no_name(&nsecs, apex, name)?;
            // A closer encloser than the wildcard's parent would mean a closer wildcard could
            // have matched (RFC 4035 section 5.3.4).
            if ce.num_labels() > source.num_labels() {
                return fail(DenialFailure::CloserEncloser {
                    name: name.clone(),
                    encloser: ce,
                    wildcard: source.clone(),
                });
            }
            Ok(Denial::NoName)
        }
    }
}

fn no_data(
    nsecs: &[(&Name, &NSEC)],
    apex: &Name,
    name: &Name,
    qtype: RecordType,
) -> Result<Denial, DenialError> {
    if let Some((_, nsec)) = nsecs.iter().find(|(owner, _)| *owner == name) {
        let types = nsec.type_set();
        if types.contains(qtype) || types.contains(RecordType::CNAME) {
            return fail(DenialFailure::TypePresent {
                name: name.clone(),
                qtype,
            });
        }
        let delegation = types.contains(RecordType::NS) && !types.contains(RecordType::SOA);
        if qtype == RecordType::DS {
            if types.contains(RecordType::SOA) {
                return fail(DenialFailure::ChildSide(name.clone()));
            }
        } else if nsec.is_ancestor_delegation() {
            return fail(DenialFailure::ParentSide(name.clone()));
        }
        return Ok(Denial::NoType { delegation });
    }
    let Some((_, cover)) = covering(nsecs, apex, name) else {
        return fail(DenialFailure::NoMatchOrCover(name.clone()));
    };
    // An empty non-terminal: the next name is below `name`, so `name` exists without data.
    if name.zone_of(cover.next_domain_name()) && cover.next_domain_name() != name {
        return Ok(Denial::NoType { delegation: false });
    }
    // Otherwise a wildcard NODATA: `name` does not exist and the wildcard at its closest
    // encloser has no such type.
    let ce = no_name(nsecs, apex, name)?;
    let wildcard = wildcard_at(&ce)?;
    match nsecs.iter().find(|(owner, _)| **owner == wildcard) {
        Some((_, nsec))
            if !nsec.type_set().contains(qtype) && !nsec.type_set().contains(RecordType::CNAME) =>
        {
            Ok(Denial::NoType { delegation: false })
        }
        Some(_) => fail(DenialFailure::WildcardHasType { wildcard, qtype }),
        None => fail(DenialFailure::NoTypeProof {
            name: name.clone(),
            qtype,
        }),
    }
}

/// Proves that `name` does not exist and returns its closest encloser: the longest ancestor
/// the covering NSEC shows to exist.
fn no_name(nsecs: &[(&Name, &NSEC)], apex: &Name, name: &Name) -> Result<Name, DenialError> {
    if nsecs.iter().any(|(owner, _)| *owner == name) {
        return fail(DenialFailure::Exists(name.clone()));
    }
    let Some((owner, nsec)) = covering(nsecs, apex, name) else {
        return fail(DenialFailure::NoNameProof(name.clone()));
    };
    if name.zone_of(nsec.next_domain_name()) {
        return fail(DenialFailure::EmptyNonTerminal(name.clone()));
    }
    let a = common_ancestor(name, owner);
    let b = common_ancestor(name, nsec.next_domain_name());
    let ce = if a.num_labels() >= b.num_labels() {
        a
    } else {
        b
    };
    Ok(if apex.zone_of(&ce) { ce } else { apex.clone() })
}

/// The NSEC whose span covers `name` (owner < name < next, or past the last owner when the
/// chain wraps to the apex). A parent-side NSEC at a cut above `name` covers nothing below
/// the cut (RFC 6840 section 4.1).
pub(crate) fn covering<'a>(
    nsecs: &[(&'a Name, &'a NSEC)],
    apex: &Name,
    name: &Name,
) -> Option<(&'a Name, &'a NSEC)> {
    nsecs.iter().copied().find(|(owner, nsec)| {
        if nsec.is_ancestor_delegation() && owner.zone_of(name) && *owner != name {
            return false;
        }
        let next = nsec.next_domain_name();
        if *owner < next {
            *owner < name && name < next
        } else {
            *owner < name && apex.zone_of(name)
        }
    })
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

/// The longest name that is an ancestor of (or equal to) both.
pub(crate) fn common_ancestor(a: &Name, b: &Name) -> Name {
    let n = a.iter().count().min(b.iter().count());
    (0..=n)
        .rev()
        .map(|k| a.trim_to(k))
        .find(|c| c.zone_of(b))
        .unwrap_or_else(Name::root)
}
