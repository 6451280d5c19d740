//! The name matcher: a flat, immutable table of 16-byte entries keyed by a
//! 64-bit hash of the normalized (lower-case, no trailing dot, punycode) name.
//!
//! Layout: an open-addressed table with linear probing in which entries are
//! placed in hash order ("sorted linear probing"): the home slot of hash `h` is
//! `h * cap / 2^64`, which is monotone in `h`, and entry k (sorted by hash) goes
//! to `max(home(h_k), pos_{k-1} + 1)`. It is a sorted array with gaps, so a
//! lookup starts at `home(h)` and scans forward while the slot's hash is `< h`:
//! one random memory access (plus, rarely, the next cache line) per probe, and
//! no separate directory. With `cap = 1.25 n` (load 0.8) the mean scan is ~2
//! slots. An empty slot holds `EMPTY_HASH` (= u64::MAX, which real hashes never
//! take), larger than every real hash, so scans stop there; a trailing empty
//! slot ends every scan. No per-entry heap allocation and no per-entry string:
//! 16 bytes per entry x 1.25 = 20 bytes per rule.
//! (A first version used a hash-sorted array plus a radix directory: same
//! memory, but two dependent cache misses per probe, ~2x slower on big lists.)
//!
//! Hash collisions: two different names with the same 64-bit hash are treated
//! as the same name. With N entries and a 5-label query the chance that a given
//! lookup hits a false match is about 5·N/2^64 (≈3e-13 for N = 1M): accepted.
//! To keep an attacker from *crafting* a name that collides with an allow-list
//! entry (a bypass), the hash is keyed with a per-process random seed, shared by
//! every snapshot of the process so that entries kept from a previous snapshot
//! stay valid.

use std::sync::OnceLock;

use rayon::slice::ParallelSliceMut;

/// Which names an entry covers, relative to the listed name `n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Kind {
    /// `n` and every name below it (plain, hosts, adblock `||n^`, dnsmasq, unbound).
    Subtree = 0,
    /// `n` only (RPZ owner name, bare name in an explicit `wildcard` list).
    Exact = 1,
    /// Names strictly below `n` only (`*.n` in wildcard lists and RPZ).
    Wildcard = 2,
}

/// What an entry does when it matches. `Block` uses the list's / policy's
/// configured action; the others carry the rule's own action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Act {
    Block = 0,
    Allow = 1,
    Nxdomain = 2,
    Nodata = 3,
    Refused = 4,
    Drop = 5,
    /// RPZ local data: records in the list's side table, keyed by `line`.
    Local = 6,
}

/// One entry of the name table: 16 bytes, no heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct NameEntry {
    pub hash: u64,
    pub line: u32,
    pub list: u16,
    pub kind: Kind,
    pub act: Act,
}

const _: () = assert!(std::mem::size_of::<NameEntry>() == 16);

fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| {
        use std::hash::BuildHasher;
        // std's RandomState is seeded from the OS: good enough for a secret key.
        std::collections::hash_map::RandomState::new().hash_one(0x6477_6172_645f_u64)
    })
}

/// Hash of a normalized name (lower-case ASCII, no trailing dot).
#[inline]
pub fn hash_name(name: &[u8]) -> u64 {
    hash_name_seeded(name, seed())
}

/// Real hashes are never `EMPTY_HASH`.
pub(crate) const EMPTY_HASH: u64 = u64::MAX;

#[inline]
pub(crate) fn hash_name_seeded(name: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name, seed).min(EMPTY_HASH - 1)
}

const EMPTY: NameEntry = NameEntry {
    hash: EMPTY_HASH,
    line: 0,
    list: u16::MAX,
    kind: Kind::Exact,
    act: Act::Block,
};

#[inline]
pub(crate) fn current_seed() -> u64 {
    seed()
}

/// Normalizes a listed name into `out`: lower case, one trailing dot removed,
/// IDN converted to punycode, then validated (LDH plus `_`, labels 1..=63
/// bytes, total <= 253). `*` is not accepted here: callers strip a leading `*.`.
pub fn normalize_name(tok: &str, out: &mut String) -> Result<(), &'static str> {
    out.clear();
    let tok = tok.strip_suffix('.').unwrap_or(tok);
    if tok.is_empty() {
        return Err("empty name");
    }
    if tok.is_ascii() {
        out.push_str(tok);
        out.make_ascii_lowercase();
    } else {
        match idna::domain_to_ascii(tok) {
            Ok(s) => out.push_str(s.strip_suffix('.').unwrap_or(&s)),
            Err(_) => return Err("invalid internationalized name"),
        }
    }
    validate_ascii_name(out.as_bytes())
}

