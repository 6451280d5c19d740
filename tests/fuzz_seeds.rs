//! The fuzz targets' seed corpora (`fuzz/seeds/TARGET/`): small real examples of each input,
//! written by `cargo test --test fuzz_seeds -- --ignored` and committed. The test that always
//! runs checks that every target has its seeds (fuzz/README.md).

use std::path::{Path, PathBuf};

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};

#[allow(dead_code)]
#[path = "../fuzz/fuzz_targets/common/signed.rs"]
mod signed;

const TARGETS: &[&str] = &[
    "dnswire",
    "query_pipeline",
    "classify",
    "dnssec_validate",
    "list_file",
    "rpz_zone",
    "config",
    "xfr",
    "tsig_key",
    "doh",
    "feed_guard",
];

fn seeds_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds")
}

#[test]
fn every_fuzz_target_has_seeds() {
    for t in TARGETS {
        let d = seeds_dir().join(t);
        let n = std::fs::read_dir(&d)
            .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
            .count();
        assert!(n >= 3, "{t}: {n} seeds");
    }
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

fn query(qname: &str, t: RecordType, edns: Option<(u16, bool)>) -> Message {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(name(qname), t));
    if let Some((size, dnssec_ok)) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        e.set_dnssec_ok(dnssec_ok);
        m.set_edns(e);
    }
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

fn with(sel: u8, b: &[u8]) -> Vec<u8> {
    let mut v = vec![sel];
    v.extend_from_slice(b);
    v
}

fn soa(zone: &str, serial: u32) -> Record {
    Record::from_rdata(
        name(zone),
        300,
        RData::SOA(SOA::new(
            name(&format!("ns.{zone}")),
            name(&format!("host.{zone}")),
            serial,
            3600,
            600,
            86400,
            60,
        )),
    )
}

fn a(owner: &str, ip: [u8; 4]) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::A(A::new(ip[0], ip[1], ip[2], ip[3])),
    )
}

/// A query with an EDE option (a client asking for Structured DNS Errors).
fn query_with_ede(qname: &str) -> Vec<u8> {
    let mut b = bytes(&query(qname, RecordType::A, None));
    b[11] = 1; // ARCOUNT
    b.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 4, 0, 15, 0, 0]);
    b
}

fn queries() -> Vec<Vec<u8>> {
    let mut v = vec![
        bytes(&query("www.example.com.", RecordType::A, None)),
        bytes(&query(
            "WWW.Example.COM.",
            RecordType::AAAA,
            Some((4096, true)),
        )),
        bytes(&query("evil.test.", RecordType::TXT, Some((1232, false)))),
        bytes(&query(".", RecordType::NS, None)),
        bytes(&query("_dns.resolver.arpa.", RecordType::SVCB, None)),
        query_with_ede("evil.test."),
    ];
    let mut notimp = query("x.test.", RecordType::A, None);
    notimp.metadata.op_code = OpCode::Status;
    v.push(bytes(&notimp));
    let mut axfr = query("test.", RecordType::AXFR, None);
    axfr.metadata.recursion_desired = false;
    v.push(bytes(&axfr));
    v
}

fn write(target: &str, seeds: &[Vec<u8>]) {
    let d = seeds_dir().join(target);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(d.join(format!("seed-{i:03}")), s).unwrap();
    }
}

