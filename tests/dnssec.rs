//! DNSSEC end to end: dnsward (dnssec = "validate", the test root key as its trust anchor)
//! resolves a hierarchy signed in the test and served over real sockets, and a client sees AD,
//! SERVFAIL with the Extended DNS Error, CD=1 data, NTAs, and honest policy rewrites.

mod common;
mod dnssec_support;
#[path = "dnssec_support/lab.rs"]
mod lab;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

use common::ede;
use lab::{assert_secure_signed, has_rrsig, lab, query, Flags, A, DO, PLAIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_answers_get_ad_only_when_asked_and_signatures_only_with_do() {
    let lab = lab().await;
    let d = lab.dnsward("", "").await;
    let addr = d.addrs()[0];

    let m = query(addr, "www.secure.", A, DO).await;
    assert_secure_signed(&m, "iterating");

    let m = query(addr, "www.secure.", A, PLAIN).await;
    assert!(!m.metadata.authentic_data, "neither DO nor AD asked: no AD");
    assert!(!has_rrsig(&m), "no DO: no RRSIG");
    assert_eq!(m.answers.len(), 1);

    let m = query(
        addr,
        "www.secure.",
        A,
        Flags {
            dnssec_ok: false,
            ad: true,
            cd: false,
        },
    )
    .await;
    assert!(
        m.metadata.authentic_data,
        "AD in the query asks for AD (RFC 6840 5.7)"
    );
    assert!(!has_rrsig(&m));

    // Denial of existence, NSEC and NSEC3, is secure too.
    let m = query(addr, "nothere.secure.", A, DO).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        m.metadata.authentic_data,
        "proven NXDOMAIN is secure: {m:?}"
    );
    let m = query(addr, "www.nsec3.", RecordType::TXT, DO).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert!(
        m.metadata.authentic_data,
        "proven NODATA (NSEC3) is secure: {m:?}"
    );
    let m = query(addr, "x.wild.secure.", A, DO).await;
    assert!(
        m.metadata.authentic_data,
        "wildcard answer with its proof is secure: {m:?}"
    );

    // An unsigned delegation: data, no AD.
    let m = query(addr, "www.insecure.", A, DO).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{:?}",
        ede(&m)
    );
    assert_eq!(m.answers.iter().filter(|r| r.record_type() == A).count(), 1);
    assert!(!m.metadata.authentic_data);
    d.shutdown().await;
}

