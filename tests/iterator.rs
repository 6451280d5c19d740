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

mod common;
mod scripted;

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
        let apex = if *origin == "test." { format!("a.root A {root}\nns.tld A {tld}\n") } else { String::new() };
        net.zone(tld, origin, &format!("@ NS ns.tld.test.\n{apex}{text}"));
    }
}

/// The root and the test. TLD.
fn tld(net: &mut Net, test_zone: &str) {
    hierarchy(net, &[("test.", test_zone)]);
}

/// The resolver under test: dnsward, or unbound with `ITERATOR_RESOLVER=unbound`.
enum Resolver {
    Dnsward(Instance),
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
        if let Some(why) = scripted::unbound::unavailable() {
            panic!("ITERATOR_RESOLVER=unbound: {why}");
        }
        let h = net.start_on_port(root, 53).await;
        let u = Unbound::start(h.root_hints_path(), &Unbound::options_for(resolver_keys)).await;
        return (h, Resolver::Unbound(u));
    }
    let h = net.start(root).await;
    let d = start_dnsward_text(&h.dnsward_config(resolver_keys), h.dir.path()).await;
    (h, Resolver::Dnsward(d))
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

fn rrs(records: &[hickory_proto::rr::Record]) -> Vec<String> {
    records.iter().map(|r| format!("{} {} {}", r.name.to_ascii().to_ascii_lowercase(), r.record_type(), r.data)).collect()
}

fn answer(m: &Message) -> Vec<String> {
    rrs(&m.answers)
}

/// A positive answer is minimal: no upstream NS in authority, no glue in additional.
fn assert_minimal(m: &Message) {
    assert!(!m.authorities.iter().any(|r| r.record_type() == RecordType::NS), "authority NS passed through: {:?}", rrs(&m.authorities));
    assert!(m.additionals.is_empty(), "additional records passed through: {:?}", rrs(&m.additionals));
}

/// A negative answer carries the zone's SOA in authority and nothing else from upstream.
fn assert_negative(m: &Message, rcode: ResponseCode, zone: &str) {
    assert_eq!(m.metadata.response_code, rcode, "{m:?}");
    assert!(m.answers.is_empty(), "{:?}", answer(m));
    let soa: Vec<String> = m.authorities.iter().filter(|r| matches!(r.data, RData::SOA(_))).map(|r| r.name.to_ascii()).collect();
    assert_eq!(soa, vec![zone.to_string()], "SOA of the zone in authority");
    assert!(!m.authorities.iter().any(|r| r.record_type() == RecordType::NS));
}

fn assert_servfail_in_time(m: &Message, took: Duration, what: &str) {
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail, "{what}: {:?}", answer(m));
    assert!(in_time(took), "{what}: SERVFAIL took {took:?}");
}

fn assert_bounded(h: &Running, what: &str) {
    let n = h.total();
    assert!(n <= MAX_UPSTREAM_PER_QUESTION, "{what}: {n} upstream queries (bound {MAX_UPSTREAM_PER_QUESTION})");
}

