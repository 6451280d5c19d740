//! One running dnsward: config -> upstream -> engine -> listeners. Used by `dnsward serve` and by
//! the integration tests, so both run exactly the same code.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::admin::api::{AdminError, AdminServer};
use crate::alerts::Alerts;
use crate::blockpage::BlockpageServer;
use crate::config::{Config, Mode};
use crate::dnssec::DnssecError;
use crate::feeds::{FeedError, FeedSpec, Feeds};
use crate::pipeline::ddr::Ddr;
use crate::pipeline::record::Recorder;
use crate::pipeline::Engine;
use crate::policy::reload::PolicyStore;
use crate::policy::runtime::{RuntimeList, RuntimeListError};
use crate::querylog::{QueryLog, QueryLogError};
use crate::resolver::roots::RootHintsError;
use crate::resolver::Resolver;
use crate::rpzxfr::RpzError;
use crate::server::encrypted::{Encrypted, EncryptedError};
use crate::server::tls::CertStore;
use crate::server::{Server, ServerError};
use crate::upstream::forward::ForwardUpstream;
use crate::upstream::Upstream;

pub struct Instance {
    pub engine: Arc<Engine>,
    server: Server,
    grace: Duration,
    watch: Option<tokio::task::JoinHandle<()>>,
    evictor: tokio::task::JoinHandle<()>,
    admin: Option<AdminServer>,
    expiry: Option<tokio::task::JoinHandle<()>>,
    encrypted: Option<Encrypted>,
    blockpage: Option<BlockpageServer>,
    feeds: Option<Arc<Feeds>>,
    rpz: crate::rpzxfr::Rpz,
    alerts: Option<Arc<Alerts>>,
    audit: Option<tokio::task::JoinHandle<()>>,
    events: Option<tokio::task::JoinHandle<()>>,
}

