//! The validator's known gaps (issue 22), each as a signed zone served over real sockets and a
//! validating dnsward, iterating and forwarding: a CNAME chain signed by two zones, expired
//! signatures and TTLs past a signature's end, QTYPE=RRSIG, and an unsigned delegation whose
//! servers do not answer DS.

mod common;
mod dnssec_support;
#[path = "dnssec_support/lab.rs"]
mod lab;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use dnssec_support::name;
use dnsward::dnssec::signed::{SignOptions, SignedZone};
use dnsward::instance::Instance;
use lab::{ede, lab, lab_with, now, query, Lab, A, DO, PLAIN};

/// `multi.` with a signed child `sub.multi.` on the same server; `www.multi.` is a CNAME into
/// the child. `justexpired.`: signatures that ended an hour ago (within the old skew).
/// `expiring.`: signatures that end in 100 s, over records with a 300 s TTL.
fn add_zones(zones: &mut Vec<SignedZone>) {
    let now = now();
    let sign =
        |origin: &str, data: &str, opts: SignOptions| dnssec_support::sign(origin, data, opts);
    let sub = sign(
        "sub.multi.",
        "foo 300 IN A 192.0.2.7\n",
        SignOptions::new(now),
    );
    let multi = sign(
        "multi.",
        &format!(
            "www 300 IN CNAME foo.sub.multi.\nsub 3600 IN NS ns.invalid.\n{}\n",
            sub.ds_line()
        ),
        SignOptions::new(now),
    );
    zones.push(multi);
    zones.push(sub);
    let mut expired = SignOptions::new(now);
    (expired.inception, expired.expiration) = (now - 30 * 86400, now - 3600);
    zones.push(sign("justexpired.", "www 300 IN A 192.0.2.8\n", expired));
    let mut expiring = SignOptions::new(now);
    expiring.expiration = now + 100;
    zones.push(sign("expiring.", "www 300 IN A 192.0.2.9\n", expiring));
}

/// The same lab, one dnsward iterating and one forwarding to the lab's server.
async fn both(lab: &Lab) -> [(&'static str, Instance); 2] {
    [
        ("iterating", lab.dnsward("", "").await),
        ("forwarding", lab.forwarding_dnsward("validate").await),
    ]
}

fn owners_and_types(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| format!("{} {}", r.name, r.record_type()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cname_chain_signed_by_a_zone_and_its_child_is_secure() {
    let lab = lab_with(add_zones, Vec::new()).await;
    for (mode, d) in both(&lab).await {
        let m = query(d.addrs()[0], "www.multi.", A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{mode}: {:?}",
            ede(&m)
        );
        let got = owners_and_types(&m);
        assert!(
            got.contains(&"www.multi. CNAME".to_string())
                && got.contains(&"foo.sub.multi. A".to_string()),
            "{mode}: {got:?}"
        );
        assert!(
            m.metadata.authentic_data,
            "{mode}: each link verified with its signer's keys"
        );
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signature_expired_an_hour_ago_is_bogus() {
    let lab = lab_with(add_zones, Vec::new()).await;
    for (mode, d) in both(&lab).await {
        let m = query(d.addrs()[0], "www.justexpired.", A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::ServFail,
            "{mode}: {m:?}"
        );
        assert_eq!(ede(&m).map(|e| e.0), Some(7), "{mode}: Signature Expired");
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_validated_ttl_never_outlives_its_signature() {
    let lab = lab_with(add_zones, Vec::new()).await;
    for (mode, d) in both(&lab).await {
        for flags in [DO, PLAIN] {
            let m = query(d.addrs()[0], "www.expiring.", A, flags).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{mode}: {m:?}"
            );
            let a = m
                .answers
                .iter()
                .find(|r| r.record_type() == A)
                .expect("the A");
            assert!(
                a.ttl <= 100,
                "{mode}: TTL {} past the signature's end in 100 s (RFC 4035 5.3.3)",
                a.ttl
            );
        }
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qtype_rrsig_gets_the_signatures_without_ad() {
    let lab = lab().await;
    for (mode, d) in both(&lab).await {
        let m = query(d.addrs()[0], "www.secure.", RecordType::RRSIG, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{mode}: {:?}",
            ede(&m)
        );
        assert!(!m.answers.is_empty(), "{mode}: the RRSIGs are the answer");
        assert!(
            m.answers
                .iter()
                .all(|r| r.record_type() == RecordType::RRSIG),
            "{mode}: {:?}",
            owners_and_types(&m)
        );
        assert!(
            !m.metadata.authentic_data,
            "{mode}: RRSIGs are not signed: no AD"
        );
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_zone_whose_servers_refuse_ds_is_insecure_not_bogus() {
    // The chain of trust walks down from the root: `insecure.` has no DS (proven by the
    // root), so nothing below it needs a DS question, which its server would refuse.
    let lab = lab_with(|_| {}, vec![name("insecure.")]).await;
    for (mode, d) in both(&lab).await {
        let m = query(d.addrs()[0], "www.insecure.", A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{mode}: {:?}",
            ede(&m)
        );
        assert!(m.answers.iter().any(|r| r.record_type() == A), "{mode}");
        assert!(!m.metadata.authentic_data, "{mode}");
        let m = query(d.addrs()[0], "nothere.insecure.", A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{mode}: {:?}",
            ede(&m)
        );
        assert!(!m.metadata.authentic_data, "{mode}");
        d.shutdown().await;
    }
}
