//! A fake DNS hierarchy on loopback, started in-process with hickory-server authorities, and a
//! small DNS client over real sockets.
//!
//! Every server of one hierarchy listens on the same port P on its own 127.X.Y.Z address; the
//! resolver under test gets `upstream_port = P`, so no root privileges and no port 53 are
//! needed, and tests running in parallel use different X.Y blocks.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::txt::Parser;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

pub mod tls;
pub mod tools;
pub mod unbound;

use dnsward::config::Config;
use dnsward::instance::Instance;

/// Queries each fake server received, by (server address, lower-case name, type).
pub type QueryCounts = Arc<Mutex<HashMap<(IpAddr, String, RecordType), usize>>>;

struct CountingHandler {
    addr: IpAddr,
    catalog: Catalog,
    counts: QueryCounts,
}

#[async_trait]
impl RequestHandler for CountingHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let name = info.query.name().to_string().to_ascii_lowercase();
            *self
                .counts
                .lock()
                .unwrap()
                .entry((self.addr, name, info.query.query_type()))
                .or_default() += 1;
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

/// A running fake hierarchy.
pub struct Hierarchy {
    /// 127.X.Y.0: servers are .1 (root), .2 (com/net TLDs), .3 (example.com), .4 (hosting.com, other.net).
    pub base: [u8; 3],
    pub port: u16,
    pub counts: QueryCounts,
    servers: Vec<hickory_server::Server<CountingHandler>>,
    pub dir: tempfile::TempDir,
}

static NEXT_BLOCK: AtomicU8 = AtomicU8::new(0);

fn block() -> [u8; 3] {
    let n = NEXT_BLOCK.fetch_add(1, Ordering::SeqCst);
    [
        127,
        20 + (std::process::id() % 200) as u8,
        n.wrapping_add(1),
    ]
}

