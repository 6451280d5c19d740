//! The chain of trust: the security of the zone enclosing a name, from a trust anchor down
//! through DS -> DNSKEY -> RRSIG, with the per-zone verdict cache.
//!
//! `zone_security(N)` answers "which keys sign the zone that contains N, if any": at an
//! anchor, the anchor's DNSKEYs; otherwise first `zone_security(parent of N)` (recursion
//! strictly up the tree, so bounded by the label count; its verdict stands unless it is
//! secure), then fetch DS(N), whose response names the parent zone P; then a signed DS ->
//! DNSKEY(N) -> Secure(N); a proof that N has no DS -> Insecure at a delegation or opt-out,
//! and "P's keys" when N is no zone cut at all.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS};
use hickory_proto::dnssec::{DigestType, PublicKey, Verifier};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, RecordType};
use parking_lot::Mutex;

use super::anchors::ZoneAnchor;
use super::response::{Denial, Want};
use super::verify::{
    algorithm_supported, digest_supported, is_short_rsa, rrsets, verify_rrset, Budget, ZoneKey,
};
use super::Limits;
use super::{ede, Bogus, KeyFetcher, Security, Validator};

/// What is known about the zone enclosing a name.
#[derive(Clone, Debug)]
pub(crate) enum ZoneSecurity {
    /// `zone` is signed with `keys` (its DNSKEY RRset, authenticated).
    Secure {
        zone: Name,
        keys: Arc<Vec<ZoneKey>>,
    },
    /// Proven unsigned; the reason is for logs.
    Insecure(String),
    Bogus(Bogus),
    Indeterminate,
}

impl ZoneSecurity {
    pub fn to_security(&self) -> Security {
        match self {
            ZoneSecurity::Secure { .. } => Security::Secure,
            ZoneSecurity::Insecure(why) => {
                tracing::debug!(reason = %why, "dnssec: insecure");
                Security::Insecure
            }
            ZoneSecurity::Bogus(b) => Security::Bogus(b.clone()),
            ZoneSecurity::Indeterminate => Security::Indeterminate,
        }
    }
}

/// Verdicts per name with their expiry (unix seconds). Bounded: when full, expired entries
/// are dropped, and if that frees nothing the cache starts over (verdicts are re-derivable).
pub(crate) struct KeyCache {
    map: Mutex<HashMap<Name, (ZoneSecurity, u32)>>,
    capacity: usize,
}

impl KeyCache {
    pub fn new(capacity: usize) -> Self {
        KeyCache {
            map: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, name: &Name, now: u32) -> Option<(ZoneSecurity, u32)> {
        let map = self.map.lock();
        let (verdict, expires) = map.get(name)?;
        (*expires > now).then(|| (verdict.clone(), expires - now))
    }

    fn put(&self, name: Name, verdict: ZoneSecurity, ttl: u32, now: u32) {
        let mut map = self.map.lock();
        if map.len() >= self.capacity {
            map.retain(|_, (_, expires)| *expires > now);
            if map.len() >= self.capacity {
                map.clear();
            }
        }
        map.insert(name, (verdict, now.saturating_add(ttl)));
    }
}

/// One validation: the validator, the iterator's fetcher and the clock.
pub(crate) struct Context<'a> {
    pub validator: &'a Validator,
    pub fetch: &'a dyn KeyFetcher,
    pub now: u32,
}

