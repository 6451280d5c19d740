//! Per-client policy groups and named clients.
//!
//! A group is a set of lists. Rules stay in the one name table (and the one IP table) of the
//! snapshot; every entry already names its list (`NameEntry::list`, a `u16`), so "the set of
//! lists a rule belongs to" is that one list and a group is a bitmask over list indices: the
//! match walks the labels once, as before, and skips entries whose list bit is clear in the
//! group's mask. No byte is added per rule; a group costs one bit per list.
//!
//! Which group a client is in: a longest-prefix match over the `[[clients]]` and
//! `[[groups]] clients` CIDRs in the existing CIDR matcher ([`IpTable`]), done once per query
//! at admission (and cached per UDP worker, see [`ClientCache`]). Clients in no group get the
//! `default` group: every list, unless a group named `default` is configured.
//!
//! The client lookup takes an address today. Encrypted transports (a DoH path
//! `/dns-query/{client-id}`, a DoT SNI label) will give an identifier instead; they plug in
//! as another key of [`Groups::lookup_id`] resolving to the same [`ClientMatch`].
//!
//! Groups live in the [`Snapshot`](super::Snapshot) with the lists whose indices their masks
//! name, so one query sees one snapshot, groups included.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;

use super::ips::{IpEntry, IpTable};
use super::names::Act;
use super::{Action, ListSpec};

/// The name of the list the admin API adds entries to.
pub const RUNTIME_LIST: &str = "runtime";

/// The admin API's runtime allow list (`POST /api/lists/allow`): names answered normally
/// whatever a list says, for every group.
pub const RUNTIME_ALLOW_LIST: &str = "runtime-allow";

/// The group of clients no CIDR claims.
pub const DEFAULT_GROUP: &str = "default";

/// Runtime entries scoped to group `g` go to the list `runtime@g`.
pub const RUNTIME_SCOPE_SEP: char = '@';

/// What a group's queries leave in the query log.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogMode {
    /// Every query (subject to `[querylog] log_allowed`).
    #[default]
    All,
    /// Blocked queries only (tiers that must not be logged beyond blocks, by contract).
    Blocked,
    /// Nothing (metrics still count the queries).
    None,
}

impl LogMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LogMode::All => "all",
            LogMode::Blocked => "blocked",
            LogMode::None => "none",
        }
    }
}

/// A group as configured: list names (None = every list), optional action, log mode.
#[derive(Clone, Debug)]
pub struct GroupSpec {
    pub name: String,
    pub lists: Option<Vec<String>>,
    pub action: Option<Action>,
    pub log: LogMode,
}

/// One client CIDR: a name (from `[[clients]]`) and/or a group.
#[derive(Clone, Debug)]
pub struct ClientSpec {
    pub net: IpNet,
    pub name: Option<String>,
    pub group: Option<String>,
}

/// Everything the snapshot needs to build its groups. The default (no group, no client) is
/// today's behaviour: every client sees every list.
#[derive(Clone, Debug, Default)]
pub struct GroupsSpec {
    pub groups: Vec<GroupSpec>,
    pub clients: Vec<ClientSpec>,
}

impl GroupsSpec {
    /// Names of the scoped runtime lists (`runtime@GROUP`) for every configured group.
    pub fn runtime_scopes(&self) -> impl Iterator<Item = &str> {
        self.groups.iter().map(|g| g.name.as_str())
    }
}

/// The scope of a runtime list name: `Some(None)` for `runtime`, `Some(Some(g))` for
/// `runtime@g`, `None` for any other list.
pub fn runtime_scope(list: &str) -> Option<Option<&str>> {
    let base = RUNTIME_LIST;
    let rest = list.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(None);
    }
    rest.strip_prefix(RUNTIME_SCOPE_SEP).map(Some)
}

/// The list name of runtime entries for `group` (None = every group).
pub fn runtime_list_name(group: Option<&str>) -> String {
    match group {
        None => RUNTIME_LIST.to_string(),
        Some(g) => format!("{}{RUNTIME_SCOPE_SEP}{g}", RUNTIME_LIST),
    }
}

