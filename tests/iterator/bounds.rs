//! Bounds: referral loops, thousands of NS names, very long CNAME chains.

use crate::answers::cname_chain;
use crate::*;

// ---------------------------------------------------------------- 11. bounds

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sideways_referral_loop_is_bounded() {
    // Sideways: loop.test's two servers refer the zone to each other forever.
    let mut net = Net::new();
    let (s1, s2) = (net.addr(3), net.addr(4));
    tld(&mut net, &format!("loop NS ns1.loop\nns1.loop A {s1}"));
    net.bare(s1).bare(s2);
    net.on_zone(
        s1,
        "loop.test.",
        Behaviour::Reply(
            Reply::non_authoritative()
                .authority("loop.test. 3600 NS ns2.loop.test.")
                .additional(&format!("ns2.loop.test. 3600 A {s2}")),
        ),
    );
    net.on_zone(
        s2,
        "loop.test.",
        Behaviour::Reply(
            Reply::non_authoritative()
                .authority("loop.test. 3600 NS ns1.loop.test.")
                .additional(&format!("ns1.loop.test. 3600 A {s1}")),
        ),
    );
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
    let ns: String = (0..2000)
        .map(|i| format!("big NS ns{i}.nowhere\n"))
        .collect();
    tld(
        &mut net,
        &format!("{ns}nowhere NS ns.nowhere\nns.nowhere A {nowhere}"),
    );
    // Every NS name's address query times out: the most expensive kind of failure.
    net.zone(
        nowhere,
        "nowhere.test.",
        &format!("@ NS ns\nns A {nowhere}"),
    );
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_chain_of_glueless_delegations_is_bounded() {
    // z0.test is served by ns.z1.test, z1.test by ns.z2.test, ... z39.test by ns.z40.test,
    // which has glue: resolving www.z0.test needs 40 nested NS-name lookups. The resolver may
    // follow them all or give up at its depth bound, within the deadline and query budget.
    let mut net = Net::new();
    let server = net.addr(3);
    let mut test_zone = format!("z40 NS ns.z40\nns.z40 A {server}\n");
    for i in 0..40 {
        test_zone.push_str(&format!("z{i} NS ns.z{}\n", i + 1));
    }
    tld(&mut net, &test_zone);
    for i in 0..=40 {
        let next = if i < 40 {
            format!("ns.z{}.test.", i + 1)
        } else {
            "ns".to_string()
        };
        net.zone(
            server,
            &format!("z{i}.test."),
            &format!("@ NS {next}\nns A {server}\nwww A 192.0.2.{i}"),
        );
    }
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "www.z0.test.", A).await;
    let rcode = m.metadata.response_code;
    let resolved = rcode == ResponseCode::NoError && answer(&m) == vec!["www.z0.test. A 192.0.2.0"];
    assert!(
        resolved || rcode == ResponseCode::ServFail,
        "{rcode:?} {:?}",
        answer(&m)
    );
    assert!(in_time(took), "took {took:?}");
    assert_bounded(&h, "40 nested glueless delegations");
}