fn texts(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// The fixed keys of the signed test zones (`fuzz/dnssec_keys/`, PKCS#8 as ring writes it).
#[test]
#[ignore = "writes fuzz/dnssec_keys: run once by hand, then write_fuzz_seeds"]
fn write_dnssec_keys() {
    use hickory_proto::dnssec::crypto::EcdsaSigningKey;
    use hickory_proto::dnssec::Algorithm;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/dnssec_keys");
    for k in ["ksk", "zsk", "child_ksk", "child_zsk"] {
        let path = dir.join(format!("{k}.pk8"));
        // Keys that load stay: the committed seeds are signed with them.
        if let Ok(der) = std::fs::read(&path) {
            let der = rustls::pki_types::PrivatePkcs8KeyDer::from(der);
            if EcdsaSigningKey::from_pkcs8(&der, Algorithm::ECDSAP256SHA256).is_ok() {
                continue;
            }
        }
        let der = EcdsaSigningKey::generate_pkcs8(Algorithm::ECDSAP256SHA256).unwrap();
        std::fs::write(path, der.secret_pkcs8_der()).unwrap();
    }
}

#[test]
#[ignore = "writes fuzz/seeds: run by hand when a target's input changes"]
fn write_fuzz_seeds() {
    // dnswire: queries, plus a response with records (the TTL scan) and a malformed one.
    let mut resp = query("www.example.com.", RecordType::A, Some((1232, false)));
    resp.metadata.message_type = hickory_proto::op::MessageType::Response;
    resp.add_answer(a("www.example.com.", [192, 0, 2, 1]));
    resp.add_authority(soa("example.com.", 1));
    let mut dnswire = queries();
    dnswire.push(bytes(&resp));
    dnswire.push(vec![
        0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c, 0, 1, 0, 1,
    ]);
    write("dnswire", &dnswire);

    // query_pipeline: names the fuzz engine's lists and upstream treat each their way.
    let mut qp = Vec::new();
    for (i, (n, t)) in [
        ("evil.test.", RecordType::A),
        ("x.ads.test.", RecordType::AAAA),
        ("tracker.test.", RecordType::MX),
        ("old.test.", RecordType::A),
        ("a.wild.test.", RecordType::AAAA),
        ("good.evil.test.", RecordType::A),
        ("walled.test.", RecordType::A),
        ("garden.test.", RecordType::TXT),
        ("y.nodata.test.", RecordType::A),
        ("drop.test.", RecordType::A),
        ("pass.evil.test.", RecordType::A),
        ("www.cname.test.", RecordType::A),
        ("h.bad-ip.test.", RecordType::A),
        ("nx.foo.test.", RecordType::A),
        ("fail.test.", RecordType::A),
        ("ok.test.", RecordType::AAAA),
    ]
    .into_iter()
    .enumerate()
    {
        let edns = (i % 2 == 0).then_some((1232, i % 4 == 0));
        qp.push(with(i as u8, &bytes(&query(n, t, edns))));
    }
    qp.push(with(1, &query_with_ede("evil.test.")));
    qp.push(with(8, &bytes(&query("evil.test.", RecordType::A, None)))); // group finance
    write("query_pipeline", &qp);

    // classify and dnssec_validate: what the signed test zones answer, and a few by hand.
    let z = &*signed::ZONES;
    let mut from_zones = Vec::new();
    for (child, n, t) in [
        (false, "www.test.", RecordType::A),
        (false, "alias.test.", RecordType::A),
        (false, "nx.test.", RecordType::A),
        (false, "www.test.", RecordType::TXT),
        (false, "x.wild.test.", RecordType::TXT),
        (false, "a.example.test.", RecordType::A),
        (false, "example.test.", RecordType::DS),
        (false, "host.insecure.test.", RecordType::A),
        (false, "test.", RecordType::DNSKEY),
        (true, "a.example.test.", RecordType::A),
        (true, "c.example.test.", RecordType::A),
        (true, "zz.example.test.", RecordType::A),
        (true, "b.example.test.", RecordType::A),
        (true, "q.w.example.test.", RecordType::TXT),
        (true, "example.test.", RecordType::DNSKEY),
    ] {
        let zone = if child { &z.child } else { &z.parent };
        let mut m = zone.respond(&name(n), t);
        m.metadata.id = 0x2222;
        from_zones.push(with(u8::from(child), &bytes(&m)));
    }
    write("dnssec_validate", &from_zones);
    let mut cl: Vec<Vec<u8>> = from_zones
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s[0] = if s[0] == 1 { 2 } else { 1 };
            s
        })
        .collect();
    let mut referral = Message::response(7, OpCode::Query);
    referral.add_query(Query::query(name("www.example.com."), RecordType::A));
    referral.add_authority(Record::from_rdata(
        name("example.com."),
        3600,
        RData::NS(NS(name("ns1.example.com."))),
    ));
    referral.add_authority(Record::from_rdata(
        name("example.com."),
        3600,
        RData::NS(NS(name("ns.elsewhere.net."))),
    ));
    referral.add_additional(a("ns1.example.com.", [192, 0, 2, 53]));
    referral.add_additional(a("ns.elsewhere.net.", [192, 0, 2, 54]));
    cl.push(with(0, &bytes(&referral)));
    let mut chain = Message::response(8, OpCode::Query);
    chain.metadata.authoritative = true;
    chain.add_query(Query::query(name("a.test."), RecordType::A));
    chain.add_answer(Record::from_rdata(
        name("a.test."),
        60,
        RData::CNAME(CNAME(name("b.test."))),
    ));
    chain.add_answer(Record::from_rdata(
        name("b.test."),
        60,
        RData::CNAME(CNAME(name("c.other."))),
    ));
    chain.add_answer(a("c.other.", [203, 0, 113, 9]));
    chain.add_additional(a("evil.test.", [203, 0, 113, 66]));
    cl.push(with(1, &bytes(&chain)));
    let mut nx = Message::response(9, OpCode::Query);
    nx.metadata.response_code = ResponseCode::NXDomain;
    nx.add_query(Query::query(name("nope.test."), RecordType::AAAA));
    nx.add_authority(soa("test.", 3));
    cl.push(with(1, &bytes(&nx)));
    write("classify", &cl);

    // list_file: each format (byte 0 picks it; 0x80: an allow list).
    write(
        "list_file",
        &[
            with(1, b"# plain\nevil.example\nBAD.Example.COM.\n\nnot a name!\n"),
            with(2, b"127.0.0.1 localhost\n0.0.0.0 ads.example tracker.example # comment\n::1 ip6.example\n"),
            with(3, b"[Adblock Plus 2.0]\n||ads.example^\n@@||good.ads.example^\n||x.example^$third-party\n! comment\n"),
            with(4, b"*.wild.example\nbare.example\n"),
            with(5, b"address=/dnsmasq.example/0.0.0.0\nserver=/other.example/\n"),
            with(6, b"local-zone: \"unbound.example\" always_nxdomain\nlocal-zone: \"ok.unbound.example\" transparent\nlocal-zone: \"r.example\" refuse\n"),
            with(7, b"$ORIGIN rpz.example.\n@ SOA ns. host. 1 3600 600 86400 60\nbad.example CNAME .\n*.bad.example CNAME *.\n"),
            with(8, b"198.51.100.0/24\n2001:db8::/32\n203.0.113.7\n"),
            with(0, b"evil.example\n||ads.example^\n0.0.0.0 t.example\n*.w.example\n"),
            with(0x81, b"allowed.example\n"),
            with(0, "münchen.example\nxn--mnchen-3ya.example\n".as_bytes()),
        ],
    );

    // rpz_zone
    write(
        "rpz_zone",
        &texts(&[
            "$TTL 300\n$ORIGIN rpz.example.\n@ SOA ns.rpz.example. host.rpz.example. 7 3600 600 86400 60\n@ NS ns.rpz.example.\n\
             nx.example CNAME .\nnodata.example CNAME *.\n*.wild.example CNAME .\npass.example CNAME rpz-passthru.\n\
             drop.example CNAME rpz-drop.\nlocal.example A 192.0.2.9\nlocal.example AAAA 2001:db8::9\nlocal.example TXT \"hello\"\n\
             redirect.example CNAME walled.garden.example.\n24.0.100.51.198.rpz-ip CNAME .\n32.1.0.0.127.rpz-client-ip CNAME rpz-passthru.\n",
            "$ORIGIN z.\n@ 3600 IN SOA a. b. ( 1 2 3 4 5 )\nx CNAME .\n",
            "; no origin\nbad.example.rpz. CNAME .\n",
        ]),
    );

    // config: the shipped configs and a small one of each section.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = vec![
        std::fs::read(root.join("config.toml")).unwrap(),
        std::fs::read(root.join("packaging/container-config.toml")).unwrap(),
    ];
    cfg.extend(texts(&[
        "[server]\nlisten = [\"127.0.0.1:5353\"]\n[resolver]\nmode = \"forward\"\nforwarders = [\"127.0.0.1:53\"]\n",
        "[server]\nlisten = [\"127.0.0.1:5353\"]\nallow = [\"10.0.0.0/8\"]\nrate_limit_qps = 50\n[resolver]\ncache_size = 0\ntimeout_ms = 0\n\
         [[lists]]\nname = \"a\"\ncategory = \"threat\"\npath = \"/nonexistent/a.txt\"\n[[lists]]\nname = \"a\"\ncategory = \"nope\"\n",
        "[server]\nlisten = [\"127.0.0.1:5353\"]\n[[clients]]\nname = \"x\"\ncidr = \"10.0.0.0/8\"\ngroup = \"g\"\n[[groups]]\nname = \"g\"\nlists = [\"missing\"]\n\
         [querylog]\nsqlite = \"q.db\"\nclickhouse = \"ftp://x\"\n",
    ]));
    write("config", &cfg);

    // xfr: framed messages (the IDs are patched by the primary). Byte 0: bit 0 = IXFR from
    // serial 5, bit 1 = a TSIG key.
    let zone = "rpz.example.";
    let framed = |msgs: &[Vec<Record>]| {
        let mut out = Vec::new();
        for records in msgs {
            let mut m = Message::response(0, OpCode::Query);
            m.metadata.authoritative = true;
            m.add_query(Query::query(name(zone), RecordType::AXFR));
            for r in records {
                m.add_answer(r.clone());
            }
            let b = bytes(&m);
            out.extend_from_slice(&(b.len() as u16).to_be_bytes());
            out.extend_from_slice(&b);
        }
        out
    };
    let rec = |owner: &str| {
        Record::from_rdata(
            name(&format!("{owner}.{zone}")),
            300,
            RData::CNAME(CNAME(Name::root())),
        )
    };
    let txt = Record::from_rdata(
        name(&format!("t.{zone}")),
        300,
        RData::TXT(TXT::new(vec!["x".into()])),
    );
    let aaaa = Record::from_rdata(
        name(&format!("v6.{zone}")),
        300,
        RData::AAAA(AAAA::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
    );
    write(
        "xfr",
        &[
            with(
                0,
                &framed(&[vec![
                    soa(zone, 9),
                    rec("bad.example"),
                    txt.clone(),
                    soa(zone, 9),
                ]]),
            ),
            with(
                0,
                &framed(&[vec![soa(zone, 9), rec("a")], vec![aaaa, soa(zone, 9)]]),
            ),
            with(
                1,
                &framed(&[vec![
                    soa(zone, 7),
                    soa(zone, 5),
                    rec("old"),
                    soa(zone, 7),
                    rec("new"),
                    soa(zone, 7),
                ]]),
            ),
            with(1, &framed(&[vec![soa(zone, 5)]])),
            with(1, &framed(&[vec![soa(zone, 9), rec("full"), soa(zone, 9)]])),
            with(2, &framed(&[vec![soa(zone, 9), rec("x"), soa(zone, 9)]])),
        ],
    );

    // tsig_key
    write(
        "tsig_key",
        &texts(&[
            "key \"xfr-key\" {\n\talgorithm hmac-sha256;\n\tsecret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\";\n};\n",
            "// comment\nkey rpz.example. { algorithm hmac-sha256; secret \"AAAAAAAAAAAAAAAAAAAAAA==\"; }; # end\n",
            "key \"k\" { algorithm hmac-md5; secret \"c2VjcmV0\"; };\n",
        ]),
    );

    // doh: byte 0 % 4: 0 GET base64url, 1 GET raw query string, 2-3 POST (high bits: the
    // content type).
    let q = bytes(&query("evil.test.", RecordType::A, None));
    let q2 = bytes(&query("ok.test.", RecordType::AAAA, Some((4096, true))));
    write(
        "doh",
        &[
            with(0, &q),
            with(0x10, &q2),
            with(1, b"dns=AAABAAABAAAAAAAAA3d3dwdleGFtcGxlA2NvbQAAAQAB"),
            with(1, b"ct=x&dns="),
            with(2, &q),
            with(0x12, &q2),
            with(0x32, &q),
            with(0x22, &[q.clone(), vec![0]].concat()),
        ],
    );

    // feed_guard: byte 0 = the last good copy's entries, the content type line, the body.
    let fg = |prev: u8, ct: &str, body: &str| with(prev, format!("{ct}\n{body}").as_bytes());
    write(
        "feed_guard",
        &[
            fg(
                0,
                "text/plain; charset=utf-8",
                "evil.example\nbad.example\n",
            ),
            fg(4, "-", "0.0.0.0 a.example\n0.0.0.0 b.example\n"),
            fg(10, "application/octet-stream", "a.example\n"),
            fg(
                0,
                "text/plain",
                "<!DOCTYPE html><html><body>503</body></html>",
            ),
            fg(0, "text/html", "a.example\n"),
            fg(
                0,
                "text/plain",
                "junk line one\njunk line two\nok.example\n",
            ),
            fg(0, "application/json", "{}"),
        ],
    );
}