pub(crate) fn validate_ascii_name(n: &[u8]) -> Result<(), &'static str> {
    if n.is_empty() {
        return Err("empty name");
    }
    if n.len() > 253 {
        return Err("name longer than 253 bytes");
    }
    let mut label = 0usize;
    for &b in n {
        match b {
            b'.' => {
                if label == 0 {
                    return Err("empty label");
                }
                label = 0;
            }
            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => {
                label += 1;
                if label > 63 {
                    return Err("label longer than 63 bytes");
                }
            }
            b'*' => return Err("'*' only allowed as a leading '*.' label"),
            _ => return Err("invalid character in name"),
        }
    }
    if label == 0 {
        return Err("empty label");
    }
    Ok(())
}

/// The immutable name table.
/// Entries placed per step of `NameTable::build`'s backward pass.
const PLACE_CHUNK: usize = 4096;

pub struct NameTable {
    /// Slots; `cap` home slots plus overflow, always ending with an empty slot. A `Vec`, not
    /// a boxed slice: shrinking the list parse's generous reservation would copy the whole
    /// table while the old snapshot is still alive; its unused tail is never written, so it
    /// is address space, not memory.
    slots: Vec<NameEntry>,
    cap: u64,
    len: usize,
    /// Bit `min(labels, 63)` is set when some entry's name has that many
    /// labels: a query suffix with a label count no entry has is not probed
    /// (saves hashing e.g. the bare TLD). A filter only, never a cap.
    label_mask: u64,
}

/// The bit of `label_mask` for a name of `labels` labels.
#[inline]
pub fn label_bit(labels: usize) -> u64 {
    1u64 << labels.min(63)
}

impl NameTable {
    pub fn empty() -> Self {
        Self::build(Vec::new(), 0)
    }

    /// Sorts (in parallel), removes duplicates (same name, list, kind and
    /// action: the lowest line is kept) and places the entries. Reserve
    /// `capacity_for(n)` in `v` beforehand to avoid a reallocation.
    pub fn build(mut v: Vec<NameEntry>, label_mask: u64) -> Self {
        assert!(v.len() < u32::MAX as usize, "too many name entries");
        v.par_sort_unstable_by_key(|e| (e.hash, e.list, e.kind, e.act, e.line));
        v.dedup_by(|b, a| {
            a.hash == b.hash && a.list == b.list && a.kind == b.kind && a.act == b.act
        });
        let n = v.len();
        let cap = (n + n / 4).max(1) as u64;
        // Forward pass: final positions, pos(k) = max(home(k), pos(k-1) + 1). Only the first
        // of every PLACE_CHUNK is kept (a whole array would be 4 bytes an entry, a reload's
        // peak memory); the backward pass recomputes each chunk's from it.
        let mut chunk_first: Vec<u32> = Vec::with_capacity(n / PLACE_CHUNK + 1);
        let mut next = 0u64;
        for (k, e) in v.iter().enumerate() {
            let p = home(e.hash, cap).max(next);
            if k % PLACE_CHUNK == 0 {
                chunk_first.push(p as u32);
            }
            next = p + 1;
        }
        let total = next.max(cap) as usize + 1; // + trailing empty slot
        v.resize(total, EMPTY);
        // Backward pass, in place, a chunk at a time: pos(k) >= k, so nothing unmoved is
        // overwritten, and a chunk's entries are still where the sort left them when its
        // positions are recomputed (later chunks only moved further up).
        let mut pos: Vec<u32> = Vec::with_capacity(PLACE_CHUNK.min(n));
        for (c, &first) in chunk_first.iter().enumerate().rev() {
            let lo = c * PLACE_CHUNK;
            let hi = (lo + PLACE_CHUNK).min(n);
            pos.clear();
            let mut p = u64::from(first);
            pos.push(first);
            for e in &v[lo + 1..hi] {
                p = home(e.hash, cap).max(p + 1);
                pos.push(p as u32);
            }
            for k in (lo..hi).rev() {
                let e = v[k];
                v[k] = EMPTY;
                v[pos[k - lo] as usize] = e;
            }
        }
        NameTable {
            slots: v,
            cap,
            len: n,
            label_mask,
        }
    }

    /// Capacity to reserve for `n` entries so that `build` does not reallocate.
    pub fn capacity_for(n: usize) -> usize {
        n + n / 4 + 2
    }

