//! The ClickHouse query-log sink against a real ClickHouse server on loopback (Debian's
//! `clickhouse-server`, started per test with a temporary config, killed by PID at the end):
//! every field arrives, `dnsward logs` gives the same output from SQLite and ClickHouse, the
//! rollups fill, an outage is bridged by the spool in order, a missing table is reported and
//! recovered from. A tiny HTTP server plays a ClickHouse that answers 500 or hangs (both in
//! `clickhouse_support/`). Through all of it DNS keeps answering. Without `/usr/sbin/clickhouse-server` the
//! real-server tests are skipped (CI installs it: see `.ci/run`).

mod clickhouse_support;
mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clickhouse_support::*;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

/// One ClickHouse at a time: each takes a few hundred MB and a core while starting.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn dnsward_logs(cfg: &Path, args: &[&str]) -> std::process::Output {
    dnsward_cmd("logs", cfg, args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_arrives_logs_match_sqlite_and_rollups_fill() {
    let _g = SERIAL.lock().await;
    let Some(ch) = ClickHouse::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    // A user with a password (basic auth), from a file named relative to the config.
    std::fs::write(dir.join("ch.pass"), "s3cret\n").unwrap();
    let (text, cfg) = config(
        &h,
        &format!(
            "sqlite = \"log.db\"\nclickhouse = \"{}\"\nclickhouse_database = \"fleet\"\nclickhouse_table = \"q\"\n\
             clickhouse_user = \"dnsward\"\nclickhouse_password_file = \"ch.pass\"\n",
            ch.url()
        ),
    );
    // A wrong password is a clear error.
    std::fs::write(dir.join("ch.pass"), "wrong\n").unwrap();
    let out = dnsward_logs(&cfg, &["init-clickhouse"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HTTP") && err.contains("password"), "{err}");
    std::fs::write(dir.join("ch.pass"), "s3cret\n").unwrap();
    let init = logs_ok(&cfg, &["init-clickhouse", "--ttl-days", "30"]);
    assert!(init.contains("created fleet.q"), "{init}");
    // idempotent
    logs_ok(&cfg, &["init-clickhouse"]);

    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    let t0 = Instant::now();
    // SQLite's `tail` shows insertion order, ClickHouse's time order.
    clickhouse_support::blocked_over_tcp_first(addr).await;
    assert_eq!(
        rcode_from("127.0.0.1", addr, "www.example.com.", RecordType::A).await,
        ResponseCode::NoError
    );
    assert_eq!(
        rcode_from("127.0.0.1", addr, "www.example.com.", RecordType::A).await,
        ResponseCode::NoError
    ); // cached
    for _ in 0..3 {
        assert_eq!(
            rcode_from(FINANCE, addr, "x.evil.example.com.", RecordType::AAAA).await,
            ResponseCode::NXDomain
        );
    }
    assert_eq!(
        rcode_from(FINANCE, addr, "old.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    eventually("7 rows in ClickHouse", 10, || ch.count("fleet.q") >= 7).await;
    eprintln!("7 events visible in ClickHouse after {:?}", t0.elapsed());
    let stats = d.engine.recorder.log().stats();
    d.shutdown().await;
    let chs = stats.iter().find(|s| s.name == "clickhouse").unwrap();
    assert_eq!((chs.dropped, chs.errors), (0, 0), "{stats:?}");
    assert_eq!(ch.count("fleet.q"), 7);

    // Same output from both stores, command by command.
    for args in [
        vec!["export", "--format", "jsonl"],
        vec!["export", "--format", "csv", "--since", "1h"],
        vec![
            "export",
            "--format",
            "jsonl",
            "--qname-suffix",
            "example.com",
            "--action",
            "blocked",
        ],
        vec!["export", "--format", "jsonl", "--client", FINANCE],
        vec!["tail", "-n", "5"],
        vec![
            "tail",
            "-f",
            "-n",
            "3",
            "--max-polls",
            "2",
            "--poll-ms",
            "10",
        ],
        vec!["tail", "--json", "--group", "finance"],
        vec![
            "tail",
            "--client-name",
            "Finance PC-17",
            "--category",
            "threat",
        ],
        vec!["top", "--since", "1h", "--json"],
        vec!["top", "--since", "1h", "--group", "finance", "-n", "1"],
        vec!["clients", "--since", "1h", "--min-blocked", "2"],
        vec![
            "clients",
            "--since",
            "1h",
            "--min-blocked",
            "1",
            "--json",
            "--category",
            "threat",
        ],
    ] {
        let mut a = args.clone();
        a.extend(["--source", "sqlite"]);
        let from_sqlite = logs_ok(&cfg, &a);
        let n = a.len();
        a[n - 1] = "clickhouse";
        let from_clickhouse = logs_ok(&cfg, &a);
        // `top` names the window's end: the two runs may straddle a second.
        let strip = |s: &str| {
            s.lines()
                .filter(|l| {
                    !l.contains("\"until\"") && !l.contains("\"since\"") && !l.contains(" .. ")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&from_sqlite), strip(&from_clickhouse), "{args:?}");
        assert!(from_sqlite.lines().count() > 1, "{args:?}: {from_sqlite}");
    }
    // Every field, checked on the rows themselves (the SQLite sink's own tests pin them).
    let rows: Vec<serde_json::Value> = logs_ok(
        &cfg,
        &["export", "--format", "jsonl", "--source", "clickhouse"],
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    let blocked = rows
        .iter()
        .find(|r| r["action"] == "blocked" && r["transport"] == "udp")
        .unwrap();
    assert_eq!(blocked["client"], FINANCE);
    assert_eq!(blocked["client_name"], "Finance PC-17");
    assert_eq!(blocked["group"], "finance");
    assert_eq!(blocked["category"], "threat");
    assert_eq!(blocked["list"], "feed");
    assert_eq!(blocked["trigger"], "qname");
    assert_eq!(blocked["qtype"], "AAAA");
    assert_eq!(blocked["rcode"], "NXDOMAIN");
    assert_eq!(blocked["server"], "edge-1");
    assert!(
        blocked["rule"]
            .as_str()
            .unwrap()
            .contains("evil.example.com"),
        "{blocked}"
    );
    assert!(blocked["client_port"].as_u64().unwrap() > 0);
    let allowed: Vec<&serde_json::Value> =
        rows.iter().filter(|r| r["action"] == "allowed").collect();
    assert_eq!(allowed.len(), 2);
    assert_eq!(allowed[0]["answers"], serde_json::json!(["192.0.2.10"]));
    assert_eq!(
        (
            allowed[0]["cached"].as_bool(),
            allowed[1]["cached"].as_bool()
        ),
        (Some(false), Some(true))
    );
    assert!(allowed[0]["client_name"].is_null(), "{}", allowed[0]);
    assert!(rows.iter().any(|r| r["transport"] == "tcp"));

    // `--ref`: the block page reference ID of a blocked query finds it in both stores.
    let id = dnsward::blockpage::reference::reference(
        blocked["qname"].as_str().unwrap(),
        blocked["ts_us"].as_i64().unwrap(),
    );
    let by_ref =
        |source: &str| logs_ok(&cfg, &["tail", "--json", "--ref", &id, "--source", source]);
    let from_sqlite = by_ref("sqlite");
    assert_eq!(from_sqlite.lines().count(), 3, "{from_sqlite}");
    assert_eq!(from_sqlite, by_ref("clickhouse"));

    // Rollups: per minute, by action/category/list, by client, by qname.
    assert_eq!(
        ch.query("SELECT action, category, list, sum(queries) FROM fleet.q_minute_actions GROUP BY action, category, list ORDER BY action, category"),
        "allowed\t\t\t2\nblocked\tabandoned\tgone\t1\nblocked\tthreat\tfeed\t4\n"
    );
    assert_eq!(
        ch.query("SELECT IPv6NumToString(client), sum(queries) FROM fleet.q_minute_clients WHERE action = 'blocked' GROUP BY client ORDER BY client"),
        "::ffff:127.0.0.1\t1\n::ffff:127.0.0.2\t4\n"
    );
    assert_eq!(
        ch.query("SELECT qname, sum(queries) FROM fleet.q_minute_qnames WHERE qname LIKE '%evil%' GROUP BY qname ORDER BY qname"),
        "evil.example.com\t1\nx.evil.example.com\t3\n"
    );
    // Suffix search on the reversed name.
    assert_eq!(
        ch.query(
            "SELECT count() FROM fleet.q WHERE startsWith(qname_rev, reverse('.evil.example.com'))"
        ),
        "3\n"
    );
}

/// Count of answered queries out of `n` distinct names `prefix-i.example.com` (allowed,
/// NXDOMAIN from the fake hierarchy).
async fn send_names(addr: SocketAddr, prefix: &str, n: usize) -> usize {
    let mut answered = 0;
    for i in 0..n {
        let q = query_message(&format!("{prefix}-{i}.example.com."), RecordType::A, None);
        if udp_raw(addr, &q.to_vec().unwrap(), Duration::from_secs(3))
            .await
            .is_some()
        {
            answered += 1;
        }
    }
    answered
}

fn spool_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".chunk"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_bridged_by_the_spool_and_replayed_in_order() {
    let _g = SERIAL.lock().await;
    let Some(mut ch) = ClickHouse::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let (text, cfg) = spooled_config(&h, &ch.url(), "clickhouse_spool_mb = 16\n");
    logs_ok(&cfg, &["init-clickhouse"]);
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    assert_eq!(send_names(addr, "before", 20).await, 20);
    eventually("20 rows before the outage", 10, || {
        ch.count("dnsward.queries") >= 20
    })
    .await;

    // ... and acknowledged: a server killed between committing an insert and answering it
    // gets that batch again after the outage (at least once, see README).
    let log = d.engine.recorder.log().clone();
    eventually("20 rows acknowledged", 10, || ch_sink(&log).written >= 20).await;
    ch.stop();
    // DNS keeps answering while ClickHouse is down; the events go to the spool.
    let t = Instant::now();
    assert_eq!(
        send_names(addr, "during", 200).await,
        200,
        "every query answered"
    );
    let took = t.elapsed();
    let spool = dir.join("spool");
    eventually("events spooled", 20, || spool_files(&spool) > 0).await;
    let c = ch_sink(d.engine.recorder.log());
    assert!(c.errors >= 1 && c.dropped == 0, "{c:?}");
    assert!(
        c.last_error
            .as_deref()
            .unwrap()
            .contains("Connection refused")
            || c.last_error.as_deref().unwrap().contains("connect"),
        "{c:?}"
    );
    eprintln!(
        "200 queries during the outage answered in {took:?}; spool: {} chunks",
        spool_files(&spool)
    );

    ch.run();
    // Recovery without a restart: the spool is replayed (back-off is at most a few seconds
    // after these few failures).
    eventually("every event in ClickHouse", 60, || {
        ch.count("dnsward.queries") >= 220
    })
    .await;
    assert_eq!(send_names(addr, "after", 10).await, 10);
    eventually("230 rows", 10, || ch.count("dnsward.queries") >= 230).await;
    eventually("spool emptied", 10, || spool_files(&spool) == 0).await;
    d.shutdown().await;
    let c = ch_sink(&log);
    assert_eq!((c.written, c.dropped), (230, 0), "{c:?}");

    // In order: each insert makes a part with a higher block number; a name sent later never
    // sits in a part inserted earlier.
    let rows = ch.query(
        "SELECT qname, toUInt64(splitByChar('_', _part)[2]) FROM dnsward.queries ORDER BY ts_us",
    );
    let mut last_block = 0u64;
    let mut names = Vec::new();
    for line in rows.lines() {
        let (name, block) = line.split_once('\t').unwrap();
        let block: u64 = block.parse().unwrap();
        assert!(
            block >= last_block,
            "{name} inserted before an earlier event: {rows}"
        );
        last_block = block;
        names.push(name.to_string());
    }
    let want: Vec<String> = (0..20)
        .map(|i| format!("before-{i}.example.com"))
        .chain((0..200).map(|i| format!("during-{i}.example.com")))
        .chain((0..10).map(|i| format!("after-{i}.example.com")))
        .collect();
    assert_eq!(names, want, "every event once, in order");
    assert_eq!(ch.count("dnsward.queries"), 230);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_table_is_reported_and_recovered_from_without_restart() {
    let _g = SERIAL.lock().await;
    let Some(ch) = ClickHouse::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let (text, cfg) = spooled_config(&h, &ch.url(), "");
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    assert_eq!(send_names(addr, "early", 30).await, 30);
    let log = d.engine.recorder.log().clone();
    eventually("the refusal is recorded", 10, || {
        ch_sink(&log)
            .last_error
            .is_some_and(|e| e.contains("init-clickhouse"))
    })
    .await;
    let c = ch_sink(&log);
    assert!(
        c.last_error.as_deref().unwrap().contains("doesn't exist"),
        "{c:?}"
    );
    assert_eq!((c.written, c.dropped), (0, 0), "{c:?}");
    // `logs` over the missing table: a clear error, not a panic.
    let out = dnsward_logs(&cfg, &["tail", "--source", "clickhouse"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("doesn't exist"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    logs_ok(&cfg, &["init-clickhouse"]);
    eventually("the spooled events arrive", 60, || {
        ch.count("dnsward.queries") >= 30
    })
    .await;
    assert_eq!(send_names(addr, "late", 5).await, 5);
    eventually("35 rows", 10, || ch.count("dnsward.queries") >= 35).await;
    d.shutdown().await;
    assert_eq!(ch.count("dnsward.queries"), 35);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_answering_500_or_hanging_never_slows_dns_and_is_recovered_from() {
    let fake = FakeClickHouse::start();
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let fake_url = format!("http://127.0.0.1:{}", fake.port);
    let (text, _) = spooled_config(&h, &fake_url, "");
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    let log = d.engine.recorder.log().clone();

    fake.set(Fake::Error500);
    assert_eq!(send_names(addr, "e500", 50).await, 50);
    eventually("the 500 is recorded", 10, || {
        ch_sink(&log)
            .last_error
            .is_some_and(|e| e.contains("HTTP 500") && e.contains("Too many parts"))
    })
    .await;
    assert_eq!(ch_sink(&log).written, 0);
    assert!(fake.refused.load(Ordering::SeqCst) >= 1);

    // Hanging: inserts time out (5 s); answers are not held up meanwhile. Keep asking
    // until a timeout is recorded.
    fake.set(Fake::Hang);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut sent = 50u64;
    let mut round = 0;
    while !ch_sink(&log)
        .last_error
        .is_some_and(|e| e.contains("timed out"))
    {
        assert!(
            Instant::now() < deadline,
            "no timeout recorded: {:?}",
            ch_sink(&log)
        );
        let t = Instant::now();
        assert_eq!(
            send_names(addr, &format!("hang{round}"), 50).await,
            50,
            "every query answered"
        );
        let took = t.elapsed();
        assert!(took < Duration::from_secs(5), "answers slowed: {took:?}");
        sent += 50;
        round += 1;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("{sent} queries answered while ClickHouse hung ({round} rounds of 50)");

    fake.set(Fake::Ok);
    eventually("everything delivered once the server answers", 90, || {
        ch_sink(&log).written >= sent
    })
    .await;
    let c = ch_sink(&log);
    assert_eq!((c.written, c.dropped), (sent, 0), "{c:?}");
    assert!(c.errors >= 2, "{c:?}");
    assert!(fake.accepted.load(Ordering::SeqCst) >= 1);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_the_oldest_counted_and_dns_keeps_answering() {
    // Nothing listens here: ClickHouse is down for the whole test.
    let port = free_port();
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let url = format!("http://127.0.0.1:{port}");
    let (text, _) = spooled_config(&h, &url, "clickhouse_spool_mb = 1\n");
    // Pre-fill the spool to just under its limit with a chunk "from an earlier run".
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    std::fs::write(
        spool.join("00000000000000000000-7.chunk"),
        vec![0u8; 1024 * 1024 - 100],
    )
    .unwrap();
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    assert_eq!(
        send_names(addr, "full", 100).await,
        100,
        "every query answered"
    );
    let log = d.engine.recorder.log().clone();
    eventually(
        "the old chunk is dropped for the new ones, counted",
        10,
        || ch_sink(&log).dropped >= 7,
    )
    .await;
    let c = ch_sink(&log);
    assert_eq!(c.dropped, 7, "only the old chunk's rows: {c:?}");
    assert!(!spool.join("00000000000000000000-7.chunk").exists());
    assert!(spool_files(&spool) >= 1);
    d.shutdown().await;
}

#[test]
fn bad_clickhouse_keys_are_reported_by_check() {
    let dir = tempfile::tempdir().unwrap();
    check_rejects(
        &dir.path().join("bad.toml"),
        "[server]\nlisten = [\"127.0.0.1:0\"]\n\n[querylog]\nclickhouse = \"ftp://10.0.0.5\"\n\
         clickhouse_table = \"queries; DROP TABLE x\"\nclickhouse_user = \"\"\n\
         clickhouse_spool_mb = 99999999\n",
        &[
            "querylog.clickhouse: \"ftp://10.0.0.5\": expected an http:// or https:// URL",
            "querylog.clickhouse_table: \"queries; DROP TABLE x\" must be letters, digits and underscores",
            "querylog.clickhouse_user: empty",
            "querylog.clickhouse_spool_mb: 99999999 is more than 1 TiB",
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_and_truncated_clients_read_back_as_sqlite_has_them() {
    let _g = SERIAL.lock().await;
    let Some(ch) = ClickHouse::start() else {
        return;
    };
    for mode in ["hash", "truncate"] {
        let h = Hierarchy::start("").await;
        let dir = h.dir.path();
        let (text, cfg) = config(
            &h,
            &format!(
                "sqlite = \"log.db\"\nclickhouse = \"{}\"\nclickhouse_table = \"q_{mode}\"\nclient_ip = \"{mode}\"\n",
                ch.url()
            ),
        );
        logs_ok(&cfg, &["init-clickhouse"]);
        let d = start_dnsward_text(&text, dir).await;
        let addr = d.addrs()[0];
        for from in ["127.0.0.1", FINANCE, FINANCE] {
            assert_eq!(
                rcode_from(from, addr, "x.evil.example.com.", RecordType::A).await,
                ResponseCode::NXDomain
            );
        }
        let table = format!("dnsward.q_{mode}");
        eventually("3 rows", 10, || ch.count(&table) >= 3).await;
        d.shutdown().await;
        let from_sqlite = logs_ok(&cfg, &["export", "--format", "jsonl", "--source", "sqlite"]);
        assert_eq!(
            from_sqlite,
            logs_ok(
                &cfg,
                &["export", "--format", "jsonl", "--source", "clickhouse"]
            ),
            "{mode}"
        );
        let client = if mode == "hash" {
            serde_json::from_str::<serde_json::Value>(from_sqlite.lines().nth(1).unwrap()).unwrap()
                ["client"]
                .as_str()
                .unwrap()
                .to_string()
        } else {
            "127.0.0.0".to_string()
        };
        for args in [
            vec!["clients", "--since", "1h", "--min-blocked", "1"],
            vec!["tail", "--client", &client],
        ] {
            let mut a = args.clone();
            a.extend(["--source", "sqlite"]);
            let from_sqlite = logs_ok(&cfg, &a);
            let n = a.len();
            a[n - 1] = "clickhouse";
            assert_eq!(from_sqlite, logs_ok(&cfg, &a), "{mode} {args:?}");
            assert!(
                from_sqlite.contains(&client),
                "{mode} {args:?}: {from_sqlite}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_spooled_before_a_restart_are_replayed_after_it() {
    let _g = SERIAL.lock().await;
    let Some(mut ch) = ClickHouse::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let (text, cfg) = spooled_config(&h, &ch.url(), "");
    logs_ok(&cfg, &["init-clickhouse"]);
    ch.stop();
    // ClickHouse is down for this whole run of dnsward: what it logs waits on disk.
    let d = start_dnsward_text(&text, dir).await;
    assert_eq!(send_names(d.addrs()[0], "first-run", 40).await, 40);
    let log = d.engine.recorder.log().clone();
    d.shutdown().await;
    let c = ch_sink(&log);
    assert_eq!((c.written, c.dropped), (0, 0), "{c:?}");
    assert!(spool_files(&dir.join("spool")) >= 1);

    ch.run();
    let d = start_dnsward_text(&text, dir).await;
    assert_eq!(send_names(d.addrs()[0], "second-run", 10).await, 10);
    eventually("both runs' events in ClickHouse", 30, || {
        ch.count("dnsward.queries") >= 50
    })
    .await;
    d.shutdown().await;
    let names = ch.query("SELECT qname FROM dnsward.queries ORDER BY ts_us");
    let want: Vec<String> = (0..40)
        .map(|i| format!("first-run-{i}.example.com"))
        .chain((0..10).map(|i| format!("second-run-{i}.example.com")))
        .collect();
    assert_eq!(names.lines().collect::<Vec<_>>(), want);
    assert_eq!(spool_files(&dir.join("spool")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_spool_failed_batches_are_dropped_counted_and_the_sink_recovers() {
    let fake = FakeClickHouse::start();
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let fake_url = format!("http://127.0.0.1:{}", fake.port);
    let (text, _) = spooled_config(&h, &fake_url, "clickhouse_spool_mb = 0\n");
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    let log = d.engine.recorder.log().clone();
    fake.set(Fake::Error500);
    assert_eq!(send_names(addr, "lost", 20).await, 20);
    eventually("a failed batch is dropped, counted", 10, || {
        ch_sink(&log).dropped >= 1
    })
    .await;
    assert_eq!(ch_sink(&log).written, 0);
    fake.set(Fake::Ok);
    assert_eq!(send_names(addr, "kept", 10).await, 10);
    eventually("later events are written", 30, || {
        ch_sink(&log).written >= 10
    })
    .await;
    d.shutdown().await;
    let c = ch_sink(&log);
    assert_eq!(
        c.written + c.dropped,
        30,
        "every event written or counted: {c:?}"
    );
    assert!(!dir.join("spool").exists(), "no spool was made");
}

/// Lists, a named client in a group, and `[querylog]` with `querylog`.
fn config(h: &Hierarchy, querylog: &str) -> (String, PathBuf) {
    store_config(h, "dnsward-ch.toml", querylog)
}

/// [`config`] logging to the ClickHouse at `url` with the spool in `spool/`, and the
/// `[querylog]` lines `extra`.
fn spooled_config(h: &Hierarchy, url: &str, extra: &str) -> (String, PathBuf) {
    config(
        h,
        &format!("clickhouse = \"{url}\"\nclickhouse_spool_dir = \"spool\"\n{extra}"),
    )
}

/// The ClickHouse sink's figures in the query log's stats.
fn ch_sink(log: &dnsward::querylog::QueryLog) -> dnsward::querylog::bus::SinkStats {
    log.stats()
        .into_iter()
        .find(|s| s.name == "clickhouse")
        .expect("a clickhouse sink")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_history_in_clickhouse_matches_sqlite() {
    let _g = SERIAL.lock().await;
    let Some(ch) = ClickHouse::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    alert_history_matches_sqlite(&h, &ch.url(), "fleet", |t| ch.count(t)).await;
}
