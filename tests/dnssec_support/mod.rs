//! A DNSSEC-signed test hierarchy (signed in the test with `dnsward::dnssec::signed`), served
//! in-process as a `KeyFetcher` and over real sockets by a small authoritative server, plus a
//! `KeyFetcher` that asks that server over UDP.
//!
//! Zones: `.` (the trust anchor), and one TLD per scenario: `secure.` (NSEC, P-256),
//! `nsec3.` (NSEC3, Ed25519), `optout.` (NSEC3 opt-out, P-384, unsigned child `child.optout.`),
//! `slow.` (NSEC3 with 500 iterations), `expired.`, `nokey.` (no DNSKEY RRset), `badsig.`
//! (one byte of the RRSIG of `www.badsig. A` flipped), `stripped.` (no RRSIG for
//! `www.stripped. A`), `nonsec.` (no NSEC records), `rsa.` (RSA/SHA-256, NSEC3; only
//! where openssl can make the keys), `insecure.`
//! (unsigned, no DS), `unsupported.` (only a DS of algorithm 253; no zone served).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
use hickory_proto::dnssec::Algorithm;
use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use dnsward::dnssec::signed::{DenialChain, SignOptions, SignedZone};
use dnsward::dnssec::{FetchError, Fetched, KeyFetcher, Limits, TrustAnchorSet, Validator};

pub const SOA: &str =
    "@ 3600 IN SOA ns.invalid. host.invalid. 1 7200 3600 1209600 300\n@ 3600 IN NS ns.invalid.\n";

pub fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn nsec3(iterations: u16, opt_out: bool) -> DenialChain {
    DenialChain::Nsec3 {
        iterations,
        salt: vec![0xab, 0xcd],
        opt_out,
    }
}

pub fn covers(r: &Record, t: RecordType) -> bool {
    matches!(&r.data, RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == t)
}

pub fn sign(origin: &str, data: &str, opts: SignOptions) -> SignedZone {
    SignedZone::sign(origin, &format!("{SOA}{data}"), opts).unwrap()
}

/// Two RSA-2048 keys (PKCS#8 DER) made once per test process with `openssl genpkey`; `None`
/// without openssl, after the `SKIP:` line (a failure under CI): the `rsa.` zone is then left
/// out.
pub fn rsa_keys() -> Option<(Vec<u8>, Vec<u8>)> {
    static KEYS: std::sync::OnceLock<Option<(Vec<u8>, Vec<u8>)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        if !crate::common::tools::require_tool("openssl", "openssl") {
            return None;
        }
        let one = || {
            // genpkey writes PKCS#1 DER; `pkcs8 -topk8` wraps it.
            let script =
                "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -outform PEM \
                          | openssl pkcs8 -topk8 -nocrypt -outform DER";
            let out = std::process::Command::new("sh")
                .args(["-c", script])
                .stderr(std::process::Stdio::null())
                .output()
                .ok()?;
            assert!(
                out.status.success() && !out.stdout.is_empty(),
                "openssl made no RSA key"
            );
            Some(out.stdout)
        };
        Some((one()?, one()?))
    })
    .clone()
}

/// The signed hierarchy, and how many DS/DNSKEY fetches it answered.
pub struct Hierarchy {
    pub zones: Vec<SignedZone>,
    pub fetches: AtomicUsize,
}