/// Why an instance did not start: the part that failed, with its own error.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    #[error("resolver.trust_anchor: {0}")]
    TrustAnchor(#[source] DnssecError),
    #[error(transparent)]
    RootHints(#[from] RootHintsError),
    #[error(transparent)]
    RuntimeList(#[from] RuntimeListError),
    #[error(transparent)]
    Feeds(#[from] FeedError),
    #[error("{what} crashed: {source}")]
    Crashed {
        what: &'static str,
        source: tokio::task::JoinError,
    },
    /// The alerts' own error (`Alerts::new`), whatever its type.
    #[error("{0}")]
    Alerts(Box<dyn std::error::Error + Send + Sync>),
    #[error("query log: {0}")]
    QueryLog(#[source] QueryLogError),
    #[error(transparent)]
    Server(#[from] ServerError),
    /// DoT/DoH or the block page (their listeners and certificates).
    #[error(transparent)]
    Encrypted(#[from] EncryptedError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Boxed: by far the largest of these errors.
    #[error(transparent)]
    Rpz(Box<RpzError>),
}

impl Instance {
    /// Starts serving on every configured address. Must run inside a tokio runtime.
    pub async fn start(config: &Config) -> Result<Instance, InstanceError> {
        let upstream = upstream_from_config(config)?;
        // The admin API's runtime list must exist before the lists load (it is one of them).
        let runtime = match config.runtime_list_files() {
            files if files.is_empty() => None,
            files => Some(Arc::new(RuntimeList::open_scoped(&files)?)),
        };
        // The runtime allow list's file too (the admin API keeps it), so the first load finds it.
        if let Some(p) = config.runtime_allow_path() {
            RuntimeList::open(&p)?;
        }
        let (policy, feed_specs) = load_policy(config).await?;
        let feeds = match feed_specs.is_empty() {
            true => None,
            false => Some(Feeds::start(
                &config.feeds,
                feed_specs,
                Arc::clone(&policy),
            )?),
        };
        let events = crate::events::spawn_switcher(config.clone(), Arc::clone(&policy));
        let watch = (config.policy.watch && !config.lists.is_empty())
            .then(|| policy.spawn_watch(Duration::from_secs(config.policy.watch_interval_secs)));
        // The alerts read the query-event stream as one more consumer of the query log's bus.
        let alerts =
            crate::alerts::Alerts::new(config).map_err(|e| InstanceError::Alerts(e.into()))?;
        let (log, recorder) = start_log(config, &alerts, runtime.clone(), &policy).await?;
        let engine = Arc::new(Engine::new(config, upstream, policy, recorder));
        let evictor = spawn_evictor(Arc::clone(&engine));
        let (server, encrypted, blockpage) = start_listeners(config, &engine).await?;
        let certs: Vec<Arc<CertStore>> = encrypted
            .iter()
            .map(|e| Arc::clone(&e.certs))
            .chain(blockpage.iter().filter_map(|b| b.certs.clone()))
            .collect();
        let admin = match &config.admin {
            Some(a) => Some(
                AdminServer::start(
                    config,
                    a,
                    Arc::clone(&engine),
                    runtime.clone(),
                    certs,
                    feeds.clone(),
                    alerts.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let rpz = crate::rpzxfr::Rpz::start(
            config.rpz_setup(),
            engine.policy(),
            &engine.recorder.metrics.rpz,
        )
        .await
        .map_err(|e| InstanceError::Rpz(Box::new(e)))?;
        if let Some(a) = &alerts {
            a.start(log, feeds.clone());
        }
        let audit = spawn_audit(config, alerts.clone());
        // Runtime entries past their expiry drop out on their own.
        let expiry = runtime
            .clone()
            .map(|rt| spawn_expiry(rt, Arc::clone(&engine)));
        Ok(Instance {
            engine,
            server,
            grace: Duration::from_millis(config.server.shutdown_grace_ms),
            watch,
            evictor,
            admin,
            expiry,
            encrypted,
            blockpage,
            feeds,
            rpz,
            alerts,
            audit,
            events,
        })
    }

    /// The remote lists, when the config has any.
    pub fn feeds(&self) -> Option<&Arc<Feeds>> {
        self.feeds.as_ref()
    }

    /// RPZ transfer in and out: the `[rpz_server]` address, the NOTIFY listeners.
    pub fn rpz(&self) -> &crate::rpzxfr::Rpz {
        &self.rpz
    }

    /// The alerts, when the config has `[[alerts]]`.
    pub fn alerts(&self) -> Option<&Arc<crate::alerts::Alerts>> {
        self.alerts.as_ref()
    }

    /// The admin listener's address, when `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// The bound DoT and DoH addresses.
    pub fn dot_addrs(&self) -> &[SocketAddr] {
        self.encrypted.as_ref().map_or(&[], |e| &e.dot_addrs)
    }
    pub fn doh_addrs(&self) -> &[SocketAddr] {
        self.encrypted.as_ref().map_or(&[], |e| &e.doh_addrs)
    }

    /// The block page's HTTP and HTTPS addresses.
    pub fn blockpage_addrs(&self) -> (&[SocketAddr], &[SocketAddr]) {
        self.blockpage
            .as_ref()
            .map_or((&[], &[]), |b| (&b.addrs, &b.https_addrs))
    }

    /// Re-reads the TLS certificates (DoT/DoH and the block page); a bad file keeps the
    /// current certificate and is logged. Open connections are not touched.
    pub fn reload_tls(&self) {
        let stores = self
            .encrypted
            .iter()
            .map(|e| &e.certs)
            .chain(self.blockpage.iter().filter_map(|b| b.certs.as_ref()));
        for store in stores {
            if let Err(e) = store.reload() {
                tracing::error!("{e}; keeping the current certificate");
            }
        }
    }

    /// The bound addresses (useful with port 0).
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.server.addrs
    }

    /// Rebuilds the policy from the list files and swaps it in (SIGHUP, admin API).
    pub async fn reload_lists(&self, reason: &str) -> crate::policy::LoadReport {
        self.engine.policy().reload(reason).await
    }

    /// Stops accepting, finishes in-flight queries (bounded), logs the cache figures.
    pub async fn shutdown(self) {
        if let Some(w) = &self.watch {
            w.abort();
        }
        self.evictor.abort();
        if let Some(a) = &self.audit {
            a.abort();
        }
        if let Some(e) = &self.events {
            e.abort();
        }
        if let Some(f) = &self.feeds {
            f.stop();
        }
        self.rpz.stop();
        if let Some(e) = &self.expiry {
            e.abort();
        }
        if let Some(a) = self.admin {
            a.shutdown().await;
        }
        if let Some(b) = self.blockpage {
            b.shutdown(self.grace).await;
        }
        if let Some(e) = self.encrypted {
            e.shutdown(self.grace).await;
        }
        self.server.shutdown(self.grace).await;
        // Every answered query's event reaches the sinks before we exit.
        self.engine.recorder.log().shutdown().await;
        if let Some(a) = &self.alerts {
            a.shutdown().await;
        }
        let c = self.engine.cache().stats();
        let r = self.engine.resolve_stats();
        tracing::info!(
            cache_hits = c.hits,
            cache_misses = c.misses,
            cache_entries = c.entries,
            stale_served = c.stale_served,
            upstream_queries = r.upstream_queries,
            upstream_failures = r.upstream_failures,
            coalesced = r.coalesced,
            "stopped"
        );
    }
}

/// The upstream the config asks for: dnsward's own resolver from the root hints, or the
/// forwarders; either validates with `dnssec = "validate"`.
pub(crate) fn upstream_from_config(config: &Config) -> Result<Arc<dyn Upstream>, InstanceError> {
    let validator = crate::resolver::validator_from_config(&config.resolver, &config.base_dir)
        .map_err(InstanceError::TrustAnchor)?;
    let upstream: Arc<dyn Upstream> = match config.resolver.mode {
        Mode::Recursive => {
            let roots = config.root_addresses()?;
            Arc::new(Resolver::new(&roots, &config.resolver, validator))
        }
        Mode::Forward => Arc::new(ForwardUpstream::new(
            config.resolver.forwarders.clone(),
            Duration::from_millis(config.resolver.timeout_ms),
            validator,
        )),
    };
    Ok(upstream)
}

/// The policy's first snapshot. Feeds first: the cached copy (or the shipped snapshot) is the
/// list the policy loads now; downloads happen in the background once serving starts (see
/// src/feeds). Then every list loads before serving starts (a list that fails is reported and
/// skipped), with the groups of the `[[events]]` windows open now. Returns the feeds to start.
async fn load_policy(config: &Config) -> Result<(Arc<PolicyStore>, Vec<FeedSpec>), InstanceError> {
    let feed_specs = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let cache_dir = config.resolve_path(&config.feeds.cache_dir);
            crate::feeds::prepare(config.feed_specs(), &cache_dir)
        })
        .await
        .map_err(|source| InstanceError::Crashed {
            what: "preparing the feeds",
            source,
        })??
    };
    let specs = config.list_specs();
    let groups = crate::events::groups_at(config, crate::timefmt::now_us());
    let (policy, _report) =
        tokio::task::spawn_blocking(move || PolicyStore::load_grouped(specs, groups))
            .await
            .map_err(|source| InstanceError::Crashed {
                what: "loading lists",
                source,
            })?;
    Ok((policy, feed_specs))
}

/// The query log (when `[querylog]` or the alerts want the events) and the recorder that
/// gives it every query's event.
async fn start_log(
    config: &Config,
    alerts: &Option<Arc<Alerts>>,
    runtime: Option<Arc<RuntimeList>>,
    policy: &PolicyStore,
) -> Result<(QueryLog, Recorder), InstanceError> {
    let log = match (&config.querylog, alerts) {
        (None, None) => QueryLog::disabled(),
        (q, a) => QueryLog::start_with(q.as_ref(), a.as_ref().map(|a| a.consumer()))
            .await
            .map_err(InstanceError::QueryLog)?,
    };
    let mut recorder = match (&config.querylog, alerts) {
        (None, None) => Recorder::disabled(),
        (q, _) => Recorder::new(
            log.clone(),
            &config.instance_name(),
            q.as_ref().is_some_and(|q| q.dnstap.is_some()),
        ),
    };
    recorder.runtime = runtime;
    recorder.keep_servfail_wire = alerts.as_ref().is_some_and(|a| a.wants_servfail_wire());
    recorder.count_groups(&policy.snapshot());
    Ok((log, recorder))
}

/// The DNS listeners: UDP and TCP, DoT and DoH (DDR announces the ports actually bound, so it
/// is set only once they are), and the block page.
async fn start_listeners(
    config: &Config,
    engine: &Arc<Engine>,
) -> Result<(Server, Option<Encrypted>, Option<BlockpageServer>), InstanceError> {
    let server = Server::start(config, Arc::clone(engine)).await?;
    let encrypted = Encrypted::start(config, Arc::clone(engine)).await?;
    if let Some(enc) = &encrypted {
        if let Some(ddr) = Ddr::new(
            enc.certs.dns_name().as_deref(),
            &enc.dot_addrs,
            &enc.doh_addrs,
        ) {
            let _ = engine.ddr.set(ddr);
        }
    }
    let blockpage = BlockpageServer::start(config, Arc::clone(engine.policy())).await?;
    Ok((server, encrypted, blockpage))
}

/// Every 30 s, the admission's per-client state idle for a minute is dropped.
fn spawn_evictor(engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(30));
        loop {
            tick.tick().await;
            engine.admission.evict_idle(Duration::from_secs(60));
        }
    })
}

/// `[audit]`: the audit on a schedule; new critical findings go to the `audit` rules.
fn spawn_audit(
    config: &Config,
    alerts: Option<Arc<Alerts>>,
) -> Option<tokio::task::JoinHandle<()>> {
    crate::audit::spawn_schedule(config.clone(), move |report| {
        if let Some(a) = &alerts {
            a.audit_report(report);
        }
    })
}

/// Every second, the runtime entries past their expiry are dropped and the policy reloaded.
fn spawn_expiry(rt: Arc<RuntimeList>, engine: Arc<Engine>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            match rt.expire(crate::timefmt::now_us()) {
                Ok(gone) if !gone.is_empty() => {
                    for g in &gone {
                        tracing::info!(name = %g.name, "runtime entry expired ({})", g.describe());
                    }
                    engine.policy().reload("runtime entries expired").await;
                }
                Ok(_) => {}
                Err(e) => tracing::error!("runtime list: {e}"),
            }
        }
    })
}