impl Hierarchy {
    pub fn ip(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.base[0], self.base[1], self.base[2], last)
    }

    pub fn root_hints_path(&self) -> PathBuf {
        self.dir.path().join("root.hints")
    }

    /// How many queries for (name, type) reached any server of the hierarchy.
    pub fn count(&self, name: &str, rtype: RecordType) -> usize {
        let name = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, n, t), _)| *n == name && *t == rtype)
            .map(|(_, c)| c)
            .sum()
    }

    /// How many queries for `name`, of any type, reached the hierarchy (the recursor may ask for
    /// NS while minimising the query name).
    pub fn count_any(&self, name: &str) -> usize {
        let name = format!("{}.", name.trim_end_matches('.').to_ascii_lowercase());
        self.counts
            .lock()
            .unwrap()
            .iter()
            .filter(|((_, n, _), _)| *n == name)
            .map(|(_, c)| c)
            .sum()
    }

    /// Starts root, TLD and second-level servers. `extra_example_records` are appended to the
    /// example.com zone (e.g. short-TTL names for a test).
    pub async fn start(extra_example_records: &str) -> Hierarchy {
        Self::start_with_root(extra_example_records, "").await
    }

    /// `start`, with `extra_root_records` (absolute names) appended to the root zone, which
    /// answers them authoritatively (e.g. `in-addr.arpa` PTR records).
    pub async fn start_with_root(
        extra_example_records: &str,
        extra_root_records: &str,
    ) -> Hierarchy {
        init_logging();
        let base = block();
        let ip = |last: u8| format!("{}.{}.{}.{}", base[0], base[1], base[2], last);
        let soa = |origin: &str| {
            format!("$ORIGIN {origin}\n$TTL 3600\n@ IN SOA a.root.test. hostmaster.root.test. 1 7200 900 86400 300\n")
        };
        let big_txt: String = (0..24)
            .map(|i| format!("big IN TXT \"{}{i:02}\"\n", "x".repeat(180)))
            .collect();
        // hickory's in-memory zones do not hand out glue for names below a zone cut, so name
        // server names live under test., which the root serves authoritatively (its answers
        // carry their addresses, like glue); other.net's server name is in hosting.com and
        // must itself be resolved (a delegation without glue).
        let zones: Vec<(u8, &str, String)> = vec![
            (1, ".", format!(
                "{}@ IN NS a.root.test.\na.root.test. IN A {}\ncom. IN NS ns.tld.test.\nnet. IN NS ns.tld.test.\nns.tld.test. IN A {}\nns1.sld.test. IN A {}\nns2.sld.test. IN A {}\n{extra_root_records}\n",
                soa("."), ip(1), ip(2), ip(3), ip(4))),
            (2, "com.", format!(
                "{}@ IN NS ns.tld.test.\nexample IN NS ns1.sld.test.\nhosting IN NS ns2.sld.test.\n",
                soa("com."))),
            (2, "net.", format!(
                "{}@ IN NS ns.tld.test.\nother IN NS ns.hosting.com.\n",
                soa("net."))),
            (3, "example.com.", format!(
                "{}@ IN NS ns1.sld.test.\nwww IN A 192.0.2.10\nwww IN AAAA 2001:db8::10\n@ IN MX 10 mail\nmail IN A 192.0.2.25\n@ IN TXT \"v=spf1 -all\"\nalias IN CNAME step.other.net.\n{big_txt}{extra_example_records}\n",
                soa("example.com."))),
            (4, "hosting.com.", format!("{}@ IN NS ns2.sld.test.\nns IN A {}\n", soa("hosting.com."), ip(4))),
            (4, "other.net.", format!(
                "{}@ IN NS ns.hosting.com.\nstep IN CNAME final.other.net.\nfinal IN A 192.0.2.30\nwww IN A 192.0.2.20\n",
                soa("other.net."))),
        ];
        let counts: QueryCounts = Arc::default();
        let mut catalogs: BTreeMap<u8, Catalog> = BTreeMap::new();
        for (server, origin, text) in zones {
            let origin = Name::from_ascii(origin).unwrap();
            let (_, records) = Parser::new(text, None, Some(origin.clone()))
                .parse()
                .expect("zone parses");
            let handler =
                InMemoryZoneHandler::<hickory_server::net::runtime::TokioRuntimeProvider>::new(
                    origin.clone(),
                    records,
                    ZoneType::Primary,
                    AxfrPolicy::Deny,
                )
                .expect("zone loads");
            let handlers: Vec<Arc<dyn ZoneHandler>> = vec![Arc::new(handler)];
            catalogs
                .entry(server)
                .or_default()
                .upsert(origin.into(), handlers);
        }
        // The root gets a kernel-chosen port; every other server uses the same port.
        let mut port = 0;
        let mut servers = Vec::new();
        for (last, catalog) in catalogs {
            let addr: IpAddr = ip(last).parse().unwrap();
            let udp = UdpSocket::bind(SocketAddr::new(addr, port))
                .await
                .expect("bind fake server udp");
            port = udp.local_addr().unwrap().port();
            let tcp = tokio::net::TcpListener::bind(SocketAddr::new(addr, port))
                .await
                .expect("bind fake server tcp");
            let mut server = hickory_server::Server::new(CountingHandler {
                addr,
                catalog,
                counts: Arc::clone(&counts),
            });
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 16);
            servers.push(server);
        }
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("root.hints"),
            format!(
                ".  3600000 IN NS a.root.test.\na.root.test. 3600000 IN A {}\n",
                ip(1)
            ),
        )
        .unwrap();
        Hierarchy {
            base,
            port,
            counts,
            servers,
            dir,
        }
    }

    /// Stops every server (upstream "down").
    pub async fn stop(&mut self) {
        for s in &mut self.servers {
            let _ = s.shutdown_gracefully().await;
        }
        self.servers.clear();
    }

    /// A dnsward config pointed at this hierarchy; `extra` is appended (more TOML).
    pub fn config_text(&self, extra_resolver: &str) -> String {
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n\n[resolver]\nmode = \"recursive\"\nroot_hints = \"{}\"\nupstream_port = {}\ntimeout_ms = 1500\n# The fake hierarchy is unsigned: validating it against the real root keys would fail.\ndnssec = \"off\"\n{extra_resolver}\n",
            self.root_hints_path().display(),
            self.port
        )
    }

    pub async fn start_dnsward(&self, extra_resolver: &str) -> Instance {
        start_dnsward_text(&self.config_text(extra_resolver), self.dir.path()).await
    }
}

