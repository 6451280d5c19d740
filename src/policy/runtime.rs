//! The runtime list: entries added and removed through the admin API, persisted to a plain
//! list file so that a restart keeps them, each traceable — who added it, when, why (the
//! reference of the authority's request), and until when.
//!
//! File format: one entry per line, `name # dnsward-runtime {json}`. The policy engine reads
//! it as a plain list (the trailing comment is ignored), so the file is an ordinary list too.
//! Entries for every group go to the base file (list `runtime`); entries scoped to one group
//! to a file of their own (list `runtime@GROUP`, see `Config::runtime_list_files`), which only
//! that group's mask includes.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::timefmt::{format_ts, parse_time_us};

const MARKER: &str = "# dnsward-runtime ";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RuntimeEntry {
    pub name: String,
    pub added_by: String,
    /// RFC 3339, UTC.
    pub added_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The authority's reference, e.g. an official letter number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// RFC 3339, UTC; the entry drops out on its own after this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// The group the entry applies to; absent = every group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl RuntimeEntry {
    fn expires_us(&self) -> Option<i64> {
        self.expires_at
            .as_deref()
            .and_then(|t| parse_time_us(t, 0).ok())
    }

    /// "who, when, reference, until" for logs and explain.
    pub fn describe(&self) -> String {
        let mut s = format!("added by {} at {}", self.added_by, self.added_at);
        if let Some(r) = &self.reference {
            s.push_str(&format!(", ref {r}"));
        }
        if let Some(r) = &self.reason {
            s.push_str(&format!(", reason: {r}"));
        }
        if let Some(e) = &self.expires_at {
            s.push_str(&format!(", until {e}"));
        }
        if let Some(g) = &self.group {
            s.push_str(&format!(", group {g}"));
        }
        s
    }
}

/// What a client sends to add an entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEntry {
    pub name: String,
    pub added_by: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub reference: Option<String>,
    /// RFC 3339 time, or a duration from now such as `48h` or `7d`.
    #[serde(default)]
    pub expires: Option<String>,
    /// Only for this group (`[[groups]] name`); absent = every group.
    #[serde(default)]
    pub group: Option<String>,
}

/// Why the runtime list refused a change or could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeListError {
    #[error("cannot create {}: {source}", path.display())]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no runtime list for group {0:?}")]
    NoScope(Option<String>),
    #[error("bad name {name:?}: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error("added_by must name who asked for the entry")]
    NoAddedBy,
    #[error("no group is named {0:?}")]
    UnknownGroup(String),
    /// `reason` is the time parser's explanation.
    #[error("bad expires {value:?}: {reason}")]
    BadExpiry {
        value: String,
        #[source]
        reason: crate::timefmt::TimeArgError,
    },
    #[error("expires {0:?} is in the past")]
    ExpiryPast(String),
}

/// (group, name): the same name may be listed for several groups.
type Key = (Option<String>, String);

pub struct RuntimeList {
    /// The file of each scope: `None` = every group.
    files: BTreeMap<Option<String>, PathBuf>,
    entries: Mutex<BTreeMap<Key, RuntimeEntry>>,
}

impl RuntimeList {
    /// Reads the file (creating an empty one if absent). Lines that are not ours are kept as
    /// plain entries added by "file".
    pub fn open(path: &Path) -> Result<RuntimeList, RuntimeListError> {
        Self::open_scoped(&[(None, path.to_path_buf())])
    }

    /// Reads every scope's file (see `Config::runtime_list_files`), creating missing ones.
    pub fn open_scoped(
        files: &[(Option<String>, PathBuf)],
    ) -> Result<RuntimeList, RuntimeListError> {
        let mut entries = BTreeMap::new();
        for (group, path) in files {
            read_file(path, group.as_deref(), &mut entries)?;
        }
        Ok(RuntimeList {
            files: files.iter().cloned().collect(),
            entries: Mutex::new(entries),
        })
    }

    /// The file of entries for every group.
    pub fn path(&self) -> &Path {
        self.files
            .get(&None)
            .or_else(|| self.files.values().next())
            .map_or(Path::new(""), |p| p.as_path())
    }

    pub fn list(&self) -> Vec<RuntimeEntry> {
        self.entries.lock().values().cloned().collect()
    }

    /// The entry for `name` in `group`'s scope (None = every group).
    pub fn get(&self, name: &str) -> Option<RuntimeEntry> {
        self.get_scoped(None, name)
    }

    pub fn get_scoped(&self, group: Option<&str>, name: &str) -> Option<RuntimeEntry> {
        self.entries
            .lock()
            .get(&(group.map(String::from), name.to_string()))
            .cloned()
    }

    /// Whether entries can be scoped to `group`.
    pub fn has_scope(&self, group: Option<&str>) -> bool {
        self.files.contains_key(&group.map(String::from))
    }

