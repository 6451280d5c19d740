//! A scripted-authority harness: fake authoritative servers over real UDP and TCP sockets on
//! loopback that answer from zone data or misbehave on purpose, per (name, type), per name or
//! per zone, and count every query they get.
//!
//! All servers of one hierarchy share one port P, each on its own 127.B.C.x address (B in
//! 100..130; every 127/8 address is bindable on Linux without set-up; B.C is unique per test in this process
//! and, through the process ID, mostly per test binary; a bind that collides picks another P).
//! The resolver under test gets `root_hints` (written here) and `upstream_port = P`. For a
//! resolver that only sends to port 53 (unbound), `start_on_port(53)` needs root.
//!
//! ```ignore
//! let mut net = Net::new();
//! let (root, com, ex) = (net.addr(1), net.addr(2), net.addr(3));
//! net.zone(root, ".", &format!("com. NS ns.com.\nns.com. A {com}"));
//! net.zone(com, "com.", &format!("example NS ns.example.com.\nns.example.com. A {ex}"));
//! net.zone(ex, "example.com.", "www A 192.0.2.1");
//! net.on(ex, "www.example.com.", RecordType::AAAA, Behaviour::Timeout);
//! let h = net.start(root).await;
//! ```

#![allow(dead_code)]

pub mod script;
pub mod unbound;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use hickory_proto::op::Message;
use hickory_proto::rr::{Name, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::task::JoinHandle;

pub use script::{name, records, Behaviour, Reply, Zone};

/// One query a server received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub server: IpAddr,
    /// Lower case, with the trailing dot.
    pub name: String,
    pub qtype: RecordType,
    pub tcp: bool,
    pub edns: bool,
    /// The query's message ID and the resolver's source port (to check they are random).
    pub id: u16,
    pub source_port: u16,
}

/// Which queries a rule applies to; the most specific rule wins.
#[derive(Clone, Debug)]
enum Rule {
    Exact(Name, RecordType),
    AnyType(Name),
    Below(Name),
}

#[derive(Clone, Default)]
struct ServerScript {
    zones: Vec<Zone>,
    rules: Vec<(Rule, Behaviour)>,
}

impl ServerScript {
    fn behaviour(&self, qname: &Name, qtype: RecordType) -> Behaviour {
        let exact = self
            .rules
            .iter()
            .find(|(r, _)| matches!(r, Rule::Exact(n, t) if n == qname && *t == qtype));
        let any_type = || {
            self.rules
                .iter()
                .find(|(r, _)| matches!(r, Rule::AnyType(n) if n == qname))
        };
        let below = || {
            self.rules
                .iter()
                .filter_map(|(r, b)| match r {
                    Rule::Below(zone) if zone.zone_of(qname) => Some((zone.num_labels(), b)),
                    _ => None,
                })
                .max_by_key(|(labels, _)| *labels)
                .map(|(_, b)| b)
        };
        exact
            .map(|(_, b)| b)
            .or_else(|| any_type().map(|(_, b)| b))
            .or_else(below)
            .cloned()
            .unwrap_or(Behaviour::Zone)
    }
}

type Scripts = Arc<Mutex<HashMap<IpAddr, ServerScript>>>;

static NEXT_BLOCK: AtomicU8 = AtomicU8::new(0);

/// A hierarchy being described, before its servers start.
pub struct Net {
    block: [u8; 3],
    scripts: HashMap<IpAddr, ServerScript>,
    /// Server addresses in the order they were first named (the first one binds the port).
    order: Vec<IpAddr>,
}

impl Default for Net {
    fn default() -> Self {
        Net::new()
    }
}

impl Net {
    /// A fresh address block 127.B.C.0/24: B in 100..130 by process, C by test in the process
    /// (bench/ puts NSD on 127.60.x.x:53; tests/common uses 127.20-219 on kernel-chosen ports).
    pub fn new() -> Net {
        let c = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
        Net {
            block: [
                127,
                100 + (std::process::id() % 30) as u8,
                c.wrapping_add(1),
            ],
            scripts: HashMap::new(),
            order: Vec::new(),
        }
    }

