//! Remote lists (issue 13): a feed served by an HTTP server on loopback inside the test, dnsward
//! started through `Instance` (the code `serve` runs), queried over UDP, driven and inspected
//! through the admin API (`/api/lists/NAME/refresh`, `/accept`, `/api/stats`, `/metrics`) and
//! `dnsward check`. Feed changes, 304s, outage, restart during an outage, the shipped snapshot,
//! and hostile feeds: HTML, shrink, hang, redirect loop, oversized body, wrong type, garbage.

mod common;
mod feed_server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use feed_server::{list, FeedServer, Reply};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use serde_json::Value;

const TOKEN: &str = "feeds-test-token-0123456789abcdef";

/// `a0` .. `a{n-1}`.
fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A dnsward config on the test hierarchy with one feed (and an admin API).
fn feed_config(h: &Hierarchy, url: &str, extra_list: &str, extra_feeds: &str) -> String {
    std::fs::write(h.dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
    let retries = if extra_feeds.contains("retries") {
        ""
    } else {
        "retries = 0\n"
    };
    h.config_text("")
        + &format!(
            "[[lists]]\nname = \"feed\"\ncategory = \"threat\"\nurl = \"{url}\"\n{extra_list}\n\
             [feeds]\ncache_dir = \"cache\"\ntimeout = \"1s\"\n{retries}retry_backoff = \"100ms\"\nmax_size_mb = 1\n{extra_feeds}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n"
        )
}

/// The list that blocked `name`.example.com (see `blocked_by_fqdn`).
async fn blocked_by(dns: SocketAddr, name: &str) -> Option<String> {
    blocked_by_fqdn(dns, &format!("{name}.example.com.")).await
}

async fn api(admin: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let (status, body) = http(admin, method, path, Some(TOKEN), None).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

async fn feed_status(admin: SocketAddr) -> Value {
    let (status, stats) = api(admin, "GET", "/api/stats").await;
    assert_eq!(status, 200, "{stats}");
    stats["feeds"][0].clone()
}

/// Waits (bounded) until the feed's status satisfies `ok`.
async fn wait_status(admin: SocketAddr, within: Duration, ok: impl Fn(&Value) -> bool) -> Value {
    let t0 = Instant::now();
    loop {
        let s = feed_status(admin).await;
        if ok(&s) {
            return s;
        }
        assert!(t0.elapsed() < within, "feed status never as expected: {s}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits (bounded) until `name` is blocked (`Some(list)`) or not (`None`).
async fn wait_blocked(dns: SocketAddr, name: &str, want: Option<&str>, within: Duration) {
    let t0 = Instant::now();
    loop {
        let got = blocked_by(dns, name).await;
        if got.as_deref() == want {
            return;
        }
        assert!(
            t0.elapsed() < within,
            "{name}: blocked by {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn refresh(admin: SocketAddr) -> Value {
    let (status, v) = api(admin, "POST", "/api/lists/feed/refresh").await;
    assert_eq!(status, 200, "{v}");
    v["outcome"].clone()
}

async fn metrics(admin: SocketAddr) -> String {
    let (status, body) = http(admin, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    body
}

fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(prefix))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("feeds.toml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn start(path: &Path) -> dnsward::instance::Instance {
    let config = dnsward::config::Config::load(path).unwrap_or_else(|p| panic!("{p:?}"));
    dnsward::instance::Instance::start(&config)
        .await
        .expect("dnsward starts")
}

/// `dnsward check --config PATH`: (exit code, stdout + stderr).
fn check(path: &Path) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dnsward"))
        .args(["check", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_change_blocks_on_the_timer_and_an_unchanged_feed_answers_304() {
    let h = Hierarchy::start("").await;
    let feed = FeedServer::start(list(&["a0", "a1", "a2"], "v1")).await;
    let text = feed_config(&h, &feed.url(), "refresh = \"10s\"", "");
    let d = start(&write_config(h.dir.path(), &text)).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());

    // Start-up fetches at once, in the background.
    let s = wait_status(admin, Duration::from_secs(10), |s| {
        s["source"] == "download"
    })
    .await;
    assert_eq!(s["entries"], 3, "{s}");
    assert_eq!(blocked_by(dns, "a1").await.as_deref(), Some("feed"));
    assert_eq!(blocked_by(dns, "b1").await, None);

    // The feed changes; the timer (10 s) picks it up, and the change blocks.
    feed.set(list(&["b0", "b1", "b2"], "v2"));
    wait_blocked(dns, "b1", Some("feed"), Duration::from_secs(25)).await;
    assert_eq!(
        blocked_by(dns, "a1").await,
        None,
        "a removed entry stops blocking"
    );

    // Unchanged: the ETag goes back and the feed answers 304; the copy stays in force.
    let before = feed.st.not_modified.load(Ordering::SeqCst);
    let out = refresh(admin).await;
    assert_eq!(out["result"], "not_modified", "{out}");
    assert_eq!(feed.st.not_modified.load(Ordering::SeqCst), before + 1);
    assert_eq!(blocked_by(dns, "b2").await.as_deref(), Some("feed"));
    // A feed without validators that sends the same bytes again: no rewrite, no reload.
    let Reply::List { body, .. } = list(&["b0", "b1", "b2"], "v2") else {
        unreachable!()
    };
    let (_, before) = api(admin, "GET", "/api/stats").await;
    feed.set(Reply::Raw {
        content_type: "text/plain",
        body: body.into_bytes(),
    });
    assert_eq!(refresh(admin).await["result"], "unchanged");
    let (_, after) = api(admin, "GET", "/api/stats").await;
    assert_eq!(
        after["policy"]["reloads"], before["policy"]["reloads"],
        "no reload for identical bytes"
    );
    let m = metrics(admin).await;
    assert!(
        sample(
            &m,
            "dnsward_feed_fetches_total{list=\"feed\",result=\"not_modified\"}"
        ) >= 1.0,
        "{m}"
    );
    assert!(
        sample(
            &m,
            "dnsward_feed_fetches_total{list=\"feed\",result=\"updated\"}"
        ) >= 2.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "dnsward_feed_entries{list=\"feed\"}"),
        3.0,
        "{m}"
    );
    assert!(
        m.trim_end().ends_with("# EOF"),
        "one exposition, closed once"
    );
    d.shutdown().await;
    feed.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_keeps_the_last_good_copy_and_a_restart_during_it_still_protects() {
    let h = Hierarchy::start("").await;
    let feed = FeedServer::start(list(&["a0", "a1", "a2"], "v1")).await;
    let text = feed_config(&h, &feed.url(), "", "retries = 2\n");
    let path = write_config(h.dir.path(), &text);
    let d = start(&path).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    wait_status(admin, Duration::from_secs(10), |s| {
        s["source"] == "download"
    })
    .await;

    // The feed fails with 503: retried (2 more attempts with backoff), then the copy stays.
    feed.set(Reply::Status(503));
    let hits = feed.hits();
    let out = refresh(admin).await;
    assert_eq!(
        (out["result"].as_str(), out["kind"].as_str()),
        (Some("failed"), Some("http_status")),
        "{out}"
    );
    assert_eq!(feed.hits(), hits + 3, "one attempt and two retries");
    assert_eq!(blocked_by(dns, "a0").await.as_deref(), Some("feed"));
    let s = feed_status(admin).await;
    assert!(s["last_error"].as_str().unwrap().contains("503"), "{s}");
    assert_eq!(s["entries"], 3);
    d.shutdown().await;

    // The feed's server goes away entirely, and dnsward restarts: the cached copy protects.
    feed.task.abort();
    let _ = feed.task.await;
    let d = start(&path).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    assert_eq!(
        blocked_by(dns, "a2").await.as_deref(),
        Some("feed"),
        "cached copy in force at start"
    );
    let s = wait_status(admin, Duration::from_secs(10), |s| {
        s["last_error_unix"].as_u64() > Some(0)
            && s["last_error"].as_str().is_some_and(|e| !e.contains("503"))
    })
    .await;
    assert_eq!(
        (s["source"].as_str(), s["entries"].as_u64()),
        (Some("download"), Some(3)),
        "{s}"
    );
    assert_eq!(blocked_by(dns, "a1").await.as_deref(), Some("feed"));
    let m = metrics(admin).await;
    assert!(
        sample(
            &m,
            "dnsward_feed_problems_total{list=\"feed\",kind=\"transport\"}"
        ) >= 1.0,
        "{m}"
    );
    d.shutdown().await;

    // `dnsward check` shows the copy in force and the last error.
    let (code, out) = check(&path);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("feed \"feed\"") && out.contains("3 entries in force from a download"),
        "{out}"
    );
    assert!(out.contains("last error"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_machine_without_the_feed_starts_from_the_shipped_snapshot() {
    let h = Hierarchy::start("").await;
    // A port nothing listens on: the feed is unreachable.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        h.dir.path().join("snapshot.txt"),
        "# shipped\nsnap0.example.com\nsnap1.example.com\n",
    )
    .unwrap();
    let url = format!("http://{closed}/feed.txt");
    let text = feed_config(&h, &url, "snapshot = \"snapshot.txt\"", "");
    let path = write_config(h.dir.path(), &text);
    // (`serve` creates the admin API's runtime list; `check` before any serve wants it.)
    std::fs::write(h.dir.path().join("runtime-list.txt"), "").unwrap();
    let (code, out) = check(&path);
    assert_eq!(code, 0, "check reads the snapshot before any serve: {out}");
    assert!(
        out.contains("no download yet, the shipped snapshot is used"),
        "{out}"
    );
    assert!(out.contains("2 rules"), "{out}");

    let d = start(&path).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    assert_eq!(blocked_by(dns, "snap1").await.as_deref(), Some("feed"));
    let s = wait_status(admin, Duration::from_secs(10), |s| {
        s["last_error"].is_string()
    })
    .await;
    assert_eq!(
        (s["source"].as_str(), s["entries"].as_u64()),
        (Some("snapshot"), Some(2)),
        "{s}"
    );
    assert!(
        h.dir.path().join("cache/feed.list").is_file(),
        "the snapshot seeds the cache"
    );
    assert_eq!(blocked_by(dns, "snap0").await.as_deref(), Some("feed"));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_error_page_is_rejected_and_cannot_be_accepted() {
    let h = Hierarchy::start("").await;
    let feed = FeedServer::start(list(&["a0", "a1"], "v1")).await;
    let d = start(&write_config(
        h.dir.path(),
        &feed_config(&h, &feed.url(), "", ""),
    ))
    .await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    wait_status(admin, Duration::from_secs(10), |s| {
        s["source"] == "download"
    })
    .await;

    feed.set(Reply::Html);
    let out = refresh(admin).await;
    assert_eq!(
        (out["result"].as_str(), out["kind"].as_str()),
        (Some("rejected"), Some("html")),
        "{out}"
    );
    assert_eq!(
        blocked_by(dns, "a0").await.as_deref(),
        Some("feed"),
        "last good copy in force"
    );
    let s = feed_status(admin).await;
    assert_eq!(s["rejected"]["kind"], "html", "{s}");
    assert_eq!(s["entries"], 2);
    let (status, v) = api(admin, "POST", "/api/lists/feed/accept").await;
    assert_eq!(status, 409, "an HTML page never becomes the list: {v}");
    let m = metrics(admin).await;
    assert_eq!(
        sample(
            &m,
            "dnsward_feed_problems_total{list=\"feed\",kind=\"html\"}"
        ),
        1.0,
        "{m}"
    );
    assert_eq!(
        sample(&m, "dnsward_feed_rejected_pending{list=\"feed\"}"),
        1.0,
        "{m}"
    );
    let (status, _) = api(admin, "POST", "/api/lists/nosuch/accept").await;
    assert_eq!(status, 404);
    d.shutdown().await;
    feed.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shrink_guard_rejects_and_accept_puts_the_download_in_force_once() {
    let h = Hierarchy::start("").await;
    let ten = names("a", 10);
    let feed = FeedServer::start(list(&refs(&ten), "v1")).await;
    let path = write_config(h.dir.path(), &feed_config(&h, &feed.url(), "", ""));
    let d = start(&path).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    wait_status(admin, Duration::from_secs(10), |s| s["entries"] == 10).await;

    // 10 -> 2 entries: an 80 % shrink, more than max_shrink (0.5).
    feed.set(list(&["b0", "b1"], "v2"));
    let out = refresh(admin).await;
    assert_eq!(
        (out["result"].as_str(), out["kind"].as_str()),
        (Some("rejected"), Some("shrink")),
        "{out}"
    );
    assert_eq!(out["acceptable"], true);
    assert_eq!(blocked_by(dns, "a7").await.as_deref(), Some("feed"));
    assert_eq!(blocked_by(dns, "b0").await, None);
    let (_, out_check) = check(&path);
    assert!(
        out_check.contains("download rejected (shrink)")
            && out_check.contains("/api/lists/feed/accept"),
        "{out_check}"
    );

    let (status, v) = api(admin, "POST", "/api/lists/feed/accept").await;
    assert_eq!((status, v["entries"].as_u64()), (200, Some(2)), "{v}");
    assert_eq!(
        blocked_by(dns, "b0").await.as_deref(),
        Some("feed"),
        "accepted copy in force"
    );
    assert_eq!(blocked_by(dns, "a7").await, None);
    let (status, _) = api(admin, "POST", "/api/lists/feed/accept").await;
    assert_eq!(status, 409, "accepted once: nothing left to accept");
    let s = feed_status(admin).await;
    assert!(s["rejected"].is_null() && s["entries"] == 2, "{s}");
    // The accepted copy's validators go out next: unchanged feed, 304.
    assert_eq!(refresh(admin).await["result"], "not_modified");
    d.shutdown().await;
    feed.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_feeds_are_bounded_rejected_and_counted_while_the_last_good_copy_protects() {
    let h = Hierarchy::start("").await;
    let feed = FeedServer::start(list(&["a0", "a1", "a2", "a3"], "v1")).await;
    let d = start(&write_config(
        h.dir.path(),
        &feed_config(&h, &feed.url(), "", ""),
    ))
    .await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    wait_status(admin, Duration::from_secs(10), |s| s["entries"] == 4).await;

    let garbage: String = (0..20)
        .map(|i| format!("%%% not a name {i} ???\n"))
        .collect();
    let cases: Vec<(Reply, &str, &str)> = vec![
        (Reply::Hang, "failed", "timeout"),
        (Reply::RedirectLoop, "failed", "redirect"),
        (Reply::Huge, "failed", "too_large"),
        (
            Reply::Raw {
                content_type: "image/png",
                body: b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec(),
            },
            "rejected",
            "content_type",
        ),
        (
            Reply::Raw {
                content_type: "text/plain",
                body: b"a0.example.com\n\0\x01\x02\xff binary".to_vec(),
            },
            "rejected",
            "binary",
        ),
        (
            Reply::Raw {
                content_type: "text/plain",
                body: format!("a0.example.com\n{garbage}").into_bytes(),
            },
            "rejected",
            "bad_lines",
        ),
    ];
    for (reply, result, kind) in cases {
        feed.set(reply);
        let t0 = Instant::now();
        let out = refresh(admin).await;
        let took = t0.elapsed();
        eprintln!("{kind}: {result} in {took:?}");
        assert_eq!(
            (out["result"].as_str(), out["kind"].as_str()),
            (Some(result), Some(kind)),
            "{out}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{kind}: bounded, took {took:?}"
        );
        for n in ["a0", "a3"] {
            assert_eq!(
                blocked_by(dns, n).await.as_deref(),
                Some("feed"),
                "{kind}: last good copy in force"
            );
        }
        let m = metrics(admin).await;
        assert_eq!(
            sample(
                &m,
                &format!("dnsward_feed_problems_total{{list=\"feed\",kind=\"{kind}\"}}")
            ),
            1.0,
            "{kind} counted: {m}"
        );
    }
    let sent = feed.st.huge_bytes_sent.load(Ordering::SeqCst);
    eprintln!("oversized body: {sent} bytes produced by the server before the client hung up");
    assert!(
        sent < 64 << 20,
        "the 2 GB body was cut off early ({sent} bytes produced)"
    );
    let s = feed_status(admin).await;
    assert_eq!(s["entries"], 4, "{s}");
    assert_eq!(s["rejected"]["kind"], "bad_lines", "{s}");
    d.shutdown().await;
    feed.task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_feed_is_verified_against_the_public_roots() {
    let h = Hierarchy::start("").await;
    // A certificate from a CA of the test's own: rustls (with the public web roots) refuses it.
    let ca = common::tls::TestCa::new(h.dir.path());
    let (cert, key) = ca.issue(h.dir.path(), "feed", &["127.0.0.1"]);
    let feed = FeedServer::start_tls(list(&["a0"], "v1"), &cert, &key).await;
    std::fs::write(h.dir.path().join("snapshot.txt"), "snap0.example.com\n").unwrap();
    let text = feed_config(&h, &feed.https_url(), "snapshot = \"snapshot.txt\"", "");
    let d = start(&write_config(h.dir.path(), &text)).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    let out = refresh(admin).await;
    assert_eq!(out["result"], "failed", "{out}");
    let error = out["error"].as_str().unwrap().to_ascii_lowercase();
    assert!(
        error.contains("certificate") || error.contains("issuer"),
        "{out}"
    );
    assert_eq!(
        blocked_by(dns, "snap0").await.as_deref(),
        Some("feed"),
        "the snapshot stays in force"
    );
    assert_eq!(
        blocked_by(dns, "a0").await,
        None,
        "nothing from the untrusted server"
    );
    assert!(feed.hits() == 0, "the handshake failed before any request");
    d.shutdown().await;
    feed.task.abort();
}

/// The shipped config.toml on a machine without Internet: the feeds cannot be fetched, their
/// shipped snapshots protect, DNS serves. (URLs are pointed at a closed loopback port and the
/// listeners at port 0, so the test reaches nothing outside this machine.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_protects_from_its_snapshots_without_internet() {
    init_logging();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo.join("config.toml")).unwrap();
    let mut doc: toml_edit::DocumentMut = text.parse().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    doc["server"]["listen"] = toml_edit::value(toml_edit::Array::from_iter(["127.0.0.1:0"]));
    doc["resolver"]["mode"] = toml_edit::value("forward");
    doc["resolver"]["forwarders"] =
        toml_edit::value(toml_edit::Array::from_iter([closed.to_string()]));
    doc["blockpage"]["listen"] = toml_edit::value(toml_edit::Array::from_iter(["127.0.0.1:0"]));
    doc["admin"]["listen"] = toml_edit::value("127.0.0.1:0");
    let feeds_seen = {
        let lists = doc["lists"].as_array_of_tables_mut().unwrap();
        let mut n = 0;
        for l in lists.iter_mut() {
            for key in ["path", "snapshot"] {
                if let Some(p) = l.get(key).and_then(|v| v.as_str()).map(str::to_string) {
                    l[key] = toml_edit::value(repo.join(p).display().to_string());
                }
            }
            if l.contains_key("url") {
                l["url"] = toml_edit::value(format!("http://{closed}/feed"));
                n += 1;
            }
        }
        n
    };
    assert_eq!(feeds_seen, 2, "the shipped config subscribes to two feeds");
    doc["feeds"]["cache_dir"] = toml_edit::value(dir.path().join("cache").display().to_string());
    doc["feeds"]["retries"] = toml_edit::value(0);
    doc["querylog"]["sqlite"] = toml_edit::value(dir.path().join("q.db").display().to_string());
    let path = write_config(dir.path(), &doc.to_string());

    let d = start(&path).await;
    let dns = d.addrs()[0];
    // Real entries of each shipped snapshot.
    assert_eq!(
        blocked_by_fqdn(dns, "cnc.iotbotnet.xyz.").await.as_deref(),
        Some("urlhaus")
    );
    assert_eq!(
        blocked_by_fqdn(dns, "www.0-facebook.com.").await.as_deref(),
        Some("phishing-database")
    );
    assert_eq!(
        blocked_by_fqdn(dns, "10xcryptotrade.uk.").await.as_deref(),
        Some("threat")
    );
    d.shutdown().await;
}

/// The list that blocked `fqdn`, from the SOA dnsward puts in a blocked answer.
async fn blocked_by_fqdn(dns: SocketAddr, fqdn: &str) -> Option<String> {
    let m: Message = ask(dns, fqdn, RecordType::A).await;
    m.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(s) => s
            .mname
            .to_ascii()
            .strip_suffix(".policy.dnsward.")
            .map(str::to_string),
        _ => None,
    })
}