// ---------------------------------------------------------------- 1. delegations and glue

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_with_glue_answers_minimally() {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(&mut net, &format!("example NS ns1.example\nns1.example A {ex}"));
    net.zone(ex, "example.test.", &format!("@ NS ns1\nns1 A {ex}\nwww A 192.0.2.1"));
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"]);
    assert_minimal(&m);
    assert!(h.asked("www.example.test.", A) >= 1, "{}", h.log());
    assert!(h.total() <= 8, "a plain three-level resolution: {}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ns_names_without_glue_are_resolved_in_another_zone() {
    // example.test is served by ns.provider.net: test. cannot give glue for it, so the
    // resolver must resolve ns.provider.net (through net.) first.
    let mut net = Net::new();
    let (ex, provider) = (net.addr(3), net.addr(4));
    hierarchy(&mut net, &[
        ("test.", "example NS ns.provider.net."),
        ("net.", &format!("provider NS ns.provider\nns.provider A {provider}")),
    ]);
    net.zone(provider, "provider.net.", &format!("@ NS ns\nns A {ex}\n"));
    net.zone(ex, "example.test.", "@ NS ns.provider.net.\nwww A 192.0.2.1");
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"], "{}", h.log());
    assert_minimal(&m);
    assert!(h.asked_name("ns.provider.net.") >= 1, "the NS name was resolved: {}", h.log());
    assert_bounded(&h, "glueless delegation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_out_of_bailiwick_is_ignored() {
    // test. hands out an address for ns.provider.net (not its to give) pointing at a liar
    // that answers for example.test and second.test with 6.6.6.6; the real address comes from
    // provider.net. Two zones, asked at once, so the bad glue arrives twice and concurrently.
    let mut net = Net::new();
    let (ex, provider, liar) = (net.addr(3), net.addr(4), net.addr(6));
    let test_zone = format!("example NS ns.provider.net.\nsecond NS ns.provider.net.\nns.provider.net. A {liar}");
    hierarchy(&mut net, &[("test.", &test_zone), ("net.", &format!("provider NS ns.provider\nns.provider A {provider}"))]);
    net.zone(provider, "provider.net.", &format!("@ NS ns\nns A {ex}\n"));
    for zone in ["example.test.", "second.test."] {
        net.zone(ex, zone, "@ NS ns.provider.net.\nwww A 192.0.2.1");
        net.zone(liar, zone, "@ NS ns.provider.net.\nwww A 6.6.6.6");
    }
    let (h, d) = start(net, "").await;
    let ((m1, _), (m2, _)) = tokio::join!(ask(&d, "www.example.test.", A), ask(&d, "www.second.test.", A));
    assert_eq!(answer(&m1), vec!["www.example.test. A 192.0.2.1"], "{}", h.log());
    assert_eq!(answer(&m2), vec!["www.second.test. A 192.0.2.1"], "{}", h.log());
    assert_eq!(h.to(liar), 0, "out-of-bailiwick glue used: {}", h.log());
}

// ---------------------------------------------------------------- 2. failing servers

/// Zones z1.test .. z8.test each have two servers: a broken one, listed first, that
/// misbehaves for the whole zone with `bad(qname, root address)`, and a working one. A
/// resolver that picks the first listed, or picks at random, meets a broken server (at random
/// all eight first picks miss it once in 256 runs). Every name must still resolve in time,
/// nothing bad may be cached: the second round costs no upstream query and gives the same
/// answers.
async fn failover(what: &str, bad: impl Fn(&str, IpAddr) -> Behaviour) {
    const ZONES: u8 = 8;
    let mut net = Net::new();
    let root = net.addr(1);
    let addrs: Vec<(IpAddr, IpAddr)> = (0..=ZONES).map(|k| (net.addr(10 + 2 * k), net.addr(11 + 2 * k))).collect();
    let servers = |k: u8| addrs[k as usize];
    let delegations: String = (1..=ZONES)
        .map(|k| {
            let (broken, good) = servers(k);
            format!("z{k} NS broken.z{k}\nz{k} NS good.z{k}\nbroken.z{k} A {broken}\ngood.z{k} A {good}\n")
        })
        .collect();
    let brokens: Vec<IpAddr> = (1..=ZONES).map(|k| servers(k).0).collect();
    tld(&mut net, &delegations);
    for k in 1..=ZONES {
        let (broken, good) = servers(k);
        let (zone, www) = (format!("z{k}.test."), format!("www.z{k}.test."));
        let text = format!("@ NS broken\n@ NS good\nbroken A {broken}\ngood A {good}\nwww A 192.0.2.{k}");
        net.zone(broken, &zone, &text);
        net.zone(good, &zone, &text);
        net.on_zone(broken, &zone, bad(&www, root));
    }
    let (h, d) = start(net, "").await;
    let mut expected = Vec::new();
    for k in 1..=ZONES {
        let qname = format!("www.z{k}.test.");
        let (m, took) = ask(&d, &qname, A).await;
        let want = vec![format!("{qname} A 192.0.2.{k}")];
        let rcode = m.metadata.response_code;
        assert_eq!(answer(&m), want, "{what}: {qname}: {rcode:?} after {took:?}\n{}", h.log());
        assert_minimal(&m);
        assert!(in_time(took), "{what}: {qname} took {took:?}");
        expected.push((qname, want));
    }
    let met_broken = h.count(|s| brokens.contains(&s.server));
    assert!(met_broken >= 1, "{what}: the broken servers were never asked: {}", h.log());
    assert_bounded(&h, what);
    h.reset_counts();
    for (qname, want) in expected {
        let (m, _) = ask(&d, &qname, A).await;
        assert_eq!(answer(&m), want, "{what}: cached answer for {qname}");
    }
    assert_eq!(h.total(), 0, "{what}: second round from the cache: {}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_server_after_a_timeout() {
    failover("timeout", |_, _| Behaviour::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_server_after_servfail() {
    failover("servfail", |_, _| Behaviour::Rcode(ResponseCode::ServFail)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_server_after_refused() {
    failover("refused", |_, _| Behaviour::Rcode(ResponseCode::Refused)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_server_after_a_lame_answer() {
    failover("lame (no AA, no referral)", |_, _| Behaviour::lame()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_server_after_an_upward_referral() {
    failover("upward referral", |_, root| Behaviour::upward_referral("a.root.test.", root)).await;
}

/// Both servers of example.test misbehave with `bad` for the whole zone: SERVFAIL in time,
/// with a bounded number of upstream queries.
async fn all_servers_fail(what: &str, bad: Behaviour) {
    let mut net = Net::new();
    let (ns1, ns2) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("example NS ns1.example\nexample NS ns2.example\nns1.example A {ns1}\nns2.example A {ns2}"));
    for ns in [ns1, ns2] {
        net.zone(ns, "example.test.", "www A 192.0.2.1");
        net.on_zone(ns, "example.test.", bad.clone());
    }
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_servfail_in_time(&m, took, what);
    assert_bounded(&h, what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_times_out_servfail_in_time() {
    all_servers_fail("every server times out", Behaviour::Timeout).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_servfails_servfail() {
    all_servers_fail("every server SERVFAILs", Behaviour::Rcode(ResponseCode::ServFail)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_is_lame_servfail() {
    all_servers_fail("every server is lame", Behaviour::lame()).await;
}

// ---------------------------------------------------------------- 3. parent/child NS mismatch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_and_child_list_different_servers_only_one_works() {
    // The parent delegates to ns1 (works); the zone itself lists only ns2, which is dead.
    // Once the resolver has seen the child's NS set it must still reach the zone.
    let mut net = Net::new();
    let (ns1, ns2) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("example NS ns1.example\nns1.example A {ns1}"));
    net.zone(ns1, "example.test.", &format!("@ NS ns2\nns2 A {ns2}\nwww A 192.0.2.1\nmail A 192.0.2.2"));
    net.zone(ns2, "example.test.", "www A 192.0.2.1");
    net.on_zone(ns2, "example.test.", Behaviour::Timeout);
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "example.test.", RecordType::NS).await;
    assert_eq!(answer(&m), vec!["example.test. NS ns2.example.test."]);
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"], "after {took:?}: {}", h.log());
    let (m, took) = ask(&d, "mail.example.test.", A).await;
    assert_eq!(answer(&m), vec!["mail.example.test. A 192.0.2.2"], "after {took:?}: {}", h.log());
    assert_bounded(&h, "parent/child mismatch");

    // The other way round: the parent lists a dead server, the child a working one.
    let mut net = Net::new();
    let (ns1, ns2) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("example NS ns1.example\nexample NS ns2.example\nns1.example A {ns1}\nns2.example A {ns2}"));
    net.bare(ns1);
    net.on_zone(ns1, "example.test.", Behaviour::Timeout);
    net.zone(ns2, "example.test.", &format!("@ NS ns2\nns2 A {ns2}\nwww A 192.0.2.1"));
    let (h, d2) = start(net, "").await;
    let (m, took) = ask(&d2, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"], "after {took:?}: {}", h.log());
    d.shutdown().await;
    d2.shutdown().await;
}

// ---------------------------------------------------------------- 4. QNAME minimisation

/// example.test (.3) holds a.b.c.example.test; b.c and c are empty non-terminals, for which
/// the server answers `broken` (to minimised queries). Returns the running pieces.
async fn minimisation(mode: &str, broken: Option<Behaviour>) -> (Running, Resolver, IpAddr) {
    // (root is .1, the TLD .2: see `hierarchy`)
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(&mut net, &format!("example NS ns.example\nns.example A {ex}"));
    net.zone(ex, "example.test.", &format!("@ NS ns\nns A {ex}\na.b.c A 192.0.2.7"));
    if let Some(b) = broken {
        net.on_name(ex, "c.example.test.", b.clone());
        net.on_name(ex, "b.c.example.test.", b);
    }
    let keys = if mode.is_empty() { String::new() } else { format!("qname_minimisation = \"{mode}\"") };
    let (h, d) = start(net, &keys).await;
    (h, d, ex)
}

const DEEP: &str = "a.b.c.example.test.";

fn nxdomain_for_ent() -> Behaviour {
    Behaviour::Reply(Reply::authoritative().rcode(ResponseCode::NXDomain).authority(
        "example.test. 3600 SOA ns.invalid. hostmaster.invalid. 1 7200 900 86400 300",
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_relaxed_is_the_default_and_minimises() {
    let (h, d, ex) = minimisation("", None).await;
    let (m, _) = ask(&d, DEEP, A).await;
    assert_eq!(answer(&m), vec![format!("{DEEP} A 192.0.2.7")]);
    // The root and the TLD never see the full name.
    let leaked = h.count(|s| s.name == DEEP && s.server != ex);
    assert_eq!(leaked, 0, "full name sent above the zone: {}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_relaxed_falls_back_to_the_full_name() {
    for (what, broken) in [
        ("NXDOMAIN for an empty non-terminal", nxdomain_for_ent()),
        ("SERVFAIL", Behaviour::Rcode(ResponseCode::ServFail)),
        ("REFUSED", Behaviour::Rcode(ResponseCode::Refused)),
        ("FORMERR", Behaviour::Rcode(ResponseCode::FormErr)),
        ("no answer", Behaviour::Timeout),
    ] {
        let (h, d, ex) = minimisation("relaxed", Some(broken)).await;
        let (m, took) = ask(&d, DEEP, A).await;
        assert_eq!(answer(&m), vec![format!("{DEEP} A 192.0.2.7")], "{what} after {took:?}: {}", h.log());
        assert!(h.count(|s| s.server == ex && s.name == DEEP) >= 1);
        assert_bounded(&h, what);
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_strict_does_not_fall_back() {
    // (A SERVFAIL to a minimised query is not asserted: Unbound in strict mode goes on
    // minimising label by label, which reaches the full name as its last step.)
    for (what, broken, rcode) in [("NXDOMAIN for an empty non-terminal", nxdomain_for_ent(), ResponseCode::NXDomain)] {
        let (h, d, ex) = minimisation("strict", Some(broken)).await;
        let (m, took) = ask(&d, DEEP, A).await;
        assert_eq!(m.metadata.response_code, rcode, "{what} after {took:?}: {:?}\n{}", answer(&m), h.log());
        assert!(m.answers.is_empty());
        assert_eq!(h.count(|s| s.server == ex && s.name == DEEP), 0, "{what}: full name sent: {}", h.log());
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_off_sends_only_the_full_name() {
    let (h, d, _) = minimisation("off", None).await;
    let (m, _) = ask(&d, DEEP, A).await;
    assert_eq!(answer(&m), vec![format!("{DEEP} A 192.0.2.7")]);
    // Root priming (". NS") aside, every query names the client's question.
    let other = h.count(|s| s.name != DEEP && s.name != ".");
    assert_eq!(other, 0, "minimised queries sent with minimisation off: {}", h.log());
}

// ---------------------------------------------------------------- 5. TC and EDNS

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_over_udp_is_retried_over_tcp_at_the_same_server() {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(&mut net, &format!("example NS ns.example\nns.example A {ex}"));
    net.zone(ex, "example.test.", &format!("@ NS ns\nns A {ex}\nwww A 192.0.2.1"));
    net.on(ex, "www.example.test.", A, Behaviour::TruncatedOverUdp(Box::new(Behaviour::Zone)));
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"], "{}", h.log());
    assert!(!m.metadata.truncation);
    assert!(h.count(|s| s.server == ex && s.tcp && s.name == "www.example.test.") >= 1, "{}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_rejects_edns_is_asked_without_it() {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(&mut net, &format!("example NS ns.example\nns.example A {ex}"));
    net.zone(ex, "example.test.", &format!("@ NS ns\nns A {ex}\nwww A 192.0.2.1"));
    net.on_zone(ex, "example.test.", Behaviour::FormerrOnEdns(Box::new(Behaviour::Zone)));
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"], "{}", h.log());
    assert!(h.count(|s| s.server == ex && !s.edns) >= 1, "{}", h.log());
    // The client asked with EDNS and gets EDNS from dnsward, whatever upstream spoke.
    assert!(m.edns.is_some());
}

// ---------------------------------------------------------------- 6. wrong question, wrong ID

fn poison(qname: &str) -> Reply {
    Reply::authoritative().answer(&format!("{qname} 3600 A 6.6.6.6"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_for_another_question_is_ignored() {
    failover("wrong question", |q, _| Behaviour::WrongQuestion(name("evil.example.test."), Box::new(Behaviour::Reply(poison(q))))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_with_another_id_is_ignored() {
    failover("wrong ID", |q, _| Behaviour::WrongId(Box::new(Behaviour::Reply(poison(q))))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_wrong_answers_servfail_and_nothing_is_cached() {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(&mut net, &format!("example NS ns.example\nns.example A {ex}"));
    net.zone(ex, "example.test.", &format!("@ NS ns\nns A {ex}\nwww A 192.0.2.1"));
    // Asked for www, the server answers a question for evil (which does not exist).
    let evil = Behaviour::WrongQuestion(name("evil.example.test."), Box::new(Behaviour::Reply(poison("evil.example.test."))));
    net.on(ex, "www.example.test.", A, evil);
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_servfail_in_time(&m, took, "only answers for another question");
    assert_bounded(&h, "wrong question");
    // Not cached as the answer to the question it names either.
    let (m, _) = ask(&d, "evil.example.test.", A).await;
    assert_negative(&m, ResponseCode::NXDomain, "example.test.");
}

// ---------------------------------------------------------------- 7. CNAME and DNAME

/// one.test (.3), two.test (.4), three.test (.5); `extra` adds lines to each (origin order).
fn three_zones(lines: [&str; 3]) -> Net {
    let mut net = Net::new();
    let addrs = [net.addr(3), net.addr(4), net.addr(5)];
    let delegations: String = ["one", "two", "three"]
        .iter()
        .zip(addrs)
        .map(|(z, a)| format!("{z} NS ns.{z}\nns.{z} A {a}\n"))
        .collect();
    tld(&mut net, &delegations);
    for ((z, a), text) in ["one", "two", "three"].iter().zip(addrs).zip(lines) {
        net.zone(a, &format!("{z}.test."), &format!("@ NS ns\nns A {a}\n{text}"));
    }
    net
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_chain_across_three_zones_is_returned_whole() {
    let net = three_zones([
        "www CNAME www.two.test.\nlegacy DNAME two.test.",
        "www CNAME www.three.test.",
        "www A 192.0.2.3",
    ]);
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.one.test.", A).await;
    assert_eq!(
        answer(&m),
        vec!["www.one.test. CNAME www.two.test.", "www.two.test. CNAME www.three.test.", "www.three.test. A 192.0.2.3"],
        "{}",
        h.log()
    );
    assert_minimal(&m);

    // DNAME: the DNAME, the synthesized CNAME, then the rest of the chain.
    let (m, _) = ask(&d, "www.legacy.one.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let got = answer(&m);
    assert!(m.answers.iter().any(|r| r.record_type() == RecordType::DNAME && r.name.to_ascii() == "legacy.one.test."), "{got:?}");
    assert!(got.contains(&"www.legacy.one.test. CNAME www.two.test.".to_string()), "{got:?}");
    assert!(got.contains(&"www.three.test. A 192.0.2.3".to_string()), "{got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_loop_fails_quickly() {
    let net = three_zones(["loop CNAME loop.two.test.", "loop CNAME loop.three.test.", "loop CNAME loop.one.test."]);
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "loop.one.test.", A).await;
    // SERVFAIL, or the chain cut short as Unbound does; never an address, never slow.
    let rcode = m.metadata.response_code;
    assert!(rcode == ResponseCode::ServFail || rcode == ResponseCode::NoError, "{rcode:?}");
    assert!(!m.answers.iter().any(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA)));
    assert!(against_unbound() || took < Duration::from_millis(1000), "CNAME loop took {took:?}");
    assert_bounded(&h, "CNAME loop");
}

/// A chain c0.one -> c1.two -> c2.three -> c3.one ... of `hops` CNAMEs ending in an A.
fn cname_chain(hops: usize) -> Net {
    let zones = ["one", "two", "three"];
    let mut lines = [String::new(), String::new(), String::new()];
    for i in 0..hops {
        lines[i % 3].push_str(&format!("c{i} CNAME c{}.{}.test.\n", i + 1, zones[(i + 1) % 3]));
    }
    lines[hops % 3].push_str(&format!("c{hops} A 192.0.2.9\n"));
    three_zones([&lines[0], &lines[1], &lines[2]])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_chain_within_the_bound_resolves_longer_fails() {
    let (h, d) = start(cname_chain(8), "").await;
    let (m, _) = ask(&d, "c0.one.test.", A).await;
    assert_eq!(m.answers.len(), 9, "{:?}\n{}", answer(&m), h.log());
    assert_eq!(answer(&m).last().unwrap(), "c8.three.test. A 192.0.2.9");
    d.shutdown().await;

    let (h, d) = start(cname_chain(24), "").await;
    let (m, took) = ask(&d, "c0.one.test.", A).await;
    assert_servfail_in_time(&m, took, "24 CNAMEs");
    assert_bounded(&h, "24 CNAMEs");
}

// ---------------------------------------------------------------- 8. out-of-bailiwick records

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_bailiwick_records_are_dropped_and_not_cached() {
    let mut net = Net::new();
    let (ex, bank) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("example NS ns.example\nns.example A {ex}\nbank NS ns.bank\nns.bank A {bank}"));
    net.zone(ex, "example.test.", &format!("@ NS ns\nns A {ex}\nwww A 192.0.2.1"));
    net.on(
        ex,
        "www.example.test.",
        A,
        Behaviour::Reply(
            Reply::authoritative()
                .answer("www.example.test. 3600 A 192.0.2.1\nwww.bank.test. 3600 A 6.6.6.6")
                .authority("bank.test. 3600 NS ns.evil.test.")
                .additional("www.bank.test. 3600 A 6.6.6.6\nns.evil.test. 3600 A 6.6.6.7"),
        ),
    );
    net.zone(bank, "bank.test.", &format!("@ NS ns\nns A {bank}\nwww A 192.0.2.99"));
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"], "unrelated answer records passed through");
    assert_minimal(&m);
    let (m, _) = ask(&d, "www.bank.test.", A).await;
    assert_eq!(answer(&m), vec!["www.bank.test. A 192.0.2.99"], "{}", h.log());
    assert!(h.to(bank) >= 1, "bank.test's server was asked: {}", h.log());
}

// ---------------------------------------------------------------- 9. negative caching

fn simple_zone(extra: &str) -> (Net, IpAddr) {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(&mut net, &format!("example NS ns.example\nns.example A {ex}"));
    net.zone(ex, "example.test.", &format!("@ NS ns\nns A {ex}\nwww A 192.0.2.1\n{extra}"));
    (net, ex)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nxdomain_and_nodata_are_cached_and_nxdomain_covers_the_names_below() {
    let (net, _) = simple_zone("");
    let (h, d) = start(net, "qname_minimisation = \"off\"").await;
    let (m, _) = ask(&d, "x.example.test.", A).await;
    assert_negative(&m, ResponseCode::NXDomain, "example.test.");
    let (m, _) = ask(&d, "www.example.test.", RecordType::TXT).await;
    assert_negative(&m, ResponseCode::NoError, "example.test.");

    h.reset_counts();
    let (m, _) = ask(&d, "x.example.test.", A).await;
    assert_negative(&m, ResponseCode::NXDomain, "example.test.");
    let (m, _) = ask(&d, "www.example.test.", RecordType::TXT).await;
    assert_negative(&m, ResponseCode::NoError, "example.test.");
    assert_eq!(h.total(), 0, "NXDOMAIN and NODATA from the cache: {}", h.log());

    // RFC 8020: nothing exists below a name that does not exist.
    let (m, _) = ask(&d, "a.b.x.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(h.total(), 0, "a.b.x.example.test after NXDOMAIN for x: {}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_zone_is_cached_briefly() {
    let (mut net, ex) = simple_zone("");
    net.on_zone(ex, "example.test.", Behaviour::Rcode(ResponseCode::ServFail));
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_servfail_in_time(&m, took, "SERVFAILing zone");
    h.reset_counts();
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(in_time(took));
    assert_eq!(h.total(), 0, "second SERVFAIL within a second from the failure cache: {}", h.log());
}

// ---------------------------------------------------------------- 10. TTL clamps

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_min_and_max_ttl_clamp_what_the_client_sees() {
    let (net, _) = simple_zone("short 5 A 192.0.2.5\nlong 100000 A 192.0.2.6");
    let (_h, d) = start(net, "cache_min_ttl = 60\ncache_max_ttl = 3600").await;
    let (m, _) = ask(&d, "short.example.test.", A).await;
    assert_eq!(answer(&m), vec!["short.example.test. A 192.0.2.5"]);
    assert!((59..=60).contains(&m.answers[0].ttl), "short TTL raised to 60: {}", m.answers[0].ttl);
    let (m, _) = ask(&d, "long.example.test.", A).await;
    assert!((3599..=3600).contains(&m.answers[0].ttl), "long TTL capped to 3600: {}", m.answers[0].ttl);
    // Over TCP and from the cache the same.
    let m = tcp_query(d.addr(), &query_message("short.example.test.", A, None)).await;
    assert!((58..=60).contains(&m.answers[0].ttl), "{}", m.answers[0].ttl);
}

// ---------------------------------------------------------------- 11. bounds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sideways_referral_loop_is_bounded() {
    // Sideways: loop.test's two servers refer the zone to each other forever.
    let mut net = Net::new();
    let (s1, s2) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("loop NS ns1.loop\nns1.loop A {s1}"));
    net.bare(s1).bare(s2);
    net.on_zone(s1, "loop.test.", Behaviour::Reply(Reply::non_authoritative().authority("loop.test. 3600 NS ns2.loop.test.").additional(&format!("ns2.loop.test. 3600 A {s2}"))));
    net.on_zone(s2, "loop.test.", Behaviour::Reply(Reply::non_authoritative().authority("loop.test. 3600 NS ns1.loop.test.").additional(&format!("ns1.loop.test. 3600 A {s1}"))));
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.loop.test.", A).await;
    assert_servfail_in_time(&m, took, "sideways referral loop");
    assert_bounded(&h, "sideways referral loop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ns_name_cycle_is_bounded() {
    // Through NS names: a.test is served by ns.b.test, b.test by ns.a.test, neither with glue.
    let mut net = Net::new();
    tld(&mut net, "a NS ns.b\nb NS ns.a");
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.a.test.", A).await;
    assert_servfail_in_time(&m, took, "NS name cycle");
    assert_bounded(&h, "NS name cycle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_downward_referrals_are_bounded() {
    // Downwards forever: every server refers one label deeper, to itself.
    let mut net = Net::new();
    let deep = net.addr(3);
    tld(&mut net, &format!("deep NS ns.deep\nns.deep A {deep}"));
    net.bare(deep);
    let mut qname = "deep.test.".to_string();
    let mut cuts = Vec::new();
    for i in 0..40 {
        qname = format!("l{i}.{qname}");
        cuts.push(qname.clone());
    }
    // The rule for each zone refers to the next label down (the deepest rule wins).
    for cut in &cuts {
        let parent = cut.split_once('.').unwrap().1;
        let referral = Reply::non_authoritative()
            .authority(&format!("{cut} 3600 NS ns.{cut}"))
            .additional(&format!("ns.{cut} 3600 A {deep}"));
        net.on_zone(deep, parent, Behaviour::Reply(referral));
    }
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, &format!("www.{qname}"), A).await;
    assert_servfail_in_time(&m, took, "40 nested referrals");
    assert_bounded(&h, "40 nested referrals");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_with_2000_ns_names_without_glue_is_bounded() {
    let mut net = Net::new();
    let nowhere = net.addr(3);
    let ns: String = (0..2000).map(|i| format!("big NS ns{i}.nowhere\n")).collect();
    tld(&mut net, &format!("{ns}nowhere NS ns.nowhere\nns.nowhere A {nowhere}"));
    // Every NS name's address query times out: the most expensive kind of failure.
    net.zone(nowhere, "nowhere.test.", &format!("@ NS ns\nns A {nowhere}"));
    net.on_zone(nowhere, "nowhere.test.", Behaviour::Timeout);
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.big.test.", A).await;
    assert_servfail_in_time(&m, took, "2000 NS names");
    assert_bounded(&h, "2000 NS names");
    // And dnsward still answers.
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_very_long_cname_chain_is_bounded() {
    let (h, d) = start(cname_chain(150), "").await;
    let (m, took) = ask(&d, "c0.one.test.", A).await;
    assert_servfail_in_time(&m, took, "150 CNAMEs");
    assert_bounded(&h, "150 CNAMEs");
}

// ---------------------------------------------------------------- 12. bad input

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compression_loop_is_dropped() {
    failover("compression loop", |_, _| Behaviour::compression_loop()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_message_is_dropped() {
    failover("truncated message", |_, _| Behaviour::truncated_message(Behaviour::Zone)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_bounded_and_scrubbed() {
    // 60 KB over UDP to a 1232-byte query, carrying the right answer and junk: the client
    // gets the right answer (from it or the other server) and none of the junk.
    failover("oversized message", |_, _| Behaviour::oversized(Behaviour::Zone)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_from_the_only_server_servfails_and_dnsward_lives_on() {
    for (what, bad) in [
        ("compression loop", Behaviour::compression_loop()),
        ("truncated message", Behaviour::truncated_message(Behaviour::Zone)),
        ("garbage", Behaviour::Raw(std::sync::Arc::new(|_, q, _| q.iter().rev().copied().collect()))),
        ("empty datagram", Behaviour::Raw(std::sync::Arc::new(|_, _, _| Vec::new()))),
    ] {
        let (mut net, ex) = simple_zone("");
        net.on(ex, "www.example.test.", A, bad);
        let (h, d) = start(net, "").await;
        let (m, took) = ask(&d, "www.example.test.", A).await;
        assert_servfail_in_time(&m, took, what);
        assert_bounded(&h, what);
        let (m, _) = ask(&d, "www.example.test.", RecordType::AAAA).await;
        assert_negative(&m, ResponseCode::NoError, "example.test.");
        d.shutdown().await;
    }
}

// ---------------------------------------------------------------- 13. IPv6 servers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_servers_used_only_with_upstream_ipv6() {
    let Some(v6) = Net::ipv6() else {
        eprintln!("SKIP: ::1 is not bindable here");
        return;
    };
    // v6only.test: one server, reachable only at ::1 (AAAA glue).
    // dual.test: ns.dual has an A (.4, answers 192.0.2.4) and an AAAA (::1, answers 192.0.2.6).
    let build = || {
        let mut net = Net::new();
        let v4 = net.addr(4);
        tld(&mut net, &format!("v6only NS ns.v6only\nns.v6only AAAA {v6}\ndual NS ns.dual\nns.dual A {v4}\nns.dual AAAA {v6}"));
        net.zone(v6, "v6only.test.", &format!("@ NS ns\nns AAAA {v6}\nwww A 192.0.2.66"));
        net.zone(v6, "dual.test.", &format!("@ NS ns\nns A {v4}\nns AAAA {v6}\nwww A 192.0.2.6"));
        net.zone(v4, "dual.test.", &format!("@ NS ns\nns A {v4}\nns AAAA {v6}\nwww A 192.0.2.4"));
        (net, v4)
    };
    let (net, _) = build();
    let (h, d) = start(net, "upstream_ipv6 = true").await;
    let (m, _) = ask(&d, "www.v6only.test.", A).await;
    assert_eq!(answer(&m), vec!["www.v6only.test. A 192.0.2.66"], "{}", h.log());
    assert!(h.to(v6) >= 1);
    d.shutdown().await;
    drop(h);

    let (net, v4) = build();
    let (h, d) = start(net, "upstream_ipv6 = false").await;
    let (m, _) = ask(&d, "www.dual.test.", A).await;
    assert_eq!(answer(&m), vec!["www.dual.test. A 192.0.2.4"], "{}", h.log());
    assert!(h.to(v4) >= 1);
    let (m, took) = ask(&d, "www.v6only.test.", A).await;
    assert_servfail_in_time(&m, took, "a v6-only zone without upstream_ipv6");
    assert_eq!(h.to(v6), 0, "an IPv6 server was asked with upstream_ipv6 = false: {}", h.log());
}

// The TCP client path of the harness is exercised by dnsward's own answer over TCP too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_is_the_same_over_tcp() {
    let (net, _) = simple_zone("");
    let (_h, d) = start(net, "").await;
    let m = tcp_query(d.addr(), &query_message("www.example.test.", A, Some(1232))).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"]);
    assert_minimal(&m);
}
