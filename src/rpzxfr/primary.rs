//! `[rpz_server]`: the compiled local policy served as an RPZ zone. AXFR and IXFR over TCP
//! (streamed, `RECORDS_PER_MESSAGE` records a message, so millions of entries never make one
//! message or one buffer), SOA over UDP and TCP; refused outside `allow_transfer` and, with a
//! key, without a good TSIG. A watcher recompiles the zone after every policy reload; a change
//! bumps the serial, keeps the difference for IXFR (the last `ixfr_history` of them; an older
//! serial gets the whole zone) and sends NOTIFY to every `notify` address.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigResponseContext};
use ipnet::IpNet;
use parking_lot::RwLock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::config::RpzServerConfig;
use super::export::{diff, entry_records, Entries, EntryList, ExportSettings, Exporter};
use super::metrics::RpzMetrics;
use super::tsig::{sign_subsequent, TsigError, TsigKey};
use super::zone::serial_newer;
use crate::policy::reload::PolicyStore;
use crate::timefmt::unix_now;

/// Records per AXFR/IXFR message: owners are at most 255 bytes, so a message stays well under
/// 64 KiB whatever the names.
const RECORDS_PER_MESSAGE: usize = 200;
/// Open transfer connections at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;
/// A connection that sends no request for this long is closed.
const IDLE: Duration = Duration::from_secs(10);
/// Writing one message must not take longer (a secondary that stops reading).
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Entries kept in the IXFR history in total, whatever `ixfr_history` says.
const MAX_HISTORY_ENTRIES: usize = 2_000_000;
/// TTL of every record served.
const TTL: u32 = 60;
/// How often the watcher looks for a policy reload.
const WATCH_EVERY: Duration = Duration::from_millis(250);

/// One change of the zone.
struct Change {
    from: u32,
    to: u32,
    removed: EntryList,
    added: EntryList,
}

/// What is served now; replaced as a whole on every change.
struct Served {
    serial: u32,
    entries: Arc<Entries>,
    history: Arc<VecDeque<Arc<Change>>>,
}

