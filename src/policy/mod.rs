//! The policy engine: block/allow lists parsed into one immutable [`Snapshot`]
//! that the query path shares as `Arc<Snapshot>`.
//!
//! - `parse.rs`: list formats (plain, hosts, adblock, wildcard, dnsmasq,
//!   unbound, IP), bounded line reading, per-line auto-detection.
//! - `rpz.rs`: RPZ zone files.
//! - `names.rs`: the flat name matcher (hashes of label suffixes).
//! - `ips.rs`: the CIDR matcher.
//! - `groups.rs`: per-client groups (list masks) and named clients.
//! - `snapshot.rs`: building a snapshot (in parallel, keeping the previous copy
//!   of a list that fails) and matching.
//!
//! Decision rules, the same for names and addresses:
//! 1. An allow rule anywhere (allow list, adblock `@@`, unbound transparent,
//!    RPZ passthru) beats every block rule, whatever their specificity.
//! 2. Otherwise the most specific rule wins (longest name suffix / longest
//!    prefix); between rules of equal specificity, the list configured first,
//!    then the lowest line.

use std::io::{self, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub mod groups;
pub mod ips;
pub mod names;
pub mod parse;
pub mod reload;
pub mod rpz;
pub mod runtime;
pub mod snapshot;

pub use parse::{parse_list_file, ListError, ParsedList, MAX_LINE};
pub use snapshot::Snapshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Threat,
    Abandoned,
    Allow,
}

impl Category {
    pub fn as_str(&self) -> &'static str {
        match self {
            Category::Threat => "threat",
            Category::Abandoned => "abandoned",
            Category::Allow => "allow",
        }
    }
}

/// Configured actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Nxdomain,
    Nodata,
    Sinkhole,
    Refused,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListFormat {
    #[default]
    Auto,
    Plain,
    Hosts,
    Adblock,
    Wildcard,
    Dnsmasq,
    Unbound,
    Rpz,
    Ip,
}

#[derive(Clone, Debug)]
pub struct ListSpec {
    pub name: String,
    pub category: Category,
    pub path: PathBuf,
    pub format: ListFormat,
    /// Overrides the blocking action of every block rule of this list, except
    /// in RPZ zones, whose own actions (NXDOMAIN, NODATA, drop, local data) are
    /// the point of the zone.
    pub action: Option<Action>,
}

/// What a matching rule tells the resolver to do.
#[derive(Clone, Debug)]
pub enum Verdict {
    /// Allow list, adblock `@@`, unbound transparent, RPZ passthru.
    Allow(RuleRef),
    /// `action: None` = use the `[policy]` action; `Some` = the list's
    /// override, or the rule's own (RPZ NXDOMAIN/NODATA, unbound
    /// always_nxdomain / always_nodata / refuse).
    Block {
        rule: RuleRef,
        action: Option<Action>,
    },
    /// RPZ local data: answers only the qtypes it holds (NODATA for others).
    LocalData {
        rule: RuleRef,
        records: Arc<[LocalRecord]>,
    },
    /// RPZ `rpz-drop.`, unbound `deny`: no answer at all.
    Drop(RuleRef),
}

impl Verdict {
    pub fn rule(&self) -> &RuleRef {
        match self {
            Verdict::Allow(r) | Verdict::Drop(r) => r,
            Verdict::Block { rule, .. } | Verdict::LocalData { rule, .. } => rule,
        }
    }

    /// The rule, taken out of the verdict (no clone).
    pub fn into_rule(self) -> RuleRef {
        match self {
            Verdict::Allow(r) | Verdict::Drop(r) => r,
            Verdict::Block { rule, .. } | Verdict::LocalData { rule, .. } => rule,
        }
    }

    pub fn is_allow(&self) -> bool {
        matches!(self, Verdict::Allow(_))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocalRecord {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    /// Target without trailing dot; may start with `*.` (RPZ wildcard CNAME).
    Cname(String),
    Txt(String),
}

#[derive(Clone, Debug)]
pub struct RuleRef {
    pub list: Arc<str>,
    pub category: Category,
    pub file: Arc<Path>,
    /// 1-based line of the rule (for an RPZ trigger with several records, the first).
    pub line: u32,
    /// The listed name or CIDR that matched, normalized: `evil.example`,
    /// `*.evil.example` (RPZ/wildcard subdomain rule) or `10.0.0.0/8`.
    pub trigger_name: String,
}

impl RuleRef {
    /// Re-reads line `line` of `file` (rule text is not kept in memory). If the
    /// file changed since the snapshot was built, this is the new file's line.
    pub fn rule_text(&self) -> io::Result<String> {
        let f = std::fs::File::open(&self.file)?;
        let mut lr = parse::LineReader::new(BufReader::new(f));
        loop {
            let n = lr.line_no + 1;
            let raw = lr.next_line()?;
            let Some(raw) = raw else {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{} has fewer than {} lines", self.file.display(), self.line),
                ));
            };
            if n == self.line {
                return Ok(match raw {
                    parse::RawLine::Text(t) => t.to_string(),
                    parse::RawLine::TooLong => format!("<line longer than {MAX_LINE} bytes>"),
                    parse::RawLine::NotUtf8 | parse::RawLine::Control => {
                        "<binary data>".to_string()
                    }
                });
            }
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct LoadReport {
    pub lists: Vec<ListReport>,
    pub elapsed: std::time::Duration,
}

impl LoadReport {
    /// True when every list loaded fresh (no error, no kept previous copy).
    pub fn all_fresh(&self) -> bool {
        self.lists.iter().all(|l| l.error.is_none())
    }
}

#[derive(Clone, Debug, Default)]
pub struct ListReport {
    pub name: String,
    pub path: PathBuf,
    /// Rules in effect for this list (kept from the previous snapshot when `kept_previous`).
    pub entries: usize,
    pub bad_lines: usize,
    /// Up to 20: line number + reason.
    pub first_bad: Vec<(u32, String)>,
    /// Why the old copy was kept (the list failed as a whole).
    pub kept_previous: Option<String>,
    pub warnings: Vec<String>,
    /// Added: the whole-list failure, also when there was no previous copy to keep.
    pub error: Option<String>,
    /// Added: the format the file was read as (`Rpz` when detected).
    pub format: ListFormat,
}
