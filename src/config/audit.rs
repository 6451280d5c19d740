//! `[audit]`: `dnsward audit` on a schedule from `serve` (the audit itself is `crate::audit`).

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::Config;

/// `[audit]`: the same audit, run by `serve` on a schedule; its new critical findings feed the
/// `audit` alert rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub inventory: PathBuf,
    #[serde(
        default = "default_interval",
        deserialize_with = "crate::feeds::config::duration"
    )]
    pub interval: Duration,
    #[serde(default)]
    pub owned: Vec<IpNet>,
    #[serde(default)]
    pub baseline: Option<PathBuf>,
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
}

fn default_interval() -> Duration {
    Duration::from_secs(6 * 3600)
}
fn default_concurrency() -> usize {
    8
}

/// Problems of `[audit]` (key path, message).
pub fn problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(a) = &config.audit {
        if !config.resolve_path(&a.inventory).is_file() {
            out.push((
                "audit.inventory".into(),
                format!("{} does not exist", a.inventory.display()),
            ));
        }
        if a.interval < Duration::from_secs(1) {
            out.push(("audit.interval".into(), "must be at least 1s".into()));
        }
        if a.concurrency == 0 || a.concurrency > 256 {
            out.push((
                "audit.concurrency".into(),
                "must be between 1 and 256".into(),
            ));
        }
    }
    out
}
