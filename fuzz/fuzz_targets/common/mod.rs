//! What several fuzz targets share: a runtime, an `Engine` over lists on disk with an upstream
//! that never leaves the process, and the checks of a DNS answer.

#![allow(dead_code)]

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use dnsward::config::Config;
use dnsward::pipeline::record::Recorder;
use dnsward::pipeline::Engine;
use dnsward::policy::reload::PolicyStore;
use dnsward::upstream::{ClientFlags, Upstream, UpstreamError};

/// One current-thread runtime per process.
pub static RT: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
});

/// A directory for files the targets write (lists, downloads): in /dev/shm when there is one.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("dnsward-fuzz-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// An upstream in-process: `*.cname.test` is a CNAME to `evil.test` (blocked: response
/// policy), `*.bad-ip.test` answers 198.51.100.7 (a blocked address), `nx.*` is NXDOMAIN,
/// `fail.*` fails, anything else gets one A/AAAA record (or NODATA for other types).
pub struct FakeUpstream;

#[async_trait]
impl Upstream for FakeUpstream {
    async fn resolve(&self, query: Query, _flags: ClientFlags) -> Result<Message, UpstreamError> {
        let name = query.name().clone();
        let text = name.to_ascii().to_ascii_lowercase();
        if text.starts_with("fail.") {
            return Err(UpstreamError::Failed("fuzz".into()));
        }
        let mut m = Message::response(0, OpCode::Query);
        m.metadata.recursion_available = true;
        m.add_query(query.clone());
        let soa = || {
            Record::from_rdata(
                Name::from_ascii("test.").unwrap(),
                300,
                RData::SOA(SOA::new(
                    Name::from_ascii("ns.test.").unwrap(),
                    Name::from_ascii("host.test.").unwrap(),
                    1,
                    3600,
                    600,
                    86400,
                    60,
                )),
            )
        };
        if text.starts_with("nx.") {
            m.metadata.response_code = ResponseCode::NXDomain;
            m.add_authority(soa());
            return Ok(m);
        }
        if text.ends_with("cname.test.") {
            let target = Name::from_ascii("evil.test.").unwrap();
            m.add_answer(Record::from_rdata(
                name.clone(),
                60,
                RData::CNAME(CNAME(target.clone())),
            ));
            m.add_answer(Record::from_rdata(
                target,
                60,
                RData::A(A::new(192, 0, 2, 66)),
            ));
            return Ok(m);
        }
        let rdata = match query.query_type() {
            RecordType::A if text.ends_with("bad-ip.test.") => RData::A(A::new(198, 51, 100, 7)),
            RecordType::A => RData::A(A::new(192, 0, 2, 1)),
            RecordType::AAAA => RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
            _ => {
                m.add_authority(soa());
                return Ok(m);
            }
        };
        m.add_answer(Record::from_rdata(name, 60, rdata));
        Ok(m)
    }
}

