//! Each rule's state and what raises an alert: per-event kinds (client_threshold, watch,
//! new_domain) and periodic ones (feed_failure, querylog_drops).

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::{AlertKind, AlertRule, DEFAULT_NOD_DAYS};
use super::nod::{registrable, NodSet};
use super::NameCount;
use crate::feeds::Feeds;
use crate::querylog::{EventAction, LoggedEvent, QueryLog};

/// Clients tracked at once by a threshold rule (the least recently seen are forgotten).
const MAX_CLIENTS: usize = 50_000;
/// Hits kept per client beyond `count` (for the names in the alert).
const MAX_HITS: usize = 1_000;

/// An alert before the rule's name, time and hotline are added.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub client: Option<String>,
    pub client_name: Option<String>,
    pub group: Option<String>,
    pub names: Vec<NameCount>,
    pub count: u64,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    pub list: Option<String>,
    pub list_rule: Option<String>,
    pub category: Option<String>,
    pub message: String,
    /// De-duplicate on this instead of the client (dnssec_bogus: the zone).
    pub dedup_key: Option<String>,
}

impl Draft {
    fn from_event(e: &LoggedEvent) -> Draft {
        Draft {
            client: Some(e.client.to_string()),
            client_name: e.ev.client_name.as_deref().map(str::to_string),
            group: e.ev.group.as_deref().map(str::to_string),
            first_us: Some(e.ev.ts_us),
            last_us: Some(e.ev.ts_us),
            list: e.ev.list.as_deref().map(str::to_string),
            list_rule: e.ev.rule.clone(),
            category: e.ev.category.as_deref().map(str::to_string),
            count: 1,
            names: vec![NameCount {
                name: e.ev.qname.to_string(),
                count: 1,
            }],
            ..Default::default()
        }
    }

    fn who(&self) -> String {
        let mut s = self.client.clone().unwrap_or_default();
        if let Some(n) = &self.client_name {
            s += &format!(" ({n})");
        }
        s
    }
}

pub struct Hit {
    ts_us: i64,
    qname: Arc<str>,
    event: LoggedEvent,
}

pub enum RuleState {
    Threshold {
        clients: HashMap<String, VecDeque<Hit>>,
    },
    Watch {
        names: HashSet<String, ahash::RandomState>,
    },
    NewDomain {
        set: Box<NodSet>,
        ignore: Vec<String>,
        path: PathBuf,
    },
    /// dnssec_bogus: bogus answers per zone within the window.
    Bogus {
        zones: HashMap<String, VecDeque<i64>>,
    },
    /// Periodic kinds: what was last seen, per feed or in total.
    Periodic { drops: VecDeque<(i64, u64)> },
}

impl RuleState {
    pub fn new(r: &AlertRule, base_dir: &Path, state_dir: &Path, capacity: u64) -> RuleState {
        match r.kind {
            AlertKind::ClientThreshold => RuleState::Threshold {
                clients: HashMap::new(),
            },
            AlertKind::Watch => RuleState::Watch {
                names: super::prefilter::watch_names(r, base_dir),
            },
            AlertKind::NewDomain => {
                let safe: String = r
                    .name
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                let path = state_dir.join(format!("nod-{safe}.bin"));
                let days = r.nod_days.unwrap_or(DEFAULT_NOD_DAYS);
                RuleState::NewDomain {
                    set: Box::new(NodSet::load_or_new(&path, capacity, days)),
                    ignore: r.ignore.iter().map(|s| norm(s)).collect(),
                    path,
                }
            }
            AlertKind::DnssecBogus => RuleState::Bogus {
                zones: HashMap::new(),
            },
            _ => RuleState::Periodic {
                drops: VecDeque::new(),
            },
        }
    }

    /// Saves what must survive a restart (the new-domain set).
    pub fn save(&self) {
        if let RuleState::NewDomain { set, path, .. } = self {
            if let Err(e) = set.save(path) {
                tracing::error!(file = %path.display(), error = %e, "alerts: cannot save the new-domain set");
            }
        }
    }

    pub fn on_event(&mut self, r: &AlertRule, e: &LoggedEvent) -> Option<Draft> {
        if !client_matches(r, e) || e.ev.qname.is_empty() {
            return None;
        }
        match self {
            RuleState::Threshold { clients } => threshold(clients, r, e),
            RuleState::Watch { names } => watch(names, e),
            RuleState::NewDomain { set, ignore, .. } => new_domain(set, ignore, r, e),
            RuleState::Bogus { zones } => bogus(zones, r, e),
            RuleState::Periodic { .. } => None,
        }
    }

