//! `[[events]]`: event windows (the switching itself is `crate::events`).

use std::collections::HashSet;

use serde::Deserialize;

use super::Config;
use crate::policy::groups::DEFAULT_GROUP;

/// One `[[events]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventConfig {
    pub name: String,
    /// RFC 3339 with an offset: `2026-04-25T00:00:00+07:00`.
    pub start: String,
    pub end: String,
    /// Lists in force only inside the window.
    #[serde(default)]
    pub lists: Vec<String>,
    /// Only for these groups (default: every client).
    #[serde(default)]
    pub groups: Vec<String>,
    /// `[[alerts]]` rules active only inside the window.
    #[serde(default)]
    pub alerts: Vec<String>,
}

/// A `start` or `end` that is not an RFC 3339 time with an offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an RFC 3339 time with an offset ({reason}); write e.g. 2026-04-25T00:00:00+07:00")]
pub struct BadTime {
    pub text: String,
    pub reason: String,
}

/// An RFC 3339 time in microseconds since the Unix epoch.
pub fn parse_rfc3339_us(s: &str) -> Result<i64, BadTime> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| BadTime {
        text: s.to_string(),
        reason: e.to_string(),
    })?;
    Ok((t.unix_timestamp_nanos() / 1000) as i64)
}

impl EventConfig {
    /// (start, end) in microseconds; only for a config that passed its checks.
    pub fn window_us(&self) -> (i64, i64) {
        (
            parse_rfc3339_us(&self.start).unwrap_or(i64::MAX),
            parse_rfc3339_us(&self.end).unwrap_or(i64::MIN),
        )
    }

    pub fn is_active(&self, now_us: i64) -> bool {
        let (s, e) = self.window_us();
        s <= now_us && now_us < e
    }
}

/// Problems of `[[events]]` (key path, message).
pub fn problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lists: HashSet<&str> = config.lists.iter().map(|l| l.name.as_str()).collect();
    let groups: HashSet<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
    let rules: HashSet<&str> = config.alerts.iter().map(|r| r.name.as_str()).collect();
    let mut names = HashSet::new();
    for (i, e) in config.events.iter().enumerate() {
        let key = |k: &str| format!("events[{i}].{k}");
        if e.name.trim().is_empty() {
            out.push((key("name"), "must not be empty".into()));
        } else if !names.insert(e.name.as_str()) {
            out.push((key("name"), format!("another event is named {:?}", e.name)));
        }
        let start = parse_rfc3339_us(&e.start).map_err(|m| out.push((key("start"), m.to_string())));
        let end = parse_rfc3339_us(&e.end).map_err(|m| out.push((key("end"), m.to_string())));
        if let (Ok(s), Ok(t)) = (start, end) {
            if t <= s {
                out.push((
                    key("end"),
                    format!("{} is not after start {}", e.end, e.start),
                ));
            }
        }
        if e.lists.is_empty() && e.alerts.is_empty() {
            out.push((key("lists"), "an event needs lists or alerts".into()));
        }
        for (j, l) in e.lists.iter().enumerate() {
            if !lists.contains(l.as_str()) {
                out.push((
                    format!("events[{i}].lists[{j}]"),
                    format!("unknown list {l:?}"),
                ));
            }
        }
        for (j, g) in e.groups.iter().enumerate() {
            if !groups.contains(g.as_str()) && g != DEFAULT_GROUP {
                out.push((
                    format!("events[{i}].groups[{j}]"),
                    format!("unknown group {g:?}"),
                ));
            }
        }
        for (j, r) in e.alerts.iter().enumerate() {
            if !rules.contains(r.as_str()) {
                out.push((
                    format!("events[{i}].alerts[{j}]"),
                    format!("unknown alert rule {r:?}"),
                ));
            }
        }
    }
    out
}