/// An `Engine` with a threat list, an abandoned list with the sinkhole action, an allow list,
/// an IP list, an RPZ zone with local data, and a named client in a group of its own.
pub static ENGINE: LazyLock<Arc<Engine>> = LazyLock::new(|| {
    let dir = scratch_dir("engine");
    std::fs::write(
        dir.join("threat.txt"),
        "evil.test\n||ads.test^\n0.0.0.0 tracker.test\n",
    )
    .unwrap();
    std::fs::write(dir.join("gone.txt"), "old.test\n*.wild.test\n").unwrap();
    std::fs::write(dir.join("allow.txt"), "good.evil.test\n").unwrap();
    std::fs::write(dir.join("ips.txt"), "198.51.100.0/24\n").unwrap();
    std::fs::write(
        dir.join("local.rpz"),
        "$ORIGIN rpz.local.\n@ SOA ns. host. 1 3600 600 86400 60\n\
         walled.test CNAME .\n\
         garden.test A 192.0.2.99\ngarden.test TXT \"walled garden\"\n\
         *.nodata.test CNAME *.\n\
         drop.test CNAME rpz-drop.\n\
         pass.evil.test CNAME rpz-passthru.\n",
    )
    .unwrap();
    let text = r#"
[server]
listen = ["127.0.0.1:0"]
name = "fuzz"
allow = ["0.0.0.0/0", "::/0"]
deny = ["192.0.2.0/24"]
[resolver]
mode = "forward"
forwarders = ["127.0.0.1:9"]
dnssec = "off"
[policy]
contact = "hotline"
watch = false
[[lists]]
name = "threat"
category = "threat"
path = "threat.txt"
[[lists]]
name = "gone"
category = "abandoned"
path = "gone.txt"
action = "sinkhole"
[[lists]]
name = "allow"
category = "allow"
path = "allow.txt"
[[lists]]
name = "ips"
category = "threat"
path = "ips.txt"
format = "ip"
[[lists]]
name = "local"
category = "threat"
path = "local.rpz"
format = "rpz"
[[clients]]
name = "Finance"
cidr = "10.0.0.0/8"
group = "finance"
[[groups]]
name = "finance"
lists = ["threat"]
"#;
    let path = dir.join("dnsward.toml");
    std::fs::write(&path, text).unwrap();
    let config = Config::load(&path).unwrap_or_else(|p| panic!("fuzz config: {p:?}"));
    let (policy, report) = PolicyStore::load_grouped(config.list_specs(), config.groups_spec());
    let _ = report;
    let _guard = RT.enter();
    Arc::new(Engine::new(
        &config,
        Arc::new(FakeUpstream),
        policy,
        Recorder::disabled(),
    ))
});

/// The checks of an answer to `query` (the bytes the client sent, parsed by dnswire as a
/// query): a DNS message hickory reads, a response with the query's ID and opcode, the
/// question echoed byte for byte when there is one, the query's RD and CD bits kept, AA never
/// set, and an OPT only if the query had one.
pub fn check_answer(query: &[u8], answer: &[u8]) {
    let q = dnsward::dnswire::parse_query(query);
    let m = Message::from_vec(answer)
        .unwrap_or_else(|e| panic!("answer is not a DNS message ({e}): {answer:02x?}"));
    let id = u16::from_be_bytes([query[0], query[1]]);
    assert_eq!(m.metadata.id, id, "answer ID");
    assert_eq!(m.metadata.message_type, MessageType::Response, "QR set");
    assert!(!m.metadata.authoritative, "AA never set");
    let qflags = u16::from_be_bytes([query[2], query[3]]);
    assert_eq!(
        u8::from(m.metadata.op_code),
        ((qflags >> 11) & 0xf) as u8,
        "opcode kept"
    );
    let aflags = u16::from_be_bytes([answer[2], answer[3]]);
    assert_eq!(aflags & 0x0100, qflags & 0x0100, "RD kept");
    if let Ok(q) = q {
        assert_eq!(aflags & 0x0010, qflags & 0x0010, "CD kept");
        // The question, when echoed, is the query's own bytes.
        if u16::from_be_bytes([answer[4], answer[5]]) == 1 {
            let end = 12 + q.qname.len();
            assert_eq!(&answer[12..end], q.qname, "question name echoed as sent");
            assert_eq!(
                &answer[end..end + 4],
                &query[12 + q.qname.len()..12 + q.qname.len() + 4],
                "question type and class echoed"
            );
        }
        if q.edns.is_none() {
            assert!(m.edns.is_none(), "OPT only when the query had one");
        }
    }
}

pub fn client_of(b: u8) -> IpAddr {
    match b % 5 {
        0 => "127.0.0.1".parse().unwrap(),
        1 => "::1".parse().unwrap(),
        2 => "10.1.2.3".parse().unwrap(), // named client, group "finance"
        3 => "192.0.2.10".parse().unwrap(), // denied
        _ => "2001:db8::77".parse().unwrap(),
    }
}
