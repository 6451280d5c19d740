//! Encrypted DNS through real sockets and real clients: DoT and DoH (GET and POST, HTTP/1.1 and
//! HTTP/2) with a throw-away CA, the same block on UDP, TCP, DoT and DoH, certificate reload
//! without dropping a connection, DDR, Structured DNS Errors, bad input and a TLS flood.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::{dot_exchange, https_request, peer_cert, TestCa, SERVER_NAME};
use common::*;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::rdata::svcb::{SvcParamKey, SvcParamValue};
use hickory_proto::rr::{RData, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BLOCKED: &str = "c2.evil.example.com.";
const HOTLINE: &str = "hotline 1900 1234";

struct Setup {
    _h: Hierarchy,
    ca: TestCa,
    d: dnsward::instance::Instance,
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Setup {
    fn udp(&self) -> SocketAddr {
        self.d.addrs()[0]
    }
    fn dot(&self) -> SocketAddr {
        self.d.dot_addrs()[0]
    }
    fn doh(&self) -> SocketAddr {
        self.d.doh_addrs()[0]
    }
}

/// dnsward with DoT and DoH on loopback, a threat list, a JSON-lines query log; `server_extra`
/// goes into `[server]`, `policy_extra` into `[policy]`.
async fn setup(server_extra: &str, policy_extra: &str) -> Setup {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path().to_path_buf();
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.issue(&dir, "server", &[SERVER_NAME, "127.0.0.1"]);
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    let base = h.config_text("");
    let organisation = if policy_extra.contains("organisation") {
        ""
    } else {
        "organisation = \"Example Agency\"\n"
    };
    let text = base.replacen(
        "udp_workers = 1\n",
        &format!(
            "udp_workers = 1\ntls_listen = [\"127.0.0.1:0\"]\nhttps_listen = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n{server_extra}\n",
            cert.display(),
            key.display()
        ),
        1,
    ) + &format!(
        "[policy]\ncontact = \"{HOTLINE}\"\ncontact_uris = [\"tel:+84-1900-1234\", \"mailto:soc@example.gov.vn\"]\n{organisation}{policy_extra}\n\
         [[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"{0}/threat.txt\"\nsde_suberror = 2\n\n[querylog]\njsonl = \"{0}/log.jsonl\"\n",
        dir.display()
    );
    let d = start_dnsward_text(&text, &dir).await;
    Setup {
        _h: h,
        ca,
        d,
        dir,
        cert,
        key,
    }
}

/// What a blocked answer must look like, whatever the transport.
fn block_summary(m: &Message) -> (ResponseCode, usize, Vec<String>, Option<(u16, String)>) {
    let soa = m.authorities.iter().map(|r| match &r.data {
        RData::SOA(s) => s.mname.to_ascii(),
        other => format!("{other:?}"),
    });
    (
        m.metadata.response_code,
        m.answers.len(),
        soa.collect(),
        ede(m),
    )
}

async fn doh_post_h1(ca: &TestCa, addr: SocketAddr, msg: &[u8]) -> (u16, String, Vec<u8>) {
    let head = format!(
        "POST /dns-query HTTP/1.1\r\nHost: {SERVER_NAME}\r\nContent-Type: application/dns-message\r\nAccept: application/dns-message\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        msg.len()
    );
    https_request(ca, addr, &head, msg).await
}

async fn doh_get_h1(ca: &TestCa, addr: SocketAddr, query: &str) -> (u16, String, Vec<u8>) {
    let head = format!("GET /dns-query?{query} HTTP/1.1\r\nHost: {SERVER_NAME}\r\nAccept: application/dns-message\r\nConnection: close\r\n\r\n");
    https_request(ca, addr, &head, b"").await
}

fn b64url(msg: &[u8]) -> String {
    data_encoding::BASE64URL_NOPAD.encode(msg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_and_doh_answer_and_block_exactly_like_udp_and_tcp() {
    let s = setup("", "").await;
    // An allowed name, over each transport, from the Rust clients.
    let q = query_message("www.example.com.", RecordType::A, Some(1232));
    let wire = q.to_vec().unwrap();
    let udp = udp_query(s.udp(), &q).await;
    assert_eq!(answer_strings(&udp), vec!["A 192.0.2.10"]);
    let mut dot = s.ca.connect(s.dot(), &[b"dot"]).await;
    assert_eq!(dot.get_ref().1.alpn_protocol(), Some(&b"dot"[..]));
    let m = Message::from_vec(&dot_exchange(&mut dot, &wire).await).unwrap();
    assert_eq!(
        (m.metadata.id, answer_strings(&m)),
        (q.metadata.id, vec!["A 192.0.2.10".to_string()])
    );
    let (status, headers, body) = doh_post_h1(&s.ca, s.doh(), &wire).await;
    assert_eq!(status, 200, "{headers}");
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("content-type: application/dns-message"),
        "{headers}"
    );
    assert!(
        headers
            .to_ascii_lowercase()
            .contains("cache-control: max-age="),
        "{headers}"
    );
    assert_eq!(
        answer_strings(&Message::from_vec(&body).unwrap()),
        vec!["A 192.0.2.10"]
    );
    let (status, _, body) = doh_get_h1(&s.ca, s.doh(), &format!("dns={}", b64url(&wire))).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer_strings(&Message::from_vec(&body).unwrap()),
        vec!["A 192.0.2.10"]
    );

    // The blocked name: identical answers (RCODE, SOA naming the list, EDE code and text).
    let q = query_message(BLOCKED, RecordType::A, Some(1232));
    let wire = q.to_vec().unwrap();
    let over_udp = block_summary(&udp_query(s.udp(), &q).await);
    assert_eq!(over_udp.0, ResponseCode::NXDomain);
    assert_eq!(over_udp.2, vec!["threats.policy.dnsward.".to_string()]);
    let (code, text) = over_udp.3.clone().expect("EDE over UDP");
    assert_eq!(code, 15);
    assert!(text.contains("threats") && text.contains(HOTLINE), "{text}");
    let over_tcp = block_summary(&tcp_query(s.udp(), &q).await);
    let over_dot = block_summary(&Message::from_vec(&dot_exchange(&mut dot, &wire).await).unwrap());
    let over_doh_post =
        block_summary(&Message::from_vec(&doh_post_h1(&s.ca, s.doh(), &wire).await.2).unwrap());
    let over_doh_get = block_summary(
        &Message::from_vec(
            &doh_get_h1(&s.ca, s.doh(), &format!("dns={}", b64url(&wire)))
                .await
                .2,
        )
        .unwrap(),
    );
    assert_eq!(over_tcp, over_udp, "tcp");
    assert_eq!(over_dot, over_udp, "dot");
    assert_eq!(over_doh_post, over_udp, "doh post");
    assert_eq!(over_doh_get, over_udp, "doh get");

    // The transports reach the query log and the metrics under their own names.
    let log = s.dir.join("log.jsonl");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let blocked_by: Vec<&str> = ["udp", "tcp", "dot", "doh"]
            .into_iter()
            .filter(|t| {
                text.lines().any(|l| {
                    l.contains(&format!("\"transport\":\"{t}\""))
                        && l.contains("\"action\":\"blocked\"")
                })
            })
            .collect();
        if blocked_by.len() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "blocked events in the log by transport: {blocked_by:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let m = s.d.engine.recorder.metrics.encode();
    assert!(
        m.contains("transport=\"dot\"") && m.contains("transport=\"doh\""),
        "{m}"
    );
}

/// kdig output (stdout and stderr) for one query.
/// Many queries written at once on one DoT connection: the answers, written back together
/// as they come ready, are each framed whole and each answers its own query.
#[tokio::test]
async fn pipelined_dot_queries_are_each_answered_in_their_own_frame() {
    let s = setup("", "").await;
    let mut dot = s.ca.connect(s.dot(), &[b"dot"]).await;
    const QUERIES: u16 = 300;
    let mut burst = Vec::new();
    for i in 0..QUERIES {
        // Allowed and blocked names alternate, so answers of two shapes and sizes interleave.
        let name = if i % 2 == 0 {
            "www.example.com."
        } else {
            BLOCKED
        };
        let mut q = query_message(name, RecordType::A, Some(1232));
        q.metadata.id = 1000 + i;
        let wire = q.to_vec().unwrap();
        burst.extend_from_slice(&(wire.len() as u16).to_be_bytes());
        burst.extend_from_slice(&wire);
    }
    dot.write_all(&burst).await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        for _ in 0..QUERIES {
            let mut len = [0u8; 2];
            dot.read_exact(&mut len).await.unwrap();
            let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
            dot.read_exact(&mut buf).await.unwrap();
            let m = Message::from_vec(&buf).expect("a whole DNS message in each frame");
            seen.insert(
                m.metadata.id,
                (m.metadata.response_code, answer_strings(&m)),
            );
        }
    })
    .await
    .expect("every pipelined DoT answer within 20 s");
    assert_eq!(seen.len(), QUERIES as usize, "one answer per query id");
    for (id, (rcode, answers)) in &seen {
        if (id - 1000) % 2 == 0 {
            assert_eq!(answers, &vec!["A 192.0.2.10".to_string()], "id {id}");
        } else {
            assert_eq!(
                *rcode,
                ResponseCode::NXDomain,
                "id {id} is the blocked name"
            );
        }
    }
}