    pub fn on_tick(
        &mut self,
        r: &AlertRule,
        p: &mut Periodic,
        log: &QueryLog,
        feeds: Option<&Feeds>,
    ) -> Option<Draft> {
        let RuleState::Periodic { drops } = self else {
            return None;
        };
        match r.kind {
            AlertKind::QuerylogDrops => {
                let now = crate::timefmt::now_us();
                let total: u64 = log.stats().iter().map(|s| s.dropped).sum();
                let delta = total.saturating_sub(p.drops);
                if delta > 0 {
                    drops.push_back((now, delta));
                }
                let window_us = r.window().as_micros() as i64;
                while drops.front().is_some_and(|(t, _)| *t < now - window_us) {
                    drops.pop_front();
                }
                let lost: u64 = drops.iter().map(|(_, n)| n).sum();
                if lost == 0 || lost < u64::from(r.count.unwrap_or(1)) {
                    return None;
                }
                drops.clear();
                let detail: Vec<String> = log
                    .stats()
                    .iter()
                    .filter(|s| s.dropped > 0)
                    .map(|s| {
                        format!(
                            "{} dropped {} in total{}",
                            s.name,
                            s.dropped,
                            s.last_error
                                .as_deref()
                                .map(|e| format!(" (last error: {e})"))
                                .unwrap_or_default()
                        )
                    })
                    .collect();
                Some(Draft {
                    count: lost,
                    message: format!(
                        "the query log lost {lost} event(s) within {}: {}",
                        humantime::format_duration(r.window()),
                        detail.join("; ")
                    ),
                    ..Default::default()
                })
            }
            AlertKind::FeedFailure => {
                let feeds = feeds?;
                let failed: Vec<String> = feeds
                    .status()
                    .into_iter()
                    .filter(|s| {
                        s.state.last_error_unix.is_some()
                            && s.state.last_error_unix
                                != p.feed_errors.get(&s.name).copied().flatten()
                    })
                    .map(|s| {
                        format!(
                            "{}: {}",
                            s.name,
                            s.state.last_error.as_deref().unwrap_or("failed")
                        )
                    })
                    .collect();
                if failed.is_empty() {
                    return None;
                }
                Some(Draft {
                    count: failed.len() as u64,
                    list: failed
                        .first()
                        .and_then(|f| f.split(':').next())
                        .map(str::to_string),
                    message: format!("feed download failed: {}", failed.join("; ")),
                    ..Default::default()
                })
            }
            _ => None,
        }
    }
}

/// What the periodic kinds compare with: the totals at the last tick.
pub struct Periodic {
    drops: u64,
    feed_errors: HashMap<String, Option<u64>>,
}

impl Periodic {
    /// Feed failures before `started_unix` (kept in the feeds' state from an earlier run) are
    /// old news; those since are alerted on.
    pub fn new(log: &QueryLog, feeds: Option<&Feeds>, started_unix: u64) -> Periodic {
        let mut p = Periodic {
            drops: 0,
            feed_errors: HashMap::new(),
        };
        p.advance(log, feeds);
        p.feed_errors
            .retain(|_, t| t.is_some_and(|t| t < started_unix));
        p
    }

    pub fn advance(&mut self, log: &QueryLog, feeds: Option<&Feeds>) {
        self.drops = log.stats().iter().map(|s| s.dropped).sum();
        if let Some(f) = feeds {
            for s in f.status() {
                self.feed_errors.insert(s.name, s.state.last_error_unix);
            }
        }
    }
}

/// The EDE of a SERVFAIL answer when it says DNSSEC failed (RFC 8914 codes 1, 2 and 5-12).
fn bogus_ede(wire: &[u8]) -> Option<(u16, String)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    let m = hickory_proto::op::Message::from_vec(wire).ok()?;
    let (code, text) = match m.edns.as_ref()?.option(EdnsCode::from(15))? {
        EdnsOption::Unknown(15, d) if d.len() >= 2 => (
            u16::from_be_bytes([d[0], d[1]]),
            String::from_utf8_lossy(&d[2..]).into_owned(),
        ),
        _ => return None,
    };
    matches!(code, 1 | 2 | 5..=12).then_some((code, text))
}

fn client_matches(r: &AlertRule, e: &LoggedEvent) -> bool {
    if let Some(c) = &r.client {
        if e.ev.client_name.as_deref() != Some(c.as_str()) {
            return false;
        }
    }
    if let Some(g) = &r.group {
        let group =
            e.ev.group
                .as_deref()
                .unwrap_or(crate::policy::groups::DEFAULT_GROUP);
        if group != g {
            return false;
        }
    }
    true
}

pub(super) fn norm(s: &str) -> String {
    s.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `a.b.c`, `b.c`, `c`.
pub(super) fn suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::successors(Some(name), |n| n.split_once('.').map(|(_, rest)| rest))
}

