//! The analyst dashboard's data routes (`/api/ui/`) over real HTTP: every route refuses a
//! missing or wrong token, the page at `/` is served with its strict Content-Security-Policy,
//! the routes answer from the SQLite store, and SQLite and ClickHouse give the same JSON for
//! the same events (a ClickHouse of our own on loopback, as tests/clickhouse.rs starts it).

#[allow(dead_code)]
mod clickhouse_support;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use clickhouse_support::ClickHouse;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const TOKEN: &str = "dashboard-token-0123456789abcdef";
const FINANCE: &str = "127.0.0.2";

/// Lists, a named client in a group, the admin API with a token, `[querylog]` with `querylog`.
fn config(h: &Hierarchy, querylog: &str) -> String {
    let dir = h.dir.path();
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    std::fs::write(dir.join("gone.txt"), "old.example.com\n").unwrap();
    std::fs::write(dir.join("quiet.txt"), "never-asked.example.net\n").unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    h.config_text("")
        .replacen("[server]\n", "[server]\nname = \"edge-1\"\n", 1)
        + &format!(
            "[policy]\ncontact = \"hotline\"\nwatch = false\n\
             [[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"threat.txt\"\n\
             [[lists]]\nname = \"gone\"\ncategory = \"abandoned\"\npath = \"gone.txt\"\n\
             [[lists]]\nname = \"quiet\"\ncategory = \"threat\"\npath = \"quiet.txt\"\n\
             [[clients]]\nname = \"Finance PC-17\"\ncidr = \"{FINANCE}\"\ngroup = \"finance\"\n\
             [[groups]]\nname = \"finance\"\nlists = [\"feed\", \"gone\", \"quiet\"]\n\
             [querylog]\n{querylog}\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime.txt\"\n"
        )
}

/// Blocked and allowed queries from two clients: 127.0.0.1 (unnamed) and the named finance PC.
async fn traffic(dns: SocketAddr) {
    use ResponseCode::*;
    for (from, name, t, want) in [
        ("127.0.0.1", "www.example.com.", RecordType::A, NoError),
        ("127.0.0.1", "www.example.com.", RecordType::A, NoError),
        ("127.0.0.1", "evil.example.com.", RecordType::A, NXDomain),
        (FINANCE, "x.evil.example.com.", RecordType::AAAA, NXDomain),
        (FINANCE, "x.evil.example.com.", RecordType::AAAA, NXDomain),
        (FINANCE, "x.evil.example.com.", RecordType::A, NXDomain),
        (FINANCE, "old.example.com.", RecordType::A, NXDomain),
        (FINANCE, "www.example.com.", RecordType::A, NoError),
    ] {
        assert_eq!(rcode_from(from, dns, name, t).await, want, "{from} {name}");
    }
}