struct Shared {
    zone: Name,
    allow: Vec<IpNet>,
    key: Option<TsigKey>,
    settings: ExportSettings,
    now: RwLock<Arc<Served>>,
    metrics: RpzMetrics,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("rpz_server: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("rpz_server: {0}")]
    Zone(#[from] super::config::ZoneNameError),
    #[error("rpz_server: {0}")]
    Key(#[from] super::tsig::TsigError),
    #[error("rpz_server: compiling the zone crashed: {0}")]
    Crashed(#[source] tokio::task::JoinError),
}

pub struct RpzServer {
    /// The bound TCP (and UDP) address.
    pub addr: SocketAddr,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RpzServer {
    pub async fn start(
        cfg: &RpzServerConfig,
        setup: &super::RpzSetup<'_>,
        policy: Arc<PolicyStore>,
        metrics: RpzMetrics,
    ) -> Result<RpzServer, ServerError> {
        let zone = super::config::zone_name(&cfg.zone)?;
        let key = match &cfg.tsig_key_file {
            Some(p) => Some(TsigKey::load(&setup.base_dir.join(p))?),
            None => None,
        };
        let mut exporter = Exporter::new(setup.export);
        let specs = policy.specs().to_vec();
        let (entries, exporter) =
            tokio::task::spawn_blocking(move || (exporter.compile(&specs), exporter))
                .await
                .map_err(ServerError::Crashed)?;
        // Unix time as the first serial: it grows across restarts without state on disk.
        let serial = unix_now() as u32;
        tracing::info!(zone = %zone, serial, entries = entries.len(), "rpz server: zone compiled");
        metrics.served_serial.set(serial as i64);
        let shared = Arc::new(Shared {
            zone,
            allow: cfg.allow_transfer.clone(),
            key,
            settings: setup.export,
            now: RwLock::new(Arc::new(Served {
                serial,
                entries: Arc::new(entries),
                history: Arc::new(VecDeque::new()),
            })),
            metrics,
        });
        let bind_err = |source| ServerError::Bind {
            addr: cfg.listen,
            source,
        };
        let tcp = TcpListener::bind(cfg.listen).await.map_err(bind_err)?;
        let addr = tcp.local_addr().map_err(bind_err)?;
        let udp = UdpSocket::bind(addr).await.map_err(bind_err)?;
        tracing::info!(%addr, zone = %shared.zone, "rpz server listening (AXFR/IXFR over TCP, SOA over UDP)");
        let tasks = vec![
            tokio::spawn(accept_loop(tcp, Arc::clone(&shared))),
            tokio::spawn(udp_loop(udp, Arc::clone(&shared))),
            tokio::spawn(watch(
                policy,
                exporter,
                shared,
                cfg.notify.clone(),
                cfg.ixfr_history,
                addr.ip(),
            )),
        ];
        Ok(RpzServer { addr, tasks })
    }

    pub fn abort(&self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Recompiles after each policy reload; a change becomes a new serial, a history entry and
/// NOTIFY.
async fn watch(
    policy: Arc<PolicyStore>,
    mut exporter: Exporter,
    shared: Arc<Shared>,
    notify: Vec<SocketAddr>,
    keep: usize,
    source_ip: IpAddr,
) {
    let mut seen = policy.reloads();
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let reloads = policy.reloads();
        if reloads == seen {
            continue;
        }
        seen = reloads;
        let specs = policy.specs().to_vec();
        let old = Arc::clone(&shared.now.read().entries);
        let compiled = tokio::task::spawn_blocking(move || {
            let entries = exporter.compile(&specs);
            let d = diff(&old, &entries);
            (entries, exporter, d)
        })
        .await;
        let (entries, (removed, added)) = match compiled {
            Ok((entries, ex, d)) => {
                exporter = ex;
                (entries, d)
            }
            Err(e) => {
                // The next reload starts afresh (the last-good cache of each list is lost).
                tracing::error!(
                    "rpz server: compiling the zone crashed ({e}); serving the previous one"
                );
                exporter = Exporter::new(shared.settings);
                continue;
            }
        };
        if removed.is_empty() && added.is_empty() {
            continue;
        }
        let serial = {
            let mut now = shared.now.write();
            let from = now.serial;
            let t = unix_now() as u32;
            let to = if serial_newer(t, from) {
                t
            } else {
                from.wrapping_add(1)
            };
            let mut history: VecDeque<Arc<Change>> = (*now.history).clone();
            history.push_back(Arc::new(Change {
                from,
                to,
                removed,
                added,
            }));
            let mut total: usize = history
                .iter()
                .map(|c| c.removed.len() + c.added.len())
                .sum();
            while history.len() > keep || (total > MAX_HISTORY_ENTRIES && history.len() > 1) {
                if let Some(c) = history.pop_front() {
                    total -= c.removed.len() + c.added.len();
                }
            }
            *now = Arc::new(Served {
                serial: to,
                entries: Arc::new(entries),
                history: Arc::new(history),
            });
            to
        };
        shared.metrics.served_serial.set(serial as i64);
        tracing::info!(zone = %shared.zone, serial, "rpz server: zone changed; notifying {} secondaries", notify.len());
        for target in &notify {
            tokio::spawn(send_notify(
                *target,
                source_ip,
                shared.zone.clone(),
                soa_record(&shared, serial),
                shared.metrics.clone(),
            ));
        }
    }
}

/// NOTIFY (RFC 1996) from our listen address, so secondaries that check the source accept it;
/// retried three times a second apart until answered.
async fn send_notify(
    target: SocketAddr,
    source_ip: IpAddr,
    zone: Name,
    soa: Record,
    metrics: RpzMetrics,
) {
    let bind = SocketAddr::new(
        if target.is_ipv4() == source_ip.is_ipv4() {
            source_ip
        } else if target.is_ipv4() {
            IpAddr::from([0, 0, 0, 0])
        } else {
            IpAddr::from([0u16; 8])
        },
        0,
    );
    let Ok(sock) = UdpSocket::bind(bind).await else {
        tracing::warn!(%target, "rpz server: cannot open a socket for NOTIFY");
        return;
    };
    let mut m = Message::new(rand::random(), MessageType::Query, OpCode::Notify);
    m.metadata.authoritative = true;
    m.add_query(hickory_proto::op::Query::query(
        zone.clone(),
        RecordType::SOA,
    ));
    // RFC 1996 3.7: the new SOA may ride along (secondaries still ask the primary).
    m.add_answer(soa);
    let Ok(bytes) = m.to_vec() else { return };
    let mut buf = [0u8; 512];
    for _ in 0..3 {
        if sock.send_to(&bytes, target).await.is_err() {
            break;
        }
        if let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await
        {
            if Message::from_vec(&buf[..n]).is_ok_and(|r| r.metadata.id == m.metadata.id) {
                metrics.served("notify_sent");
                return;
            }
        }
    }
    tracing::warn!(%target, %zone, "rpz server: NOTIFY not answered");
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok((conn, peer)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, "rpz server: too many transfer connections; closed");
            continue;
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(e) = serve_conn(conn, peer, &shared).await {
                tracing::debug!(%peer, "rpz server: connection ended: {e}");
            }
            drop(permit);
        });
    }
}

async fn serve_conn(mut conn: TcpStream, peer: SocketAddr, shared: &Shared) -> std::io::Result<()> {
    let mut buf = vec![0u8; 65_535];
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(IDLE, conn.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => return Ok(()),
        }
        let len = u16::from_be_bytes(len) as usize;
        tokio::time::timeout(IDLE, conn.read_exact(&mut buf[..len]))
            .await
            .map_err(|_| std::io::Error::other("request not sent in time"))??;
        let mut out = TcpOut { conn: &mut conn };
        answer(&buf[..len], peer, shared, &mut out).await?;
    }
}

struct TcpOut<'a> {
    conn: &'a mut TcpStream,
}

impl TcpOut<'_> {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let mut framed = Vec::with_capacity(bytes.len() + 2);
        framed.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        framed.extend_from_slice(bytes);
        tokio::time::timeout(WRITE_TIMEOUT, self.conn.write_all(&framed))
            .await
            .map_err(|_| std::io::Error::other("secondary stopped reading"))?
    }
}

