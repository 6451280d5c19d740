//! The query log through the server: events in SQLite and JSON lines with every field right,
//! dnstap read by dnstap-ldns, a stuck sink that never slows answers, and `dnsward logs`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

fn config_with_log(h: &Hierarchy, querylog: &str) -> String {
    let dir = h.dir.path();
    std::fs::write(dir.join("threat.txt"), "# feed\nevil.example.com\n").unwrap();
    std::fs::write(dir.join("gone.txt"), "old.example.com\n").unwrap();
    h.config_text("")
        .replacen("[server]\n", "[server]\nname = \"edge-1\"\n", 1)
        + &format!(
            "[policy]\ncontact = \"hotline\"\n\
             [[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"{0}/threat.txt\"\n\
             [[lists]]\nname = \"gone\"\ncategory = \"abandoned\"\npath = \"{0}/gone.txt\"\n\
             [querylog]\n{querylog}\n",
            dir.display()
        )
}

/// `[querylog]` lines for SQLite (`log.db`) and JSON lines (`log.jsonl`) in `dir`, and `extra`.
fn both_stores(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "sqlite = \"{0}/log.db\"\njsonl = \"{0}/log.jsonl\"\n{extra}",
        dir.display()
    )
}

/// dnsward on [`config_with_log`] with `querylog`, the config also written to `file` in the
/// hierarchy's directory (for `dnsward logs`): the server and that file.
async fn start_logging(
    h: &Hierarchy,
    file: &str,
    querylog: &str,
) -> (dnsward::instance::Instance, std::path::PathBuf) {
    let text = config_with_log(h, querylog);
    let cfg = h.dir.path().join(file);
    std::fs::write(&cfg, &text).unwrap();
    (start_dnsward_text(&text, h.dir.path()).await, cfg)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_and_allowed_queries_reach_sqlite_and_jsonl_with_every_field() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let (d, _) = start_logging(&h, "both.toml", &both_stores(dir, "")).await;
    let addr = d.addrs()[0];

    assert_eq!(
        answer_strings(&ask(addr, "www.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    assert_eq!(
        answer_strings(&ask(addr, "WWW.example.com.", RecordType::A).await),
        vec!["A 192.0.2.10"]
    );
    let blocked = ask(addr, "a.evil.example.com.", RecordType::AAAA).await;
    assert_eq!(blocked.metadata.response_code, ResponseCode::NXDomain);
    let gone = tcp_query(
        addr,
        &query_message("old.example.com.", RecordType::A, None),
    )
    .await;
    assert_eq!(gone.metadata.response_code, ResponseCode::NXDomain);

    let mut rows = read_jsonl(&dir.join("log.jsonl"), 4);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    // Events are written as queries finish: a miss may finish after the next query's hit.
    rows.sort_by_key(|r| r["ts_us"].as_i64().unwrap());
    let (first, second, evil, old) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    assert_eq!(first["qname"], "www.example.com");
    assert_eq!(first["qtype"], "A");
    assert_eq!(first["rcode"], "NOERROR");
    assert_eq!(first["action"], "allowed");
    assert_eq!(first["cached"], false);
    assert_eq!(second["cached"], true, "second query answered from cache");
    assert_eq!(first["answers"], serde_json::json!(["192.0.2.10"]));
    assert_eq!(first["client"], "127.0.0.1");
    assert!(first["client_port"].as_u64().unwrap() > 0);
    assert_eq!(first["transport"], "udp");
    assert_eq!(first["server"], "edge-1");
    assert!(first["category"].is_null() && first["list"].is_null());
    assert!(first["ts_us"].as_i64().unwrap() > 1_700_000_000_000_000);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert!(first["latency_us"].as_u64().unwrap() < 5_000_000);

    assert_eq!(evil["qname"], "a.evil.example.com");
    assert_eq!(evil["qtype"], "AAAA");
    assert_eq!(evil["rcode"], "NXDOMAIN");
    assert_eq!(evil["action"], "blocked");
    assert_eq!(evil["category"], "threat");
    assert_eq!(evil["list"], "feed");
    assert_eq!(evil["trigger"], "qname");
    let rule = evil["rule"].as_str().unwrap();
    assert!(
        rule.starts_with("evil.example.com (") && rule.ends_with("threat.txt:2)"),
        "{rule}"
    );

    assert_eq!(old["category"], "abandoned");
    assert_eq!(old["transport"], "tcp");

    // The same events in SQLite.
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("log.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut rows_db = Vec::new();
    for _ in 0..40 {
        let mut stmt = conn
            .prepare("SELECT qname, qtype, action, category, list, trigger, cached, answers, server, transport FROM queries ORDER BY ts_us")
            .unwrap();
        rows_db = stmt
            .query_map([], |r| {
                Ok(format!(
                    "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(3)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(4)?.unwrap_or_default(),
                    r.get::<_, Option<String>>(5)?.unwrap_or_default(),
                    r.get::<_, i64>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, String>(9)?,
                ))
            })
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        if rows_db.len() >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        rows_db,
        vec![
            "www.example.com|A|allowed||||0|192.0.2.10|edge-1|udp",
            "www.example.com|A|allowed||||1|192.0.2.10|edge-1|udp",
            "a.evil.example.com|AAAA|blocked|threat|feed|qname|0||edge-1|udp",
            "old.example.com|A|blocked|abandoned|gone|qname|0||edge-1|tcp",
        ]
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_allowed_false_keeps_only_blocked() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let text = config_with_log(
        &h,
        &format!(
            "jsonl = \"{}/only.jsonl\"\nlog_allowed = false\n",
            dir.display()
        ),
    );
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    ask(addr, "www.example.com.", RecordType::A).await;
    ask(addr, "evil.example.com.", RecordType::A).await;
    ask(addr, "mail.example.com.", RecordType::A).await;
    d.shutdown().await;
    let rows = read_jsonl(&dir.join("only.jsonl"), 1);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0]["qname"], "evil.example.com");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnstap_file_is_read_by_dnstap_ldns() {
    if !common::tools::require_tool("dnstap-ldns", "dnstap-ldns") {
        return;
    }
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let tap = dir.join("out.dnstap");
    let text = config_with_log(&h, &format!("dnstap = \"file:{}\"\n", tap.display()));
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    ask(addr, "www.example.com.", RecordType::A).await;
    ask(addr, "evil.example.com.", RecordType::TXT).await;
    d.shutdown().await;
    let out = Command::new("dnstap-ldns")
        .args(["-y", "-r"])
        .arg(&tap)
        .output()
        .unwrap();
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        yaml.contains("CLIENT_QUERY") && yaml.contains("CLIENT_RESPONSE"),
        "{yaml}"
    );
    assert!(yaml.contains("www.example.com"), "{yaml}");
    assert!(yaml.contains("evil.example.com"), "{yaml}");
    assert!(
        yaml.contains("NXDOMAIN"),
        "the blocked answer is in the frame: {yaml}"
    );
    assert!(yaml.contains("edge-1"), "identity: {yaml}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_sink_drops_and_counts_but_never_slows_answers() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    // A dnstap collector that accepts the connection and never reads a byte.
    let sock_path = dir.join("stuck.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let hold = std::thread::spawn(move || {
        let conn = listener.accept();
        std::thread::sleep(Duration::from_secs(8));
        drop(conn);
    });
    let text = config_with_log(
        &h,
        &format!(
            "dnstap = \"unix:{}\"\nqueue_size = 64\n",
            sock_path.display()
        ),
    );
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    ask(addr, "www.example.com.", RecordType::A).await;
    // 3000 cache hits, each waiting for its answer: every one is answered.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 2048];
    let q = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut answered = 0;
    for _ in 0..3000 {
        sock.send_to(&q, addr).await.unwrap();
        if tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf))
            .await
            .is_ok()
        {
            answered += 1;
        }
    }
    assert_eq!(answered, 3000);
    let stats = d.engine.recorder.log().stats();
    let tap = stats.iter().find(|s| s.name == "dnstap").unwrap();
    assert!(tap.dropped > 0, "drops are counted: {stats:?}");
    assert!(tap.queued <= 64, "the queue stays bounded: {stats:?}");
    d.shutdown().await;
    hold.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_cli_reads_what_the_server_wrote() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let sqlite = format!("sqlite = \"{}/log.db\"\n", dir.display());
    let (d, cfg) = start_logging(&h, "logs.toml", &sqlite).await;
    let addr = d.addrs()[0];
    for _ in 0..3 {
        ask(addr, "evil.example.com.", RecordType::A).await;
    }
    ask(addr, "x.evil.example.com.", RecordType::A).await;
    ask(addr, "old.example.com.", RecordType::A).await;
    ask(addr, "www.example.com.", RecordType::A).await;
    d.shutdown().await;

    let run = |args: &[&str]| logs_ok(&cfg, args);
    let top: Value = serde_json::from_str(&run(&["top", "--since", "1h", "--json"])).unwrap();
    let text = top.to_string();
    assert!(text.contains("evil.example.com"), "{text}");
    let top_table = run(&["top", "--since", "1h"]);
    assert!(
        top_table.contains("evil.example.com") && top_table.contains("127.0.0.1"),
        "{top_table}"
    );

    let tail = run(&["tail", "--action", "blocked", "-n", "10", "--json"]);
    let lines: Vec<Value> = tail
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{tail}");
    assert!(lines.iter().all(|l| l["action"] == "blocked"));
    let only_abandoned = run(&["tail", "--category", "abandoned", "--json"]);
    assert_eq!(only_abandoned.lines().count(), 1, "{only_abandoned}");

    let clients = run(&["clients", "--since", "1h"]);
    assert!(clients.contains("127.0.0.1"), "{clients}");

    let csv = run(&["export", "--format", "csv", "--since", "1h"]);
    assert_eq!(csv.lines().count(), 1 + 6, "header + 6 events:\n{csv}");
    assert!(csv.lines().next().unwrap().contains("qname"));
}

