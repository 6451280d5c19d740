//! Alerts end to end: a dnsward instance resolving through the fake hierarchy, clients querying
//! over real UDP sockets, and the alerts arriving at local receivers: an HTTP receiver (the
//! `X-Dnsward-Signature` checked), an SMTP receiver and a syslog receiver (UDP). Each kind
//! fires once and is de-duplicated; a receiver that is down loses nothing within the outbox
//! bound and never slows DNS; the history through `dnsward alerts list` and `GET /api/alerts`;
//! `dnsward alerts test`; the metrics.

mod common;
#[path = "dnssec_support/mod.rs"]
mod dnssec_support;
#[path = "feed_server/mod.rs"]
mod feed_server;

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const KEY: &str = "s3cret-key";
const TOKEN: &str = "alerts-test-token-0123456789";

/// An HTTP receiver on loopback: records every POST; answers 500 to the first `fail` ones.
#[derive(Clone, Default)]
struct Hook {
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    fail: Arc<AtomicUsize>,
    tries: Arc<AtomicUsize>,
}

impl Hook {
    /// A receiver on a free loopback port: the hook and its port.
    async fn start() -> (Hook, u16) {
        let hook = Hook::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        hook.serve(listener).await;
        (hook, port)
    }

    /// Waits (at most `secs`) for the first alert, then `quiet` seconds more for any that
    /// should not come: the one alert received (signature checked).
    async fn only_alert(&self, what: &str, secs: u64, quiet: u64) -> serde_json::Value {
        eventually(what, secs, || !self.got.lock().unwrap().is_empty()).await;
        tokio::time::sleep(Duration::from_secs(quiet)).await;
        let alerts = self.alerts();
        assert_eq!(alerts.len(), 1, "{what}: {alerts:#?}");
        alerts.into_iter().next().unwrap()
    }

    async fn serve(&self, listener: tokio::net::TcpListener) -> tokio::task::JoinHandle<()> {
        async fn post(State(h): State<Hook>, headers: HeaderMap, body: Bytes) -> StatusCode {
            h.tries.fetch_add(1, Ordering::SeqCst);
            if h.fail
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            h.got.lock().unwrap().push((headers, body));
            StatusCode::OK
        }
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(post))
            .with_state(self.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        })
    }

    /// The JSON bodies received, each after checking its signature.
    fn alerts(&self) -> Vec<serde_json::Value> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .map(|(h, body)| {
                let sig = h
                    .get("x-dnsward-signature")
                    .expect("signed")
                    .to_str()
                    .unwrap();
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, KEY.as_bytes());
                let hex = sig.strip_prefix("sha256=").expect("sha256= prefix");
                let tag = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
                ring::hmac::verify(&key, body, &tag).expect("X-Dnsward-Signature verifies");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }
}

/// A minimal SMTP server: accepts every message, records its DATA.
async fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    smtp_server(None).await
}

/// A minimal SMTP server that, given a TLS acceptor, offers STARTTLS: records each message's
/// envelope and DATA, prefixed with `[tls]` when it came over TLS.
async fn smtp_server(tls: Option<tokio_rustls::TlsAcceptor>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mails: Arc<Mutex<Vec<String>>> = Arc::default();
    let m = Arc::clone(&mails);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let m = Arc::clone(&m);
            let tls = tls.clone();
            tokio::spawn(async move {
                let mut stream = stream;
                let _ = stream.write_all(b"220 receiver ESMTP\r\n").await;
                if let SmtpEnd::StartTls(plain) =
                    smtp_session(stream, &m, tls.is_some(), false).await
                {
                    if let Ok(secure) = tls.unwrap().accept(plain).await {
                        smtp_session(secure, &m, false, true).await;
                    }
                }
            });
        }
    });
    (port, mails)
}

enum SmtpEnd<S> {
    Done,
    StartTls(S),
}