/// client_threshold: the client's blocked queries (of the category) within the window.
fn threshold(
    clients: &mut HashMap<String, VecDeque<Hit>>,
    r: &AlertRule,
    e: &LoggedEvent,
) -> Option<Draft> {
    if e.ev.action != EventAction::Blocked {
        return None;
    }
    if let Some(c) = r.category {
        if e.ev.category.as_deref() != Some(c.as_str()) {
            return None;
        }
    }
    let count = r.count.unwrap_or(1).max(1) as usize;
    let window_us = r.window().as_micros() as i64;
    let key = e.client.to_string();
    if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
        let oldest = clients
            .iter()
            .min_by_key(|(_, h)| h.back().map_or(i64::MIN, |x| x.ts_us))
            .map(|(k, _)| k.clone());
        if let Some(k) = oldest {
            clients.remove(&k);
        }
    }
    let hits = clients.entry(key.clone()).or_default();
    hits.push_back(Hit {
        ts_us: e.ev.ts_us,
        qname: Arc::clone(&e.ev.qname),
        event: e.clone(),
    });
    while hits
        .front()
        .is_some_and(|h| h.ts_us < e.ev.ts_us - window_us)
        || hits.len() > MAX_HITS.max(count)
    {
        hits.pop_front();
    }
    if hits.len() < count {
        return None;
    }
    let hits = clients.remove(&key).unwrap_or_default();
    let mut by_name: Vec<NameCount> = Vec::new();
    for h in &hits {
        match by_name.iter_mut().find(|n| *n.name == *h.qname) {
            Some(n) => n.count += 1,
            None => by_name.push(NameCount {
                name: h.qname.to_string(),
                count: 1,
            }),
        }
    }
    by_name.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    let last = hits.back().map(|h| &h.event)?;
    let mut d = Draft::from_event(last);
    d.first_us = hits.front().map(|h| h.ts_us);
    d.count = hits.len() as u64;
    d.names = by_name;
    d.message = format!(
        "client {} queried {} blocked name(s){} within {}: {}",
        d.who(),
        d.count,
        r.category
            .map(|c| format!(" of category {}", c.as_str()))
            .unwrap_or_default(),
        humantime::format_duration(r.window()),
        d.names
            .iter()
            .take(5)
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Some(d)
}

/// watch: a query for a watched name or below it, blocked or not.
fn watch(names: &HashSet<String, ahash::RandomState>, e: &LoggedEvent) -> Option<Draft> {
    let q = &*e.ev.qname;
    let hit = suffixes(q).find(|s| names.contains(*s))?;
    let mut d = Draft::from_event(e);
    d.message = format!(
        "client {} looked up {q} (watched: {hit}), {}",
        d.who(),
        match e.ev.action {
            EventAction::Blocked =>
                format!("blocked by list {}", e.ev.list.as_deref().unwrap_or("?")),
            a => format!("answer {}", a.as_str()),
        }
    );
    Some(d)
}

/// new_domain: a registrable domain the set has not seen within `nod_days`.
fn new_domain(
    set: &mut NodSet,
    ignore: &[String],
    r: &AlertRule,
    e: &LoggedEvent,
) -> Option<Draft> {
    let q = &*e.ev.qname;
    if suffixes(q).any(|s| ignore.iter().any(|i| i == s)) {
        return None;
    }
    let domain = registrable(q);
    if !set.check_and_insert(domain, (e.ev.ts_us.max(0) / 1_000_000) as u64) {
        return None;
    }
    let mut d = Draft::from_event(e);
    d.names = vec![NameCount {
        name: domain.to_string(),
        count: 1,
    }];
    d.message = format!(
            "newly observed domain {domain} (query {q} by {}): not seen by this resolver within {} days",
            d.who(),
            r.nod_days.unwrap_or(DEFAULT_NOD_DAYS)
        );
    Some(d)
}

/// dnssec_bogus: SERVFAIL answers with a DNSSEC EDE, per zone within the window.
fn bogus(
    zones: &mut HashMap<String, VecDeque<i64>>,
    r: &AlertRule,
    e: &LoggedEvent,
) -> Option<Draft> {
    if e.ev.action != EventAction::Servfail {
        return None;
    }
    let (code, why) = bogus_ede(e.ev.response_wire.as_deref()?)?;
    let zone = registrable(&e.ev.qname).to_string();
    let window_us = r.window().as_micros() as i64;
    if !zones.contains_key(&zone) && zones.len() >= MAX_CLIENTS {
        zones.clear();
    }
    let times = zones.entry(zone.clone()).or_default();
    times.push_back(e.ev.ts_us);
    while times.front().is_some_and(|t| *t < e.ev.ts_us - window_us) || times.len() > MAX_HITS {
        times.pop_front();
    }
    if (times.len() as u64) < u64::from(r.count.unwrap_or(1).max(1)) {
        return None;
    }
    let n = times.len() as u64;
    let first = times.front().copied();
    zones.remove(&zone);
    let mut d = Draft::from_event(e);
    d.count = n;
    d.first_us = first;
    d.dedup_key = Some(zone.clone());
    d.message = format!(
            "DNSSEC validation fails for {zone}: {n} bogus answer(s) within {} (EDE {code}: {why}); last query {} by {}",
            humantime::format_duration(r.window()),
            e.ev.qname,
            d.who()
        );
    Some(d)
}
