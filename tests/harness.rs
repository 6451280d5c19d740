//! The scripted-authority harness itself: each behaviour does what it says over real UDP and
//! TCP sockets, and every query is counted. (The scenarios that use it against dnsward are in
//! tests/iterator/.)

mod common;
mod scripted;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{query_message, tcp_raw, udp_raw};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use scripted::{name, Behaviour, Net, Reply, Running};

fn at(h: &Running, ip: IpAddr) -> SocketAddr {
    SocketAddr::new(ip, h.port)
}

async fn udp(
    h: &Running,
    ip: IpAddr,
    qname: &str,
    rtype: RecordType,
    edns: bool,
) -> Option<Vec<u8>> {
    let q = query_message(qname, rtype, edns.then_some(1232));
    udp_raw(at(h, ip), &q.to_vec().unwrap(), Duration::from_millis(700)).await
}

async fn udp_msg(h: &Running, ip: IpAddr, qname: &str, rtype: RecordType, edns: bool) -> Message {
    Message::from_vec(&udp(h, ip, qname, rtype, edns).await.expect("an answer")).expect("parses")
}

fn texts(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| format!("{} {} {}", r.name, r.record_type(), r.data))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_data_is_served_like_an_authoritative_server() {
    let mut net = Net::new();
    let (root, ex) = (net.addr(1), net.addr(3));
    net.zone(root, ".", &format!("@ NS a.root.test.\na.root.test. A {root}\nexample.test. NS ns.example.test.\nns.example.test. A {ex}"));
    net.zone(
        ex,
        "example.test.",
        "@ NS ns\nns A 127.0.0.9\nwww A 192.0.2.1\nalias CNAME www\nout CNAME www.elsewhere.test.\nold DNAME new.example.test.\nnew A 192.0.2.3\nx.new A 192.0.2.4\na.b.c A 192.0.2.7",
    );
    let h = net.start(root).await;

    // Referral with glue, AA clear.
    let m = udp_msg(&h, root, "www.example.test.", RecordType::A, true).await;
    assert!(!m.metadata.authoritative);
    assert_eq!(
        texts(&m.authorities),
        vec!["example.test. NS ns.example.test."]
    );
    assert_eq!(
        texts(&m.additionals),
        vec![format!("ns.example.test. A {ex}")]
    );
    assert!(m.edns.is_some(), "EDNS answered with EDNS");

    // Answer, CNAME followed in the zone, CNAME out of the zone, DNAME synthesis.
    let m = udp_msg(&h, ex, "WWW.example.test.", RecordType::A, false).await;
    assert!(m.metadata.authoritative);
    assert_eq!(
        m.queries[0].name().to_ascii(),
        "WWW.example.test.",
        "question copied"
    );
    assert_eq!(texts(&m.answers), vec!["www.example.test. A 192.0.2.1"]);
    assert!(m.edns.is_none());
    let m = udp_msg(&h, ex, "alias.example.test.", RecordType::A, true).await;
    assert_eq!(
        texts(&m.answers),
        vec![
            "alias.example.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.1"
        ]
    );
    let m = udp_msg(&h, ex, "out.example.test.", RecordType::A, true).await;
    assert_eq!(
        texts(&m.answers),
        vec!["out.example.test. CNAME www.elsewhere.test."]
    );
    let m = udp_msg(&h, ex, "x.old.example.test.", RecordType::A, true).await;
    assert_eq!(m.answers.len(), 2);
    assert_eq!(m.answers[0].record_type(), RecordType::DNAME);
    assert_eq!(
        texts(&m.answers[1..]),
        vec!["x.old.example.test. CNAME x.new.example.test."]
    );

    // NODATA, empty non-terminal, NXDOMAIN: SOA in authority.
    for (qname, rcode) in [
        ("www.example.test.", ResponseCode::NoError),
        ("b.c.example.test.", ResponseCode::NoError),
        ("nope.example.test.", ResponseCode::NXDomain),
    ] {
        let m = udp_msg(&h, ex, qname, RecordType::TXT, true).await;
        assert_eq!(m.metadata.response_code, rcode, "{qname}");
        assert!(m.answers.is_empty());
        assert!(
            matches!(m.authorities[0].data, RData::SOA(_)),
            "{qname}: {:?}",
            m.authorities
        );
    }
    // A name in none of its zones: REFUSED.
    let m = udp_msg(&h, ex, "www.other.test.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    assert_eq!(h.to(root), 1);
    assert_eq!(h.asked("www.example.test.", RecordType::A), 2);
    assert_eq!(h.count(|s| s.edns), h.total() - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misbehaviours_do_what_they_say() {
    let mut net = Net::new();
    let s = net.addr(1);
    net.zone(s, "example.test.", "www A 192.0.2.1\nbig TXT \"x\"");
    net.on(
        s,
        "timeout.example.test.",
        RecordType::A,
        Behaviour::Timeout,
    );
    net.on(
        s,
        "servfail.example.test.",
        RecordType::A,
        Behaviour::Rcode(ResponseCode::ServFail),
    );
    net.on_name(
        s,
        "old.example.test.",
        Behaviour::FormerrOnEdns(Box::new(Behaviour::Reply(
            Reply::authoritative().answer("old.example.test. 60 A 192.0.2.2"),
        ))),
    );
    net.on(
        s,
        "tc.example.test.",
        RecordType::A,
        Behaviour::TruncatedOverUdp(Box::new(Behaviour::Reply(
            Reply::authoritative().answer("tc.example.test. 60 A 192.0.2.3"),
        ))),
    );
    net.on(
        s,
        "www.example.test.",
        RecordType::AAAA,
        Behaviour::WrongId(Box::new(Behaviour::Zone)),
    );
    net.on(
        s,
        "www.example.test.",
        RecordType::MX,
        Behaviour::WrongQuestion(name("evil.example.test."), Box::new(Behaviour::Zone)),
    );
    net.on(
        s,
        "loop.example.test.",
        RecordType::A,
        Behaviour::compression_loop(),
    );
    net.on(
        s,
        "cut.example.test.",
        RecordType::A,
        Behaviour::truncated_message(Behaviour::Zone),
    );
    net.on(
        s,
        "huge.example.test.",
        RecordType::A,
        Behaviour::oversized(Behaviour::Reply(
            Reply::authoritative().answer("huge.example.test. 60 A 192.0.2.5"),
        )),
    );
    net.on(s, "lame.example.test.", RecordType::A, Behaviour::lame());
    net.on_zone(
        s,
        "slow.example.test.",
        Behaviour::Delay(Duration::from_millis(300), Box::new(Behaviour::Zone)),
    );
    let h = net.start(s).await;

    assert!(udp(&h, s, "timeout.example.test.", RecordType::A, true)
        .await
        .is_none());
    let m = udp_msg(&h, s, "servfail.example.test.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let m = udp_msg(&h, s, "old.example.test.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    assert!(m.edns.is_none());
    let m = udp_msg(&h, s, "old.example.test.", RecordType::A, false).await;
    assert_eq!(texts(&m.answers), vec!["old.example.test. A 192.0.2.2"]);

    let m = udp_msg(&h, s, "tc.example.test.", RecordType::A, true).await;
    assert!(m.metadata.truncation && m.answers.is_empty());
    let q = query_message("tc.example.test.", RecordType::A, Some(1232));
    let tcp = tcp_raw(at(&h, s), &q.to_vec().unwrap(), Duration::from_secs(2))
        .await
        .expect("TCP answer");
    let m = Message::from_vec(&tcp).unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(texts(&m.answers), vec!["tc.example.test. A 192.0.2.3"]);
    assert_eq!(h.count(|x| x.tcp), 1);

    let q = query_message("www.example.test.", RecordType::AAAA, Some(1232));
    let m = Message::from_vec(
        &udp_raw(at(&h, s), &q.to_vec().unwrap(), Duration::from_secs(1))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_ne!(m.metadata.id, q.metadata.id);
    let m = udp_msg(&h, s, "www.example.test.", RecordType::MX, true).await;
    assert_eq!(m.queries[0].name().to_ascii(), "evil.example.test.");

    let raw = udp(&h, s, "loop.example.test.", RecordType::A, true)
        .await
        .unwrap();
    assert!(
        Message::from_vec(&raw).is_err(),
        "compression loop does not parse"
    );
    let raw = udp(&h, s, "cut.example.test.", RecordType::A, true)
        .await
        .unwrap();
    assert!(
        Message::from_vec(&raw).is_err(),
        "truncated message does not parse"
    );
    let raw = udp(&h, s, "huge.example.test.", RecordType::A, true)
        .await
        .unwrap();
    assert!(raw.len() > 50_000, "oversized: {} bytes", raw.len());
    assert_eq!(
        texts(&Message::from_vec(&raw).unwrap().answers),
        vec!["huge.example.test. A 192.0.2.5"]
    );

    let m = udp_msg(&h, s, "lame.example.test.", RecordType::A, true).await;
    assert!(!m.metadata.authoritative && m.answers.is_empty() && m.authorities.is_empty());
    let started = std::time::Instant::now();
    udp_msg(&h, s, "a.slow.example.test.", RecordType::A, true).await;
    assert!(started.elapsed() >= Duration::from_millis(300));

    // A large answer without EDNS: TC=1 over UDP, as real servers do.
    let mut net = Net::new();
    let b = net.addr(1);
    let txt: String = (0..10)
        .map(|i| format!("big TXT \"{}{i}\"\n", "y".repeat(100)))
        .collect();
    net.zone(b, "example.test.", &txt);
    let h2 = net.start(b).await;
    let m = udp_msg(&h2, b, "big.example.test.", RecordType::TXT, false).await;
    assert!(m.metadata.truncation);
    let m = udp_msg(&h2, b, "big.example.test.", RecordType::TXT, true).await;
    assert_eq!(m.answers.len(), 10);

    // Rules can change while running.
    h.set(
        s,
        "timeout.example.test.",
        RecordType::A,
        Behaviour::Rcode(ResponseCode::Refused),
    );
    let m = udp_msg(&h, s, "timeout.example.test.", RecordType::A, true).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(h.asked("timeout.example.test", RecordType::A), 2);
}
