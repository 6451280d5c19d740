//! Feed sanity guards (issue 13) through the real server code: a feed on loopback that turns
//! into an HTML error page, shrinks, hangs, redirects forever, sends 2 GB, another content
//! type, binary or garbage — each bounded, rejected or abandoned, counted, shown, while the
//! last good copy keeps blocking; `POST /api/lists/NAME/accept` for a real shrink.

mod common;
mod feed_server;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;
use feed_server::*;

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