/// The bogus zones of the lab each get SERVFAIL with their own EDE and no data, each counted
/// in the validator's bogus count (`dnsward_dnssec_bogus_total`); with CD=1 the client
/// validates itself and gets the data, without AD, and nothing is counted.
async fn assert_bogus_is_servfail_and_cd_gets_the_data(d: &dnsward::instance::Instance) {
    let addr = d.addrs()[0];
    let bogus = || d.engine.validator().expect("validating").bogus_count();
    let before = bogus();
    for (name, code) in [
        ("www.badsig.", 6),
        ("www.expired.", 7),
        ("www.nokey.", 9),
        ("www.stripped.", 10),
    ] {
        let m = query(addr, name, A, DO).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::ServFail,
            "{name}: {m:?}"
        );
        assert!(
            m.answers.is_empty(),
            "{name}: a bogus answer carries no data"
        );
        let (got, text) = ede(&m).unwrap_or_else(|| panic!("{name}: EDE expected: {m:?}"));
        assert_eq!(got, code, "{name}: {text}");
        assert!(!text.is_empty(), "{name}: the EDE says why");
    }
    let counted = bogus();
    assert!(
        counted >= before + 4,
        "4 bogus answers counted: {before} -> {counted}"
    );
    // CD=1: the client validates itself; it gets the data, without AD.
    let m = query(
        addr,
        "www.badsig.",
        A,
        Flags {
            dnssec_ok: true,
            ad: false,
            cd: true,
        },
    )
    .await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.answers.iter().any(|r| r.record_type() == A));
    assert!(!m.metadata.authentic_data);
    assert_eq!(bogus(), counted, "CD=1 answers are not counted as bogus");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bogus_answers_are_servfail_with_the_specific_ede_and_cd_gets_the_data() {
    let lab = lab().await;
    let d = lab.dnsward("", "").await;
    assert_bogus_is_servfail_and_cd_gets_the_data(&d).await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_trust_anchor_turns_a_bogus_zone_insecure() {
    let lab = lab().await;
    let d = lab
        .dnsward("negative_trust_anchors = [\"badsig.\"]", "")
        .await;
    let m = query(d.addrs()[0], "www.badsig.", A, DO).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(m.answers.iter().any(|r| r.record_type() == A));
    assert!(!m.metadata.authentic_data, "under an NTA nothing is secure");
    // Other zones still validate.
    let m = query(d.addrs()[0], "www.expired.", A, DO).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_rewrite_of_a_signed_name_carries_no_ad_and_no_rrsig() {
    let lab = lab().await;
    std::fs::write(lab.dir.path().join("threats.txt"), "www.secure\n").unwrap();
    let d = lab
        .dnsward(
            "",
            "[[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"threats.txt\"\n",
        )
        .await;
    for flags in [
        DO,
        Flags {
            dnssec_ok: true,
            ad: true,
            cd: false,
        },
    ] {
        let m = query(d.addrs()[0], "www.secure.", A, flags).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NXDomain,
            "blocked: {m:?}"
        );
        assert!(!m.metadata.authentic_data, "a rewrite is never AD");
        assert!(!has_rrsig(&m), "a rewrite carries no RRSIG");
    }
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn negative_trust_anchors_are_listed_and_changed_through_the_admin_api() {
    let lab = lab().await;
    let token = "nta-test-token-0123456789";
    std::fs::write(lab.dir.path().join("token"), token).unwrap();
    let d = lab
        .dnsward(
            "",
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n",
        )
        .await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    assert_eq!(
        query(dns, "www.badsig.", A, DO)
            .await
            .metadata
            .response_code,
        ResponseCode::ServFail
    );
    // The bogus answer is counted in /metrics.
    let (_, metrics) = common::http(admin, "GET", "/metrics", None, None).await;
    let bogus: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("dnsward_dnssec_bogus_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("dnsward_dnssec_bogus_total in:\n{metrics}"));
    assert!(bogus >= 1, "{metrics}");

    let (status, body) = common::http(
        admin,
        "POST",
        "/api/nta",
        Some(token),
        Some(r#"{"zone":"badsig."}"#),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("badsig."), "{body}");
    let (status, body) = common::http(admin, "GET", "/api/nta", Some(token), None).await;
    assert_eq!(status, 200);
    assert!(body.contains("badsig."), "{body}");
    let m = query(dns, "www.badsig.", A, DO).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "under the NTA: {m:?}"
    );
    assert!(!m.metadata.authentic_data);

    let (status, _) = common::http(
        admin,
        "POST",
        "/api/nta",
        Some(token),
        Some(r#"{"zone":"not a name!"}"#),
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = common::http(admin, "POST", "/api/nta", None, Some(r#"{"zone":"x."}"#)).await;
    assert_eq!(status, 401, "the token is required");

    let (status, body) = common::http(admin, "DELETE", "/api/nta/badsig.", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        query(dns, "www.badsig.", A, DO)
            .await
            .metadata
            .response_code,
        ResponseCode::ServFail,
        "validated again"
    );
    let (status, _) = common::http(admin, "DELETE", "/api/nta/badsig.", Some(token), None).await;
    assert_eq!(status, 404);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_validates_what_the_forwarder_returns() {
    let lab = lab().await;
    let d = lab.forwarding_dnsward("validate").await;
    let addr = d.addrs()[0];

    // Secure answers and proven denials get AD, as when iterating.
    let m = query(addr, "www.secure.", A, DO).await;
    assert_secure_signed(&m, "via a forwarder");
    let m = query(addr, "www.secure.", A, PLAIN).await;
    assert!(
        !has_rrsig(&m),
        "no DO: no RRSIG, though dnsward asked with DO"
    );
    assert_eq!(m.answers.len(), 1);
    let m = query(addr, "nothere.secure.", A, DO).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authentic_data, "proven NXDOMAIN: {m:?}");
    let m = query(addr, "www.nsec3.", RecordType::TXT, DO).await;
    assert!(m.answers.is_empty());
    assert!(m.metadata.authentic_data, "proven NODATA (NSEC3): {m:?}");

    // An unsigned delegation: data, no AD.
    let m = query(addr, "www.insecure.", A, DO).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{:?}",
        ede(&m)
    );
    assert_eq!(m.answers.iter().filter(|r| r.record_type() == A).count(), 1);
    assert!(!m.metadata.authentic_data);

    // Forged, stripped, expired or keyless data from the forwarder: SERVFAIL with the reason.
    assert_bogus_is_servfail_and_cd_gets_the_data(&d).await;
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_mode_without_validation_passes_answers_through() {
    let lab = lab().await;
    let d = lab.forwarding_dnsward("off").await;
    let m = query(d.addrs()[0], "www.badsig.", A, PLAIN).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{m:?}");
    assert!(!m.metadata.authentic_data);
    d.shutdown().await;
}