    /// The address of server `last` in this hierarchy's block.
    pub fn addr(&self, last: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            self.block[0],
            self.block[1],
            self.block[2],
            last,
        ))
    }

    /// The IPv6 loopback (one v6 server per hierarchy), if this machine has one.
    pub fn ipv6() -> Option<IpAddr> {
        std::net::UdpSocket::bind("[::1]:0")
            .ok()
            .map(|_| IpAddr::V6(Ipv6Addr::LOCALHOST))
    }

    fn server(&mut self, addr: IpAddr) -> &mut ServerScript {
        if !self.order.contains(&addr) {
            self.order.push(addr);
        }
        self.scripts.entry(addr).or_default()
    }

    /// Serve zone `origin` from `addr`: zone-file lines (relative names against the origin).
    /// An SOA is added when the text has none (negative TTL 300).
    pub fn zone(&mut self, addr: IpAddr, origin: &str, text: &str) -> &mut Net {
        let mut recs = records(origin, text);
        let origin = name(origin);
        if !recs
            .iter()
            .any(|r| r.record_type() == RecordType::SOA && r.name == origin)
        {
            let soa = "@ 3600 SOA ns.invalid. hostmaster.invalid. 1 7200 900 86400 300".to_string();
            recs.insert(0, records(&origin.to_ascii(), &soa).remove(0));
        }
        self.server(addr).zones.push(Zone {
            origin,
            records: recs,
        });
        self
    }

    /// A server that exists (gets a socket) and answers only by its rules (REFUSED otherwise).
    pub fn bare(&mut self, addr: IpAddr) -> &mut Net {
        self.server(addr);
        self
    }

    /// At `addr`, queries for exactly (qname, qtype) get `behaviour`.
    pub fn on(
        &mut self,
        addr: IpAddr,
        qname: &str,
        qtype: RecordType,
        behaviour: Behaviour,
    ) -> &mut Net {
        self.server(addr)
            .rules
            .push((Rule::Exact(name(qname), qtype), behaviour));
        self
    }

    /// At `addr`, queries for `qname` of any type get `behaviour`.
    pub fn on_name(&mut self, addr: IpAddr, qname: &str, behaviour: Behaviour) -> &mut Net {
        self.server(addr)
            .rules
            .push((Rule::AnyType(name(qname)), behaviour));
        self
    }

    /// At `addr`, queries for `zone` and every name below it get `behaviour` (the fallback
    /// for a zone; more specific rules win).
    pub fn on_zone(&mut self, addr: IpAddr, zone: &str, behaviour: Behaviour) -> &mut Net {
        self.server(addr)
            .rules
            .push((Rule::Below(name(zone)), behaviour));
        self
    }

    /// Binds every server on one kernel-chosen port; `root` is named in the root hints as
    /// `a.root.test.` (its zone should say the same).
    pub async fn start(self, root: IpAddr) -> Running {
        self.start_with_hints(&[("a.root.test.", root)], None).await
    }

    /// Binds every server on `port` (53 for unbound: needs root).
    pub async fn start_on_port(self, root: IpAddr, port: u16) -> Running {
        self.start_with_hints(&[("a.root.test.", root)], Some(port))
            .await
    }

    /// Binds every server; the root hints list these (name, address) pairs.
    pub async fn start_with_hints(self, hints: &[(&str, IpAddr)], port: Option<u16>) -> Running {
        crate::common::init_logging();
        let scripts: Scripts = Arc::new(Mutex::new(self.scripts));
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let mut last_err = None;
        for _attempt in 0..20 {
            match bind_all(&self.order, port).await {
                Ok((port, sockets)) => {
                    let mut tasks = Vec::new();
                    for (addr, udp, tcp) in sockets {
                        let server = Server {
                            addr,
                            scripts: Arc::clone(&scripts),
                            seen: Arc::clone(&seen),
                        };
                        tasks.push(tokio::spawn(server.clone().serve_udp(udp)));
                        tasks.push(tokio::spawn(server.serve_tcp(tcp)));
                    }
                    let dir = tempfile::tempdir().expect("temp dir");
                    let hints_text: String = hints
                        .iter()
                        .map(|(ns, ip)| {
                            let t = if ip.is_ipv4() { "A" } else { "AAAA" };
                            format!(".  3600000 IN NS {ns}\n{ns} 3600000 IN {t} {ip}\n")
                        })
                        .collect();
                    std::fs::write(dir.path().join("root.hints"), hints_text)
                        .expect("write root hints");
                    return Running {
                        port,
                        scripts,
                        seen,
                        tasks,
                        dir,
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                    // A kernel-chosen port taken on another address: try another. A fixed
                    // port (53) still held by a hierarchy being dropped: wait for it.
                    if port.is_some() {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    }
                    last_err = Some(e)
                }
                Err(e) => panic!("scripted servers cannot bind: {e}"),
            }
        }
        panic!("scripted servers found no free common port: {last_err:?}");
    }
}

