//! DNS64 (RFC 6147) end to end, checked with the real `dig`: dnsward resolves through the fake
//! hierarchy and synthesizes AAAA answers from A records in the configured RFC 6052 prefix,
//! only for the clients in `dns64_clients`, with response policy applied to the result.

mod common;
mod dnssec_support;
#[path = "dnssec_support/lab.rs"]
mod lab;

use std::net::SocketAddr;

use common::*;

/// example.com names: A only, A + an IPv4-mapped AAAA (excluded), an excluded AAAA alone, a
/// CNAME to an A-only name, two A records, one A in a listed range, one listed name.
/// (`www` has both A and AAAA already.) The SOA's negative TTL is 300.
const EXAMPLE: &str = "\
v4only IN A 192.0.2.44
mapped IN A 192.0.2.55
mapped IN AAAA ::ffff:192.0.2.55
mappedonly IN AAAA ::ffff:192.0.2.56
cname4 IN CNAME v4only.example.com.
twoa IN A 192.0.2.60
twoa IN A 192.0.2.61
badnet IN A 198.51.100.7
listed IN A 192.0.2.70
short4 4 IN A 192.0.2.80
";

/// The IPv4 reverse tree (served by the root, authoritatively).
const ROOT: &str = "44.2.0.192.in-addr.arpa. IN PTR v4only.example.com.\n";

/// Runs `dig @addr -p port ARGS` (bounded: one try, 3 s) off the runtime's threads.
async fn dig(addr: SocketAddr, args: &[&str]) -> String {
    let mut argv: Vec<String> = vec![
        format!("@{}", addr.ip()),
        "-p".into(),
        addr.port().to_string(),
        "+tries=1".into(),
        "+time=3".into(),
    ];
    argv.extend(args.iter().map(|s| s.to_string()));
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new("dig")
            .args(&argv)
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    })
    .await
    .unwrap()
}