fn kdig(args: &[&str]) -> String {
    let out = Command::new("kdig").args(args).output().expect("kdig runs");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kdig_over_tls_and_https_gets_answers_and_blocks() {
    if !common::tools::require_tool("kdig", "knot-dnsutils") {
        return;
    }
    let s = setup("", "").await;
    let ca = format!("+tls-ca={}", s.ca.ca_pem.display());
    let host = format!("+tls-hostname={SERVER_NAME}");
    let (dot_port, doh_port) = (s.dot().port().to_string(), s.doh().port().to_string());
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        kdig(&args)
    };
    for (mode, port) in [
        ("+tls", &dot_port),
        ("+https", &doh_port),
        ("+https-get", &doh_port),
    ] {
        let base = |name: &str| {
            vec![
                "@127.0.0.1".to_string(),
                "-p".into(),
                port.clone(),
                mode.into(),
                ca.clone(),
                host.clone(),
                "+timeout=5".into(),
                "+retry=0".into(),
                name.into(),
                "A".into(),
            ]
        };
        let out = run(base("www.example.com."));
        assert!(
            out.contains("NOERROR") && out.contains("192.0.2.10"),
            "{mode}: {out}"
        );
        let out = run(base(BLOCKED));
        assert!(
            out.contains("NXDOMAIN") && out.contains("threats.policy.dnsward."),
            "{mode}: {out}"
        );
        assert!(
            out.contains("EDE: 15") && out.contains(HOTLINE),
            "{mode}: the EDE shows in kdig: {out}"
        );
    }
    // A client that does not trust our CA is refused by its own verification.
    let out = kdig(&[
        "@127.0.0.1",
        "-p",
        &dot_port,
        "+tls-ca=/dev/null",
        &host,
        "+timeout=3",
        "+retry=0",
        "www.example.com.",
    ]);
    assert!(!out.contains("192.0.2.10"), "{out}");
}

