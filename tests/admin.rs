//! Metrics and the admin API over real HTTP: counters move, every route with and without a
//! valid token, runtime entries that take effect at once, expire, and survive a restart.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const TOKEN: &str = "s3cret-token-for-tests-0123456789";

fn admin_config(h: &Hierarchy, with_token: bool) -> String {
    let dir = h.dir.path();
    std::fs::write(dir.join("feed.txt"), "evil.example.com\n").unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let token = if with_token {
        "token_file = \"token\"\n"
    } else {
        ""
    };
    h.config_text("")
        + &format!(
            "[[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"feed.txt\"\n\
             [querylog]\njsonl = \"log.jsonl\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n{token}runtime_list = \"runtime.txt\"\n"
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_with_traffic() {
    let h = Hierarchy::start("").await;
    let d = start_dnsward_text(&admin_config(&h, false), h.dir.path()).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    let (status, body) = http(admin, "GET", "/healthz", None, None).await;
    assert_eq!((status, body.trim()), (200, "ok"));
    let (status, before) = http(admin, "GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    assert!(
        before.contains("# TYPE dnsward_answer_latency_seconds histogram"),
        "{before}"
    );
    assert_eq!(sample(&before, "dnsward_answer_latency_seconds_count"), 0.0);

    ask(dns, "www.example.com.", RecordType::A).await;
    ask(dns, "www.example.com.", RecordType::A).await;
    ask(dns, "evil.example.com.", RecordType::AAAA).await;
    // A query is counted right after its answer is sent, so the client can scrape before the
    // last count lands: wait (bounded) for all three.
    let mut after = String::new();
    for _ in 0..40 {
        after = http(admin, "GET", "/metrics", None, None).await.1;
        if sample(&after, "dnsward_answer_latency_seconds_count") >= 3.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let allowed = "dnsward_queries_total{transport=\"udp\",qtype=\"A\",rcode=\"NOERROR\",action=\"allowed\",category=\"\"}";
    assert_eq!(sample(&after, allowed), 2.0, "{after}");
    let blocked = "dnsward_queries_total{transport=\"udp\",qtype=\"AAAA\",rcode=\"NXDOMAIN\",action=\"blocked\",category=\"threat\"}";
    assert_eq!(sample(&after, blocked), 1.0, "{after}");
    assert_eq!(sample(&after, "dnsward_blocked_total{list=\"feed\"}"), 1.0);
    assert_eq!(sample(&after, "dnsward_cache_hits "), 1.0);
    assert!(sample(&after, "dnsward_cache_entries ") >= 1.0);
    assert_eq!(sample(&after, "dnsward_policy_names "), 1.0);
    assert_eq!(sample(&after, "dnsward_policy_last_reload_ok "), 1.0);
    assert!(sample(&after, "dnsward_upstream_latency_seconds_count") >= 1.0);
    assert_eq!(sample(&after, "dnsward_answer_latency_seconds_count"), 3.0);
    assert!(
        after.contains("dnsward_querylog_written{sink=\"jsonl\"}"),
        "{after}"
    );
    assert!(
        after.contains("dnsward_limited{kind=\"client_rate\"} 0"),
        "{after}"
    );

    // Without a token file the API is off, but metrics answered above.
    let (status, body) = http(admin, "POST", "/api/reload", Some(TOKEN), None).await;
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("admin API is off"));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_needs_the_token() {
    let h = Hierarchy::start("").await;
    let d = start_dnsward_text(&admin_config(&h, true), h.dir.path()).await;
    let admin = d.admin_addr().unwrap();
    let routes = [
        ("POST", "/api/reload", None),
        ("GET", "/api/lists/runtime", None),
        (
            "POST",
            "/api/lists/runtime",
            Some(r#"{"name":"x.example","added_by":"t"}"#),
        ),
        ("DELETE", "/api/lists/runtime/x.example", None),
        ("GET", "/api/explain?name=evil.example.com", None),
        ("POST", "/api/cache/flush", Some("{}")),
        ("GET", "/api/stats", None),
    ];
    for (method, path, body) in routes {
        let (status, text) = http(admin, method, path, None, body).await;
        assert_eq!(status, 401, "{method} {path} without a token: {text}");
        let (status, _) = http(
            admin,
            method,
            path,
            Some("wrong-token-of-the-same-size-0123"),
            body,
        )
        .await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
    for (method, path, body) in routes {
        let (status, text) = http(admin, method, path, Some(TOKEN), body).await;
        assert!(
            status == 200 || status == 201,
            "{method} {path} with the token: {status} {text}"
        );
    }
    let (_, stats) = http(admin, "GET", "/api/stats", Some(TOKEN), None).await;
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["policy"]["names"], 1);
    assert!(stats["cache"]["entries"].is_number());
    assert!(stats["admission"]["refused"].is_number());
    // /metrics and /healthz stay open.
    assert_eq!(http(admin, "GET", "/healthz", None, None).await.0, 200);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_entries_block_at_once_are_traceable_expire_and_survive_a_restart() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let text = admin_config(&h, true);
    let d = start_dnsward_text(&text, dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    assert_eq!(
        answer_strings(&ask(dns, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );

    let body = r#"{"name":"www.example.com","added_by":"provincial SOC","reason":"phishing kit","reference":"CV 1234/STTTT-BCVT"}"#;
    let (status, created) =
        http(admin, "POST", "/api/lists/runtime", Some(TOKEN), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    // Cached before, blocked right after the call returns: no flush needed.
    let m = ask(dns, "www.example.com.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    let (_, explain) = http(
        admin,
        "GET",
        "/api/explain?name=www.example.com",
        Some(TOKEN),
        None,
    )
    .await;
    let explain: Value = serde_json::from_str(&explain).unwrap();
    assert_eq!(explain["blocked"], true);
    assert_eq!(explain["rules"][0]["list"], "runtime");
    assert_eq!(explain["rules"][0]["runtime"]["added_by"], "provincial SOC");
    assert_eq!(
        explain["rules"][0]["runtime"]["reference"],
        "CV 1234/STTTT-BCVT"
    );
    let (_, list) = http(admin, "GET", "/api/lists/runtime", Some(TOKEN), None).await;
    assert!(list.contains("phishing kit"), "{list}");

    // Bad input gets a clear 400.
    let (status, err) = http(
        admin,
        "POST",
        "/api/lists/runtime",
        Some(TOKEN),
        Some(r#"{"name":"bad..name","added_by":"x"}"#),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    let (status, _) = http(
        admin,
        "POST",
        "/api/lists/runtime",
        Some(TOKEN),
        Some("not json"),
    )
    .await;
    assert_eq!(status, 400);

    // An entry that expires on its own.
    let short = r#"{"name":"mail.example.com","added_by":"duty officer","expires":"2s"}"#;
    assert_eq!(
        http(
            admin,
            "POST",
            "/api/lists/runtime",
            Some(TOKEN),
            Some(short)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        rcode(dns, "mail.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );

    // The query log names who added the entry and why.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let log = std::fs::read_to_string(dir.join("log.jsonl")).unwrap();
    assert!(log.contains("runtime: added by provincial SOC"), "{log}");
    assert!(log.contains("CV 1234/STTTT-BCVT"), "{log}");

    let mut expired = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if rcode(dns, "mail.example.com.", RecordType::A).await == ResponseCode::NoError {
            expired = true;
            break;
        }
    }
    assert!(expired, "the expired entry dropped out by itself");

    // A restart keeps the entry.
    d.shutdown().await;
    let d = start_dnsward_text(&text, dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    assert_eq!(
        rcode(dns, "www.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    let (status, _) = http(
        admin,
        "DELETE",
        "/api/lists/runtime/www.example.com",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer_strings(&ask(dns, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    assert_eq!(
        http(
            admin,
            "DELETE",
            "/api/lists/runtime/www.example.com",
            Some(TOKEN),
            None
        )
        .await
        .0,
        404
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_and_cache_flush_routes_act() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let d = start_dnsward_text(&admin_config(&h, true), dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    ask(dns, "www.example.com.", RecordType::A).await;
    ask(dns, "mail.example.com.", RecordType::A).await;
    let misses = |stats: &str| {
        serde_json::from_str::<Value>(stats).unwrap()["cache"]["misses"]
            .as_u64()
            .unwrap()
    };
    let before = misses(&http(admin, "GET", "/api/stats", Some(TOKEN), None).await.1);
    let (status, flushed) = http(
        admin,
        "POST",
        "/api/cache/flush",
        Some(TOKEN),
        Some(r#"{"name":"WWW.example.com"}"#),
    )
    .await;
    assert_eq!(status, 200, "{flushed}");
    assert_eq!(
        serde_json::from_str::<Value>(&flushed).unwrap()["removed"],
        1
    );
    ask(dns, "www.example.com.", RecordType::A).await;
    ask(dns, "mail.example.com.", RecordType::A).await;
    let after = misses(&http(admin, "GET", "/api/stats", Some(TOKEN), None).await.1);
    assert_eq!(after, before + 1, "only the flushed name missed the cache");
    let (_, all) = http(admin, "POST", "/api/cache/flush", Some(TOKEN), None).await;
    assert!(
        serde_json::from_str::<Value>(&all).unwrap()["removed"]
            .as_u64()
            .unwrap()
            >= 2
    );

    std::fs::write(dir.join("feed.txt"), "evil.example.com\nmail.example.com\n").unwrap();
    let (status, report) = http(admin, "POST", "/api/reload", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    let report: Value = serde_json::from_str(&report).unwrap();
    assert_eq!(report["lists"][0]["name"], "feed");
    assert_eq!(report["lists"][0]["entries"], 2);
    assert_eq!(
        rcode(dns, "mail.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_admin_is_served_over_tls_only() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("admin.crt"), cert.cert.pem()).unwrap();
    std::fs::write(dir.join("admin.key"), cert.signing_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    // 0.0.0.0 is not loopback: accepted only with allow_remote and TLS (reached here via 127.0.0.1).
    let text = h.config_text("")
        + "[admin]\nlisten = \"0.0.0.0:0\"\nallow_remote = true\ntls_cert = \"admin.crt\"\ntls_key = \"admin.key\"\ntoken_file = \"token\"\n";
    let d = start_dnsward_text(&text, dir).await;
    let port = d.admin_addr().unwrap().port();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = tokio::time::timeout(Duration::from_secs(3), async {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf).await;
        buf
    })
    .await
    .unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&plain).starts_with("HTTP/1.1 200"),
        "no cleartext service"
    );

    // A TLS client that trusts the certificate gets the API.
    let mut roots = tokio_rustls::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let server_name = tokio_rustls::rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector
        .connect(server_name, tcp)
        .await
        .expect("TLS handshake");
    let req = format!("GET /api/stats HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut resp = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut resp))
        .await
        .unwrap()
        .ok();
    let resp = String::from_utf8_lossy(&resp);
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("\"cache\""), "{resp}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_name_gets_its_real_answer_whatever_a_list_says() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let text = admin_config(&h, true);
    // The list blocks example.com and everything below it.
    std::fs::write(dir.join("feed.txt"), "evil.example.com\nexample.com\n").unwrap();
    let d = start_dnsward_text(&text, dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    let rcode = move |name: &'static str| async move {
        ask(dns, name, RecordType::A).await.metadata.response_code
    };
    assert_eq!(rcode("www.example.com.").await, ResponseCode::NXDomain);

    let body = r#"{"name":"www.example.com","added_by":"Lan (SOC)","reason":"false positive","reference":"ticket 881"}"#;
    let (status, created) = http(admin, "POST", "/api/lists/allow", Some(TOKEN), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    // Allowed before the call returned: the real answer; the rest of the list still blocks.
    assert_eq!(
        answer_strings(&ask(dns, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    assert_eq!(rcode("evil.example.com.").await, ResponseCode::NXDomain);
    let (_, explain) = http(
        admin,
        "GET",
        "/api/explain?name=www.example.com",
        Some(TOKEN),
        None,
    )
    .await;
    let explain: Value = serde_json::from_str(&explain).unwrap();
    assert_eq!(explain["blocked"], false, "{explain}");
    assert!(
        explain["rules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["list"] == "runtime-allow"
                && r["kind"] == "allow"
                && r["runtime"]["added_by"] == "Lan (SOC)"),
        "who allowed it, in explain: {explain}"
    );
    let (_, list) = http(admin, "GET", "/api/lists/allow", Some(TOKEN), None).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["entries"][0]["added_by"], "Lan (SOC)", "{list}");
    assert_eq!(list["entries"][0]["reference"], "ticket 881", "{list}");
    // A reload keeps it; a group is refused (the allow list is for every group); no token: 401.
    assert_eq!(
        http(admin, "POST", "/api/reload", Some(TOKEN), None)
            .await
            .0,
        200
    );
    assert_eq!(
        answer_strings(&ask(dns, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    let scoped = r#"{"name":"mail.example.com","added_by":"x","group":"finance"}"#;
    let (status, err) = http(admin, "POST", "/api/lists/allow", Some(TOKEN), Some(scoped)).await;
    assert_eq!(status, 400, "{err}");
    assert!(err.contains("every group"), "{err}");
    assert_eq!(
        http(admin, "POST", "/api/lists/allow", None, Some(body))
            .await
            .0,
        401
    );

    // From the dashboard: remove the allow (blocked again), allow again, both recorded.
    let act = |kind: &str| {
        format!(
            r#"{{"kind":"{kind}","name":"www.example.com","who":"Minh (on duty)","why":"checked with the owner"}}"#
        )
    };
    let (status, b) = http(
        admin,
        "POST",
        "/api/ui/actions",
        Some(TOKEN),
        Some(&act("allow_remove")),
    )
    .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(rcode("www.example.com.").await, ResponseCode::NXDomain);
    let (status, b) = http(
        admin,
        "POST",
        "/api/ui/actions",
        Some(TOKEN),
        Some(&act("allow")),
    )
    .await;
    assert_eq!(status, 201, "{b}");
    assert_eq!(
        answer_strings(&ask(dns, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    let (_, list) = http(admin, "GET", "/api/lists/allow", Some(TOKEN), None).await;
    assert!(
        list.contains("Minh (on duty)") && list.contains("checked with the owner"),
        "{list}"
    );
    let (_, actions) = http(admin, "GET", "/api/ui/actions", Some(TOKEN), None).await;
    assert!(
        actions.contains("\"allow_remove\"") && actions.contains("\"allow\""),
        "{actions}"
    );

    // A restart keeps it; removing it blocks the name again.
    d.shutdown().await;
    let d = start_dnsward_text(&text, dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    assert_eq!(
        answer_strings(&ask(dns, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    let path = "/api/lists/allow/www.example.com";
    assert_eq!(http(admin, "DELETE", path, Some(TOKEN), None).await.0, 200);
    assert_eq!(
        ask(dns, "www.example.com.", RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(http(admin, "DELETE", path, Some(TOKEN), None).await.0, 404);
    d.shutdown().await;
}
