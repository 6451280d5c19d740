//! The compiled local policy as RPZ entries: every rule of the local lists, the feeds and the
//! admin API's runtime list, by name, with its category and action turned into an RPZ action.
//! Kept compact (owner name and action, ~40 bytes an entry); records are made while a
//! transfer is written.
//!
//! Not exported: RPZ-format lists and received `[[rpz]]` zones (re-serving another primary's
//! zone is that primary's job, and it would let two dnsward feed each other in a loop),
//! runtime entries scoped to one group (a fleet has no groups), RPZ local data.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record};
use ipnet::IpNet;

use crate::policy::names::{Act, Kind};
use crate::policy::parse::{collect_list_rules, CollectedRules};
use crate::policy::{Action, ListFormat, ListSpec};

/// What an RPZ entry does (RFC-draft RPZ actions).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RpzAction {
    /// `CNAME .`
    Nxdomain,
    /// `CNAME *.`
    Nodata,
    /// `CNAME rpz-passthru.`: allow lists (they always win, as in dnsward)
    Passthru,
    /// `CNAME rpz-drop.`
    Drop,
    /// `A` and `AAAA` of the sinkhole addresses (local data)
    Sinkhole,
}

/// The settings a list's `Block` rules take their action from.
#[derive(Clone, Copy, Debug)]
pub struct ExportSettings {
    pub default_action: Action,
    pub sinkhole_v4: Ipv4Addr,
    pub sinkhole_v6: Ipv6Addr,
}

/// Owner name relative to the zone (`evil.example`, `*.evil.example`, `32.1.2.0.192.rpz-ip`)
/// -> action.
pub type Entries = BTreeMap<Box<str>, RpzAction>;

/// Entries removed or added by a change.
pub type EntryList = Vec<(Box<str>, RpzAction)>;

/// Builds the entries, reusing a list's last good rules when its file fails now (as the
/// policy keeps its last good copy).
pub struct Exporter {
    settings: ExportSettings,
    /// Per list: the file's stamp when read, and its rules (the last good ones).
    last_good: HashMap<String, (Option<Stamp>, Arc<CollectedRules>)>,
}

/// Modification time, size, inode: a list whose stamp did not change is not parsed again
/// (a runtime entry added next to a 1M-name feed re-reads only the runtime list).
type Stamp = (std::time::SystemTime, u64, u64);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

impl Exporter {
    pub fn new(settings: ExportSettings) -> Exporter {
        Exporter {
            settings,
            last_good: HashMap::new(),
        }
    }

    pub fn compile(&mut self, specs: &[ListSpec]) -> Entries {
        // Every (owner, action) in config and line order, then sorted and merged: a sort and a
        // bulk build cost far less than millions of map inserts.
        let mut all: Vec<(Box<str>, RpzAction)> = Vec::new();
        for spec in specs {
            if spec.format == ListFormat::Rpz
                || matches!(
                    crate::policy::groups::runtime_scope(&spec.name),
                    Some(Some(_))
                )
            {
                continue;
            }
            let now = stamp(&spec.path);
            let unchanged = self
                .last_good
                .get(&spec.name)
                .filter(|(was, _)| now.is_some() && *was == now);
            let rules = match unchanged {
                Some((_, r)) => Arc::clone(r),
                None => match collect_list_rules(spec) {
                    Ok(r) => {
                        let r = Arc::new(r);
                        self.last_good
                            .insert(spec.name.clone(), (now, Arc::clone(&r)));
                        r
                    }
                    Err(e) => match self.last_good.get(&spec.name) {
                        Some((_, r)) => {
                            tracing::warn!(list = %spec.name, "rpz server: {e}; serving its last good rules");
                            Arc::clone(r)
                        }
                        None => continue,
                    },
                },
            };
            let list_action = spec.action.unwrap_or(self.settings.default_action);
            for (name, kind, act) in &rules.names {
                let Some(a) = rpz_action(*act, list_action) else {
                    continue;
                };
                match kind {
                    Kind::Subtree => {
                        all.push((name.clone(), a));
                        all.push((format!("*.{name}").into(), a));
                    }
                    Kind::Exact => all.push((name.clone(), a)),
                    Kind::Wildcard => all.push((format!("*.{name}").into(), a)),
                }
            }
            for (net, act) in &rules.ips {
                if let Some(a) = rpz_action(*act, list_action) {
                    all.push((rpz_ip_owner(net).into(), a));
                }
            }
        }
        merge(all)
    }