impl Hierarchy {
    /// The hierarchy signed for `now`, with `tamper` applied to the TLD zones before the
    /// root (and their DS records in it) is signed.
    pub fn build_at(now: u32, tamper: impl FnOnce(&mut Vec<SignedZone>)) -> Arc<Hierarchy> {
        let mut tlds = Vec::new();
        let data = "www 300 IN A 192.0.2.1\n*.wild 300 IN A 192.0.2.9\nalias 300 IN CNAME www\n\
                    a.b.deep 300 IN A 192.0.2.3\ndangling 300 IN CNAME gone\n";
        let mut opts = SignOptions::new(now);
        tlds.push(sign("secure.", data, opts.clone()));
        opts.algorithm = Algorithm::ED25519;
        opts.denial = nsec3(5, false);
        tlds.push(sign("nsec3.", data, opts.clone()));
        opts.algorithm = Algorithm::ECDSAP384SHA384;
        opts.denial = nsec3(0, true);
        let optout = format!("{data}child 300 IN NS ns.child\nns.child 300 IN A 192.0.2.53\n");
        tlds.push(sign("optout.", &optout, opts.clone()));
        opts.denial = nsec3(500, false);
        tlds.push(sign("slow.", data, opts.clone()));
        let mut old = SignOptions::new(now);
        (old.inception, old.expiration) = (now - 40 * 86400, now - 10 * 86400);
        tlds.push(sign("expired.", data, old));
        let mut nokey = sign("nokey.", data, SignOptions::new(now));
        nokey
            .records
            .retain(|r| r.record_type() != RecordType::DNSKEY && !covers(r, RecordType::DNSKEY));
        tlds.push(nokey);
        if let Some(keys) = rsa_keys() {
            let rsa = SignOptions {
                algorithm: Algorithm::RSASHA256,
                pkcs8_keys: Some(keys),
                ..SignOptions::new(now)
            };
            tlds.push(sign(
                "rsa.",
                data,
                SignOptions {
                    denial: nsec3(0, false),
                    ..rsa
                },
            ));
        }
        let mut badsig = sign("badsig.", data, SignOptions::new(now));
        for r in badsig
            .records
            .iter_mut()
            .filter(|r| r.name == name("www.badsig.") && covers(r, RecordType::A))
        {
            corrupt_rrsig(r);
        }
        tlds.push(badsig);
        let mut stripped = sign("stripped.", data, SignOptions::new(now));
        stripped
            .records
            .retain(|r| !(r.name == name("www.stripped.") && covers(r, RecordType::A)));
        tlds.push(stripped);
        let mut nonsec = sign("nonsec.", data, SignOptions::new(now));
        nonsec
            .records
            .retain(|r| r.record_type() != RecordType::NSEC && !covers(r, RecordType::NSEC));
        tlds.push(nonsec);
        let mut insecure = sign("insecure.", data, SignOptions::new(now));
        insecure.unsign();
        tlds.push(insecure);
        tamper(&mut tlds);

        let mut root_text = String::new();
        // Zones added below a TLD by `tamper` are delegated by their parent, not the root.
        for tld in tlds.iter().filter(|z| z.apex.num_labels() == 1) {
            root_text += &format!("{} 3600 IN NS ns.invalid.\n", tld.apex);
            if tld.apex != name("insecure.") {
                root_text += &format!("{}\n", tld.ds_line());
            }
        }
        root_text += "unsupported. 3600 IN NS ns.invalid.\nunsupported. 3600 IN DS 1234 253 2 ";
        root_text += &"AB".repeat(32);
        root_text += "\n";
        let mut zones = vec![sign(".", &root_text, SignOptions::new(now))];
        zones.extend(tlds);
        Arc::new(Hierarchy {
            zones,
            fetches: AtomicUsize::new(0),
        })
    }

    pub fn zone(&self, apex: &str) -> &SignedZone {
        self.zones.iter().find(|z| z.apex == name(apex)).unwrap()
    }

    /// The zone that answers (qname, qtype): the deepest one holding the name; for DS the
    /// parent side, i.e. not the zone whose apex is the name.
    pub fn answering_zone(&self, qname: &Name, rtype: RecordType) -> Option<&SignedZone> {
        self.zones
            .iter()
            .filter(|z| {
                z.apex.zone_of(qname)
                    && (rtype != RecordType::DS || &z.apex != qname || z.apex.is_root())
            })
            .max_by_key(|z| z.apex.num_labels())
    }

    pub fn anchors(&self) -> TrustAnchorSet {
        let mut anchors = TrustAnchorSet::empty();
        anchors.add_dnskey(Name::root(), self.zone(".").ksk().clone());
        anchors
    }

    pub fn validator(&self) -> Validator {
        Validator::new(self.anchors(), Vec::new(), Limits::default())
    }
}

