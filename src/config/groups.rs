//! `[[clients]]` and `[[groups]]`: named clients and per-client policy groups, their checks
//! (each problem with its key path, so `dnsward check` prints `file:line`), and their
//! conversion into what the policy snapshot builds from.

use std::collections::HashMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

use super::{Config, RUNTIME_LIST};
use crate::policy::groups::{
    runtime_list_name, ClientSpec, GroupSpec, GroupsSpec, LogMode, DEFAULT_GROUP, RUNTIME_SCOPE_SEP,
};
use crate::policy::Action;

/// One `[[clients]]` table: a name for an address or a CIDR, optionally in a group.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub name: String,
    pub cidr: ClientNet,
    #[serde(default)]
    pub group: Option<String>,
}

/// One `[[groups]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    pub name: String,
    /// Member CIDRs (members can also come from `[[clients]] group`).
    #[serde(default)]
    pub clients: Vec<ClientNet>,
    /// The lists that apply (allow lists too); absent = every list.
    #[serde(default)]
    pub lists: Option<Vec<String>>,
    /// Replaces `[policy] action` for this group's blocks (a list's own action still wins).
    #[serde(default)]
    pub action: Option<Action>,
    #[serde(default)]
    pub log: LogMode,
}

/// An address (`10.2.3.17`, a host) or a CIDR (`10.2.0.0/16`); host bits are cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientNet(pub IpNet);

impl<'de> Deserialize<'de> for ClientNet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let t = s.trim();
        let net = t
            .parse::<IpNet>()
            .or_else(|_| t.parse::<std::net::IpAddr>().map(IpNet::from))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "{s:?} is not an address or a CIDR (\"10.2.0.0/16\")"
                ))
            })?;
        Ok(ClientNet(net.trunc()))
    }
}

impl fmt::Display for ClientNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Group names end up in metric labels, list names (`runtime@NAME`) and file names.
fn bad_group_name(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("must not be empty");
    }
    if name.len() > 64 {
        return Some("must be at most 64 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return Some("may hold only letters, digits, '-', '_' and '.'");
    }
    None
}

/// Client names go to every query-log sink and to terminals: no control characters.
fn bad_client_name(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("must not be empty".into());
    }
    if name.chars().count() > 200 {
        return Some("must be at most 200 characters".into());
    }
    name.chars()
        .find(|c| c.is_control())
        .map(|c| format!("contains the control character {:?}", c))
}

