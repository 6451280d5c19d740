//! NSEC denial of existence (RFC 4035 sections 3.1.3 and 5.4, RFC 6840 section 4.1).
//!
//! Input: NSEC records already verified with the zone's keys, owned within `apex`.

use hickory_proto::dnssec::rdata::NSEC;
use hickory_proto::rr::{Name, RecordType};

use super::response::{Denial, Want};

/// Proves `want` for `name` with verified NSECs of the zone `apex`.
pub(crate) fn prove(
    nsecs: &[(&Name, &NSEC)],
    apex: &Name,
    name: &Name,
    want: &Want,
) -> Result<Denial, String> {
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
                return Err(format!("no NSEC proves that {wildcard} does not exist"));
            }
            Ok(Denial::NoName)
        }
        Want::NoData(qtype) => no_data(&nsecs, apex, name, *qtype),
        Want::Wildcard { source } => {
            let ce = no_name(&nsecs, apex, name)?;
            // A closer encloser than the wildcard's parent would mean a closer wildcard could
            // have matched (RFC 4035 section 5.3.4).
            if ce.num_labels() > source.num_labels() {
                return Err(format!(
                    "{name} has a closer encloser {ce} than the wildcard at {source}"
                ));
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
) -> Result<Denial, String> {
    if let Some((_, nsec)) = nsecs.iter().find(|(owner, _)| *owner == name) {
        let types = nsec.type_set();
        if types.contains(qtype) || types.contains(RecordType::CNAME) {
            return Err(format!("the NSEC at {name} lists {qtype} or CNAME"));
        }
        let delegation = types.contains(RecordType::NS) && !types.contains(RecordType::SOA);
        if qtype == RecordType::DS {
            if types.contains(RecordType::SOA) {
                return Err(format!(
                    "the NSEC at {name} is from the child side of the cut"
                ));
            }
        } else if nsec.is_ancestor_delegation() {
            return Err(format!(
                "the NSEC at {name} is a parent-side delegation NSEC"
            ));
        }
        return Ok(Denial::NoType { delegation });
    }
    let Some((_, cover)) = covering(nsecs, apex, name) else {
        return Err(format!("no NSEC matches or covers {name}"));
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
        Some(_) => Err(format!("the wildcard {wildcard} has {qtype} or CNAME")),
        None => Err(format!("no NSEC proves {name} {qtype} absent")),
    }
}

/// Proves that `name` does not exist and returns its closest encloser: the longest ancestor
/// the covering NSEC shows to exist.
fn no_name(nsecs: &[(&Name, &NSEC)], apex: &Name, name: &Name) -> Result<Name, String> {
    if nsecs.iter().any(|(owner, _)| *owner == name) {
        return Err(format!("an NSEC shows that {name} exists"));
    }
    let Some((owner, nsec)) = covering(nsecs, apex, name) else {
        return Err(format!("no NSEC proves that {name} does not exist"));
    };
    if name.zone_of(nsec.next_domain_name()) {
        return Err(format!(
            "the NSEC chain shows {name} exists (an empty non-terminal)"
        ));
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

fn wildcard_at(ce: &Name) -> Result<Name, String> {
    ce.prepend_label("*")
        .map_err(|e| format!("cannot form the wildcard at {ce}: {e}"))
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
