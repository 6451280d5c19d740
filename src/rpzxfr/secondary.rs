//! `[[rpz]]`: one task per received zone. AXFR when we hold no copy, IXFR from our serial on
//! NOTIFY and on the SOA refresh timer, the SOA retry after a failure; the copy on disk is
//! rewritten and the policy reloaded (the one reload path: atomic swap, no query dropped).
//!
//! Past the SOA expire without reaching the primary, the zone is reported expired (log,
//! metric) but stays in force: dropping protection because the primary is down is the failure
//! this feature exists to avoid.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Name;
use tokio::net::UdpSocket;
use tokio::sync::Notify;

use super::config::RpzConfig;
use super::metrics::{RpzMetrics, ZoneLabel};
use super::transfer::{self, Limits, Outcome, XfrError};
use super::tsig::TsigKey;
use super::zone::{ZoneData, ZoneError};
use crate::policy::reload::PolicyStore;

/// Bounds on the SOA timers, whatever the primary says.
const MIN_REFRESH: Duration = Duration::from_secs(1);
const MAX_REFRESH: Duration = Duration::from_secs(86_400);
/// Retry before we know the primary's SOA.
const FIRST_RETRY: Duration = Duration::from_secs(10);

pub struct Secondary {
    pub list: String,
    zone: Name,
    primary: SocketAddr,
    key: Option<TsigKey>,
    path: PathBuf,
    limits: Limits,
    policy: Arc<PolicyStore>,
    metrics: RpzMetrics,
}

/// The running tasks of one `[[rpz]]`.
pub struct SecondaryTasks {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Where NOTIFY is accepted (the bound address, useful with port 0).
    pub notify_addr: Option<SocketAddr>,
}

impl SecondaryTasks {
    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecondaryError {
    #[error("rpz {list}: {source}")]
    Key {
        list: String,
        source: super::tsig::TsigError,
    },
    #[error("rpz {list}: cannot listen for NOTIFY on {addr}: {source}")]
    Bind {
        list: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("rpz {list}: {why}")]
    Zone {
        list: String,
        #[source]
        why: super::config::ZoneNameError,
    },
}

impl Secondary {
    pub async fn start(
        cfg: &RpzConfig,
        base_dir: &std::path::Path,
        policy: Arc<PolicyStore>,
        metrics: RpzMetrics,
    ) -> Result<SecondaryTasks, SecondaryError> {
        let list = cfg.list_name();
        let key =
            match &cfg.tsig_key_file {
                Some(p) => Some(TsigKey::load(&base_dir.join(p)).map_err(|source| {
                    SecondaryError::Key {
                        list: list.clone(),
                        source,
                    }
                })?),
                None => None,
            };
        let zone = super::config::zone_name(&cfg.zone).map_err(|why| SecondaryError::Zone {
            list: list.clone(),
            why,
        })?;
        let wake = Arc::new(Notify::new());
        let mut tasks = Vec::new();
        let mut notify_addr = None;
        if let Some(addr) = cfg.notify_listen {
            let sock = UdpSocket::bind(addr)
                .await
                .map_err(|source| SecondaryError::Bind {
                    list: list.clone(),
                    addr,
                    source,
                })?;
            notify_addr = sock.local_addr().ok();
            let allow = if cfg.allow_notify.is_empty() {
                vec![ipnet::IpNet::from(cfg.primary.ip())]
            } else {
                cfg.allow_notify.clone()
            };
            tasks.push(tokio::spawn(listen_notify(
                sock,
                allow,
                zone.clone(),
                list.clone(),
                Arc::clone(&wake),
            )));
        }
        let me = Secondary {
            list,
            zone,
            primary: cfg.primary,
            key,
            path: cfg.zone_path(base_dir),
            limits: Limits::new(cfg.max_records),
            policy,
            metrics,
        };
        tasks.push(tokio::spawn(me.run(wake)));
        Ok(SecondaryTasks { tasks, notify_addr })
    }