/// curl's DoH (POST over HTTP/2 and HTTP/1.1) and a GET, with its own TLS stack (OpenSSL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_speaks_doh_over_http2_and_http1() {
    if !common::tools::require_tool("curl", "curl") {
        return;
    }
    let s = setup("", "").await;
    let wire = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let qfile = s.dir.join("q.bin");
    std::fs::write(&qfile, &wire).unwrap();
    let url = format!("https://{SERVER_NAME}:{}/dns-query", s.doh().port());
    let resolve = format!("{SERVER_NAME}:{}:127.0.0.1", s.doh().port());
    for version in ["--http2", "--http1.1"] {
        let out_file = s.dir.join(format!("a{version}.bin"));
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10", version, "--cacert"])
            .arg(&s.ca.ca_pem)
            .args([
                "--resolve",
                &resolve,
                "-H",
                "Content-Type: application/dns-message",
                "--data-binary",
            ])
            .arg(format!("@{}", qfile.display()))
            .arg("-o")
            .arg(&out_file)
            .args(["-w", "%{http_code} %{http_version}", &url])
            .output()
            .expect("curl runs");
        let info = String::from_utf8_lossy(&out.stdout);
        let want_version = if version == "--http2" { "2" } else { "1.1" };
        assert_eq!(
            info.trim(),
            format!("200 {want_version}"),
            "{version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let m = Message::from_vec(&std::fs::read(&out_file).unwrap()).unwrap();
        assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    }
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--http2", "--cacert"])
        .arg(&s.ca.ca_pem)
        .args([
            "--resolve",
            &resolve,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .arg(format!("{url}?dns={}", b64url(&wire)))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "200 2");
}

/// `POST /api/reload` (what SIGHUP does, over the admin API): its JSON report.
async fn api_reload(admin: std::net::SocketAddr, token: &str) -> serde_json::Value {
    let (status, body) = http(admin, "POST", "/api/reload", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificate_reload_keeps_open_connections_and_serves_the_new_one() {
    // The admin API's POST /api/reload re-reads the certificate too.
    let token_dir = tempfile::tempdir().unwrap();
    let token = "0123456789abcdef-reload-token";
    std::fs::write(token_dir.path().join("admin.token"), token).unwrap();
    let admin = format!(
        "\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"{}\"\nruntime_list = \"{}\"\n",
        token_dir.path().join("admin.token").display(),
        token_dir.path().join("runtime.txt").display()
    );
    let s = setup("", &admin).await;
    let wire = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut old = s.ca.connect(s.dot(), &[b"dot"]).await;
    let first = peer_cert(&old);
    dot_exchange(&mut old, &wire).await;

    // A new certificate (new key) replaces the files; a broken pair is refused and the
    // current certificate stays.
    std::fs::write(&s.key, "not a key").unwrap();
    s.d.reload_tls(); // what SIGHUP runs
    let v = api_reload(s.d.admin_addr().unwrap(), token).await;
    assert_eq!(v["tls"][0]["ok"], false, "{v}");
    assert!(
        v["tls"][0]["error"]
            .as_str()
            .unwrap()
            .contains("server-key.pem"),
        "{v}"
    );
    let still = s.ca.connect(s.dot(), &[b"dot"]).await;
    assert_eq!(
        peer_cert(&still),
        first,
        "a bad key file keeps the current certificate"
    );
    let (cert, key) = s.ca.issue(&s.dir, "server2", &[SERVER_NAME]);
    std::fs::copy(&cert, &s.cert).unwrap();
    std::fs::copy(&key, &s.key).unwrap();
    let v = api_reload(s.d.admin_addr().unwrap(), token).await;
    assert_eq!(v["tls"][0]["ok"], true, "{v}");

    // The connection opened before the reload still answers, with its certificate...
    let m = Message::from_vec(&dot_exchange(&mut old, &wire).await).unwrap();
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    // ...and new connections (DoT and DoH) get the new one.
    let new_dot = s.ca.connect(s.dot(), &[b"dot"]).await;
    let new_doh = s.ca.connect(s.doh(), &[b"h2"]).await;
    assert_ne!(peer_cert(&new_dot), first);
    assert_eq!(peer_cert(&new_dot), peer_cert(&new_doh));
    assert_eq!(
        peer_cert(&new_dot),
        rustls_pki_types::pem::PemObject::from_pem_file(&cert)
            .map(|c: rustls_pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ddr_announces_the_dot_and_doh_endpoints() {
    let s = setup("", "").await;
    let m = ask(s.udp(), "_dns.resolver.arpa.", RecordType::SVCB).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 2, "{m:?}");
    let mut seen = Vec::new();
    for r in &m.answers {
        let RData::SVCB(svcb) = &r.data else {
            panic!("SVCB expected: {r:?}")
        };
        assert_eq!(svcb.target_name.to_ascii(), format!("{SERVER_NAME}."));
        let param = |k: SvcParamKey| {
            svcb.svc_params
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        };
        let Some(SvcParamValue::Alpn(alpn)) = param(SvcParamKey::Alpn) else {
            panic!("alpn")
        };
        let Some(SvcParamValue::Port(port)) = param(SvcParamKey::Port) else {
            panic!("port")
        };
        let Some(SvcParamValue::Ipv4Hint(hint)) = param(SvcParamKey::Ipv4Hint) else {
            panic!("ipv4hint")
        };
        assert_eq!(hint.0[0].0, std::net::Ipv4Addr::LOCALHOST);
        let dohpath = match param(SvcParamKey::Unknown(7)) {
            Some(SvcParamValue::Unknown(u)) => Some(String::from_utf8(u.0).unwrap()),
            _ => None,
        };
        seen.push((alpn.0.join(","), port, dohpath));
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("dot".to_string(), s.dot().port(), None),
            (
                "h2,http/1.1".to_string(),
                s.doh().port(),
                Some("/dns-query{?dns}".to_string())
            ),
        ]
    );
    // Over DoH too (clients re-check DDR over the encrypted channel).
    let wire = query_message("_dns.resolver.arpa.", RecordType::SVCB, None)
        .to_vec()
        .unwrap();
    let (_, _, body) = doh_post_h1(&s.ca, s.doh(), &wire).await;
    assert_eq!(Message::from_vec(&body).unwrap().answers.len(), 2);
}

/// A query for `name` with EDNS, optionally carrying an empty EDE option (the SDE signal).
fn sde_query(name: &str, payload: u16, signal: bool) -> Message {
    let mut q = query_message(name, RecordType::A, None);
    let mut e = Edns::new();
    e.set_max_payload(payload);
    if signal {
        e.options_mut().insert(EdnsOption::Unknown(15, vec![0, 0]));
    }
    q.set_edns(e);
    q
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_dns_errors_only_when_asked_and_trimmed_to_fit_udp() {
    let long_org = "Example Agency for the Protection of Very Long Organisation Names ".repeat(6);
    let s = setup("", &format!("organisation = \"{long_org}\"\n")).await;
    // Without the option: the RFC 8914 free text, as before.
    let (code, text) = ede(&udp_query(s.udp(), &sde_query(BLOCKED, 1232, false)).await).unwrap();
    assert_eq!(code, 15);
    assert!(
        text.starts_with("dnsward:") && text.contains(HOTLINE),
        "{text}"
    );
    // With it: I-JSON with c, j, s, o, l (over UDP with room, and over DoT).
    for m in [
        udp_query(s.udp(), &sde_query(BLOCKED, 1232, true)).await,
        Message::from_vec(
            &dot_exchange(
                &mut s.ca.connect(s.dot(), &[b"dot"]).await,
                &sde_query(BLOCKED, 1232, true).to_vec().unwrap(),
            )
            .await,
        )
        .unwrap(),
    ] {
        let (code, text) = ede(&m).unwrap();
        assert_eq!(code, 15);
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(
            v["c"],
            serde_json::json!(["tel:+84-1900-1234", "mailto:soc@example.gov.vn"])
        );
        assert_eq!(v["s"], 2, "the list's sde_suberror");
        assert_eq!(v["o"], long_org.as_str());
        assert_eq!(v["l"], "en");
        assert!(v["j"].as_str().unwrap().contains("evil.example.com"));
        assert!(!text.contains(": "), "minified: {text}");
    }
    // A 512-byte client: j and o go before the text would; the answer still fits, no TC.
    let m = udp_query(s.udp(), &sde_query(BLOCKED, 512, true)).await;
    assert!(!m.metadata.truncation);
    let (_, text) = ede(&m).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert!(
        v.get("j").is_none() && v.get("o").is_none() && v["c"].is_array(),
        "{text}"
    );
    assert!(m.to_vec().unwrap().len() <= 512);
}

/// Sends `req` on a fresh TLS connection and returns the status line's code.
async fn status_of(ca: &TestCa, addr: SocketAddr, head: &str, body: &[u8]) -> u16 {
    https_request(ca, addr, head, body).await.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_doh_and_tls_input_gets_clear_errors_and_timeouts() {
    let s = setup("tcp_idle_secs = 2\ntls_handshake_timeout_ms = 1000\n", "").await;
    let doh = s.doh();
    let wire = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let get =
        |q: &str| format!("GET /dns-query?{q} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(
        status_of(&s.ca, doh, &get("dns=%%%not-base64"), b"").await,
        400,
        "bad base64"
    );
    assert_eq!(
        status_of(&s.ca, doh, &get("other=1"), b"").await,
        400,
        "no dns="
    );
    let post = |ct: &str, len: usize| {
        format!("POST /dns-query HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n")
    };
    assert_eq!(
        status_of(&s.ca, doh, &post("text/plain", wire.len()), &wire).await,
        415,
        "wrong content type"
    );
    let big = vec![0u8; 70_000];
    assert_eq!(
        status_of(
            &s.ca,
            doh,
            &post("application/dns-message", big.len()),
            &big
        )
        .await,
        413,
        "oversized body"
    );
    let mut trailing = wire.clone();
    trailing.extend_from_slice(b"junk");
    assert_eq!(
        status_of(
            &s.ca,
            doh,
            &post("application/dns-message", trailing.len()),
            &trailing
        )
        .await,
        400,
        "trailing bytes"
    );
    let huge_header = format!(
        "GET /dns-query?dns={} HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\nConnection: close\r\n\r\n",
        b64url(&wire),
        "a".repeat(40_000)
    );
    assert_eq!(
        status_of(&s.ca, doh, &huge_header, b"").await,
        431,
        "oversized header"
    );

    // Slowloris over DoH: a request head that never completes is cut off.
    let mut slow = s.ca.connect(doh, &[b"http/1.1"]).await;
    slow.write_all(b"GET /dns-query?dns=").await.unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "slow DoH client not cut off");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );

    // An idle keep-alive DoH connection (after one answered request) is closed too.
    let mut idle = s.ca.connect(doh, &[b"http/1.1"]).await;
    idle.write_all(
        format!(
            "GET /dns-query?dns={} HTTP/1.1\r\nHost: x\r\n\r\n",
            b64url(&wire)
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(8), async {
        loop {
            match idle.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        closed.is_ok() && started.elapsed() < Duration::from_secs(6),
        "idle keep-alive DoH connection not closed"
    );

    // DoT: an idle connection is closed after tcp_idle_secs; a half-sent message too.
    for partial in [&b""[..], &[0u8, 40, 1, 2, 3][..]] {
        let mut c = s.ca.connect(s.dot(), &[b"dot"]).await;
        c.write_all(partial).await.unwrap();
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(8), c.read(&mut buf)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "idle DoT connection not closed: {r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    // A TCP client that never starts (or botches) its TLS handshake is dropped after the
    // handshake timeout, and the server keeps serving.
    let mut raw = TcpStream::connect(s.dot()).await.unwrap();
    let started = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await;
    assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let mut garbage = TcpStream::connect(s.doh()).await.unwrap();
    garbage
        .write_all(&[0x16, 3, 1, 0, 5, 1, 2, 3, 4, 5, 0xff, 0xff])
        .await
        .unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(3), garbage.read(&mut buf)).await;
    let m =
        Message::from_vec(&dot_exchange(&mut s.ca.connect(s.dot(), &[b"dot"]).await, &wire).await)
            .unwrap();
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_caps_per_client() {
    let s = setup("tls_max_connections_per_client = 2\n", "").await;
    let wire = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut a = s.ca.connect(s.dot(), &[b"dot"]).await;
    let _b = s.ca.connect(s.dot(), &[b"dot"]).await;
    // The third is closed before its handshake.
    let tcp = TcpStream::connect(s.dot()).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(s.ca.client_config(&[b"dot"]));
    let third = tokio::time::timeout(
        Duration::from_secs(5),
        connector.connect(
            rustls_pki_types::ServerName::try_from(SERVER_NAME).unwrap(),
            tcp,
        ),
    )
    .await
    .unwrap();
    assert!(
        third.is_err(),
        "a third connection from one client is refused"
    );
    // The first two still work; closing one frees a place.
    dot_exchange(&mut a, &wire).await;
    drop(a);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let tcp = TcpStream::connect(s.dot()).await.unwrap();
        if let Ok(Ok(mut c)) = tokio::time::timeout(
            Duration::from_secs(5),
            connector.connect(
                rustls_pki_types::ServerName::try_from(SERVER_NAME).unwrap(),
                tcp,
            ),
        )
        .await
        {
            dot_exchange(&mut c, &wire).await;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the freed place was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A TLS handshake flood (bounded: 3 s, at most 200 connections at a time) while a UDP client
/// keeps asking: every UDP query is answered, promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_keeps_answering_during_a_tls_handshake_flood() {
    let s = setup("tls_handshake_timeout_ms = 500\n", "").await;
    let udp = s.udp();
    ask(udp, "www.example.com.", RecordType::A).await; // warm the cache
    let stop_at = Instant::now() + Duration::from_secs(3);
    let (dot, doh) = (s.dot(), s.doh());
    let flood = tokio::spawn(async move {
        let mut opened = 0u64;
        let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(200));
        while Instant::now() < stop_at && opened < 100_000 {
            let permit = std::sync::Arc::clone(&sem).acquire_owned().await.unwrap();
            let target = if opened.is_multiple_of(2) { dot } else { doh };
            opened += 1;
            tokio::spawn(async move {
                // Half a ClientHello, then silence: each costs the server a handshake slot.
                if let Ok(Ok(mut c)) =
                    tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(target)).await
                {
                    let _ = c.write_all(&[0x16, 3, 1, 2, 0, 1, 0, 1, 0xfc, 3, 3]).await;
                    let mut b = [0u8; 64];
                    let _ = tokio::time::timeout(Duration::from_millis(700), c.read(&mut b)).await;
                }
                drop(permit);
            });
        }
        opened
    });
    let (mut asked, mut answered, mut worst) = (0u32, 0u32, Duration::ZERO);
    while Instant::now() < stop_at {
        let q = query_message("www.example.com.", RecordType::A, Some(1232))
            .to_vec()
            .unwrap();
        let t = Instant::now();
        asked += 1;
        if udp_raw(udp, &q, Duration::from_secs(1)).await.is_some() {
            answered += 1;
            worst = worst.max(t.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let opened = flood.await.unwrap();
    eprintln!(
        "TLS flood: {opened} connections; UDP {answered}/{asked} answered, slowest {worst:?}"
    );
    assert!(opened > 200, "the flood did not run ({opened})");
    assert_eq!(answered, asked, "every UDP query answered during the flood");
    assert!(
        worst < Duration::from_millis(500),
        "slowest UDP answer {worst:?}"
    );
}

#[test]
fn bad_encrypted_config_is_reported_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[server]\ntls_listen = [\"127.0.0.1:853\"]\ntls_max_in_flight = 0\n\n[policy]\ncontact_uris = [\"call us\"]\n\n\
                [blockpage]\nlisten = []\nlanguages = [\"fr\"]\nappeal_link = \"javascript:alert(1)\"\n";
    let problems =
        dnsward::config::Config::from_text(text, &dir.path().join("c.toml")).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for want in [
        "server.tls_cert",
        "server.tls_max_in_flight",
        "policy.contact_uris[0]",
        "blockpage.listen",
        "blockpage.languages[0]",
        "blockpage.appeal_link",
    ] {
        assert!(keys.contains(&want), "{want} missing from {problems:?}");
    }
    assert!(
        problems.iter().all(|p| p.line.is_some()),
        "every problem has its line: {problems:?}"
    );
    // A certificate file that is not one: the server refuses to start, saying which file.
    std::fs::write(dir.path().join("cert.pem"), "garbage").unwrap();
    std::fs::write(dir.path().join("key.pem"), "garbage").unwrap();
    let text = "[server]\nlisten = [\"127.0.0.1:0\"]\ntls_listen = [\"127.0.0.1:0\"]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n";
    let config = dnsward::config::Config::from_text(text, &dir.path().join("c.toml")).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let err = rt
        .block_on(dnsward::instance::Instance::start(&config))
        .err()
        .expect("refuses a bad certificate")
        .to_string();
    assert!(err.contains("cert.pem"), "{err}");
}