async fn udp_loop(sock: UdpSocket, shared: Arc<Shared>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let Ok((n, peer)) = sock.recv_from(&mut buf).await else {
            continue;
        };
        let mut replies = Vec::new();
        let _ = answer_udp(&buf[..n], peer, &shared, &mut replies);
        for r in replies {
            let _ = sock.send_to(&r, peer).await;
        }
    }
}

/// Over UDP only the SOA is answered; a transfer request gets TC=1 (ask again over TCP).
fn answer_udp(req: &[u8], peer: SocketAddr, shared: &Shared, out: &mut Vec<Vec<u8>>) -> Option<()> {
    let m = Message::from_vec(req).ok()?;
    if m.metadata.message_type != MessageType::Query {
        return None;
    }
    let resp = match check(&m, req, peer, shared) {
        Err(rcode) => reply(&m, rcode),
        Ok(_) => {
            let served = Arc::clone(&shared.now.read());
            let mut r = reply(&m, ResponseCode::NoError);
            match m.queries[0].query_type() {
                RecordType::SOA => {
                    shared.metrics.served("soa");
                    r.add_answer(soa_record(shared, served.serial));
                }
                RecordType::AXFR | RecordType::IXFR => r.metadata.truncation = true,
                _ => {
                    r.add_authority(soa_record(shared, served.serial));
                }
            }
            r
        }
    };
    out.push(resp.to_vec().ok()?);
    Some(())
}

