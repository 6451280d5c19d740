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

// ---------------------------------------------------------------- prefetch (issue 22)

/// Asks `www.example.test` (TTL 10) at 0 s and at 9.3 s (the last 10 % of its TTL), then at
/// 10.5 s; returns how often the zone's server was asked by each moment, and the TTL seen last.
async fn ttl_ten_timeline(resolver_keys: &str) -> (usize, usize, u32) {
    let (net, ex) = simple_zone("ten 10 A 192.0.2.10");
    let (h, d) = start(net, resolver_keys).await;
    let asked = |h: &Running| h.count(|s| s.server == ex && s.name == "ten.example.test.");
    let started = Instant::now();
    let (m, _) = ask(&d, "ten.example.test.", A).await;
    assert_eq!(answer(&m), vec!["ten.example.test. A 192.0.2.10"]);
    tokio::time::sleep_until((started + Duration::from_millis(9_300)).into()).await;
    let (m, _) = ask(&d, "ten.example.test.", A).await;
    assert_eq!(m.answers.len(), 1, "still a cache hit at 9.3 s");
    // A background refresh, if any, has until 10 s to reach the server.
    tokio::time::sleep_until((started + Duration::from_millis(10_000)).into()).await;
    let by_ten = asked(&h);
    tokio::time::sleep_until((started + Duration::from_millis(10_500)).into()).await;
    let (m, _) = ask(&d, "ten.example.test.", A).await;
    let ttl = m.answers.first().map(|r| r.ttl).unwrap_or(0);
    let total = asked(&h);
    d.shutdown().await;
    (by_ten, total, ttl)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_asked_for_near_its_expiry_is_refreshed_in_the_background() {
    let (on, off) = tokio::join!(
        ttl_ten_timeline("qname_minimisation = \"off\""),
        ttl_ten_timeline("qname_minimisation = \"off\"\nprefetch = false"),
    );
    // prefetch = true (default): the hit at 9.3 s refreshed the entry, so at 10.5 s the answer
    // is still cached, with a fresh TTL, and the server was asked twice in all.
    assert_eq!(on.0, 2, "refreshed in the background by 10 s");
    assert_eq!(on.1, 2, "no miss at 10.5 s");
    assert!(on.2 >= 8, "a fresh TTL at 10.5 s: {}", on.2);
    // prefetch = false: nothing before expiry, a miss after it.
    assert_eq!(off.0, 1, "no refresh without prefetch");
    assert_eq!(off.1, 2, "asked again once expired");
}

/// The prefetch figure of bench/README.md (20 s, so run by hand):
/// `cargo test --test iterator prefetch_figure -- --ignored --nocapture`. 50 names with a 4 s
/// TTL asked in rounds every 250 ms for 20 s: how many of the 4,000 questions missed the cache
/// (a client waiting on upstream), with prefetch on and off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn prefetch_figure() {
    async fn misses(resolver_keys: &str) -> (u64, u64, usize) {
        let zone: String = (0..50).map(|i| format!("n{i} 4 A 192.0.2.{i}\n")).collect();
        let (net, ex) = simple_zone(&zone);
        let (h, d) = start(net, resolver_keys).await;
        let Resolver::Dnsward(instance) = &d else {
            panic!("dnsward only");
        };
        let started = Instant::now();
        for round in 0..80u64 {
            for i in 0..50 {
                ask(&d, &format!("n{i}.example.test."), A).await;
            }
            tokio::time::sleep_until((started + Duration::from_millis(250 * (round + 1))).into())
                .await;
        }
        let stats = instance.engine.cache().stats();
        let upstream = h.count(|s| s.server == ex && s.name.starts_with('n'));
        d.shutdown().await;
        (stats.misses, stats.hits, upstream)
    }
    let (on, off) = tokio::join!(
        misses("qname_minimisation = \"off\""),
        misses("qname_minimisation = \"off\"\nprefetch = false"),
    );
    eprintln!(
        "prefetch = true:  {} misses, {} hits, {} upstream queries",
        on.0, on.1, on.2
    );
    eprintln!(
        "prefetch = false: {} misses, {} hits, {} upstream queries",
        off.0, off.1, off.2
    );
    assert!(on.0 < off.0, "prefetch spares clients cache misses");
}
