//! Building and querying a [`Snapshot`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;

use super::groups::{ClientMatch, Group, Groups, GroupsSpec};
use super::ips::{IpEntry, IpTable};
use super::names::{walk, Act, Kind, NameEntry, NameTable, QName};
use super::parse::{parse_list, ListError, ParsedList};
use super::{
    Action, Category, ListFormat, ListReport, ListSpec, LoadReport, LocalRecord, RuleRef, Verdict,
};

struct ListMeta {
    name: Arc<str>,
    path: Arc<Path>,
    category: Category,
    action: Option<Action>,
    rpz: bool,
    /// RPZ local data by line of the trigger's first record.
    local: Arc<HashMap<u32, Arc<[LocalRecord]>>>,
}

/// An immutable, fully built policy: every list's name and IP rules in two flat
/// tables. `Send + Sync`; share it as `Arc<Snapshot>` and swap atomically.
pub struct Snapshot {
    lists: Vec<ListMeta>,
    names: NameTable,
    ips: IpTable,
    /// Per-client groups: masks over `lists`, and the client table.
    groups: Groups,
    /// Distinct per snapshot built in this process (per-worker caches key on it).
    id: u64,
}

fn next_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The rules of a snapshot being built, list after list.
struct Entries {
    names: Vec<NameEntry>,
    /// What `names` must hold for `NameTable::build` not to reallocate.
    names_capacity: usize,
    ips: Vec<IpEntry>,
    label_mask: u64,
}

impl Entries {
    /// A list parsed now: its rules join the snapshot, its counts the report.
    fn take_parsed(
        &mut self,
        mut p: ParsedList,
        spec: &ListSpec,
        meta: &mut ListMeta,
        rep: &mut ListReport,
    ) {
        meta.rpz = p.format == ListFormat::Rpz;
        meta.local = Arc::new(std::mem::take(&mut p.local));
        self.label_mask |= p.label_mask;
        if self.names.is_empty() && p.names.capacity() >= self.names_capacity {
            // The parse reserved enough (usually, with one big list): no copy at all.
            std::mem::swap(&mut self.names, &mut p.names);
        } else {
            self.reserve_names();
            self.names.append(&mut p.names);
        }
        self.ips.append(&mut p.ips);
        rep.entries = p.entries;
        rep.bad_lines = p.bad_lines;
        rep.first_bad = p.first_bad;
        rep.warnings = p.warnings;
        rep.format = p.format;
        tracing::info!(list = %spec.name, file = %spec.path.display(), entries = p.entries, bad_lines = p.bad_lines, "list loaded");
    }

    /// Room for every name of the snapshot at once, so that appending never doubles.
    fn reserve_names(&mut self) {
        if self.names.capacity() < self.names_capacity {
            self.names
                .reserve_exact(self.names_capacity - self.names.len());
        }
    }

