//! Remote lists (issue 13): a feed served by an HTTP server on loopback inside the test, dnsward
//! started through `Instance` (the code `serve` runs), queried over UDP, driven and inspected
//! through the admin API (`/api/lists/NAME/refresh`, `/accept`, `/api/stats`, `/metrics`) and
//! `dnsward check`: feed changes on the timer, 304s, outage, restart during an outage, the
//! shipped snapshot and the shipped config without Internet, https verification. The guards
//! (HTML, shrink and accept, hostile servers) are in tests/feeds_guards.rs.

mod common;
mod feed_server;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use feed_server::*;
use hickory_proto::rr::RecordType;

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
    // Meanwhile a client keeps asking: every query is answered across the reload (`ask`
    // fails the test on a query without an answer within 5 s).
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let asker = {
        let stop = std::sync::Arc::clone(&stop);
        tokio::spawn(async move {
            let mut answered = 0u32;
            while !stop.load(Ordering::SeqCst) && answered < 20_000 {
                ask(dns, "a2.example.com.", RecordType::A).await;
                answered += 1;
            }
            answered
        })
    };
    feed.set(list(&["b0", "b1", "b2"], "v2"));
    wait_blocked(dns, "b1", Some("feed"), Duration::from_secs(25)).await;
    stop.store(true, Ordering::SeqCst);
    let answered = asker
        .await
        .expect("every query during the feed reload was answered");
    assert!(answered > 0);
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
    // Before any serve, a feed without a snapshot has no copy: a warning, not an error.
    std::fs::write(h.dir.path().join("runtime-list.txt"), "").unwrap();
    let (code, out) = check(&path);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("has no copy yet") && out.contains("no download yet, the list is empty"),
        "{out}"
    );
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