/// A built group: the lists it sees as a bitmask over the snapshot's list indices.
#[derive(Debug)]
pub struct Group {
    pub name: Arc<str>,
    mask: Box<[u64]>,
    pub action: Option<Action>,
    pub log: LogMode,
}

impl Group {
    /// Whether rules of list `list` apply to this group.
    #[inline]
    pub fn has(&self, list: u16) -> bool {
        let l = list as usize;
        self.mask
            .get(l >> 6)
            .is_some_and(|w| w >> (l & 63) & 1 == 1)
    }
}

/// Who a query comes from, as indices into the snapshot's groups and client names: `Copy`,
/// so caching it per worker and carrying it to the query log costs no reference count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientMatch {
    /// Index of the most specific named `[[clients]]` entry.
    pub client: Option<u32>,
    /// Index into the groups; 0 is the default group.
    pub group: u16,
}

/// One CIDR rule of the client table.
#[derive(Debug)]
struct ClientRule {
    name: Option<Arc<str>>,
    group: Option<u16>,
}

/// The built groups and client table of one snapshot.
pub struct Groups {
    /// `[0]` is the default group.
    groups: Vec<Group>,
    rules: Vec<ClientRule>,
    /// `list` 0: a named client rule, 1: a group-only rule; `line`: index into `rules`.
    table: IpTable,
}

/// `IpEntry::list` values in the client table: a named rule and a plain group claim may list
/// the same CIDR (the name from one, the group from the other) and must not be merged.
const NAMED: u16 = 0;
const GROUP_ONLY: u16 = 1;

