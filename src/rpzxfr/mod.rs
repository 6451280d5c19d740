//! RPZ zone transfer: `[[rpz]]` zones received from a primary (`secondary`), and the local
//! policy served to a fleet as an RPZ zone (`primary`).
//!
//! - `config.rs`: the config tables and their checks.
//! - `tsig.rs`: BIND-format key files; signing the later messages of a transfer.
//! - `transfer.rs`: one AXFR/IXFR as a client, bounded and TSIG-checked.
//! - `zone.rs`: a received zone, IXFR differences, its copy on disk (read by `policy::rpz`).
//! - `secondary.rs`: the refresh/retry/expire loop and the NOTIFY listener.
//! - `export.rs`: the compiled policy as RPZ entries.
//! - `primary.rs`: the AXFR/IXFR/SOA server, serials, history, NOTIFY.
//! - `metrics.rs`: counters and gauges for `/metrics`.
//!
//! Dependency rule: this module uses `policy` (the reload path, the list parser) and `config`;
//! nothing on the answer path uses it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

pub mod config;
pub mod export;
pub mod metrics;
pub mod primary;
pub mod secondary;
pub mod transfer;
pub mod tsig;
pub mod zone;

use crate::policy::reload::PolicyStore;

/// The transfer tasks of one running dnsward.
#[derive(Default)]
pub struct Rpz {
    secondaries: Vec<secondary::SecondaryTasks>,
    server: Option<primary::RpzServer>,
}

#[derive(Debug, thiserror::Error)]
pub enum RpzError {
    #[error(transparent)]
    Secondary(#[from] secondary::SecondaryError),
    #[error(transparent)]
    Server(#[from] primary::ServerError),
}

/// What `Rpz::start` needs of the config: its two tables, where relative paths start, and
/// how the policy's default action reads as RPZ.
pub struct RpzSetup<'a> {
    pub secondaries: &'a [config::RpzConfig],
    pub server: Option<&'a config::RpzServerConfig>,
    pub base_dir: &'a Path,
    pub export: export::ExportSettings,
}

impl Rpz {
    pub async fn start(
        setup: RpzSetup<'_>,
        policy: &Arc<PolicyStore>,
        metrics: &metrics::RpzMetrics,
    ) -> Result<Rpz, RpzError> {
        let mut rpz = Rpz::default();
        for r in setup.secondaries {
            let policy = Arc::clone(policy);
            let secondary =
                secondary::Secondary::start(r, setup.base_dir, policy, metrics.clone()).await?;
            rpz.secondaries.push(secondary);
        }
        if let Some(s) = setup.server {
            let policy = Arc::clone(policy);
            let server = primary::RpzServer::start(s, &setup, policy, metrics.clone()).await?;
            rpz.server = Some(server);
        }
        Ok(rpz)
    }

    /// The `[rpz_server]` address (bound; useful with port 0).
    pub fn server_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|s| s.addr)
    }

    /// The NOTIFY listeners of the `[[rpz]]` zones, in config order.
    pub fn notify_addrs(&self) -> Vec<Option<SocketAddr>> {
        self.secondaries.iter().map(|s| s.notify_addr).collect()
    }

    pub fn stop(&self) {
        for s in &self.secondaries {
            s.abort();
        }
        if let Some(s) = &self.server {
            s.abort();
        }
    }
}
