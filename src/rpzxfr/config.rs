//! `[[rpz]]` (zones received by transfer) and `[rpz_server]` (our policy served as a zone):
//! the config types and their checks. Kept here so that `config/mod.rs` only names them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

use crate::policy::{Category, ListFormat, ListSpec};

/// One `[[rpz]]` table: an RPZ zone this dnsward is a secondary for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpzConfig {
    /// The list name (logs, EDE texts, `explain`, groups); default: the zone name.
    #[serde(default)]
    pub name: Option<String>,
    /// The primary server, `"IP:PORT"`.
    pub primary: SocketAddr,
    /// The zone to transfer, e.g. `"rpz.example."`.
    pub zone: String,
    /// A key file in BIND's format (`key "name" { algorithm hmac-sha256; secret "…"; };`).
    #[serde(default)]
    pub tsig_key_file: Option<PathBuf>,
    /// `threat` (default), `abandoned` or `allow`.
    #[serde(default = "default_category")]
    pub category: Category,
    /// Where the received zone is kept for restarts; default `rpz-NAME.zone` beside the config.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Where NOTIFY from the primary is accepted (UDP); absent: only the SOA timers.
    #[serde(default)]
    pub notify_listen: Option<SocketAddr>,
    /// Who may send NOTIFY (CIDR); default: the primary's address only. For primaries that
    /// notify from another address (NSD without `outgoing-interface` uses 127.0.0.1, say).
    #[serde(default)]
    pub allow_notify: Vec<IpNet>,
    /// Largest transfer accepted, in records (a primary that sends more is rejected).
    #[serde(default = "default_max_records")]
    pub max_records: usize,
}

/// `[rpz_server]`: serve the compiled local policy as an RPZ zone (AXFR, IXFR, NOTIFY).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpzServerConfig {
    /// TCP (AXFR, IXFR, SOA) and UDP (SOA) address.
    pub listen: SocketAddr,
    /// The zone name served, e.g. `"rpz.dnsward."`.
    pub zone: String,
    /// Clients that may transfer (CIDR); everyone else is refused.
    #[serde(default)]
    pub allow_transfer: Vec<IpNet>,
    /// When set, every transfer must be signed with this key (hmac-sha256).
    #[serde(default)]
    pub tsig_key_file: Option<PathBuf>,
    /// Secondaries told of every change (`"IP:PORT"`).
    #[serde(default)]
    pub notify: Vec<SocketAddr>,
    /// Diffs kept for IXFR; an older serial gets the whole zone.
    #[serde(default = "default_ixfr_history")]
    pub ixfr_history: usize,
}

fn default_category() -> Category {
    Category::Threat
}
fn default_max_records() -> usize {
    5_000_000
}
fn default_ixfr_history() -> usize {
    64
}

impl RpzConfig {
    pub fn list_name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.zone.trim_end_matches('.').to_string())
    }

    /// The file the received zone is kept in, resolved against `base_dir` (the config file's
    /// directory; an absolute path stays as it is).
    pub fn zone_path(&self, base_dir: &Path) -> PathBuf {
        match &self.path {
            Some(p) => base_dir.join(p),
            None => base_dir.join(format!("rpz-{}.zone", self.list_name())),
        }
    }
}

/// The received zones as lists (RPZ format) for the policy engine.
pub fn list_specs(rpz: &[RpzConfig], base_dir: &Path) -> Vec<ListSpec> {
    rpz.iter()
        .map(|r| ListSpec {
            name: r.list_name(),
            category: r.category,
            path: r.zone_path(base_dir),
            format: ListFormat::Rpz,
            action: None,
        })
        .collect()
}

/// For `dnsward check`: an `[[rpz]]` zone whose copy is not on disk yet is no error (the
/// first AXFR at start writes it); says so, naming the primary.
pub fn not_transferred_yet(rpz: &[RpzConfig], base_dir: &Path, list: &str) -> Option<String> {
    let r = rpz.iter().find(|r| r.list_name() == list)?;
    let path = r.zone_path(base_dir);
    (!path.exists()).then(|| {
        format!(
            "rpz zone {} not transferred yet: {} is written by the first AXFR from {} at start",
            r.zone,
            path.display(),
            r.primary
        )
    })
}

/// Problems of `[[rpz]]` and `[rpz_server]` as (key path, message); `list_names`: the names
/// the config's other lists already take.
pub fn problems(
    rpz: &[RpzConfig],
    server: Option<&RpzServerConfig>,
    list_names: &[&str],
    base_dir: &Path,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut names: std::collections::HashSet<String> =
        list_names.iter().map(|n| n.to_string()).collect();
    for (i, r) in rpz.iter().enumerate() {
        if let Err(e) = zone_name(&r.zone) {
            out.push((format!("rpz[{i}].zone"), e.to_string()));
        }
        let name = r.list_name();
        if name.trim().is_empty() {
            out.push((format!("rpz[{i}].name"), "must not be empty".into()));
        } else if name == crate::policy::groups::RUNTIME_LIST || !names.insert(name.clone()) {
            out.push((
                format!("rpz[{i}].name"),
                format!("another list is already named {name:?}"),
            ));
        }
        if r.max_records == 0 {
            out.push((format!("rpz[{i}].max_records"), "must be at least 1".into()));
        }
        if let Some(k) = &r.tsig_key_file {
            if let Err(e) = super::tsig::TsigKey::load(&base_dir.join(k)) {
                out.push((format!("rpz[{i}].tsig_key_file"), e.to_string()));
            }
        }
    }
    if let Some(s) = server {
        if let Err(e) = zone_name(&s.zone) {
            out.push(("rpz_server.zone".into(), e.to_string()));
        }
        if s.allow_transfer.is_empty() {
            out.push((
                "rpz_server.allow_transfer".into(),
                "name the secondaries that may transfer (CIDR); nobody is allowed by default"
                    .into(),
            ));
        }
        if let Some(k) = &s.tsig_key_file {
            if let Err(e) = super::tsig::TsigKey::load(&base_dir.join(k)) {
                out.push(("rpz_server.tsig_key_file".into(), e.to_string()));
            }
        }
        if s.ixfr_history == 0 {
            out.push((
                "rpz_server.ixfr_history".into(),
                "must be at least 1".into(),
            ));
        }
    }
    out
}

/// A `zone` key that names no zone.
#[derive(Debug, thiserror::Error)]
pub enum ZoneNameError {
    #[error("{0:?} is not a zone name")]
    Empty(String),
    #[error("{text:?} is not a zone name: {source}")]
    Invalid {
        text: String,
        source: hickory_proto::ProtoError,
    },
}

/// An absolute DNS name from config text (`"rpz.example."`, the trailing dot optional).
pub(crate) fn zone_name(text: &str) -> Result<hickory_proto::rr::Name, ZoneNameError> {
    let t = text.trim();
    if t.is_empty() || t == "." {
        return Err(ZoneNameError::Empty(text.to_string()));
    }
    let mut n =
        hickory_proto::rr::Name::from_ascii(t).map_err(|source| ZoneNameError::Invalid {
            text: text.to_string(),
            source,
        })?;
    n.set_fqdn(true);
    Ok(n.to_lowercase())
}