pub async fn start_dnsward_text(text: &str, dir: &std::path::Path) -> Instance {
    let path = dir.join(format!(
        "dnsward-{}.toml",
        NEXT_BLOCK.fetch_add(0, Ordering::SeqCst)
    ));
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|p| panic!("test config invalid: {p:?}"));
    Instance::start(&config).await.expect("dnsward starts")
}

pub fn query_message(name: &str, rtype: RecordType, edns: Option<u16>) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand_id();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m
}

/// A DNS message ID that differs from call to call (the clock's nanoseconds).
pub fn rand_id() -> u16 {
    use std::time::{SystemTime, UNIX_EPOCH};
    (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        & 0xffff) as u16
}

/// Sends raw bytes over UDP and waits (bounded) for one datagram.
pub async fn udp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let from: IpAddr = if server.is_ipv6() { "::1" } else { "127.0.0.1" }
        .parse()
        .unwrap();
    udp_raw_from(from, server, bytes, wait).await
}

/// `udp_raw` from a chosen source address (e.g. 127.0.0.2, to test the client ACL).
pub async fn udp_raw_from(
    from: IpAddr,
    server: SocketAddr,
    bytes: &[u8],
    wait: Duration,
) -> Option<Vec<u8>> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0)).await.unwrap();
    sock.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(wait, sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

pub async fn udp_query(server: SocketAddr, msg: &Message) -> Message {
    let resp = udp_raw(server, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .expect("an answer over UDP within 5 s");
    let m = Message::from_vec(&resp).expect("answer parses");
    assert_eq!(m.metadata.id, msg.metadata.id, "query ID echoed");
    m
}

pub async fn ask(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    udp_query(server, &query_message(name, rtype, Some(1232))).await
}

/// Sends raw bytes as one TCP DNS message; returns the framed answer, if any, within `wait`.
pub async fn tcp_raw(server: SocketAddr, bytes: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let fut = async {
        let mut s = TcpStream::connect(server).await.ok()?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(bytes);
        s.write_all(&framed).await.ok()?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(wait, fut).await.ok().flatten()
}

pub async fn tcp_query(server: SocketAddr, msg: &Message) -> Message {
    let resp = tcp_raw(server, &msg.to_vec().unwrap(), Duration::from_secs(5))
        .await
        .expect("an answer over TCP within 5 s");
    let m = Message::from_vec(&resp).expect("answer parses");
    assert_eq!(m.metadata.id, msg.metadata.id, "query ID echoed");
    m
}

pub fn answer_strings(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect()
}

/// A query (EDNS, 1232 bytes) sent over UDP from the loopback address `from` (so that the
/// server sees that client); the answer within 5 s.
pub async fn ask_from(from: &str, server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let q = query_message(name, rtype, Some(1232));
    let bytes = udp_raw_from(
        from.parse().unwrap(),
        server,
        &q.to_vec().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer within 5 s");
    Message::from_vec(&bytes).unwrap()
}

/// The rcode of [`ask`]'s answer.
pub async fn rcode(
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> hickory_proto::op::ResponseCode {
    ask(server, name, rtype).await.metadata.response_code
}

/// The rcode of [`ask_from`]'s answer.
pub async fn rcode_from(
    from: &str,
    server: SocketAddr,
    name: &str,
    rtype: RecordType,
) -> hickory_proto::op::ResponseCode {
    ask_from(from, server, name, rtype)
        .await
        .metadata
        .response_code
}

/// The list that blocked the answer `m`, from the SOA dnsward puts in a blocked answer
/// (`<list>.policy.dnsward.`); `None` when it was answered.
pub fn blocking_list(m: &Message) -> Option<String> {
    m.authorities.iter().find_map(|r| match &r.data {
        hickory_proto::rr::RData::SOA(s) => s
            .mname
            .to_ascii()
            .strip_suffix(".policy.dnsward.")
            .map(str::to_string),
        _ => None,
    })
}

/// The sum of the sample lines of a Prometheus scrape that start with `prefix` (name and
/// labels as printed); 0 when there is none.
pub fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

/// The dnsward binary of this build.
pub const BIN: &str = env!("CARGO_BIN_EXE_dnsward");

/// Runs `dnsward COMMAND --config CONFIG ARGS...` to its end.
pub fn dnsward_cmd(command: &str, config: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg(command)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap()
}

/// `dnsward check` on the config `text`, written to `path`: it must fail, and its standard
/// error must hold each of `expected` (e.g. `"bad.toml:3: server.colour"`); returns that error.
pub fn check_rejects(path: &std::path::Path, text: &str, expected: &[&str]) -> String {
    std::fs::write(path, text).unwrap();
    let out = dnsward_cmd("check", path, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}: {err}", path.display());
    for e in expected {
        assert!(err.contains(e), "missing {e:?} in:\n{err}");
    }
    err
}

/// `dnsward logs --config CONFIG ARGS...`: its standard output, which must follow success.
pub fn logs_ok(config: &std::path::Path, args: &[&str]) -> String {
    let out = dnsward_cmd("logs", config, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Records as `name type data` (the name in lower case, the TTL left out).
pub fn rr_lines(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r.name.to_ascii().to_ascii_lowercase(),
                r.record_type(),
                r.data
            )
        })
        .collect()
}

/// A root that swallows every query (a bound socket that never answers; keep it while the
/// test runs) and the config of a dnsward on 127.0.0.1:0 iterating from it, its root hints
/// written in `dir`, with a resolver timeout of 800 ms.
pub fn silent_root_config(dir: &std::path::Path) -> (std::net::UdpSocket, String) {
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    std::fs::write(
        dir.join("root.hints"),
        ". 3600000 IN NS a.root.test.\na.root.test. 3600000 IN A 127.0.0.1\n",
    )
    .unwrap();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[resolver]\nroot_hints = \"{}\"\nupstream_port = {}\ntimeout_ms = 800\n",
        dir.join("root.hints").display(),
        hole.local_addr().unwrap().port()
    );
    (hole, text)
}

/// A port free on 127.0.0.1 for both TCP and UDP right now.
pub fn free_port() -> u16 {
    free_port_on(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// A port free on `ip` for both TCP and UDP right now.
pub fn free_port_on(ip: IpAddr) -> u16 {
    for _ in 0..50 {
        let t = std::net::TcpListener::bind(SocketAddr::new(ip, 0)).unwrap();
        let port = t.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(SocketAddr::new(ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on {ip}");
}

/// (INFO-CODE, EXTRA-TEXT) of the EDE option, if any.
pub fn ede(m: &Message) -> Option<(u16, String)> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::from(15))? {
        EdnsOption::Unknown(_, data) if data.len() >= 2 => Some((
            u16::from_be_bytes([data[0], data[1]]),
            String::from_utf8_lossy(&data[2..]).into_owned(),
        )),
        _ => None,
    }
}

/// The events of a JSON lines file once it holds at least `want` (sinks flush at least once a
/// second: waits up to 5 s, then panics).
pub fn read_jsonl(path: &std::path::Path, want: usize) -> Vec<serde_json::Value> {
    for _ in 0..50 {
        if let Ok(text) = std::fs::read_to_string(path) {
            let rows: Vec<serde_json::Value> = text
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if rows.len() >= want {
                return rows;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("fewer than {want} events in {}", path.display());
}

/// Waits until `f` holds, checking every 100 ms for at most `secs` seconds (then panics naming
/// `what`).
pub async fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "not within {secs} s: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `DNSWARD_LOG=debug cargo test ...` shows the server's logs in a failing test.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("DNSWARD_LOG")
                .unwrap_or_else(|_| "off".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A minimal HTTP/1.1 client over a real TCP socket (the admin API is plain HTTP on loopback):
/// returns (status, body).
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        ));
    } else {
        req.push_str("Content-Length: 0\r\n\r\n");
    }
    let text = raw_http(addr, &req).await;
    let status: u16 = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// Sends `request` (a whole HTTP/1.1 request, `Connection: close`) over a new TCP connection
/// to `addr`: the whole response as text, head included (within 10 s).
pub async fn raw_http(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("the listener accepts");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

/// The body of an HTTP/1.1 `Transfer-Encoding: chunked` response.
pub fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Where tests leave files for a person to look at (screenshots): target/test-artifacts/
/// (under `CARGO_TARGET_DIR` when set), created if missing.
pub fn artifact_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
