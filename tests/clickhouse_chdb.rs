//! The ClickHouse store on today's ClickHouse engine, not only Debian's 18.16: chdb (the
//! ClickHouse engine in-process, from PyPI) behind ClickHouse's HTTP interface
//! (`clickhouse_chdb/server.py`), so dnsward's sink and `dnsward logs --source clickhouse`
//! send it exactly what they send a server. The schema of `packaging/clickhouse/` in both
//! forms, the sink's RowBinary bodies as it sent them, every query `dnsward logs` makes, and
//! the answers compared with SQLite's for the same events, and with 18.16's where that server
//! is installed (the same bodies replayed into it).
//!
//! Without python3 and chdb the test is skipped, under CI it fails (`.ci/run` installs chdb
//! with pip).

#[allow(dead_code)]
mod clickhouse_support;
mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use clickhouse_support::FINANCE;
use common::*;
use dnsward::querylog::clickhouse_client::{schema_statements, ClickhouseTarget, Version};
use dnsward::querylog::sinks::clickhouse::INSERT_COLUMNS;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

const SERVER_PY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/clickhouse_chdb/server.py"
);

/// The chdb-backed HTTP server (a python3 child), killed by PID when dropped.
struct Chdb {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
    /// held open: the server exits when it closes
    _stdin: ChildStdin,
}

