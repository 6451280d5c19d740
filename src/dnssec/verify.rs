//! RRsets and their signatures: grouping a section into RRsets, checking an RRSIG's validity
//! window (with clock skew), and verifying an RRset with a zone's keys within the limits.
//!
//! Public-key operations are the expensive part of validation and an attacker controls how
//! many signatures and colliding key tags a response carries, so every verification is paid
//! from a [`Budget`] and per-RRset caps apply (`Limits`).

use std::collections::HashMap;

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType, PublicKey, Verifier};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use super::{ede, Bogus, Limits};

/// Signature verifications left for one validation.
pub(crate) struct Budget {
    left: usize,
}

impl Budget {
    pub fn new(verifications: usize) -> Self {
        Budget {
            left: verifications,
        }
    }

    fn spend(&mut self) -> bool {
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

/// Algorithms validated: RSA/SHA-256 and SHA-512, ECDSA P-256 and P-384, Ed25519, and RSA/SHA-1
/// (5 and 7) unless `limits.sha1` is off (RFC 9905 leaves its validation to the resolver; a
/// protective resolver detects forgery wherever it can, as Unbound, BIND, Knot Resolver and
/// PowerDNS do). Zones signed only with other algorithms (DSA, RFC 8624) are insecure
/// (RFC 4035 section 5.2).
pub(crate) fn algorithm_supported(alg: Algorithm, limits: &Limits) -> bool {
    match alg {
        Algorithm::RSASHA256
        | Algorithm::RSASHA512
        | Algorithm::ECDSAP256SHA256
        | Algorithm::ECDSAP384SHA384
        | Algorithm::ED25519 => true,
        #[allow(deprecated)]
        Algorithm::RSASHA1 | Algorithm::RSASHA1NSEC3SHA1 => limits.sha1,
        _ => false,
    }
}

/// ring verifies RSA signatures only with moduli of 1024 to 8192 bits: a zone whose keys are
/// shorter is treated as signed with an unsupported algorithm (insecure), not as bogus.
pub(crate) const MIN_RSA_MODULUS_BITS: usize = 1024;

fn is_rsa(alg: Algorithm) -> bool {
    #[allow(deprecated)]
    let rsa = matches!(
        alg,
        Algorithm::RSASHA1
            | Algorithm::RSASHA1NSEC3SHA1
            | Algorithm::RSASHA256
            | Algorithm::RSASHA512
    );
    rsa
}

/// The modulus length in bits of an RSA DNSKEY's public key (RFC 3110 section 2: exponent
/// length in one octet, or zero and two octets; the exponent; the modulus). `None` if the
/// bytes are malformed.
pub(crate) fn rsa_modulus_bits(public_key: &[u8]) -> Option<usize> {
    let (&first, rest) = public_key.split_first()?;
    let (exp_len, rest) = if first == 0 {
        let (len, rest) = rest.split_at_checked(2)?;
        (u16::from_be_bytes([len[0], len[1]]) as usize, rest)
    } else {
        (first as usize, rest)
    };
    let modulus = rest.get(exp_len..)?;
    let skip = modulus.iter().take_while(|b| **b == 0).count();
    let modulus = &modulus[skip..];
    let (&top, _) = modulus.split_first()?;
    Some(modulus.len() * 8 - top.leading_zeros() as usize)
}

/// Whether `key` is RSA with a modulus too short to verify (see `MIN_RSA_MODULUS_BITS`).
pub(crate) fn is_short_rsa(key: &DNSKEY) -> bool {
    is_rsa(key.algorithm())
        && rsa_modulus_bits(key.public_key().public_bytes())
            .is_none_or(|bits| bits < MIN_RSA_MODULUS_BITS)
}

pub(crate) fn digest_supported(digest: DigestType) -> bool {
    matches!(
        digest,
        DigestType::SHA1 | DigestType::SHA256 | DigestType::SHA384
    )
}

/// A zone key usable for verification, with its key tag computed once.
#[derive(Clone, Debug)]
pub(crate) struct ZoneKey {
    pub tag: u16,
    pub key: DNSKEY,
}

impl ZoneKey {
    /// A DNSKEY that may verify RRSIGs: zone key flag set, not revoked, supported algorithm,
    /// an RSA modulus ring accepts.
    pub fn usable(key: &DNSKEY, limits: &Limits) -> Option<ZoneKey> {
        if !key.zone_key()
            || key.revoke()
            || !algorithm_supported(key.algorithm(), limits)
            || is_short_rsa(key)
        {
            return None;
        }
        Some(ZoneKey {
            tag: key.calculate_key_tag().ok()?,
            key: key.clone(),
        })
    }
}

/// One RRset of a section with the RRSIGs covering it.
pub(crate) struct Rrset<'a> {
    pub name: Name,
    pub rtype: RecordType,
    pub class: DNSClass,
    pub records: Vec<&'a Record>,
    pub sigs: Vec<(&'a RRSIG, u32)>,
}

impl Rrset<'_> {
    pub fn ttl(&self) -> u32 {
        self.records.iter().map(|r| r.ttl).min().unwrap_or(0)
    }
}

/// Groups records into RRsets in order of first appearance; RRSIGs go with the RRset they
/// cover. RRSIG records whose rdata is not a parsed RRSIG are ignored (they cannot verify).
pub(crate) fn rrsets(records: &[Record]) -> Vec<Rrset<'_>> {
    let mut sets: Vec<Rrset<'_>> = Vec::new();
    let mut index: HashMap<(Name, RecordType, DNSClass), usize> = HashMap::new();
    let mut slot = |sets: &mut Vec<Rrset<'_>>, name: &Name, rtype, class| -> usize {
        *index
            .entry((name.clone(), rtype, class))
            .or_insert_with(|| {
                sets.push(Rrset {
                    name: name.clone(),
                    rtype,
                    class,
                    records: Vec::new(),
                    sigs: Vec::new(),
                });
                sets.len() - 1
            })
    };
    for record in records {
        match (&record.data, record.record_type()) {
            (RData::DNSSEC(DNSSECRData::RRSIG(sig)), _) => {
                let i = slot(
                    &mut sets,
                    &record.name,
                    sig.input().type_covered,
                    record.dns_class,
                );
                sets[i].sigs.push((sig, record.ttl));
            }
            (_, RecordType::RRSIG) => {}
            (_, rtype) => {
                let i = slot(&mut sets, &record.name, rtype, record.dns_class);
                sets[i].records.push(record);
            }
        }
    }
    // RRSIGs covering nothing present leave an empty RRset behind: drop it.
    sets.retain(|s| !s.records.is_empty());
    sets
}

