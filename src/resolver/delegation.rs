//! The delegation cache: zone cuts we have learnt from referrals, each with its name servers
//! and the addresses that came as (in-bailiwick) glue. Separate from the record cache, as in
//! Unbound and PowerDNS: answers expire and are evicted without losing the map of the tree.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hickory_proto::rr::Name;

/// Name servers kept per zone cut; a zone listing thousands is cut to this many (as peers do).
pub const MAX_NS_PER_ZONE: usize = 20;
/// Glue addresses kept per name server.
pub const MAX_ADDRS_PER_NS: usize = 8;

#[derive(Debug, Clone)]
pub struct NameServer {
    pub name: Name,
    /// Addresses from glue (empty: the name must be resolved).
    pub addrs: Vec<IpAddr>,
}

#[derive(Debug)]
pub struct Delegation {
    pub zone: Name,
    pub servers: Vec<NameServer>,
    pub expires: Option<Instant>,
}

impl Delegation {
    pub fn new(zone: Name, servers: Vec<NameServer>, ttl: u32) -> Self {
        Self {
            zone: zone.to_lowercase(),
            servers,
            expires: Some(Instant::now() + Duration::from_secs(ttl as u64)),
        }
    }

    fn is_fresh(&self, now: Instant) -> bool {
        self.expires.is_none_or(|t| t > now)
    }
}

pub struct Delegations {
    map: DashMap<Name, Arc<Delegation>, ahash::RandomState>,
    root: Arc<Delegation>,
    capacity: usize,
}

impl Delegations {
    /// `roots`: the root servers' addresses (from the hints; they never expire).
    pub fn new(roots: &[IpAddr], capacity: usize) -> Self {
        let root = Delegation {
            zone: Name::root(),
            servers: roots
                .iter()
                .map(|ip| NameServer {
                    name: Name::root(),
                    addrs: vec![*ip],
                })
                .collect(),
            expires: None,
        };
        Self {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            root: Arc::new(root),
            capacity: capacity.max(1024),
        }
    }

    /// The deepest known zone cut at or above `name`.
    pub fn closest(&self, name: &Name) -> Arc<Delegation> {
        let now = Instant::now();
        let name = name.to_lowercase();
        let labels = name.num_labels();
        for n in (1..=labels).rev() {
            let cut = name.trim_to(n as usize);
            if let Some(d) = self.map.get(&cut) {
                if d.is_fresh(now) {
                    return Arc::clone(&d);
                }
            }
        }
        Arc::clone(&self.root)
    }

    pub fn insert(&self, delegation: Delegation) -> Arc<Delegation> {
        if self.map.len() >= self.capacity {
            let now = Instant::now();
            self.map.retain(|_, d| d.is_fresh(now));
            if self.map.len() >= self.capacity {
                // Still full of fresh cuts: forget a tenth (they are learnt again from above).
                let victims: Vec<Name> = self
                    .map
                    .iter()
                    .take(self.capacity / 10)
                    .map(|e| e.key().clone())
                    .collect();
                for v in victims {
                    self.map.remove(&v);
                }
            }
        }
        let d = Arc::new(delegation);
        self.map.insert(d.zone.clone(), Arc::clone(&d));
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    #[test]
    fn closest_cut_wins_and_root_is_the_fallback() {
        let cache = Delegations::new(&["192.0.2.1".parse().unwrap()], 100);
        assert!(cache.closest(&n("www.example.com.")).zone.is_root());
        cache.insert(Delegation::new(n("com."), vec![], 60));
        cache.insert(Delegation::new(n("Example.COM."), vec![], 60));
        assert_eq!(
            cache.closest(&n("a.b.WWW.example.com.")).zone,
            n("example.com.")
        );
        assert_eq!(cache.closest(&n("other.com.")).zone, n("com."));
        cache.insert(Delegation::new(n("net."), vec![], 0));
        assert!(
            cache.closest(&n("x.net.")).zone.is_root(),
            "expired cuts are not used"
        );
    }
}