    /// Writes `scope`'s file from `next`.
    fn persist(
        &self,
        scope: &Option<String>,
        next: &BTreeMap<Key, RuntimeEntry>,
    ) -> Result<(), RuntimeListError> {
        let path = self
            .files
            .get(scope)
            .ok_or_else(|| RuntimeListError::NoScope(scope.clone()))?;
        let mine: Vec<&RuntimeEntry> = next
            .iter()
            .filter(|((g, _), _)| g == scope)
            .map(|(_, e)| e)
            .collect();
        write_atomic(path, &mine).map_err(|source| RuntimeListError::Write {
            path: path.clone(),
            source,
        })
    }

    /// Adds (or replaces) an entry and persists the file.
    pub fn add(&self, new: NewEntry, now_us: i64) -> Result<RuntimeEntry, RuntimeListError> {
        let mut name = String::new();
        super::names::normalize_name(new.name.trim(), &mut name).map_err(|reason| {
            RuntimeListError::BadName {
                name: new.name.clone(),
                reason,
            }
        })?;
        if new.added_by.trim().is_empty() {
            return Err(RuntimeListError::NoAddedBy);
        }
        let group = new
            .group
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty());
        if !self.has_scope(group.as_deref()) {
            return Err(RuntimeListError::UnknownGroup(group.unwrap_or_default()));
        }
        let expires_at = match new.expires.as_deref() {
            None | Some("") => None,
            Some(t) => {
                // A bare duration means "from now" (the time parser reads it as "ago").
                let us = match parse_time_us(t, 0) {
                    Ok(abs) if t.contains('-') || t.contains(':') => abs,
                    Ok(ago) => now_us - ago,
                    Err(reason) => {
                        return Err(RuntimeListError::BadExpiry {
                            value: t.to_string(),
                            reason,
                        })
                    }
                };
                if us <= now_us {
                    return Err(RuntimeListError::ExpiryPast(t.to_string()));
                }
                Some(format_ts(us, 0))
            }
        };
        let entry = RuntimeEntry {
            name: name.clone(),
            added_by: new.added_by.trim().to_string(),
            added_at: format_ts(now_us, 0),
            reason: new.reason.filter(|s| !s.trim().is_empty()),
            reference: new.reference.filter(|s| !s.trim().is_empty()),
            expires_at,
            group: group.clone(),
        };
        let mut entries = self.entries.lock();
        let mut next = entries.clone();
        next.insert((group.clone(), name), entry.clone());
        self.persist(&group, &next)?;
        *entries = next;
        Ok(entry)
    }

    /// Removes an entry (for every group); Ok(false) when there was none.
    pub fn remove(&self, name: &str) -> Result<bool, RuntimeListError> {
        self.remove_scoped(None, name)
    }

    /// Removes the entry for `name` in `group`'s scope; Ok(false) when there was none.
    pub fn remove_scoped(&self, group: Option<&str>, name: &str) -> Result<bool, RuntimeListError> {
        let key = (
            group.map(String::from),
            name.trim().trim_end_matches('.').to_ascii_lowercase(),
        );
        let mut entries = self.entries.lock();
        if !entries.contains_key(&key) {
            return Ok(false);
        }
        let mut next = entries.clone();
        next.remove(&key);
        self.persist(&key.0, &next)?;
        *entries = next;
        Ok(true)
    }

    /// Drops entries whose expiry has passed; returns them.
    pub fn expire(&self, now_us: i64) -> Result<Vec<RuntimeEntry>, RuntimeListError> {
        let mut entries = self.entries.lock();
        let gone: Vec<RuntimeEntry> = entries
            .values()
            .filter(|e| e.expires_us().is_some_and(|t| t <= now_us))
            .cloned()
            .collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        let mut next = entries.clone();
        for g in &gone {
            next.remove(&(g.group.clone(), g.name.clone()));
        }
        let scopes: std::collections::BTreeSet<Option<String>> =
            gone.iter().map(|g| g.group.clone()).collect();
        for scope in &scopes {
            self.persist(scope, &next)?;
        }
        *entries = next;
        Ok(gone)
    }
}