impl Context<'_> {
    /// The security of the zone enclosing `name` (see the module comment).
    pub fn zone_security<'s>(
        &'s self,
        name: &'s Name,
        budget: &'s mut Budget,
    ) -> BoxFuture<'s, ZoneSecurity> {
        Box::pin(async move {
            let v = self.validator;
            let name = name.to_lowercase();
            if v.under_negative_anchor(&name) {
                return ZoneSecurity::Insecure(format!("{name} is under a negative trust anchor"));
            }
            if !v.anchors.covers(&name) {
                return ZoneSecurity::Indeterminate;
            }
            if let Some((verdict, _)) = v.cache.get(&name, self.now) {
                return verdict;
            }
            if let Some(why) = self.insecure_ancestor(&name) {
                return ZoneSecurity::Insecure(why);
            }
            let (verdict, ttl) = match v.anchors.at(&name) {
                Some(anchor) => self.keys_from_anchor(anchor, budget).await,
                // Top down (RFC 4035 5.2, RFC 6840 4.1): the parent first, so that a name
                // below a provably unsigned cut needs no DS of its own (whose servers may not
                // answer DS at all); the recursion ends at the anchor above.
                // An inherited verdict is not cached under this name: the parent's entry holds it.
                None => match self.zone_security(&name.base_name(), budget).await {
                    ZoneSecurity::Secure { .. } => self.keys_via_ds(&name, budget).await,
                    other => return other,
                },
            };
            let ttl = match verdict {
                ZoneSecurity::Bogus(_) => v.limits.bogus_ttl_secs,
                _ => ttl.min(v.limits.max_key_ttl_secs),
            };
            v.cache.put(name, verdict.clone(), ttl, self.now);
            verdict
        })
    }

    /// Caches `zone` as insecure (proven by a referral) for `ttl`.
    pub fn remember_insecure(&self, zone: &Name, why: String, ttl: u32) {
        let v = self.validator;
        let ttl = ttl.min(v.limits.max_key_ttl_secs);
        v.cache.put(
            zone.to_lowercase(),
            ZoneSecurity::Insecure(why),
            ttl,
            self.now,
        );
    }

    /// Below a cached insecure zone everything is insecure, unless a trust anchor lies in
    /// between: no DS fetch is needed (Unbound's "null key" entries do the same).
    fn insecure_ancestor(&self, name: &Name) -> Option<String> {
        let v = self.validator;
        if v.anchors.at(name).is_some() {
            return None;
        }
        let mut ancestor = name.clone();
        while !ancestor.is_root() {
            ancestor = ancestor.base_name();
            if v.anchors.at(&ancestor).is_some() {
                return None;
            }
            if let Some((ZoneSecurity::Insecure(why), _)) = v.cache.get(&ancestor, self.now) {
                return Some(format!("{name} is below insecure {ancestor}: {why}"));
            }
        }
        None
    }

    async fn keys_from_anchor(
        &self,
        anchor: &ZoneAnchor,
        budget: &mut Budget,
    ) -> (ZoneSecurity, u32) {
        let limits = &self.validator.limits;
        let ds: Vec<&DS> = anchor
            .ds
            .iter()
            .filter(|d| ds_supported(d, limits))
            .collect();
        let keys: Vec<&DNSKEY> = anchor
            .keys
            .iter()
            .filter(|k| algorithm_supported(k.algorithm(), &self.validator.limits))
            .collect();
        if ds.is_empty() && keys.is_empty() {
            let why = format!(
                "the trust anchor for {} has only unsupported algorithms",
                anchor.zone
            );
            return (
                ZoneSecurity::Insecure(why),
                self.validator.limits.max_key_ttl_secs,
            );
        }
        self.fetch_dnskeys(&anchor.zone, &ds, &keys, u32::MAX, budget)
            .await
    }

    async fn keys_via_ds(&self, name: &Name, budget: &mut Budget) -> (ZoneSecurity, u32) {
        let limits = &self.validator.limits;
        let bogus = |ede, reason: String| (ZoneSecurity::Bogus(Bogus::new(ede, reason)), 0);
        let fetched = match self.fetch.fetch(name, RecordType::DS).await {
            Ok(f) => f,
            Err(e) => {
                return bogus(
                    ede::for_fetch_error(&e, ede::DNSSEC_BOGUS),
                    format!("could not fetch DS for {name}: {e}"),
                )
            }
        };
        let parent = fetched.zone.to_lowercase();
        if !parent.zone_of(name) || &parent == name {
            return bogus(
                ede::DNSSEC_BOGUS,
                format!("DS for {name} came from {parent}, not a parent zone"),
            );
        }
        let (pzone, pkeys) = match self.zone_security(&parent, budget).await {
            ZoneSecurity::Secure { zone, keys } => (zone, keys),
            other => return (other, limits.bogus_ttl_secs),
        };
        let message = &fetched.message;
        let answers = rrsets(&message.answers);
        if let Some(set) = answers
            .iter()
            .find(|s| s.rtype == RecordType::DS && &s.name == name)
        {
            let verified = match verify_rrset(set, &pzone, &pkeys, self.now, limits, budget) {
                Ok(v) => v,
                Err(b) => return (ZoneSecurity::Bogus(b), 0),
            };
            let all: Vec<&DS> = set
                .records
                .iter()
                .filter_map(|r| as_ds(&r.data))
                .take(limits.max_ds_records)
                .collect();
            let usable = preferred_ds(&all, limits);
            if usable.is_empty() {
                let why =
                    format!("the DS records of {name} use only unsupported algorithms or digests");
                return (ZoneSecurity::Insecure(why), verified.ttl);
            }
            return self
                .fetch_dnskeys(name, &usable, &[], verified.ttl, budget)
                .await;
        }
        if message.metadata.response_code == ResponseCode::NoError && !answers.is_empty() {
            return bogus(
                ede::DNSSEC_BOGUS,
                format!("the DS answer for {name} holds no DS RRset"),
            );
        }
        let want = if message.metadata.response_code == ResponseCode::NXDomain {
            Want::NoName
        } else {
            Want::NoData(RecordType::DS)
        };
        match self.prove_absence(name, want, message, &pzone, &pkeys, budget) {
            Ok((Denial::NoType { delegation: true }, ttl)) => (
                ZoneSecurity::Insecure(format!("{name} is an unsigned delegation")),
                ttl,
            ),
            Ok((Denial::OptOut, ttl)) => (
                ZoneSecurity::Insecure(format!("{name} is covered by NSEC3 opt-out")),
                ttl,
            ),
            Ok((Denial::IterationsTooHigh(n), ttl)) => (
                ZoneSecurity::Insecure(format!("NSEC3 iterations {n} above the limit in {pzone}")),
                ttl,
            ),
            // No DS and no delegation: `name` is inside the parent zone.
            Ok((Denial::NoName | Denial::NoType { delegation: false }, ttl)) => (
                ZoneSecurity::Secure {
                    zone: pzone,
                    keys: pkeys,
                },
                ttl,
            ),
            Err(b) => (ZoneSecurity::Bogus(b), 0),
        }
    }

    /// Fetches DNSKEY(zone) and authenticates it: a key matching a trusted DS or anchor key
    /// must sign the DNSKEY RRset. `ttl_cap` is the TTL of what made those trusted.
    async fn fetch_dnskeys(
        &self,
        zone: &Name,
        ds: &[&DS],
        anchor_keys: &[&DNSKEY],
        ttl_cap: u32,
        budget: &mut Budget,
    ) -> (ZoneSecurity, u32) {
        let limits = &self.validator.limits;
        let missing = |reason: String| {
            (
                ZoneSecurity::Bogus(Bogus::new(ede::DNSKEY_MISSING, reason)),
                0,
            )
        };
        let fetched = match self.fetch.fetch(zone, RecordType::DNSKEY).await {
            Ok(f) => f,
            Err(e) => {
                let code = ede::for_fetch_error(&e, ede::DNSKEY_MISSING);
                let reason = format!("could not fetch DNSKEY for {zone}: {e}");
                return (ZoneSecurity::Bogus(Bogus::new(code, reason)), 0);
            }
        };
        let sets = rrsets(&fetched.message.answers);
        let Some(set) = sets
            .iter()
            .find(|s| s.rtype == RecordType::DNSKEY && &s.name == zone)
        else {
            return missing(format!("no DNSKEY RRset for {zone}"));
        };
        // Entry keys: usable keys whose tag matches a DS (then the digest must match too) or
        // that equal an anchor key. Digests are computed only on a tag match, at most
        // `max_keys_per_sig` per DS.
        let mut entry = Vec::new();
        let mut short_rsa_entry = false;
        let mut digests_left = limits.max_ds_records * limits.max_keys_per_sig;
        for key in set.records.iter().filter_map(|r| as_dnskey(&r.data)) {
            let usable = ZoneKey::usable(key, limits);
            let short = usable.is_none() && is_short_rsa(key);
            if usable.is_none() && !short {
                continue;
            }
            let Ok(tag) = key.calculate_key_tag() else {
                continue;
            };
            let by_anchor = anchor_keys.iter().any(|a| {
                a.public_key().public_bytes() == key.public_key().public_bytes()
                    && a.algorithm() == key.algorithm()
            });
            let by_ds = !by_anchor
                && ds.iter().any(|d| {
                    if d.key_tag() != tag || d.algorithm() != key.algorithm() || digests_left == 0 {
                        return false;
                    }
                    digests_left -= 1;
                    d.covers(zone, key).unwrap_or(false)
                });
            match usable {
                Some(zk) if by_anchor || by_ds => {
                    entry.push(zk);
                    if entry.len() >= limits.max_keys_per_sig {
                        break;
                    }
                }
                None if by_anchor || by_ds => short_rsa_entry = true,
                _ => {}
            }
        }
        if entry.is_empty() && short_rsa_entry {
            let why = format!("{zone} is signed with an RSA key under 1024 bits");
            return (
                ZoneSecurity::Insecure(why),
                ttl_cap.min(limits.max_key_ttl_secs),
            );
        }
        if entry.is_empty() {
            return missing(format!(
                "no DNSKEY of {zone} matches its DS or trust anchor"
            ));
        }
        match verify_rrset(set, zone, &entry, self.now, limits, budget) {
            Ok(verified) => {
                let keys: Vec<ZoneKey> = set
                    .records
                    .iter()
                    .filter_map(|r| as_dnskey(&r.data))
                    .filter_map(|k| ZoneKey::usable(k, limits))
                    .collect();
                let secure = ZoneSecurity::Secure {
                    zone: zone.clone(),
                    keys: Arc::new(keys),
                };
                (secure, verified.ttl.min(ttl_cap))
            }
            Err(b) => (ZoneSecurity::Bogus(b), 0),
        }
    }
}

