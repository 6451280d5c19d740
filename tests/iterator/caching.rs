//! Caching: NXDOMAIN, NODATA, RFC 8020, failures; TTL clamps.

use crate::*;

// ---------------------------------------------------------------- 9. negative caching

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
    assert_eq!(
        h.total(),
        0,
        "NXDOMAIN and NODATA from the cache: {}",
        h.log()
    );

    // RFC 8020: nothing exists below a name that does not exist.
    let (m, _) = ask(&d, "a.b.x.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        h.total(),
        0,
        "a.b.x.example.test after NXDOMAIN for x: {}",
        h.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_zone_is_cached_briefly() {
    let (mut net, ex) = simple_zone("");
    net.on_zone(
        ex,
        "example.test.",
        Behaviour::Rcode(ResponseCode::ServFail),
    );
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_servfail_in_time(&m, took, "SERVFAILing zone");
    h.reset_counts();
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert!(in_time(took));
    assert_eq!(
        h.total(),
        0,
        "second SERVFAIL within a second from the failure cache: {}",
        h.log()
    );
}

// ---------------------------------------------------------------- 10. TTL clamps

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_min_and_max_ttl_clamp_what_the_client_sees() {
    let (net, _) = simple_zone("short 5 A 192.0.2.5\nlong 100000 A 192.0.2.6");
    let (_h, d) = start(net, "cache_min_ttl = 60\ncache_max_ttl = 3600").await;
    let (m, _) = ask(&d, "short.example.test.", A).await;
    assert_eq!(answer(&m), vec!["short.example.test. A 192.0.2.5"]);
    assert!(
        (59..=60).contains(&m.answers[0].ttl),
        "short TTL raised to 60: {}",
        m.answers[0].ttl
    );
    let (m, _) = ask(&d, "long.example.test.", A).await;
    assert!(
        (3599..=3600).contains(&m.answers[0].ttl),
        "long TTL capped to 3600: {}",
        m.answers[0].ttl
    );
    // Over TCP and from the cache the same.
    let m = tcp_query(d.addr(), &query_message("short.example.test.", A, None)).await;
    assert!(
        (58..=60).contains(&m.answers[0].ttl),
        "{}",
        m.answers[0].ttl
    );
}

// ---------------------------------------------------------------- delegation cache

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_name_in_a_known_zone_goes_straight_to_its_server() {
    let (net, ex) = simple_zone("mail A 192.0.2.2");
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"]);
    h.reset_counts();
    let (m, _) = ask(&d, "mail.example.test.", A).await;
    assert_eq!(answer(&m), vec!["mail.example.test. A 192.0.2.2"]);
    assert!(h.total() >= 1, "mail.example.test was resolved");
    assert_eq!(
        h.count(|s| s.server != ex),
        0,
        "root or TLD asked again: {}",
        h.log()
    );
}
