//! Event windows: a window a few seconds long switches the policy at its boundaries by itself
//! (lists for every client, lists for one group, an alert rule active only inside), with no
//! query dropped across the switch; `dnsward check` and `/api/stats` show each event's state.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const TOKEN: &str = "events-test-token-0123456789";

/// RFC 3339 with a +07:00 offset, `secs` from now (whole seconds).
fn at(secs: i64) -> (String, Instant) {
    let now = time::OffsetDateTime::now_utc();
    let t = now.replace_nanosecond(0).unwrap() + time::Duration::seconds(secs + 1);
    let wait = (t - now).whole_milliseconds() as u64;
    let local = t.to_offset(time::macros::offset!(+7));
    (
        local
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        Instant::now() + Duration::from_millis(wait),
    )
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t.into()).await;
}

async fn event_states(admin: SocketAddr) -> Vec<String> {
    let (status, body) = http(admin, "GET", "/api/stats", Some(TOKEN), None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}={}",
                e["name"].as_str().unwrap(),
                e["state"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_window_switches_the_policy_at_its_boundaries() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    std::fs::write(dir.join("strict.txt"), "www.other.net\n").unwrap();
    std::fs::write(dir.join("kids-festival.txt"), "www.example.com\n").unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    // (`serve` creates the admin API's runtime lists; `check` before any serve wants them.)
    std::fs::write(dir.join("runtime-list.txt"), "").unwrap();
    std::fs::write(dir.join("runtime-list@kids.txt"), "").unwrap();
    // A webhook receiver for the event-only alert rule.
    let got: Arc<Mutex<Vec<String>>> = Arc::default();
    let g = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: String| {
            let g = Arc::clone(&g);
            async move {
                g.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let (start, started) = at(4);
    let (end, ended) = at(8);
    let extra = format!(
        r#"
[[lists]]
name = "strict"
category = "threat"
path = "strict.txt"

[[lists]]
name = "kids-festival"
category = "threat"
path = "kids-festival.txt"

[[groups]]
name = "kids"
clients = ["127.0.0.2/32"]

[admin]
listen = "127.0.0.1:0"
token_file = "token"

[alerting]
history = "alerts.db"
state_dir = "alert-state"

[[alerts]]
name = "during"
kind = "watch"
names = ["mail.example.com"]
webhook = "http://127.0.0.1:{hook_port}/hook"

[[events]]
name = "festival"
start = "{start}"
end = "{end}"
lists = ["strict"]
alerts = ["during"]

[[events]]
name = "festival-kids"
start = "{start}"
end = "{end}"
lists = ["kids-festival"]
groups = ["kids"]
"#
    );
    let cfg = dir.join("events.toml");
    std::fs::write(&cfg, h.config_text("") + &extra).unwrap();
    let out = dnsward_cmd("check", &cfg, &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!(
            "event \"festival\": upcoming ({start} .. {end}), next change "
        )),
        "{text}"
    );
    assert!(text.contains("groups [kids]"), "{text}");

    let config = dnsward::config::Config::load(&cfg).unwrap();
    let d = dnsward::instance::Instance::start(&config).await.unwrap();
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());

    // Before the window: everything answered, the event rule silent.
    assert_eq!(
        event_states(admin).await,
        ["festival=upcoming", "festival-kids=upcoming"]
    );
    for (from, name) in [
        ("127.0.0.1", "www.other.net."),
        ("127.0.0.2", "www.example.com."),
    ] {
        let m = ask_from(from, dns, name, RecordType::A).await;
        assert_eq!(
            m.metadata.response_code,
            ResponseCode::NoError,
            "{from} {name}"
        );
        assert_eq!(blocking_list(&m), None);
    }
    ask_from("127.0.0.1", dns, "mail.example.com.", RecordType::A).await;

    // Queries keep flowing across the opening boundary: none is lost.
    let flow = tokio::spawn(async move {
        let mut answered = 0;
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            let m = ask_from("127.0.0.3", dns, "www.example.com.", RecordType::A).await;
            assert_eq!(m.metadata.response_code, ResponseCode::NoError);
            answered += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        answered
    });

    // Inside: strict for everyone, the kids' list for the kids only, the event rule fires.
    sleep_until(started + Duration::from_millis(500)).await;
    assert_eq!(
        event_states(admin).await,
        ["festival=active", "festival-kids=active"]
    );
    let m = ask_from("127.0.0.1", dns, "www.other.net.", RecordType::A).await;
    assert_eq!(blocking_list(&m).as_deref(), Some("strict"));
    let m = ask_from("127.0.0.2", dns, "www.example.com.", RecordType::A).await;
    assert_eq!(blocking_list(&m).as_deref(), Some("kids-festival"));
    let m = ask_from("127.0.0.1", dns, "www.example.com.", RecordType::A).await;
    assert_eq!(
        blocking_list(&m),
        None,
        "not a kid: the kids' list does not apply"
    );
    assert!(
        got.lock().unwrap().is_empty(),
        "the rule was silent before the window"
    );
    ask_from("127.0.0.1", dns, "mail.example.com.", RecordType::A).await;
    eventually("an alert inside the window", 10, || {
        !got.lock().unwrap().is_empty()
    })
    .await;
    assert!(got.lock().unwrap()[0].contains("\"rule\":\"during\""));
    let answered = flow.await.unwrap();
    assert!(
        answered >= 20,
        "{answered} queries answered across the switch"
    );

    // After: back to the everyday policy.
    sleep_until(ended + Duration::from_millis(500)).await;
    assert_eq!(
        event_states(admin).await,
        ["festival=ended", "festival-kids=ended"]
    );
    for (from, name) in [
        ("127.0.0.1", "www.other.net."),
        ("127.0.0.2", "www.example.com."),
    ] {
        let m = ask_from(from, dns, name, RecordType::A).await;
        assert_eq!(blocking_list(&m), None, "{from} {name} after the window");
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    }
    d.shutdown().await;
}

#[test]
fn bad_events_are_named_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("l.txt"), "x.example\n").unwrap();
    let path = dir.path().join("bad.toml");
    check_rejects(
        &path,
        "[[lists]]\nname = \"l\"\ncategory = \"threat\"\npath = \"l.txt\"\n\n[[events]]\nname = \"e\"\nstart = \"2026-04-25T00:00:00+07:00\"\nend = \"2026-04-24T00:00:00+07:00\"\nlists = [\"l\", \"nope\"]\ngroups = [\"nobody\"]\nalerts = [\"missing\"]\n\n[[events]]\nname = \"f\"\nstart = \"tomorrow\"\nend = \"2026-04-24T00:00:00+07:00\"\nlists = [\"l\"]\n",
        &[
            "bad.toml:9: events[0].end",
            "bad.toml:10: events[0].lists[1]: unknown list \"nope\"",
            "bad.toml:11: events[0].groups[0]: unknown group \"nobody\"",
            "bad.toml:12: events[0].alerts[0]: unknown alert rule \"missing\"",
            "bad.toml:16: events[1].start",
        ],
    );
}
