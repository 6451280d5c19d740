//! Delegations: glue, glueless NS names, out-of-bailiwick glue, parent/child NS mismatch,
//! IPv6 servers.

use crate::*;

// ---------------------------------------------------------------- 1. delegations and glue

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegation_with_glue_answers_minimally() {
    let mut net = Net::new();
    let ex = net.addr(3);
    tld(
        &mut net,
        &format!("example NS ns1.example\nns1.example A {ex}"),
    );
    net.zone(
        ex,
        "example.test.",
        &format!("@ NS ns1\nns1 A {ex}\nwww A 192.0.2.1"),
    );
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answer(&m), vec!["www.example.test. A 192.0.2.1"]);
    assert_minimal(&m);
    assert!(h.asked("www.example.test.", A) >= 1, "{}", h.log());
    assert!(
        h.total() <= 8,
        "a plain three-level resolution: {}",
        h.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ns_names_without_glue_are_resolved_in_another_zone() {
    // example.test is served by ns.provider.net: test. cannot give glue for it, so the
    // resolver must resolve ns.provider.net (through net.) first.
    let mut net = Net::new();
    let (ex, provider) = (net.addr(3), net.addr(4));
    hierarchy(
        &mut net,
        &[
            ("test.", "example NS ns.provider.net."),
            (
                "net.",
                &format!("provider NS ns.provider\nns.provider A {provider}"),
            ),
        ],
    );
    net.zone(provider, "provider.net.", &format!("@ NS ns\nns A {ex}\n"));
    net.zone(
        ex,
        "example.test.",
        "@ NS ns.provider.net.\nwww A 192.0.2.1",
    );
    let (h, d) = start(net, "").await;
    let m = ask_expect(
        &h,
        &d,
        "www.example.test.",
        &["www.example.test. A 192.0.2.1"],
    )
    .await;
    assert_minimal(&m);
    assert!(
        h.asked_name("ns.provider.net.") >= 1,
        "the NS name was resolved: {}",
        h.log()
    );
    assert_bounded(&h, "glueless delegation");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn glue_out_of_bailiwick_is_ignored() {
    // test. hands out an address for ns.provider.net (not its to give) pointing at a liar
    // that answers for the zones z0..z5.test with 6.6.6.6; the real address comes from
    // provider.net. Six zones, asked at once, so the bad glue arrives six times, concurrently.
    let mut net = Net::new();
    let (ex, provider, liar) = (net.addr(3), net.addr(4), net.addr(6));
    let zones: Vec<String> = (0..6).map(|i| format!("z{i}.test.")).collect();
    let mut test_zone = format!("ns.provider.net. A {liar}\n");
    for zone in &zones {
        test_zone.push_str(&format!("{zone} NS ns.provider.net.\n"));
    }
    let net_zone = format!("provider NS ns.provider\nns.provider A {provider}");
    hierarchy(&mut net, &[("test.", &test_zone), ("net.", &net_zone)]);
    net.zone(provider, "provider.net.", &format!("@ NS ns\nns A {ex}\n"));
    for zone in &zones {
        net.zone(ex, zone, "@ NS ns.provider.net.\nwww A 192.0.2.1");
        net.zone(liar, zone, "@ NS ns.provider.net.\nwww A 6.6.6.6");
    }
    let (h, d) = start(net, "").await;
    let d = std::sync::Arc::new(d);
    let mut asks = Vec::new();
    for zone in &zones {
        let (d, qname) = (std::sync::Arc::clone(&d), format!("www.{zone}"));
        asks.push(tokio::spawn(
            async move { (ask(&d, &qname, A).await.0, qname) },
        ));
    }
    for t in asks {
        let (m, qname) = t.await.unwrap();
        assert_eq!(
            answer(&m),
            vec![format!("{qname} A 192.0.2.1")],
            "{}",
            h.log()
        );
    }
    assert_eq!(h.to(liar), 0, "out-of-bailiwick glue used: {}", h.log());
}

// ---------------------------------------------------------------- 3. parent/child NS mismatch

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_and_child_list_different_servers_only_one_works() {
    // The parent delegates to ns1 (works); the zone itself lists only ns2, which is dead.
    // Once the resolver has seen the child's NS set it must still reach the zone.
    let mut net = Net::new();
    let (ns1, ns2) = (net.addr(3), net.addr(4));
    tld(
        &mut net,
        &format!("example NS ns1.example\nns1.example A {ns1}"),
    );
    net.zone(
        ns1,
        "example.test.",
        &format!("@ NS ns2\nns2 A {ns2}\nwww A 192.0.2.1\nmail A 192.0.2.2"),
    );
    net.zone(ns2, "example.test.", "www A 192.0.2.1");
    net.on_zone(ns2, "example.test.", Behaviour::Timeout);
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "example.test.", RecordType::NS).await;
    assert_eq!(answer(&m), vec!["example.test. NS ns2.example.test."]);
    let (m, took) = ask(&d, "www.example.test.", A).await;
    assert_eq!(
        answer(&m),
        vec!["www.example.test. A 192.0.2.1"],
        "after {took:?}: {}",
        h.log()
    );
    let (m, took) = ask(&d, "mail.example.test.", A).await;
    assert_eq!(
        answer(&m),
        vec!["mail.example.test. A 192.0.2.2"],
        "after {took:?}: {}",
        h.log()
    );
    assert_bounded(&h, "parent/child mismatch");

    // The other way round: the parent lists a dead server, the child a working one.
    let mut net = Net::new();
    let (ns1, ns2) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("example NS ns1.example\nexample NS ns2.example\nns1.example A {ns1}\nns2.example A {ns2}"));
    net.bare(ns1);
    net.on_zone(ns1, "example.test.", Behaviour::Timeout);
    net.zone(
        ns2,
        "example.test.",
        &format!("@ NS ns2\nns2 A {ns2}\nwww A 192.0.2.1"),
    );
    let (h, d2) = start(net, "").await;
    let (m, took) = ask(&d2, "www.example.test.", A).await;
    assert_eq!(
        answer(&m),
        vec!["www.example.test. A 192.0.2.1"],
        "after {took:?}: {}",
        h.log()
    );
    d.shutdown().await;
    d2.shutdown().await;
}