/// One SMTP conversation (after the greeting) until QUIT, EOF or STARTTLS.
async fn smtp_session<S>(
    stream: S,
    m: &Mutex<Vec<String>>,
    offer_tls: bool,
    secure: bool,
) -> SmtpEnd<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut s = BufReader::new(stream);
    let mut line = String::new();
    let mut envelope = String::new();
    loop {
        line.clear();
        if s.read_line(&mut line).await.unwrap_or(0) == 0 {
            return SmtpEnd::Done;
        }
        let cmd = line.to_ascii_uppercase();
        let reply: &[u8] = if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
            if offer_tls {
                b"250-receiver\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
            } else {
                b"250-receiver\r\n250 8BITMIME\r\n"
            }
        } else if cmd.starts_with("STARTTLS") && offer_tls {
            let _ = s.write_all(b"220 go ahead\r\n").await;
            let _ = s.flush().await;
            return SmtpEnd::StartTls(s.into_inner());
        } else if cmd.starts_with("DATA") {
            let _ = s.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            loop {
                let mut l = String::new();
                if s.read_line(&mut l).await.unwrap_or(0) == 0 {
                    return SmtpEnd::Done;
                }
                if l == ".\r\n" {
                    break;
                }
                data.push_str(&l);
            }
            let tag = if secure { "[tls]\n" } else { "" };
            m.lock().unwrap().push(format!("{tag}{envelope}{data}"));
            b"250 queued\r\n"
        } else if cmd.starts_with("QUIT") {
            let _ = s.write_all(b"221 bye\r\n").await;
            return SmtpEnd::Done;
        } else if cmd.starts_with("STARTTLS") {
            b"502 not implemented\r\n"
        } else {
            envelope.push_str(&line);
            b"250 ok\r\n"
        };
        let _ = s.write_all(reply).await;
    }
}

/// A syslog receiver over UDP: records every datagram.
async fn syslog_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = Arc::clone(&got);
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, _)) = sock.recv_from(&mut buf).await {
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    (port, got)
}

/// A syslog receiver over TCP (RFC 6587 octet counting): records every message, checking
/// each frame's length.
async fn tcp_syslog_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = Arc::clone(&got);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let g = Arc::clone(&g);
            tokio::spawn(async move {
                let mut r = BufReader::new(stream);
                loop {
                    let mut len = Vec::new();
                    if r.read_until(b' ', &mut len).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let n: usize = std::str::from_utf8(&len[..len.len() - 1])
                        .unwrap()
                        .parse()
                        .expect("an octet count");
                    let mut msg = vec![0u8; n];
                    tokio::io::AsyncReadExt::read_exact(&mut r, &mut msg)
                        .await
                        .unwrap();
                    g.lock().unwrap().push(String::from_utf8(msg).unwrap());
                }
            });
        }
    });
    (port, got)
}