    /// All entries whose hash equals `hash` (usually 0 or 1).
    #[inline]
    pub fn lookup(&self, hash: u64) -> &[NameEntry] {
        let mut i = home(hash, self.cap) as usize;
        let s = &self.slots;
        // Terminates: the last slot is empty (EMPTY_HASH > every real hash).
        while s[i].hash < hash {
            i += 1;
        }
        let start = i;
        while s[i].hash == hash {
            i += 1;
        }
        &s[start..i]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn label_mask(&self) -> u64 {
        self.label_mask
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &NameEntry> {
        self.slots.iter().filter(|e| e.hash != EMPTY_HASH)
    }

    /// Bytes held by the table.
    pub fn heap_bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<NameEntry>()
    }
}

#[inline]
fn home(hash: u64, cap: u64) -> u64 {
    ((hash as u128 * cap as u128) >> 64) as u64
}

/// A query name lower-cased into a stack buffer (heap only for names that are
/// not ASCII or longer than 255 bytes, which no valid DNS name is).
// The stack variant is the point (no allocation per query).
#[allow(clippy::large_enum_variant)]
pub(crate) enum QName {
    Stack([u8; 256], usize),
    Heap(Vec<u8>),
}

impl QName {
    pub(crate) fn new(qname: &str) -> QName {
        let q = qname.strip_suffix('.').unwrap_or(qname);
        let b = q.as_bytes();
        if b.len() <= 256 && q.is_ascii() {
            let mut buf = [0u8; 256];
            for (d, s) in buf.iter_mut().zip(b) {
                *d = s.to_ascii_lowercase();
            }
            QName::Stack(buf, b.len())
        } else if q.is_ascii() {
            QName::Heap(q.to_ascii_lowercase().into_bytes())
        } else {
            // Non-ASCII (a caller passing a U-label): punycode if possible,
            // else match the lower-cased bytes as they are.
            match idna::domain_to_ascii(q) {
                Ok(s) => QName::Heap(s.trim_end_matches('.').as_bytes().to_vec()),
                Err(_) => QName::Heap(q.to_lowercase().into_bytes()),
            }
        }
    }

    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            QName::Stack(b, n) => &b[..*n],
            QName::Heap(v) => v,
        }
    }
}