impl Groups {
    /// Builds masks against `specs` (the snapshot's lists, in index order). A list name a
    /// group names but `specs` lacks is ignored here; `dnsward check` reports it.
    pub fn build(spec: &GroupsSpec, specs: &[ListSpec]) -> Groups {
        let words = specs.len().div_ceil(64).max(1);
        let index: HashMap<&str, usize> = specs
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.as_str(), i))
            .collect();
        let scoped = |i: usize| runtime_scope(&specs[i].name).is_some_and(|s| s.is_some());
        let mask_of = |name: &str, lists: Option<&[String]>| {
            let mut m = vec![0u64; words].into_boxed_slice();
            let mut set = |i: usize| m[i >> 6] |= 1 << (i & 63);
            match lists {
                None => (0..specs.len()).filter(|&i| !scoped(i)).for_each(&mut set),
                Some(names) => names
                    .iter()
                    .filter_map(|n| index.get(n.as_str()))
                    .for_each(|&i| set(i)),
            }
            // Runtime entries for every group, those scoped to this one, and the allow list.
            for n in [
                runtime_list_name(None),
                runtime_list_name(Some(name)),
                RUNTIME_ALLOW_LIST.to_string(),
            ] {
                if let Some(&i) = index.get(n.as_str()) {
                    set(i);
                }
            }
            m
        };
        let configured_default = spec.groups.iter().find(|g| g.name == DEFAULT_GROUP);
        let default = match configured_default {
            Some(g) => Group {
                name: Arc::from(DEFAULT_GROUP),
                mask: mask_of(DEFAULT_GROUP, g.lists.as_deref()),
                action: g.action,
                log: g.log,
            },
            None => Group {
                name: Arc::from(DEFAULT_GROUP),
                mask: mask_of(DEFAULT_GROUP, None),
                action: None,
                log: LogMode::All,
            },
        };
        let mut groups = vec![default];
        for g in spec.groups.iter().filter(|g| g.name != DEFAULT_GROUP) {
            groups.push(Group {
                name: Arc::from(g.name.as_str()),
                mask: mask_of(&g.name, g.lists.as_deref()),
                action: g.action,
                log: g.log,
            });
        }
        let group_index = |name: &str| {
            groups
                .iter()
                .position(|g| &*g.name == name)
                .map(|i| i as u16)
        };
        let mut rules = Vec::with_capacity(spec.clients.len());
        let mut entries = Vec::with_capacity(spec.clients.len());
        for c in &spec.clients {
            let line = rules.len() as u32;
            let list = if c.name.is_some() { NAMED } else { GROUP_ONLY };
            rules.push(ClientRule {
                name: c.name.as_deref().map(Arc::from),
                group: c.group.as_deref().and_then(group_index),
            });
            entries.push(IpEntry {
                net: c.net,
                line,
                list,
                act: Act::Block,
            });
        }
        Groups {
            groups,
            rules,
            table: IpTable::build(entries),
        }
    }

    /// No group and no named client: every query gets the default match without a lookup.
    pub fn is_trivial(&self) -> bool {
        self.rules.is_empty()
    }

    /// Longest prefix: the most specific named rule gives the name, the most specific rule
    /// with a group gives the group.
    pub fn lookup(&self, ip: IpAddr) -> ClientMatch {
        let mut m = ClientMatch::default();
        if self.is_trivial() {
            return m;
        }
        let mut group = None;
        self.table.walk(ip, |e| {
            let r = &self.rules[e.line as usize];
            if m.client.is_none() && r.name.is_some() {
                m.client = Some(e.line);
            }
            if group.is_none() {
                group = r.group;
            }
            m.client.is_none() || group.is_none()
        });
        m.group = group.unwrap_or(0);
        m
    }

    /// A client identified by something other than its address (a DoH path or DoT SNI label,
    /// once those transports exist): the named client of that name, and its group.
    pub fn lookup_id(&self, id: &str) -> Option<ClientMatch> {
        let i = self
            .rules
            .iter()
            .position(|r| r.name.as_deref() == Some(id))?;
        Some(ClientMatch {
            client: Some(i as u32),
            group: self.rules[i].group.unwrap_or(0),
        })
    }

    #[inline]
    pub fn group(&self, m: ClientMatch) -> &Group {
        self.groups.get(m.group as usize).unwrap_or(&self.groups[0])
    }

    pub fn default_group(&self) -> &Group {
        &self.groups[0]
    }

    pub fn by_name(&self, name: &str) -> Option<ClientMatch> {
        self.groups
            .iter()
            .position(|g| &*g.name == name)
            .map(|i| ClientMatch {
                client: None,
                group: i as u16,
            })
    }

    pub fn client_name(&self, m: ClientMatch) -> Option<&Arc<str>> {
        m.client
            .and_then(|i| self.rules.get(i as usize))
            .and_then(|r| r.name.as_ref())
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }
}

/// A UDP worker's memory of recent clients: repeat clients skip the prefix lookup. Valid for
/// one snapshot (its id); bounded, cleared when full (a flood of distinct sources costs one
/// lookup each, as without the cache).
#[derive(Default)]
pub struct ClientCache {
    snapshot: u64,
    map: HashMap<IpAddr, ClientMatch, ahash::RandomState>,
}

const CLIENT_CACHE_MAX: usize = 4096;

impl ClientCache {
    #[inline]
    pub fn lookup(&mut self, snap: &super::Snapshot, ip: IpAddr) -> ClientMatch {
        let groups = snap.groups();
        if groups.is_trivial() {
            return ClientMatch::default();
        }
        if self.snapshot != snap.id() {
            self.map.clear();
            self.snapshot = snap.id();
        }
        if let Some(m) = self.map.get(&ip) {
            return *m;
        }
        if self.map.len() >= CLIENT_CACHE_MAX {
            self.map.clear();
        }
        let m = groups.lookup(ip);
        self.map.insert(ip, m);
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Category, ListFormat};

    fn list(name: &str) -> ListSpec {
        ListSpec {
            name: name.into(),
            category: Category::Threat,
            path: "/nonexistent".into(),
            format: ListFormat::Auto,
            action: None,
        }
    }

