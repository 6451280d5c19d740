//! Time helpers shared by the query log, the policy's runtime list and the block page:
//! the clock ([`now_us`]), RFC 3339 output ([`format_ts`]) and time arguments
//! ([`parse_time_us`]). They live here, not in the query log, so the policy does not
//! depend on the query log.
//!
//! Time arguments: a duration back from now (`30s`, `30m`, `2h`, `7d`,
//! `2w`, combinations such as `1h30m`), `now`, an RFC 3339 time
//! (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`) or a date (`2024-05-01`, midnight UTC).
//! All results are UTC microseconds since the epoch.

use time::format_description::well_known::Rfc3339;

const US_PER_SEC: i64 = 1_000_000;

/// Why a time argument names no time (each message says what to write instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeArgError {
    #[error("empty duration")]
    Empty,
    #[error("{0:?}: unknown unit {1:?} (use s, m, h, d or w, e.g. 2h, 7d, 30m)")]
    Unit(String, char),
    #[error("{0:?}: a number must come before {1:?}")]
    NoNumber(String, char),
    #[error("{0:?}: number too large")]
    NumberTooLarge(String),
    #[error("{0:?}: duration too large")]
    TooLong(String),
    #[error("{0:?}: missing unit (use s, m, h, d or w, e.g. 2h, 7d, 30m)")]
    NoUnit(String),
    #[error(
        "{0:?}: not a time; use a duration back from now (30m, 2h, 7d), an RFC 3339 time \
         (2024-05-01T12:00:00Z) or a date (2024-05-01)"
    )]
    NotATime(String),
}

/// A duration such as `2h`, `7d` or `1h30m`, in microseconds.
pub fn parse_duration_us(s: &str) -> Result<i64, TimeArgError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(TimeArgError::Empty);
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    let mut saw_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(TimeArgError::Unit(s.to_string(), c)),
        };
        if num.is_empty() {
            return Err(TimeArgError::NoNumber(s.to_string(), c));
        }
        let n: i64 = num
            .parse()
            .map_err(|_| TimeArgError::NumberTooLarge(s.to_string()))?;
        total = n
            .checked_mul(unit * US_PER_SEC)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| TimeArgError::TooLong(s.to_string()))?;
        num.clear();
        saw_unit = true;
    }
    if !num.is_empty() || !saw_unit {
        return Err(TimeArgError::NoUnit(s.to_string()));
    }
    Ok(total)
}

/// A point in time: a duration back from `now_us`, `now`, RFC 3339, or `YYYY-MM-DD`.
pub fn parse_time_us(s: &str, now_us: i64) -> Result<i64, TimeArgError> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("now") {
        return Ok(now_us);
    }
    if t.starts_with(|c: char| c.is_ascii_digit())
        && t.ends_with(|c: char| c.is_ascii_alphabetic())
        && !t.contains('-')
    {
        return Ok(now_us - parse_duration_us(t)?);
    }
    if let Ok(dt) = time::OffsetDateTime::parse(t, &Rfc3339) {
        return Ok((dt.unix_timestamp_nanos() / 1000) as i64);
    }
    // lower-case 't'/'z' and a space instead of 'T' are common when typed by hand
    let fixed = t.replacen(' ', "T", 1).to_ascii_uppercase();
    if let Ok(dt) = time::OffsetDateTime::parse(&fixed, &Rfc3339) {
        return Ok((dt.unix_timestamp_nanos() / 1000) as i64);
    }
    let date_fmt = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(d) = time::Date::parse(t, &date_fmt) {
        return Ok(d.midnight().assume_utc().unix_timestamp() * US_PER_SEC);
    }
    Err(TimeArgError::NotATime(s.to_string()))
}

/// Microseconds since the epoch as RFC 3339 UTC with microseconds, e.g.
/// `2024-05-01T12:00:00.123456Z`.
pub fn format_ts_us(ts_us: i64) -> String {
    format_ts(ts_us, 6)
}

/// Same with `frac` (0, 3 or 6) fractional digits.
pub fn format_ts(ts_us: i64, frac: u8) -> String {
    let secs = ts_us.div_euclid(1_000_000);
    let us = ts_us.rem_euclid(1_000_000);
    let dt = match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(dt) => dt,
        Err(_) => return format!("@{ts_us}us"),
    };
    // one allocation: `logs export` formats a time per row
    use std::fmt::Write;
    let mut out = String::with_capacity(27);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    );
    let _ = match frac {
        0 => write!(out, "Z"),
        3 => write!(out, ".{:03}Z", us / 1000),
        _ => write!(out, ".{us:06}Z"),
    };
    out
}

/// Current time as microseconds since the epoch.
pub fn now_us() -> i64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_micros() as i64,
        Err(e) => -(e.duration().as_micros() as i64),
    }
}

/// Seconds since the epoch (0 for a clock set before 1970): the crate's one wall clock in
/// seconds (policy reloads, feeds, RPZ serials and TSIG, the new-domain set, the DNSSEC
/// validator's `dnssec::now_unix`).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_714_564_800_000_000; // 2024-05-01T12:00:00Z

    #[test]
    fn durations() {
        assert_eq!(parse_duration_us("30m").unwrap(), 30 * 60 * US_PER_SEC);
        assert_eq!(parse_duration_us("2h").unwrap(), 7200 * US_PER_SEC);
        assert_eq!(parse_duration_us("7d").unwrap(), 7 * 86_400 * US_PER_SEC);
        assert_eq!(parse_duration_us("1h30m").unwrap(), 5400 * US_PER_SEC);
        assert_eq!(parse_duration_us("2W").unwrap(), 14 * 86_400 * US_PER_SEC);
        assert_eq!(parse_duration_us("45s").unwrap(), 45 * US_PER_SEC);
        for bad in ["", "h", "10", "10x", "1h30", "-2h", "99999999999999999999d"] {
            assert!(parse_duration_us(bad).is_err(), "{bad:?} should fail");
        }
        assert!(parse_duration_us("10x")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
    }

    #[test]
    fn times() {
        assert_eq!(parse_time_us("2h", NOW).unwrap(), NOW - 7200 * US_PER_SEC);
        assert_eq!(
            parse_time_us("7d", NOW).unwrap(),
            NOW - 7 * 86_400 * US_PER_SEC
        );
        assert_eq!(parse_time_us("now", NOW).unwrap(), NOW);
        assert_eq!(parse_time_us("2024-05-01T12:00:00Z", 0).unwrap(), NOW);
        assert_eq!(parse_time_us("2024-05-01T14:00:00+02:00", 0).unwrap(), NOW);
        assert_eq!(
            parse_time_us("2024-05-01T12:00:00.250Z", 0).unwrap(),
            NOW + 250_000
        );
        assert_eq!(parse_time_us("2024-05-01 12:00:00z", 0).unwrap(), NOW);
        assert_eq!(
            parse_time_us("2024-05-01", 0).unwrap(),
            NOW - 12 * 3600 * US_PER_SEC
        );
        for bad in ["yesterday", "2024-13-01", "2024-05-01T25:00:00Z", "12"] {
            let e = parse_time_us(bad, NOW).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn timestamps_format_in_utc() {
        assert_eq!(format_ts_us(0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(
            format_ts_us(1_714_564_800_123_456),
            "2024-05-01T12:00:00.123456Z"
        );
        assert_eq!(
            format_ts(1_714_564_800_123_456, 3),
            "2024-05-01T12:00:00.123Z"
        );
        assert_eq!(format_ts(-1, 6), "1969-12-31T23:59:59.999999Z");
    }
}
