//! `dnsward logs` over SQLite stores written by the sink, through the clap parser.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::querylog::event::*;
use crate::querylog::sinks::sqlite::{insert_batch, open_for_writing};
use crate::querylog::testutil::*;
use crate::timefmt::{format_ts, now_us};
use clap::Parser;

#[derive(clap::Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: LogsCommand,
}

fn cmd(args: &str) -> LogsCommand {
    Cli::try_parse_from(std::iter::once("logs").chain(args.split_whitespace()))
        .unwrap()
        .cmd
}

const H: i64 = 3_600_000_000;

fn ev_at(
    ago_h: f64,
    client: &str,
    qname: &str,
    action: EventAction,
    category: Option<&str>,
) -> LoggedEvent {
    let mut e = event(qname, action);
    e.ts_us = now_us() - (ago_h * H as f64) as i64;
    e.client = format!("{client}:4000").parse().unwrap();
    e.category = category.map(|c| c.to_string().into());
    logged(e)
}

/// A: infected (12 blocked, 4 malware domains); B: 2 ad blocks; C: allowed only;
/// D: one old block three days ago.
fn fixture() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("q.db");
    let mut c = open_for_writing(&p).unwrap();
    let mut b = vec![ev_at(
        72.0,
        "10.0.0.4",
        "old.evil.example",
        EventAction::Blocked,
        Some("malware"),
    )];
    for i in 0..12 {
        let d = [
            "c2.evil.example",
            "c2.evil.example",
            "c2.evil.example",
            "drop.bad.example",
            "x.evil.example",
            "pay.bad.example",
        ][i % 6];
        b.push(ev_at(
            3.0 - i as f64 * 0.05,
            "10.0.0.1",
            d,
            EventAction::Blocked,
            Some("malware"),
        ));
    }
    b.push(ev_at(
        1.0,
        "10.0.0.2",
        "ads.example",
        EventAction::Blocked,
        Some("ads"),
    ));
    b.push(ev_at(
        0.9,
        "10.0.0.2",
        "ads.example",
        EventAction::Blocked,
        Some("ads"),
    ));
    for i in 0..5 {
        b.push(ev_at(
            0.5 - i as f64 * 0.01,
            "10.0.0.3",
            &format!("ok{i}.notevil.example"),
            EventAction::Allowed,
            None,
        ));
    }
    insert_batch(&mut c, &b).unwrap();
    (dir, p)
}

fn run(db: &Path, args: &str) -> String {
    let mut out = Vec::new();
    run_logs(db, cmd(args), &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn tail_client_reads_the_clients_hours_across_batches() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.db");
    let mut c = open_for_writing(&db).unwrap();
    // 10.0.0.9 asks in hours 5, 3 and 0 back, between other clients, in three batches
    for (batch, ago) in [5.0, 3.0, 0.2].into_iter().enumerate() {
        let b: Vec<_> = (0..6)
            .map(|i| {
                let client = if i % 2 == 0 { "10.0.0.9" } else { "10.0.0.8" };
                let name = format!("b{batch}-{i}.example");
                ev_at(
                    ago - i as f64 * 0.01,
                    client,
                    &name,
                    EventAction::Allowed,
                    None,
                )
            })
            .collect();
        insert_batch(&mut c, &b).unwrap();
    }
    let names = |args: &str| -> Vec<String> {
        run(&db, args)
            .lines()
            .map(|l| serde_json::from_str::<LogRow>(l).unwrap().qname)
            .collect()
    };
    assert_eq!(
        names("tail --json -n 4 --client 10.0.0.9"),
        [
            "b1-4.example",
            "b2-0.example",
            "b2-2.example",
            "b2-4.example"
        ]
        .map(String::from),
        "the latest four of that client, across two hours, oldest first"
    );
    assert_eq!(
        names("tail --json -n 2 --client 10.0.0.9")[1],
        "b2-4.example"
    );
    assert_eq!(
        names("tail --json -n 50 --client 10.0.0.9 --since 4h").len(),
        6
    );
    assert_eq!(names("tail --json -n 50 --client 10.0.0.9").len(), 9);
    assert!(names("tail --json --client 10.9.9.9").is_empty());
}

#[test]
fn tail_shows_latest_oldest_first_with_filters() {
    let (_d, db) = fixture();
    let out = run(&db, "tail -n 3");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("TIME") && lines[0].contains("QNAME") && lines[0].contains("CATEGORY")
    );
    assert!(
        lines[1].contains("ok2.notevil.example") && lines[3].contains("ok4.notevil.example"),
        "{out}"
    );
    assert!(
        lines[1].contains("10.0.0.3:4000") && lines[1].contains("allowed*"),
        "{out}"
    );
    // columns are aligned: QNAME starts at the same offset on every line
    let col = lines[0].find("QNAME").unwrap();
    for l in &lines[1..] {
        assert_eq!(&l[col..col + 2], "ok", "{out}");
    }

    let out = run(&db, "tail --json --client 10.0.0.2 --action blocked");
    let rows: Vec<LogRow> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.client == "10.0.0.2"
        && r.qname == "ads.example"
        && r.action == EventAction::Blocked));
    assert!(rows[0].ts_us < rows[1].ts_us);

    let out = run(&db, "tail --json -n 100 --qname-suffix Evil.Example.");
    let names: std::collections::BTreeSet<String> = out
        .lines()
        .map(|l| serde_json::from_str::<LogRow>(l).unwrap().qname)
        .collect();
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["c2.evil.example", "old.evil.example", "x.evil.example"]
    );

    let out = run(&db, "tail --json -n 100 --category ads --since 2h");
    assert_eq!(out.lines().count(), 2);
    assert_eq!(
        run(&db, "tail --client 192.0.2.99"),
        "(no matching queries)\n"
    );
}

