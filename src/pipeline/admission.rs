//! Who may ask, and how much: the client ACL, a per-client token bucket, and response rate
//! limiting (RRL) for identical answers to one prefix, so dnsward is neither an open resolver
//! nor an amplifier.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use ipnet::IpNet;

use crate::config::{LimitAction, RefuseAction, ServerConfig};

/// What admission decided for a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// Outside the ACL: answer REFUSED.
    Refuse,
    /// Send nothing.
    Drop,
    /// Over the rate: answer with TC=1 and no records, so a real client retries over TCP.
    Truncate,
}

pub struct Admission {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    refuse_action: RefuseAction,
    clients: Option<Buckets>,
    limit_action: LimitAction,
    rrl: Option<Buckets>,
    rrl_slip: u32,
    /// Keys the hash of an answer (name, type, rcode), seeded per process.
    rrl_answer_keys: ahash::RandomState,
    pub refused: AtomicU64,
    pub rate_limited: AtomicU64,
    pub rrl_limited: AtomicU64,
}

impl Admission {
    pub fn new(cfg: &ServerConfig) -> Self {
        let bucket = |rate: u32, burst: u32| {
            let burst = if burst == 0 {
                rate.saturating_mul(2)
            } else {
                burst
            };
            (rate > 0).then(|| Buckets::new(rate as f64, burst.max(rate) as f64))
        };
        Self {
            allow: cfg.allow.clone(),
            deny: cfg.deny.clone(),
            refuse_action: cfg.refuse_action,
            clients: bucket(cfg.rate_limit_qps, cfg.rate_limit_burst),
            limit_action: cfg.rate_limit_action,
            rrl: bucket(cfg.rrl_responses_per_second, 0),
            rrl_slip: cfg.rrl_slip,
            rrl_answer_keys: ahash::RandomState::new(),
            refused: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            rrl_limited: AtomicU64::new(0),
        }
    }

    /// ACL then (over UDP) the per-client rate. Deny wins over allow; no match = refused.
    pub fn check(&self, client: IpAddr, udp: bool) -> Gate {
        let client = unmap(client);
        let denied = self.deny.iter().any(|n| n.contains(&client));
        if denied || !self.allow.iter().any(|n| n.contains(&client)) {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return match self.refuse_action {
                RefuseAction::Refuse => Gate::Refuse,
                RefuseAction::Drop => Gate::Drop,
            };
        }
        // TCP needs a handshake, so it cannot be spoofed or amplified: only UDP is limited.
        if let (true, Some(buckets)) = (udp, &self.clients) {
            if !buckets.take(prefix_key(client, 0)) {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                return match self.limit_action {
                    LimitAction::Drop => Gate::Drop,
                    LimitAction::Truncate => Gate::Truncate,
                };
            }
        }
        Gate::Pass
    }

    /// RRL: the same answer (name, type, rcode) to the same prefix beyond the rate is dropped,
    /// except every `slip`-th, which goes out truncated (TC=1) so a real client can retry.
    pub fn response(&self, client: IpAddr, qname: &[u8], qtype: u16, rcode: u8) -> Gate {
        let Some(buckets) = &self.rrl else {
            return Gate::Pass;
        };
        // The name lower-cased into one buffer and hashed with one call: hashing it byte by
        // byte was a visible share of a cache hit's CPU.
        let mut lower = [0u8; 255];
        let len = qname.len().min(lower.len());
        for (to, from) in lower[..len].iter_mut().zip(qname) {
            *to = from.to_ascii_lowercase();
        }
        let answer = self.rrl_answer_keys.hash_one((&lower[..len], qtype, rcode));
        if buckets.take(prefix_key(unmap(client), answer)) {
            return Gate::Pass;
        }
        let n = self.rrl_limited.fetch_add(1, Ordering::Relaxed) + 1;
        if self.rrl_slip > 0 && n.is_multiple_of(self.rrl_slip as u64) {
            Gate::Truncate
        } else {
            Gate::Drop
        }
    }

    /// Forgets buckets idle for longer than `idle` (they would be full again anyway).
    pub fn evict_idle(&self, idle: Duration) {
        for b in [&self.clients, &self.rrl].into_iter().flatten() {
            b.evict_idle(idle);
        }
    }
}

