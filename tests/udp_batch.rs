//! Batched UDP (`[server] udp_batch`, `recvmmsg`/`sendmmsg` on Linux) answers exactly like
//! the one-packet path: the same bursts of cache hits, blocked names, malformed and refused
//! packets sent to two instances, one with `udp_batch = 1` and one with batches of 64, get
//! byte-identical answers (the IDs are the client's, the TTLs counted from the same second).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::RecordType;
use tokio::net::UdpSocket;

/// A client the config refuses (`deny`), to mix refused packets into a batch.
const DENIED: &str = "127.0.0.9";

async fn instance(h: &Hierarchy, batch: usize) -> dnsward::instance::Instance {
    let dir = h.dir.path();
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    let text = h.config_text("").replacen(
        "udp_workers = 1\n",
        &format!("udp_workers = 1\nudp_batch = {batch}\ndeny = [\"{DENIED}/32\"]\n"),
        1,
    ) + &format!(
        "[policy]\ncontact = \"hotline\"\n\n[[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"{}/threat.txt\"\n",
        dir.display()
    );
    start_dnsward_text(&text, dir).await
}

fn query(id: u16, name: &str, rtype: RecordType, edns: Option<u16>, ede: bool) -> Vec<u8> {
    let mut m = query_message(name, rtype, edns);
    m.metadata.id = id;
    if ede {
        let mut e = m.edns.take().unwrap_or_default();
        e.options_mut().insert(EdnsOption::Unknown(15, Vec::new()));
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

const HITS: [(&str, RecordType); 5] = [
    ("www.example.com.", RecordType::A),
    ("www.example.com.", RecordType::AAAA),
    ("example.com.", RecordType::MX),
    ("alias.example.com.", RecordType::A),
    ("nothing.example.com.", RecordType::A),
];

/// One burst: (source, bytes) in the order they are sent.
fn burst(kind: &str) -> Vec<(bool, Vec<u8>)> {
    let mut out = Vec::new();
    let mut id = 0x1000u16;
    let mut next = || {
        id += 1;
        id
    };
    for round in 0..8 {
        if kind != "blocked" {
            for (name, t) in HITS {
                let edns = (round % 2 == 0).then_some(1232);
                out.push((false, query(next(), name, t, edns, false)));
            }
        }
        if kind != "hits" {
            let name = format!("n{round}.evil.example.com.");
            out.push((false, query(next(), &name, RecordType::A, None, false)));
            out.push((
                false,
                query(next(), &name, RecordType::AAAA, Some(1232), true),
            ));
            out.push((
                false,
                query(
                    next(),
                    "evil.example.com.",
                    RecordType::TXT,
                    Some(512),
                    false,
                ),
            ));
        }
        if kind == "mixed" {
            let i = next().to_be_bytes();
            // Too short to answer, a response (never answered), two questions (FORMERR),
            // an unknown opcode (NOTIMP), and a client the ACL refuses.
            out.push((false, vec![i[0], i[1], 1, 0]));
            let mut response = query(next(), "www.example.com.", RecordType::A, None, false);
            response[2] |= 0x80;
            out.push((false, response));
            let mut two = query(next(), "www.example.com.", RecordType::A, None, false);
            two[5] = 2;
            out.push((false, two));
            let mut notimp = query(next(), "www.example.com.", RecordType::A, None, false);
            notimp[2] |= 0x5 << 3;
            out.push((false, notimp));
            out.push((
                true,
                query(next(), "www.example.com.", RecordType::A, None, false),
            ));
        }
    }
    out
}

/// Sends the burst back to back from two sockets (ours and the denied client's) and returns
/// the answers by (source, ID).
async fn send_burst(
    server: SocketAddr,
    packets: &[(bool, Vec<u8>)],
) -> BTreeMap<(bool, u16), Vec<u8>> {
    let ours = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let denied = UdpSocket::bind(format!("{DENIED}:0")).await.unwrap();
    for (from_denied, p) in packets {
        let sock = if *from_denied { &denied } else { &ours };
        sock.send_to(p, server).await.unwrap();
    }
    let mut got = BTreeMap::new();
    let mut buf = vec![0u8; 65_535];
    for (from_denied, sock) in [(false, &ours), (true, &denied)] {
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(400), sock.recv_from(&mut buf)).await
        {
            let id = u16::from_be_bytes([buf[0], buf[1]]);
            assert!(
                got.insert((from_denied, id), buf[..n].to_vec()).is_none(),
                "two answers for ID {id:#x}"
            );
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_and_one_packet_answers_are_byte_identical() {
    let h = Hierarchy::start("").await;
    let one = instance(&h, 1).await;
    let batched = instance(&h, 64).await;
    let (a, b) = (one.addrs()[0], batched.addrs()[0]);
    // Warm both caches together, so each entry's age is the same to a few milliseconds.
    for (name, t) in HITS {
        let q = query_message(name, t, Some(1232)).to_vec().unwrap();
        let (x, y) = tokio::join!(
            udp_raw(a, &q, Duration::from_secs(5)),
            udp_raw(b, &q, Duration::from_secs(5))
        );
        assert!(x.is_some() && y.is_some(), "{name} {t} resolves");
    }
    let warmed = Instant::now();
    for kind in ["hits", "blocked", "mixed"] {
        let packets = burst(kind);
        // TTLs count down in whole seconds from the warm-up: send both bursts in the middle
        // of a second so both instances see the same age.
        let into_second = warmed.elapsed().subsec_millis();
        if !(200..=600).contains(&into_second) {
            tokio::time::sleep(Duration::from_millis(
                (1200 - u64::from(into_second)) % 1000,
            ))
            .await;
        }
        let (x, y) = tokio::join!(send_burst(a, &packets), send_burst(b, &packets));
        let expected = packets
            .iter()
            .filter(|(_, p)| p.len() >= 12 && p[2] & 0x80 == 0)
            .count();
        assert_eq!(x.len(), expected, "{kind}: one-packet answers");
        assert_eq!(y.len(), expected, "{kind}: batched answers");
        for (key, bytes) in &x {
            assert_eq!(Some(bytes), y.get(key), "{kind}: answer to {key:?} differs");
        }
        if kind == "mixed" {
            // The refused client got REFUSED; everything else was answered as usual.
            let refused = x.keys().filter(|(d, _)| *d).count();
            assert_eq!(refused, 8);
            assert!(x
                .iter()
                .filter(|((d, _), _)| *d)
                .all(|(_, r)| r[3] & 0x0f == 5));
        }
    }
}

#[test]
fn udp_batch_out_of_range_is_a_clear_config_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "257", "100000"] {
        let text = format!("[server]\nudp_batch = {bad}\n");
        let problems =
            dnsward::config::Config::from_text(&text, &dir.path().join("c.toml")).unwrap_err();
        let p = problems
            .iter()
            .find(|p| p.key == "server.udp_batch")
            .unwrap_or_else(|| panic!("udp_batch = {bad}: {problems:?}"));
        assert!(p.message.contains("between 1"), "{p:?}");
        assert!(p.line.is_some(), "{p:?}");
    }
    for good in ["1", "32", "256"] {
        let text = format!("[server]\nudp_batch = {good}\n");
        dnsward::config::Config::from_text(&text, &dir.path().join("c.toml"))
            .unwrap_or_else(|p| panic!("udp_batch = {good}: {p:?}"));
    }
}
