//! `dnsward audit`: the agency's own names resolved through dnsward's own iterative resolver
//! (what the world sees, not what a forwarder says) and judged one by one:
//! - `inventory`: the inventory file (one name a line, `#` comments), bad lines with their number;
//! - `checks`: per name, the lookups and the findings (dangling CNAME, lame or mismatched
//!   delegation, addresses outside `--owned`, NXDOMAIN/SERVFAIL, threats by the policy,
//!   DNSSEC, drift);
//! - `suffixes`: the claimable hosting suffixes of `data/takeover-suffixes.txt`;
//! - `baseline`: the saved state of each name (`--baseline`), read before and written after;
//! - `report`: the table, the JSON, and the names appended to an abandoned list.
//!
//! Dependencies: `audit` uses `resolver`, `policy` and `config`; nothing on the answer path
//! uses `audit`.

pub mod baseline;
pub mod checks;
pub mod inventory;
pub mod report;
pub mod suffixes;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::policy::Snapshot;
use crate::resolver::Resolver;

pub use baseline::{Baseline, NameState};
pub use inventory::{Inventory, InventoryEntry, InventoryProblem};

pub use crate::config::audit::{problems, AuditConfig};

fn no_progress(_: &NameReport) {}

/// Runs the audit of `[audit]` now and every `interval`, handing each report to `on_report`.
pub fn spawn_schedule(
    config: Config,
    on_report: impl Fn(&AuditReport) + Send + Sync + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let a = config.audit.clone()?;
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(a.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let path = config.resolve_path(&a.inventory);
            let inventory = match Inventory::read(&path) {
                Ok(i) => i,
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "audit: inventory unreadable");
                    continue;
                }
            };
            let options = AuditOptions {
                owned: a.owned.clone(),
                baseline: a.baseline.as_ref().map(|b| config.resolve_path(b)),
                concurrency: a.concurrency,
                ns_timeout: Duration::ZERO,
            };
            match run(&config, &inventory, &options, &no_progress).await {
                Ok(report) => {
                    let (c, w, i) = report.counts();
                    tracing::info!(
                        names = report.names.len(),
                        critical = c,
                        warnings = w,
                        info = i,
                        "audit done"
                    );
                    on_report(&report);
                }
                Err(e) => tracing::error!(error = %e, "audit failed"),
            }
        }
    }))
}

/// How bad a finding is; the exit status of `dnsward audit` is the worst one (0 / 1 / 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(&self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// What a finding is about: a stable word for scripts and alert rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Resolves, nothing to say.
    Ok,
    DanglingCname,
    /// A CNAME to a claimable suffix that still resolves (keep the resource).
    ClaimableCname,
    NotResolving,
    LameDelegation,
    NsUnresolvable,
    NsMismatch,
    AddressNotOwned,
    Threat,
    Dnssec,
    DnssecBogus,
    DnssecDsMismatch,
    Drift,
}

impl Kind {
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Ok => "ok",
            Kind::DanglingCname => "dangling_cname",
            Kind::ClaimableCname => "claimable_cname",
            Kind::NotResolving => "not_resolving",
            Kind::LameDelegation => "lame_delegation",
            Kind::NsUnresolvable => "ns_unresolvable",
            Kind::NsMismatch => "ns_mismatch",
            Kind::AddressNotOwned => "address_not_owned",
            Kind::Threat => "threat",
            Kind::Dnssec => "dnssec",
            Kind::DnssecBogus => "dnssec_bogus",
            Kind::DnssecDsMismatch => "dnssec_ds_mismatch",
            Kind::Drift => "drift",
        }
    }
}

/// One thing found about one name, with its one-line reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub severity: Severity,
    pub kind: Kind,
    pub reason: String,
}

impl Finding {
    pub fn new(severity: Severity, kind: Kind, reason: impl Into<String>) -> Self {
        Self {
            severity,
            kind,
            reason: reason.into(),
        }
    }
}

/// Everything the audit says about one inventory name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NameReport {
    pub name: String,
    /// Line of the inventory file.
    pub line: u32,
    pub findings: Vec<Finding>,
    /// What the name resolves to now (for the baseline); `None` when it does not resolve.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<NameState>,
    /// Why the name should go on the abandoned list, when it should.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abandoned: Option<String>,
}

impl NameReport {
    pub fn worst(&self) -> Severity {
        self.findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Severity::Info)
    }
}

/// The whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// RFC 3339 UTC time the run started.
    pub started: String,
    pub names: Vec<NameReport>,
    pub inventory_problems: Vec<InventoryProblem>,
}