/// What a verified RRset proved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verified {
    /// The TTL the RRset may be trusted for (RFC 4035 section 5.3.3).
    pub ttl: u32,
    /// The RRSIG's labels field: fewer than the owner's labels means a wildcard expansion.
    pub labels: u8,
}

/// Why an RRset did not verify, most specific first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    NoSignatures,
    UnsupportedOnly,
    Expired,
    NotYetValid,
    NoKey,
    Invalid,
    Budget,
}

/// Verifies `set` with the keys of `signer`: some RRSIG by `signer` within its validity
/// window must verify with a key of matching tag and algorithm.
pub(crate) fn verify_rrset(
    set: &Rrset<'_>,
    signer: &Name,
    keys: &[ZoneKey],
    now: u32,
    limits: &Limits,
    budget: &mut Budget,
) -> Result<Verified, Bogus> {
    let mut worst = Failure::NoSignatures;
    let note = |f: Failure, worst: &mut Failure| {
        // Prefer the failure that says most: an invalid signature over a time problem over
        // a missing key.
        let rank = |f: Failure| match f {
            Failure::NoSignatures => 0,
            Failure::UnsupportedOnly => 1,
            Failure::NoKey => 2,
            Failure::NotYetValid => 3,
            Failure::Expired => 4,
            Failure::Invalid => 5,
            Failure::Budget => 6,
        };
        if rank(f) > rank(*worst) {
            *worst = f;
        }
    };
    let owner_labels = set.name.num_labels();
    let candidates = set.sigs.iter().filter(|(sig, _)| {
        let input = sig.input();
        &input.signer_name == signer && input.num_labels <= owner_labels
    });
    for (sig, sig_ttl) in candidates.take(limits.max_sigs_per_rrset) {
        let input = sig.input();
        if !algorithm_supported(input.algorithm, limits) {
            note(Failure::UnsupportedOnly, &mut worst);
            continue;
        }
        if let Err(f) = check_window(
            input.sig_inception.get(),
            input.sig_expiration.get(),
            now,
            limits,
        ) {
            note(f, &mut worst);
            continue;
        }
        let matching = keys
            .iter()
            .filter(|k| k.tag == input.key_tag && k.key.algorithm() == input.algorithm)
            .take(limits.max_keys_per_sig);
        let mut any_key = false;
        for key in matching {
            any_key = true;
            if !budget.spend() {
                note(Failure::Budget, &mut worst);
                return Err(describe(worst, set));
            }
            let records = set.records.iter().copied();
            if key
                .key
                .verify_rrsig(&set.name, set.class, sig, records)
                .is_ok()
            {
                let until_expiry = seconds_until(input.sig_expiration.get(), now).max(0) as u32;
                let ttl = set
                    .ttl()
                    .min(*sig_ttl)
                    .min(input.original_ttl)
                    .min(until_expiry);
                return Ok(Verified {
                    ttl,
                    labels: input.num_labels,
                });
            }
            note(Failure::Invalid, &mut worst);
        }
        if !any_key {
            note(Failure::NoKey, &mut worst);
        }
    }
    Err(describe(worst, set))
}