type Bound = Vec<(IpAddr, UdpSocket, TcpListener)>;

/// Binds UDP and TCP for every address on one port (the first bind picks it when `port` is
/// None); all-or-nothing, so a collision can be retried on another port.
async fn bind_all(addrs: &[IpAddr], port: Option<u16>) -> std::io::Result<(u16, Bound)> {
    let mut port = port.unwrap_or(0);
    let mut out = Vec::new();
    for addr in addrs {
        let udp = UdpSocket::bind(SocketAddr::new(*addr, port)).await?;
        port = udp.local_addr()?.port();
        let tcp = TcpListener::bind(SocketAddr::new(*addr, port)).await?;
        out.push((*addr, udp, tcp));
    }
    Ok((port, out))
}

/// A running scripted hierarchy; its servers stop when it is dropped.
pub struct Running {
    pub port: u16,
    scripts: Scripts,
    seen: Arc<Mutex<Vec<Seen>>>,
    tasks: Vec<JoinHandle<()>>,
    pub dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Running {
    pub fn root_hints_path(&self) -> PathBuf {
        self.dir.path().join("root.hints")
    }

    /// A dnsward config pointed at this hierarchy: `[server]` on 127.0.0.1 (kernel port), and
    /// `[resolver]` with the root hints, the port, DNSSEC off (the fake zones are unsigned),
    /// `timeout_ms = 2000` unless `resolver_keys` sets it, and `resolver_keys` (TOML lines).
    pub fn dnsward_config(&self, resolver_keys: &str) -> String {
        let timeout = if resolver_keys.contains("timeout_ms") {
            ""
        } else {
            "timeout_ms = 2000\n"
        };
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n\n[resolver]\nmode = \"recursive\"\nroot_hints = \"{}\"\nupstream_port = {}\ndnssec = \"off\"\n{timeout}{resolver_keys}\n",
            self.root_hints_path().display(),
            self.port
        )
    }

    /// Replaces the rules of `addr` for (qname, qtype) while running (e.g. a server recovers).
    pub fn set(&self, addr: IpAddr, qname: &str, qtype: RecordType, behaviour: Behaviour) {
        let mut scripts = self.scripts.lock().unwrap();
        let script = scripts.entry(addr).or_default();
        let qname = name(qname);
        script
            .rules
            .retain(|(r, _)| !matches!(r, Rule::Exact(n, t) if *n == qname && *t == qtype));
        script
            .rules
            .insert(0, (Rule::Exact(qname, qtype), behaviour));
    }

