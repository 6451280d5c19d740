//! RPZ zone transfer (issue 13), on loopback with real servers:
//! - in: NSD and BIND as primaries of a dnsward secondary (NOTIFY, AXFR, IXFR from BIND's
//!   `ixfr-from-differences`, TSIG, restart from the copy on disk, an older serial refused);
//! - out: a dnsward `[rpz_server]` feeding Unbound, a second dnsward and (when installed)
//!   PowerDNS Recursor, changed through the admin API; refused outside `allow_transfer` and with a bad TSIG (`dig AXFR`);
//!   A feed (`[[lists]] url`) at the centre reaches the secondaries too;
//! - bad input: a primary that sends garbage or too many records.
//!
//! Each test uses its own 127.230.X.0/24. Without nsd, named, unbound or dig the test prints
//! why and passes without running (CI installs them: .ci/run).

mod common;
mod feed_server;
mod rpz_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rpz_support::fake;
use rpz_support::*;

const TOKEN: &str = "rpz-transfer-test-token-0123456789";
/// Names the test hierarchy resolves (so "not blocked" is a real answer, not a failure).
const EXTRA: &str =
    "bad1 IN A 192.0.2.41\nx.bad1 IN A 192.0.2.44\nbad2 IN A 192.0.2.42\nbad3 IN A 192.0.2.43\n";

fn skip_without(bins: &[&str]) -> bool {
    !bins.iter().all(|b| {
        let package = match *b {
            "named" => "bind9",
            "dig" => "dnsutils",
            other => other, // nsd, unbound
        };
        common::tools::require_tool(b, package)
    })
}

/// The rcode, or `None` when the server does not answer within a second (still starting).
async fn try_rcode(server: SocketAddr, name: &str) -> Option<ResponseCode> {
    let q = query_message(name, RecordType::A, Some(1232));
    let raw = udp_raw(server, &q.to_vec().unwrap(), Duration::from_secs(1)).await?;
    Message::from_vec(&raw)
        .ok()
        .map(|m| m.metadata.response_code)
}

