//! The odd answers real servers send (issue 22): referrals with AA=1 pointing up or sideways,
//! NODATA without SOA or NS, duplicate records, negative answers without an SOA.

use crate::*;

/// example.test served by .3 and .4 (both listed as its name servers).
fn two_servers() -> (Net, IpAddr, IpAddr) {
    let mut net = Net::new();
    let (ex1, ex2) = (net.addr(3), net.addr(4));
    tld(
        &mut net,
        &format!("example NS ns1.example\nexample NS ns2.example\nns1.example A {ex1}\nns2.example A {ex2}"),
    );
    let zone = format!("@ NS ns1\n@ NS ns2\nns1 A {ex1}\nns2 A {ex2}\nwww A 192.0.2.1");
    net.zone(ex1, "example.test.", &zone);
    net.zone(ex2, "example.test.", &zone);
    (net, ex1, ex2)
}

/// NOERROR, AA=1, nothing in the answer, NS records of `owner` in authority, no SOA.
fn authoritative_referral_to(owner: &str) -> Behaviour {
    Behaviour::Reply(Reply::authoritative().authority(&format!("{owner} 3600 NS a.root.test.")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authoritative_upward_referral_is_lame_not_nodata() {
    let (mut net, ex) = simple_zone("");
    net.on(ex, "www.example.test.", A, authoritative_referral_to("."));
    let (h, d) = start(net, "qname_minimisation = \"off\"").await;
    let (m, took) = ask(&d, "www.example.test.", A).await;
    // NS without SOA is no negative answer (RFC 2308 2.2): the only server is lame.
    assert_servfail_in_time(&m, took, "AA upward referral");
    assert!(m.answers.is_empty());
    assert_bounded(&h, "AA upward referral");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_authoritative_sideways_referral_the_other_server_answers() {
    for (i, lame) in [3u8, 4].into_iter().enumerate() {
        let (mut net, _, _) = two_servers();
        let lame = net.addr(lame);
        net.on(
            lame,
            "www.example.test.",
            A,
            authoritative_referral_to("other.test."),
        );
        let (h, d) = start(net, "qname_minimisation = \"off\"").await;
        let (m, _) = ask(&d, "www.example.test.", A).await;
        assert_eq!(
            answer(&m),
            vec!["www.example.test. A 192.0.2.1"],
            "round {i}, lame server {lame}: {}",
            h.log()
        );
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_data_without_soa_or_ns_is_nodata() {
    let (mut net, ex) = simple_zone("");
    // RFC 2308 2.2 "type 3": AA=0, the answer holds an RRset of another type, nothing else.
    net.on(
        ex,
        "www.example.test.",
        RecordType::AAAA,
        Behaviour::Reply(Reply::non_authoritative().answer("www.example.test. 300 A 192.0.2.1")),
    );
    let (h, d) = start(net, "qname_minimisation = \"off\"").await;
    let (m, _) = ask(&d, "www.example.test.", RecordType::AAAA).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "NODATA, not SERVFAIL: {}",
        h.log()
    );
    assert!(
        m.answers.is_empty(),
        "the A record is dropped: {:?}",
        answer(&m)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_records_are_passed_on_once() {
    let (mut net, ex) = simple_zone("alias CNAME www");
    net.on(
        ex,
        "alias.example.test.",
        A,
        Behaviour::Reply(Reply::authoritative().answer(
            "alias.example.test. 300 CNAME www.example.test.\n\
             alias.example.test. 300 CNAME www.example.test.\n\
             www.example.test. 300 A 192.0.2.1\n\
             www.example.test. 300 A 192.0.2.1\n\
             www.example.test. 300 A 192.0.2.2",
        )),
    );
    let (h, d) = start(net, "qname_minimisation = \"off\"").await;
    ask_expect(
        &h,
        &d,
        "alias.example.test.",
        &[
            "alias.example.test. CNAME www.example.test.",
            "www.example.test. A 192.0.2.1",
            "www.example.test. A 192.0.2.2",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_answer_without_soa_is_cached_at_most_five_seconds() {
    let (mut net, ex) = simple_zone("");
    net.on(
        ex,
        "gone.example.test.",
        A,
        Behaviour::Reply(Reply::authoritative().rcode(ResponseCode::NXDomain)),
    );
    let (h, d) = start(net, "qname_minimisation = \"off\"").await;
    let asked = |h: &Running| h.count(|s| s.server == ex && s.name == "gone.example.test.");
    let (m, _) = ask(&d, "gone.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(asked(&h), 1);
    let (m, _) = ask(&d, "gone.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(asked(&h), 1, "kept briefly: {}", h.log());
    // RFC 2308 section 5: should not be cached; Unbound keeps such answers 5 s.
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let (m, _) = ask(&d, "gone.example.test.", A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(asked(&h), 2, "asked again after 5 s: {}", h.log());
}