/// `+short` output as lines.
async fn short(addr: SocketAddr, args: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.push("+short");
    dig(addr, &a)
        .await
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

/// The status and flags line of a full dig answer, e.g. ("NOERROR", "qr rd ra").
fn status_and_flags(out: &str) -> (String, String) {
    let status = out
        .split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in {out}"))
        .to_string();
    let flags = out
        .split("flags: ")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap_or_else(|| panic!("no flags in {out}"))
        .to_string();
    (status, flags)
}

/// The answer section's records as (name, ttl, type, data).
fn answers(out: &str) -> Vec<(String, u32, String, String)> {
    out.lines()
        .filter(|l| !l.starts_with(';') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[0].to_string(),
                f[1].parse().unwrap(),
                f[3].to_string(),
                f[4..].join(" "),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_synthesized_for_dns64_clients_only() {
    if !tools::require_tool("dig", "dnsutils") {
        return;
    }
    let h = Hierarchy::start_with_root(EXAMPLE, ROOT).await;
    let d = h.dir.path();
    std::fs::write(d.join("names.txt"), "listed.example.com\n").unwrap();
    std::fs::write(d.join("ips.txt"), "198.51.100.0/24\n").unwrap();
    let config = h.config_text(
        "dns64_prefix = \"64:ff9b::/96\"\ndns64_clients = [\"127.0.0.1/32\", \"::1/128\"]\n",
    ) + "[policy]\nwatch = false\n\
         [[lists]]\nname = \"names\"\ncategory = \"threat\"\npath = \"names.txt\"\n\
         [[lists]]\nname = \"badnets\"\ncategory = \"threat\"\npath = \"ips.txt\"\n";
    let inst = start_dnsward_text(&config, d).await;
    let addr = inst.addrs()[0];

    // A-only name: one AAAA in the prefix, TTL min(A 3600, SOA negative 300), no AD (dig
    // sets AD in its queries), NOERROR.
    let out = dig(
        addr,
        &[
            "v4only.example.com",
            "AAAA",
            "+noall",
            "+answer",
            "+comments",
        ],
    )
    .await;
    let (status, flags) = status_and_flags(&out);
    assert_eq!(status, "NOERROR", "{out}");
    assert!(!flags.split(' ').any(|f| f == "ad"), "{out}");
    let got = answers(&out);
    assert_eq!(got.len(), 1, "{out}");
    assert_eq!(got[0].2, "AAAA");
    assert_eq!(got[0].3, "64:ff9b::c000:22c");
    assert!(
        got[0].1 <= 300 && got[0].1 > 250,
        "TTL capped by the SOA: {out}"
    );
    // The same again comes from the cache, still synthesized; over TCP too.
    assert_eq!(
        short(addr, &["v4only.example.com", "AAAA"]).await,
        ["64:ff9b::c000:22c"]
    );
    assert_eq!(
        short(addr, &["v4only.example.com", "AAAA", "+tcp"]).await,
        ["64:ff9b::c000:22c"]
    );
    // The A answer is untouched.
    assert_eq!(
        short(addr, &["v4only.example.com", "A"]).await,
        ["192.0.2.44"]
    );

    // A client outside dns64_clients gets the real answer: NODATA, cached or not.
    let out = dig(addr, &["-b", "127.0.0.2", "v4only.example.com", "AAAA"]).await;
    assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");
    assert!(answers_section_empty(&out), "{out}");
    let out = dig(addr, &["-b", "127.0.0.2", "twoa.example.com", "AAAA"]).await;
    assert!(answers_section_empty(&out), "{out}");
    // ... and that cached NODATA does not stop synthesis for a DNS64 client.
    let mut two = short(addr, &["twoa.example.com", "AAAA"]).await;
    two.sort();
    assert_eq!(two, ["64:ff9b::c000:23c", "64:ff9b::c000:23d"]);

    // A name with a real AAAA keeps it: no synthesis.
    assert_eq!(
        short(addr, &["www.example.com", "AAAA"]).await,
        ["2001:db8::10"]
    );
    // An IPv4-mapped AAAA counts as absent: synthesized from the A record...
    assert_eq!(
        short(addr, &["mapped.example.com", "AAAA"]).await,
        ["64:ff9b::c000:237"]
    );
    // ... and without an A record the answer is NODATA, the excluded AAAA dropped.
    let out = dig(addr, &["mappedonly.example.com", "AAAA"]).await;
    assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");
    assert!(answers_section_empty(&out), "{out}");
    // The non-DNS64 client sees the excluded record as it is.
    assert_eq!(
        short(addr, &["-b", "127.0.0.2", "mappedonly.example.com", "AAAA"]).await,
        ["::ffff:192.0.2.56"]
    );

    // A CNAME to an A-only name: the chain stays, the final A becomes an AAAA.
    let out = dig(addr, &["cname4.example.com", "AAAA", "+noall", "+answer"]).await;
    let got = answers(&out);
    assert_eq!(got.len(), 2, "{out}");
    assert_eq!(
        (got[0].0.as_str(), got[0].2.as_str(), got[0].3.as_str()),
        ("cname4.example.com.", "CNAME", "v4only.example.com.")
    );
    assert_eq!(
        (got[1].0.as_str(), got[1].2.as_str(), got[1].3.as_str()),
        ("v4only.example.com.", "AAAA", "64:ff9b::c000:22c")
    );

    // NXDOMAIN stays NXDOMAIN (no synthesis from anything).
    let out = dig(addr, &["nope.example.com", "AAAA"]).await;
    assert_eq!(status_and_flags(&out).0, "NXDOMAIN", "{out}");

    // Policy: a listed name is blocked before any synthesis; an A record in a listed range
    // blocks the synthesized AAAA (the embedded IPv4 address is checked), on a hit too.
    for _ in 0..2 {
        let out = dig(addr, &["listed.example.com", "AAAA"]).await;
        assert_eq!(status_and_flags(&out).0, "NXDOMAIN", "{out}");
        let out = dig(addr, &["badnet.example.com", "AAAA"]).await;
        assert_eq!(status_and_flags(&out).0, "NXDOMAIN", "{out}");
        assert!(answers_section_empty(&out), "{out}");
    }
    // Outside DNS64 the same name's AAAA is an ordinary NODATA (no address to block).
    let out = dig(addr, &["-b", "127.0.0.2", "badnet.example.com", "AAAA"]).await;
    assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");

    // DO+CD: the client validates itself and gets no synthesis (RFC 6147 5.5).
    let out = dig(addr, &["twoa.example.com", "AAAA", "+dnssec", "+cd"]).await;
    assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");
    assert!(answers_section_empty(&out), "{out}");
    // DO alone: synthesized, still without AD.
    let out = dig(addr, &["twoa.example.com", "AAAA", "+dnssec"]).await;
    assert!(out.contains("64:ff9b::c000:23c"), "{out}");
    assert!(
        !status_and_flags(&out).1.split(' ').any(|f| f == "ad"),
        "{out}"
    );

    // Reverse: the PTR of a synthesized address is a CNAME to the IPv4 reverse name and the
    // answer found there.
    let out = dig(
        addr,
        &["-x", "64:ff9b::c000:22c", "+noall", "+answer", "+comments"],
    )
    .await;
    assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");
    let got = answers(&out);
    assert_eq!(got.len(), 2, "{out}");
    assert_eq!(got[0].2, "CNAME");
    assert_eq!(got[0].3, "44.2.0.192.in-addr.arpa.");
    assert_eq!(
        (got[1].0.as_str(), got[1].2.as_str(), got[1].3.as_str()),
        ("44.2.0.192.in-addr.arpa.", "PTR", "v4only.example.com.")
    );
    assert_eq!(
        short(addr, &["-x", "64:ff9b::c000:22c"]).await,
        ["44.2.0.192.in-addr.arpa.", "v4only.example.com."],
        "again, from the cache"
    );
    // No IPv4 reverse name: NXDOMAIN, with the CNAME.
    let out = dig(addr, &["-x", "64:ff9b::c000:22d"]).await;
    assert_eq!(status_and_flags(&out).0, "NXDOMAIN", "{out}");
    assert!(out.contains("45.2.0.192.in-addr.arpa."), "{out}");
    // Not a DNS64 client: the ip6.arpa name is looked up for real (the root has no such name).
    let out = dig(addr, &["-b", "127.0.0.2", "-x", "64:ff9b::c000:22c"]).await;
    assert_eq!(status_and_flags(&out).0, "NXDOMAIN", "{out}");
    assert!(!out.contains("in-addr.arpa"), "{out}");
    inst.shutdown().await;
}

/// True when the answer section holds no record (`ANSWER: 0`).
fn answers_section_empty(out: &str) -> bool {
    out.contains("ANSWER: 0,")
}

/// A network-specific prefix shorter than /96 (the u octet skipped), for every client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_specific_prefix_of_40_bits() {
    if !tools::require_tool("dig", "dnsutils") {
        return;
    }
    let h = Hierarchy::start_with_root(EXAMPLE, ROOT).await;
    let inst = h
        .start_dnsward("dns64_prefix = \"2001:db8:100::/40\"\n")
        .await;
    let addr = inst.addrs()[0];
    // 192.0.2.44: c0 00 02 in bits 40-63, the u octet, 2c in bits 72-79 (RFC 6052 2.2).
    assert_eq!(
        short(addr, &["v4only.example.com", "AAAA"]).await,
        ["2001:db8:1c0:2:2c::"]
    );
    assert_eq!(
        short(addr, &["-b", "127.0.0.2", "v4only.example.com", "AAAA"]).await,
        ["2001:db8:1c0:2:2c::"],
        "no dns64_clients: every client"
    );
    assert_eq!(
        short(addr, &["-x", "2001:db8:1c0:2:2c::"]).await,
        ["44.2.0.192.in-addr.arpa.", "v4only.example.com."]
    );
    inst.shutdown().await;
}

/// Prefetch (on by default) refreshes a synthesized entry asked for in the last 10 % of its
/// TTL by fetching the A answer again and synthesizing again: the entry stays synthesized (the
/// real, empty AAAA answer never lands under its key) and outlives its first TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_keeps_the_synthesized_answer() {
    if !tools::require_tool("dig", "dnsutils") {
        return;
    }
    let h = Hierarchy::start_with_root(EXAMPLE, ROOT).await;
    let inst = h.start_dnsward("dns64_prefix = \"64:ff9b::/96\"\n").await;
    let addr = inst.addrs()[0];
    let want = ["64:ff9b::c000:250"];
    assert_eq!(short(addr, &["short4.example.com", "AAAA"]).await, want);
    let before = h.count("short4.example.com", hickory_proto::rr::RecordType::A);
    assert!(before >= 1);
    // Within the last 10 % of the 4 s TTL: served from the cache, refreshed in the background.
    tokio::time::sleep(std::time::Duration::from_millis(3700)).await;
    assert_eq!(short(addr, &["short4.example.com", "AAAA"]).await, want);
    let mut refreshed = 0;
    for _ in 0..40 {
        refreshed = h.count("short4.example.com", hickory_proto::rr::RecordType::A);
        if refreshed > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(refreshed > before, "the A answer was fetched again");
    // Past the first entry's TTL: the refreshed entry answers, still synthesized, no upstream.
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    let queries = h.count_any("short4.example.com");
    assert_eq!(short(addr, &["short4.example.com", "AAAA"]).await, want);
    assert_eq!(
        h.count_any("short4.example.com"),
        queries,
        "answered from the cache"
    );
    inst.shutdown().await;
}

/// Over a signed zone, validating: the A answer is secure (AD), the synthesized AAAA is not
/// (no AD, no RRSIG, RFC 6147 5.5); a client with DO and CD gets the real, signed NODATA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synthesized_answers_never_carry_ad() {
    if !tools::require_tool("dig", "dnsutils") {
        return;
    }
    let lab = lab::lab().await;
    let inst = lab.dnsward("dns64_prefix = \"64:ff9b::/96\"\n", "").await;
    let addr = inst.addrs()[0];
    let has_ad = |out: &str| status_and_flags(out).1.split(' ').any(|f| f == "ad");

    let out = dig(addr, &["www.secure", "A", "+dnssec"]).await;
    assert!(
        has_ad(&out) && out.contains("192.0.2.1"),
        "the A answer is secure: {out}"
    );
    for name in ["www.secure", "alias.secure"] {
        let out = dig(addr, &[name, "AAAA", "+dnssec"]).await;
        assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");
        assert!(out.contains("64:ff9b::c000:201"), "{out}");
        assert!(!has_ad(&out), "synthesized: no AD: {out}");
        assert!(
            !out.contains("RRSIG"),
            "no signature over made records: {out}"
        );
    }
    let out = dig(addr, &["www.secure", "AAAA", "+dnssec", "+cd"]).await;
    assert_eq!(status_and_flags(&out).0, "NOERROR", "{out}");
    assert!(answers_section_empty(&out), "DO+CD: no synthesis: {out}");
    assert!(
        out.contains("NSEC"),
        "the signed denial is passed on: {out}"
    );
    inst.shutdown().await;
}

/// Bad DNS64 keys are reported with file:line and the key.
#[test]
fn bad_dns64_keys_name_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnsward.toml");
    let check = |resolver: &str| -> Vec<String> {
        let text = format!("[server]\nlisten = [\"127.0.0.1:0\"]\n\n[resolver]\n{resolver}");
        std::fs::write(&path, &text).unwrap();
        match dnsward::config::Config::load(&path) {
            Ok(_) => Vec::new(),
            Err(problems) => problems.iter().map(|p| p.to_string()).collect(),
        }
    };
    let file = path.display().to_string();
    for (resolver, line, key, why) in [
        ("dns64_prefix = \"64:ff9b::/97\"\n", 5, "resolver.dns64_prefix", "/32, /40"),
        ("dns64_prefix = \"64:ff9b::1/96\"\n", 5, "resolver.dns64_prefix", "beyond /96"),
        ("dns64_prefix = \"192.0.2.0/24\"\n", 5, "resolver.dns64_prefix", "IPv4"),
        (
            "dns64_prefix = \"64:ff9b::/96\"\ndns64_clients = [\"10.0.0.0/33\"]\n",
            6,
            "resolver.dns64_clients",
            "",
        ),
        (
            "dns64_prefix = \"64:ff9b::/96\"\ndns64_exclude = [\"::ffff:0:0/96\", \"10.0.0.0/8\"]\n",
            6,
            "resolver.dns64_exclude[1]",
            "IPv4 range",
        ),
        ("dns64_clients = [\"10.0.0.0/8\"]\n", 5, "resolver.dns64_clients", "dns64_prefix"),
    ] {
        let problems = check(resolver);
        let want = format!("{file}:{line}: {key}");
        assert!(
            problems.iter().any(|p| p.starts_with(&want) && p.contains(why)),
            "{resolver}: want {want} ... {why}; got {problems:?}"
        );
    }
    assert!(check("dns64_prefix = \"64:ff9b::/96\"\n").is_empty());
}
