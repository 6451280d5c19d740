//! Event windows (`[[events]]`): lists in force only between `start` and `end` (for every
//! client, or only for the `groups` named), and alert rules active only then. The policy
//! switches at each boundary by itself through the same snapshot swap as a reload
//! (`PolicyStore::reload_with_groups`: no query is dropped; queries in flight finish on the
//! snapshot they loaded). An event list is a plain `[[lists]]` entry: outside every window
//! it is in no group's set.
//!
//! Dependencies: `events` uses `config` and `policy`; the policy knows nothing of events (it
//! only gets other groups).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::policy::groups::{runtime_scope, GroupSpec, GroupsSpec, LogMode, DEFAULT_GROUP};
use crate::policy::reload::PolicyStore;

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

/// An RFC 3339 time in microseconds since the Unix epoch.
pub fn parse_rfc3339_us(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time with an offset ({e}); write e.g. 2026-04-25T00:00:00+07:00"))?;
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
        let start = parse_rfc3339_us(&e.start).map_err(|m| out.push((key("start"), m)));
        let end = parse_rfc3339_us(&e.end).map_err(|m| out.push((key("end"), m)));
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

/// The groups as they apply at `now_us`: every event list out of every group, then each
/// active event's lists into the groups it names (all when it names none). Without
/// `[[events]]`, `config.groups_spec()` unchanged.
pub fn groups_at(config: &Config, now_us: i64) -> GroupsSpec {
    let mut spec = config.groups_spec();
    if config.events.is_empty() {
        return spec;
    }
    let event_lists: HashSet<&str> = config
        .events
        .iter()
        .flat_map(|e| e.lists.iter().map(String::as_str))
        .collect();
    let all: Vec<String> = config
        .list_specs()
        .into_iter()
        .map(|s| s.name)
        .filter(|n| !matches!(runtime_scope(n), Some(Some(_))))
        .collect();
    if !spec.groups.iter().any(|g| g.name == DEFAULT_GROUP) {
        spec.groups.insert(
            0,
            GroupSpec {
                name: DEFAULT_GROUP.to_string(),
                lists: None,
                action: None,
                log: LogMode::All,
            },
        );
    }
    let active: Vec<&EventConfig> = config
        .events
        .iter()
        .filter(|e| e.is_active(now_us))
        .collect();
    for g in &mut spec.groups {
        let mut lists: Vec<String> = g
            .lists
            .clone()
            .unwrap_or_else(|| all.clone())
            .into_iter()
            .filter(|n| !event_lists.contains(n.as_str()))
            .collect();
        for e in &active {
            if e.groups.is_empty() || e.groups.contains(&g.name) {
                for l in &e.lists {
                    if !lists.contains(l) {
                        lists.push(l.clone());
                    }
                }
            }
        }
        g.lists = Some(lists);
    }
    spec
}

/// Whether alert rule `rule` may fire at `now_us`: a rule named by events only inside one of
/// their windows, any other rule always.
pub fn rule_active(events: &[EventConfig], rule: &str, now_us: i64) -> bool {
    let mut named = false;
    for e in events.iter().filter(|e| e.alerts.iter().any(|a| a == rule)) {
        named = true;
        if e.is_active(now_us) {
            return true;
        }
    }
    !named
}

/// One event's state for `dnsward check` and `/api/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct EventStatus {
    pub name: String,
    /// `upcoming`, `active` or `ended`.
    pub state: &'static str,
    pub start: String,
    pub end: String,
    /// The next boundary (RFC 3339 UTC), none once ended.
    pub next_change: Option<String>,
    pub lists: Vec<String>,
    pub groups: Vec<String>,
    pub alerts: Vec<String>,
}

pub fn status(events: &[EventConfig], now_us: i64) -> Vec<EventStatus> {
    events
        .iter()
        .map(|e| {
            let (s, t) = e.window_us();
            let (state, next) = if now_us < s {
                ("upcoming", Some(s))
            } else if now_us < t {
                ("active", Some(t))
            } else {
                ("ended", None)
            };
            EventStatus {
                name: e.name.clone(),
                state,
                start: e.start.clone(),
                end: e.end.clone(),
                next_change: next.map(|n| crate::timefmt::format_ts(n, 0)),
                lists: e.lists.clone(),
                groups: e.groups.clone(),
                alerts: e.alerts.clone(),
            }
        })
        .collect()
}

/// The next boundary after `now_us`, if any.
fn next_boundary(events: &[EventConfig], now_us: i64) -> Option<i64> {
    events
        .iter()
        .flat_map(|e| {
            let (s, t) = e.window_us();
            [s, t]
        })
        .filter(|&b| b > now_us)
        .min()
}

/// Switches the policy at every boundary: the groups of that moment, swapped in like a reload.
pub fn spawn_switcher(
    config: Config,
    policy: Arc<PolicyStore>,
) -> Option<tokio::task::JoinHandle<()>> {
    if config.events.iter().all(|e| e.lists.is_empty()) {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut was: Vec<bool> = config
            .events
            .iter()
            .map(|e| e.is_active(crate::timefmt::now_us()))
            .collect();
        loop {
            let now = crate::timefmt::now_us();
            let Some(next) = next_boundary(&config.events, now) else {
                return;
            };
            // Wake at the boundary (a few ms after), at most an hour at a time (clock changes).
            let wait = Duration::from_micros((next - now).max(0) as u64 + 5_000)
                .min(Duration::from_secs(3600));
            tokio::time::sleep(wait).await;
            let now = crate::timefmt::now_us();
            let mut changed = Vec::new();
            for (e, w) in config.events.iter().zip(was.iter_mut()) {
                let active = e.is_active(now);
                if active != *w {
                    *w = active;
                    changed.push(format!(
                        "event {:?} {}",
                        e.name,
                        if active { "started" } else { "ended" }
                    ));
                }
            }
            if changed.is_empty() {
                continue;
            }
            let reason = changed.join(", ");
            tracing::info!("{reason}: switching the policy");
            policy
                .reload_with_groups(groups_at(&config, now), &reason)
                .await;
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_with_offset() {
        assert_eq!(
            parse_rfc3339_us("2026-04-25T00:00:00+07:00").unwrap(),
            parse_rfc3339_us("2026-04-24T17:00:00Z").unwrap()
        );
        assert!(parse_rfc3339_us("2026-04-25 00:00").is_err());
    }
}