/// Accepts or refuses a request: the zone, the ACL, the TSIG. `Ok` carries the request's MAC
/// when it was signed.
fn check(
    m: &Message,
    raw: &[u8],
    peer: SocketAddr,
    shared: &Shared,
) -> Result<Option<Vec<u8>>, ResponseCode> {
    if m.metadata.op_code != OpCode::Query || m.queries.len() != 1 {
        return Err(ResponseCode::NotImp);
    }
    if !shared.allow.iter().any(|n| n.contains(&peer.ip())) {
        tracing::warn!(%peer, zone = %shared.zone, "rpz server: request from outside allow_transfer refused");
        shared.metrics.served("refused");
        return Err(ResponseCode::Refused);
    }
    if m.queries[0].name().to_lowercase() != shared.zone {
        return Err(ResponseCode::NotAuth);
    }
    let Some(key) = &shared.key else {
        return Ok(None);
    };
    let bad = |why: String| {
        tracing::warn!(%peer, zone = %shared.zone, "rpz server: bad TSIG ({why}); refused");
        shared.metrics.served("bad_tsig");
        Err(ResponseCode::NotAuth)
    };
    if m.signature().is_none() {
        return bad("request not signed".into());
    }
    match key.signer.verify_message_byte(raw, None, true) {
        Ok((mac, _, range)) if range.contains(&unix_now()) => Ok(Some(mac)),
        Ok(_) => bad("time outside the fudge".into()),
        Err(e) => bad(e.to_string()),
    }
}

fn reply(m: &Message, rcode: ResponseCode) -> Message {
    let mut r = Message::response(m.metadata.id, m.metadata.op_code);
    r.metadata.response_code = rcode;
    r.metadata.authoritative = rcode == ResponseCode::NoError;
    r.add_queries(m.queries.clone());
    r
}

fn soa_record(shared: &Shared, serial: u32) -> Record {
    let z = &shared.zone;
    let n = |l: &str| {
        Name::from_ascii(l)
            .ok()
            .and_then(|n| n.append_domain(z).ok())
            .unwrap_or_else(|| z.clone())
    };
    // Refresh 60 s for secondaries that miss a NOTIFY; expire 14 days, so a fleet keeps its
    // policy through a long outage of the central dnsward.
    Record::from_rdata(
        z.clone(),
        TTL,
        RData::SOA(SOA::new(
            n("ns"),
            n("hostmaster"),
            serial,
            60,
            30,
            1_209_600,
            TTL,
        )),
    )
}

/// One TCP request: SOA, AXFR or IXFR, each answer message signed when the request was.
async fn answer(
    raw: &[u8],
    peer: SocketAddr,
    shared: &Shared,
    out: &mut TcpOut<'_>,
) -> std::io::Result<()> {
    let Ok(m) = Message::from_vec(raw) else {
        return Ok(());
    };
    if m.metadata.message_type != MessageType::Query {
        return Ok(());
    }
    let mac = match check(&m, raw, peer, shared) {
        Ok(mac) => mac,
        Err(rcode) => {
            if let Ok(b) = reply(&m, rcode).to_vec() {
                out.send(&b).await?;
            }
            return Ok(());
        }
    };
    let served = Arc::clone(&shared.now.read());
    let mut signer = Signer {
        key: shared.key.as_ref().filter(|_| mac.is_some()),
        previous: mac.unwrap_or_default(),
        first: true,
        id: m.metadata.id,
    };
    let soa = soa_record(shared, served.serial);
    let qtype = m.queries[0].query_type();
    let records: Box<dyn Iterator<Item = Record> + Send + '_> = match qtype {
        RecordType::SOA => {
            shared.metrics.served("soa");
            Box::new(std::iter::once(soa))
        }
        RecordType::AXFR => {
            shared.metrics.served("axfr");
            tracing::info!(%peer, serial = served.serial, entries = served.entries.len(), "rpz server: AXFR");
            full_zone(shared, &served, soa)
        }
        RecordType::IXFR => {
            let theirs = m.authorities.iter().find_map(|r| match &r.data {
                RData::SOA(s) => Some(s.serial),
                _ => None,
            });
            match theirs.map(|t| ixfr_chain(&served, t)) {
                Some(Ixfr::UpToDate) => {
                    shared.metrics.served("ixfr");
                    Box::new(std::iter::once(soa))
                }
                Some(Ixfr::Chain(changes)) => {
                    shared.metrics.served("ixfr");
                    tracing::info!(%peer, from = ?theirs, serial = served.serial, "rpz server: IXFR");
                    incremental(shared, changes, soa)
                }
                _ => {
                    shared.metrics.served("ixfr_full");
                    tracing::info!(%peer, from = ?theirs, serial = served.serial, "rpz server: IXFR answered with the whole zone (history does not reach that serial)");
                    full_zone(shared, &served, soa)
                }
            }
        }
        _ => {
            let mut r = reply(&m, ResponseCode::NoError);
            r.add_authority(soa);
            let b = signer.finish(r).map_err(std::io::Error::other)?;
            return out.send(&b).await;
        }
    };
    let mut chunk = Vec::with_capacity(RECORDS_PER_MESSAGE);
    let mut records = records.peekable();
    while let Some(r) = records.next() {
        chunk.push(r);
        if chunk.len() == RECORDS_PER_MESSAGE || records.peek().is_none() {
            let mut msg = reply(&m, ResponseCode::NoError);
            msg.answers = std::mem::take(&mut chunk);
            let b = signer.finish(msg).map_err(std::io::Error::other)?;
            out.send(&b).await?;
        }
    }
    Ok(())
}

