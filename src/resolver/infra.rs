//! The infrastructure cache: what we know about each authoritative server address — smoothed
//! round-trip time, recent timeouts, whether it speaks EDNS — and which (server, zone) pairs are
//! lame or failing. It decides the order servers are tried in and how long to wait for each.
//!
//! Like Unbound's infra cache: unknown servers get a middling RTT estimate so that a known fast
//! server is preferred but new ones are still tried; a timeout doubles the estimate; a server
//! that keeps timing out, or answers SERVFAIL/REFUSED/lame for a zone, is passed over for a while.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use hickory_proto::rr::Name;

/// RTT assumed for a server we have not measured yet.
const UNKNOWN_RTT_MS: u32 = 120;
/// Never wait less than this for one server (loopback and LAN answers are faster, but a busy
/// authoritative may not be; Unbound's floor is 50 ms, and it retries, as we do).
const MIN_WAIT_MS: u32 = 100;
/// A server that timed out this many times in a row is skipped while others remain...
const TIMEOUTS_BEFORE_SKIP: u8 = 2;
/// ...for this long.
const SKIP_FOR: Duration = Duration::from_secs(30);
/// A (server, zone) that was lame or refused is passed over this long.
const LAME_FOR: Duration = Duration::from_secs(120);
/// Entries the caches hold at most; past this, stale entries are dropped.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct ServerStats {
    srtt_ms: u32,
    timeouts_in_a_row: u8,
    skip_until: Option<Instant>,
    no_edns: bool,
}

impl Default for ServerStats {
    fn default() -> Self {
        Self {
            srtt_ms: UNKNOWN_RTT_MS,
            timeouts_in_a_row: 0,
            skip_until: None,
            no_edns: false,
        }
    }
}

/// What went wrong with one server, for the infra cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Timeout,
    /// SERVFAIL, REFUSED, NOTIMP, FORMERR without EDNS, lame, upward referral: the server is
    /// up but useless for this zone.
    Useless,
}

pub struct Infra {
    servers: DashMap<IpAddr, ServerStats, ahash::RandomState>,
    lame: DashMap<(IpAddr, Name), Instant, ahash::RandomState>,
    max_wait_ms: u32,
}

impl Infra {
    pub fn new(max_wait: Duration) -> Self {
        Self {
            servers: DashMap::with_hasher(ahash::RandomState::new()),
            lame: DashMap::with_hasher(ahash::RandomState::new()),
            max_wait_ms: max_wait.as_millis().min(u32::MAX as u128) as u32,
        }
    }

    /// Orders candidate addresses best first: usable before skipped, then by smoothed RTT,
    /// with a little jitter among unmeasured servers so load spreads.
    pub fn order(&self, zone: &Name, addrs: &mut [IpAddr]) {
        let now = Instant::now();
        let mut keyed: Vec<(bool, u32, IpAddr)> = addrs
            .iter()
            .map(|a| {
                let s = self.stats(*a);
                let skipped = s.skip_until.is_some_and(|t| t > now) || self.is_lame(*a, zone, now);
                let jitter = if s.srtt_ms == UNKNOWN_RTT_MS {
                    rand::random::<u32>() % 20
                } else {
                    0
                };
                (skipped, s.srtt_ms + jitter, *a)
            })
            .collect();
        keyed.sort_by_key(|k| (k.0, k.1));
        for (slot, k) in addrs.iter_mut().zip(keyed) {
            *slot = k.2;
        }
    }

    /// How long to wait for `addr` before trying the next server.
    pub fn wait_for(&self, addr: IpAddr) -> Duration {
        let s = self.stats(addr);
        let ms = (s.srtt_ms.saturating_mul(3) + 30)
            .clamp(MIN_WAIT_MS, self.max_wait_ms.max(MIN_WAIT_MS));
        Duration::from_millis(ms as u64)
    }

    pub fn uses_edns(&self, addr: IpAddr) -> bool {
        !self.stats(addr).no_edns
    }