/// The DNSSEC seeds are signed with the committed keys: the validator finds the signed
/// answers secure (if the keys and the seeds drift apart, the fuzzer would only see bogus).
#[tokio::test]
async fn dnssec_seeds_validate_with_the_committed_keys() {
    use dnsward::dnssec::{Limits, Security, TrustAnchorSet, Validator};
    let z = &*signed::ZONES;
    let mut anchors = TrustAnchorSet::empty();
    anchors.add_ds(z.parent.apex.clone(), z.parent.ds());
    let v = Validator::new(anchors, Vec::new(), Limits::default());
    let mut verdicts = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(seeds_dir().join("dnssec_validate"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files {
        let b = std::fs::read(&f).unwrap();
        let m = Message::from_vec(&b[1..]).unwrap();
        let zone = if b[0] & 1 == 0 {
            &z.parent.apex
        } else {
            &z.child.apex
        };
        let q = m.queries[0].clone();
        let s = v
            .validate(&q, &m, zone, &signed::Fetcher, signed::NOW)
            .await;
        verdicts.push((q.name().to_string(), q.query_type(), s));
    }
    let secure = verdicts
        .iter()
        .filter(|(_, _, s)| *s == Security::Secure)
        .count();
    assert!(secure >= 8, "{verdicts:#?}");
    assert!(
        verdicts
            .iter()
            .any(|(n, _, s)| n == "host.insecure.test." && *s == Security::Insecure),
        "{verdicts:#?}"
    );
    assert!(
        !verdicts
            .iter()
            .any(|(_, _, s)| matches!(s, Security::Bogus(_))),
        "{verdicts:#?}"
    );
}
