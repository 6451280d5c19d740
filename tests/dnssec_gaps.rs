//! The validator's known gaps (issue 22), each as a signed zone served over real sockets and a
//! validating dnsward, iterating and forwarding: a CNAME chain signed by two zones, expired
//! signatures and TTLs past a signature's end, QTYPE=RRSIG, an unsigned delegation whose
//! servers do not answer DS, RSA/SHA-1 zones and RSA keys too short to verify.

mod common;
mod dnssec_support;
#[path = "dnssec_support/lab.rs"]
mod lab;

use hickory_proto::dnssec::Algorithm;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use common::ede;
use dnssec_support::name;
use dnsward::dnssec::signed::{DenialChain, SignOptions, SignedZone};
use dnsward::instance::Instance;
use lab::{lab, lab_with, now, query, Lab, A, DO, PLAIN};

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

/// `sha1.` (RSA/SHA-1, NSEC; `bad.sha1.`'s RRSIG corrupted), `sha1nsec3.` (RSASHA1-NSEC3-SHA1),
/// `rsa512.` (RSA/SHA-256 with 512-bit keys), signed by openssl.
fn add_rsa_zones(zones: &mut Vec<SignedZone>) {
    let now = now();
    let data = "www 300 IN A 192.0.2.5\nbad 300 IN A 192.0.2.6\n";
    #[allow(deprecated)]
    let made = [
        ("sha1.", Algorithm::RSASHA1, 1024, DenialChain::Nsec),
        (
            "sha1nsec3.",
            Algorithm::RSASHA1NSEC3SHA1,
            1024,
            DenialChain::Nsec3 {
                iterations: 0,
                salt: Vec::new(),
                opt_out: false,
            },
        ),
        ("rsa512.", Algorithm::RSASHA256, 512, DenialChain::Nsec),
    ]
    .into_iter()
    .map(|(origin, alg, bits, denial)| {
        let opts = SignOptions {
            denial,
            ..SignOptions::new(now)
        };
        dnssec_support::sign_with_openssl(origin, data, bits, alg, opts)
    })
    .collect::<Option<Vec<_>>>();
    let mut made = made.expect("openssl signs the RSA zones");
    for r in made[0]
        .records
        .iter_mut()
        .filter(|r| r.name == name("bad.sha1.") && dnssec_support::covers(r, A))
    {
        dnssec_support::corrupt_rrsig(r);
    }
    zones.extend(made);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rsa_sha1_zones_are_validated_unless_turned_off_and_short_rsa_keys_are_insecure() {
    if !common::tools::require_tool("openssl", "openssl") {
        return;
    }
    let lab = lab_with(add_rsa_zones, Vec::new()).await;
    for (mode, d) in both(&lab).await {
        let addr = d.addrs()[0];
        for name in ["www.sha1.", "www.sha1nsec3."] {
            let m = query(addr, name, A, DO).await;
            assert_eq!(
                m.metadata.response_code,
                ResponseCode::NoError,
                "{mode} {name}: {:?}",
                ede(&m)
            );
            assert!(
                m.metadata.authentic_data,
                "{mode} {name}: RSA/SHA-1 validated by default"
            );
        }
        let m = query(addr, "nothere.sha1nsec3.", A, DO).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(
            m.metadata.authentic_data,
            "{mode}: NSEC3 denial with algorithm 7"
        );
        let m = query(addr, "bad.sha1.", A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::ServFail,
            "{mode}: forged SHA-1 data"
        );
        assert_eq!(ede(&m).map(|e| e.0), Some(6), "{mode}");
        // ring refuses RSA moduli under 1024 bits: insecure, not bogus.
        let m = query(addr, "www.rsa512.", A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{mode}: {:?}",
            ede(&m)
        );
        assert!(!m.metadata.authentic_data, "{mode}");
        d.shutdown().await;
    }
    // dnssec_sha1 = false: RSA/SHA-1 is an unsupported algorithm, the zones insecure.
    let d = lab.dnsward("dnssec_sha1 = false", "").await;
    for name in ["www.sha1.", "bad.sha1.", "www.sha1nsec3."] {
        let m = query(d.addrs()[0], name, A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{name}: {:?}",
            ede(&m)
        );
        assert!(!m.metadata.authentic_data, "{name}");
    }
    d.shutdown().await;
}

/// `flood.` (NSEC) and `flood3.` (NSEC3, no opt-out), a few names each.
fn add_flood_zones(zones: &mut Vec<SignedZone>) {
    let now = now();
    let data = "www 300 IN A 192.0.2.1\nmail 300 IN A 192.0.2.2\nx.y 300 IN A 192.0.2.3\n";
    zones.push(dnssec_support::sign("flood.", data, SignOptions::new(now)));
    let nsec3 = SignOptions {
        denial: DenialChain::Nsec3 {
            iterations: 0,
            salt: Vec::new(),
            opt_out: false,
        },
        ..SignOptions::new(now)
    };
    zones.push(dnssec_support::sign("flood3.", data, nsec3));
}

/// Sends `names` random names under `zone` (NXDOMAIN each), `in_flight` at a time; returns how
/// many questions the zones' server got meanwhile, and checks every answer.
async fn flood(
    lab: &Lab,
    addr: std::net::SocketAddr,
    zone: &str,
    names: usize,
    in_flight: usize,
) -> usize {
    use futures_util::StreamExt;
    let before = lab
        .server
        .queries
        .load(std::sync::atomic::Ordering::Relaxed);
    let answers = futures_util::stream::iter(0..names)
        .map(|_| {
            let label: String = (0..12)
                .map(|_| (b'a' + rand::random::<u8>() % 26) as char)
                .collect();
            async move { query(addr, &format!("{label}.{zone}"), A, DO).await }
        })
        .buffer_unordered(in_flight)
        .collect::<Vec<Message>>()
        .await;
    for m in &answers {
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "{zone}: {:?}",
            ede(m)
        );
        assert!(
            m.metadata.authentic_data,
            "{zone}: a proven NXDOMAIN is secure"
        );
    }
    lab.server
        .queries
        .load(std::sync::atomic::Ordering::Relaxed)
        - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_subdomain_flood_is_answered_from_cached_nsec_and_nsec3() {
    // WATER_TORTURE_NAMES=20000 for the figure in bench/README.md.
    let names: usize = std::env::var("WATER_TORTURE_NAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let lab = lab_with(add_flood_zones, Vec::new()).await;
    let on = lab.dnsward("", "").await;
    let off = lab.dnsward("aggressive_nsec = false", "").await;
    for zone in ["flood.", "flood3."] {
        // The target holds once the zone's keys and denial records are cached (issue 22): a
        // few names one at a time first, then the flood, 32 in flight.
        flood(&lab, on.addrs()[0], zone, 20, 1).await;
        let upstream = flood(&lab, on.addrs()[0], zone, names, 32).await;
        let ratio = upstream as f64 / names as f64;
        eprintln!(
            "aggressive_nsec = true, {zone}: {upstream} upstream queries for {names} names ({:.2}%)",
            ratio * 100.0
        );
        assert!(
            ratio <= 0.05,
            "{zone}: {upstream} upstream queries for {names} names"
        );
        flood(&lab, off.addrs()[0], zone, 20, 1).await;
        let without = flood(&lab, off.addrs()[0], zone, names / 10, 32).await;
        eprintln!(
            "aggressive_nsec = false, {zone}: {without} upstream queries for {} names",
            names / 10
        );
        assert!(
            without >= names / 10,
            "{zone}: without RFC 8198 every name is asked"
        );
        // What the cached records do not deny still resolves; what they do is denied right.
        let addr = on.addrs()[0];
        for (name, rtype, rcode, answers) in [
            ("www", A, ResponseCode::NoError, 1),
            ("x.y", A, ResponseCode::NoError, 1),
            ("y", A, ResponseCode::NoError, 0),
            ("www", RecordType::TXT, ResponseCode::NoError, 0),
            ("www", RecordType::TXT, ResponseCode::NoError, 0),
            ("nope.www", A, ResponseCode::NXDomain, 0),
        ] {
            let m = query(addr, &format!("{name}.{zone}"), rtype, DO).await;
            assert_eq!(
                m.metadata.response_code,
                rcode,
                "{name}.{zone} {rtype}: {:?}",
                ede(&m)
            );
            let data = m
                .answers
                .iter()
                .filter(|r| r.record_type() == rtype)
                .count();
            assert_eq!(data, answers, "{name}.{zone} {rtype}");
            assert!(m.metadata.authentic_data, "{name}.{zone} {rtype}");
        }
    }
    on.shutdown().await;
    off.shutdown().await;
}