impl Chdb {
    fn start() -> Option<Chdb> {
        let found = Command::new("python3")
            .args(["-c", "import chdb, pyarrow"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            common::tools::missing("python3 with chdb", "python3-pip, then pip install chdb");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("python3")
            .arg(SERVER_PY)
            .arg(dir.path())
            .arg("900")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.path().join("stderr")).unwrap())
            .spawn()
            .expect("python3 starts");
        let stdin = child.stdin.take().unwrap();
        // The port, or EOF if the server died (then its stderr says why).
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let Ok(port) = line.trim().parse() else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chdb server did not start: {}",
                std::fs::read_to_string(dir.path().join("stderr")).unwrap_or_default()
            );
        };
        Some(Chdb {
            dir,
            port,
            child,
            _stdin: stdin,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn query(&self, sql: &str) -> String {
        post_ok(self.port, "/", sql.as_bytes())
    }

    /// Every request the server got: SQL, settings, and the engine's error if any.
    fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("queries.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The insert bodies as the sink sent them (compressed), in order.
    fn insert_bodies(&self) -> Vec<Vec<u8>> {
        let dir = self.dir.path().join("inserts");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            .collect();
        names.sort();
        names.iter().map(|p| std::fs::read(p).unwrap()).collect()
    }
}

impl Drop for Chdb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encoding for a URL query value.
fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A bare HTTP/1.1 POST of bytes on loopback; (status, body).
fn post(port: u16, path: &str, body: &[u8]) -> (u16, String) {
    clickhouse_support::http_post_bytes(port, path, body, Duration::from_secs(60)).unwrap()
}

fn post_ok(port: u16, path: &str, body: &[u8]) -> String {
    match post(port, path, body) {
        (200, b) => b,
        other => panic!("{path} {}: {other:?}", String::from_utf8_lossy(body)),
    }
}

/// The schema statements for `database.q` in the form for server version `v` (on today's
/// engine without 18.16's `allow_experimental_low_cardinality_type`, which it no longer knows:
/// such a table was created before an upgrade).
fn create_schema(port: u16, database: &str, v: Version) {
    for s in schema_statements(&target(database), 30, v) {
        post_ok(port, "/", s.as_bytes());
    }
}

fn target(database: &str) -> ClickhouseTarget {
    ClickhouseTarget {
        url: String::new(),
        database: database.into(),
        table: "q".into(),
        user: None,
        password: None,
    }
}

/// The sink's bodies inserted into `database.q` as the sink inserts them.
fn replay(port: u16, database: &str, bodies: &[Vec<u8>]) {
    let sql = format!("INSERT INTO {database}.q ({INSERT_COLUMNS}) FORMAT RowBinary");
    for b in bodies {
        post_ok(
            port,
            &format!("/?query={}&decompress=1", url_encode(&sql)),
            b,
        );
    }
}

/// A config that reads the same SQLite store and the ClickHouse at `url`, database `db`.
fn reader_config(h: &Hierarchy, name: &str, url: &str, db: &str) -> PathBuf {
    config(
        h,
        name,
        &format!(
            "clickhouse = \"{url}\"\nclickhouse_database = \"{db}\"\nclickhouse_table = \"q\"\n"
        ),
    )
    .1
}

fn logs(cfg: &Path, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("logs")
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `top` and `clients` name the window: two runs may straddle a second.
fn strip_window(s: &str) -> String {
    s.lines()
        .filter(|l| !l.contains("\"until\"") && !l.contains("\"since\"") && !l.contains(" .. "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every form of every `dnsward logs` command (each ClickHouse query `--source clickhouse`
/// sends: `tail` with each filter, `tail -f` with and without rows, `export` both formats,
/// `top`, `clients` with and without categories); `--ref` is added by the test.
fn commands() -> Vec<Vec<String>> {
    let c = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
    let mut v = vec![
        c("export --format jsonl"),
        c("export --format csv --since 1h"),
        c("export --format jsonl --since 1h --until 2099-01-01"),
        c("export --format jsonl --qname-suffix example.com --action blocked"),
        c("export --format jsonl --qname-suffix EVIL.example.com."),
        c(&format!("export --format jsonl --client {FINANCE}")),
        c("export --format jsonl --client h:00000000000000ab"),
        c("tail -n 5"),
        c("tail -n 100 --since 1h --action allowed"),
        c("tail -f -n 3 --max-polls 2 --poll-ms 10"),
        c("tail -f -n 3 --category nothing --max-polls 2 --poll-ms 10"),
        c("tail --json --group finance"),
        c("tail --json --category abandoned"),
        c("top --since 1h --json"),
        c("top --since 1h --group finance -n 1"),
        c("top --since 1h -n 1"),
        c("clients --since 1h --min-blocked 2"),
        c("clients --since 1h --min-blocked 1 --json --category threat"),
        c("clients --since 1h --min-blocked 1 --min-domains 1 --json --group finance"),
    ];
    v.push(
        [
            "tail",
            "--client-name",
            "Finance PC-17",
            "--category",
            "threat",
        ]
        .map(String::from)
        .to_vec(),
    );
    v
}

/// Run every command on the store `a` names and on `b`; the outputs must be equal.
fn same_answers(a: (&Path, &str), b: (&Path, &str), extra: &[Vec<String>]) -> usize {
    let mut n = 0;
    for args in commands().iter().chain(extra) {
        let run = |(cfg, source): (&Path, &str)| {
            let mut x: Vec<&str> = args.iter().map(String::as_str).collect();
            x.extend(["--source", source]);
            logs(cfg, &x)
        };
        let (left, right) = (run(a), run(b));
        assert_eq!(
            strip_window(&left),
            strip_window(&right),
            "{args:?}: {} {} vs {} {}",
            a.0.display(),
            a.1,
            b.0.display(),
            b.1
        );
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_sink_bodies_and_every_logs_query_on_todays_engine_match_sqlite_and_18_16() {
    let Some(ch) = Chdb::start() else {
        return;
    };
    let version = ch.query("SELECT version()");
    let v = Version::parse(&version).expect("a version");
    assert!(!v.is_legacy(), "chdb is a current engine: {version}");
    eprintln!("chdb: ClickHouse {}", version.trim());

    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    std::fs::write(dir.join("ch.pass"), "s3cret\n").unwrap();
    let (text, cfg) = config(
        &h,
        "sink.toml",
        &format!(
            "clickhouse = \"{}\"\nclickhouse_database = \"fleet\"\nclickhouse_table = \"q\"\n\
             clickhouse_user = \"dnsward\"\nclickhouse_password_file = \"ch.pass\"\n",
            ch.url()
        ),
    );
    // The current form, through `init-clickhouse`, twice (idempotent).
    let init = logs(&cfg, &["init-clickhouse", "--ttl-days", "30"]);
    assert!(
        init.contains("created fleet.q and its 3 per-minute rollups on ClickHouse")
            && !init.contains("before 19.6"),
        "{init}"
    );
    logs(&cfg, &["init-clickhouse"]);
    // The pre-19.6 form, as a table created on 18.16 and kept through an upgrade.
    create_schema(
        ch.port,
        "legacy",
        Version {
            major: 18,
            minor: 16,
        },
    );
    let columns = |db: &str| {
        ch.query(&format!(
            "SELECT name, type FROM system.columns WHERE database = '{db}' AND table = 'q' AND name IN ('client', 'transport') ORDER BY name"
        ))
    };
    assert_eq!(
        columns("fleet"),
        "client\tIPv6\ntransport\tLowCardinality(String)\n"
    );
    assert_eq!(
        columns("legacy"),
        "client\tFixedString(16)\ntransport\tLowCardinality(String)\n"
    );
    assert!(ch
        .query("SHOW CREATE TABLE fleet.q")
        .contains("TTL time + toIntervalDay(30)"));

    // The events: TCP first (pushed at once), then UDP from two clients.
    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    clickhouse_support::blocked_over_tcp_first(addr).await;
    // SQLite's `tail` shows insertion order, ClickHouse's time order: a miss is logged when
    // answered, so each is given time before the next query.
    assert_eq!(
        rcode_from("127.0.0.1", addr, "nx-1.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..2 {
        assert_eq!(
            rcode_from("127.0.0.1", addr, "www.example.com.", RecordType::A).await,
            ResponseCode::NoError
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
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
    eventually("8 rows in the store", 15, || {
        ch.query("SELECT count() FROM fleet.q").trim() == "8"
    })
    .await;
    let log = d.engine.recorder.log().clone();
    d.shutdown().await;
    let stats = log.stats();
    for s in ["clickhouse", "sqlite"] {
        let s = stats.iter().find(|x| x.name == s).unwrap();
        assert_eq!((s.written, s.dropped, s.errors), (8, 0, 0), "{stats:?}");
    }

    // The same bodies into the pre-19.6 table.
    let bodies = ch.insert_bodies();
    assert!(!bodies.is_empty());
    replay(ch.port, "legacy", &bodies);
    assert_eq!(ch.query("SELECT count() FROM legacy.q"), "8\n");

    // Every command: SQLite's answer == today's engine's, on both forms of the table.
    let blocked_ts: i64 = ch
        .query(
            "SELECT ts_us FROM fleet.q WHERE qname = 'x.evil.example.com' ORDER BY ts_us LIMIT 1",
        )
        .trim()
        .parse()
        .unwrap();
    let id = dnsward::blockpage::reference::reference("x.evil.example.com", blocked_ts);
    let by_ref: Vec<String> = ["tail", "--json", "--ref", &id].map(String::from).to_vec();
    let fleet = reader_config(&h, "fleet.toml", &ch.url(), "fleet");
    let legacy = reader_config(&h, "legacy.toml", &ch.url(), "legacy");
    let n = same_answers(
        (&fleet, "sqlite"),
        (&fleet, "clickhouse"),
        std::slice::from_ref(&by_ref),
    );
    same_answers(
        (&fleet, "sqlite"),
        (&legacy, "clickhouse"),
        std::slice::from_ref(&by_ref),
    );
    assert_eq!(
        logs(
            &fleet,
            &["tail", "--json", "--ref", &id, "--source", "clickhouse"]
        )
        .lines()
        .count(),
        3
    );

    // The rollups, on both forms.
    for db in ["fleet", "legacy"] {
        assert_eq!(
            ch.query(&format!("SELECT action, category, list, sum(queries) FROM {db}.q_minute_actions GROUP BY action, category, list ORDER BY action, category")),
            "allowed\t\t\t3\nblocked\tabandoned\tgone\t1\nblocked\tthreat\tfeed\t4\n",
            "{db}"
        );
        assert_eq!(
            ch.query(&format!("SELECT IPv6NumToString(client), sum(queries) FROM {db}.q_minute_clients WHERE action = 'blocked' GROUP BY client ORDER BY client")),
            "::ffff:127.0.0.1\t1\n::ffff:127.0.0.2\t4\n",
            "{db}"
        );
        assert_eq!(
            ch.query(&format!("SELECT qname, sum(queries) FROM {db}.q_minute_qnames WHERE qname LIKE '%evil%' GROUP BY qname ORDER BY qname")),
            "evil.example.com\t1\nx.evil.example.com\t3\n",
            "{db}"
        );
        assert_eq!(
            ch.query(&format!("SELECT count() FROM {db}.q WHERE startsWith(qname_rev, reverse('.evil.example.com'))")),
            "3\n"
        );
    }

    // Nothing the engine was sent failed, and every kind of query was sent.
    let requests = ch.requests();
    let failed: Vec<_> = requests
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(
        failed.is_empty(),
        "refused by ClickHouse {}: {failed:#?}",
        version.trim()
    );
    let sqls: Vec<&str> = requests.iter().filter_map(|r| r["sql"].as_str()).collect();
    for kind in [
        "CREATE DATABASE IF NOT EXISTS fleet",
        "CREATE MATERIALIZED VIEW IF NOT EXISTS fleet.q_minute_qnames",
        "INSERT INTO fleet.q (time, ts_us",
        "ORDER BY ts_us DESC LIMIT",
        "AND ts_us > ",
        "SELECT max(ts_us) FROM",
        "countIf(action = 'blocked') AS b",
        "GROUP BY qname ORDER BY n DESC, qname LIMIT",
        "WHERE n >= (SELECT min(n) FROM",
        "GROUP BY category ORDER BY n DESC, category LIMIT",
        "HAVING blocked >= ",
        "AND category IN ('threat')",
        "GROUP BY qname ORDER BY count() DESC, qname LIMIT 3",
        "startsWith(qname_rev, ",
        "client_hash = 171",
        "client_name = 'Finance PC-17'",
    ] {
        assert!(
            sqls.iter().any(|s| s.contains(kind)),
            "no query with {kind:?} was sent"
        );
    }
    eprintln!(
        "ClickHouse {}: {} requests, {n} commands x 2 table forms equal to SQLite",
        version.trim(),
        requests.len()
    );

    // 18.16, where installed: the same bodies, the same answers as today's engine.
    let Some(old) = clickhouse_support::ClickHouse::start() else {
        return;
    };
    let old_cfg = reader_config(&h, "old.toml", &old.url(), "fleet");
    let init = logs(&old_cfg, &["init-clickhouse", "--ttl-days", "30"]);
    assert!(init.contains("before 19.6"), "{init}");
    let old_port: u16 = old.url().rsplit(':').next().unwrap().parse().unwrap();
    replay(old_port, "fleet", &bodies);
    assert_eq!(old.count("fleet.q"), 8);
    let n = same_answers((&old_cfg, "clickhouse"), (&fleet, "clickhouse"), &[by_ref]);
    eprintln!(
        "ClickHouse 18.16 and {}: {n} commands equal",
        version.trim()
    );
}

/// Lists, a named client in a group, and `[querylog]` with SQLite `log.db` and `querylog`.
fn config(h: &Hierarchy, name: &str, querylog: &str) -> (String, PathBuf) {
    clickhouse_support::store_config(h, name, &format!("sqlite = \"log.db\"\n{querylog}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_history_on_todays_engine_matches_sqlite() {
    let Some(ch) = Chdb::start() else {
        return;
    };
    let h = Hierarchy::start("").await;
    clickhouse_support::alert_history_matches_sqlite(&h, &ch.url(), "fleet", |t| {
        ch.query(&format!("SELECT count() FROM {t}"))
            .trim()
            .parse()
            .unwrap()
    })
    .await;
    let failed: Vec<_> = ch
        .requests()
        .into_iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(failed.is_empty(), "refused by ClickHouse: {failed:#?}");
}

/// The fleet's dashboard scoped to one resolver: two dnsward instances (`edge-1`, `edge-2`),
/// each with its own SQLite store, log to one ClickHouse table; the overview read from
/// ClickHouse lists both resolvers and, scoped to one, counts only its queries, as do the top
/// lists, `clients` and the search; one resolver's SQLite store lists only that resolver and
/// gives the same timeline as ClickHouse scoped to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_scopes_the_fleet_to_one_resolver() {
    let Some(ch) = Chdb::start() else {
        return;
    };
    const TOKEN: &str = "fleet-dashboard-token-0123456789";
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    let (text, cfg) = config(
        &h,
        "edge1.toml",
        &format!(
            "clickhouse = \"{}\"\nclickhouse_database = \"fleet\"\nclickhouse_table = \"q\"\n",
            ch.url()
        ),
    );
    logs(&cfg, &["init-clickhouse"]);
    let admin = |n: u32| {
        format!("[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime-{n}.txt\"\n")
    };
    let edge1 = text.clone() + &admin(1);
    let edge2 = text
        .replacen("name = \"edge-1\"", "name = \"edge-2\"", 1)
        .replacen("sqlite = \"log.db\"", "sqlite = \"log-2.db\"", 1)
        + &admin(2);
    let d1 = start_dnsward_text(&edge1, dir).await;
    let d2 = start_dnsward_text(&edge2, dir).await;
    let since = dnsward::timefmt::format_ts(dnsward::timefmt::now_us() - 600_000_000, 0);
    // edge-1: two allowed queries and one blocked; edge-2: four blocked (two lists)
    let (a1, a2) = (d1.addrs()[0], d2.addrs()[0]);
    for (addr, from, name, want) in [
        (a1, "127.0.0.1", "www.example.com.", ResponseCode::NoError),
        (a1, "127.0.0.1", "www.example.com.", ResponseCode::NoError),
        (a1, "127.0.0.1", "evil.example.com.", ResponseCode::NXDomain),
        (a2, FINANCE, "x.evil.example.com.", ResponseCode::NXDomain),
        (a2, FINANCE, "x.evil.example.com.", ResponseCode::NXDomain),
        (a2, FINANCE, "x.evil.example.com.", ResponseCode::NXDomain),
        (a2, FINANCE, "old.example.com.", ResponseCode::NXDomain),
    ] {
        assert_eq!(
            rcode_from(from, addr, name, RecordType::A).await,
            want,
            "{name}"
        );
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while ch.query("SELECT count() FROM fleet.q").trim() != "7" {
        assert!(std::time::Instant::now() < deadline, "7 rows within 20 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let until = dnsward::timefmt::format_ts(dnsward::timefmt::now_us() + 60_000_000, 0);
    let w = format!("since={since}&until={until}");
    let get = |admin: std::net::SocketAddr, path: String| async move {
        let (status, body) = http(admin, "GET", &path, Some(TOKEN), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let (m1, m2) = (d1.admin_addr().unwrap(), d2.admin_addr().unwrap());
    let fleet = format!("/api/ui/overview?{w}&source=clickhouse");
    let all = get(m1, fleet.clone()).await;
    assert_eq!(
        all["resolvers"],
        serde_json::json!(["edge-1", "edge-2"]),
        "{all}"
    );
    let t = &all["timeline"];
    assert_eq!(
        (t["queries"].as_u64(), t["blocked"].as_u64()),
        (Some(7), Some(5))
    );
    let two = get(m1, format!("{fleet}&resolver=edge-2")).await;
    let t = &two["timeline"];
    assert_eq!(
        (t["queries"].as_u64(), t["blocked"].as_u64()),
        (Some(4), Some(4))
    );
    let lists: Vec<(&str, u64)> = t["by_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), s["total"].as_u64().unwrap()))
        .collect();
    assert_eq!(lists, [("feed", 3), ("gone", 1)]);
    let one = get(m1, format!("{fleet}&resolver=edge-1")).await;
    let t = &one["timeline"];
    assert_eq!(
        (t["queries"].as_u64(), t["blocked"].as_u64()),
        (Some(3), Some(1))
    );
    // one resolver's own store: one resolver, and the same timeline as the fleet's scoped to it
    let local = get(m2, format!("/api/ui/overview?{w}&source=sqlite")).await;
    assert_eq!(local["resolvers"], serde_json::json!(["edge-2"]));
    assert_eq!(local["timeline"], two["timeline"]);
    let local1 = get(
        m1,
        format!("/api/ui/overview?{w}&source=sqlite&resolver=edge-1"),
    )
    .await;
    assert_eq!(local1["timeline"], one["timeline"]);
    // the search, the top lists and `clients` in the same scope
    let found = get(
        m1,
        format!("/api/ui/search?{w}&source=clickhouse&resolver=edge-2"),
    )
    .await;
    let rows = found["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{found}");
    assert!(rows.iter().all(|r| r["server"] == "edge-2"), "{found}");
    let top = get(
        m1,
        format!("/api/ui/top?{w}&source=clickhouse&resolver=edge-2"),
    )
    .await;
    assert_eq!(
        (top["queries"].as_u64(), top["blocked"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(top["domains"][0]["qname"], "x.evil.example.com", "{top}");
    assert_eq!(top["clients"][0]["client"], FINANCE, "{top}");
    let top1 = get(
        m1,
        format!("/api/ui/top?{w}&source=clickhouse&resolver=edge-1"),
    )
    .await;
    assert_eq!(top1["clients"][0]["client"], "127.0.0.1", "{top1}");
    assert_eq!(top1["clients"].as_array().unwrap().len(), 1, "{top1}");
    let infected = format!("/api/ui/clients?{w}&min_blocked=1&min_domains=1");
    let c1 = get(m1, format!("{infected}&source=clickhouse&resolver=edge-1")).await;
    assert_eq!(c1.as_array().unwrap().len(), 1, "{c1}");
    assert_eq!(c1[0]["client"], "127.0.0.1", "{c1}");
    let c2 = get(m1, format!("{infected}&source=clickhouse&resolver=edge-2")).await;
    let c2_local = get(m2, format!("{infected}&source=sqlite&resolver=edge-2")).await;
    assert_eq!(c2, c2_local);
    assert_eq!(c2[0]["top_domains"][0], "x.evil.example.com", "{c2}");
    d1.shutdown().await;
    d2.shutdown().await;
    drop(ch);
}