// ---------------------------------------------------------------- 13. IPv6 servers

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_servers_used_only_with_upstream_ipv6() {
    if !crate::common::tools::require_ipv6() {
        return;
    }
    let v6 = Net::ipv6().expect("::1 is bindable");
    // v6only.test: one server, reachable only at ::1 (AAAA glue).
    // dual.test: ns.dual has an A (.4, answers 192.0.2.4) and an AAAA (::1, answers 192.0.2.6).
    let build = || {
        let mut net = Net::new();
        let v4 = net.addr(4);
        tld(&mut net, &format!("v6only NS ns.v6only\nns.v6only AAAA {v6}\ndual NS ns.dual\nns.dual A {v4}\nns.dual AAAA {v6}"));
        net.zone(
            v6,
            "v6only.test.",
            &format!("@ NS ns\nns AAAA {v6}\nwww A 192.0.2.66"),
        );
        net.zone(
            v6,
            "dual.test.",
            &format!("@ NS ns\nns A {v4}\nns AAAA {v6}\nwww A 192.0.2.6"),
        );
        net.zone(
            v4,
            "dual.test.",
            &format!("@ NS ns\nns A {v4}\nns AAAA {v6}\nwww A 192.0.2.4"),
        );
        (net, v4)
    };
    let (net, _) = build();
    let (h, d) = start(net, "upstream_ipv6 = true").await;
    ask_expect(
        &h,
        &d,
        "www.v6only.test.",
        &["www.v6only.test. A 192.0.2.66"],
    )
    .await;
    assert!(h.to(v6) >= 1);
    d.shutdown().await;
    drop(h);

    let (net, v4) = build();
    let (h, d) = start(net, "upstream_ipv6 = false").await;
    ask_expect(&h, &d, "www.dual.test.", &["www.dual.test. A 192.0.2.4"]).await;
    assert!(h.to(v4) >= 1);
    let (m, took) = ask(&d, "www.v6only.test.", A).await;
    assert_servfail_in_time(&m, took, "a v6-only zone without upstream_ipv6");
    assert_eq!(
        h.to(v6),
        0,
        "an IPv6 server was asked with upstream_ipv6 = false: {}",
        h.log()
    );
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
