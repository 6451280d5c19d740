//! Answers: CNAME and DNAME chains across zones, loops, length bound; out-of-bailiwick
//! records scrubbed.

use crate::*;

// ---------------------------------------------------------------- 7. CNAME and DNAME

/// one.test (.3), two.test (.4), three.test (.5); `extra` adds lines to each (origin order).
pub(crate) fn three_zones(lines: [&str; 3]) -> Net {
    let mut net = Net::new();
    let addrs = [net.addr(3), net.addr(4), net.addr(5)];
    let delegations: String = ["one", "two", "three"]
        .iter()
        .zip(addrs)
        .map(|(z, a)| format!("{z} NS ns.{z}\nns.{z} A {a}\n"))
        .collect();
    tld(&mut net, &delegations);
    for ((z, a), text) in ["one", "two", "three"].iter().zip(addrs).zip(lines) {
        net.zone(
            a,
            &format!("{z}.test."),
            &format!("@ NS ns\nns A {a}\n{text}"),
        );
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
    let m = ask_expect(
        &h,
        &d,
        "www.one.test.",
        &[
            "www.one.test. CNAME www.two.test.",
            "www.two.test. CNAME www.three.test.",
            "www.three.test. A 192.0.2.3",
        ],
    )
    .await;
    assert_minimal(&m);

    // DNAME: the DNAME, the synthesized CNAME, then the rest of the chain.
    let (m, _) = ask(&d, "www.legacy.one.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    let got = answer(&m);
    assert!(
        m.answers.iter().any(
            |r| r.record_type() == RecordType::DNAME && r.name.to_ascii() == "legacy.one.test."
        ),
        "{got:?}"
    );
    assert!(
        got.contains(&"www.legacy.one.test. CNAME www.two.test.".to_string()),
        "{got:?}"
    );
    assert!(
        got.contains(&"www.three.test. A 192.0.2.3".to_string()),
        "{got:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_loop_fails_quickly() {
    let net = three_zones([
        "loop CNAME loop.two.test.",
        "loop CNAME loop.three.test.",
        "loop CNAME loop.one.test.",
    ]);
    let (h, d) = start(net, "").await;
    let (m, took) = ask(&d, "loop.one.test.", A).await;
    // SERVFAIL, or the chain cut short as Unbound does; never an address, never slow.
    let rcode = m.metadata.response_code;
    assert!(
        rcode == ResponseCode::ServFail || rcode == ResponseCode::NoError,
        "{rcode:?}"
    );
    assert!(!m
        .answers
        .iter()
        .any(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA)));
    assert!(
        against_unbound() || took < Duration::from_millis(1000),
        "CNAME loop took {took:?}"
    );
    assert_bounded(&h, "CNAME loop");
}

/// A chain c0.one -> c1.two -> c2.three -> c3.one ... of `hops` CNAMEs ending in an A.
pub(crate) fn cname_chain(hops: usize) -> Net {
    let zones = ["one", "two", "three"];
    let mut lines = [String::new(), String::new(), String::new()];
    for i in 0..hops {
        lines[i % 3].push_str(&format!(
            "c{i} CNAME c{}.{}.test.\n",
            i + 1,
            zones[(i + 1) % 3]
        ));
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
    tld(
        &mut net,
        &format!("example NS ns.example\nns.example A {ex}\nbank NS ns.bank\nns.bank A {bank}"),
    );
    net.zone(
        ex,
        "example.test.",
        &format!("@ NS ns\nns A {ex}\nwww A 192.0.2.1"),
    );
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
    net.zone(
        bank,
        "bank.test.",
        &format!("@ NS ns\nns A {bank}\nwww A 192.0.2.99"),
    );
    let (h, d) = start(net, "").await;
    let (m, _) = ask(&d, "www.example.test.", A).await;
    assert_eq!(
        answer(&m),
        vec!["www.example.test. A 192.0.2.1"],
        "unrelated answer records passed through"
    );
    assert_minimal(&m);
    ask_expect(&h, &d, "www.bank.test.", &["www.bank.test. A 192.0.2.99"]).await;
    assert!(h.to(bank) >= 1, "bank.test's server was asked: {}", h.log());
}
