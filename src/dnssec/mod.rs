//! The DNSSEC validator (RFC 4033-4035, 5155, 6840, 9276).
//!
//! The iterator hands every authoritative response it received with DO=1 to
//! [`Validator::validate`], together with the zone cut it asked; the validator builds the chain
//! of trust for the signer zone through a [`KeyFetcher`] (DS and DNSKEY answers fetched by the
//! iterator, not validated), caches the verdict per zone, and checks the response's RRsets and
//! denial proofs with the zone's keys. Crypto is ring through `hickory_proto::dnssec`.
//!
//! Parts: `anchors` (trust anchors), `verify` (RRsets and their signatures, the work budget),
//! `chain` (zone keys: DS -> DNSKEY, the key cache), `nsec` and `nsec3` (denial proofs),
//! `response` (what one response proves), `signed` (a zone signer for tests and fake
//! authorities, compiled only with the `test-support` feature: not in the release build).

pub mod aggressive;
mod anchors;
mod chain;
mod nsec;
mod nsec3;
mod response;
#[cfg(feature = "test-support")]
pub mod signed;
mod verify;

use std::collections::HashSet;

use async_trait::async_trait;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, Record, RecordType};
use parking_lot::RwLock;

pub use anchors::TrustAnchorSet;
pub use verify::cap_ttls_at_signature_expiry;

/// Extended DNS Error INFO-CODEs (RFC 8914) the validator reports.
pub mod ede {
    pub const UNSUPPORTED_DNSKEY_ALGORITHM: u16 = 1;
    pub const UNSUPPORTED_DS_DIGEST: u16 = 2;
    pub const DNSSEC_BOGUS: u16 = 6;
    pub const SIGNATURE_EXPIRED: u16 = 7;
    pub const SIGNATURE_NOT_YET_VALID: u16 = 8;
    pub const DNSKEY_MISSING: u16 = 9;
    pub const RRSIGS_MISSING: u16 = 10;
    pub const NSEC_MISSING: u16 = 12;
    /// A key could not be fetched because no server answered: say so, not "bogus".
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;

    /// The code for a failed DS/DNSKEY fetch: unreachable servers are not a forgery.
    pub fn for_fetch_error(e: &super::FetchError, otherwise: u16) -> u16 {
        match e {
            super::FetchError::Unreachable(_) => NO_REACHABLE_AUTHORITY,
            super::FetchError::Failed(_) => otherwise,
        }
    }
}

/// The security status of a response (RFC 4033 section 5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// Every RRset and denial proof is signed by a key chained to a trust anchor.
    Secure,
    /// Proven unsigned: an insecure delegation, an NTA, unsupported algorithms, opt-out, or
    /// NSEC3 iterations above the limit.
    Insecure,
    /// Should have been secure and is not: answer SERVFAIL with the EDE.
    Bogus(Bogus),
    /// No trust anchor covers the name, or the response is not one the validator judges
    /// (an rcode other than NOERROR/NXDOMAIN).
    Indeterminate,
}

/// Why a response is bogus: the EDE INFO-CODE and a reason for a person.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bogus {
    pub ede: u16,
    pub reason: String,
}

impl Bogus {
    pub fn new(ede: u16, reason: impl Into<String>) -> Self {
        Bogus {
            ede,
            reason: reason.into(),
        }
    }
}

impl Security {
    /// The Extended DNS Error to attach to the answer: `Some((code, text))` for bogus answers.
    pub fn ede(&self) -> Option<(u16, &str)> {
        match self {
            Security::Bogus(b) => Some((b.ede, b.reason.as_str())),
            _ => None,
        }
    }

    pub fn is_secure(&self) -> bool {
        matches!(self, Security::Secure)
    }

    /// Combines the verdicts of two parts of one response: the weaker one wins
    /// (bogus, then indeterminate, then insecure, then secure).
    pub(crate) fn and(self, other: Security) -> Security {
        fn rank(s: &Security) -> u8 {
            match s {
                Security::Secure => 0,
                Security::Insecure => 1,
                Security::Indeterminate => 2,
                Security::Bogus(_) => 3,
            }
        }
        if rank(&other) > rank(&self) {
            other
        } else {
            self
        }
    }
}

/// A DS or DNSKEY response as the authoritative server sent it (after the iterator's scrubbing).
pub struct Fetched {
    pub message: Message,
    /// The zone cut that answered: for DS the parent side of the cut.
    pub zone: Name,
}

/// Why the iterator could not fetch a DS or DNSKEY RRset.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no server answered: {0}")]
    Unreachable(String),
    #[error("resolution failed: {0}")]
    Failed(String),
}

/// What the validator needs from the iterator: DS and DNSKEY answers, fetched with DO=1 and
/// not validated.
#[async_trait]
pub trait KeyFetcher: Send + Sync {
    /// Resolves (name, DS|DNSKEY) and returns the response as the authoritative server sent it
    /// (after the iterator's scrubbing), with `zone` = the zone cut that answered it (for DS:
    /// the parent side).
    async fn fetch(&self, name: &Name, rtype: RecordType) -> Result<Fetched, FetchError>;
}

/// Errors of this module's fallible set-up (trust anchor files, the test signer).
#[derive(Debug, thiserror::Error)]
pub enum DnssecError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    AnchorSyntax {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}: no DS or DNSKEY record")]
    NoAnchors(String),
    #[error("zone text: {0}")]
    Zone(String),
    #[error("signing: {0}")]
    Signing(String),
}