    pub fn settings(&self) -> ExportSettings {
        self.settings
    }
}

/// One action per owner: allow wins over everything; otherwise the first list (in config
/// order, then line order) decides. The stable sort keeps that order among equal owners.
fn merge(mut all: Vec<(Box<str>, RpzAction)>) -> Entries {
    all.sort_by(|x, y| x.0.cmp(&y.0));
    let mut merged: Vec<(Box<str>, RpzAction)> = Vec::with_capacity(all.len());
    for (owner, a) in all {
        match merged.last_mut() {
            Some((last, cur)) if *last == owner => {
                if a == RpzAction::Passthru {
                    *cur = a;
                }
            }
            _ => merged.push((owner, a)),
        }
    }
    merged.into_iter().collect()
}

/// RPZ has no REFUSED: a refused block is served as NXDOMAIN.
fn rpz_action(act: Act, list_action: Action) -> Option<RpzAction> {
    let from_action = |a: Action| match a {
        Action::Nxdomain | Action::Refused => RpzAction::Nxdomain,
        Action::Nodata => RpzAction::Nodata,
        Action::Sinkhole => RpzAction::Sinkhole,
    };
    Some(match act {
        Act::Allow => RpzAction::Passthru,
        Act::Block => from_action(list_action),
        Act::Nxdomain | Act::Refused => RpzAction::Nxdomain,
        Act::Nodata => RpzAction::Nodata,
        Act::Drop => RpzAction::Drop,
        Act::Local => return None,
    })
}

/// `10.0.0.0/8` -> `8.0.0.0.10.rpz-ip`; `2001:db8::/32` -> `32.zz.db8.2001.rpz-ip`.
pub fn rpz_ip_owner(net: &IpNet) -> String {
    match net.addr() {
        IpAddr::V4(a) => {
            let o = a.octets();
            format!(
                "{}.{}.{}.{}.{}.rpz-ip",
                net.prefix_len(),
                o[3],
                o[2],
                o[1],
                o[0]
            )
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            // The longest run of zero groups (two or more) becomes `zz`, as in RPZ.
            let (mut best, mut best_len, mut i) = (8usize, 1usize, 0usize);
            while i < 8 {
                if seg[i] == 0 {
                    let start = i;
                    while i < 8 && seg[i] == 0 {
                        i += 1;
                    }
                    if i - start > best_len {
                        best = start;
                        best_len = i - start;
                    }
                } else {
                    i += 1;
                }
            }
            let mut labels: Vec<String> = Vec::new();
            let mut j = 0;
            while j < 8 {
                if j == best {
                    labels.push("zz".into());
                    j += best_len;
                } else {
                    labels.push(format!("{:x}", seg[j]));
                    j += 1;
                }
            }
            labels.reverse();
            format!("{}.{}.rpz-ip", net.prefix_len(), labels.join("."))
        }
    }
}

/// The records of one entry under `zone`; none when the owner does not make a valid name.
pub fn entry_records(
    owner: &str,
    a: RpzAction,
    zone: &Name,
    s: &ExportSettings,
    ttl: u32,
) -> Vec<Record> {
    let Ok(rel) = Name::from_ascii(owner) else {
        return Vec::new();
    };
    let Ok(name) = rel.append_domain(zone) else {
        return Vec::new();
    };
    let cname = |target: &str| {
        RData::CNAME(CNAME(
            Name::from_ascii(target).unwrap_or_else(|_| Name::root()),
        ))
    };
    let data = match a {
        RpzAction::Nxdomain => vec![RData::CNAME(CNAME(Name::root()))],
        RpzAction::Nodata => vec![cname("*.")],
        RpzAction::Passthru => vec![cname("rpz-passthru.")],
        RpzAction::Drop => vec![cname("rpz-drop.")],
        RpzAction::Sinkhole => vec![RData::A(A(s.sinkhole_v4)), RData::AAAA(AAAA(s.sinkhole_v6))],
    };
    data.into_iter()
        .map(|d| Record::from_rdata(name.clone(), ttl, d))
        .collect()
}

