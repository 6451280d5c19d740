//! The iterative resolver against the broken DNS (issue 10): scripted authoritative servers on
//! loopback misbehave on purpose, dnsward resolves through them in-process, and each scenario
//! asserts what the client sees over a real socket and how many upstream queries it cost.
//!
//! The assertions describe the correct behaviour (what Unbound does; see tests/differential.rs),
//! not what any one implementation happens to do. To check a scenario's expectation against
//! Unbound itself, run the same scenarios with unbound as the resolver (root only: the
//! servers then listen on port 53):
//!
//! ```sh
//! ITERATOR_RESOLVER=unbound cargo test --test iterator
//! ```
//!
//! Where Unbound does not do what issue 10 asks, the issue wins, and these fail against
//! Unbound 1.17: a lame answer (no AA, nothing) and a referral to the same zone, which it
//! returns as NODATA (`next_server_after_a_lame_answer`, `every_server_is_lame_servfail`,
//! `sideways_referral_loop_is_bounded`, `endless_downward_referrals_are_bounded`); RFC 8020,
//! which it applies to DNSSEC-secure NXDOMAINs only; a zone whose servers all time out, which
//! it answers after more than 30 s (it has no overall deadline).

#[path = "../common/mod.rs"]
mod common;
#[path = "../scripted/mod.rs"]
mod scripted;

mod answers;
mod bounds;
mod caching;
mod delegation;
mod failover;
mod minimisation;
mod oddities;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{query_message, start_dnsward_text, tcp_query, udp_raw};
use dnsward::instance::Instance;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use scripted::unbound::Unbound;
use scripted::{name, Behaviour, Net, Reply, Running};

/// Upstream queries one client question may cost, however hostile the zones (issue 10,
/// "Bounds"; the resolver must stay below it).
const MAX_UPSTREAM_PER_QUESTION: usize = 200;
/// `timeout_ms` of every scenario, and the slack allowed on top of it for a SERVFAIL.
const TIMEOUT_MS: u64 = 2000;
const MARGIN: Duration = Duration::from_millis(500);

const A: RecordType = RecordType::A;

/// Adds a root on .1 and a TLD server on .2 serving `tlds` (origin, zone lines); the root
/// delegates each TLD to ns.tld.test (.2), with glue. Scenario servers are .3 and up.
fn hierarchy(net: &mut Net, tlds: &[(&str, &str)]) {
    let (root, tld) = (net.addr(1), net.addr(2));
    let mut root_zone = format!("@ NS a.root.test.\na.root.test. A {root}\nns.tld.test. A {tld}\n");
    for (origin, _) in tlds {
        root_zone.push_str(&format!("{origin} NS ns.tld.test.\n"));
    }
    net.zone(root, ".", &root_zone);
    for (origin, text) in tlds {
        let apex = if *origin == "test." {
            format!("a.root A {root}\nns.tld A {tld}\n")
        } else {
            String::new()
        };
        net.zone(tld, origin, &format!("@ NS ns.tld.test.\n{apex}{text}"));
    }
}

/// The root and the test. TLD.
fn tld(net: &mut Net, test_zone: &str) {
    hierarchy(net, &[("test.", test_zone)]);
}

/// The resolver under test: dnsward, or unbound with `ITERATOR_RESOLVER=unbound`.
enum Resolver {
    Dnsward(Box<Instance>),
    Unbound(Unbound),
}

impl Resolver {
    fn addr(&self) -> SocketAddr {
        match self {
            Resolver::Dnsward(d) => d.addrs()[0],
            Resolver::Unbound(u) => u.addr,
        }
    }

    async fn shutdown(self) {
        if let Resolver::Dnsward(d) = self {
            d.shutdown().await;
        }
    }
}

fn against_unbound() -> bool {
    std::env::var("ITERATOR_RESOLVER").is_ok_and(|v| v == "unbound")
}