async fn get_json(admin: SocketAddr, path: &str) -> Value {
    let (status, body) = http(admin, "GET", path, Some(TOKEN), None).await;
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// Wait (bounded) until `path`'s search finds `n` rows.
async fn rows_visible(admin: SocketAddr, path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The store is created by the sink once it starts: until then the route says so (500).
        let (status, body) = http(admin, "GET", path, Some(TOKEN), None).await;
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let got = if status == 200 {
            v["rows"].as_array().map_or(0, |r| r.len())
        } else {
            0
        };
        if got >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path}: {got} of {n} rows: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every data route of the dashboard, with a body for the POSTs.
const ROUTES: &[(&str, &str, Option<&str>)] = &[
    ("GET", "/api/ui/overview", None),
    ("GET", "/api/ui/overview?since=24h&group=finance", None),
    ("GET", "/api/ui/top?since=1h", None),
    ("GET", "/api/ui/clients?since=1h&min_blocked=1", None),
    ("GET", "/api/ui/client?client=127.0.0.2", None),
    ("GET", "/api/ui/domain?name=x.evil.example.com", None),
    ("GET", "/api/ui/search?action=blocked", None),
    ("GET", "/api/ui/search.csv?action=blocked", None),
    ("GET", "/api/ui/tail", None),
    ("GET", "/api/ui/actions", None),
    (
        "POST",
        "/api/ui/actions",
        Some(r#"{"kind":"flush","name":"www.example.com","who":"tester","why":"token test"}"#),
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_route_refuses_a_missing_or_wrong_token() {
    let h = Hierarchy::start("").await;
    let d = start_dnsward_text(&config(&h, "sqlite = \"log.db\""), h.dir.path()).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    traffic(dns).await;
    rows_visible(admin, "/api/ui/search?action=blocked", 5).await;
    for (method, path, body) in ROUTES {
        let (status, text) = http(admin, method, path, None, *body).await;
        assert_eq!(status, 401, "{method} {path} without a token: {text}");
        let (status, text) = http(admin, method, path, Some("wrong-token"), *body).await;
        assert_eq!(status, 401, "{method} {path} with a wrong token: {text}");
        let prefix = &TOKEN[..TOKEN.len() - 1];
        let (status, _) = http(admin, method, path, Some(prefix), *body).await;
        assert_eq!(status, 401, "{method} {path} with a token's prefix");
        if *path == "/api/ui/tail" {
            continue; // a stream: read in its own test below
        }
        let (status, text) = http(admin, method, path, Some(TOKEN), *body).await;
        assert_eq!(status, 200, "{method} {path} with the token: {text}");
    }
    // Nothing was done without the token: only the one flush above is recorded.
    let actions = get_json(admin, "/api/ui/actions").await;
    assert_eq!(actions.as_array().unwrap().len(), 1, "{actions}");
    assert_eq!(actions[0]["who"], "tester");
    assert_eq!(actions[0]["why"], "token test");

    // The page itself carries no data and needs no token; it is served with a strict CSP.
    let page = raw_get(admin, "/").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    let csp = header_value(&page, "content-security-policy").expect("a CSP header");
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    assert!(!page.contains("<script>"), "no inline script");
    let js = raw_get(admin, "/ui/app.js").await;
    assert!(js.starts_with("HTTP/1.1 200"));
    assert!(
        header_value(&js, "content-type")
            .unwrap()
            .contains("javascript"),
        "{js}"
    );
    assert!(raw_get(admin, "/ui/nope.js")
        .await
        .starts_with("HTTP/1.1 404"));
    // Nothing is fetched from elsewhere, and no text is ever parsed as markup or code.
    for asset in [
        "/",
        "/ui/app.js",
        "/ui/i18n.js",
        "/ui/chart.js",
        "/ui/style.css",
    ] {
        let text = raw_get(admin, asset).await;
        let body = text
            .split_once("\r\n\r\n")
            .unwrap()
            .1
            .replace("http://www.w3.org/2000/svg", "");
        for bad in [
            "http:",
            "https:",
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "eval(",
            "document.write",
            "new Function",
            "style=\"",
        ] {
            assert!(!body.contains(bad), "{asset} contains {bad}");
        }
    }
    d.shutdown().await;
}

async fn raw_get(addr: SocketAddr, path: &str) -> String {
    raw_http(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    )
    .await
}

fn header_value(resp: &str, name: &str) -> Option<String> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_routes_answer_from_the_sqlite_store() {
    let h = Hierarchy::start("").await;
    let d = start_dnsward_text(&config(&h, "sqlite = \"log.db\""), h.dir.path()).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    let before = dnsward::timefmt::format_ts(dnsward::timefmt::now_us() - 1_000_000, 0);
    traffic(dns).await;
    rows_visible(admin, "/api/ui/search", 8).await;
    // A window that ends before the traffic holds none of it, in every view.
    let past = format!("since=2h&until={before}");
    let t = get_json(admin, &format!("/api/ui/top?{past}")).await;
    assert_eq!(
        (t["queries"].as_u64(), t["blocked"].as_u64()),
        (Some(0), Some(0)),
        "{t}"
    );
    assert_eq!(t["domains"], serde_json::json!([]));
    let c = get_json(admin, &format!("/api/ui/clients?{past}&min_blocked=1")).await;
    assert_eq!(c, serde_json::json!([]));
    let s = get_json(admin, &format!("/api/ui/search?{past}")).await;
    assert_eq!(s["rows"], serde_json::json!([]));

    let o = get_json(admin, "/api/ui/overview?since=1h").await;
    assert_eq!(o["timeline"]["queries"], 8, "{o}");
    assert_eq!(o["timeline"]["blocked"], 5, "{o}");
    let points = o["timeline"]["points"].as_array().unwrap();
    assert!(points.iter().any(|p| p["blocked"].as_u64() > Some(0)));
    assert_eq!(o["timeline"]["by_category"][0]["key"], "threat");
    assert_eq!(o["timeline"]["by_category"][0]["total"], 4);
    // Blocks per list, a configured list that never blocked included (count 0).
    let lists = o["lists"].as_array().unwrap();
    let list = |n: &str| lists.iter().find(|l| l["list"] == n).cloned().unwrap();
    assert_eq!(list("feed")["blocked"], 4);
    assert_eq!(list("gone")["blocked"], 1);
    assert_eq!(list("quiet")["blocked"], 0);
    assert_eq!(list("quiet")["configured"], true);
    assert!(o["live"]["queries_total"].as_u64().unwrap() >= 8, "{o}");
    assert!(o["live"]["cache_hit_ratio"].as_f64().unwrap() > 0.0);

    let top = get_json(admin, "/api/ui/top?since=1h").await;
    assert_eq!(top["domains"][0]["qname"], "x.evil.example.com");
    assert_eq!(top["clients"][0]["client"], FINANCE);
    assert_eq!(top["clients"][0]["client_name"], "Finance PC-17");

    let sus = get_json(admin, "/api/ui/clients?since=1h&min_blocked=2").await;
    assert_eq!(sus[0]["client"], FINANCE, "{sus}");

    let c = get_json(admin, "/api/ui/client?client=127.0.0.2&since=1h").await;
    assert_eq!(c["client_name"], "Finance PC-17");
    assert_eq!(c["group"], "finance");
    assert_eq!(
        (c["queries"].as_u64(), c["blocked"].as_u64()),
        (Some(5), Some(4))
    );
    assert_eq!(c["top_blocked"][0]["qname"], "x.evil.example.com");
    assert_eq!(c["top_blocked"][0]["queries"], 3);
    assert_eq!(c["top_allowed"][0]["qname"], "www.example.com");

    let dm = get_json(admin, "/api/ui/domain?name=x.evil.example.com.&since=1h").await;
    assert_eq!(dm["queries"], 3);
    assert_eq!(dm["clients"][0]["client"], FINANCE);
    assert_eq!(dm["logged_list"], "feed");
    assert_eq!(dm["explain"]["blocked"], true, "{dm}");
    assert_eq!(dm["explain"]["rules"][0]["list"], "feed");
    assert_eq!(dm["explain"]["rules"][0]["rule"], "evil.example.com");

    // Search: by suffix and action, by type, paging, and the CSV of exactly that page.
    let s = get_json(
        admin,
        "/api/ui/search?name=evil.example.com&suffix=1&action=blocked&limit=2",
    )
    .await;
    assert_eq!(s["rows"].as_array().unwrap().len(), 2);
    assert_eq!(s["more"], true);
    let next = get_json(
        admin,
        "/api/ui/search?name=evil.example.com&suffix=1&action=blocked&limit=2&offset=2",
    )
    .await;
    assert_eq!(next["rows"].as_array().unwrap().len(), 2);
    assert!(s["rows"][0]["ts_us"].as_i64() > next["rows"][0]["ts_us"].as_i64());
    let aaaa = get_json(admin, "/api/ui/search?qtype=aaaa&client=127.0.0.2").await;
    assert_eq!(aaaa["rows"].as_array().unwrap().len(), 2);
    let (status, csv) = http(
        admin,
        "GET",
        "/api/ui/search.csv?name=evil.example.com&suffix=1&action=blocked&limit=2",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("time,ts_us,client"));
    assert!(
        lines[1].contains(&s["rows"][0]["ts_us"].to_string()),
        "{csv}"
    );
    // Bad input is refused, not guessed at.
    for bad in [
        "/api/ui/search?action=maybe",
        "/api/ui/overview?since=nonsense",
        "/api/ui/overview?since=90d",
        "/api/ui/top?source=mysql",
    ] {
        let (status, _) = http(admin, "GET", bad, Some(TOKEN), None).await;
        assert_eq!(status, 400, "{bad}");
    }

    // Actions go through the admin API and are recorded with who and why.
    let (status, body) = http(
        admin,
        "POST",
        "/api/ui/actions",
        Some(TOKEN),
        Some(r#"{"kind":"block","name":"fresh.example.com","who":"Lan (on duty)","why":"phishing report","reference":"CV-123","expires":"2h"}"#),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        rcode(dns, "fresh.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    let (status, body) = http(
        admin,
        "POST",
        "/api/ui/actions",
        Some(TOKEN),
        Some(r#"{"kind":"block","name":"x.example.com","who":"  "}"#),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let rt = get_json(admin, "/api/lists/runtime").await;
    let entry = &rt["entries"][0];
    assert_eq!(entry["added_by"], "Lan (on duty)");
    assert_eq!(entry["reason"], "phishing report");
    assert_eq!(entry["reference"], "CV-123");
    let (status, _) = http(
        admin,
        "POST",
        "/api/ui/actions",
        Some(TOKEN),
        Some(r#"{"kind":"unblock","name":"fresh.example.com","who":"Lan (on duty)","why":"false positive"}"#),
    )
    .await;
    assert_eq!(status, 200);
    let acts = get_json(admin, "/api/ui/actions").await;
    assert_eq!(acts[0]["kind"], "unblock");
    assert_eq!(acts[1]["kind"], "block");
    assert_eq!(acts[1]["status"], 201);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_tail_streams_blocked_queries_as_server_sent_events() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Hierarchy::start("").await;
    let d = start_dnsward_text(&config(&h, "sqlite = \"log.db\""), h.dir.path()).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(
        format!("GET /api/ui/tail HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    // After the stream has started: a blocked query shows up in a later event.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rcode_from(FINANCE, dns, "evil.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seen = String::new();
    let mut buf = vec![0u8; 8192];
    while !seen.contains("\"qname\":\"evil.example.com\"") {
        assert!(
            Instant::now() < deadline,
            "no event with the blocked query: {seen}"
        );
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("the stream sends within 5 s")
            .unwrap();
        assert!(n > 0, "stream closed: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("text/event-stream"), "{seen}");
    assert!(seen.contains("event: rows"), "{seen}");
    drop(s);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_clickhouse_give_the_same_json_for_the_same_events() {
    let Some(ch) = ClickHouse::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let text = config(
        &h,
        &format!(
            "sqlite = \"log.db\"\nclickhouse = \"{}\"\nclickhouse_database = \"fleet\"\nclickhouse_table = \"q\"\n",
            ch.url()
        ),
    );
    let cfg = dir.join("dash-ch.toml");
    std::fs::write(&cfg, &text).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["logs", "--config"])
        .arg(&cfg)
        .arg("init-clickhouse")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = start_dnsward_text(&text, dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    let since = dnsward::timefmt::format_ts(dnsward::timefmt::now_us() - 600_000_000, 0);
    traffic(dns).await;
    let until = dnsward::timefmt::format_ts(dnsward::timefmt::now_us() + 60_000_000, 0);
    rows_visible(admin, "/api/ui/search?source=sqlite", 8).await;
    rows_visible(admin, "/api/ui/search?source=clickhouse", 8).await;
    let w = format!("since={since}&until={until}");
    for path in [
        format!("/api/ui/top?{w}"),
        format!("/api/ui/top?{w}&group=finance&limit=1"),
        format!("/api/ui/clients?{w}&min_blocked=1"),
        format!("/api/ui/clients?{w}&min_blocked=1&category=threat"),
        format!("/api/ui/client?{w}&client={FINANCE}"),
        format!("/api/ui/client?{w}&client=127.0.0.1"),
        format!("/api/ui/domain?{w}&name=x.evil.example.com"),
        format!("/api/ui/domain?{w}&name=www.example.com"),
        format!("/api/ui/search?{w}"),
        format!("/api/ui/search?{w}&name=example.com&suffix=1&action=blocked&limit=3&offset=1"),
        format!("/api/ui/search?{w}&qtype=AAAA&group=finance&category=threat&list=feed"),
        format!("/api/ui/search?{w}&client_name=Finance%20PC-17&rcode=NXDOMAIN"),
        format!("/api/ui/search.csv?{w}&client={FINANCE}"),
    ] {
        let from = |source: &str| {
            let p = format!("{path}&source={source}");
            async move {
                let (status, body) = http(admin, "GET", &p, Some(TOKEN), None).await;
                assert_eq!(status, 200, "{p}: {body}");
                body
            }
        };
        let (a, b) = (from("sqlite").await, from("clickhouse").await);
        assert_eq!(a, b, "{path}");
        assert!(a.len() > 40, "{path}: {a}");
    }
    // The overview: the same timeline, lists and splits (the live figures are the resolver's).
    let o = |source: &str| {
        let p = format!("/api/ui/overview?{w}&source={source}");
        async move { get_json(admin, &p).await }
    };
    let (a, b) = (o("sqlite").await, o("clickhouse").await);
    assert_eq!(a["timeline"], b["timeline"]);
    assert_eq!(a["lists"], b["lists"]);
    assert_eq!(a["timeline"]["blocked"], 5, "{a}");
    let (a, b) = (
        get_json(
            admin,
            &format!("/api/ui/overview?{w}&group=finance&source=sqlite"),
        )
        .await,
        get_json(
            admin,
            &format!("/api/ui/overview?{w}&group=finance&source=clickhouse"),
        )
        .await,
    );
    assert_eq!(a["timeline"], b["timeline"]);
    assert_eq!(a["timeline"]["queries"], 5);
    // ClickHouse's timeline and resolvers come from the per-minute rollup; a table without it
    // gives the same from the rows.
    let (with_rollup, sqlite) = (o("clickhouse").await, o("sqlite").await);
    ch.query("DROP TABLE fleet.q_minute_actions");
    let without = o("clickhouse").await;
    for key in ["timeline", "resolvers"] {
        assert_eq!(with_rollup[key], without[key], "{key}");
        assert_eq!(sqlite[key], without[key], "{key}");
    }
    d.shutdown().await;
    drop(ch);
}