    /// A list that failed as a whole: the report says why, and the previous snapshot's
    /// copy of the list (same name and path), if any, is kept as list `new`.
    fn keep_previous(
        &mut self,
        e: ListError,
        new: u16,
        spec: &ListSpec,
        previous: Option<&Snapshot>,
        meta: &mut ListMeta,
        rep: &mut ListReport,
    ) {
        let why = e.to_string();
        if let ListError::NothingValid { bad_lines, .. } = &e {
            rep.bad_lines = *bad_lines;
        }
        rep.error = Some(why.clone());
        let prev = previous.and_then(|p| {
            p.lists
                .iter()
                .position(|m| *m.name == *spec.name && *m.path == *spec.path)
                .map(|id| (p, id as u16))
        });
        let Some((p, old)) = prev else {
            tracing::warn!(list = %spec.name, error = %why, "list failed and there is no previous copy");
            return;
        };
        let force_allow = spec.category == Category::Allow;
        let fix = |act: Act| if force_allow { Act::Allow } else { act };
        let before = self.names.len() + self.ips.len();
        self.reserve_names();
        self.names
            .extend(p.names.iter().filter(|e| e.list == old).map(|e| NameEntry {
                list: new,
                act: fix(e.act),
                ..*e
            }));
        self.ips
            .extend(p.ips.all().filter(|e| e.list == old).map(|e| IpEntry {
                list: new,
                act: fix(e.act),
                ..e
            }));
        rep.entries = self.names.len() + self.ips.len() - before;
        let om = &p.lists[old as usize];
        self.label_mask |= p.names.label_mask();
        meta.rpz = om.rpz;
        meta.local = om.local.clone();
        rep.kept_previous = Some(why.clone());
        tracing::warn!(list = %spec.name, error = %why, kept = rep.entries, "list failed; keeping the previous copy");
    }
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot {
            lists: Vec::new(),
            names: NameTable::empty(),
            ips: IpTable::empty(),
            groups: Groups::build(&GroupsSpec::default(), &[]),
            id: next_id(),
        }
    }

    /// Builds without groups: every client sees every list.
    pub fn build(specs: &[ListSpec], previous: Option<&Snapshot>) -> (Snapshot, LoadReport) {
        Self::build_grouped(specs, &GroupsSpec::default(), previous)
    }

    /// Builds from all lists, parsing the files in parallel (rayon's global
    /// pool; wrap the call in `ThreadPool::install` to bound it).
    ///
    /// A list that fails as a whole (missing, unreadable, not text, or lines but
    /// no valid rule) keeps the previous snapshot's copy of that list, matched
    /// by list name + path, and the report says why. An empty file is a valid
    /// empty list.
    pub fn build_grouped(
        specs: &[ListSpec],
        groups: &GroupsSpec,
        previous: Option<&Snapshot>,
    ) -> (Snapshot, LoadReport) {
        let t0 = Instant::now();
        let usable = specs.len().min(u16::MAX as usize + 1);
        let mut results: Vec<Result<ParsedList, ListError>> = specs[..usable]
            .par_iter()
            .enumerate()
            .map(|(i, s)| parse_list(s, i as u16))
            .collect();

        let total: usize = results
            .iter()
            .map(|r| r.as_ref().map(|p| p.name_entries()).unwrap_or(0))
            .sum();
        let mut acc = Entries {
            names: Vec::new(),
            names_capacity: NameTable::capacity_for(total),
            ips: Vec::new(),
            label_mask: 0,
        };
        let mut lists = Vec::with_capacity(specs.len());
        let mut reports = Vec::with_capacity(specs.len());

        for (i, spec) in specs.iter().enumerate() {
            let mut meta = ListMeta {
                name: Arc::from(spec.name.as_str()),
                path: Arc::from(spec.path.as_path()),
                category: spec.category,
                action: spec.action,
                rpz: false,
                local: Arc::new(HashMap::new()),
            };
            let mut rep = ListReport {
                name: spec.name.clone(),
                path: spec.path.clone(),
                format: spec.format,
                ..Default::default()
            };
            if i < usable {
                match std::mem::replace(&mut results[i], Ok(ParsedList::default())) {
                    Ok(p) => acc.take_parsed(p, spec, &mut meta, &mut rep),
                    Err(e) => acc.keep_previous(e, i as u16, spec, previous, &mut meta, &mut rep),
                }
            } else {
                rep.error = Some("more than 65536 lists configured: list ignored".into());
            }
            lists.push(meta);
            reports.push(rep);
        }
        drop(results);
        let groups = Groups::build(groups, specs);
        let snap = Snapshot {
            lists,
            names: NameTable::build(acc.names, acc.label_mask),
            ips: IpTable::build(acc.ips),
            groups,
            id: next_id(),
        };
        let report = LoadReport {
            lists: reports,
            elapsed: t0.elapsed(),
        };
        (snap, report)
    }

    /// qname: any case, with or without trailing dot. Walks every label suffix,
    /// however deep. Allow beats block anywhere in the walk; among blocks the
    /// most specific (longest) match wins. Every list applies (the default group).
    pub fn match_name(&self, qname: &str) -> Option<Verdict> {
        self.match_name_for(qname, ClientMatch::default())
    }

    /// As `match_name`, with only the lists of `who`'s group; a block without an action of
    /// its own or its list's takes the group's `action`.
    pub fn match_name_for(&self, qname: &str, who: ClientMatch) -> Option<Verdict> {
        let group = self.groups.group(who);
        let q = QName::new(qname);
        let name = q.bytes();
        let mut best: Option<(usize, NameEntry)> = None;
        let mut allow: Option<(usize, NameEntry)> = None;
        walk(&self.names, name, |start, e| {
            if !group.has(e.list) {
                return true;
            }
            if e.act == Act::Allow {
                allow = Some((start, *e));
                return false;
            }
            if best.is_none() {
                best = Some((start, *e));
            }
            true
        });
        let (start, e) = allow.or(best)?;
        Some(with_group_action(self.name_verdict(name, start, &e), group))
    }

    /// True when `match_name` would return a non-allow verdict; no allocation.
    pub fn is_blocked(&self, qname: &str) -> bool {
        self.is_blocked_for(qname, ClientMatch::default())
    }

    pub fn is_blocked_for(&self, qname: &str, who: ClientMatch) -> bool {
        let group = self.groups.group(who);
        let q = QName::new(qname);
        let mut blocked = false;
        let mut allowed = false;
        walk(&self.names, q.bytes(), |_, e| {
            if !group.has(e.list) {
                return true;
            }
            if e.act == Act::Allow {
                allowed = true;
                return false;
            }
            blocked = true;
            true
        });
        blocked && !allowed
    }

    /// Longest prefix; allow beats block anywhere.
    pub fn match_ip(&self, ip: IpAddr) -> Option<Verdict> {
        self.match_ip_for(ip, ClientMatch::default())
    }

    pub fn match_ip_for(&self, ip: IpAddr, who: ClientMatch) -> Option<Verdict> {
        let group = self.groups.group(who);
        let mut best: Option<IpEntry> = None;
        let mut allow: Option<IpEntry> = None;
        self.ips.walk(ip, |e| {
            if !group.has(e.list) {
                return true;
            }
            if e.act == Act::Allow {
                allow = Some(e);
                return false;
            }
            if best.is_none() {
                best = Some(e);
            }
            true
        });
        let e = allow.or(best)?;
        Some(with_group_action(
            self.verdict(e.list, e.act, e.line, e.net.to_string()),
            group,
        ))
    }

    /// Every rule that matches (for `dnsward explain`), allow rules included,
    /// most specific first (then list order, then line).
    pub fn explain_name(&self, qname: &str) -> Vec<Verdict> {
        self.explain_name_for(qname, ClientMatch::default())
    }

    /// Every rule of `who`'s group that matches.
    pub fn explain_name_for(&self, qname: &str, who: ClientMatch) -> Vec<Verdict> {
        let group = self.groups.group(who);
        let q = QName::new(qname);
        let name = q.bytes();
        let mut hits = Vec::new();
        walk(&self.names, name, |start, e| {
            if group.has(e.list) {
                hits.push((start, *e));
            }
            true
        });
        hits.iter()
            .map(|(s, e)| with_group_action(self.name_verdict(name, *s, e), group))
            .collect()
    }

    pub fn explain_ip(&self, ip: IpAddr) -> Vec<Verdict> {
        self.explain_ip_for(ip, ClientMatch::default())
    }

    pub fn explain_ip_for(&self, ip: IpAddr, who: ClientMatch) -> Vec<Verdict> {
        let group = self.groups.group(who);
        let mut hits = Vec::new();
        self.ips.walk(ip, |e| {
            if group.has(e.list) {
                hits.push(e);
            }
            true
        });
        hits.into_iter()
            .map(|e| {
                with_group_action(
                    self.verdict(e.list, e.act, e.line, e.net.to_string()),
                    group,
                )
            })
            .collect()
    }

    /// The groups and client table of this snapshot.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Distinct for every snapshot built in this process.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Distinct name rules (after de-duplication).
    pub fn name_entries(&self) -> usize {
        self.names.len()
    }

    pub fn ip_entries(&self) -> usize {
        self.ips.len()
    }

    /// Bytes held by the name table (entries + directory).
    pub fn name_table_bytes(&self) -> usize {
        self.names.heap_bytes()
    }

    fn name_verdict(&self, name: &[u8], start: usize, e: &NameEntry) -> Verdict {
        // The walked name is normalized ASCII; one exact-size allocation, no formatting.
        let suffix = std::str::from_utf8(&name[start..]).unwrap_or("");
        let wildcard = e.kind == Kind::Wildcard;
        let mut trigger = String::with_capacity(suffix.len() + 2 * wildcard as usize);
        if wildcard {
            trigger.push_str("*.");
        }
        trigger.push_str(suffix);
        self.verdict(e.list, e.act, e.line, trigger)
    }

    fn verdict(&self, list: u16, act: Act, line: u32, trigger_name: String) -> Verdict {
        let m = &self.lists[list as usize];
        let rule = RuleRef {
            list: m.name.clone(),
            category: m.category,
            file: m.path.clone(),
            line,
            trigger_name,
        };
        let own = |a: Action| if m.rpz { Some(a) } else { m.action.or(Some(a)) };
        match act {
            Act::Allow => Verdict::Allow(rule),
            Act::Block => Verdict::Block {
                rule,
                action: m.action,
            },
            Act::Nxdomain => Verdict::Block {
                rule,
                action: own(Action::Nxdomain),
            },
            Act::Nodata => Verdict::Block {
                rule,
                action: own(Action::Nodata),
            },
            Act::Refused => Verdict::Block {
                rule,
                action: own(Action::Refused),
            },
            Act::Drop => match (m.rpz, m.action) {
                (false, Some(a)) => Verdict::Block {
                    rule,
                    action: Some(a),
                },
                _ => Verdict::Drop(rule),
            },
            Act::Local => match m.local.get(&line) {
                Some(r) => Verdict::LocalData {
                    rule,
                    records: r.clone(),
                },
                // Cannot happen (the parser adds both together); block rather than pass.
                None => Verdict::Block {
                    rule,
                    action: Some(Action::Nxdomain),
                },
            },
        }
    }
}

/// A block that would use the `[policy] action` uses the group's action instead.
fn with_group_action(v: Verdict, group: &Group) -> Verdict {
    match (v, group.action) {
        (Verdict::Block { rule, action: None }, Some(a)) => Verdict::Block {
            rule,
            action: Some(a),
        },
        (v, _) => v,
    }
}

#[cfg(test)]
#[path = "snapshot_tests.rs"]
mod tests;