/// Starts the hierarchy and the resolver; `resolver_keys` are dnsward `[resolver]` keys
/// (translated to unbound's options when the resolver is unbound).
async fn start(net: Net, resolver_keys: &str) -> (Running, Resolver) {
    let root = net.addr(1);
    if against_unbound() {
        if !scripted::unbound::available() {
            panic!("ITERATOR_RESOLVER=unbound: unbound or root is missing (see the SKIP line)");
        }
        let h = net.start_on_port(root, 53).await;
        let u = Unbound::start(h.root_hints_path(), &Unbound::options_for(resolver_keys)).await;
        return (h, Resolver::Unbound(u));
    }
    let h = net.start(root).await;
    let d = start_dnsward_text(&h.dnsward_config(resolver_keys), h.dir.path()).await;
    (h, Resolver::Dnsward(Box::new(d)))
}

/// Asks the resolver over UDP (EDNS 1232); returns the answer and how long it took. dnsward
/// must answer within 10 s; unbound, which has no overall deadline and backs off on
/// timeouts, gets 30 s (the deadline assertions apply to dnsward only).
async fn ask(d: &Resolver, qname: &str, rtype: RecordType) -> (Message, Duration) {
    let started = Instant::now();
    let q = query_message(qname, rtype, Some(1232));
    let wait = Duration::from_secs(if against_unbound() { 30 } else { 10 });
    let bytes = udp_raw(d.addr(), &q.to_vec().unwrap(), wait)
        .await
        .unwrap_or_else(|| panic!("no answer to {qname} {rtype} within {wait:?}"));
    let m = Message::from_vec(&bytes).expect("the answer parses");
    assert_eq!(m.metadata.id, q.metadata.id, "query ID echoed");
    (m, started.elapsed())
}

/// The answer came within `timeout_ms` (+ margin): dnsward's contract (unbound has none).
fn in_time(took: Duration) -> bool {
    against_unbound() || took <= Duration::from_millis(TIMEOUT_MS) + MARGIN
}

fn answer(m: &Message) -> Vec<String> {
    common::rr_lines(&m.answers)
}

/// Asks `qname` (type A) and asserts the answer's records are `want` (the hierarchy's log
/// when not); the answer.
async fn ask_expect(h: &Running, d: &Resolver, qname: &str, want: &[&str]) -> Message {
    let (m, _) = ask(d, qname, A).await;
    assert_eq!(answer(&m), want, "{qname}: {}", h.log());
    m
}

/// A positive answer is minimal: no upstream NS in authority, no glue in additional.
fn assert_minimal(m: &Message) {
    assert!(
        !m.authorities
            .iter()
            .any(|r| r.record_type() == RecordType::NS),
        "authority NS passed through: {:?}",
        common::rr_lines(&m.authorities)
    );
    assert!(
        m.additionals.is_empty(),
        "additional records passed through: {:?}",
        common::rr_lines(&m.additionals)
    );
}

/// A negative answer carries the zone's SOA in authority and nothing else from upstream.
fn assert_negative(m: &Message, rcode: ResponseCode, zone: &str) {
    assert_eq!(m.metadata.response_code, rcode, "{m:?}");
    assert!(m.answers.is_empty(), "{:?}", answer(m));
    let soa: Vec<String> = m
        .authorities
        .iter()
        .filter(|r| matches!(r.data, RData::SOA(_)))
        .map(|r| r.name.to_ascii())
        .collect();
    assert_eq!(soa, vec![zone.to_string()], "SOA of the zone in authority");
    assert!(!m
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::NS));
}

fn assert_servfail_in_time(m: &Message, took: Duration, what: &str) {
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "{what}: {:?}",
        answer(m)
    );
    assert!(in_time(took), "{what}: SERVFAIL took {took:?}");
}

fn assert_bounded(h: &Running, what: &str) {
    let n = h.total();
    assert!(
        n <= MAX_UPSTREAM_PER_QUESTION,
        "{what}: {n} upstream queries (bound {MAX_UPSTREAM_PER_QUESTION})"
    );
}

/// example.test on one server (.3) with www A 192.0.2.1 and `extra` lines.
fn simple_zone(extra: &str) -> (Net, IpAddr) {
    example_zone(&format!("www A 192.0.2.1\n{extra}"))
}

/// example.test on one server (.3), delegated from test., with its NS and `records`.
fn example_zone(records: &str) -> (Net, IpAddr) {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(
        &mut net,
        &format!("example NS ns.example\nns.example A {ex}"),
    );
    net.zone(
        ex,
        "example.test.",
        &format!("@ NS ns\nns A {ex}\n{records}"),
    );
    (net, ex)
}
