//! The new-domain set: which registrable domains this resolver has seen within `nod_days`.
//! Two Bloom filters in turn (a "stable" pair): a domain is seen when either holds it; new
//! ones go into the current one; every `nod_days / 2` the older is cleared and becomes the
//! current one. So a domain stays seen between `nod_days / 2` and `nod_days` after it was
//! last queried, memory is fixed (two filters sized for `capacity` names at ~1% false
//! positives: 2 x 1.2 bytes a name, 24 MB for 10 million), and the set survives restarts in
//! one file written atomically.

use std::path::Path;
use std::time::Duration;

use xxhash_rust::xxh3::xxh3_128;

const HASHES: u32 = 7;
const MAGIC: &[u8; 8] = b"DWNOD001";

/// Slots of the front cache: the hashes of recently checked domains, one per slot.
const FRONT_SLOTS: usize = 1 << 16;

pub struct NodSet {
    /// Recently checked domains (direct-mapped by hash; cleared at each rotation): most
    /// queries are for a few thousand domains, answered here without touching the filters'
    /// memory (a filter lookup is 7 cache misses).
    front: Vec<u64>,
    bits_per_filter: u64,
    filters: [Vec<u64>; 2],
    /// Index of the current filter.
    current: usize,
    /// Unix seconds when the current filter started.
    started: u64,
    rotate_every: Duration,
}

impl NodSet {
    /// Sized for `capacity` names per filter at ~1% false positives (9.6 bits a name).
    pub fn new(capacity: u64, nod_days: u32) -> NodSet {
        let bits = (capacity.max(1000) * 96 / 10).next_multiple_of(64);
        let words = (bits / 64) as usize;
        NodSet {
            front: vec![0; FRONT_SLOTS],
            bits_per_filter: bits,
            filters: [vec![0; words], vec![0; words]],
            current: 0,
            started: unix_now(),
            rotate_every: Duration::from_secs(u64::from(nod_days.max(1)) * 86_400 / 2),
        }
    }

    /// Bytes of memory the two filters take (the saved size).
    pub fn memory_bytes(&self) -> usize {
        self.filters.iter().map(|f| f.len() * 8).sum()
    }

    /// Bytes of memory in all, the front cache included.
    pub fn total_bytes(&self) -> usize {
        self.memory_bytes() + self.front.len() * 8
    }