fn ds_supported(ds: &DS, limits: &Limits) -> bool {
    algorithm_supported(ds.algorithm(), limits) && digest_supported(ds.digest_type())
}

/// The DS records to use: supported ones, and SHA-1 digests only when no stronger digest is
/// present for the same key (RFC 4509 section 3).
fn preferred_ds<'a>(all: &[&'a DS], limits: &Limits) -> Vec<&'a DS> {
    let usable: Vec<&DS> = all
        .iter()
        .copied()
        .filter(|d| ds_supported(d, limits))
        .collect();
    let strong = |d: &&DS| d.digest_type() != DigestType::SHA1;
    if usable.iter().any(strong) {
        usable.into_iter().filter(strong).collect()
    } else {
        usable
    }
}

fn as_ds(data: &RData) -> Option<&DS> {
    match data {
        RData::DNSSEC(DNSSECRData::DS(ds)) => Some(ds),
        _ => None,
    }
}

fn as_dnskey(data: &RData) -> Option<&DNSKEY> {
    match data {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_cache_expires_and_stays_bounded() {
        let cache = KeyCache::new(2);
        let n = |s: &str| Name::from_ascii(s).unwrap();
        let insecure = || ZoneSecurity::Insecure("test".into());
        cache.put(n("a."), insecure(), 10, 1000);
        cache.put(n("b."), insecure(), 100, 1000);
        assert_eq!(cache.get(&n("a."), 1005).map(|(_, ttl)| ttl), Some(5));
        assert!(cache.get(&n("a."), 1010).is_none(), "expired");
        // Full: expired entries go first (a. at 1020), so b. survives.
        cache.put(n("c."), insecure(), 100, 1020);
        assert!(cache.get(&n("b."), 1020).is_some());
        assert!(cache.get(&n("c."), 1020).is_some());
        // Full of live entries: the cache starts over rather than grow.
        cache.put(n("d."), insecure(), 100, 1020);
        assert!(cache.get(&n("b."), 1020).is_none());
        assert!(cache.get(&n("d."), 1020).is_some());
        assert!(cache.map.lock().len() <= 2);
    }
}
