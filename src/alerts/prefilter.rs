//! Which allowed queries the alerts need to see, decided on the answer path before an event
//! is built. Only `watch` and `new_domain` rules read allowed queries; without this filter
//! every allowed query became an event for the alerts' queue (measured: the maximum q/s on
//! cache hits fell about 7 % with 10 rules on a quiet machine). A watched name always
//! passes; for `new_domain`, a registrable domain passes once per hour per slot of a small
//! lock-free table, so the evaluator still sees every domain (and refreshes its
//! newly-observed set) while repeats cost one hash and one atomic load.

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use super::config::{AlertKind, AlertRule};
use super::nod::registrable;
use super::rules::{norm, suffixes};

/// Slots of each recently-seen table: 64 Ki × 8 bytes = 512 KiB. A collision only lets a
/// repeat through (one more event), never holds a new domain back.
const SLOTS: usize = 1 << 16;
/// A domain passes again after this long, so the evaluator's set never ages it out while
/// clients keep asking.
const EPOCH_SECS: u64 = 3600;

/// The filter the answer path asks (see [`crate::querylog::Consumer`]).
pub struct AllowedFilter {
    watched: HashSet<String, ahash::RandomState>,
    new_domain: bool,
    hasher: ahash::RandomState,
    /// Registrable domains passed this epoch (for `new_domain`).
    recent: Box<[AtomicU64]>,
    /// Whole names judged "not wanted" this epoch: a repeat costs one hash of the name and
    /// one load, not the suffix walk and the registrable-domain cut (most queries repeat).
    quiet: Box<[AtomicU64]>,
}

impl AllowedFilter {
    /// The filter for `rules`; None when no rule reads allowed queries, or when one must see
    /// every allowed query: a `new_domain` rule for one client or group, or one that an event
    /// window switches on (`windowed` names those), would miss a domain first asked outside
    /// its scope or its window.
    pub fn new(rules: &[AlertRule], base_dir: &Path, windowed: &[&str]) -> Option<AllowedFilter> {
        let mut watched = HashSet::default();
        let mut new_domain = false;
        for r in rules {
            match r.kind {
                AlertKind::Watch => watched.extend(watch_names(r, base_dir)),
                AlertKind::NewDomain
                    if r.client.is_some()
                        || r.group.is_some()
                        || windowed.contains(&r.name.as_str()) =>
                {
                    return None
                }
                AlertKind::NewDomain => new_domain = true,
                _ => {}
            }
        }
        (new_domain || !watched.is_empty()).then(|| AllowedFilter {
            watched,
            new_domain,
            hasher: ahash::RandomState::new(),
            recent: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
            quiet: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        })
    }

    /// Whether an allowed query for `qname` (lower case, no trailing dot) at `unix_secs`
    /// should reach the alerts.
    pub fn wants(&self, qname: &str, unix_secs: u64) -> bool {
        let epoch = unix_secs / EPOCH_SECS;
        let name_key = self.hasher.hash_one((qname, epoch)) | 1; // 0: an empty slot
        let quiet = &self.quiet[(name_key as usize) & (SLOTS - 1)];
        if quiet.load(Ordering::Relaxed) == name_key {
            return false;
        }
        if !self.watched.is_empty() && suffixes(qname).any(|s| self.watched.contains(s)) {
            return true;
        }
        if self.new_domain {
            let key = self.hasher.hash_one((registrable(qname), epoch)) | 1;
            let slot = &self.recent[(key as usize) & (SLOTS - 1)];
            if slot.load(Ordering::Relaxed) != key {
                slot.store(key, Ordering::Relaxed);
                return true;
            }
        }
        // Not watched, and its domain already went to the alerts this epoch.
        quiet.store(name_key, Ordering::Relaxed);
        false
    }
}

/// The names a `watch` rule watches: `names` and the lines of `names_file` (hosts-style
/// lines give their last field), normalised.
pub(super) fn watch_names(r: &AlertRule, base_dir: &Path) -> HashSet<String, ahash::RandomState> {
    let mut names: HashSet<String, ahash::RandomState> = r.names.iter().map(|n| norm(n)).collect();
    if let Some(p) = &r.names_file {
        let p = if p.is_absolute() {
            p.clone()
        } else {
            base_dir.join(p)
        };
        match std::fs::read_to_string(&p) {
            Ok(text) => names.extend(
                text.lines()
                    .map(|l| l.split('#').next().unwrap_or("").trim())
                    .filter(|l| !l.is_empty())
                    .map(|l| norm(l.split_whitespace().last().unwrap_or(l))),
            ),
            Err(e) => {
                tracing::error!(rule = %r.name, file = %p.display(), error = %e, "alerts: names_file unreadable")
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(kind: &str, extra: &str) -> AlertRule {
        toml::from_str(&format!("name = \"r\"\nkind = \"{kind}\"\n{extra}")).unwrap()
    }

    #[test]
    fn repeats_of_a_domain_pass_once_per_epoch() {
        let f = AllowedFilter::new(&[rule("new_domain", "")], Path::new("."), &[]).unwrap();
        assert!(f.wants("www.example.com", 7200));
        assert!(!f.wants("www.example.com", 7300));
        assert!(
            !f.wants("mail.example.com", 7300),
            "same registrable domain"
        );
        assert!(f.wants("example.org", 7300));
        assert!(
            f.wants("www.example.com", 7200 + EPOCH_SECS),
            "the next hour passes again"
        );
    }

    #[test]
    fn watched_names_always_pass_and_others_do_not_without_new_domain() {
        let f = AllowedFilter::new(
            &[rule("watch", "names = [\"Phish.Example.\"]")],
            Path::new("."),
            &[],
        )
        .unwrap();
        for _ in 0..3 {
            assert!(f.wants("phish.example", 1));
            assert!(f.wants("login.phish.example", 1));
        }
        assert!(!f.wants("example", 1));
        assert!(!f.wants("other.test", 1));
    }

    #[test]
    fn no_filter_when_a_new_domain_rule_is_scoped_or_windowed() {
        let scoped = rule("new_domain", "group = \"staff\"");
        assert!(AllowedFilter::new(&[scoped], Path::new("."), &[]).is_none());
        let windowed = rule("new_domain", "");
        assert!(AllowedFilter::new(&[windowed], Path::new("."), &["r"]).is_none());
    }

    #[test]
    fn no_filter_without_rules_that_read_allowed_queries() {
        let r = rule("client_threshold", "count = 3\nwindow = \"1m\"");
        assert!(AllowedFilter::new(&[r], Path::new("."), &[]).is_none());
    }
}