/// Waits (bounded) until `f` holds.
fn write_common(dir: &Path) {
    std::fs::write(
        dir.join("threats.txt"),
        "bad1.test\nbad2.test\nbad3.test\nphish.example.com\n",
    )
    .unwrap();
    std::fs::write(dir.join("hook.key"), format!("{KEY}\n")).unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_fires_once_through_webhook_mail_and_syslog() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    write_common(dir);
    let (hook, hook_port) = Hook::start().await;
    let (smtp_port, mails) = smtp_receiver().await;
    let (syslog_port, logs) = syslog_receiver().await;
    let extra = format!(
        r#"
[policy]
contact = "Hotline 1800 0000"

[[lists]]
name = "threats"
category = "threat"
path = "threats.txt"

[[clients]]
name = "lab-pc"
cidr = "127.0.0.1/32"

[admin]
listen = "127.0.0.1:0"
token_file = "token"

[alerting]
history = "alerts.db"
state_dir = "alert-state"
max_backoff = "1s"

[smtp]
server = "127.0.0.1"
port = {smtp_port}
starttls = false
from = "dnsward@agency.example"

[[alerts]]
name = "many-threats"
kind = "client_threshold"
count = 3
window = "1m"
category = "threat"
webhook = "http://127.0.0.1:{hook_port}/hook"
secret_file = "hook.key"

[[alerts]]
name = "phish-watch"
kind = "watch"
names = ["www.other.net"]
webhook = "http://127.0.0.1:{hook_port}/hook"
secret_file = "hook.key"
syslog = "udp://127.0.0.1:{syslog_port}"

[[alerts]]
name = "nod"
kind = "new_domain"
ignore = ["example.com"]
email = ["oncall@agency.example"]
"#
    );
    let cfg_path = dir.join("alerts.toml");
    std::fs::write(&cfg_path, h.config_text("") + &extra).unwrap();
    let config = dnsward::config::Config::load(&cfg_path).unwrap();
    let d = dnsward::instance::Instance::start(&config).await.unwrap();
    let addr = d.addrs()[0];

    // watch + new domain: www.other.net, twice (one alert each).
    for _ in 0..2 {
        let m = ask_from("127.0.0.1", addr, "www.other.net.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    // An ignored suffix: no new-domain alert for example.com.
    ask_from("127.0.0.1", addr, "www.example.com.", RecordType::A).await;
    // client threshold: three blocked names, then three more (de-duplicated).
    for n in [
        "bad1.test.",
        "bad2.test.",
        "bad3.test.",
        "bad1.test.",
        "bad2.test.",
        "bad3.test.",
    ] {
        let m = ask_from("127.0.0.1", addr, n, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }
    eventually("two webhooks", 15, || hook.got.lock().unwrap().len() >= 2).await;
    eventually("a syslog message", 10, || !logs.lock().unwrap().is_empty()).await;
    eventually("a mail", 10, || !mails.lock().unwrap().is_empty()).await;
    // Give de-duplication its chance to fail.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let alerts = hook.alerts();
    assert_eq!(alerts.len(), 2, "{alerts:#?}");
    let watch = alerts
        .iter()
        .find(|a| a["rule"] == "phish-watch")
        .expect("watch alert");
    assert_eq!(watch["kind"], "watch");
    assert_eq!(watch["client"], "127.0.0.1");
    assert_eq!(watch["client_name"], "lab-pc");
    assert_eq!(watch["names"][0]["name"], "www.other.net");
    assert_eq!(watch["contact"], "Hotline 1800 0000");
    let many = alerts
        .iter()
        .find(|a| a["rule"] == "many-threats")
        .expect("threshold alert");
    assert_eq!(many["kind"], "client_threshold");
    assert_eq!(many["count"], 3);
    assert_eq!(many["list"], "threats");
    assert_eq!(many["category"], "threat");
    assert!(
        many["list_rule"].as_str().unwrap().contains("threats.txt:"),
        "{many}"
    );
    let names: Vec<&str> = many["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bad1.test", "bad2.test", "bad3.test"]);
    assert!(many["first"].is_string() && many["last"].is_string());
    assert!(many["message"]
        .as_str()
        .unwrap()
        .contains("queried 3 blocked name(s) of category threat"));

    let logs = logs.lock().unwrap().clone();
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert!(logs[0].starts_with("<132>1 "), "{}", logs[0]);
    assert!(
        logs[0].contains(
            "rule=\"phish-watch\" kind=\"watch\" client=\"127.0.0.1\" client_name=\"lab-pc\""
        ),
        "{}",
        logs[0]
    );

    let mails = mails.lock().unwrap().clone();
    assert_eq!(
        mails.len(),
        1,
        "one new-domain mail (per client within quiet): {mails:?}"
    );
    assert!(
        mails[0].contains("RCPT TO:<oncall@agency.example>"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("Subject: [dnsward] nod: newly observed domain other.net"),
        "{}",
        mails[0]
    );
    assert!(
        mails[0].contains("hotline: Hotline 1800 0000"),
        "{}",
        mails[0]
    );

    // The history: the API and the command.
    let admin = d.admin_addr().unwrap();
    let (status, body) = http(admin, "GET", "/api/alerts?since=1h", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rules: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules.len(), 3, "{body}");
    for r in ["phish-watch", "nod", "many-threats"] {
        assert!(rules.contains(&r), "{rules:?}");
    }
    let (status, _) = http(admin, "GET", "/api/alerts", None, None).await;
    assert_eq!(status, 401, "the history needs the token");
    let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
    for line in [
        "dnsward_alerts_total{rule=\"many-threats\",action=\"webhook\"} 1",
        "dnsward_alerts_total{rule=\"phish-watch\",action=\"syslog\"} 1",
        "dnsward_alerts_total{rule=\"nod\",action=\"email\"} 1",
    ] {
        assert!(metrics.contains(line), "{line} in:\n{metrics}");
    }
    let cfg = cfg_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["alerts", "--config"])
            .arg(&cfg)
            .args(["list", "--since", "1h"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("many-threats") && text.contains("client_threshold"),
        "{text}"
    );

    // A test alert, sent now through the rule's actions.
    let cfg = cfg_path.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["alerts", "--config"])
            .arg(&cfg)
            .args(["test", "phish-watch"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("webhook: sent") && text.contains("syslog: sent"),
        "{text}"
    );
    let alerts = hook.alerts();
    assert_eq!(alerts.len(), 3);
    assert_eq!(alerts[2]["test"], true);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_or_failing_receiver_loses_nothing_and_never_slows_dns() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    write_common(dir);
    // A port with nothing behind it (yet).
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let extra = format!(
        r#"
[[lists]]
name = "threats"
category = "threat"
path = "threats.txt"

[admin]
listen = "127.0.0.1:0"
token_file = "token"

[alerting]
history = "alerts.db"
state_dir = "alert-state"
max_backoff = "1s"
queue_max = 5

[[alerts]]
name = "watch-bad"
kind = "watch"
names = ["bad1.test"]
webhook = "http://127.0.0.1:{port}/hook"
secret_file = "hook.key"
"#
    );
    let cfg_path = dir.join("down.toml");
    std::fs::write(&cfg_path, h.config_text("") + &extra).unwrap();
    let config = dnsward::config::Config::load(&cfg_path).unwrap();
    let d = dnsward::instance::Instance::start(&config).await.unwrap();
    let addr = d.addrs()[0];

    // Five clients look up the watched name: five alerts, the receiver is down.
    let clients = [
        "127.0.0.2",
        "127.0.0.3",
        "127.0.0.4",
        "127.0.0.5",
        "127.0.0.6",
    ];
    for c in clients {
        let t = Instant::now();
        let m = ask_from(c, addr, "bad1.test.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "DNS slowed: {:?}",
            t.elapsed()
        );
    }
    let outbox = dir.join("alert-state/outbox/webhook");
    let pending = || std::fs::read_dir(&outbox).map_or(0, |r| r.count());
    eventually("five deliveries waiting", 10, || pending() == 5).await;
    // DNS stays fast while the worker retries.
    for _ in 0..20 {
        let t = Instant::now();
        ask_from("127.0.0.1", addr, "www.example.com.", RecordType::A).await;
        assert!(
            t.elapsed() < Duration::from_millis(500),
            "DNS slowed: {:?}",
            t.elapsed()
        );
    }
    let admin = d.admin_addr().unwrap();
    let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("dnsward_alert_failures_total{action=\"webhook\"}"),
        "{metrics}"
    );

    // The receiver comes back, answering 500 twice first: everything arrives, once each.
    let hook = Hook::default();
    hook.fail.store(2, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    hook.serve(listener).await;
    eventually("five alerts delivered", 20, || {
        hook.got.lock().unwrap().len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alerts = hook.alerts();
    let mut got: Vec<String> = alerts
        .iter()
        .map(|a| a["client"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    assert_eq!(got, clients);
    assert!(hook.tries.load(Ordering::SeqCst) >= 7);
    assert_eq!(pending(), 0);
    let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("dnsward_alerts_total{rule=\"watch-bad\",action=\"webhook\"} 5"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("dnsward_alerts_lost_total{"),
        "nothing lost: {metrics}"
    );
    d.shutdown().await;
}

#[test]
fn config_errors_are_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    check_rejects(
        &path,
        "[[groups]]\nname = \"kids\"\nclients = [\"10.1.0.0/16\"]\nlists = []\n\n[[alerts]]\nname = \"a\"\nkind = \"client_threshold\"\ncount = 3\ngroup = \"nobody\"\nwebhook = \"ftp://x\"\n\n[[alerts]]\nname = \"b\"\nkind = \"watch\"\nnames = [\"ok.example\", \"not a name\"]\nemail = [\"nobody-at-all\"]\n\n[[alerts]]\nname = \"c\"\nkind = \"client_threshold\"\ncount = 2\nsyslog = \"udp://x\"\n",
        &[
            "bad.toml:10: alerts[0].group",
            "bad.toml:11: alerts[0].webhook",
            "bad.toml:16: alerts[1].names[1]",
            "bad.toml:17: alerts[1].email[0]",
            "bad.toml:17: alerts[1].email",
            "bad.toml:23: alerts[2].syslog",
        ],
    );
    let out = dnsward_cmd("serve", &path, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.toml:11: alerts[0].webhook"));

    // An unknown category or kind is a parse error, with its line too.
    check_rejects(
        &path,
        "[[alerts]]\nname = \"c\"\nkind = \"client_threshold\"\ncount = 2\ncategory = \"spam\"\nwebhook = \"https://x.example/h\"\n\n[[alerts]]\nname = \"d\"\nkind = \"sometimes\"\n",
        &["bad.toml:5: alerts[0].category", "bad.toml:10: alerts[1].kind"],
    );

    // A CA file without STARTTLS is named once.
    let err = check_rejects(
        &path,
        "[smtp]\nserver = \"127.0.0.1\"\nport = 25\nstarttls = false\nca_file = \"ca.pem\"\nfrom = \"dnsward@agency.example\"\n",
        &["smtp.ca_file: is used with starttls = true only"],
    );
    assert_eq!(err.matches("smtp.ca_file").count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnssec_bogus_answers_raise_one_alert_per_zone() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32;
    let signed = dnssec_support::Hierarchy::build_at(now, |_| {});
    let authority = dnssec_support::Authority::start(signed.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    write_common(dir.path());
    let resolver = authority.validating_resolver(&signed, dir.path());
    let (hook, hook_port) = Hook::start().await;
    // The rule is one of an event window open now (the dashboard's overview shows both).
    let now = dnsward::timefmt::now_us();
    let (start, end) = (
        dnsward::timefmt::format_ts(now - 3_600_000_000, 0),
        dnsward::timefmt::format_ts(now + 3_600_000_000, 0),
    );
    let text = format!(
        "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n{resolver}\n[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n\n[querylog]\nsqlite = \"log.db\"\n\n[alerting]\nhistory = \"alerts.db\"\nstate_dir = \"alert-state\"\n\n[[alerts]]\nname = \"bogus\"\nkind = \"dnssec_bogus\"\ncount = 2\nwindow = \"1m\"\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"\nsecret_file = \"hook.key\"\n\n[[events]]\nname = \"festival\"\nstart = \"{start}\"\nend = \"{end}\"\nalerts = [\"bogus\"]\n"
    );
    let d = start_dnsward_text(&text, dir.path()).await;
    let addr = d.addrs()[0];
    // One bogus answer is below the rate; a good zone raises nothing.
    let m = ask_from("127.0.0.1", addr, "www.badsig.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    ask_from("127.0.0.1", addr, "www.secure.", RecordType::A).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(hook.got.lock().unwrap().is_empty());
    for _ in 0..4 {
        let m = ask_from("127.0.0.1", addr, "www.badsig.", RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    }
    let alert = hook.only_alert("the bogus alert", 15, 3).await;
    let msg = alert["message"].as_str().unwrap();
    assert!(
        msg.contains("DNSSEC validation fails for www.badsig") && msg.contains("(EDE "),
        "{msg}"
    );
    assert_eq!(alert["kind"], "dnssec_bogus");

    // The dashboard's overview: the bogus count, the event window in force, the alert.
    let (status, o) = api(d.admin_addr().unwrap(), "/api/ui/overview?since=1h").await;
    assert_eq!(status, 200, "{o}");
    let bogus = o["live"]["dnssec_bogus"].as_u64().expect("a count");
    // (Repeats within 5 s come from the failure cache: not judged again.)
    assert!(bogus >= 1, "bogus answers counted: {o}");
    assert_eq!(o["events"][0]["name"], "festival", "{o}");
    assert_eq!(o["events"][0]["state"], "active", "{o}");
    assert_eq!(o["alerts"].as_array().unwrap().len(), 1, "{o}");
    assert_eq!(o["alerts"][0]["rule"], "bogus", "{o}");
    assert_eq!(o["alerts"][0]["outcome"], "delivered", "{o}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduled_audit_alerts_on_new_critical_findings() {
    let h = Hierarchy::start("shop IN CNAME gone.herokuapp.com.\n").await;
    let dir = h.dir.path();
    write_common(dir);
    std::fs::write(
        dir.join("inventory.txt"),
        "shop.example.com\nwww.example.com\n",
    )
    .unwrap();
    let (hook, hook_port) = Hook::start().await;
    let extra = format!(
        "\n[audit]\ninventory = \"inventory.txt\"\ninterval = \"2s\"\n\n[alerting]\nhistory = \"alerts.db\"\nstate_dir = \"alert-state\"\n\n[[alerts]]\nname = \"audit-critical\"\nkind = \"audit\"\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"\nsecret_file = \"hook.key\"\n"
    );
    let d = start_dnsward_text(&(h.config_text("") + &extra), dir).await;
    // Later runs (every 2 s) find the same finding: not new, no second alert.
    let alert = hook.only_alert("the audit alert", 20, 5).await;
    let msg = alert["message"].as_str().unwrap();
    assert!(
        msg.contains("audit: shop.example.com (dangling_cname)") && msg.contains("takeover risk"),
        "{msg}"
    );
    assert_eq!(alert["names"][0]["name"], "shop.example.com");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_failures_and_query_log_drops_raise_alerts() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    write_common(dir);
    let (hook, hook_port) = Hook::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(dir.join("snapshot.txt"), "snap.example.com\n").unwrap();
    // The query log's only sink cannot open (its directory is a file): its queue of 16
    // events overflows and counts drops.
    let extra = format!(
        "\n[querylog]\njsonl = \"threats.txt/q.jsonl\"\nqueue_size = 16\nlog_allowed = true\n\n[alerting]\nhistory = \"alerts.db\"\nstate_dir = \"alert-state\"\n\n[[alerts]]\nname = \"feeds\"\nkind = \"feed_failure\"\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"\nsecret_file = \"hook.key\"\n\n[[alerts]]\nname = \"log-drops\"\nkind = \"querylog_drops\"\ncount = 10\nwindow = \"1m\"\nwebhook = \"http://127.0.0.1:{hook_port}/hook\"\nsecret_file = \"hook.key\"\n"
    );
    let text = feed_server::feed_config(
        &h,
        &format!("http://{closed}/feed.txt"),
        "snapshot = \"snapshot.txt\"",
        "",
    ) + &extra;
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    for i in 0..60 {
        ask_from(
            "127.0.0.1",
            addr,
            &format!("n{i}.example.com."),
            RecordType::A,
        )
        .await;
    }
    eventually("two alerts", 20, || hook.got.lock().unwrap().len() >= 2).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let alerts = hook.alerts();
    let feed: Vec<_> = alerts.iter().filter(|a| a["rule"] == "feeds").collect();
    assert_eq!(feed.len(), 1, "{alerts:#?}");
    assert!(
        feed[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("feed download failed: feed:"),
        "{}",
        feed[0]
    );
    let drops: Vec<_> = alerts.iter().filter(|a| a["rule"] == "log-drops").collect();
    assert_eq!(drops.len(), 1, "{alerts:#?}");
    let msg = drops[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("the query log lost") && msg.contains("jsonl dropped"),
        "{msg}"
    );
    d.shutdown().await;
}

/// `GET /api/alerts` over the admin socket: `GET path`, the status and the body as JSON.
async fn api(admin: std::net::SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let (status, body) = http(admin, "GET", path, Some(TOKEN), None).await;
    let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    (status, v)
}

/// The (rule, client, outcome) of each alert of an `/api/alerts` answer.
fn summary(v: &serde_json::Value) -> Vec<(String, String, String)> {
    v["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("-").to_string();
            (s("rule"), s("client"), s("outcome"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_filters_by_rule_kind_client_and_delivery_outcome() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    write_common(dir);
    let (syslog_port, logs) = syslog_receiver().await;
    let (tcp_port, tcp_logs) = tcp_syslog_receiver().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = format!(
        r#"
[[lists]]
name = "threats"
category = "threat"
path = "threats.txt"

[admin]
listen = "127.0.0.1:0"
token_file = "token"

[alerting]
history = "alerts.db"
state_dir = "alert-state"
max_backoff = "30s"

[[alerts]]
name = "watch-ok"
kind = "watch"
names = ["www.example.com"]
syslog = "udp://127.0.0.1:{syslog_port}"

[[alerts]]
name = "watch-down"
kind = "watch"
names = ["www.other.net"]
webhook = "http://{closed}/hook"

[[alerts]]
name = "many"
kind = "client_threshold"
count = 2
category = "threat"
syslog = "tcp://127.0.0.1:{tcp_port}"
"#
    );
    let cfg_path = dir.join("filters.toml");
    std::fs::write(&cfg_path, h.config_text("") + &extra).unwrap();
    let d = start_dnsward_text(&std::fs::read_to_string(&cfg_path).unwrap(), dir).await;
    let addr = d.addrs()[0];
    // One at a time (UDP workers hand their events over in batches): the alerts' order.
    for (from, name) in [
        ("127.0.0.1", "www.example.com."),
        ("127.0.0.2", "www.example.com."),
        ("127.0.0.2", "www.other.net."),
        ("127.0.0.3", "bad1.test."),
        ("127.0.0.3", "bad2.test."),
    ] {
        ask_from(from, addr, name, RecordType::A).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eventually("two syslog messages", 15, || {
        logs.lock().unwrap().len() >= 2
    })
    .await;
    eventually("one over TCP", 15, || tcp_logs.lock().unwrap().len() == 1).await;
    let tcp = tcp_logs.lock().unwrap()[0].clone();
    assert!(
        tcp.starts_with("<132>1 ")
            && tcp.contains(
                "rule=\"many\" kind=\"client_threshold\" client=\"127.0.0.3\" count=\"2\"]"
            ),
        "{tcp}"
    );
    let admin = d.admin_addr().unwrap();
    // The webhook's first attempt fails (nothing listens): its alert is retrying.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, v) = api(admin, "/api/alerts?since=1h&outcome=retrying").await;
        if summary(&v).len() == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "no retrying alert: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, all) = api(admin, "/api/alerts?since=1h").await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(summary(&all).len(), 4, "{all}");
    let s = |v: &str, c: &str, o: &str| (v.to_string(), c.to_string(), o.to_string());
    for (query, want) in [
        (
            "rule=watch-ok",
            vec![
                s("watch-ok", "127.0.0.1", "delivered"),
                s("watch-ok", "127.0.0.2", "delivered"),
            ],
        ),
        (
            "kind=client_threshold",
            vec![s("many", "127.0.0.3", "delivered")],
        ),
        (
            "client=127.0.0.2",
            vec![
                s("watch-ok", "127.0.0.2", "delivered"),
                s("watch-down", "127.0.0.2", "retrying"),
            ],
        ),
        (
            "outcome=retrying",
            vec![s("watch-down", "127.0.0.2", "retrying")],
        ),
        (
            "rule=watch-ok&client=127.0.0.2&outcome=delivered",
            vec![s("watch-ok", "127.0.0.2", "delivered")],
        ),
        ("outcome=lost", vec![]),
        ("kind=audit", vec![]),
        ("limit=1", vec![s("many", "127.0.0.3", "delivered")]),
    ] {
        let (status, v) = api(admin, &format!("/api/alerts?since=1h&{query}")).await;
        assert_eq!(status, 200, "{query}: {v}");
        assert_eq!(summary(&v), want, "{query}: {v}");
    }
    let (_, v) = api(admin, "/api/alerts?since=1h&outcome=delivered").await;
    assert_eq!(summary(&v).len(), 3, "{v}");
    let (_, v) = api(admin, "/api/alerts?since=1h&rule=watch-down").await;
    assert_eq!(v["alerts"][0]["delivery"]["webhook"], "retrying", "{v}");
    assert!(v["alerts"][0]["id"].as_str().unwrap().len() == 16, "{v}");

    // Bad values: 400 with a message naming the parameter.
    for (query, word) in [
        ("kind=nope", "kind"),
        ("outcome=sent", "outcome"),
        ("client=pc-17", "client"),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("since=sometime", "since"),
        ("source=mysql", "source"),
        ("source=clickhouse", "no [querylog] clickhouse"),
        ("colour=red", "colour"),
    ] {
        let (status, v) = api(admin, &format!("/api/alerts?{query}")).await;
        assert_eq!(status, 400, "{query}: {v}");
        let e = v["error"].as_str().unwrap();
        assert!(e.contains(word), "{query}: {e}");
    }

    // The command prints the same JSON, with the same filters and the same errors.
    let cfg = cfg_path.clone();
    let run = move |args: &'static [&'static str]| {
        let cfg = cfg.clone();
        async move {
            tokio::task::spawn_blocking(move || dnsward_cmd("alerts", &cfg, args))
                .await
                .unwrap()
        }
    };
    let out = run(&["list", "--since", "1h", "--json", "--client", "127.0.0.2"]).await;
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let (_, v) = api(admin, "/api/alerts?since=1h&client=127.0.0.2").await;
    assert_eq!(&lines, v["alerts"].as_array().unwrap());
    let out = run(&["list", "--since", "1h", "--outcome", "retrying"]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.lines().count() == 1 && text.contains("watch-down"),
        "{text}"
    );
    let out = run(&["list", "--kind", "nope"]).await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--kind \"nope\": expected one of"), "{err}");
    d.shutdown().await;
}

/// A TLS acceptor with a certificate for 127.0.0.1 from a CA made here; the CA's PEM file.
fn smtp_tls(dir: &Path) -> (tokio_rustls::TlsAcceptor, std::path::PathBuf) {
    use rustls_pki_types::pem::PemObject;
    let ca = common::tls::TestCa::new(dir);
    let (cert, key) = ca.issue(dir, "smtp", &["127.0.0.1"]);
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    (
        tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        ca.ca_pem.clone(),
    )
}

/// A config mailing `www.example.com` lookups through `[smtp]` on `port` with STARTTLS
/// (`ca_line`: the `ca_file` key, or nothing); its history and outbox named by `tag`.
fn starttls_config(h: &Hierarchy, tag: &str, port: u16, ca_line: &str) -> String {
    h.config_text("")
        + &format!(
            r#"
[admin]
listen = "127.0.0.1:0"
token_file = "token"

[alerting]
history = "alerts-{tag}.db"
state_dir = "alert-state-{tag}"
max_backoff = "1s"

[smtp]
server = "127.0.0.1"
port = {port}
starttls = true
{ca_line}
from = "dnsward@agency.example"

[[alerts]]
name = "watch-mail"
kind = "watch"
names = ["www.example.com"]
email = ["oncall@agency.example"]
"#
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_goes_over_starttls_and_waits_when_tls_is_not_there() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    write_common(dir);
    let (acceptor, ca) = smtp_tls(dir);
    assert_eq!(ca, dir.join("ca.pem"));
    let (tls_port, tls_mails) = smtp_server(Some(acceptor)).await;
    let (plain_port, plain_mails) = smtp_receiver().await;

    // A server offering STARTTLS with a certificate of our CA (`ca_file`): the mail arrives
    // over TLS.
    let text = starttls_config(&h, "tls", tls_port, "ca_file = \"ca.pem\"");
    let d = start_dnsward_text(&text, dir).await;
    ask_from("127.0.0.1", d.addrs()[0], "www.example.com.", RecordType::A).await;
    eventually("a mail", 15, || !tls_mails.lock().unwrap().is_empty()).await;
    let mail = tls_mails.lock().unwrap()[0].clone();
    assert!(mail.starts_with("[tls]\n"), "not over TLS: {mail}");
    assert!(
        mail.contains("RCPT TO:<oncall@agency.example>")
            && mail.contains("Subject: [dnsward] watch-mail: "),
        "{mail}"
    );
    let admin = d.admin_addr().unwrap();
    let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("dnsward_alerts_total{rule=\"watch-mail\",action=\"email\"} 1"),
        "{metrics}"
    );
    let (_, v) = api(admin, "/api/alerts?since=1h").await;
    assert_eq!(v["alerts"][0]["delivery"]["email"], "delivered", "{v}");
    d.shutdown().await;

    // starttls = true against a server without STARTTLS, and against one whose certificate
    // nothing trusts (no ca_file): no mail, a failure counted, the alert waits in the outbox.
    for (tag, port, ca_line) in [
        ("plain", plain_port, "ca_file = \"ca.pem\""),
        ("untrusted", tls_port, ""),
    ] {
        let d = start_dnsward_text(&starttls_config(&h, tag, port, ca_line), dir).await;
        ask_from("127.0.0.1", d.addrs()[0], "www.example.com.", RecordType::A).await;
        let admin = d.admin_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
            if metrics.contains("dnsward_alert_failures_total{action=\"email\"}") {
                break;
            }
            assert!(Instant::now() < deadline, "no failure counted: {metrics}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Retried (max_backoff 1 s), never delivered.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let outbox = dir.join(format!("alert-state-{tag}/outbox/email"));
        assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 1, "{tag}");
        let (_, v) = api(admin, "/api/alerts?since=1h").await;
        assert_eq!(v["alerts"][0]["outcome"], "retrying", "{v}");
        let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
        assert!(
            !metrics.contains("dnsward_alerts_total{rule=\"watch-mail\",action=\"email\"}"),
            "{metrics}"
        );
        let failures: u64 = metrics
            .lines()
            .find_map(|l| l.strip_prefix("dnsward_alert_failures_total{action=\"email\"} "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap();
        assert!(failures >= 2, "retried: {failures}");
        d.shutdown().await;
    }
    assert!(plain_mails.lock().unwrap().is_empty());
    assert_eq!(tls_mails.lock().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_outbox_bound_the_oldest_delivery_is_dropped_counted_and_shown_lost() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    write_common(dir);
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = format!(
        r#"
[admin]
listen = "127.0.0.1:0"
token_file = "token"

[alerting]
history = "alerts.db"
state_dir = "alert-state"
max_backoff = "30s"
queue_max = 2

[[alerts]]
name = "watch-www"
kind = "watch"
names = ["www.example.com"]
webhook = "http://{closed}/hook"
"#
    );
    let d = start_dnsward_text(&(h.config_text("") + &extra), dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    // Three clients, three alerts, two places in the outbox: the first is dropped.
    for c in ["127.0.0.2", "127.0.0.3", "127.0.0.4"] {
        ask_from(c, dns, "www.example.com.", RecordType::A).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
        if metrics.contains("dnsward_alerts_lost_total{action=\"webhook\"} 1") {
            break;
        }
        assert!(Instant::now() < deadline, "no loss counted: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, lost) = api(admin, "/api/alerts?since=1h&outcome=lost").await;
    assert_eq!(
        summary(&lost),
        [(
            "watch-www".to_string(),
            "127.0.0.2".to_string(),
            "lost".to_string()
        )],
        "{lost}"
    );
    let (_, waiting) = api(admin, "/api/alerts?since=1h&outcome=retrying").await;
    let (_, pending) = api(admin, "/api/alerts?since=1h&outcome=pending").await;
    assert_eq!(
        summary(&waiting).len() + summary(&pending).len(),
        2,
        "{waiting} {pending}"
    );
    let outbox = dir.join("alert-state/outbox/webhook");
    assert_eq!(std::fs::read_dir(&outbox).unwrap().count(), 2);
    d.shutdown().await;
}
