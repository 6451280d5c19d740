//! Recursion end to end: dnsward resolves through a fake hierarchy on loopback, answers over
//! real UDP and TCP sockets, caches, serves stale and fails fast.

mod common;

use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_aaaa_mx_txt_over_udp_and_tcp() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];

    let a = ask(addr, "www.example.com.", RecordType::A).await;
    assert_eq!(a.metadata.response_code, ResponseCode::NoError);
    assert!(a.metadata.recursion_available);
    assert!(!a.metadata.authentic_data);
    assert_eq!(answer_strings(&a), vec!["A 192.0.2.10"]);
    assert_eq!(a.queries[0].name().to_ascii(), "www.example.com.");

    let aaaa = tcp_query(
        addr,
        &query_message("www.example.com.", RecordType::AAAA, None),
    )
    .await;
    assert_eq!(answer_strings(&aaaa), vec!["AAAA 2001:db8::10"]);

    let mx = tcp_query(
        addr,
        &query_message("example.com.", RecordType::MX, Some(1232)),
    )
    .await;
    assert_eq!(answer_strings(&mx), vec!["MX 10 mail.example.com."]);

    let txt = ask(addr, "example.com.", RecordType::TXT).await;
    assert_eq!(answer_strings(&txt), vec!["TXT v=spf1 -all"]);

    // The same over TCP for a name not cached yet: the TCP path resolves too.
    let other = tcp_query(addr, &query_message("www.other.net.", RecordType::A, None)).await;
    assert_eq!(answer_strings(&other), vec!["A 192.0.2.20"]);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_case_is_echoed_and_cache_is_case_insensitive() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    let first = ask(addr, "WwW.ExAmPlE.CoM.", RecordType::A).await;
    assert_eq!(first.queries[0].name().to_ascii(), "WwW.ExAmPlE.CoM.");
    let second = ask(addr, "www.EXAMPLE.com.", RecordType::A).await;
    assert_eq!(second.queries[0].name().to_ascii(), "www.EXAMPLE.com.");
    assert_eq!(answer_strings(&second), vec!["A 192.0.2.10"]);
    assert_eq!(h.count("www.example.com", RecordType::A), 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_chain_across_zones_and_delegation_without_glue() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let m = ask(d.addrs()[0], "alias.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let got = answer_strings(&m);
    assert!(
        got.contains(&"CNAME step.other.net.".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"CNAME final.other.net.".to_string()),
        "{got:?}"
    );
    assert!(got.contains(&"A 192.0.2.30".to_string()), "{got:?}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_with_soa_and_negative_cache() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    let m = ask(addr, "nope.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    let soa = m
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(s) => Some((r.name.to_ascii(), r.ttl, s.minimum)),
            _ => None,
        })
        .expect("SOA in authority");
    assert_eq!(soa.0, "example.com.");
    assert!(
        soa.1 <= 300,
        "negative TTL is min(SOA TTL, MINIMUM): {soa:?}"
    );
    let reached = h.count_any("nope.example.com");
    assert!(reached >= 1);

    let again = ask(addr, "nope.example.com.", RecordType::A).await;
    assert_eq!(again.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        !again.authorities.is_empty(),
        "cached negative answer keeps its SOA"
    );
    assert_eq!(
        h.count_any("nope.example.com"),
        reached,
        "second query answered from cache"
    );

    // NODATA: the name exists, the type does not.
    let nodata = ask(addr, "www.example.com.", RecordType::MX).await;
    assert_eq!(nodata.metadata.response_code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert!(nodata
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_hit_does_not_reach_the_authority_and_ttl_counts_down() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    let first = ask(addr, "www.example.com.", RecordType::A).await;
    assert_eq!(h.count("www.example.com", RecordType::A), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = ask(addr, "www.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&second), answer_strings(&first));
    assert_eq!(
        h.count("www.example.com", RecordType::A),
        1,
        "answered from cache"
    );
    assert!(
        second.answers[0].ttl < first.answers[0].ttl,
        "TTL decreases with age"
    );
    let stats = d.engine.cache().stats();
    assert!(stats.hits >= 1, "{stats:?}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_are_coalesced() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    let mut tasks = Vec::new();
    for _ in 0..50 {
        tasks.push(tokio::spawn(async move {
            ask(addr, "mail.example.com.", RecordType::A).await
        }));
    }
    for t in tasks {
        let m = t.await.unwrap();
        assert_eq!(answer_strings(&m), vec!["A 192.0.2.25"]);
    }
    assert_eq!(
        h.count("mail.example.com", RecordType::A),
        1,
        "50 clients, one upstream query"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_stale_when_hierarchy_is_down() {
    let mut h = Hierarchy::start("short 1 IN A 192.0.2.77\n").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    let fresh = ask(addr, "short.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&fresh), vec!["A 192.0.2.77"]);
    h.stop().await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let stale = ask(addr, "short.example.com.", RecordType::A).await;
    assert_eq!(stale.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer_strings(&stale), vec!["A 192.0.2.77"]);
    assert_eq!(
        stale.answers[0].ttl, 30,
        "stale answers carry TTL 30 (RFC 8767)"
    );
    assert!(d.engine.cache().stats().stale_served >= 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_within_the_timeout_when_nothing_answers() {
    // A root that swallows every query: a bound socket that never answers.
    let dir = tempfile::tempdir().unwrap();
    let (_hole, text) = silent_root_config(dir.path());
    let d = start_dnsward_text(&text, dir.path()).await;
    let started = Instant::now();
    let m = ask(d.addrs()[0], "www.example.com.", RecordType::A).await;
    let took = started.elapsed();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(took < Duration::from_millis(2500), "SERVFAIL took {took:?}");
    // One per-server timeout (a third of timeout_ms) at least: it did ask and wait.
    assert!(
        took >= Duration::from_millis(250),
        "did wait for upstream: {took:?}"
    );
    // RFC 8914: the SERVFAIL says why (22 No Reachable Authority); a second ask within the
    // failure-cache window is answered at once with 13 Cached Error (RFC 9520).
    assert_eq!(ede_code(&m), Some(22), "{m:?}");
    let started = Instant::now();
    let again = ask(d.addrs()[0], "www.example.com.", RecordType::A).await;
    assert_eq!(again.metadata.response_code, ResponseCode::ServFail);
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "failure cached: {:?}",
        started.elapsed()
    );
    assert_eq!(ede_code(&again), Some(13), "{again:?}");
    d.shutdown().await;
}

fn ede_code(m: &hickory_proto::op::Message) -> Option<u16> {
    use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
    match m.edns.as_ref()?.option(EdnsCode::from(15))? {
        EdnsOption::Unknown(15, data) if data.len() >= 2 => {
            Some(u16::from_be_bytes([data[0], data[1]]))
        }
        other => panic!("EDE option shape: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_answer_truncated_over_udp_complete_over_tcp() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    // No EDNS: 512-byte limit.
    let udp = udp_query(
        addr,
        &query_message("big.example.com.", RecordType::TXT, None),
    )
    .await;
    assert!(udp.metadata.truncation, "TC set over UDP");
    assert!(udp.answers.is_empty());
    assert_eq!(udp.queries.len(), 1);
    let tcp = tcp_query(
        addr,
        &query_message("big.example.com.", RecordType::TXT, None),
    )
    .await;
    assert!(!tcp.metadata.truncation);
    assert_eq!(tcp.answers.len(), 24);
    // With EDNS 1232 it still does not fit (24 x ~190 bytes).
    let edns = udp_query(
        addr,
        &query_message("big.example.com.", RecordType::TXT, Some(4096)),
    )
    .await;
    assert!(edns.metadata.truncation);
    assert_eq!(edns.edns.as_ref().map(|e| e.max_payload()), Some(1232));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_uses_the_forwarders_with_failover() {
    let h = Hierarchy::start("").await;
    // A recursive dnsward on the hierarchy plays the upstream resolver...
    let upstream = h.start_dnsward("").await;
    // ...and a dead forwarder comes first in the list.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[resolver]\nmode = \"forward\"\nforwarders = [\"{}\", \"{}\"]\ntimeout_ms = 2000\n# The hierarchy is unsigned: validating it against the real root keys would fail.\ndnssec = \"off\"\n",
        hole.local_addr().unwrap(),
        upstream.addrs()[0]
    );
    let d = start_dnsward_text(&text, h.dir.path()).await;
    let m = ask(d.addrs()[0], "www.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    let nx = ask(d.addrs()[0], "nope.example.com.", RecordType::A).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    d.shutdown().await;
    upstream.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listens_on_ipv6_loopback_too() {
    if !common::tools::require_ipv6() {
        return;
    }
    let h = Hierarchy::start("").await;
    let text = h.config_text("").replace(
        "listen = [\"127.0.0.1:0\"]",
        "listen = [\"127.0.0.1:0\", \"[::1]:0\"]",
    );
    let d = start_dnsward_text(&text, h.dir.path()).await;
    assert_eq!(d.addrs().len(), 2);
    let v6 = d.addrs()[1];
    assert!(v6.is_ipv6());
    let m = ask(v6, "www.example.com.", RecordType::AAAA).await;
    assert_eq!(answer_strings(&m), vec!["AAAA 2001:db8::10"]);
    let m = tcp_query(v6, &query_message("www.example.com.", RecordType::A, None)).await;
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    d.shutdown().await;
}