/// Signs each message of an answer: the first over the request's MAC (hickory), the next ones
/// over the previous MAC (`sign_subsequent`).
struct Signer<'a> {
    key: Option<&'a TsigKey>,
    previous: Vec<u8>,
    first: bool,
    id: u16,
}

impl Signer<'_> {
    fn finish(&mut self, mut msg: Message) -> Result<Vec<u8>, TsigError> {
        let unsigned = msg.to_vec().map_err(TsigError::Encode)?;
        let Some(key) = self.key else {
            return Ok(unsigned);
        };
        let now = unix_now();
        let record = if self.first {
            self.first = false;
            TSigResponseContext::new(
                self.id,
                now,
                key.signer.clone(),
                self.previous.clone(),
                None,
            )
            .sign(&unsigned)
            .map_err(TsigError::Encode)?
        } else {
            sign_subsequent(&key.signer, &self.previous, &unsigned, self.id, now)?.0
        };
        self.previous = record.data.mac.clone();
        msg.set_signature(record);
        msg.to_vec().map_err(TsigError::Encode)
    }
}

fn full_zone<'a>(
    shared: &'a Shared,
    served: &'a Served,
    soa: Record,
) -> Box<dyn Iterator<Item = Record> + Send + 'a> {
    let ns = Record::from_rdata(
        shared.zone.clone(),
        TTL,
        RData::NS(NS(
            Name::from_ascii("localhost.").unwrap_or_else(|_| Name::root())
        )),
    );
    let entries = served
        .entries
        .iter()
        .flat_map(move |(owner, a)| entry_records(owner, *a, &shared.zone, &shared.settings, TTL));
    Box::new(
        std::iter::once(soa.clone())
            .chain(std::iter::once(ns))
            .chain(entries)
            .chain(std::iter::once(soa)),
    )
}

enum Ixfr {
    UpToDate,
    Chain(Vec<Arc<Change>>),
    Missing,
}

/// The changes from `theirs` to the current serial, if the history reaches back that far.
fn ixfr_chain(served: &Served, theirs: u32) -> Ixfr {
    if theirs == served.serial || serial_newer(theirs, served.serial) {
        return Ixfr::UpToDate;
    }
    let Some(start) = served.history.iter().position(|c| c.from == theirs) else {
        return Ixfr::Missing;
    };
    Ixfr::Chain(served.history.iter().skip(start).cloned().collect())
}

fn incremental<'a>(
    shared: &'a Shared,
    changes: Vec<Arc<Change>>,
    soa: Record,
) -> Box<dyn Iterator<Item = Record> + Send + 'a> {
    let soa_at = move |serial: u32| soa_record(shared, serial);
    let body = changes.into_iter().flat_map(move |c| {
        let removed: Vec<Record> = c
            .removed
            .iter()
            .flat_map(|(o, a)| entry_records(o, *a, &shared.zone, &shared.settings, TTL))
            .collect();
        let added: Vec<Record> = c
            .added
            .iter()
            .flat_map(|(o, a)| entry_records(o, *a, &shared.zone, &shared.settings, TTL))
            .collect();
        std::iter::once(soa_at(c.from))
            .chain(removed)
            .chain(std::iter::once(soa_at(c.to)))
            .chain(added)
    });
    Box::new(
        std::iter::once(soa.clone())
            .chain(body)
            .chain(std::iter::once(soa)),
    )
}
