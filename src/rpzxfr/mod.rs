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

impl Rpz {
    pub async fn start(
        config: &crate::config::Config,
        policy: &Arc<PolicyStore>,
        metrics: &metrics::RpzMetrics,
    ) -> Result<Rpz, RpzError> {
        let mut rpz = Rpz::default();
        for r in &config.rpz {
            rpz.secondaries.push(
                secondary::Secondary::start(r, config, Arc::clone(policy), metrics.clone()).await?,
            );
        }
        if let Some(s) = &config.rpz_server {
            rpz.server = Some(
                primary::RpzServer::start(s, config, Arc::clone(policy), metrics.clone()).await?,
            );
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