/// RFC 4035 section 5.3.1 with serial-number arithmetic (RFC 1982). Clock skew (Unbound's:
/// 10 % of the window, clamped to the limits) is allowed before inception only, where a
/// signer's clock running ahead is common; after expiration nothing is (now <= expiration), so
/// an expired signature is never accepted and never cached.
fn check_window(inception: u32, expiration: u32, now: u32, limits: &Limits) -> Result<(), Failure> {
    let window = expiration.wrapping_sub(inception) as i32;
    if window < 0 {
        return Err(Failure::Invalid);
    }
    let skew =
        (window as u32 / 10).clamp(limits.sig_skew_min_secs, limits.sig_skew_max_secs) as i64;
    let since_inception = now.wrapping_sub(inception) as i32 as i64;
    if since_inception < -skew {
        return Err(Failure::NotYetValid);
    }
    if seconds_until(expiration, now) < 0 {
        return Err(Failure::Expired);
    }
    Ok(())
}

/// Seconds from `now` to `expiration` in serial-number arithmetic: negative once expired.
fn seconds_until(expiration: u32, now: u32) -> i64 {
    expiration.wrapping_sub(now) as i32 as i64
}

/// Caps the TTL of every signed RRset in `records` at the time left until the earliest of
/// its signatures expires (RFC 4035 section 5.3.3): a validated answer is never cached, nor
/// handed out, past the end of what made it secure.
pub fn cap_ttls_at_signature_expiry(records: &mut [Record], now: u32) {
    let mut limits: Vec<(Name, RecordType, u32)> = Vec::new();
    for r in records.iter() {
        if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data {
            let input = sig.input();
            let left = seconds_until(input.sig_expiration.get(), now).max(0) as u32;
            let key = (r.name.to_lowercase(), input.type_covered);
            match limits
                .iter_mut()
                .find(|(n, t, _)| *n == key.0 && *t == key.1)
            {
                Some((_, _, l)) => *l = (*l).min(left),
                None => limits.push((key.0, key.1, left)),
            }
        }
    }
    if limits.is_empty() {
        return;
    }
    for r in records.iter_mut() {
        let covered = match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(sig)) => sig.input().type_covered,
            _ => r.record_type(),
        };
        if let Some((_, _, left)) = limits
            .iter()
            .find(|(n, t, _)| *t == covered && *n == r.name)
        {
            r.ttl = r.ttl.min(*left);
        }
    }
}