/// IPv4 clients: the /32; IPv6: the /56 (one customer's whole delegation). `extra`
/// distinguishes RRL answer classes.
fn prefix_key(ip: IpAddr, extra: u64) -> (u128, u64) {
    match ip {
        IpAddr::V4(v4) => (u32::from(v4) as u128, extra),
        IpAddr::V6(v6) => (u128::from(v6) & !((1u128 << 72) - 1), extra),
    }
}

fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Token buckets keyed by prefix, in a dashmap (sharded locks; no global lock on the hot path).
struct Buckets {
    map: DashMap<(u128, u64), Bucket, ahash::RandomState>,
    rate: f64,
    burst: f64,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Buckets {
    fn new(rate: f64, burst: f64) -> Self {
        Self {
            map: DashMap::with_hasher(ahash::RandomState::new()),
            rate,
            burst,
        }
    }

    fn take(&self, key: (u128, u64)) -> bool {
        let now = Instant::now();
        let mut b = self.map.entry(key).or_insert(Bucket {
            tokens: self.burst,
            last: now,
        });
        let elapsed = now.saturating_duration_since(b.last).as_secs_f64();
        b.tokens = (b.tokens + elapsed * self.rate).min(self.burst);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    fn evict_idle(&self, idle: Duration) {
        let now = Instant::now();
        self.map
            .retain(|_, b| now.saturating_duration_since(b.last) < idle);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> ServerConfig {
        let c = crate::config::Config::from_text(text, std::path::Path::new("c.toml")).unwrap();
        c.server
    }

    #[test]
    fn acl_defaults_to_loopback_and_deny_wins() {
        let a = Admission::new(&cfg(""));
        assert_eq!(a.check("127.0.0.5".parse().unwrap(), true), Gate::Pass);
        assert_eq!(a.check("::1".parse().unwrap(), true), Gate::Pass);
        assert_eq!(
            a.check("::ffff:127.0.0.1".parse().unwrap(), true),
            Gate::Pass
        );
        assert_eq!(a.check("192.0.2.1".parse().unwrap(), true), Gate::Refuse);
        let a = Admission::new(&cfg("[server]\nallow = [\"10.0.0.0/8\"]\ndeny = [\"10.9.0.0/16\"]\nrefuse_action = \"drop\"\n"));
        assert_eq!(a.check("10.1.2.3".parse().unwrap(), true), Gate::Pass);
        assert_eq!(a.check("10.9.2.3".parse().unwrap(), true), Gate::Drop);
        assert_eq!(a.refused.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn token_bucket_per_client_and_v6_prefix() {
        let a = Admission::new(&cfg("[server]\nallow = [\"::/0\", \"0.0.0.0/0\"]\nrate_limit_qps = 5\nrate_limit_burst = 5\n"));
        let passed = (0..20)
            .filter(|_| a.check("192.0.2.1".parse().unwrap(), true) == Gate::Pass)
            .count();
        assert_eq!(passed, 5);
        assert_eq!(
            a.check("192.0.2.2".parse().unwrap(), true),
            Gate::Pass,
            "another client is not affected"
        );
        assert_eq!(
            a.check("192.0.2.1".parse().unwrap(), false),
            Gate::Pass,
            "TCP is not limited"
        );
        // Two addresses in the same /56 share a bucket.
        let same56 = (0..10)
            .map(|i| format!("2001:db8:0:{i:x}::1").parse().unwrap())
            .filter(|ip| a.check(*ip, true) == Gate::Pass)
            .count();
        assert_eq!(same56, 5);
    }

    #[test]
    fn rrl_slips_every_other() {
        let a = Admission::new(&cfg(
            "[server]\nrrl_responses_per_second = 2\nrrl_slip = 2\n",
        ));
        let c: IpAddr = "127.0.0.1".parse().unwrap();
        let gates: Vec<Gate> = (0..8).map(|_| a.response(c, b"\x01a\x00", 1, 0)).collect();
        assert_eq!(
            gates.iter().filter(|g| **g == Gate::Pass).count(),
            4,
            "burst of 2x rate"
        );
        assert!(
            gates.contains(&Gate::Truncate) && gates.contains(&Gate::Drop),
            "{gates:?}"
        );
        assert_eq!(
            a.response(c, b"\x01b\x00", 1, 0),
            Gate::Pass,
            "a different answer has its own bucket"
        );
    }
}