    async fn run(self, wake: Arc<Notify>) {
        let mut copy = match ZoneData::load(&self.path, &self.zone) {
            Ok(z) => {
                tracing::info!(list = %self.list, serial = z.serial(), path = %self.path.display(), "rpz: using the copy on disk until the primary answers");
                Some(z)
            }
            Err(ZoneError::Read { .. }) => None,
            Err(e) => {
                tracing::warn!(list = %self.list, "rpz: the copy on disk is unusable ({e}); asking for the whole zone");
                None
            }
        };
        if let Some(z) = &copy {
            self.set_serial(z.serial());
        }
        let mut last_contact = Instant::now();
        let mut expired = false;
        loop {
            let wait = match self.refresh(&mut copy).await {
                Ok(()) => {
                    last_contact = Instant::now();
                    if expired {
                        expired = false;
                        self.expired_gauge(0);
                    }
                    copy.as_ref().map_or(FIRST_RETRY, |z| secs(z.soa.refresh))
                }
                Err(e) => {
                    tracing::error!(list = %self.list, primary = %self.primary, "rpz: {e}; the last good copy stays in force");
                    self.metrics.transfer(&self.list, e.label());
                    if let Some(z) = &copy {
                        if !expired && last_contact.elapsed() > secs(z.soa.expire) {
                            expired = true;
                            self.expired_gauge(1);
                            tracing::error!(list = %self.list, serial = z.serial(), "rpz: zone expired (primary unreachable longer than the SOA expire); still enforcing the last good copy");
                        }
                    }
                    copy.as_ref().map_or(FIRST_RETRY, |z| secs(z.soa.retry))
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {
                    tracing::info!(list = %self.list, "rpz: NOTIFY from the primary; checking");
                }
            }
        }
    }

    /// One check: IXFR from our serial (AXFR without a copy), applied, written, reloaded.
    async fn refresh(&self, copy: &mut Option<ZoneData>) -> Result<(), RefreshError> {
        let have = copy.as_ref().map(|z| z.soa.clone());
        let key = self.key.as_ref();
        let outcome =
            match transfer::transfer(self.primary, &self.zone, have.as_ref(), key, self.limits)
                .await
            {
                // An IXFR we cannot read (a difference chain that does not start at our serial,
                // say) is asked for again as AXFR, once, rather than failing at every refresh.
                Err(e @ XfrError::Malformed(..)) if have.is_some() => {
                    tracing::warn!(list = %self.list, "rpz: {e}; asking for the whole zone");
                    self.metrics.transfer(&self.list, e.label());
                    let mut fresh = None;
                    let r = Box::pin(self.refresh(&mut fresh)).await;
                    if fresh.is_some() {
                        *copy = fresh;
                    }
                    return r;
                }
                r => r?,
            };
        let (next, kind) = match outcome {
            Outcome::UpToDate => {
                self.metrics.transfer(&self.list, "uptodate");
                return Ok(());
            }
            Outcome::Full {
                soa,
                soa_ttl,
                records,
            } => {
                let mut z = ZoneData::new(self.zone.clone(), soa, soa_ttl);
                for r in &records {
                    z.insert(r);
                }
                (z, "axfr")
            }
            Outcome::Incremental { diffs } => {
                // Applied in place (a zone of millions of records is not cloned per change);
                // each difference undoes itself when it does not fit, and on any failure the
                // copy is read back from disk, which is what the policy in force was built from.
                let Some(mut z) = copy.take() else {
                    return Err(RefreshError::Mismatch("an IXFR without a copy".into()));
                };
                let applied = diffs
                    .iter()
                    .try_for_each(|(d, soa)| z.apply(d, soa.clone()));
                match applied {
                    Ok(()) => (z, "ixfr"),
                    Err(e) => {
                        tracing::warn!(list = %self.list, "rpz: {e}; asking for the whole zone");
                        self.metrics.transfer(&self.list, "mismatch");
                        let mut fresh = None;
                        let r = Box::pin(self.refresh(&mut fresh)).await;
                        *copy = fresh.or_else(|| ZoneData::load(&self.path, &self.zone).ok());
                        return r;
                    }
                }
            }
        };
        let from = have.as_ref().map(|s| s.serial);
        self.install(next, kind, from, copy).await
    }

    async fn install(
        &self,
        next: ZoneData,
        kind: &'static str,
        from: Option<u32>,
        copy: &mut Option<ZoneData>,
    ) -> Result<(), RefreshError> {
        let path = self.path.clone();
        let (written, next) = tokio::task::spawn_blocking(move || (next.write(&path), next))
            .await
            .map_err(|e| RefreshError::Write(e.to_string()))?;
        written.map_err(|e| RefreshError::Write(e.to_string()))?;
        tracing::info!(list = %self.list, kind, from = ?from, serial = next.serial(), records = next.records.len(), "rpz: zone updated");
        self.set_serial(next.serial());
        self.metrics.transfer(&self.list, kind);
        *copy = Some(next);
        self.policy
            .reload(&format!("rpz {} transferred", self.list))
            .await;
        Ok(())
    }

    fn set_serial(&self, serial: u32) {
        self.metrics
            .serial
            .get_or_create(&ZoneLabel {
                zone: self.list.clone(),
            })
            .set(serial as i64);
    }

    fn expired_gauge(&self, v: i64) {
        self.metrics
            .expired
            .get_or_create(&ZoneLabel {
                zone: self.list.clone(),
            })
            .set(v);
    }
}

#[derive(Debug, thiserror::Error)]
enum RefreshError {
    #[error(transparent)]
    Xfr(#[from] XfrError),
    #[error("the IXFR does not fit our copy: {0}")]
    Mismatch(String),
    #[error("cannot keep the zone on disk: {0}")]
    Write(String),
}

impl RefreshError {
    fn label(&self) -> &'static str {
        match self {
            RefreshError::Xfr(e) => e.label(),
            RefreshError::Mismatch(_) => "mismatch",
            RefreshError::Write(_) => "write",
        }
    }
}

fn secs(v: i32) -> Duration {
    Duration::from_secs(v.max(0) as u64).clamp(MIN_REFRESH, MAX_REFRESH)
}

/// Answers NOTIFY for `zone` from `allow` (the primary's address by default; RFC 1996) and wakes the refresh
/// task. Anything else is ignored: a NOTIFY only makes us ask the primary, over the
/// (TSIG-checked) transfer, so a forged one costs at most one SOA round.
async fn listen_notify(
    sock: UdpSocket,
    allow: Vec<ipnet::IpNet>,
    zone: Name,
    list: String,
    wake: Arc<Notify>,
) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        if !allow.iter().any(|n| n.contains(&peer.ip())) {
            tracing::warn!(%list, %peer, "rpz: NOTIFY from an address outside allow_notify ignored");
            continue;
        }
        let Ok(m) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let for_zone = m
            .queries
            .first()
            .is_some_and(|q| q.name().to_lowercase() == zone);
        if m.metadata.op_code != OpCode::Notify
            || m.metadata.message_type != MessageType::Query
            || !for_zone
        {
            continue;
        }
        let mut resp = Message::response(m.metadata.id, OpCode::Notify);
        resp.metadata.authoritative = true;
        resp.metadata.response_code = ResponseCode::NoError;
        resp.add_queries(m.queries.clone());
        if let Ok(bytes) = resp.to_vec() {
            let _ = sock.send_to(&bytes, peer).await;
        }
        wake.notify_one();
    }
}