    pub fn answered(&self, addr: IpAddr, rtt: Duration) {
        let ms = rtt.as_millis().min(60_000) as u32;
        let mut e = self.entry(addr);
        // The classic smoothing (7/8 old, 1/8 new), with the first sample taken as is.
        e.srtt_ms = if e.srtt_ms == UNKNOWN_RTT_MS {
            ms.max(1)
        } else {
            (e.srtt_ms * 7 + ms) / 8
        };
        e.timeouts_in_a_row = 0;
        e.skip_until = None;
    }

    pub fn failed(&self, addr: IpAddr, zone: &Name, failure: Failure) {
        match failure {
            Failure::Timeout => {
                let mut e = self.entry(addr);
                e.srtt_ms = e
                    .srtt_ms
                    .saturating_mul(2)
                    .min(self.max_wait_ms.max(MIN_WAIT_MS));
                e.timeouts_in_a_row = e.timeouts_in_a_row.saturating_add(1);
                if e.timeouts_in_a_row >= TIMEOUTS_BEFORE_SKIP {
                    e.skip_until = Some(Instant::now() + SKIP_FOR);
                }
            }
            Failure::Useless => {
                if self.lame.len() >= MAX_ENTRIES {
                    let now = Instant::now();
                    self.lame.retain(|_, until| *until > now);
                }
                self.lame
                    .insert((addr, zone.to_lowercase()), Instant::now() + LAME_FOR);
            }
        }
    }

    /// The server answered FORMERR (or garbage) to a query with EDNS: ask it without from now on.
    pub fn mark_no_edns(&self, addr: IpAddr) {
        self.entry(addr).no_edns = true;
    }

    fn is_lame(&self, addr: IpAddr, zone: &Name, now: Instant) -> bool {
        self.lame
            .get(&(addr, zone.to_lowercase()))
            .is_some_and(|until| *until > now)
    }

    fn stats(&self, addr: IpAddr) -> ServerStats {
        self.servers.get(&addr).map(|s| *s).unwrap_or_default()
    }

    fn entry(&self, addr: IpAddr) -> dashmap::mapref::one::RefMut<'_, IpAddr, ServerStats> {
        if self.servers.len() >= MAX_ENTRIES {
            self.servers
                .retain(|_, s| s.srtt_ms != UNKNOWN_RTT_MS && s.timeouts_in_a_row == 0);
            if self.servers.len() >= MAX_ENTRIES {
                self.servers.clear();
            }
        }
        self.servers.entry(addr).or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_server_first_and_failing_one_last() {
        let infra = Infra::new(Duration::from_millis(500));
        let zone = Name::from_ascii("example.").unwrap();
        let (a, b, c): (IpAddr, IpAddr, IpAddr) = (
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            "10.0.0.3".parse().unwrap(),
        );
        infra.answered(b, Duration::from_millis(5));
        infra.answered(a, Duration::from_millis(50));
        infra.failed(c, &zone, Failure::Useless);
        let mut order = [c, a, b];
        infra.order(&zone, &mut order);
        assert_eq!(order, [b, a, c]);
        // Lameness is per zone: c is fine for another zone.
        let other = Name::from_ascii("other.").unwrap();
        let mut order = [c, a];
        infra.order(&other, &mut order);
        assert_eq!(order, [a, c], "measured 50 ms beats unmeasured");
    }

    #[test]
    fn timeouts_double_the_wait_and_then_skip() {
        let infra = Infra::new(Duration::from_millis(800));
        let zone = Name::root();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        infra.answered(a, Duration::from_millis(50));
        let before = infra.wait_for(a);
        infra.failed(a, &zone, Failure::Timeout);
        assert!(infra.wait_for(a) > before);
        infra.failed(a, &zone, Failure::Timeout);
        let mut order = [a, b];
        infra.order(&zone, &mut order);
        assert_eq!(order, [b, a], "a server that timed out twice is tried last");
        assert!(infra.wait_for(a) <= Duration::from_millis(800));
    }
}
