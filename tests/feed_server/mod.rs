//! A feed server for tests/feeds.rs: axum on loopback, answering what the test sets next (a
//! list with an ETag and 304s, an HTML error page, a status, a hang, a redirect loop, 2 GB of
//! lines, any content type), and counting what it was asked; and the helpers the feed tests
//! share (config, DNS and admin API checks, `dnsward check`).

#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hickory_proto::rr::RecordType;
use serde_json::Value;

use crate::common::*;

/// What the feed server answers next.
#[derive(Clone)]
pub enum Reply {
    /// A list with its ETag; a request carrying that ETag gets 304.
    List {
        body: String,
        etag: String,
    },
    /// A 200 error page, as a CDN or captive portal sends.
    Html,
    Status(u16),
    /// Answers after 30 s (the test's timeout is 1 s).
    Hang,
    /// 302 to itself, forever.
    RedirectLoop,
    /// 2 GB of list-looking lines, streamed.
    Huge,
    Raw {
        content_type: &'static str,
        body: Vec<u8>,
    },
}

#[derive(Clone)]
pub struct FeedServerState {
    reply: Arc<Mutex<Reply>>,
    pub hits: Arc<AtomicUsize>,
    pub not_modified: Arc<AtomicUsize>,
    pub huge_bytes_sent: Arc<AtomicUsize>,
}

impl FeedServerState {
    fn new(reply: Reply) -> FeedServerState {
        FeedServerState {
            reply: Arc::new(Mutex::new(reply)),
            hits: Arc::default(),
            not_modified: Arc::default(),
            huge_bytes_sent: Arc::default(),
        }
    }
}

pub struct FeedServer {
    pub addr: SocketAddr,
    pub st: FeedServerState,
    pub task: tokio::task::JoinHandle<()>,
}

impl FeedServer {
    pub async fn start(reply: Reply) -> FeedServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::on(listener, reply)
    }

    fn on(listener: tokio::net::TcpListener, reply: Reply) -> FeedServer {
        let addr = listener.local_addr().unwrap();
        let st = FeedServerState::new(reply);
        let app = Self::router(st.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FeedServer { addr, st, task }
    }

    fn router(st: FeedServerState) -> axum::Router {
        axum::Router::new()
            .route("/feed.txt", axum::routing::get(serve_feed))
            .with_state(st)
    }

    /// The same server over TLS, with the certificate and key (PEM) given.
    pub async fn start_tls(
        reply: Reply,
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> FeedServer {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
            .await
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let st = FeedServerState::new(reply);
        let app = Self::router(st.clone());
        let server = axum_server::from_tcp_rustls(listener, tls).unwrap();
        let task = tokio::spawn(async move {
            let _ = server.serve(app.into_make_service()).await;
        });
        FeedServer { addr, st, task }
    }

    pub fn https_url(&self) -> String {
        format!("https://{}/feed.txt", self.addr)
    }

    pub fn url(&self) -> String {
        format!("http://{}/feed.txt", self.addr)
    }

    pub fn set(&self, reply: Reply) {
        *self.st.reply.lock().unwrap() = reply;
    }

    pub fn hits(&self) -> usize {
        self.st.hits.load(Ordering::SeqCst)
    }
}

async fn serve_feed(State(st): State<FeedServerState>, headers: HeaderMap) -> Response {
    let hit = st.hits.fetch_add(1, Ordering::SeqCst);
    let reply = st.reply.lock().unwrap().clone();
    match reply {
        Reply::List { body, etag } => {
            if headers
                .get(header::IF_NONE_MATCH)
                .is_some_and(|v| v.as_bytes() == etag.as_bytes())
            {
                st.not_modified.fetch_add(1, Ordering::SeqCst);
                return StatusCode::NOT_MODIFIED.into_response();
            }
            (
                [
                    (header::CONTENT_TYPE, "text/plain; charset=utf-8".to_string()),
                    (header::ETAG, etag),
                ],
                body,
            )
                .into_response()
        }
        Reply::Html => (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1></body></html>\n",
        )
            .into_response(),
        Reply::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late.example.com\n".into_response()
        }
        Reply::RedirectLoop => (
            StatusCode::FOUND,
            [(header::LOCATION, format!("/feed.txt?hop={hit}"))],
        )
            .into_response(),
        Reply::Huge => {
            let line = "evil-entry-from-a-runaway-feed.example.com\n";
            let chunk = Bytes::from(line.repeat((1 << 20) / line.len()));
            let sent = Arc::clone(&st.huge_bytes_sent);
            // 2 GB in 1 MiB chunks; the stream ends early when the client hangs up.
            let stream = futures_util::stream::iter((0..2048).map(move |_| {
                sent.fetch_add(chunk.len(), Ordering::SeqCst);
                Ok::<_, Infallible>(chunk.clone())
            }));
            ([(header::CONTENT_TYPE, "text/plain")], Body::from_stream(stream)).into_response()
        }
        Reply::Raw { content_type, body } => {
            ([(header::CONTENT_TYPE, content_type)], body).into_response()
        }
    }
}

pub fn list(names: &[&str], etag: &str) -> Reply {
    let body: String = names.iter().map(|n| format!("{n}.example.com\n")).collect();
    Reply::List {
        body: format!("# test feed\n{body}"),
        etag: format!("\"{etag}\""),
    }
}

// --- helpers shared by tests/feeds.rs and tests/feeds_guards.rs ---

pub const TOKEN: &str = "feeds-test-token-0123456789abcdef";

/// `a0` .. `a{n-1}`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

pub fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A dnsward config on the test hierarchy with one feed (and an admin API).
pub fn feed_config(h: &Hierarchy, url: &str, extra_list: &str, extra_feeds: &str) -> String {
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
pub async fn blocked_by(dns: SocketAddr, name: &str) -> Option<String> {
    blocked_by_fqdn(dns, &format!("{name}.example.com.")).await
}

pub async fn api(admin: SocketAddr, method: &str, path: &str) -> (u16, Value) {
    let (status, body) = http(admin, method, path, Some(TOKEN), None).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

pub async fn feed_status(admin: SocketAddr) -> Value {
    let (status, stats) = api(admin, "GET", "/api/stats").await;
    assert_eq!(status, 200, "{stats}");
    stats["feeds"][0].clone()
}

/// Waits (bounded) until the feed's status satisfies `ok`.
pub async fn wait_status(
    admin: SocketAddr,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
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
pub async fn wait_blocked(dns: SocketAddr, name: &str, want: Option<&str>, within: Duration) {
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

pub async fn refresh(admin: SocketAddr) -> Value {
    let (status, v) = api(admin, "POST", "/api/lists/feed/refresh").await;
    assert_eq!(status, 200, "{v}");
    v["outcome"].clone()
}

pub async fn metrics(admin: SocketAddr) -> String {
    let (status, body) = http(admin, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    body
}

pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("feeds.toml");
    std::fs::write(&p, text).unwrap();
    p
}

pub async fn start(path: &Path) -> dnsward::instance::Instance {
    let config = dnsward::config::Config::load(path).unwrap_or_else(|p| panic!("{p:?}"));
    dnsward::instance::Instance::start(&config)
        .await
        .expect("dnsward starts")
}

/// `dnsward check --config PATH`: (exit code, stdout + stderr).
pub fn check(path: &Path) -> (i32, String) {
    let out = dnsward_cmd("check", path, &[]);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// The list that blocked `fqdn`, from the SOA dnsward puts in a blocked answer.
pub async fn blocked_by_fqdn(dns: SocketAddr, fqdn: &str) -> Option<String> {
    blocking_list(&ask(dns, fqdn, RecordType::A).await)
}