/// Waits (at most `secs`) until `name` is blocked (NXDOMAIN) or resolves (NOERROR) at `server`.
async fn wait_for(server: SocketAddr, name: &str, blocked: bool, secs: u64, what: &str) {
    let want = if blocked {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < end {
        last = try_rcode(server, name).await;
        if last == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: {name} at {server} is {last:?} after {secs} s, wanted {want:?}");
}

/// The value of one metric line (labels as printed), 0 when absent.
async fn metric(admin: SocketAddr, line_start: &str) -> f64 {
    let (_, body) = http(admin, "GET", "/metrics", None, None).await;
    sample(&body, line_start)
}

async fn wait_metric(admin: SocketAddr, line_start: &str, secs: u64) -> f64 {
    let end = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = metric(admin, line_start).await;
        if v > 0.0 || Instant::now() > end {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A dnsward secondary of `zone` at `primary`, resolving from the hierarchy.
fn secondary_config(
    h: &Hierarchy,
    name: &str,
    zone: &str,
    primary: SocketAddr,
    notify: SocketAddr,
    extra: &str,
) -> String {
    h.config_text("")
        + &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n\n[[rpz]]\nname = \"{name}\"\nprimary = \"{primary}\"\nzone = \"{zone}\"\nnotify_listen = \"{notify}\"\npath = \"{name}.zone\"\n{extra}\n"
        )
}

/// NOTIFY for `zone` to `target`, sent from `from` (the project's client code); whether it was
/// answered within 2 s.
async fn notify_answered(from: &str, target: SocketAddr, zone: &str) -> bool {
    let sock = tokio::net::UdpSocket::bind(format!("{from}:0"))
        .await
        .unwrap();
    let mut m = Message::new(4711, MessageType::Query, OpCode::Notify);
    m.add_query(Query::query(
        Name::from_ascii(zone).unwrap(),
        RecordType::SOA,
    ));
    sock.send_to(&m.to_vec().unwrap(), target).await.unwrap();
    let mut buf = [0u8; 512];
    tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .is_ok()
}

async fn send_notify(from: &str, target: SocketAddr, zone: &str) {
    assert!(
        notify_answered(from, target, zone).await,
        "NOTIFY to {target} answered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsd_primary_notify_restart_and_older_serial() {
    init_logging();
    if skip_without(&["nsd"]) {
        return;
    }
    let h = Hierarchy::start(EXTRA).await;
    let nsd_dir = tempfile::tempdir().unwrap();
    let primary = SocketAddr::new(
        "127.230.2.1".parse().unwrap(),
        free_port_on("127.230.2.1".parse().unwrap()),
    );
    let notify = SocketAddr::new(
        "127.230.2.2".parse().unwrap(),
        free_port_on("127.230.2.2".parse().unwrap()),
    );
    let zone = "rpz.nsd.";
    std::fs::write(
        nsd_dir.path().join("zone.rpz"),
        rpz_zone(zone, 1, 3600, &["bad1.example.com"]),
    )
    .unwrap();
    let nsd = start_nsd(nsd_dir.path(), primary, zone, notify, false);
    wait_listening(primary, &nsd).await;

    // NSD sends NOTIFY from 127.0.0.1, not from its listen address: allow_notify says so.
    let text = secondary_config(
        &h,
        "nsd",
        zone,
        primary,
        notify,
        "allow_notify = [\"127.0.0.1/32\"]",
    );
    let dw = start_dnsward_text(&text, h.dir.path()).await;
    let dns = dw.addrs()[0];
    let admin = dw.admin_addr().unwrap();
    wait_for(dns, "bad1.example.com", true, 10, "first AXFR from NSD").await;
    wait_for(dns, "bad2.example.com", false, 5, "not listed").await;

    // Change the zone, reload NSD (it sends NOTIFY): the new entry blocks, the removed one not.
    std::fs::write(
        nsd_dir.path().join("zone.rpz"),
        rpz_zone(zone, 2, 3600, &["bad2.example.com"]),
    )
    .unwrap();
    nsd.signal(libc::SIGHUP);
    wait_for(dns, "bad2.example.com", true, 10, "after NOTIFY from NSD").await;
    wait_for(dns, "bad1.example.com", false, 5, "removed from the zone").await;
    assert!(metric(admin, "dnsward_rpz_serial{zone=\"nsd\"}").await == 2.0);

    // Restart while NSD is down: the copy on disk protects at once.
    dw.shutdown().await;
    drop(nsd);
    let dw = start_dnsward_text(&text, h.dir.path()).await;
    let dns = dw.addrs()[0];
    let admin = dw.admin_addr().unwrap();
    wait_for(
        dns,
        "bad2.example.com",
        true,
        5,
        "from the copy on disk, primary down",
    )
    .await;

    // NSD comes back with an older serial: refused, counted, the last good copy stays.
    std::fs::write(
        nsd_dir.path().join("zone.rpz"),
        rpz_zone(zone, 1, 3600, &["bad3.example.com"]),
    )
    .unwrap();
    let nsd = start_nsd(nsd_dir.path(), primary, zone, notify, false);
    wait_listening(primary, &nsd).await;
    send_notify("127.0.0.1", notify, zone).await;
    let older = wait_metric(
        admin,
        "dnsward_rpz_transfers_total{zone=\"nsd\",result=\"older_serial\"}",
        10,
    )
    .await;
    assert!(older >= 1.0, "older serial counted");
    assert_eq!(
        rcode(dns, "bad2.example.com", RecordType::A).await,
        ResponseCode::NXDomain
    );
    assert_eq!(
        rcode(dns, "bad3.example.com", RecordType::A).await,
        ResponseCode::NoError
    );
    dw.shutdown().await;
    drop(nsd);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_primary_tsig_ixfr_and_bad_key() {
    init_logging();
    if skip_without(&["named"]) {
        return;
    }
    let h = Hierarchy::start(EXTRA).await;
    let bind_dir = tempfile::tempdir().unwrap();
    let port = free_port_on("127.0.0.1".parse().unwrap());
    let primary = SocketAddr::new("127.0.0.1".parse().unwrap(), port);
    let notify = SocketAddr::new(
        "127.230.3.2".parse().unwrap(),
        free_port_on("127.230.3.2".parse().unwrap()),
    );
    let zone = "rpz.bind.";
    std::fs::write(
        bind_dir.path().join("zone.rpz"),
        rpz_zone(zone, 1, 3600, &["bad1.example.com", "bad3.example.com"]),
    )
    .unwrap();
    let named = start_named(bind_dir.path(), port, zone, notify);
    wait_listening(primary, &named).await;

    let key = write_key(h.dir.path(), KEY_SECRET);
    let text = secondary_config(
        &h,
        "bind",
        zone,
        primary,
        notify,
        &format!("tsig_key_file = \"{}\"", key.display()),
    );
    let dw = start_dnsward_text(&text, h.dir.path()).await;
    let dns = dw.addrs()[0];
    let admin = dw.admin_addr().unwrap();
    wait_for(
        dns,
        "bad1.example.com",
        true,
        10,
        "first AXFR from BIND with TSIG",
    )
    .await;
    wait_for(
        dns,
        "bad3.example.com",
        true,
        2,
        "first AXFR from BIND with TSIG",
    )
    .await;

    // A new zone file and SIGHUP: BIND computes the difference and sends NOTIFY; we get an IXFR.
    std::fs::write(
        bind_dir.path().join("zone.rpz"),
        rpz_zone(zone, 2, 3600, &["bad2.example.com", "bad3.example.com"]),
    )
    .unwrap();
    named.signal(libc::SIGHUP);
    wait_for(dns, "bad2.example.com", true, 10, "after NOTIFY from BIND").await;
    wait_for(dns, "bad1.example.com", false, 5, "deleted by the IXFR").await;
    assert_eq!(
        rcode(dns, "bad3.example.com", RecordType::A).await,
        ResponseCode::NXDomain,
        "kept through the IXFR"
    );
    let ixfr = metric(
        admin,
        "dnsward_rpz_transfers_total{zone=\"bind\",result=\"ixfr\"}",
    )
    .await;
    assert!(
        ixfr >= 1.0,
        "the change came as an IXFR; log:\n{}",
        named.log_text()
    );

    // A secondary with the wrong key gets nothing: refused by BIND, counted.
    let h2 = Hierarchy::start(EXTRA).await;
    let wrong = write_key(h2.dir.path(), WRONG_SECRET);
    let notify2 = SocketAddr::new(
        "127.230.3.3".parse().unwrap(),
        free_port_on("127.230.3.3".parse().unwrap()),
    );
    let text2 = secondary_config(
        &h2,
        "bind",
        zone,
        primary,
        notify2,
        &format!("tsig_key_file = \"{}\"", wrong.display()),
    );
    let dw2 = start_dnsward_text(&text2, h2.dir.path()).await;
    let admin2 = dw2.admin_addr().unwrap();
    let refused = wait_metric(
        admin2,
        "dnsward_rpz_transfers_total{zone=\"bind\",result=\"refused\"}",
        10,
    )
    .await
        + metric(
            admin2,
            "dnsward_rpz_transfers_total{zone=\"bind\",result=\"tsig\"}",
        )
        .await;
    assert!(refused >= 1.0, "a bad key is refused and counted");
    assert_eq!(
        rcode(dw2.addrs()[0], "bad2.example.com", RecordType::A).await,
        ResponseCode::NoError
    );
    dw2.shutdown().await;
    dw.shutdown().await;
}

/// A first dnsward serves its policy; Unbound, a second dnsward and PowerDNS Recursor follow it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_unbound_and_dnsward_follow_the_admin_api() {
    init_logging();
    if skip_without(&["unbound", "dig"]) {
        return;
    }
    let h = Hierarchy::start(EXTRA).await;
    let dir = h.dir.path();
    let serve_ip = "127.230.1.1";
    let b_notify = SocketAddr::new(
        "127.230.1.2".parse().unwrap(),
        free_port_on("127.230.1.2".parse().unwrap()),
    );
    let unbound_addr = SocketAddr::new(
        "127.230.1.3".parse().unwrap(),
        free_port_on("127.230.1.3".parse().unwrap()),
    );
    let serve = SocketAddr::new(
        serve_ip.parse().unwrap(),
        free_port_on(serve_ip.parse().unwrap()),
    );
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    std::fs::write(dir.join("local.txt"), "bad3.example.com\n").unwrap();
    let zone = "rpz.fleet.";
    let a_text = h.config_text("")
        + &format!(
            "[[lists]]\nname = \"local\"\ncategory = \"threat\"\npath = \"local.txt\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime.txt\"\n\n\
             [rpz_server]\nlisten = \"{serve}\"\nzone = \"{zone}\"\nallow_transfer = [\"127.0.0.1/32\", \"127.230.1.2/32\", \"127.230.1.3/32\"]\nnotify = [\"{b_notify}\", \"{unbound_addr}\"]\n"
        );
    let a = start_dnsward_text(&a_text, dir).await;
    let a_admin = a.admin_addr().unwrap();

    let hb = Hierarchy::start(EXTRA).await;
    let b = start_dnsward_text(
        &secondary_config(&hb, "fleet", zone, serve, b_notify, ""),
        hb.dir.path(),
    )
    .await;
    let b_dns = b.addrs()[0];
    let ub_dir = tempfile::tempdir().unwrap();
    let example_com = SocketAddr::new(h.ip(3).into(), h.port);
    let unbound = start_unbound(ub_dir.path(), unbound_addr, example_com, zone, serve);
    wait_listening(unbound_addr, &unbound).await;
    // PowerDNS Recursor too, when installed (it polls; 4.8 takes no NOTIFY for RPZ).
    let pdns_dir = tempfile::tempdir().unwrap();
    let pdns_addr = SocketAddr::new(
        "127.230.1.4".parse().unwrap(),
        free_port_on("127.230.1.4".parse().unwrap()),
    );
    let pdns = common::tools::require_tool("pdns_recursor", "pdns-recursor")
        .then(|| start_pdns_recursor(pdns_dir.path(), pdns_addr, example_com, zone, serve));
    let mut fleet = vec![("dnsward secondary", b_dns), ("unbound", unbound_addr)];
    if pdns.is_some() {
        fleet.push(("powerdns recursor", pdns_addr));
    } else {
        eprintln!("the fleet is dnsward and Unbound");
    }

    for (who, addr) in &fleet {
        wait_for(
            *addr,
            "bad3.example.com",
            true,
            15,
            &format!("{who}, local list"),
        )
        .await;
        wait_for(*addr, "bad1.example.com", false, 5, who).await;
        wait_for(*addr, "x.bad1.example.com", false, 5, who).await;
    }

    // Added through the first one's admin API: every secondary blocks it within seconds, and
    // its subdomains (a plain-list rule; the zone has the name and the wildcard owner).
    let (st, _) = http(
        a_admin,
        "POST",
        "/api/lists/runtime",
        Some(TOKEN),
        Some(r#"{"name":"bad1.example.com","added_by":"test","reason":"fleet"}"#),
    )
    .await;
    assert_eq!(st, 201);
    for (who, addr) in &fleet {
        wait_for(
            *addr,
            "bad1.example.com",
            true,
            5,
            &format!("{who} after the API add"),
        )
        .await;
        wait_for(
            *addr,
            "x.bad1.example.com",
            true,
            2,
            &format!("{who} after the API add"),
        )
        .await;
    }

    // Removed: every secondary stops blocking it.
    let (st, _) = http(
        a_admin,
        "DELETE",
        "/api/lists/runtime/bad1.example.com",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(st, 200);
    for (who, addr) in &fleet {
        wait_for(
            *addr,
            "bad1.example.com",
            false,
            5,
            &format!("{who} after the API delete"),
        )
        .await;
    }
    assert!(
        metric(
            b.admin_addr().unwrap(),
            "dnsward_rpz_transfers_total{zone=\"fleet\",result=\"ixfr\"}"
        )
        .await
            >= 1.0
    );

    // A client outside allow_transfer is refused (dig from 127.230.1.9); one inside gets it.
    let out = dig(&[
        "-b",
        "127.230.1.9",
        "-p",
        &serve.port().to_string(),
        &format!("@{serve_ip}"),
        zone,
        "AXFR",
    ]);
    assert!(out.contains("Transfer failed"), "{out}");
    let out = dig(&[
        "-b",
        "127.0.0.1",
        "-p",
        &serve.port().to_string(),
        &format!("@{serve_ip}"),
        zone,
        "AXFR",
    ]);
    assert!(out.contains("bad3.example.com.rpz.fleet."), "{out}");
    assert!(
        metric(
            a_admin,
            "dnsward_rpz_server_requests_total{kind=\"refused\"}"
        )
        .await
            >= 1.0
    );
    drop(unbound);
    drop(pdns);
    b.shutdown().await;
    a.shutdown().await;
}

fn dig(args: &[&str]) -> String {
    let out = std::process::Command::new("dig")
        .args(["+tries=1", "+time=3"])
        .args(args)
        .output()
        .expect("dig runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The server signs every message of a streamed AXFR; dig and a dnsward secondary check the
/// chain; a wrong key or none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpz_server_tsig_streams_a_large_zone() {
    init_logging();
    if skip_without(&["dig"]) {
        return;
    }
    let h = Hierarchy::start(EXTRA).await;
    let dir = h.dir.path();
    let key = write_key(dir, KEY_SECRET);
    let serve_ip = "127.230.4.1";
    let serve = SocketAddr::new(
        serve_ip.parse().unwrap(),
        free_port_on(serve_ip.parse().unwrap()),
    );
    let b_notify = SocketAddr::new(
        "127.230.4.2".parse().unwrap(),
        free_port_on("127.230.4.2".parse().unwrap()),
    );
    let big: String = (0..3000).map(|i| format!("n{i}.big.test\n")).collect();
    std::fs::write(dir.join("big.txt"), big + "bad3.example.com\n").unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    let zone = "rpz.tsig.";
    let a_text = h.config_text("")
        + &format!(
            "[[lists]]\nname = \"big\"\ncategory = \"threat\"\npath = \"big.txt\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime.txt\"\n\n\
             [rpz_server]\nlisten = \"{serve}\"\nzone = \"{zone}\"\nallow_transfer = [\"127.0.0.0/8\"]\ntsig_key_file = \"{}\"\nnotify = [\"{b_notify}\"]\n",
            key.display()
        );
    let a = start_dnsward_text(&a_text, dir).await;
    let hb = Hierarchy::start(EXTRA).await;
    let b_key = write_key(hb.dir.path(), KEY_SECRET);
    let b_text = secondary_config(
        &hb,
        "tsig",
        zone,
        serve,
        b_notify,
        &format!("tsig_key_file = \"{}\"", b_key.display()),
    );
    let b = start_dnsward_text(&b_text, hb.dir.path()).await;
    wait_for(
        b.addrs()[0],
        "bad3.example.com",
        true,
        15,
        "signed multi-message AXFR",
    )
    .await;

    let port = serve.port().to_string();
    let at = format!("@{serve_ip}");
    let good_key = format!("hmac-sha256:{KEY_NAME}:{KEY_SECRET}");
    let out = dig(&["-p", &port, &at, zone, "AXFR", "-y", &good_key]);
    assert!(
        out.contains("n2999.big.test.rpz.tsig."),
        "{}",
        &out[out.len().saturating_sub(600)..]
    );
    assert!(
        !out.contains("failed") && !out.contains("BADSIG"),
        "{}",
        &out[out.len().saturating_sub(600)..]
    );
    let messages: usize = out
        .split("XFR size:")
        .nth(1)
        .and_then(|s| s.split("(messages ").nth(1))
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(messages > 10, "streamed in many messages, got {messages}");
    let wrong = dig(&[
        "-p",
        &port,
        &at,
        zone,
        "AXFR",
        "-y",
        &format!("hmac-sha256:{KEY_NAME}:{WRONG_SECRET}"),
    ]);
    assert!(!wrong.contains("n2999.big.test"), "{wrong}");
    let unsigned = dig(&["-p", &port, &at, zone, "AXFR"]);
    assert!(unsigned.contains("Transfer failed"), "{unsigned}");
    assert!(
        metric(
            a.admin_addr().unwrap(),
            "dnsward_rpz_server_requests_total{kind=\"bad_tsig\"}"
        )
        .await
            >= 2.0
    );

    // A change reaches the signed secondary as a signed IXFR.
    let old_serial = metric(a.admin_addr().unwrap(), "dnsward_rpz_server_serial ").await as u32;
    assert!(old_serial > 0);
    let (st, _) = http(
        a.admin_addr().unwrap(),
        "POST",
        "/api/lists/runtime",
        Some(TOKEN),
        Some(r#"{"name":"bad2.example.com","added_by":"test","reason":"tsig"}"#),
    )
    .await;
    assert_eq!(st, 201);
    wait_for(b.addrs()[0], "bad2.example.com", true, 5, "signed IXFR").await;
    assert!(
        metric(
            b.admin_addr().unwrap(),
            "dnsward_rpz_transfers_total{zone=\"tsig\",result=\"ixfr\"}"
        )
        .await
            >= 1.0
    );
    // dig's IXFR from the old serial gets just the difference; from a serial the history does
    // not hold, the whole zone.
    let ixfr = dig(&[
        "-p",
        &port,
        &at,
        zone,
        &format!("IXFR={old_serial}"),
        "-y",
        &good_key,
    ]);
    assert!(ixfr.contains("bad2.example.com.rpz.tsig."), "{ixfr}");
    assert!(
        !ixfr.contains("n2999.big.test"),
        "incremental, not the whole zone"
    );
    let full = dig(&["-p", &port, &at, zone, "IXFR=1", "-y", &good_key]);
    assert!(
        full.contains("n2999.big.test.rpz.tsig.") && full.contains("bad2.example.com.rpz.tsig.")
    );
    b.shutdown().await;
    a.shutdown().await;
}

/// A primary that sends garbage, half a message or too many records: rejected, counted, the
/// last good policy kept; past the SOA expire the zone is reported expired and still enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_primary_keeps_the_last_good_zone() {
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;
    init_logging();
    let h = Hierarchy::start(EXTRA).await;
    let mode = Arc::new(AtomicU8::new(fake::GOOD));
    let zone = "rpz.fake.";
    let primary = fake::start("127.230.5.1:0", zone, Arc::clone(&mode)).await;
    let notify = SocketAddr::new(
        "127.230.5.2".parse().unwrap(),
        free_port_on("127.230.5.2".parse().unwrap()),
    );
    let text = secondary_config(&h, "fake", zone, primary, notify, "max_records = 20");
    let dw = start_dnsward_text(&text, h.dir.path()).await;
    let dns = dw.addrs()[0];
    let admin = dw.admin_addr().unwrap();
    wait_for(dns, "bad1.example.com", true, 10, "good zone").await;
    for (m, label) in [
        (fake::GARBAGE, "malformed"),
        (fake::CUT, "malformed"),
        (fake::OVERSIZED, "oversized"),
    ] {
        let line = format!("dnsward_rpz_transfers_total{{zone=\"fake\",result=\"{label}\"}}");
        let before = metric(admin, &line).await;
        mode.store(m, Ordering::SeqCst);
        send_notify("127.230.5.1", notify, zone).await;
        let end = Instant::now() + Duration::from_secs(10);
        while metric(admin, &line).await <= before && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            metric(admin, &line).await > before,
            "mode {m}: counted as {label}"
        );
        assert_eq!(
            rcode(dns, "bad1.example.com", RecordType::A).await,
            ResponseCode::NXDomain,
            "mode {m}: last good kept"
        );
        assert_eq!(
            metric(admin, "dnsward_rpz_serial{zone=\"fake\"}").await,
            5.0
        );
    }
    // NOTIFY is taken from the primary's address only.
    assert!(
        !notify_answered("127.230.5.9", notify, zone).await,
        "NOTIFY from elsewhere ignored"
    );
    assert!(
        !notify_answered("127.230.5.1", notify, "other.zone.").await,
        "NOTIFY for another zone ignored"
    );
    // The primary stays broken past the SOA expire (3 s): reported expired, still enforced.
    let expired_line = "dnsward_rpz_expired{zone=\"fake\"}";
    mode.store(fake::CUT, Ordering::SeqCst);
    assert_eq!(
        wait_metric(admin, expired_line, 15).await,
        1.0,
        "expired after the SOA expire"
    );
    assert_eq!(
        rcode(dns, "bad1.example.com", RecordType::A).await,
        ResponseCode::NXDomain,
        "an expired zone stays in force"
    );
    // The primary heals: the next refresh (1 s) clears the expiry.
    mode.store(fake::GOOD, Ordering::SeqCst);
    let end = Instant::now() + Duration::from_secs(10);
    while metric(admin, expired_line).await != 0.0 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        metric(admin, expired_line).await,
        0.0,
        "a transfer clears the expiry"
    );
    dw.shutdown().await;
}

/// `dnsward check`: a zone not transferred yet is a note, not an error; bad keys are errors
/// with their line.
#[test]
fn check_reports_rpz_config() {
    let dir = tempfile::tempdir().unwrap();
    write_key(dir.path(), KEY_SECRET);
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "[[rpz]]\nprimary = \"127.230.6.1:5300\"\nzone = \"rpz.example.\"\ntsig_key_file = \"key-MDEy.conf\"\n\n\
         [rpz_server]\nlisten = \"127.230.6.1:5301\"\nzone = \"rpz.local.\"\nallow_transfer = [\"127.0.0.0/8\"]\n",
    )
    .unwrap();
    let out = dnsward_cmd("check", &good, &[]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("not transferred yet"), "{text}");

    check_rejects(
        &dir.path().join("bad.toml"),
        "[[rpz]]\nprimary = \"127.230.6.1:5300\"\nzone = \"rpz.example.\"\n\n\
         [[rpz]]\nprimary = \"127.230.6.1:5300\"\nzone = \"rpz.example.\"\ntsig_key_file = \"missing.key\"\n\n\
         [rpz_server]\nlisten = \"127.230.6.1:5301\"\nzone = \"..bad\"\n",
        &[
            "rpz[1].name",
            "rpz[1].tsig_key_file",
            "rpz_server.zone",
            "rpz_server.allow_transfer",
        ],
    );
}

/// A feed downloaded by the central dnsward is part of the zone it serves: a change of the
/// feed reaches a secondary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_at_the_centre_reaches_a_secondary() {
    init_logging();
    let h = Hierarchy::start(EXTRA).await;
    let feed = feed_server::FeedServer::start(feed_server::list(&["bad2"], "v1")).await;
    let serve = SocketAddr::new(
        "127.230.8.1".parse().unwrap(),
        free_port_on("127.230.8.1".parse().unwrap()),
    );
    let notify = SocketAddr::new(
        "127.230.8.2".parse().unwrap(),
        free_port_on("127.230.8.2".parse().unwrap()),
    );
    let zone = "rpz.feeds.";
    let a_text = feed_server::feed_config(&h, &feed.url(), "", "")
        + &format!(
            "[rpz_server]\nlisten = \"{serve}\"\nzone = \"{zone}\"\nallow_transfer = [\"127.0.0.0/8\"]\nnotify = [\"{notify}\"]\n"
        );
    let a = start_dnsward_text(&a_text, h.dir.path()).await;
    let hb = Hierarchy::start(EXTRA).await;
    let b = start_dnsward_text(
        &secondary_config(&hb, "central", zone, serve, notify, ""),
        hb.dir.path(),
    )
    .await;
    let dns = b.addrs()[0];
    wait_for(
        dns,
        "bad2.example.com",
        true,
        15,
        "feed name at the secondary",
    )
    .await;
    wait_for(dns, "bad3.example.com", false, 5, "not in the feed").await;
    feed.set(feed_server::list(&["bad3"], "v2"));
    feed_server::refresh(a.admin_addr().unwrap()).await;
    wait_for(
        dns,
        "bad3.example.com",
        true,
        10,
        "new feed name at the secondary",
    )
    .await;
    wait_for(dns, "bad2.example.com", false, 5, "name gone from the feed").await;
    b.shutdown().await;
    a.shutdown().await;
}
