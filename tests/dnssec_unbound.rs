//! Differential test: dnsward's validator and Unbound judge the same signed hierarchy, served
//! over real sockets on loopback. Skipped with a `SKIP:` line where `unbound` is not
//! installed (a failure under CI).
//!
//! Unbound reaches every zone through `stub-zone`s pointing at the test authority (any port
//! works that way) and trusts the test root's DS. dnsward's validator gets each response over
//! UDP/TCP from the same authority and fetches DS/DNSKEY the same way.

mod common;
mod dnssec_support;

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::RecordType;

use common::unbound::Unbound;
use dnssec_support::{ask_dnssec, name, Authority, Hierarchy, UdpFetcher};
use dnsward::dnssec::Security;

fn start_unbound(h: &Hierarchy, authority: SocketAddr) -> Unbound {
    let (dir, port) = Unbound::prepare();
    let mut conf = format!(
        "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  do-not-query-localhost: no\n  \
         username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  \
         use-syslog: no\n  logfile: \"{d}/unbound.log\"\n  verbosity: 1\n  val-log-level: 2\n  \
         num-threads: 1\n  so-reuseport: no\n  qname-minimisation: no\n  aggressive-nsec: no\n  \
         target-fetch-policy: \"0 0 0 0 0\"\n  module-config: \"validator iterator\"\n  \
         outgoing-interface: 127.0.0.1\n  trust-anchor: \"{ds}\"\n  ede: yes\n\
         remote-control:\n  control-enable: no\n",
        d = dir.path().display(),
        ds = h.zone(".").ds_line(),
    );
    for zone in &h.zones {
        conf += &format!(
            "stub-zone:\n  name: \"{}\"\n  stub-addr: 127.0.0.1@{}\n",
            zone.apex,
            authority.port()
        );
    }
    Unbound::spawn(dir, port, &conf).expect("unbound starts")
}

/// Unbound's verdict from what a client sees: SERVFAIL = bogus, AD = secure, else insecure.
fn unbound_verdict(rcode: ResponseCode, ad: bool) -> &'static str {
    match (rcode, ad) {
        (ResponseCode::ServFail, _) => "bogus",
        (_, true) => "secure",
        _ => "insecure",
    }
}

fn our_verdict(s: &Security) -> &'static str {
    match s {
        Security::Secure => "secure",
        Security::Insecure => "insecure",
        Security::Bogus(_) => "bogus",
        Security::Indeterminate => "indeterminate",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_match_unbound() {
    if !common::tools::require_tool("unbound", "unbound") {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let h = Hierarchy::build_at(now, |_| {});
    let authority = Authority::start(h.clone()).await;
    let unbound = start_unbound(&h, authority.addr);
    // Wait (bounded) until Unbound answers.
    let mut up = false;
    for _ in 0..50 {
        if ask_dnssec(unbound.addr, &name("secure."), RecordType::SOA)
            .await
            .is_some()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "unbound did not start");

    let validator = h.validator();
    let fetcher = UdpFetcher {
        h: h.clone(),
        server: authority.addr,
    };
    let cases: &[(&str, RecordType, &str)] = &[
        ("www.secure.", RecordType::A, "secure"),
        ("alias.secure.", RecordType::A, "secure"),
        ("nothere.secure.", RecordType::A, "secure"),
        ("www.secure.", RecordType::TXT, "secure"),
        ("deep.secure.", RecordType::A, "secure"),
        ("x.wild.secure.", RecordType::A, "secure"),
        ("x.wild.secure.", RecordType::MX, "secure"),
        ("dangling.secure.", RecordType::A, "secure"),
        ("www.nsec3.", RecordType::A, "secure"),
        ("dangling.nsec3.", RecordType::A, "secure"),
        ("nothere.nsec3.", RecordType::A, "secure"),
        ("www.nsec3.", RecordType::TXT, "secure"),
        ("deep.nsec3.", RecordType::A, "secure"),
        ("x.wild.nsec3.", RecordType::A, "secure"),
        ("x.wild.nsec3.", RecordType::MX, "secure"),
        ("www.optout.", RecordType::A, "secure"),
        ("child.optout.", RecordType::DS, "insecure"),
        ("nothere.slow.", RecordType::A, "insecure"),
        ("www.slow.", RecordType::A, "secure"),
        ("www.expired.", RecordType::A, "bogus"),
        ("www.nokey.", RecordType::A, "bogus"),
        ("www.badsig.", RecordType::A, "bogus"),
        ("nothere.badsig.", RecordType::A, "secure"),
        ("www.stripped.", RecordType::A, "bogus"),
        ("nothere.stripped.", RecordType::A, "secure"),
        ("nothere.nonsec.", RecordType::A, "bogus"),
        ("www.nonsec.", RecordType::TXT, "bogus"),
        ("www.nonsec.", RecordType::A, "secure"),
        ("www.insecure.", RecordType::A, "insecure"),
    ];
    let mut cases = cases.to_vec();
    if dnssec_support::rsa_keys().is_some() {
        cases.extend([
            ("www.rsa.", RecordType::A, "secure"),
            ("nothere.rsa.", RecordType::A, "secure"),
            ("x.wild.rsa.", RecordType::A, "secure"),
        ]);
    }
    let mut report = Vec::new();
    let mut mismatches = 0;
    for (qname, qtype, expected) in &cases {
        let qname = name(qname);
        let zone = h.answering_zone(&qname, *qtype).unwrap().apex.clone();
        let response = ask_dnssec(authority.addr, &qname, *qtype)
            .await
            .expect("authority answers");
        let ours = validator
            .validate(
                &Query::query(qname.clone(), *qtype),
                &response,
                &zone,
                &fetcher,
                now,
            )
            .await;
        let theirs = ask_dnssec(unbound.addr, &qname, *qtype)
            .await
            .expect("unbound answers");
        let theirs = unbound_verdict(
            theirs.metadata.response_code,
            theirs.metadata.authentic_data,
        );
        let line = format!(
            "{qname} {qtype}: dnsward {} ({ours:?}), unbound {theirs}, expected {expected}",
            our_verdict(&ours)
        );
        if our_verdict(&ours) != *expected || theirs != *expected {
            mismatches += 1;
        }
        report.push(line);
    }
    let report = report.join("\n");
    eprintln!("{report}");
    assert_eq!(mismatches, 0, "verdicts differ:\n{report}");
}
