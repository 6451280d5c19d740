//! DoH under real nghttp2-based clients at high concurrency: dnsperf's DoH mode (nghttp2 over
//! OpenSSL, one TLS record read at a time, many streams per connection as browsers use them)
//! and h2load. Issue 23: dnsperf got 16 answers and then nothing, because hyper coalesced
//! several responses into one TLS record (`server::h2_records`). Cache hits and blocked names
//! only, so no answer waits for an upstream and every query must come back.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::tls::{TestCa, SERVER_NAME};
use common::*;
use hickory_proto::rr::RecordType;

struct Setup {
    _h: Hierarchy,
    d: dnsward::instance::Instance,
    dir: PathBuf,
}

/// dnsward with DoH on loopback, `evil.example.com` blocked, `www.example.com` in the cache.
async fn setup() -> Setup {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path().to_path_buf();
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.issue(&dir, "server", &[SERVER_NAME, "127.0.0.1"]);
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    let text = h.config_text("").replacen(
        "udp_workers = 1\n",
        &format!(
            "udp_workers = 1\nhttps_listen = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            cert.display(),
            key.display()
        ),
        1,
    ) + &format!(
        "[[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"{}/threat.txt\"\n",
        dir.display()
    );
    let d = start_dnsward_text(&text, &dir).await;
    // Warm the cache: from now on www.example.com is answered without the hierarchy.
    let m = ask(d.addrs()[0], "www.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    Setup { _h: h, d, dir }
}

/// dnsperf's input: cache hits and blocked names, interleaved.
fn query_file(dir: &Path) -> PathBuf {
    let mut text = String::new();
    for i in 0..200 {
        text.push_str("www.example.com A\n");
        text.push_str(&format!("n{i}.evil.example.com A\n"));
    }
    let path = dir.join("queries.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `program` with `args`, killed if it is still running after `limit`.
async fn run_bounded(program: &str, args: &[String], limit: Duration) -> String {
    let child = tokio::process::Command::new(program)
        .args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} still running after {limit:?}"))
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{program} {args:?} failed:\n{text}");
    text
}

/// The number after `label` on its line of dnsperf's statistics.
fn stat(out: &str, label: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} in dnsperf output:\n{out}"));
    line[line.find(':').unwrap() + 1..]
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad {label:?} line: {line}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsperf_doh_with_many_streams_per_connection_loses_nothing() {
    if !common::tools::require_tool("dnsperf", "dnsperf") {
        return;
    }
    let s = setup().await;
    let data = query_file(&s.dir);
    let port = s.d.doh_addrs()[0].port().to_string();
    // (connections, queries outstanding): one connection with 8 and 100 streams (the stall
    // of issue 23), 16 connections with 100 each. Two seconds of sending, then at most
    // three to collect what is outstanding.
    for (clients, outstanding) in [(1, 8), (1, 100), (16, 100)] {
        let args: Vec<String> = [
            "-m",
            "doh",
            "-s",
            "127.0.0.1",
            "-p",
            &port,
            "-l",
            "2",
            "-t",
            "3",
            "-c",
            &clients.to_string(),
            "-q",
            &outstanding.to_string(),
            "-d",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([data.display().to_string()])
        .collect();
        let out = run_bounded("dnsperf", &args, Duration::from_secs(30)).await;
        let (sent, completed, lost) = (
            stat(&out, "Queries sent"),
            stat(&out, "Queries completed"),
            stat(&out, "Queries lost"),
        );
        assert_eq!(
            lost, 0,
            "-c {clients} -q {outstanding}: lost queries\n{out}"
        );
        assert_eq!(sent, completed, "-c {clients} -q {outstanding}\n{out}");
        // Far more than the 16 of the stall, even from a debug build on a busy machine.
        assert!(
            completed >= 500,
            "-c {clients} -q {outstanding}: only {completed} answers\n{out}"
        );
        assert!(
            out.contains("NOERROR") && out.contains("NXDOMAIN"),
            "cache hits and blocked answers expected\n{out}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_with_many_connections_and_streams_gets_every_answer() {
    if !common::tools::require_tool("h2load", "nghttp2-client") {
        return;
    }
    let s = setup().await;
    let body = s.dir.join("q.bin");
    std::fs::write(
        &body,
        query_message("www.example.com.", RecordType::A, None)
            .to_vec()
            .unwrap(),
    )
    .unwrap();
    let url = format!("https://127.0.0.1:{}/dns-query", s.d.doh_addrs()[0].port());
    for (clients, streams) in [(1, 100), (16, 10)] {
        let args: Vec<String> = [
            "-n",
            "4000",
            "-c",
            &clients.to_string(),
            "-m",
            &streams.to_string(),
            "-H",
            "content-type: application/dns-message",
            "-d",
            &body.display().to_string(),
            &url,
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        let out = run_bounded("h2load", &args, Duration::from_secs(60)).await;
        assert!(
            out.contains("4000 succeeded, 0 failed, 0 errored, 0 timeout"),
            "-c {clients} -m {streams}:\n{out}"
        );
        assert!(out.contains("status codes: 4000 2xx"), "{out}");
    }
}
