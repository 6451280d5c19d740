//! `dnsward audit` as a user runs it (the binary, over real sockets) against a scripted fake
//! hierarchy on loopback with every finding built in: a dangling CNAME under a claimable
//! hosting suffix, a lame name server, parent/child NS mismatch, an address outside `--owned`,
//! NXDOMAIN, a CNAME to a listed threat, drift against a baseline; DNSSEC bogus on a signed,
//! tampered hierarchy; `--write-abandoned` blocking the name on a running dnsward.

mod common;
#[path = "dnssec_support/mod.rs"]
mod dnssec_support;
#[path = "scripted/mod.rs"]
mod scripted;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use scripted::{Behaviour, Net, Reply, Running};

/// The agency's world: root .1, TLD server .2 (vn., com.), agency.vn on .3 and .4, lame.vn
/// and moved.vn on .5 (lame.vn's second server .6 refuses everything), the hosting and
/// threat domains on .7.
async fn world() -> (Running, [IpAddr; 7]) {
    let mut net = Net::new();
    let a: Vec<IpAddr> = (1..=7).map(|i| net.addr(i)).collect();
    let [root, tld, ag1, ag2, five, six, seven] = [a[0], a[1], a[2], a[3], a[4], a[5], a[6]];
    net.zone(
        root,
        ".",
        &format!(
            "@ NS a.root.test.\na.root.test. A {root}\nns.tld.test. A {tld}\nvn. NS ns.tld.test.\ncom. NS ns.tld.test.\ntest. NS ns.tld.test.\n"
        ),
    );
    net.zone(
        tld,
        "test.",
        &format!("@ NS ns.tld.test.\na.root A {root}\nns.tld A {tld}\n"),
    );
    net.zone(
        tld,
        "vn.",
        &format!(
            "@ NS ns.tld.test.\nagency NS ns1.agency\nagency NS ns2.agency\nns1.agency A {ag1}\nns2.agency A {ag2}\n\
             lame NS ns1.lame\nlame NS ns2.lame\nns1.lame A {five}\nns2.lame A {six}\n\
             moved NS ns1.moved\nns1.moved A {five}\n"
        ),
    );
    net.zone(
        tld,
        "com.",
        &format!(
            "@ NS ns.tld.test.\nherokuapp NS ns.herokuapp\nns.herokuapp A {seven}\nbad-host NS ns.bad-host\nns.bad-host A {seven}\n"
        ),
    );
    let agency = format!(
        "@ NS ns1\n@ NS ns2\nns1 A {ag1}\nns2 A {ag2}\n@ MX 10 mail\nmail A 192.0.2.25\n\
         www A 192.0.2.10\nold A 198.51.100.7\nshop CNAME agency-shop.herokuapp.com.\n\
         promo CNAME landing.bad-host.com.\n"
    );
    net.zone(ag1, "agency.vn.", &agency);
    net.zone(ag2, "agency.vn.", &agency);
    net.zone(
        five,
        "lame.vn.",
        &format!("@ NS ns1\n@ NS ns2\nns1 A {five}\nns2 A {six}\nwww A 192.0.2.11\n"),
    );
    net.zone(
        five,
        "moved.vn.",
        &format!("@ NS ns1\n@ NS ns9\nns1 A {five}\nns9 A {five}\nwww A 192.0.2.12\n"),
    );
    net.bare(six);
    net.zone(
        seven,
        "herokuapp.com.",
        &format!("@ NS ns\nns A {seven}\nother-app A 192.0.2.50\n"),
    );
    net.zone(
        seven,
        "bad-host.com.",
        &format!("@ NS ns\nns A {seven}\nlanding A 192.0.2.66\n"),
    );
    let running = net.start(root).await;
    (running, [root, tld, ag1, ag2, five, six, seven])
}

/// Config (threat list with bad-host.com, an empty abandoned list) and an inventory in `dir`.
fn setup(h: &Running, dir: &Path, inventory: &str, extra: &str) -> (PathBuf, PathBuf) {
    std::fs::write(dir.join("threats.txt"), "# phishing\nbad-host.com\n").unwrap();
    if !dir.join("abandoned.txt").exists() {
        std::fs::write(dir.join("abandoned.txt"), "").unwrap();
    }
    let config = format!(
        "{}\n[[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"threats.txt\"\n\n[[lists]]\nname = \"abandoned\"\ncategory = \"abandoned\"\npath = \"abandoned.txt\"\n{extra}",
        h.dnsward_config("")
    );
    let cfg = dir.join("dnsward.toml");
    std::fs::write(&cfg, config).unwrap();
    let inv = dir.join("inventory.txt");
    std::fs::write(&inv, inventory).unwrap();
    (cfg, inv)
}