impl Config {
    /// Problems of `[[clients]]` and `[[groups]]`, as (key path, message).
    pub(super) fn group_problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut group_names: HashMap<&str, usize> = HashMap::new();
        let runtime_on = self.runtime_list_path().is_some();
        for (i, g) in self.groups.iter().enumerate() {
            if let Some(why) = bad_group_name(&g.name) {
                out.push((format!("groups[{i}].name"), format!("{:?} {why}", g.name)));
            } else if let Some(first) = group_names.insert(g.name.as_str(), i) {
                out.push((
                    format!("groups[{i}].name"),
                    format!("groups[{first}] is already named {:?}", g.name),
                ));
            }
            for (j, l) in g.lists.iter().flatten().enumerate() {
                let known = self.lists.iter().any(|x| &x.name == l)
                    || self.rpz.iter().any(|r| &r.list_name() == l)
                    || (runtime_on && l == RUNTIME_LIST);
                if !known {
                    out.push((
                        format!("groups[{i}].lists[{j}]"),
                        format!(
                            "group {:?} names the list {l:?}, which is not configured in [[lists]]",
                            g.name
                        ),
                    ));
                }
            }
        }
        // Who claims which CIDR for which group: two groups on the same CIDR is ambiguous.
        let mut claims: HashMap<IpNet, (String, String)> = HashMap::new();
        let mut claim = |net: IpNet, group: &str, key: String, out: &mut Vec<(String, String)>| {
            match claims.get(&net) {
                Some((g, k)) if g != group => {
                    out.push((key, format!("{net} is claimed by group {g:?} ({k}) and by group {group:?}; give one of them a more specific CIDR")));
                }
                Some((_, k)) => out.push((
                    key,
                    format!("{net} is already listed for group {group:?} ({k})"),
                )),
                None => {
                    claims.insert(net, (group.to_string(), key));
                }
            }
        };
        for (i, g) in self.groups.iter().enumerate() {
            for (j, c) in g.clients.iter().enumerate() {
                claim(c.0, &g.name, format!("groups[{i}].clients[{j}]"), &mut out);
            }
        }
        let mut named: HashMap<IpNet, usize> = HashMap::new();
        for (i, c) in self.clients.iter().enumerate() {
            if let Some(why) = bad_client_name(&c.name) {
                out.push((format!("clients[{i}].name"), format!("{:?} {why}", c.name)));
            }
            if let Some(first) = named.insert(c.cidr.0, i) {
                out.push((
                    format!("clients[{i}].cidr"),
                    format!("{} is already named by clients[{first}]", c.cidr),
                ));
            }
            if let Some(g) = &c.group {
                if !group_names.contains_key(g.as_str()) && g != DEFAULT_GROUP {
                    out.push((
                        format!("clients[{i}].group"),
                        format!("no [[groups]] is named {g:?}"),
                    ));
                } else {
                    claim(c.cidr.0, g, format!("clients[{i}].cidr"), &mut out);
                }
            }
        }
        if self.lists.iter().any(|l| {
            l.name
                .starts_with(&format!("{RUNTIME_LIST}{RUNTIME_SCOPE_SEP}"))
        }) {
            out.push(("lists".into(), format!("list names starting with \"{RUNTIME_LIST}{RUNTIME_SCOPE_SEP}\" are reserved for group-scoped runtime entries")));
        }
        out
    }

    /// Groups and named clients as the policy snapshot takes them.
    pub fn groups_spec(&self) -> GroupsSpec {
        let groups = self
            .groups
            .iter()
            .map(|g| GroupSpec {
                name: g.name.clone(),
                lists: g.lists.clone(),
                action: g.action,
                log: g.log,
            })
            .collect();
        let mut clients: Vec<ClientSpec> = self
            .clients
            .iter()
            .map(|c| ClientSpec {
                net: c.cidr.0,
                name: Some(c.name.clone()),
                group: c.group.clone(),
            })
            .collect();
        for g in &self.groups {
            clients.extend(g.clients.iter().map(|c| ClientSpec {
                net: c.0,
                name: None,
                group: Some(g.name.clone()),
            }));
        }
        GroupsSpec { groups, clients }
    }

    /// The runtime list files: `None` (entries for every group) first, then one per group
    /// (`runtime-list.txt` -> `runtime-list@finance.txt`), when the admin API is on.
    pub fn runtime_list_files(&self) -> Vec<(Option<String>, std::path::PathBuf)> {
        let Some(base) = self.runtime_list_path() else {
            return Vec::new();
        };
        let mut files = vec![(None, base.clone())];
        for g in &self.groups {
            let stem = base
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let file = match base.extension() {
                Some(ext) => format!(
                    "{stem}{RUNTIME_SCOPE_SEP}{}.{}",
                    g.name,
                    ext.to_string_lossy()
                ),
                None => format!("{stem}{RUNTIME_SCOPE_SEP}{}", g.name),
            };
            files.push((Some(g.name.clone()), base.with_file_name(file)));
        }
        files
    }

    /// The list name of each runtime file (see [`Config::runtime_list_files`]).
    pub fn runtime_list_names(&self) -> Vec<String> {
        self.runtime_list_files()
            .iter()
            .map(|(g, _)| runtime_list_name(g.as_deref()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const LISTS: &str = "[[lists]]\nname = \"threat\"\ncategory = \"threat\"\npath = \"t.txt\"\n\n";

    #[test]
    fn groups_and_clients_parse() {
        let text = format!(
            "{LISTS}[[clients]]\nname = \"Finance dept, PC-17\"\ncidr = \"10.2.3.17\"\n\n\
             [[groups]]\nname = \"finance\"\nclients = [\"10.2.0.0/16\"]\nlists = [\"threat\"]\naction = \"sinkhole\"\nlog = \"blocked\"\n"
        );
        let c = Config::from_text(&text, Path::new("/tmp/x/c.toml")).unwrap();
        assert_eq!(
            c.clients[0].cidr.0,
            "10.2.3.17/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(c.groups[0].log, LogMode::Blocked);
        let spec = c.groups_spec();
        assert_eq!(spec.clients.len(), 2);
        assert_eq!(spec.clients[1].group.as_deref(), Some("finance"));
    }

    #[test]
    fn bad_groups_named_with_lines() {
        let text = format!(
            "{LISTS}[[clients]]\nname = \"PC\\u0007-17\"\ncidr = \"10.2.3.17\"\n\n\
             [[groups]]\nname = \"finance\"\nclients = [\"10.2.0.0/16\"]\nlists = [\"threat\", \"nosuch\"]\n\n\
             [[groups]]\nname = \"security\"\nclients = [\"10.2.0.0/16\"]\n\n\
             [[clients]]\nname = \"x\"\ncidr = \"not-a-net\"\n"
        );
        let p = Config::from_text(&text, Path::new("/tmp/x/c.toml")).unwrap_err();
        let find = |key: &str| {
            p.iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{key}: {p:#?}"))
        };
        // serde problems first (a bad CIDR), then the checks
        assert_eq!(find("clients[1].cidr").line, Some(21));
        let p2 = {
            let fixed = text.replace("not-a-net", "10.9.9.9");
            Config::from_text(&fixed, Path::new("/tmp/x/c.toml")).unwrap_err()
        };
        let find = |key: &str| {
            p2.iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{key}: {p2:#?}"))
        };
        let ctl = find("clients[0].name");
        assert!(ctl.message.contains("control character"), "{ctl}");
        assert_eq!(ctl.line, Some(7));
        let missing = find("groups[0].lists[1]");
        assert!(missing.message.contains("\"nosuch\""), "{missing}");
        assert_eq!(missing.line, Some(13));
        let twice = find("groups[1].clients[0]");
        assert!(
            twice.message.contains("claimed by group \"finance\""),
            "{twice}"
        );
        assert_eq!(twice.line, Some(17));
        assert_eq!(p2.len(), 3, "{p2:#?}");
    }

    #[test]
    fn runtime_files_per_group() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tok"), "0123456789abcdef0123").unwrap();
        let text = "[admin]\ntoken_file = \"tok\"\nruntime_list = \"rt.txt\"\n\n[[groups]]\nname = \"kids\"\nclients = [\"::1\"]\n";
        let c = Config::from_text(text, &dir.path().join("c.toml")).unwrap();
        let files = c.runtime_list_files();
        assert_eq!(
            files[1],
            (Some("kids".to_string()), dir.path().join("rt@kids.txt"))
        );
        assert_eq!(c.runtime_list_names(), ["runtime", "runtime@kids"]);
    }
}