#[test]
fn explain_names_the_list_and_rule() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("t.txt"), "# feed\nevil.example\n").unwrap();
    std::fs::write(d.join("a.txt"), "ok.evil.example\n").unwrap();
    std::fs::write(d.join("ip.txt"), "10.0.0.0/8\n").unwrap();
    std::fs::write(
        d.join("c.toml"),
        "[[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"t.txt\"\n\
         [[lists]]\nname = \"fixes\"\ncategory = \"allow\"\npath = \"a.txt\"\n\
         [[lists]]\nname = \"nets\"\ncategory = \"threat\"\npath = \"ip.txt\"\n",
    )
    .unwrap();
    let explain = |args: &[&str]| {
        let out = dnsward_cmd("explain", &d.join("c.toml"), args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = explain(&["www.evil.example"]);
    assert_eq!(code, Some(1), "blocked exits 1: {out}");
    assert!(
        out.contains("block by list \"feed\" (threat) rule evil.example at"),
        "{out}"
    );
    assert!(out.contains("t.txt:2: evil.example"), "{out}");
    let (code, out) = explain(&["ok.evil.example"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("allow by list \"fixes\""), "{out}");
    let (code, out) = explain(&["fine.example", "10.1.2.3"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("address 10.1.2.3: block by list \"nets\"") && out.contains("10.0.0.0/8"),
        "{out}"
    );
    let (code, out) = explain(&["fine.example"]);
    assert_eq!(code, Some(0));
    assert!(out.contains("allowed (no list matches)"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_steady_traffic_an_attempt_is_logged_within_two_seconds() {
    // The UDP worker batches events; a query every 20 ms means its read timeout never fires,
    // so this checks that the batch is pushed by age while traffic goes on.
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let (d, cfg) = start_logging(&h, "steady.toml", &both_stores(dir, "")).await;
    let addr = d.addrs()[0];
    ask(addr, "www.example.com.", RecordType::A).await;
    // One socket for everything: SO_REUSEPORT keeps it on one worker, the busy one.
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 2048];
    let start = std::time::Instant::now();
    sock.send_to(
        &query_message("c2.evil.example.com.", RecordType::A, None)
            .to_vec()
            .unwrap(),
        addr,
    )
    .await
    .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(
        hickory_proto::op::Message::from_vec(&buf[..n])
            .unwrap()
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    let q = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let (mut in_jsonl, mut in_sqlite) = (None, None);
    for i in 0..200 {
        sock.send_to(&q, addr).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf)).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if i % 5 == 0 {
            if in_jsonl.is_none()
                && std::fs::read_to_string(dir.join("log.jsonl"))
                    .is_ok_and(|t| t.contains("c2.evil.example.com"))
            {
                in_jsonl = Some(start.elapsed());
            }
            if in_sqlite.is_none() {
                let tail = ["tail", "-n", "50", "--action", "blocked", "--json"];
                let out = dnsward_cmd("logs", &cfg, &tail);
                if String::from_utf8_lossy(&out.stdout).contains("c2.evil.example.com") {
                    in_sqlite = Some(start.elapsed());
                }
            }
            if in_jsonl.is_some() && in_sqlite.is_some() {
                break;
            }
        }
    }
    let (j, s) = (
        in_jsonl.expect("blocked attempt never reached the JSON lines"),
        in_sqlite.expect("never reached SQLite"),
    );
    assert!(
        j < Duration::from_secs(2) && s < Duration::from_secs(2),
        "seen after {j:?} (jsonl) and {s:?} (sqlite)"
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_can_keep_blocked_queries_only_while_jsonl_gets_every_query() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let querylog = both_stores(dir, "sqlite_log_allowed = false\n");
    let (d, cfg) = start_logging(&h, "split.toml", &querylog).await;
    let addr = d.addrs()[0];
    ask(addr, "www.example.com.", RecordType::A).await;
    ask(addr, "www.example.com.", RecordType::A).await;
    ask(addr, "x.evil.example.com.", RecordType::A).await;
    let rows = read_jsonl(&dir.join("log.jsonl"), 3);
    assert_eq!(
        rows.iter().filter(|r| r["action"] == "allowed").count(),
        2,
        "{rows:#?}"
    );
    d.shutdown().await;
    let stored: Vec<Value> = logs_ok(&cfg, &["export", "--format", "jsonl", "--since", "1h"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        stored.len(),
        1,
        "only the blocked query is in SQLite: {stored:#?}"
    );
    assert_eq!(stored[0]["qname"], "x.evil.example.com");
    assert_eq!(stored[0]["action"], "blocked");
}

/// Sends `n` cache-hit queries one after another; returns how many were answered.
async fn hits(addr: std::net::SocketAddr, n: usize) -> usize {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let q = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    let mut buf = vec![0u8; 2048];
    let mut answered = 0;
    for _ in 0..n {
        sock.send_to(&q, addr).await.unwrap();
        if tokio::time::timeout(Duration::from_secs(1), sock.recv_from(&mut buf))
            .await
            .is_ok()
        {
            answered += 1;
        }
    }
    answered
}

fn sink(d: &dnsward::instance::Instance, name: &str) -> dnsward::querylog::SinkStats {
    d.engine
        .recorder
        .log()
        .stats()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_database_unwritable_path_and_full_disk_never_stop_dns_and_losses_are_counted() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    std::fs::write(dir.join("garbage.db"), vec![b'x'; 8192]).unwrap();
    std::fs::write(dir.join("a-file"), "").unwrap();
    // /dev/full takes the open and fails every write with ENOSPC, as a full disk does.
    for (sinks, name, needle) in [
        (
            format!("sqlite = \"{}/garbage.db\"", dir.display()),
            "sqlite",
            "not a database",
        ),
        (
            format!("jsonl = \"{}/a-file/q.jsonl\"", dir.display()),
            "jsonl",
            "cannot open",
        ),
        (
            "jsonl = \"/dev/full\"".to_string(),
            "jsonl",
            "No space left on device",
        ),
    ] {
        let text = config_with_log(&h, &format!("{sinks}\nqueue_size = 16\n"));
        let d = start_dnsward_text(&text, dir).await;
        let addr = d.addrs()[0];
        assert_eq!(
            answer_strings(&ask(addr, "www.example.com.", RecordType::A).await),
            vec!["A 192.0.2.10"],
            "{sinks}"
        );
        assert_eq!(
            hits(addr, 100).await,
            100,
            "every query answered with {sinks}"
        );
        // The sink gets at least one go (it writes every 200-500 ms).
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let s = sink(&d, name);
        assert!(s.errors > 0, "{sinks}: {s:?}");
        assert!(
            s.last_error.as_deref().unwrap_or("").contains(needle),
            "{sinks}: {s:?}"
        );
        assert_eq!(s.written, 0, "{sinks}: {s:?}");
        assert!(
            s.dropped >= 100 - 16,
            "{sinks}: what could not be written is counted: {s:?}"
        );
        let log = d.engine.recorder.log().clone();
        d.shutdown().await;
        let s = log.stats().into_iter().find(|s| s.name == name).unwrap();
        assert_eq!(
            s.dropped, 101,
            "{sinks}: at shutdown every event is accounted for: {s:?}"
        );
    }
    // The corrupt file was left as it was.
    assert_eq!(
        std::fs::read(dir.join("garbage.db")).unwrap(),
        vec![b'x'; 8192]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_database_loses_only_what_came_while_locked_and_dns_keeps_answering() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let db = dir.join("log.db");
    let text = config_with_log(&h, &format!("sqlite = \"{}\"\n", db.display()));
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    ask(addr, "www.example.com.", RecordType::A).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(sink(&d, "sqlite").written, 1);

    // Another program takes the write lock (as a long-running `sqlite3` session would).
    let other = rusqlite::Connection::open(&db).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    assert_eq!(
        hits(addr, 50).await,
        50,
        "answers while the database is locked"
    );
    // Our write waits for the lock (busy timeout 2 s), fails, and counts the batch as lost.
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    while sink(&d, "sqlite").errors == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = sink(&d, "sqlite");
    assert!(
        s.last_error.as_deref().unwrap_or("").contains("locked"),
        "{s:?}"
    );
    other.execute_batch("ROLLBACK").unwrap();
    drop(other);

    // Once the lock is gone the sink reopens (backoff 0.5 s) and writes again.
    assert_eq!(hits(addr, 20).await, 20);
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    loop {
        let s = sink(&d, "sqlite");
        if s.written + s.dropped >= 71 && s.queued == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the sink did not recover: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = sink(&d, "sqlite");
    assert!(s.written >= 21, "events after the lock are stored: {s:?}");
    assert_eq!(
        s.written + s.dropped,
        71,
        "every event is written or counted as lost: {s:?}"
    );
    d.shutdown().await;
    let conn = rusqlite::Connection::open(&db).unwrap();
    let n: u64 = conn
        .query_row("SELECT count(*) FROM queries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        n, s.written,
        "the database holds exactly what was counted as written"
    );
}