#[async_trait]
impl KeyFetcher for Hierarchy {
    async fn fetch(&self, qname: &Name, rtype: RecordType) -> Result<Fetched, FetchError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let zone = self
            .answering_zone(qname, rtype)
            .ok_or_else(|| FetchError::Failed(format!("no zone for {qname}")))?;
        Ok(Fetched {
            message: zone.respond(qname, rtype),
            zone: zone.apex.clone(),
        })
    }
}

/// An authoritative server for every zone of a hierarchy, on 127.0.0.1 (UDP and TCP, one
/// port). Answers carry an OPT echoing DO; a UDP answer larger than the query's payload size
/// goes out with TC=1. Stops when dropped.
pub struct Authority {
    pub addr: SocketAddr,
    /// Questions answered, over UDP and TCP.
    pub queries: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Authority {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A UDP socket and a TCP listener on the same free port of 127.0.0.1 (a port free for UDP
/// may be taken for TCP by another test: then another port).
async fn bind_udp_and_tcp() -> (UdpSocket, TcpListener) {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        if let Ok(tcp) = TcpListener::bind(udp.local_addr().unwrap()).await {
            return (udp, tcp);
        }
    }
    panic!("no port free for both UDP and TCP on 127.0.0.1");
}

impl Authority {
    /// Writes `root.hints` (the root of `h` at this authority) and `anchor.ds` (its DS) in
    /// `dir`; returns the `[resolver]` table of a dnsward iterating from them and validating.
    pub fn validating_resolver(&self, h: &Hierarchy, dir: &std::path::Path) -> String {
        std::fs::write(
            dir.join("root.hints"),
            format!(
                ".  3600000 IN NS a.root.test.\na.root.test. 3600000 IN A {}\n",
                self.addr.ip()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("anchor.ds"),
            format!("{}\n", h.zone(".").ds_line()),
        )
        .unwrap();
        format!(
            "[resolver]\nroot_hints = \"root.hints\"\nupstream_port = {}\ntimeout_ms = 3000\n\
             dnssec = \"validate\"\ntrust_anchor = \"anchor.ds\"\n",
            self.addr.port()
        )
    }

    pub async fn start(h: Arc<Hierarchy>) -> Authority {
        Self::start_refusing_ds(h, Vec::new()).await
    }

    /// As `start`, but DS questions for names strictly below one of `refuse_ds_below` get
    /// REFUSED (servers of an unsigned zone that do not answer DS at all).
    pub async fn start_refusing_ds(h: Arc<Hierarchy>, refuse_ds_below: Vec<Name>) -> Authority {
        let refuse = Arc::new(refuse_ds_below);
        let queries = Arc::new(AtomicUsize::new(0));
        let (count_udp, count_tcp) = (queries.clone(), queries.clone());
        let (udp, tcp) = bind_udp_and_tcp().await;
        let addr = udp.local_addr().unwrap();
        let (hu, refuse_udp) = (h.clone(), refuse.clone());
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65535];
            loop {
                let Ok((n, peer)) = udp.recv_from(&mut buf).await else {
                    return;
                };
                count_udp.fetch_add(1, Ordering::Relaxed);
                if let Some(answer) = answer_bytes(&hu, &refuse_udp, &buf[..n], true) {
                    let _ = udp.send_to(&answer, peer).await;
                }
            }
        });
        let tcp_task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = tcp.accept().await else {
                    return;
                };
                let (h, refuse, count) = (h.clone(), refuse.clone(), count_tcp.clone());
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while stream.read_exact(&mut len).await.is_ok() {
                        let mut query = vec![0u8; u16::from_be_bytes(len) as usize];
                        if stream.read_exact(&mut query).await.is_err() {
                            return;
                        }
                        count.fetch_add(1, Ordering::Relaxed);
                        let Some(answer) = answer_bytes(&h, &refuse, &query, false) else {
                            return;
                        };
                        let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
                        framed.extend(answer);
                        if stream.write_all(&framed).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Authority {
            addr,
            queries,
            tasks: vec![udp_task, tcp_task],
        }
    }
}

fn answer_bytes(
    h: &Hierarchy,
    refuse_ds_below: &[Name],
    query: &[u8],
    udp: bool,
) -> Option<Vec<u8>> {
    let query = Message::from_vec(query).ok()?;
    let q = query.queries.first()?.clone();
    let zone = h.answering_zone(q.name(), q.query_type())?;
    let mut answer = if q.query_type() == RecordType::DS
        && refuse_ds_below
            .iter()
            .any(|z| z.zone_of(q.name()) && z != q.name())
    {
        let mut m = Message::response(0, hickory_proto::op::OpCode::Query);
        m.metadata.response_code = hickory_proto::op::ResponseCode::Refused;
        m
    } else {
        respond_across_zones(h, zone, q.name(), q.query_type())
    };
    answer.metadata.id = query.metadata.id;
    answer.metadata.recursion_desired = query.metadata.recursion_desired;
    answer.queries = vec![q];
    let payload = query
        .edns
        .as_ref()
        .map(|e| e.max_payload())
        .unwrap_or(512)
        .max(512);
    if let Some(client) = &query.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(client.flags().dnssec_ok);
        answer.set_edns(edns);
    }
    let bytes = answer.to_vec().ok()?;
    if udp && bytes.len() > payload as usize {
        answer.answers.clear();
        answer.authorities.clear();
        answer.additionals.clear();
        answer.metadata.truncation = true;
        return answer.to_vec().ok();
    }
    Some(bytes)
}

