//! The reference ID a blocked person reads to the hotline, and an analyst finds in the query
//! log with `dnsward logs tail --ref ID`.
//!
//! It is derived, not stored: ID = (UTC day, hash of the blocked name and that day). The block
//! page computes it from the Host header and the current day; the log computes it from each
//! blocked row's name and time (an SQLite function). So the page needs no state shared with
//! the DNS path, the log schema does not change, and the same name blocked on the same day
//! gives the same ID on every resolver of a deployment. The first three characters carry the
//! day, so a search looks at one day of blocked rows only.

use xxhash_rust::xxh3::xxh3_64;

/// Crockford's base32: no I, L, O, U, so an ID read over the phone is not misheard.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const DAY_US: i64 = 86_400_000_000;
/// Days are kept modulo 32^3 (about 89 years).
const DAY_MOD: i64 = 32 * 32 * 32;

/// `XXXXX-XXXXX` for `name` (any case, trailing dot or not) blocked at `ts_us`.
pub fn reference(name: &str, ts_us: i64) -> String {
    let day = ts_us.div_euclid(DAY_US);
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let hash = xxh3_64(format!("{day}\n{name}").as_bytes());
    let mut digits = [0u8; 10];
    let day_low = day.rem_euclid(DAY_MOD) as u64;
    for (i, d) in digits[..3].iter_mut().enumerate() {
        *d = ALPHABET[((day_low >> (5 * (2 - i))) & 31) as usize];
    }
    for (i, d) in digits[3..].iter_mut().enumerate() {
        *d = ALPHABET[((hash >> (5 * i)) & 31) as usize];
    }
    let s = std::str::from_utf8(&digits).expect("ASCII");
    format!("{}-{}", &s[..5], &s[5..])
}

/// The microsecond range `[start, end)` of the UTC day an ID was made on (the latest such day
/// not after tomorrow), or `None` when `id` is not an ID. Accepts lower case and no dash.
pub fn day_range(id: &str, now_us: i64) -> Option<(i64, i64)> {
    let clean = normalize(id)?;
    let mut day_low = 0i64;
    for c in clean.bytes().take(3) {
        day_low = day_low * 32 + ALPHABET.iter().position(|&a| a == c)? as i64;
    }
    let latest = now_us.div_euclid(DAY_US) + 1;
    let day = latest - (latest - day_low).rem_euclid(DAY_MOD);
    Some((day * DAY_US, (day + 1) * DAY_US))
}

/// `id` upper-cased with its dash where `reference` puts it; `None` if it cannot be one.
pub fn normalize(id: &str) -> Option<String> {
    let s: String = id
        .trim()
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if s.len() != 10 || !s.bytes().all(|c| ALPHABET.contains(&c)) {
        return None;
    }
    Some(format!("{}-{}", &s[..5], &s[5..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_name_same_day_same_id() {
        let t = 1_764_547_200_000_000; // 2025-12-01T00:00:00Z
        let a = reference("Evil.Example.", t + 1);
        assert_eq!(a, reference("evil.example", t + DAY_US - 1));
        assert_ne!(a, reference("evil.example", t + DAY_US));
        assert_ne!(a, reference("other.example", t));
        assert_eq!(a.len(), 11);
        assert_eq!(&a[5..6], "-");
    }

    #[test]
    fn day_range_finds_the_day() {
        let t = 1_764_547_200_000_000 + 5_000_000;
        let id = reference("evil.example", t);
        let (start, end) = day_range(&id.to_lowercase().replace('-', ""), t + 3 * DAY_US).unwrap();
        assert!(start <= t && t < end && end - start == DAY_US);
        assert!(day_range("nope", t).is_none());
        assert!(day_range("IIIII-IIIII", t).is_none());
    }
}