impl AuditReport {
    pub fn worst(&self) -> Severity {
        self.names
            .iter()
            .map(NameReport::worst)
            .max()
            .unwrap_or(Severity::Info)
    }

    /// Counts of findings by severity: (critical, warning, info).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for f in self.names.iter().flat_map(|n| &n.findings) {
            match f.severity {
                Severity::Critical => c.0 += 1,
                Severity::Warning => c.1 += 1,
                Severity::Info => c.2 += 1,
            }
        }
        c
    }

    /// The exit status of `dnsward audit`: 0 nothing worse than info, 1 warnings, 2 critical.
    pub fn exit_status(&self) -> u8 {
        match self.worst() {
            Severity::Info => 0,
            Severity::Warning => 1,
            Severity::Critical => 2,
        }
    }
}

/// What one run needs besides the config and the inventory.
#[derive(Debug, Clone, Default)]
pub struct AuditOptions {
    /// `--owned`: the address ranges the agency controls; empty = not checked.
    pub owned: Vec<IpNet>,
    /// `--baseline`: compared before, written after.
    pub baseline: Option<PathBuf>,
    /// `--concurrency`: names audited at once (at least 1).
    pub concurrency: usize,
    /// How long one name server gets to answer the direct SOA question of the delegation check.
    pub ns_timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("the resolver cannot start: {0}")]
    RootHints(#[from] crate::resolver::roots::RootHintsError),
    #[error("the resolver cannot start: {0}")]
    TrustAnchor(#[from] crate::dnssec::DnssecError),
    #[error("baseline {}: {source}", path.display())]
    Baseline {
        path: PathBuf,
        source: baseline::BaselineError,
    },
}

/// Audits every inventory name through a fresh resolver built from `config` (`[resolver]`:
/// root hints, port, DNSSEC mode; whatever `mode` says, the audit resolves iteratively) and
/// judges threats with the config's lists. `on_name` is called once per name audited (the
/// progress bar). The baseline, when given, is written after the run.
pub async fn run(
    config: &Config,
    inventory: &Inventory,
    options: &AuditOptions,
    on_name: &(dyn Fn(&NameReport) + Sync),
) -> Result<AuditReport, AuditError> {
    let started = crate::timefmt::format_ts(crate::timefmt::now_us(), 0);
    let roots = config.root_addresses()?;
    let validator = crate::resolver::validator_from_config(&config.resolver, &config.base_dir)?;
    let resolver = Resolver::new(&roots, &config.resolver, validator);
    let (snapshot, _) = Snapshot::build_grouped(
        &config.list_specs(),
        &crate::events::groups_at(config, crate::timefmt::now_us()),
        None,
    );
    let old = match &options.baseline {
        Some(p) => Baseline::read(p).map_err(|source| AuditError::Baseline {
            path: p.clone(),
            source,
        })?,
        None => Baseline::default(),
    };
    let probe = checks::Probe {
        resolver: Arc::new(resolver),
        snapshot: Arc::new(snapshot),
        owned: options.owned.clone(),
        port: config.resolver.upstream_port,
        ns_timeout: if options.ns_timeout.is_zero() {
            Duration::from_millis(config.resolver.timeout_ms.clamp(500, 5000))
        } else {
            options.ns_timeout
        },
        validating: config.resolver.dnssec == crate::config::DnssecMode::Validate,
    };
    let jobs: Vec<_> = inventory
        .entries
        .iter()
        .map(|e| audit_one(&probe, e, old.names.get(&e.name), on_name))
        .collect();
    let mut names: Vec<NameReport> = futures_util::stream::iter(jobs)
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    names.sort_by_key(|n| n.line);
    if let Some(path) = &options.baseline {
        let mut next: BTreeMap<String, NameState> = BTreeMap::new();
        for n in &names {
            // A name that does not resolve now keeps its last known state, so one bad run
            // does not erase what drift is measured against.
            let state = n.state.clone().or_else(|| old.names.get(&n.name).cloned());
            if let Some(s) = state {
                next.insert(n.name.clone(), s);
            }
        }
        Baseline {
            written: started.clone(),
            names: next,
        }
        .write(path)
        .map_err(|source| AuditError::Baseline {
            path: path.clone(),
            source,
        })?;
    }
    Ok(AuditReport {
        started,
        names,
        inventory_problems: inventory.problems.clone(),
    })
}

async fn audit_one(
    probe: &checks::Probe,
    e: &InventoryEntry,
    old: Option<&NameState>,
    on_name: &(dyn Fn(&NameReport) + Sync),
) -> NameReport {
    let r = probe.audit(e, old).await;
    on_name(&r);
    r
}