    /// Every query received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// How many received queries satisfy `filter`.
    pub fn count(&self, filter: impl Fn(&Seen) -> bool) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| filter(s))
            .count()
    }

    /// Every query any server received.
    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Queries `server` received.
    pub fn to(&self, server: IpAddr) -> usize {
        self.count(|s| s.server == server)
    }

    /// Queries for (qname, qtype) that reached any server.
    pub fn asked(&self, qname: &str, qtype: RecordType) -> usize {
        let qname = normalise(qname);
        self.count(|s| s.name == qname && s.qtype == qtype)
    }

    /// Queries for `qname`, of any type, that reached any server.
    pub fn asked_name(&self, qname: &str) -> usize {
        let qname = normalise(qname);
        self.count(|s| s.name == qname)
    }

    /// Forgets the queries seen so far (to count one step of a test).
    pub fn reset_counts(&self) {
        self.seen.lock().unwrap().clear();
    }

    /// The queries seen, one a line, for assertion messages.
    pub fn log(&self) -> String {
        self.seen()
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}{}{}\n",
                    s.server,
                    s.name,
                    s.qtype,
                    if s.tcp { " tcp" } else { "" },
                    if s.edns { " edns" } else { "" }
                )
            })
            .collect()
    }
}

pub fn normalise(qname: &str) -> String {
    format!("{}.", qname.trim_end_matches('.').to_ascii_lowercase())
}

#[derive(Clone)]
struct Server {
    addr: IpAddr,
    scripts: Scripts,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    async fn serve_udp(self, socket: UdpSocket) {
        let socket = Arc::new(socket);
        let mut buf = vec![0u8; 65535];
        loop {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let query = buf[..n].to_vec();
            let (me, socket) = (self.clone(), Arc::clone(&socket));
            // One task per query, so a delayed answer does not hold up the others.
            tokio::spawn(async move {
                if let Some(answer) = me.respond(&query, false, peer.port()).await {
                    let _ = socket.send_to(&answer, peer).await;
                }
            });
        }
    }

    async fn serve_tcp(self, listener: TcpListener) {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(self.clone().serve_connection(stream, peer.port()));
        }
    }

    async fn serve_connection(self, mut stream: TcpStream, peer_port: u16) {
        loop {
            let mut len = [0u8; 2];
            if stream.read_exact(&mut len).await.is_err() {
                return;
            }
            let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
            if stream.read_exact(&mut query).await.is_err() {
                return;
            }
            if let Some(answer) = self.respond(&query, true, peer_port).await {
                let mut framed = (answer.len().min(65535) as u16).to_be_bytes().to_vec();
                framed.extend_from_slice(&answer[..answer.len().min(65535)]);
                if stream.write_all(&framed).await.is_err() {
                    return;
                }
            }
        }
    }

    /// The answer bytes for one query, or None (dropped: unparsable, a response, or scripted
    /// silence).
    async fn respond(&self, query: &[u8], over_tcp: bool, source_port: u16) -> Option<Vec<u8>> {
        let msg = Message::from_vec(query).ok()?;
        let q = msg.queries.first()?.clone();
        self.seen.lock().unwrap().push(Seen {
            server: self.addr,
            name: normalise(&q.name().to_ascii()),
            qtype: q.query_type(),
            tcp: over_tcp,
            edns: msg.edns.is_some(),
            id: msg.metadata.id,
            source_port,
        });
        let (mut behaviour, zones) = {
            let scripts = self.scripts.lock().unwrap();
            let script = scripts.get(&self.addr).cloned().unwrap_or_default();
            (script.behaviour(q.name(), q.query_type()), script.zones)
        };
        // Delays and raw bytes wrap the rest; peel them here, where we can sleep.
        loop {
            match behaviour {
                Behaviour::Delay(d, inner) => {
                    tokio::time::sleep(d).await;
                    behaviour = *inner;
                }
                Behaviour::Raw(f) => return Some(f(&msg, query, &zones)),
                _ => break,
            }
        }
        let answer = script::build(&behaviour, &msg, over_tcp, &zones)?;
        let bytes = answer.to_vec().ok()?;
        let limit = if over_tcp {
            65535
        } else {
            msg.edns.as_ref().map_or(512, |e| e.max_payload().max(512)) as usize
        };
        if bytes.len() > limit {
            // As real servers do: too big for the client's buffer -> TC=1, question only.
            return answer.truncate().to_vec().ok();
        }
        Some(bytes)
    }
}
