//! QNAME minimisation: relaxed (default), strict, off.

use crate::*;

// ---------------------------------------------------------------- 4. QNAME minimisation

/// example.test (.3) holds a.b.c.example.test; b.c and c are empty non-terminals, for which
/// the server answers `broken` (to minimised queries). Returns the running pieces.
async fn minimisation(mode: &str, broken: Option<Behaviour>) -> (Running, Resolver, IpAddr) {
    // (root is .1, the TLD .2: see `hierarchy`)
    let (mut net, ex) = example_zone("a.b.c A 192.0.2.7");
    if let Some(b) = broken {
        net.on_name(ex, "c.example.test.", b.clone());
        net.on_name(ex, "b.c.example.test.", b);
    }
    let keys = if mode.is_empty() {
        String::new()
    } else {
        format!("qname_minimisation = \"{mode}\"")
    };
    let (h, d) = start(net, &keys).await;
    (h, d, ex)
}

const DEEP: &str = "a.b.c.example.test.";

fn nxdomain_for_ent() -> Behaviour {
    Behaviour::Reply(
        Reply::authoritative()
            .rcode(ResponseCode::NXDomain)
            .authority(
                "example.test. 3600 SOA ns.invalid. hostmaster.invalid. 1 7200 900 86400 300",
            ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_relaxed_is_the_default_and_minimises() {
    let (h, d, ex) = minimisation("", None).await;
    let (m, _) = ask(&d, DEEP, A).await;
    assert_eq!(answer(&m), vec![format!("{DEEP} A 192.0.2.7")]);
    // The root and the TLD never see the full name.
    let leaked = h.count(|s| s.name == DEEP && s.server != ex);
    assert_eq!(leaked, 0, "full name sent above the zone: {}", h.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_relaxed_falls_back_to_the_full_name() {
    for (what, broken) in [
        ("NXDOMAIN for an empty non-terminal", nxdomain_for_ent()),
        ("SERVFAIL", Behaviour::Rcode(ResponseCode::ServFail)),
        ("REFUSED", Behaviour::Rcode(ResponseCode::Refused)),
        ("FORMERR", Behaviour::Rcode(ResponseCode::FormErr)),
        ("no answer", Behaviour::Timeout),
    ] {
        let (h, d, ex) = minimisation("relaxed", Some(broken)).await;
        let (m, took) = ask(&d, DEEP, A).await;
        assert_eq!(
            answer(&m),
            vec![format!("{DEEP} A 192.0.2.7")],
            "{what} after {took:?}: {}",
            h.log()
        );
        assert!(h.count(|s| s.server == ex && s.name == DEEP) >= 1);
        assert_bounded(&h, what);
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_strict_does_not_fall_back() {
    // (A SERVFAIL to a minimised query is not asserted: Unbound in strict mode goes on
    // minimising label by label, which reaches the full name as its last step.)
    for (what, broken, rcode) in [(
        "NXDOMAIN for an empty non-terminal",
        nxdomain_for_ent(),
        ResponseCode::NXDomain,
    )] {
        let (h, d, ex) = minimisation("strict", Some(broken)).await;
        let (m, took) = ask(&d, DEEP, A).await;
        assert_eq!(
            m.metadata.response_code,
            rcode,
            "{what} after {took:?}: {:?}\n{}",
            answer(&m),
            h.log()
        );
        assert!(m.answers.is_empty());
        assert_eq!(
            h.count(|s| s.server == ex && s.name == DEEP),
            0,
            "{what}: full name sent: {}",
            h.log()
        );
        d.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimisation_off_sends_only_the_full_name() {
    let (h, d, _) = minimisation("off", None).await;
    let (m, _) = ask(&d, DEEP, A).await;
    assert_eq!(answer(&m), vec![format!("{DEEP} A 192.0.2.7")]);
    // Root priming (". NS") aside, every query names the client's question.
    let other = h.count(|s| s.name != DEEP && s.name != ".");
    assert_eq!(
        other,
        0,
        "minimised queries sent with minimisation off: {}",
        h.log()
    );
}