/// Bounds and tolerances. Every validation is bounded by these, whatever the input.
#[derive(Clone, Debug)]
pub struct Limits {
    /// NSEC3 proofs with more iterations are treated as insecure (RFC 9276 section 3.2;
    /// Unbound's default is also 150). Checked before any hash is computed.
    pub nsec3_max_iterations: u16,
    /// Clock skew tolerated around a signature's validity window: 10 % of the window,
    /// clamped to [min, max] (Unbound's `val-sig-skew-min`/`max`: 3600 and 86400 s).
    pub sig_skew_min_secs: u32,
    pub sig_skew_max_secs: u32,
    /// RRSIGs tried per RRset (a signature flood costs at most this many).
    pub max_sigs_per_rrset: usize,
    /// DNSKEYs tried per RRSIG (key tag collisions, the KeyTrap attack, CVE-2023-50387).
    pub max_keys_per_sig: usize,
    /// Signature verifications (each a public-key operation) per `validate` call, chain of
    /// trust included. Past it the answer is bogus.
    pub max_verifications: usize,
    /// DS records considered per zone, and NSEC/NSEC3 records considered per response.
    pub max_ds_records: usize,
    pub max_denial_records: usize,
    /// Per-zone verdicts kept in the key cache, and how long bogus verdicts are kept.
    pub key_cache_size: usize,
    pub bogus_ttl_secs: u32,
    /// Cap on the time a secure or insecure zone verdict is cached.
    pub max_key_ttl_secs: u32,
    /// Validate RSA/SHA-1 (algorithms 5 and 7); off: treat them as unsupported (insecure).
    pub sha1: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nsec3_max_iterations: 150,
            sig_skew_min_secs: 3600,
            sig_skew_max_secs: 86400,
            max_sigs_per_rrset: 8,
            max_keys_per_sig: 8,
            max_verifications: 64,
            max_ds_records: 16,
            max_denial_records: 32,
            key_cache_size: 10_000,
            bogus_ttl_secs: 60,
            max_key_ttl_secs: 86400,
            sha1: true,
        }
    }
}

/// The validator: trust anchors, negative trust anchors (changeable at run time), the per-zone
/// key cache and the limits. Shared by all resolutions (`&self` everywhere).
pub struct Validator {
    anchors: TrustAnchorSet,
    negative_anchors: RwLock<Vec<Name>>,
    cache: chain::KeyCache,
    limits: Limits,
    /// Answers found bogus and refused to a client (`dnsward_dnssec_bogus_total`).
    bogus: std::sync::atomic::AtomicU64,
}

impl Validator {
    pub fn new(anchors: TrustAnchorSet, negative_trust_anchors: Vec<Name>, limits: Limits) -> Self {
        Validator {
            anchors,
            negative_anchors: RwLock::new(normalise_zones(negative_trust_anchors)),
            cache: chain::KeyCache::new(limits.key_cache_size),
            limits,
            bogus: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Counts one answer judged bogus (called where the iterator and the forwarder turn the
    /// verdict into a SERVFAIL; not for CD=1 queries, which get the data).
    pub fn note_bogus(&self) {
        self.bogus
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Answers judged bogus since start.
    pub fn bogus_count(&self) -> u64 {
        self.bogus.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Validates one authoritative response for `query`, which came from zone `zone` (the
    /// zone cut the iterator asked): positive (possibly a CNAME within the zone or a wildcard
    /// expansion), NXDOMAIN, NODATA, or a referral to a secure or insecure child.
    pub async fn validate(
        &self,
        query: &Query,
        response: &Message,
        zone: &Name,
        fetch: &dyn KeyFetcher,
        now_unix: u32,
    ) -> Security {
        let mut budget = verify::Budget::new(self.limits.max_verifications);
        let cx = chain::Context {
            validator: self,
            fetch,
            now: now_unix,
        };
        cx.validate(query, response, &zone.to_lowercase(), &mut budget)
            .await
    }

    pub fn negative_trust_anchors(&self) -> Vec<Name> {
        self.negative_anchors.read().clone()
    }

    /// Replaces the NTAs. Takes effect for the next validation; no cached verdict hides it,
    /// since NTAs are checked before the key cache.
    pub fn set_negative_trust_anchors(&self, zones: Vec<Name>) {
        *self.negative_anchors.write() = normalise_zones(zones);
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether `name` is at or below a negative trust anchor.
    pub(crate) fn under_negative_anchor(&self, name: &Name) -> bool {
        self.negative_anchors
            .read()
            .iter()
            .any(|nta| nta.zone_of(name))
    }
}

fn normalise_zones(zones: Vec<Name>) -> Vec<Name> {
    let mut seen = HashSet::new();
    zones
        .into_iter()
        .map(|mut z| {
            z.set_fqdn(true);
            z.to_lowercase()
        })
        .filter(|z| seen.insert(z.clone()))
        .collect()
}

/// The validator's clock: unix seconds, as RRSIG inception and expiration count them (RFC 4034
/// section 3.1.5: serial-number arithmetic on 32 bits, so the wrap is intended).
pub fn now_unix() -> u32 {
    crate::timefmt::unix_now() as u32
}

/// Removes DNSSEC records from a response for a client that did not set DO (RFC 4035
/// section 3.2.1): RRSIG, NSEC and NSEC3 everywhere, and DS, unless the question asked for
/// that type.
pub fn strip_dnssec_records(message: &mut Message) {
    let asked = message.queries.first().map(|q| q.query_type());
    let keep = |r: &Record| {
        let t = r.record_type();
        Some(t) == asked
            || !matches!(
                t,
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3 | RecordType::DS
            )
    };
    message.answers.retain(keep);
    message.authorities.retain(keep);
    message.additionals.retain(keep);
}