/// Differences between two entry sets: (removed, added), an entry whose action changed in
/// both.
pub fn diff(old: &Entries, new: &Entries) -> (EntryList, EntryList) {
    // Both maps are sorted: one walk over the two, no lookups.
    let mut removed = Vec::new();
    let mut added = Vec::new();
    let mut o = old.iter().peekable();
    let mut n = new.iter().peekable();
    loop {
        match (o.peek(), n.peek()) {
            (Some((ok, oa)), Some((nk, na))) => match ok.cmp(nk) {
                std::cmp::Ordering::Less => {
                    removed.push(((*ok).clone(), **oa));
                    o.next();
                }
                std::cmp::Ordering::Greater => {
                    added.push(((*nk).clone(), **na));
                    n.next();
                }
                std::cmp::Ordering::Equal => {
                    if oa != na {
                        removed.push(((*ok).clone(), **oa));
                        added.push(((*nk).clone(), **na));
                    }
                    o.next();
                    n.next();
                }
            },
            (Some((ok, oa)), None) => {
                removed.push(((*ok).clone(), **oa));
                o.next();
            }
            (None, Some((nk, na))) => {
                added.push(((*nk).clone(), **na));
                n.next();
            }
            (None, None) => return (removed, added),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Category;

    #[test]
    fn diff_finds_removed_added_and_changed() {
        let e = |v: &[(&str, RpzAction)]| -> Entries {
            v.iter().map(|(k, a)| (Box::from(*k), *a)).collect()
        };
        let old = e(&[
            ("a", RpzAction::Nxdomain),
            ("b", RpzAction::Nxdomain),
            ("c", RpzAction::Nodata),
        ]);
        let new = e(&[
            ("b", RpzAction::Passthru),
            ("c", RpzAction::Nodata),
            ("d", RpzAction::Drop),
        ]);
        let (removed, added) = diff(&old, &new);
        assert_eq!(
            removed,
            vec![
                ("a".into(), RpzAction::Nxdomain),
                ("b".into(), RpzAction::Nxdomain)
            ]
        );
        assert_eq!(
            added,
            vec![
                ("b".into(), RpzAction::Passthru),
                ("d".into(), RpzAction::Drop)
            ]
        );
    }

    #[test]
    fn rpz_ip_owners_round_trip_through_the_rpz_parser() {
        for net in [
            "192.0.2.0/24",
            "10.1.2.3/32",
            "2001:db8::/32",
            "2001:db8:0:0:1::/80",
            "::1/128",
        ] {
            let net: IpNet = net.parse().unwrap();
            let owner = rpz_ip_owner(&net);
            let back = crate::policy::rpz::parse_rpz_ip(owner.trim_end_matches(".rpz-ip")).unwrap();
            assert_eq!(back, net, "{owner}");
        }
    }

    #[test]
    fn lists_become_rpz_actions_allow_wins() {
        let dir = tempfile::tempdir().unwrap();
        let block = dir.path().join("b.txt");
        let allow = dir.path().join("a.txt");
        std::fs::write(&block, "evil.example\nok.example\n10.0.0.0/8\n").unwrap();
        std::fs::write(&allow, "ok.example\n").unwrap();
        let spec = |name: &str, category, path: &std::path::Path, action| ListSpec {
            name: name.into(),
            category,
            path: path.to_path_buf(),
            format: ListFormat::Auto,
            action,
        };
        let settings = ExportSettings {
            default_action: Action::Nxdomain,
            sinkhole_v4: Ipv4Addr::new(192, 0, 2, 1),
            sinkhole_v6: Ipv6Addr::LOCALHOST,
        };
        let mut ex = Exporter::new(settings);
        let specs = vec![
            spec("b", Category::Threat, &block, Some(Action::Sinkhole)),
            spec("a", Category::Allow, &allow, None),
        ];
        let e = ex.compile(&specs);
        assert_eq!(e.get("evil.example"), Some(&RpzAction::Sinkhole));
        assert_eq!(e.get("*.evil.example"), Some(&RpzAction::Sinkhole));
        assert_eq!(e.get("ok.example"), Some(&RpzAction::Passthru));
        assert_eq!(e.get("8.0.0.0.10.rpz-ip"), Some(&RpzAction::Sinkhole));
        // A list that breaks keeps its last good rules in the export.
        std::fs::write(&block, [0u8, 159, 146, 150].repeat(100)).unwrap();
        let again = ex.compile(&specs);
        assert_eq!(again, e);
        let zone = Name::from_ascii("rpz.test.").unwrap();
        let recs = entry_records("evil.example", RpzAction::Sinkhole, &zone, &settings, 60);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].name.to_ascii(), "evil.example.rpz.test.");
    }
}