fn describe(failure: Failure, set: &Rrset<'_>) -> Bogus {
    let what = format!("{} {}", set.name, set.rtype);
    match failure {
        Failure::NoSignatures => Bogus::new(
            ede::RRSIGS_MISSING,
            format!("no RRSIG by the zone for {what}"),
        ),
        Failure::UnsupportedOnly => Bogus::new(
            ede::DNSSEC_BOGUS,
            format!("{what} is signed only with unsupported algorithms"),
        ),
        Failure::Expired => Bogus::new(
            ede::SIGNATURE_EXPIRED,
            format!("the RRSIGs of {what} have expired"),
        ),
        Failure::NotYetValid => Bogus::new(
            ede::SIGNATURE_NOT_YET_VALID,
            format!("the RRSIGs of {what} are not yet valid"),
        ),
        Failure::NoKey => Bogus::new(
            ede::DNSSEC_BOGUS,
            format!("no DNSKEY matches the RRSIGs of {what}"),
        ),
        Failure::Invalid => Bogus::new(
            ede::DNSSEC_BOGUS,
            format!("signature of {what} does not verify"),
        ),
        Failure::Budget => Bogus::new(
            ede::DNSSEC_BOGUS,
            format!("verification limit reached validating {what} (too many signatures or keys)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_allows_skew_before_inception_only_and_handles_wraparound() {
        let limits = Limits::default();
        // A 30-day window: skew 3 days clamped to 1 day, before inception.
        let (inc, exp) = (1_000_000u32, 1_000_000 + 30 * 86400);
        assert_eq!(check_window(inc, exp, inc + 10, &limits), Ok(()));
        assert_eq!(check_window(inc, exp, inc - 86_000, &limits), Ok(()));
        assert_eq!(
            check_window(inc, exp, exp, &limits),
            Ok(()),
            "now = expiration"
        );
        // RFC 4035 5.3.1: expired is expired, by a second or by a day.
        for late in [1, 3600, 86_000, 86_401] {
            assert_eq!(
                check_window(inc, exp, exp + late, &limits),
                Err(Failure::Expired)
            );
        }
        assert_eq!(
            check_window(inc, exp, inc - 86_401, &limits),
            Err(Failure::NotYetValid)
        );
        // A window across the 2^32 wrap (year 2106) is still a window.
        let inc = u32::MAX - 100;
        assert_eq!(
            check_window(inc, inc.wrapping_add(7200), inc.wrapping_add(500), &limits),
            Ok(())
        );
    }

    #[test]
    fn rsa_modulus_length_is_read_from_the_rfc3110_key() {
        // Exponent 65537 in one length octet, then a 1024-bit modulus (top bit set).
        let mut key = vec![3, 1, 0, 1, 0x80];
        key.extend([0u8; 127]);
        assert_eq!(rsa_modulus_bits(&key), Some(1024));
        // Leading zero octets and bits do not count: 0x01 + 63 octets = 505 bits.
        let mut short = vec![3, 1, 0, 1, 0, 0x01];
        short.extend([0xffu8; 63]);
        assert_eq!(rsa_modulus_bits(&short), Some(505));
        // The three-octet length form.
        let mut long_exp = vec![0, 0, 3, 1, 0, 1, 0xff];
        long_exp.extend([0u8; 255]);
        assert_eq!(rsa_modulus_bits(&long_exp), Some(2048));
        assert_eq!(rsa_modulus_bits(&[]), None);
        assert_eq!(
            rsa_modulus_bits(&[5, 1, 0]),
            None,
            "exponent longer than the key"
        );
    }

    #[test]
    fn sha1_is_validated_unless_turned_off() {
        #[allow(deprecated)]
        let algs = [Algorithm::RSASHA1, Algorithm::RSASHA1NSEC3SHA1];
        let on = Limits::default();
        let off = Limits {
            sha1: false,
            ..Limits::default()
        };
        for alg in algs {
            assert!(algorithm_supported(alg, &on));
            assert!(!algorithm_supported(alg, &off));
        }
        assert!(!algorithm_supported(Algorithm::Unknown(3), &on), "DSA");
        assert!(algorithm_supported(Algorithm::ED25519, &off));
    }

    #[test]
    fn ttls_are_capped_at_the_earliest_signature_expiry_of_their_rrset() {
        use hickory_proto::dnssec::rdata::SigInput;
        use hickory_proto::dnssec::Algorithm;
        use hickory_proto::rr::rdata::A;
        let name = Name::from_ascii("www.example.").unwrap();
        let now = 1_000_000u32;
        let sig = |covered: RecordType, expires: u32| {
            let input = SigInput {
                type_covered: covered,
                algorithm: Algorithm::ECDSAP256SHA256,
                num_labels: 2,
                original_ttl: 3600,
                sig_expiration: expires.into(),
                sig_inception: (now - 100).into(),
                key_tag: 1,
                signer_name: Name::from_ascii("example.").unwrap(),
            };
            Record::from_rdata(
                name.clone(),
                3600,
                RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, vec![0; 64]))),
            )
        };
        let mut records = vec![
            Record::from_rdata(name.clone(), 3600, RData::A(A::new(192, 0, 2, 1))),
            sig(RecordType::A, now + 100),
            sig(RecordType::A, now + 500),
            Record::from_rdata(
                Name::from_ascii("other.example.").unwrap(),
                3600,
                RData::A(A::new(192, 0, 2, 2)),
            ),
        ];
        cap_ttls_at_signature_expiry(&mut records, now);
        assert_eq!(records[0].ttl, 100, "the earliest of two signatures");
        assert_eq!(records[1].ttl, 100);
        assert_eq!(records[2].ttl, 100);
        assert_eq!(records[3].ttl, 3600, "an unsigned RRset keeps its TTL");
        // Past expiry (a wrapped subtraction before): 0, never ~2^32.
        cap_ttls_at_signature_expiry(&mut records, now + 200);
        assert_eq!(records[0].ttl, 0);
    }
}