/// `zone`'s answer, and where its CNAME chain leads into another zone the authority serves
/// (a child served by the same server included), that zone's answer appended, as a server
/// authoritative for both sends it: the chain's records signed by each zone's own keys.
fn respond_across_zones(
    h: &Hierarchy,
    zone: &SignedZone,
    qname: &Name,
    qtype: RecordType,
) -> Message {
    let mut answer = zone.respond(qname, qtype);
    let mut apex = zone.apex.clone();
    for _ in 0..8 {
        let target = answer.answers.iter().rev().find_map(|r| match &r.data {
            RData::CNAME(c) if qtype != RecordType::CNAME => Some(c.0.to_lowercase()),
            _ => None,
        });
        let Some(target) = target else { break };
        if answer.answers.iter().any(|r| r.name == target) {
            break;
        }
        let Some(next) = h.answering_zone(&target, qtype).filter(|z| z.apex != apex) else {
            break;
        };
        let more = next.respond(&target, qtype);
        answer.answers.extend(more.answers);
        answer.authorities = more.authorities;
        answer.metadata.response_code = more.metadata.response_code;
        answer.metadata.authoritative = more.metadata.authoritative;
        apex = next.apex.clone();
    }
    answer
}

/// Asks `server` over UDP (TCP when truncated) with DO=1; bounded by 3 s per attempt.
pub async fn ask_dnssec(server: SocketAddr, qname: &Name, rtype: RecordType) -> Option<Message> {
    let mut query = Message::query();
    query.metadata.id = crate::common::rand_id();
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(qname.clone(), rtype));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(true);
    query.set_edns(edns);
    let bytes = query.to_vec().ok()?;
    let sock = UdpSocket::bind("127.0.0.1:0").await.ok()?;
    sock.send_to(&bytes, server).await.ok()?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    let answer = Message::from_vec(&buf[..n]).ok()?;
    if answer.metadata.id != query.metadata.id {
        return None;
    }
    if !answer.metadata.truncation {
        return Some(answer);
    }
    let fut = async {
        let mut stream = tokio::net::TcpStream::connect(server).await.ok()?;
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend(&bytes);
        stream.write_all(&framed).await.ok()?;
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut answer = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut answer).await.ok()?;
        Message::from_vec(&answer).ok()
    };
    tokio::time::timeout(Duration::from_secs(3), fut)
        .await
        .ok()?
}

/// Breaks an RRSIG (one bit of its signature flipped); other records are left alone.
pub fn corrupt_rrsig(r: &mut Record) {
    if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data {
        let mut bytes = sig.sig().to_vec();
        bytes[10] ^= 0x01;
        r.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
            sig.input().clone(),
            bytes,
        )));
    }
}

