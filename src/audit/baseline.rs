//! The baseline (`--baseline audit.json`): what each name resolved to at the last audit. Drift
//! against it — NS set, addresses, CNAME targets, MX, DS — is the signature of a hijacked
//! delegation or a redirected site. Read before the run, written (atomically) after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Finding, Kind, Severity};

/// One name's answers, each set sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameState {
    #[serde(default)]
    pub ns: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub cnames: Vec<String>,
    #[serde(default)]
    pub mx: Vec<String>,
    #[serde(default)]
    pub ds: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Baseline {
    /// When the run that wrote it started (RFC 3339 UTC).
    #[serde(default)]
    pub written: String,
    #[serde(default)]
    pub names: BTreeMap<String, NameState>,
}

/// Why the baseline cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("not a baseline: {0}")]
    Parse(serde_json::Error),
    #[error("{0}")]
    Read(std::io::Error),
    #[error("cannot encode the baseline: {0}")]
    Encode(serde_json::Error),
    #[error("{}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Baseline {
    /// The baseline at `path`; an absent file is an empty baseline (the first run).
    pub fn read(path: &Path) -> Result<Baseline, BaselineError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(BaselineError::Parse),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Baseline::default()),
            Err(e) => Err(BaselineError::Read(e)),
        }
    }

    /// Writes to a temporary file beside `path`, then renames it into place.
    pub fn write(&self, path: &Path) -> Result<(), BaselineError> {
        let text = serde_json::to_vec_pretty(self).map_err(BaselineError::Encode)?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text).map_err(|source| BaselineError::Write {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, path).map_err(|source| BaselineError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// One finding per field that changed; NS and DS changes are critical (a delegation moved).
pub fn drift(old: &NameState, new: &NameState) -> Vec<Finding> {
    let fields: [(&str, &Vec<String>, &Vec<String>, Severity); 5] = [
        ("NS set", &old.ns, &new.ns, Severity::Critical),
        ("DS", &old.ds, &new.ds, Severity::Critical),
        (
            "addresses",
            &old.addresses,
            &new.addresses,
            Severity::Warning,
        ),
        ("CNAME targets", &old.cnames, &new.cnames, Severity::Warning),
        ("MX", &old.mx, &new.mx, Severity::Warning),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b, _)| a != b)
        .map(|(what, a, b, severity)| {
            Finding::new(
                severity,
                Kind::Drift,
                format!(
                    "{what} changed since the baseline: {} -> {}",
                    show(a),
                    show(b)
                ),
            )
        })
        .collect()
}

fn show(v: &[String]) -> String {
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drift_by_field_with_severity() {
        let old = NameState {
            ns: vec!["ns1.a.vn.".into()],
            addresses: vec!["192.0.2.1".into()],
            ..Default::default()
        };
        let mut new = old.clone();
        assert!(drift(&old, &new).is_empty());
        new.addresses = vec!["203.0.113.9".into()];
        new.ns = vec!["ns.evil.example.".into()];
        let f = drift(&old, &new);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].severity, Severity::Critical);
        assert!(
            f[0].reason.contains("ns1.a.vn. -> ns.evil.example."),
            "{f:?}"
        );
        assert_eq!(f[1].severity, Severity::Warning);
    }
}
