//! Support for tests/rpz_transfer.rs: real NSD, BIND and Unbound as child processes on
//! loopback, free ports, bounded waits. Addresses 127.230.X.Y belong to these tests only.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::tools::which;

pub const KEY_NAME: &str = "xfr-key";
/// base64 of "0123456789abcdef0123456789abcdef".
pub const KEY_SECRET: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
pub const WRONG_SECRET: &str = "d3Jvbmd3cm9uZ3dyb25nd3Jvbmd3cm9uZ3dyb25nMTI=";

/// The key file every server here reads (BIND syntax).
pub fn write_key(dir: &Path, secret: &str) -> PathBuf {
    let p = dir.join(format!("key-{}.conf", &secret[..4]));
    std::fs::write(
        &p,
        format!("key \"{KEY_NAME}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
    )
    .unwrap();
    p
}

/// A child process killed (by its own PID) when dropped.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .stdout(Stdio::from(out.try_clone().unwrap()))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        Proc { child, name, log }
    }

    /// `program FOREGROUND_FLAG -c DIR/program.conf` with `conf` written there, its output in
    /// `DIR/program.log`.
    pub fn launch(dir: &Path, program: &'static str, foreground_flag: &str, conf: &str) -> Proc {
        let path = dir.join(format!("{program}.conf"));
        std::fs::write(&path, conf).unwrap();
        Proc::spawn(
            program,
            Command::new(which(program).unwrap())
                .args([foreground_flag, "-c"])
                .arg(&path),
            dir.join(format!("{program}.log")),
        )
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something listens on TCP `addr` (bounded).
pub async fn wait_listening(addr: SocketAddr, what: &Proc) {
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{} does not listen on {addr}; its log:\n{}",
        what.name,
        what.log_text()
    );
}

/// An RPZ zone text: `names` each `CNAME .` (NXDOMAIN).
pub fn rpz_zone(origin: &str, serial: u32, refresh: u32, names: &[&str]) -> String {
    let mut z = format!(
        "$ORIGIN {origin}\n$TTL 60\n@ IN SOA ns.{origin} hostmaster.{origin} {serial} {refresh} 1 600 60\n@ IN NS localhost.\n"
    );
    for n in names {
        z.push_str(&format!("{n} IN CNAME .\n"));
    }
    z
}

/// NSD serving `zone` from `dir/zone.rpz` on `addr`, NOTIFY to `notify`, transfers to anyone on
/// loopback (with `key`: only with the key).
pub fn start_nsd(dir: &Path, addr: SocketAddr, zone: &str, notify: SocketAddr, key: bool) -> Proc {
    let d = dir.display();
    let (key_block, acl) = if key {
        (
            format!("key:\n    name: \"{KEY_NAME}\"\n    algorithm: hmac-sha256\n    secret: \"{KEY_SECRET}\"\n"),
            KEY_NAME.to_string(),
        )
    } else {
        (String::new(), "NOKEY".to_string())
    };
    let conf = format!(
        "server:\n    ip-address: {ip}@{port}\n    do-ip6: no\n    server-count: 1\n    username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n    database: \"\"\n    zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n    pidfile: \"{d}/nsd.pid\"\n    verbosity: 2\nremote-control:\n    control-enable: no\n{key_block}zone:\n    name: \"{zone}\"\n    zonefile: \"zone.rpz\"\n    provide-xfr: 127.0.0.0/8 {acl}\n    notify: {nip}@{nport} NOKEY\n",
        ip = addr.ip(),
        port = addr.port(),
        nip = notify.ip(),
        nport = notify.port(),
    );
    Proc::launch(dir, "nsd", "-d", &conf)
}

/// BIND (`named -g`) as primary of `zone` from `dir/zone.rpz` on 127.0.0.1:`port` (BIND listens
/// only on interface addresses), IXFR from differences, NOTIFY to `notify`, transfers only
/// with the key.
pub fn start_named(dir: &Path, port: u16, zone: &str, notify: SocketAddr) -> Proc {
    let conf = format!(
        "options {{\n    directory \"{d}\";\n    pid-file none;\n    listen-on port {port} {{ 127.0.0.1; }};\n    listen-on-v6 {{ none; }};\n    recursion no;\n    notify explicit;\n    also-notify {{ {nip} port {nport}; }};\n    ixfr-from-differences yes;\n    max-ixfr-ratio unlimited;\n    notify-delay 0;\n    dnssec-validation no;\n    allow-transfer {{ key {KEY_NAME}; }};\n}};\nkey \"{KEY_NAME}\" {{ algorithm hmac-sha256; secret \"{KEY_SECRET}\"; }};\ncontrols {{ }};\nzone \"{zone}\" {{ type primary; file \"zone.rpz\"; }};\n",
        d = dir.display(),
        nip = notify.ip(),
        nport = notify.port(),
    );
    Proc::launch(dir, "named", "-g", &conf)
}