/// A `KeyFetcher` asking the authority over real sockets; the answering zone is known from
/// the hierarchy (as the iterator knows the zone cut it asked).
pub struct UdpFetcher {
    pub h: Arc<Hierarchy>,
    pub server: SocketAddr,
}

#[async_trait]
impl KeyFetcher for UdpFetcher {
    async fn fetch(&self, qname: &Name, rtype: RecordType) -> Result<Fetched, FetchError> {
        let zone = self
            .h
            .answering_zone(qname, rtype)
            .ok_or_else(|| FetchError::Failed(format!("no zone for {qname}")))?
            .apex
            .clone();
        let message = ask_dnssec(self.server, qname, rtype)
            .await
            .ok_or_else(|| FetchError::Unreachable(format!("{} did not answer", self.server)))?;
        Ok(Fetched { message, zone })
    }
}

/// An RSA signing key held by `openssl` (keys and signatures made by the command): signs with
/// what ring cannot, RSA/SHA-1 (algorithms 5 and 7) and keys under 1024 bits. `None` without
/// openssl.
pub struct OpensslRsaKey {
    _dir: tempfile::TempDir,
    pem: std::path::PathBuf,
    algorithm: Algorithm,
    public: Vec<u8>,
}

impl OpensslRsaKey {
    pub fn generate(bits: u32, algorithm: Algorithm) -> Option<OpensslRsaKey> {
        let dir = tempfile::tempdir().ok()?;
        let pem = dir.path().join("key.pem");
        let made = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
            .arg(format!("rsa_keygen_bits:{bits}"))
            .arg("-out")
            .arg(&pem)
            .stderr(std::process::Stdio::null())
            .status()
            .ok()?;
        if !made.success() {
            return None;
        }
        let out = std::process::Command::new("openssl")
            .args(["rsa", "-noout", "-modulus", "-in"])
            .arg(&pem)
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let hex = text.trim().strip_prefix("Modulus=")?;
        let modulus = data_encoding::HEXUPPER.decode(hex.as_bytes()).ok()?;
        // RFC 3110: exponent length, exponent (genpkey's 65537), modulus.
        let mut public = vec![3, 1, 0, 1];
        public.extend(modulus);
        Some(OpensslRsaKey {
            _dir: dir,
            pem,
            algorithm,
            public,
        })
    }
}

impl hickory_proto::dnssec::SigningKey for OpensslRsaKey {
    fn sign(
        &self,
        tbs: &hickory_proto::dnssec::TBS,
    ) -> hickory_proto::dnssec::DnsSecResult<Vec<u8>> {
        use std::io::Write;
        #[allow(deprecated)]
        let digest = match self.algorithm {
            Algorithm::RSASHA1 | Algorithm::RSASHA1NSEC3SHA1 => "-sha1",
            Algorithm::RSASHA512 => "-sha512",
            _ => "-sha256",
        };
        let mut child = std::process::Command::new("openssl")
            .args(["dgst", digest, "-binary", "-sign"])
            .arg(&self.pem)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .map_err(|e| e.to_string())?;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(tbs.as_ref())
            .map_err(|e| e.to_string())?;
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err("openssl dgst -sign failed".into());
        }
        Ok(out.stdout)
    }

    fn to_public_key(
        &self,
    ) -> hickory_proto::dnssec::DnsSecResult<hickory_proto::dnssec::PublicKeyBuf> {
        Ok(hickory_proto::dnssec::PublicKeyBuf::new(
            self.public.clone(),
            self.algorithm,
        ))
    }

    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

/// A zone signed with two openssl-held RSA keys of `bits` bits and `algorithm`; `None`
/// without openssl.
pub fn sign_with_openssl(
    origin: &str,
    data: &str,
    bits: u32,
    algorithm: Algorithm,
    mut opts: SignOptions,
) -> Option<SignedZone> {
    let ksk = OpensslRsaKey::generate(bits, algorithm)?;
    let zsk = OpensslRsaKey::generate(bits, algorithm)?;
    opts.algorithm = algorithm;
    opts.external_keys = Some(dnsward::dnssec::signed::ExternalKeys {
        ksk: Arc::new(ksk),
        zsk: Arc::new(zsk),
    });
    Some(sign(origin, data, opts))
}
