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

use serde::Serialize;

use crate::config::Config;
use crate::policy::groups::{runtime_scope, GroupSpec, GroupsSpec, LogMode, DEFAULT_GROUP};
use crate::policy::reload::PolicyStore;

pub use crate::config::events::{parse_rfc3339_us, problems, EventConfig};

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