/// Runs the binary off the test's runtime threads (the fake servers must keep answering).
async fn audit(cfg: &Path, inv: &Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(common::BIN);
    cmd.arg("audit")
        .arg("--config")
        .arg(cfg)
        .arg("--domains")
        .arg(inv)
        .args(extra);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The table's rows for `name`: (severity, kind, reason).
fn rows(out: &str, name: &str) -> Vec<(String, String, String)> {
    out.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let sev = parts.next()?;
            let n = parts.next()?;
            let kind = parts.next()?;
            (n == name).then(|| {
                let reason = l.split_once(kind).unwrap().1.trim().to_string();
                (sev.to_string(), kind.to_string(), reason)
            })
        })
        .collect()
}

fn has(out: &str, name: &str, sev: &str, kind: &str, text: &str) -> bool {
    rows(out, name)
        .iter()
        .any(|(s, k, r)| s == sev && k == kind && r.contains(text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finding_with_its_severity_and_the_exit_status() {
    let (h, ips) = world().await;
    let dir = tempfile::tempdir().unwrap();
    let inventory = "# the agency's names\nagency.vn\nwww.agency.vn\nold.agency.vn\nshop.agency.vn   # the old shop\npromo.agency.vn\nretired.agency.vn\nlame.vn\nmoved.vn\nnot a name\nmail.agency.vn\n";
    let (cfg, inv) = setup(&h, dir.path(), inventory, "");
    let out = audit(&cfg, &inv, &["--owned", "192.0.2.0/24,2001:db8::/32"]).await;
    let text = stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}\n{err}\n{}", h.log());
    assert!(
        err.contains("inventory.txt:10: \"not a name\" skipped"),
        "{err}"
    );
    let check = |name: &str, sev: &str, kind: &str, reason: &str| {
        assert!(
            has(&text, name, sev, kind, reason),
            "expected {sev} {kind} {reason:?} for {name} in:\n{text}"
        );
    };
    check(
        "shop.agency.vn",
        "critical",
        "dangling_cname",
        "agency-shop.herokuapp.com. does not exist (NXDOMAIN) and sits under herokuapp.com",
    );
    check(
        "promo.agency.vn",
        "critical",
        "threat",
        "CNAME target landing.bad-host.com. is blocked by list \"threats\" (threat) rule bad-host.com at",
    );
    assert!(text.contains("threats.txt:2: bad-host.com"), "{text}");
    check(
        "old.agency.vn",
        "warning",
        "address_not_owned",
        "address 198.51.100.7 is outside the owned ranges",
    );
    check(
        "retired.agency.vn",
        "warning",
        "not_resolving",
        "no longer resolves (NXDOMAIN)",
    );
    check(
        "lame.vn",
        "warning",
        "lame_delegation",
        &format!(
            "name server ns2.lame.vn. ({}) answers without authority",
            ips[5]
        ),
    );
    check(
        "moved.vn",
        "warning",
        "ns_mismatch",
        "the parent delegates to ns1.moved.vn. but the zone lists ns1.moved.vn. ns9.moved.vn.",
    );
    check("www.agency.vn", "info", "ok", "resolves to 192.0.2.10");
    check("agency.vn", "info", "dnssec", "not signed");
    check("mail.agency.vn", "info", "ok", "192.0.2.25");
    // Names without trouble carry nothing worse than info.
    for name in ["www.agency.vn", "agency.vn", "mail.agency.vn"] {
        assert!(
            rows(&text, name).iter().all(|(s, _, _)| s == "info"),
            "{name}:\n{text}"
        );
    }
    assert!(
        text.contains("9 name(s) audited: 2 critical") && text.contains("2 abandoned candidate(s)"),
        "{text}"
    );

    // Warnings only: exit 1; nothing but info: exit 0.
    std::fs::write(&inv, "old.agency.vn\nwww.agency.vn\n").unwrap();
    let out = audit(&cfg, &inv, &["--owned", "192.0.2.0/24"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    std::fs::write(&inv, "www.agency.vn\nagency.vn\n").unwrap();
    let out = audit(
        &cfg,
        &inv,
        &["--owned", "192.0.2.0/24", "--concurrency", "1"],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // JSON for scripts: the same findings, machine-readable.
    std::fs::write(&inv, "shop.agency.vn\nwww.agency.vn\n").unwrap();
    let out = audit(&cfg, &inv, &["--json"]).await;
    assert_eq!(out.status.code(), Some(2));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let names = v["names"].as_array().unwrap();
    assert_eq!(names[0]["name"], "shop.agency.vn");
    assert_eq!(names[0]["line"], 1);
    assert_eq!(names[0]["findings"][0]["severity"], "critical");
    assert_eq!(names[0]["findings"][0]["kind"], "dangling_cname");
    assert!(names[0]["abandoned"].as_str().unwrap().contains("takeover"));
    assert_eq!(names[1]["state"]["addresses"][0], "192.0.2.10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_against_the_baseline_then_the_new_baseline() {
    let (h, ips) = world().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, inv) = setup(&h, dir.path(), "www.agency.vn\nagency.vn\n", "");
    let baseline = dir.path().join("audit.json");
    let b = baseline.to_str().unwrap();
    let out = audit(&cfg, &inv, &["--baseline", b]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&baseline).unwrap()).unwrap();
    assert_eq!(
        saved["names"]["www.agency.vn"]["addresses"][0],
        "192.0.2.10"
    );
    assert_eq!(
        saved["names"]["agency.vn"]["ns"],
        serde_json::json!(["ns1.agency.vn.", "ns2.agency.vn."])
    );

    // The site is redirected and the delegation hijacked at the zone's servers.
    for server in [ips[2], ips[3]] {
        h.set(
            server,
            "www.agency.vn.",
            RecordType::A,
            Behaviour::Reply(Reply::authoritative().answer("www.agency.vn. 300 A 203.0.113.9")),
        );
        h.set(
            server,
            "agency.vn.",
            RecordType::NS,
            Behaviour::Reply(
                Reply::authoritative()
                    .answer("agency.vn. 300 NS ns1.agency.vn.\nagency.vn. 300 NS ns.evil.test."),
            ),
        );
    }
    let out = audit(&cfg, &inv, &["--baseline", b]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        has(
            &text,
            "www.agency.vn",
            "warning",
            "drift",
            "addresses changed since the baseline: 192.0.2.10 -> 203.0.113.9"
        ),
        "{text}"
    );
    assert!(
        has(&text, "agency.vn", "critical", "drift", "NS set changed since the baseline: ns1.agency.vn., ns2.agency.vn. -> ns.evil.test., ns1.agency.vn."),
        "{text}"
    );
    // The new state is the baseline now: the same answers again are no drift.
    let out = audit(&cfg, &inv, &["--baseline", b]).await;
    let text = stdout(&out);
    assert!(!text.contains("drift"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_abandoned_blocks_the_name_on_a_running_server() {
    let (h, _) = world().await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg, inv) = setup(
        &h,
        dir.path(),
        "shop.agency.vn\nretired.agency.vn\nwww.agency.vn\n",
        "\n[policy]\nwatch = true\nwatch_interval_secs = 1\n",
    );
    let config = dnsward::config::Config::load(&cfg).unwrap();
    let d = dnsward::instance::Instance::start(&config).await.unwrap();
    let addr = d.addrs()[0];
    let before = common::ask(addr, "shop.agency.vn.", RecordType::A).await;
    assert_eq!(before.metadata.response_code, ResponseCode::NXDomain);
    assert!(
        !before.answers.is_empty(),
        "the dangling CNAME itself is served before the audit"
    );

    let list = dir.path().join("abandoned.txt");
    let out = audit(&cfg, &inv, &["--write-abandoned", list.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    let written = std::fs::read_to_string(&list).unwrap();
    assert!(written.contains("\nshop.agency.vn\n"), "{written}");
    assert!(written.contains("\nretired.agency.vn\n"), "{written}");
    assert!(!written.contains("www.agency.vn"), "{written}");
    assert!(
        written.contains("# dnsward audit ") && written.contains("takeover risk"),
        "{written}"
    );

    // dnsward picks up the list (watch) and answers from the policy: the SOA names the list.
    let deadline = Instant::now() + Duration::from_secs(15);
    let blocked = loop {
        let m = common::ask(addr, "shop.agency.vn.", RecordType::A).await;
        if common::blocking_list(&m).as_deref() == Some("abandoned") {
            break m;
        }
        assert!(Instant::now() < deadline, "not blocked in time: {m:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(blocked.answers.is_empty(), "{blocked:?}");

    // A second run appends nothing new.
    let out = audit(&cfg, &inv, &["--write-abandoned", list.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&list).unwrap(), written);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_bogus_and_signed_zones() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let signed = dnssec_support::Hierarchy::build_at(now, |_| {});
    let authority = dnssec_support::Authority::start(signed.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("dnsward.toml");
    std::fs::write(&cfg, authority.validating_resolver(&signed, dir.path())).unwrap();
    let inv = dir.path().join("inventory.txt");
    std::fs::write(&inv, "www.badsig\nwww.secure\nsecure\n").unwrap();
    let out = audit(&cfg, &inv, &[]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        has(
            &text,
            "www.badsig",
            "critical",
            "dnssec_bogus",
            "DNSSEC bogus (EDE"
        ),
        "{text}"
    );
    assert!(
        has(&text, "www.secure", "info", "ok", "resolves to 192.0.2.1"),
        "{text}"
    );
    assert!(
        has(&text, "secure", "info", "dnssec", "signed and valid"),
        "{text}"
    );
}