#[test]
fn tail_follow_prints_new_rows() {
    let (_d, db) = fixture();
    let db2 = db.clone();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(150));
        let mut c = open_for_writing(&db2).unwrap();
        insert_batch(
            &mut c,
            [&ev_at(
                0.0,
                "10.0.0.9",
                "late.evil.example",
                EventAction::Blocked,
                Some("malware"),
            )],
        )
        .unwrap();
    });
    let out = run(&db, "tail -f -n 1 --poll-ms 100 --max-polls 6");
    writer.join().unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].contains("ok4.notevil.example"));
    assert!(
        lines[2].contains("late.evil.example") && lines[2].contains("10.0.0.9"),
        "{out}"
    );
}

#[test]
fn top_table_and_json() {
    let (_d, db) = fixture();
    let out = run(&db, "top");
    assert!(out.contains("19 queries, 14 blocked (73.7%)"), "{out}");
    let dom = out
        .lines()
        .skip_while(|l| !l.starts_with("Top blocked domains"))
        .nth(2)
        .unwrap();
    let cells: Vec<&str> = dom.split_whitespace().collect();
    assert_eq!(cells, ["c2.evil.example", "6", "1", "malware"], "{out}");
    assert!(!out.contains("old.evil.example"), "outside 24h: {out}");

    let v: serde_json::Value =
        serde_json::from_str(&run(&db, "top --json --since 7d -n 2")).unwrap();
    assert_eq!(v["queries"], 20);
    assert_eq!(v["blocked"], 15);
    assert_eq!(v["domains"].as_array().unwrap().len(), 2);
    assert_eq!(v["domains"][0]["qname"], "c2.evil.example");
    assert_eq!(
        v["clients"][0],
        serde_json::json!({"client": "10.0.0.1", "blocked": 12, "domains": 4})
    );
    assert_eq!(v["clients"][1]["client"], "10.0.0.2");
    assert_eq!(
        v["categories"][0],
        serde_json::json!({"category": "malware", "blocked": 13, "clients": 2, "domains": 5})
    );
}

#[test]
fn clients_flags_infected_hosts() {
    let (_d, db) = fixture();
    let out = run(&db, "clients");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].starts_with("CLIENT") && lines[0].contains("FIRST SEEN"));
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        &cells[..5],
        ["10.0.0.1", "-", "12", "4", "malware"],
        "{out}"
    );
    assert_eq!(cells[7], "c2.evil.example", "{out}");

    let v: Vec<serde_json::Value> = serde_json::from_str(&run(
        &db,
        "clients --json --min-blocked 2 --min-domains 100",
    ))
    .unwrap();
    let names: Vec<&str> = v.iter().map(|c| c["client"].as_str().unwrap()).collect();
    assert_eq!(names, ["10.0.0.1", "10.0.0.2"]);
    assert_eq!(v[1]["categories"], serde_json::json!(["ads"]));
    assert!(v[0]["first_seen"].as_str().unwrap() < v[0]["last_seen"].as_str().unwrap());
    assert_eq!(v[0]["top_domains"][0], "c2.evil.example");

    let v: Vec<serde_json::Value> = serde_json::from_str(&run(
        &db,
        "clients --json --since 7d --min-blocked 1 --category malware",
    ))
    .unwrap();
    let names: Vec<&str> = v.iter().map(|c| c["client"].as_str().unwrap()).collect();
    assert_eq!(names, ["10.0.0.1", "10.0.0.4"]);
    assert_eq!(
        run(&db, "clients --min-blocked 1000 --min-domains 1000"),
        "(no client crosses the thresholds)\n"
    );
}

#[test]
fn export_csv_and_jsonl_with_time_window() {
    let (_d, db) = fixture();
    let out = run(&db, "export --format csv --since 2h");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 1 + 7, "{out}");
    assert!(lines[1].contains(",10.0.0.2,4000,udp,ads.example,A,NXDOMAIN,blocked,ads,threat-feed,*.evil.example,qname,false,,1234,edge-1"), "{}", lines[1]);
    assert!(
        lines[7].contains("\"198.51.100.7,2001:db8::7\""),
        "{}",
        lines[7]
    );

    let now = now_us();
    let until = format_ts(now - 2 * H, 0);
    let out = run(&db, &format!("export --format jsonl --until {until}"));
    let rows: Vec<LogRow> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1 + 12, "rows older than 2h");
    assert!(rows.windows(2).all(|w| w[0].ts_us <= w[1].ts_us));
    assert_eq!(rows[0].qname, "old.evil.example");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.db");
    let e = run_logs(&missing, cmd("tail"), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    let e = run_logs(&junk, cmd("top"), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a database"), "{e}");
    let old = dir.path().join("old.db");
    let c = Connection::open(&old).unwrap();
    c.execute_batch("CREATE TABLE queries (id INTEGER PRIMARY KEY); PRAGMA user_version = 1;")
        .unwrap();
    drop(c);
    let e = run_logs(&old, cmd("tail"), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("older dnsward (schema 1)") && e.contains("dnsward serve"),
        "{e}"
    );
    let (_d, db) = fixture();
    let e = run_logs(&db, cmd("top --since yesterday"), &mut Vec::new())
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a time"), "{e}");
    assert!(Cli::try_parse_from(["logs", "tail", "--action", "maybe"]).is_err());
    assert!(Cli::try_parse_from(["logs", "export", "--format", "xml"]).is_err());
}