/// Calls `f(start, entry)` for every entry applicable to `name`, walking every
/// label suffix from the longest (the name itself, `start == 0`) to the
/// shortest (the TLD), with no depth cap. `f` returns false to stop.
#[inline]
pub(crate) fn walk(table: &NameTable, name: &[u8], mut f: impl FnMut(usize, &NameEntry) -> bool) {
    if name.is_empty() || table.is_empty() {
        return;
    }
    let seed = current_seed();
    let mask = table.label_mask;
    let mut labels = 1 + name.iter().filter(|&&b| b == b'.').count();
    let mut start = 0usize;
    loop {
        let hits = if mask & label_bit(labels) != 0 {
            table.lookup(hash_name_seeded(&name[start..], seed))
        } else {
            &[]
        };
        for e in hits {
            let applies = match e.kind {
                Kind::Subtree => true,
                Kind::Exact => start == 0,
                Kind::Wildcard => start > 0,
            };
            if applies && !f(start, e) {
                return;
            }
        }
        match name[start..].iter().position(|&b| b == b'.') {
            Some(i) => {
                start += i + 1;
                labels -= 1;
            }
            None => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str, kind: Kind, act: Act, line: u32) -> NameEntry {
        NameEntry {
            hash: hash_name(name.as_bytes()),
            line,
            list: 0,
            kind,
            act,
        }
    }

    #[test]
    fn normalize_cases() {
        let mut s = String::new();
        normalize_name("Evil.EXAMPLE.", &mut s).unwrap();
        assert_eq!(s, "evil.example");
        normalize_name("bücher.example", &mut s).unwrap();
        assert_eq!(s, "xn--bcher-kva.example");
        assert!(normalize_name("a..b", &mut s).is_err());
        assert!(normalize_name("a b", &mut s).is_err());
        assert!(normalize_name(".", &mut s).is_err());
        assert!(normalize_name(&"a".repeat(64), &mut s).is_err());
        assert!(normalize_name("*.x", &mut s).is_err());
    }

    #[test]
    fn table_lookup_and_dedup() {
        let v = vec![
            e("a.example", Kind::Subtree, Act::Block, 3),
            e("a.example", Kind::Subtree, Act::Block, 1),
            e("b.example", Kind::Exact, Act::Allow, 2),
        ];
        let t = NameTable::build(v, u64::MAX);
        assert_eq!(t.len(), 2);
        let hits = t.lookup(hash_name(b"a.example"));
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].line, 1);
        assert!(t.lookup(hash_name(b"c.example")).is_empty());
        assert!(NameTable::empty().lookup(1).is_empty());
        assert!(NameTable::empty().lookup(EMPTY_HASH - 1).is_empty());
        assert_eq!(t.iter().count(), 2);
    }

    #[test]
    fn walk_kinds() {
        let t = NameTable::build(
            vec![
                e("sub.example", Kind::Subtree, Act::Block, 1),
                e("ex.example", Kind::Exact, Act::Block, 2),
                e("wc.example", Kind::Wildcard, Act::Block, 3),
            ],
            label_bit(2),
        );
        let lines = |q: &str| {
            let q = QName::new(q);
            let mut v = vec![];
            walk(&t, q.bytes(), |s, e| {
                v.push((s, e.line));
                true
            });
            v
        };
        assert_eq!(lines("sub.example"), vec![(0, 1)]);
        assert_eq!(lines("A.Sub.Example."), vec![(2, 1)]);
        assert_eq!(lines("ex.example"), vec![(0, 2)]);
        assert_eq!(lines("a.ex.example"), vec![]);
        assert_eq!(lines("wc.example"), vec![]);
        assert_eq!(lines("x.y.wc.example"), vec![(4, 3)]);
        // the label mask is a filter: a table whose mask lacks 2 labels never matches 2-label names
        let t2 = NameTable::build(
            vec![e("sub.example", Kind::Subtree, Act::Block, 1)],
            label_bit(3),
        );
        let q = QName::new("a.sub.example");
        let mut n = 0;
        walk(&t2, q.bytes(), |_, _| {
            n += 1;
            true
        });
        assert_eq!(n, 0);
    }

    #[test]
    fn clusters_longer_than_a_placement_chunk_are_placed_in_order() {
        // 3 entries a hash, all hashes in the lowest 1/1000 of the range: one long run of
        // displaced entries over several of build's chunks.
        let n = 3 * PLACE_CHUNK as u32 + 123;
        let v: Vec<_> = (0..n)
            .map(|i| NameEntry {
                hash: u64::from(i / 3) << 40,
                line: i,
                list: (i % 3) as u16,
                kind: Kind::Subtree,
                act: Act::Block,
            })
            .collect();
        let t = NameTable::build(v, u64::MAX);
        assert_eq!(t.len(), n as usize);
        let hashes: Vec<u64> = t.iter().map(|e| e.hash).collect();
        assert!(
            hashes.windows(2).all(|w| w[0] <= w[1]),
            "slots in hash order"
        );
        for h in 0..n.div_ceil(3) {
            let found = t.lookup(u64::from(h) << 40);
            assert_eq!(found.len(), if h < n / 3 { 3 } else { (n % 3) as usize });
            assert!(found.iter().all(|e| e.line / 3 == h));
        }
    }

    #[test]
    fn many_entries_all_found() {
        let v: Vec<_> = (0..10_000)
            .map(|i| e(&format!("d{i}.example"), Kind::Subtree, Act::Block, i))
            .collect();
        let t = NameTable::build(v, u64::MAX);
        for i in 0..10_000 {
            let h = t.lookup(hash_name(format!("d{i}.example").as_bytes()));
            assert_eq!(h.len(), 1);
            assert_eq!(h[0].line, i);
            assert!(t
                .lookup(hash_name(format!("x{i}.example").as_bytes()))
                .is_empty());
        }
        assert_eq!(t.len(), 10_000);
        assert_eq!(t.iter().count(), 10_000);
        // crowded hashes at both ends of the range still found
        let v: Vec<_> = (0..100u32)
            .map(|i| NameEntry {
                hash: EMPTY_HASH - 1 - (i as u64 % 3),
                line: i,
                list: i as u16,
                kind: Kind::Subtree,
                act: Act::Block,
            })
            .chain((0..100u32).map(|i| NameEntry {
                hash: i as u64 % 5,
                line: i,
                list: i as u16,
                kind: Kind::Subtree,
                act: Act::Block,
            }))
            .collect();
        let t = NameTable::build(v, u64::MAX);
        assert_eq!(t.lookup(EMPTY_HASH - 1).len(), 34);
        assert_eq!(t.lookup(EMPTY_HASH - 3).len(), 33);
        assert_eq!(t.lookup(0).len(), 20);
        assert_eq!(t.lookup(4).len(), 20);
        assert!(t.lookup(5).is_empty());
    }
}