    fn spec() -> GroupsSpec {
        GroupsSpec {
            groups: vec![
                GroupSpec {
                    name: "finance".into(),
                    lists: Some(vec!["threat".into(), "abandoned".into()]),
                    action: Some(Action::Sinkhole),
                    log: LogMode::Blocked,
                },
                GroupSpec {
                    name: "security".into(),
                    lists: Some(vec![]),
                    action: None,
                    log: LogMode::All,
                },
            ],
            clients: vec![
                ClientSpec {
                    net: "10.2.0.0/16".parse().unwrap(),
                    name: Some("Finance dept".into()),
                    group: Some("finance".into()),
                },
                ClientSpec {
                    net: "10.2.3.17/32".parse().unwrap(),
                    name: Some("Finance dept, PC-17".into()),
                    group: None,
                },
                ClientSpec {
                    net: "10.2.9.0/24".parse().unwrap(),
                    name: None,
                    group: Some("security".into()),
                },
            ],
        }
    }

    #[test]
    fn masks_and_longest_prefix() {
        let specs = [
            list("threat"),
            list("abandoned"),
            list("ads"),
            list("runtime"),
            list("runtime@finance"),
        ];
        let g = Groups::build(&spec(), &specs);
        let d = g.default_group();
        assert!(
            (0..4).all(|i| d.has(i)) && !d.has(4),
            "default: every list but scoped runtime entries"
        );
        let f = g.lookup("10.2.0.1".parse().unwrap());
        let fg = g.group(f);
        assert_eq!(&*fg.name, "finance");
        assert!(fg.has(0) && fg.has(1) && !fg.has(2) && fg.has(3) && fg.has(4));
        assert_eq!(g.client_name(f).map(|s| &**s), Some("Finance dept"));
        // the /32 names the PC; the group comes from the /16
        let pc = g.lookup("10.2.3.17".parse().unwrap());
        assert_eq!(g.client_name(pc).map(|s| &**s), Some("Finance dept, PC-17"));
        assert_eq!(&*g.group(pc).name, "finance");
        // a more specific group claim wins; the name still comes from the /16
        let sec = g.lookup("10.2.9.9".parse().unwrap());
        assert_eq!(&*g.group(sec).name, "security");
        assert_eq!(g.client_name(sec).map(|s| &**s), Some("Finance dept"));
        assert!(!g.group(sec).has(0) && g.group(sec).has(3) && !g.group(sec).has(4));
        // nobody's
        assert_eq!(
            g.lookup("192.0.2.1".parse().unwrap()),
            ClientMatch::default()
        );
        assert_eq!(
            g.lookup_id("Finance dept, PC-17"),
            Some(ClientMatch {
                client: Some(1),
                group: 0
            })
        );
        assert!(Groups::build(&GroupsSpec::default(), &specs).is_trivial());
    }

    #[test]
    fn worker_cache_follows_the_snapshot() {
        let specs = [list("threat"), list("abandoned")];
        let (s1, _) = crate::policy::Snapshot::build_grouped(&specs, &spec(), None);
        let mut cache = ClientCache::default();
        let ip: IpAddr = "10.2.9.1".parse().unwrap();
        let first = cache.lookup(&s1, ip);
        assert_eq!(&*s1.groups().group(first).name, "security");
        assert_eq!(cache.lookup(&s1, ip), first);
        // a new snapshot whose groups differ: the cached answer is not reused
        let mut other = spec();
        other
            .clients
            .retain(|c| c.group.as_deref() != Some("security"));
        let (s2, _) = crate::policy::Snapshot::build_grouped(&specs, &other, None);
        assert_eq!(&*s2.groups().group(cache.lookup(&s2, ip)).name, "finance");
        // no groups, no lookup: the default
        let (flat, _) = crate::policy::Snapshot::build(&specs, None);
        assert_eq!(cache.lookup(&flat, ip), ClientMatch::default());
    }

    #[test]
    fn runtime_scopes() {
        assert_eq!(runtime_scope("runtime"), Some(None));
        assert_eq!(runtime_scope("runtime@finance"), Some(Some("finance")));
        assert_eq!(runtime_scope("runtimes"), None);
        assert_eq!(runtime_list_name(Some("x")), "runtime@x");
    }
}