/// Unbound resolving example.com from the test hierarchy's server, with an RPZ zone
/// transferred from `primary` (NOTIFY accepted from its address).
pub fn start_unbound(
    dir: &Path,
    addr: SocketAddr,
    example_com: SocketAddr,
    zone: &str,
    primary: SocketAddr,
) -> Proc {
    let conf = format!(
        "server:\n    interface: {ip}@{port}\n    port: {port}\n    do-ip6: no\n    do-daemonize: no\n    username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"\"\n    use-syslog: no\n    logfile: \"\"\n    verbosity: 1\n    access-control: 127.0.0.0/8 allow\n    do-not-query-localhost: no\n    module-config: \"respip iterator\"\n    qname-minimisation: no\n    cache-max-ttl: 0\n    cache-max-negative-ttl: 0\nstub-zone:\n    name: \"example.com.\"\n    stub-addr: {eip}@{eport}\nrpz:\n    name: \"{zone}\"\n    primary: {pip}@{pport}\n    allow-notify: {pip}\n",
        ip = addr.ip(),
        port = addr.port(),
        d = dir.display(),
        eip = example_com.ip(),
        eport = example_com.port(),
        pip = primary.ip(),
        pport = primary.port(),
    );
    Proc::launch(dir, "unbound", "-d", &conf)
}

/// What the fake primary sends.
pub mod fake {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    use hickory_proto::op::{Message, OpCode};
    use hickory_proto::rr::rdata::{CNAME, SOA};
    use hickory_proto::rr::{Name, RData, Record};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    pub const GOOD: u8 = 0;
    /// Random bytes where the answer should be.
    pub const GARBAGE: u8 = 1;
    /// A newer serial with 50 records.
    pub const OVERSIZED: u8 = 2;
    /// Half a message, then the connection closes.
    pub const CUT: u8 = 3;

    /// A primary on `addr` for `zone` that misbehaves as `mode` says; returns the bound address.
    /// Its SOA says refresh 1 s, retry 1 s, expire 3 s, so a test sees the timers at work.
    pub async fn start(
        addr: &str,
        zone: &'static str,
        mode: Arc<AtomicU8>,
    ) -> std::net::SocketAddr {
        let l = tokio::net::TcpListener::bind(addr).await.unwrap();
        let bound = l.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = l.accept().await {
                let mode = mode.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    if c.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
                    if c.read_exact(&mut req).await.is_err() {
                        return;
                    }
                    let Ok(q) = Message::from_vec(&req) else {
                        return;
                    };
                    let bytes = answer(&q, zone, mode);
                    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
                    framed.extend_from_slice(&bytes);
                    if mode == CUT {
                        framed.truncate(framed.len() / 2);
                    }
                    let _ = c.write_all(&framed).await;
                    let _ = c.shutdown().await;
                });
            }
        });
        bound
    }

    fn answer(q: &Message, zone: &str, mode: u8) -> Vec<u8> {
        if mode == GARBAGE {
            let mut b: Vec<u8> = (0..300u32).map(|i| (i * 7919 % 251) as u8).collect();
            b[0..2].copy_from_slice(&q.metadata.id.to_be_bytes());
            return b;
        }
        let z = Name::from_ascii(zone).unwrap();
        let (serial, count) = if mode == OVERSIZED { (6, 50) } else { (5, 1) };
        let soa = Record::from_rdata(
            z.clone(),
            60,
            RData::SOA(SOA::new(
                Name::from_ascii("ns.").unwrap(),
                Name::from_ascii("h.").unwrap(),
                serial,
                1,
                1,
                3,
                60,
            )),
        );
        let mut m = Message::response(q.metadata.id, OpCode::Query);
        m.add_queries(q.queries.clone());
        m.add_answer(soa.clone());
        for i in 0..count {
            let owner = if i == 0 {
                "bad1.example.com".to_string()
            } else {
                format!("n{i}.example.com")
            };
            let name = Name::from_ascii(owner).unwrap().append_domain(&z).unwrap();
            m.add_answer(Record::from_rdata(
                name,
                60,
                RData::CNAME(CNAME(Name::root())),
            ));
        }
        m.add_answer(soa);
        m.to_vec().unwrap()
    }
}

/// PowerDNS Recursor forwarding example.com to the hierarchy's server, with the RPZ zone from
/// `primary`, polled every second (4.8 takes no NOTIFY for RPZ).
pub fn start_pdns_recursor(
    dir: &Path,
    addr: SocketAddr,
    example_com: SocketAddr,
    zone: &str,
    primary: SocketAddr,
) -> Proc {
    std::fs::write(
        dir.join("recursor.lua"),
        format!("rpzPrimary(\"{primary}\", \"{zone}\", {{refresh=1}})\n"),
    )
    .unwrap();
    let d = dir.display();
    let conf = format!(
        "local-address={ip}\nlocal-port={port}\nallow-from=127.0.0.0/8\ndont-query=\nlua-config-file={d}/recursor.lua\nsocket-dir={d}\ndaemon=no\nwrite-pid=no\ndisable-syslog=yes\nthreads=1\nforward-zones=example.com={example_com}\nmax-cache-ttl=1\nmax-negative-ttl=1\npacketcache-ttl=0\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    std::fs::write(dir.join("recursor.conf"), conf).unwrap();
    Proc::spawn(
        "pdns_recursor",
        Command::new(which("pdns_recursor").unwrap()).arg(format!("--config-dir={d}")),
        dir.join("pdns.log"),
    )
}