/// Reads one scope's file into `entries` (creating an empty file when there is none); the
/// scope of the file decides the entries' group.
fn read_file(
    path: &Path,
    group: Option<&str>,
    entries: &mut BTreeMap<Key, RuntimeEntry>,
) -> Result<(), RuntimeListError> {
    fn create(path: &Path) -> impl FnOnce(std::io::Error) -> RuntimeListError + '_ {
        move |source| RuntimeListError::Create {
            path: path.to_path_buf(),
            source,
        }
    }
    if !path.exists() {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(create(dir))?;
        }
        write_atomic(path, &[]).map_err(create(path))?;
    }
    let text = std::fs::read_to_string(path).map_err(|source| RuntimeListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, meta) = match line.split_once(MARKER) {
            Some((n, m)) => (n.trim(), serde_json::from_str::<RuntimeEntry>(m).ok()),
            None => (line.split('#').next().unwrap_or("").trim(), None),
        };
        let mut entry = meta.unwrap_or_else(|| RuntimeEntry {
            name: name.to_string(),
            added_by: "file".into(),
            added_at: String::new(),
            reason: None,
            reference: None,
            expires_at: None,
            group: None,
        });
        entry.group = group.map(String::from);
        entries.insert((entry.group.clone(), name.to_string()), entry);
    }
    Ok(())
}

/// Writes the whole file to a temporary beside it and renames it over: a crash never leaves
/// half a list, and the file watch sees one change.
fn write_atomic(path: &Path, entries: &[&RuntimeEntry]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        writeln!(f, "# dnsward runtime list: entries added through the admin API (POST /api/lists/runtime).")?;
        writeln!(f, "# Each line: name # dnsward-runtime {{who, when, reason, reference, expiry}}. Managed by dnsward.")?;
        for e in entries {
            write!(f, "{} {MARKER}", e.name)?;
            serde_json::to_writer(&mut f, e)?;
            writeln!(f)?;
        }
        f.sync_all()?;
    }
    std::fs::rename(tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(name: &str, expires: Option<&str>) -> NewEntry {
        NewEntry {
            name: name.into(),
            added_by: "soc".into(),
            reason: Some("phishing".into()),
            reference: Some("CV-123/STTTT".into()),
            expires: expires.map(String::from),
            group: None,
        }
    }

    #[test]
    fn add_persist_reopen_remove_expire() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rt.txt");
        let now = 1_800_000_000_000_000;
        let l = RuntimeList::open(&p).unwrap();
        let e = l.add(new("Evil.Example.", Some("2h")), now).unwrap();
        assert_eq!(e.name, "evil.example");
        assert!(e.expires_at.is_some());
        l.add(new("keep.example", None), now).unwrap();
        assert!(l.add(new("bad..name", None), now).is_err());
        assert!(l
            .add(new("x.example", Some("2000-01-01T00:00:00Z")), now)
            .is_err());
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("evil.example # dnsward-runtime {"), "{text}");

        let again = RuntimeList::open(&p).unwrap();
        assert_eq!(
            again.list(),
            l.list(),
            "a restart keeps every entry with its metadata"
        );
        assert_eq!(
            again.get("evil.example").unwrap().reference.as_deref(),
            Some("CV-123/STTTT")
        );

        assert!(again.expire(now + 1_000_000).unwrap().is_empty());
        let gone = again.expire(now + 3 * 3_600_000_000).unwrap();
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].name, "evil.example");
        assert!(again.remove("KEEP.example").unwrap());
        assert!(!again.remove("keep.example").unwrap());
        assert!(RuntimeList::open(&p).unwrap().list().is_empty());
    }

    #[test]
    fn group_scoped_entries_live_in_their_own_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = vec![
            (None, dir.path().join("rt.txt")),
            (Some("kids".to_string()), dir.path().join("rt@kids.txt")),
        ];
        let now = 1_800_000_000_000_000;
        let l = RuntimeList::open_scoped(&files).unwrap();
        let mut scoped = new("games.example", Some("2h"));
        scoped.group = Some("kids".into());
        l.add(scoped, now).unwrap();
        l.add(new("games.example", None), now).unwrap();
        let mut unknown = new("x.example", None);
        unknown.group = Some("nosuch".into());
        assert!(l
            .add(unknown, now)
            .unwrap_err()
            .to_string()
            .contains("nosuch"));
        let kids = std::fs::read_to_string(&files[1].1).unwrap();
        assert!(
            kids.contains("games.example # dnsward-runtime") && kids.contains("\"group\":\"kids\""),
            "{kids}"
        );
        assert!(!std::fs::read_to_string(&files[0].1)
            .unwrap()
            .contains("kids"));
        // the same name in two scopes, each kept after a restart; removal is per scope
        let again = RuntimeList::open_scoped(&files).unwrap();
        assert_eq!(again.list(), l.list());
        assert_eq!(
            again
                .get_scoped(Some("kids"), "games.example")
                .unwrap()
                .group
                .as_deref(),
            Some("kids")
        );
        assert!(again.get("games.example").unwrap().group.is_none());
        assert_eq!(
            again.expire(now + 3 * 3_600_000_000).unwrap().len(),
            1,
            "the scoped entry expires"
        );
        assert!(again.get_scoped(Some("kids"), "games.example").is_none());
        assert!(again.remove_scoped(None, "games.example").unwrap());
        assert!(RuntimeList::open_scoped(&files).unwrap().list().is_empty());
    }
}