    fn positions(&self, h: u128) -> impl Iterator<Item = u64> + '_ {
        let (h1, h2) = (h as u64, (h >> 64) as u64 | 1);
        (0..HASHES as u64).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % self.bits_per_filter)
    }

    fn has(&self, f: usize, h: u128) -> bool {
        self.positions(h)
            .all(|p| self.filters[f][(p / 64) as usize] & (1 << (p % 64)) != 0)
    }

    /// Records `name`; true when it was not seen before (a newly observed domain).
    pub fn check_and_insert(&mut self, name: &str, now_unix: u64) -> bool {
        self.maybe_rotate(now_unix);
        let h = xxh3_128(name.as_bytes());
        let tag = (h as u64) | 1;
        let slot = ((h >> 64) as usize) & (FRONT_SLOTS - 1);
        if self.front[slot] == tag {
            return false;
        }
        self.front[slot] = tag;
        let cur = self.current;
        if self.has(cur, h) {
            return false;
        }
        let seen_before = self.has(1 - cur, h);
        let positions: Vec<u64> = self.positions(h).collect();
        for p in positions {
            self.filters[cur][(p / 64) as usize] |= 1 << (p % 64);
        }
        !seen_before
    }

    fn maybe_rotate(&mut self, now_unix: u64) {
        if now_unix.saturating_sub(self.started) >= self.rotate_every.as_secs() {
            self.current = 1 - self.current;
            self.filters[self.current].iter_mut().for_each(|w| *w = 0);
            self.front.iter_mut().for_each(|w| *w = 0);
            self.started = now_unix;
        }
    }

    /// Writes the set to `path` (temporary file, then rename).
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        let mut out = Vec::with_capacity(self.memory_bytes() + 40);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.bits_per_filter.to_le_bytes());
        out.extend_from_slice(&(self.current as u64).to_le_bytes());
        out.extend_from_slice(&self.started.to_le_bytes());
        for f in &self.filters {
            for w in f {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, path)
    }

    /// The set saved at `path`, if it is there and of the same size; else a fresh one.
    pub fn load_or_new(path: &Path, capacity: u64, nod_days: u32) -> NodSet {
        let mut set = NodSet::new(capacity, nod_days);
        let Ok(bytes) = std::fs::read(path) else {
            return set;
        };
        let expect = 32 + set.memory_bytes();
        let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or_default());
        if bytes.len() != expect || &bytes[..8] != MAGIC || word(8) != set.bits_per_filter {
            tracing::warn!(path = %path.display(), "alerts: new-domain set of another size or format; starting empty");
            return set;
        }
        set.current = (word(16) & 1) as usize;
        set.started = word(24);
        let words = set.filters[0].len();
        for f in 0..2 {
            for i in 0..words {
                set.filters[f][i] = word(32 + (f * words + i) * 8);
            }
        }
        set
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The registrable domain of `qname` (lower case, no trailing dot), approximately: the last
/// two labels, or three under a two-letter country code whose second level is a generic one
/// (`agency.gov.vn`, `shop.co.uk`). No public suffix list is shipped; this is the usual
/// heuristic and errs towards reporting a domain per organisation.
pub fn registrable(qname: &str) -> &str {
    const SECOND_LEVELS: &[&str] = &[
        "com", "net", "org", "gov", "edu", "ac", "co", "or", "ne", "go", "int", "mil", "info",
        "biz", "name", "pro", "health", "nic", "id",
    ];
    let q = qname.trim_end_matches('.');
    let mut labels = q.rsplitn(4, '.');
    let (tld, sld, third) = (labels.next(), labels.next(), labels.next());
    let take = match (tld, sld, third) {
        (Some(tld), Some(sld), Some(_)) if tld.len() == 2 && SECOND_LEVELS.contains(&sld) => 3,
        _ => 2,
    };
    let mut cut = q.len();
    for _ in 0..take {
        match q[..cut].rfind('.') {
            Some(i) => cut = i,
            None => return q,
        }
    }
    &q[cut + 1..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrable_domains() {
        assert_eq!(registrable("www.example.com"), "example.com");
        assert_eq!(registrable("a.b.agency.gov.vn."), "agency.gov.vn");
        assert_eq!(registrable("x.shop.co.uk"), "shop.co.uk");
        assert_eq!(registrable("example.com"), "example.com");
        assert_eq!(registrable("localhost"), "localhost");
        assert_eq!(registrable("gov.vn"), "gov.vn");
    }

    #[test]
    fn seen_once_then_known_rotation_and_persistence() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = NodSet::new(10_000, 2);
        let t0 = s.started;
        assert!(s.check_and_insert("example.com", t0));
        assert!(!s.check_and_insert("example.com", t0 + 10));
        // One rotation (a day later): still seen (in the older filter), copied forward.
        assert!(!s.check_and_insert("example.com", t0 + 86_400));
        let p = dir.path().join("nod.bin");
        s.save(&p).unwrap();
        let mut back = NodSet::load_or_new(&p, 10_000, 2);
        assert!(!back.check_and_insert("example.com", t0 + 86_400 + 5));
        assert!(back.check_and_insert("other.org", t0 + 86_400 + 5));
        // Two rotations without a query: forgotten.
        let mut fresh = NodSet::new(10_000, 2);
        let t = fresh.started;
        fresh.check_and_insert("gone.net", t);
        fresh.maybe_rotate(t + 86_400);
        fresh.maybe_rotate(t + 2 * 86_400);
        assert!(fresh.check_and_insert("gone.net", t + 2 * 86_400));
    }

    #[test]
    fn ten_million_names_fit_in_64_mb_with_few_false_positives() {
        let s = NodSet::new(10_000_000, 30);
        assert!(s.total_bytes() <= 64 << 20, "{}", s.total_bytes());
        assert_eq!(s.total_bytes(), 24_000_000 + 524_288);
        let mut small = NodSet::new(100_000, 30);
        let t = small.started;
        for i in 0..100_000 {
            small.check_and_insert(&format!("d{i}.example"), t);
        }
        let fp = (0..10_000)
            .filter(|i| !small.check_and_insert(&format!("n{i}.other"), t))
            .count();
        assert!(fp < 300, "false positives: {fp} of 10000");
    }
}
