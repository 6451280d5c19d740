//! The protective policy through real sockets: every list format, action and category, EDE,
//! AD never set, CNAME cloaking, answer-IP blocking, allow beating block, deep subdomains, all
//! qtypes, and reload without losing a query.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

fn soa_mname(m: &Message) -> Option<String> {
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(s) => Some(s.mname.to_ascii()),
        _ => None,
    })
}

fn assert_blocked_nx(m: &Message, list: &str, what: &str) {
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NXDomain,
        "{what}: {m:?}"
    );
    assert!(m.answers.is_empty(), "{what}: never the original records");
    assert!(
        !m.metadata.authentic_data,
        "{what}: AD never set on a rewrite"
    );
    assert_eq!(
        soa_mname(m).as_deref(),
        Some(format!("{list}.policy.dnsward.").as_str()),
        "{what}"
    );
}

async fn ask_edns(addr: std::net::SocketAddr, name: &str, rtype: RecordType) -> Message {
    let mut q = query_message(name, rtype, Some(1232));
    // Ask with AD set, as validating stubs do: a rewrite must still clear it.
    q.metadata.authentic_data = true;
    udp_query(addr, &q).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_list_format_blocks_through_the_server() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let lists = [
        (
            "plain",
            write(d, "plain.txt", "# comment\r\nPlain.Example.com.\r\n\r\n"),
        ),
        (
            "hosts",
            write(
                d,
                "hosts.txt",
                "127.0.0.1 localhost\n0.0.0.0 hosts1.example.com hosts2.example.com # two\n",
            ),
        ),
        (
            "adblock",
            write(
                d,
                "adblock.txt",
                "! title\n||adblock.example.com^\n||opts.example.com^$third-party\n",
            ),
        ),
        ("wildcard", write(d, "wild.txt", "*.wild.example.com\n")),
        (
            "dnsmasq",
            write(
                d,
                "dnsmasq.conf",
                "address=/dnsmasq.example.com/0.0.0.0\nserver=/dnsmasq2.example.com/\n",
            ),
        ),
        (
            "unbound",
            write(
                d,
                "unbound.conf",
                "server:\nlocal-zone: \"unbound.example.com\" always_nxdomain\n",
            ),
        ),
        ("idn", write(d, "idn.txt", "bücher.example.com\n")),
    ];
    let mut toml = String::new();
    for (name, path) in &lists {
        toml.push_str(&format!(
            "[[lists]]\nname = \"{name}\"\ncategory = \"threat\"\npath = \"{path}\"\n"
        ));
    }
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];
    for (name, list) in [
        ("plain.example.com.", "plain"),
        ("sub.plain.example.com.", "plain"),
        ("hosts1.example.com.", "hosts"),
        ("hosts2.example.com.", "hosts"),
        ("adblock.example.com.", "adblock"),
        ("x.opts.example.com.", "adblock"),
        ("wild.example.com.", "wildcard"),
        ("a.wild.example.com.", "wildcard"),
        ("dnsmasq.example.com.", "dnsmasq"),
        ("dnsmasq2.example.com.", "dnsmasq"),
        ("unbound.example.com.", "unbound"),
        ("xn--bcher-kva.example.com.", "idn"),
    ] {
        let m = ask_edns(addr, name, RecordType::A).await;
        assert_blocked_nx(&m, list, name);
        let (code, text) = ede(&m).unwrap_or_else(|| panic!("{name}: EDE present"));
        assert_eq!(code, 15, "{name}: Blocked");
        assert!(text.contains(&format!("{list:?}")), "{name}: {text}");
    }
    // Not listed: resolves normally.
    let m = ask(addr, "www.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    assert_eq!(ede(&m), None);
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpz_zone_keeps_rpz_semantics() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let zone = write(
        d,
        "policy.rpz",
        "$TTL 60\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\n  NS localhost.\n\
         nx.example.com CNAME .\n\
         nodata.example.com CNAME *.\n\
         *.wild.example.com CNAME .\n\
         local.example.com A 10.1.2.3\n\
         local.example.com TXT \"hello\"\n\
         cname.example.com CNAME www.other.net.\n\
         drop.example.com CNAME rpz-drop.\n\
         32.10.2.0.192.rpz-ip CNAME .\n",
    );
    let toml = format!("[[lists]]\nname = \"rpz\"\ncategory = \"threat\"\npath = \"{zone}\"\n");
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];

    assert_blocked_nx(
        &ask_edns(addr, "nx.example.com.", RecordType::A).await,
        "rpz",
        "owner name",
    );
    // An owner name triggers on itself only...
    let m = ask(addr, "sub.nx.example.com.", RecordType::A).await;
    assert_eq!(
        soa_mname(&m).as_deref(),
        Some("a.root.test."),
        "owner does not cover subdomains: the real NXDOMAIN"
    );
    // ...and *.name on its subdomains only.
    assert_blocked_nx(
        &ask_edns(addr, "a.wild.example.com.", RecordType::A).await,
        "rpz",
        "wildcard",
    );
    let m = ask(addr, "wild.example.com.", RecordType::A).await;
    assert_eq!(
        soa_mname(&m).as_deref(),
        Some("a.root.test."),
        "*.name does not cover name: the real NXDOMAIN"
    );

    let m = ask_edns(addr, "nodata.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(soa_mname(&m).as_deref(), Some("rpz.policy.dnsward."));

    // Local data answers only the types it holds.
    let m = ask_edns(addr, "local.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 10.1.2.3"]);
    let m = ask_edns(addr, "local.example.com.", RecordType::TXT).await;
    assert_eq!(answer_strings(&m), vec!["TXT hello"]);
    let m = ask_edns(addr, "local.example.com.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(
        m.answers.is_empty(),
        "NODATA for a type the local data lacks"
    );
    let m = ask_edns(addr, "cname.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["CNAME www.other.net."]);

    // rpz-drop: no answer at all.
    let q = query_message("drop.example.com.", RecordType::A, None);
    assert!(
        udp_raw(addr, &q.to_vec().unwrap(), Duration::from_millis(500))
            .await
            .is_none()
    );

    // rpz-ip trigger: an answer containing 192.0.2.10 is blocked.
    assert_blocked_nx(
        &ask_edns(addr, "www.example.com.", RecordType::A).await,
        "rpz",
        "rpz-ip",
    );
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpz_passthru_and_allow_list_beat_block() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let block = write(d, "block.txt", "example.com\nother.net\n");
    let allow = write(d, "allow.txt", "www.example.com\n");
    let rpz = write(d, "pass.rpz", "$TTL 60\n@ SOA localhost. root.localhost. 1 3600 600 86400 60\nmail.example.com CNAME rpz-passthru.\n");
    let toml = format!(
        "[[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"{block}\"\n\
         [[lists]]\nname = \"fixes\"\ncategory = \"allow\"\npath = \"{allow}\"\n\
         [[lists]]\nname = \"pass\"\ncategory = \"threat\"\npath = \"{rpz}\"\n"
    );
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];
    assert_eq!(
        answer_strings(&ask(addr, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    assert_eq!(
        answer_strings(&ask(addr, "mail.example.com.", RecordType::A).await),
        vec!["A 192.0.2.25"]
    );
    assert_blocked_nx(
        &ask_edns(addr, "example.com.", RecordType::MX).await,
        "threats",
        "still blocked",
    );
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_and_categories() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let sink = write(d, "sink.txt", "sink.example.com\n");
    let nodata = write(d, "nodata.txt", "nodata.example.com\n");
    let refused = write(d, "refused.txt", "refused.example.com\n");
    let abandoned = write(d, "abandoned.txt", "old-portal.example.com\n");
    let toml = format!(
        "[policy]\naction = \"nxdomain\"\nsinkhole_ipv4 = \"192.0.2.99\"\nsinkhole_ipv6 = \"2001:db8::99\"\nttl = 42\ncontact = \"hotline 1900-1234\"\n\
         [[lists]]\nname = \"sinkholed\"\ncategory = \"threat\"\npath = \"{sink}\"\naction = \"sinkhole\"\n\
         [[lists]]\nname = \"nodata\"\ncategory = \"threat\"\npath = \"{nodata}\"\naction = \"nodata\"\n\
         [[lists]]\nname = \"refused\"\ncategory = \"threat\"\npath = \"{refused}\"\naction = \"refused\"\n\
         [[lists]]\nname = \"agency-abandoned\"\ncategory = \"abandoned\"\npath = \"{abandoned}\"\n"
    );
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];

    let m = ask_edns(addr, "sink.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.99"]);
    assert_eq!(m.answers[0].ttl, 42);
    let m = ask_edns(addr, "sink.example.com.", RecordType::AAAA).await;
    assert_eq!(answer_strings(&m), vec!["AAAA 2001:db8::99"]);
    let m = ask_edns(addr, "sink.example.com.", RecordType::MX).await;
    assert!(m.answers.is_empty());
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);

    let m = ask_edns(addr, "nodata.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(soa_mname(&m).as_deref(), Some("nodata.policy.dnsward."));

    let m = ask_edns(addr, "refused.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);

    let m = ask_edns(addr, "old-portal.example.com.", RecordType::A).await;
    assert_blocked_nx(&m, "agency-abandoned", "abandoned");
    let (code, text) = ede(&m).expect("EDE");
    assert_eq!(code, 17, "Filtered for abandoned domains");
    assert!(
        text.contains("agency-abandoned") && text.contains("abandoned"),
        "{text}"
    );
    assert!(
        text.contains("hotline 1900-1234"),
        "contact in the EDE text: {text}"
    );

    let m = ask_edns(addr, "sink.example.com.", RecordType::A).await;
    assert_eq!(ede(&m).map(|e| e.0), Some(15));
    // Without EDNS there is no OPT, hence no EDE, but the answer is the same.
    let m = udp_query(
        addr,
        &query_message("refused.example.com.", RecordType::A, None),
    )
    .await;
    assert!(m.edns.is_none());
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_cloaking_and_answer_ips_are_blocked_on_hits_too() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let names = write(d, "names.txt", "");
    let ips = write(d, "ips.txt", "192.0.2.25/32\n2001:db8::/32\n");
    let toml = format!(
        "[policy]\nwatch = false\n\
         [[lists]]\nname = \"cloak\"\ncategory = \"threat\"\npath = \"{names}\"\n\
         [[lists]]\nname = \"badnets\"\ncategory = \"threat\"\npath = \"{ips}\"\n"
    );
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];

    // Resolves and is cached while other.net is not listed.
    let m = ask(addr, "alias.example.com.", RecordType::A).await;
    assert!(answer_strings(&m).contains(&"A 192.0.2.30".to_string()));
    // The CNAME target's domain is listed: the cached answer is blocked at once, no flush.
    std::fs::write(&names, "other.net\n").unwrap();
    inst.reload_lists("test").await;
    let m = ask_edns(addr, "alias.example.com.", RecordType::A).await;
    assert_blocked_nx(&m, "cloak", "CNAME cloaking on a cache hit");
    assert!(ede(&m).unwrap().1.contains("(cname)"), "{:?}", ede(&m));
    assert!(d.join("names.txt").exists());

    // Answer addresses in a listed range: A (v4 range) and AAAA (v6 range), first on a miss.
    let m = ask_edns(addr, "mail.example.com.", RecordType::A).await;
    assert_blocked_nx(&m, "badnets", "answer IP");
    assert!(ede(&m).unwrap().1.contains("(ip)"));
    let m = ask_edns(addr, "www.example.com.", RecordType::AAAA).await;
    assert_blocked_nx(&m, "badnets", "answer IPv6");
    // Other addresses pass.
    assert_eq!(
        answer_strings(&ask(addr, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_subdomains_and_every_qtype_are_blocked() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let list = write(d, "t.txt", "evil.example.com\n");
    let toml = format!("[[lists]]\nname = \"t\"\ncategory = \"threat\"\npath = \"{list}\"\n");
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];
    let deep = "l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.l11.l12.evil.example.com.";
    assert_blocked_nx(&ask_edns(addr, deep, RecordType::A).await, "t", "15 labels");
    let deeper: String =
        (0..60).map(|i| format!("x{i}.")).collect::<String>() + "evil.example.com.";
    assert_blocked_nx(
        &ask_edns(addr, &deeper, RecordType::A).await,
        "t",
        "63 labels",
    );
    for rtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::HTTPS,
        RecordType::SVCB,
        RecordType::MX,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::NS,
        RecordType::SOA,
        RecordType::PTR,
        RecordType::SRV,
        RecordType::CAA,
        RecordType::ANY,
        RecordType::Unknown(999),
    ] {
        let m = ask_edns(addr, "www.evil.example.com.", rtype).await;
        assert_blocked_nx(&m, "t", &format!("{rtype}"));
        assert_eq!(m.queries[0].query_type(), rtype);
    }
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_of_a_million_entries_loses_no_query() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let mut big = String::with_capacity(30_000_000);
    for i in 0..1_000_000u32 {
        big.push_str(&format!("d{i}.bad{}.test\n", i % 997));
    }
    let path = write(d, "big.txt", &big);
    let toml = format!("[policy]\nwatch = false\n[[lists]]\nname = \"big\"\ncategory = \"threat\"\npath = \"{path}\"\n");
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];
    assert_eq!(inst.engine.policy().snapshot().name_entries(), 1_000_000);
    // Warm the cache so the stream measures the answer path, not the fake hierarchy.
    ask(addr, "www.example.com.", RecordType::A).await;
    assert_blocked_nx(
        &ask_edns(addr, "d5.bad5.test.", RecordType::A).await,
        "big",
        "listed",
    );
    assert_eq!(
        rcode(addr, "new.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );

    // A steady, bounded stream: 8 clients, each query waits for its answer (1 s limit).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (sent, lost, bad) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut clients = Vec::new();
    for c in 0..8 {
        let (stop, sent, lost, bad) = (stop.clone(), sent.clone(), lost.clone(), bad.clone());
        clients.push(tokio::spawn(async move {
            let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let mut buf = vec![0u8; 4096];
            for i in 0..20_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = if i % 2 == 0 {
                    "www.example.com."
                } else {
                    "d7.bad7.test."
                };
                let mut q = query_message(name, RecordType::A, None);
                q.metadata.id = (c * 8192 + (i % 8192)) as u16;
                sock.send_to(&q.to_vec().unwrap(), addr).await.unwrap();
                sent.fetch_add(1, Ordering::Relaxed);
                match tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await {
                    Ok(Ok((n, _))) => {
                        let m = Message::from_vec(&buf[..n]).unwrap();
                        let ok = m.metadata.id == q.metadata.id
                            && match i % 2 {
                                0 => {
                                    m.metadata.response_code == ResponseCode::NoError
                                        && !m.answers.is_empty()
                                }
                                _ => m.metadata.response_code == ResponseCode::NXDomain,
                            };
                        if !ok {
                            bad.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        lost.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The new list adds new.example.com.
    big.push_str("new.example.com\n");
    std::fs::write(&path, &big).unwrap();
    let before = sent.load(Ordering::Relaxed);
    let started = Instant::now();
    let report = inst.reload_lists("test").await;
    let during = sent.load(Ordering::Relaxed) - before;
    assert!(report.lists[0].error.is_none(), "{:?}", report.lists[0]);
    assert_blocked_nx(
        &ask_edns(addr, "new.example.com.", RecordType::A).await,
        "big",
        "added name blocked right after the swap",
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (sent, lost, bad) = (
        sent.load(Ordering::Relaxed),
        lost.load(Ordering::Relaxed),
        bad.load(Ordering::Relaxed),
    );
    eprintln!(
        "reload took {:?}; {during} queries during it, {sent} in all",
        started.elapsed()
    );
    assert!(during > 0, "queries kept flowing during the reload");
    assert_eq!(lost, 0, "no query lost ({sent} sent)");
    assert_eq!(bad, 0, "no wrong or SERVFAIL answer ({sent} sent)");
    assert_eq!(inst.engine.policy().snapshot().name_entries(), 1_000_001);
    inst.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watch_reloads_and_bad_lists_keep_serving() {
    let h = Hierarchy::start("").await;
    let d = h.dir.path();
    let good = write(d, "good.txt", "evil.example.com\n");
    let toml = format!(
        "[policy]\nwatch_interval_secs = 1\n\
         [[lists]]\nname = \"good\"\ncategory = \"threat\"\npath = \"{good}\"\n\
         [[lists]]\nname = \"missing\"\ncategory = \"threat\"\npath = \"{}/not-there.txt\"\n",
        d.display()
    );
    // A list that is missing at start is reported; the server serves with the others.
    let inst = start_dnsward_text(&(h.config_text("") + &toml), d).await;
    let addr = inst.addrs()[0];
    assert_blocked_nx(
        &ask_edns(addr, "evil.example.com.", RecordType::A).await,
        "good",
        "loaded list",
    );
    assert_eq!(
        answer_strings(&ask(addr, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );

    // Editing the file is enough: the watch reloads it.
    std::fs::write(&good, "evil.example.com\nmail.example.com\n").unwrap();
    let mut blocked = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if rcode(addr, "mail.example.com.", RecordType::A).await == ResponseCode::NXDomain {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "the file watch picked up the change");

    // A feed replaced by binary garbage (a failed download) keeps its last good copy.
    std::fs::write(
        &good,
        [0x1fu8, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef].repeat(1000),
    )
    .unwrap();
    let report = inst.reload_lists("test").await;
    let good_report = report.lists.iter().find(|l| l.name == "good").unwrap();
    assert!(good_report.kept_previous.is_some(), "{good_report:?}");
    let missing = report.lists.iter().find(|l| l.name == "missing").unwrap();
    assert!(
        missing
            .error
            .as_deref()
            .unwrap_or("")
            .contains("not-there.txt"),
        "{missing:?}"
    );
    assert_blocked_nx(
        &ask_edns(addr, "mail.example.com.", RecordType::A).await,
        "good",
        "last good copy kept",
    );
    assert_eq!(
        answer_strings(&ask(addr, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    inst.shutdown().await;
}
