//! The binary as a user runs it: `dnsward check`, `dnsward serve` answering dig, clean shutdown.

mod common;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;

#[test]
fn check_lists_every_problem_with_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    check_rejects(
        &path,
        "[server]\nlisten = [\"127.0.0.1:5353\", \"not-an-address\"]\ncolour = \"blue\"\n\n[resolver]\nmode = \"sideways\"\ncache_size = -5\nroot_hints = \"/nonexistent/root.hints\"\n\n[nonsense]\nx = 1\n",
        &[
            "bad.toml:2: server.listen[1]",
            "bad.toml:3: server.colour",
            "bad.toml:6: resolver.mode",
            "bad.toml:7: resolver.cache_size",
            "bad.toml:10: nonsense",
            "problem(s) found",
        ],
    );

    // serve refuses the same file with the same messages.
    let out = dnsward_cmd("serve", &path, &[]);
    assert!(!out.status.success());
    let serve_err = String::from_utf8_lossy(&out.stderr);
    assert!(
        serve_err.contains("bad.toml:3: server.colour"),
        "{serve_err}"
    );
    assert!(serve_err.contains("refusing to start"), "{serve_err}");
}

#[test]
fn check_accepts_the_shipped_config() {
    let shipped = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let out = dnsward_cmd("check", std::path::Path::new(shipped), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
}

#[test]
fn check_warns_when_a_private_root_meets_the_built_in_trust_anchor() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("root.hints"),
        ".  3600000 IN NS a.root.lab.\na.root.lab. 3600000 IN A 10.53.0.1\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("anchor.ds"), ". 3600 IN DS 1 13 2 ABCD\n").unwrap();
    let check = |extra: &str| {
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            format!("[resolver]\nroot_hints = \"root.hints\"\n{extra}"),
        )
        .unwrap();
        let out = dnsward_cmd("check", &path, &[]);
        assert!(out.status.success(), "a warning, not an error");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let warned = check("");
    assert!(
        warned.contains("warning: resolver.root_hints") && warned.contains("resolver.trust_anchor"),
        "{warned}"
    );
    for quiet in ["trust_anchor = \"anchor.ds\"\n", "dnssec = \"off\"\n"] {
        let out = check(quiet);
        assert!(
            !out.contains("warning: resolver.root_hints"),
            "{quiet}: {out}"
        );
    }
}

#[test]
fn semantic_problem_root_hints_missing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    // Relative paths are resolved against the config file's directory.
    let resolved = dir.path().join("missing.hints").display().to_string();
    check_rejects(
        &path,
        "[resolver]\nroot_hints = \"missing.hints\"\nforwarders = [\"127.0.0.1:53\"]\n",
        &[
            "c.toml:2: resolver.root_hints: cannot read root hints",
            "c.toml:3: resolver.forwarders: forwarders are only used with mode = \"forward\"",
            &resolved,
        ],
    );
    // A forward config without forwarders names the [resolver] table's line.
    check_rejects(
        &path,
        "[server]\n[resolver]\nmode = \"forward\"\n",
        &["c.toml:2: resolver.forwarders: mode = \"forward\" needs at least one forwarder"],
    );
}

struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(config_text: &str, dir: &std::path::Path) -> Served {
    let port = free_port();
    let path = dir.join("serve.toml");
    std::fs::write(
        &path,
        config_text.replace("127.0.0.1:0", &format!("127.0.0.1:{port}")),
    )
    .unwrap();
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Served {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

impl Served {
    /// SIGTERM, by its PID.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits (at most 10 s) for a clean exit (status 0); what it wrote to stderr.
    fn exits_cleanly(&mut self) -> String {
        let status = wait_exit(&mut self.child, Duration::from_secs(10));
        assert!(status.success(), "exit status {status:?}");
        let mut log = String::new();
        let mut stderr = self.child.stderr.take().unwrap();
        stderr.read_to_string(&mut log).unwrap();
        log
    }
}

fn wait_exit(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn wait_answering(addr: SocketAddr) {
    // A CHAOS-class query is answered (NOTIMP) without asking upstream.
    let mut q = query_message("version.bind.", RecordType::TXT, None);
    q.queries[0].set_query_class(hickory_proto::rr::DNSClass::CH);
    for _ in 0..100 {
        if udp_raw(addr, &q.to_vec().unwrap(), Duration::from_millis(100))
            .await
            .is_some()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("dnsward did not start answering on {addr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_dig_and_stops_cleanly_on_sigterm() {
    let h = Hierarchy::start("").await;
    let mut served = serve(&h.config_text(""), h.dir.path());
    wait_answering(served.addr).await;

    if common::tools::require_tool("dig", "dnsutils") {
        let port = served.addr.port().to_string();
        let dig = |mode: &str, name: &str| {
            let out = Command::new("dig")
                .args([
                    "@127.0.0.1",
                    "-p",
                    &port,
                    mode,
                    "+tries=1",
                    "+time=3",
                    name,
                    "A",
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(dig("+short", "www.example.com").trim(), "192.0.2.10");
        let text = dig("+tcp", "nope.example.com");
        assert!(text.contains("status: NXDOMAIN"), "{text}");
    }

    served.terminate();
    let log = served.exits_cleanly();
    assert!(log.contains("stopped"), "{log}");
    assert!(log.contains("cache_hits="), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_queries_are_answered_during_shutdown() {
    // Upstream never answers, so a query stays in flight until the 800 ms timeout.
    let dir = tempfile::tempdir().unwrap();
    let (_hole, text) = silent_root_config(dir.path());
    let mut served = serve(&text, dir.path());
    wait_answering(served.addr).await;
    let addr = served.addr;
    let pending = tokio::spawn(async move {
        let q = query_message("inflight.example.", RecordType::A, None);
        udp_raw(addr, &q.to_vec().unwrap(), Duration::from_secs(5)).await
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    served.terminate();
    let answer = pending
        .await
        .unwrap()
        .expect("the in-flight query is still answered");
    let m = hickory_proto::op::Message::from_vec(&answer).unwrap();
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    served.exits_cleanly();
}

#[test]
fn version_and_help_read_well() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("dnsward "),
        "{out:?}"
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in ["serve", "check", "explain", "logs"] {
        assert!(help.contains(cmd), "{help}");
    }
}

#[test]
fn admin_refuses_a_remote_bind_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.toml");
    check_rejects(
        &path,
        "[admin]\nlisten = \"0.0.0.0:9153\"\n",
        &["a.toml:2: admin.listen", "allow_remote"],
    );
    // allow_remote alone is not enough: TLS is required.
    check_rejects(
        &path,
        "[admin]\nlisten = \"0.0.0.0:9153\"\nallow_remote = true\n",
        &["admin.listen"],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_token_is_refused_and_logged() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    std::fs::write(dir.join("token"), "correct-horse-battery-staple-42\n").unwrap();
    let admin_port = free_port();
    let text = h.config_text("")
        + &format!("[admin]\nlisten = \"127.0.0.1:{admin_port}\"\ntoken_file = \"token\"\n");
    let mut served = serve(&text, dir);
    wait_answering(served.addr).await;
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let (status, _) = http(
        admin,
        "POST",
        "/api/reload",
        Some("not-the-right-token-at-all"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = http(
        admin,
        "POST",
        "/api/reload",
        Some("correct-horse-battery-staple-42"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    served.terminate();
    let log = served.exits_cleanly();
    assert!(log.contains("admin API: missing or wrong token"), "{log}");
    assert!(
        log.contains("peer=127.0.0.1:"),
        "the log names the peer: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_lists() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    std::fs::write(dir.join("feed.txt"), "evil.example.com\n").unwrap();
    let text = h.config_text("") + "[policy]\nwatch = false\n[[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"feed.txt\"\n";
    let mut served = serve(&text, dir);
    wait_answering(served.addr).await;
    let rcode = |m: hickory_proto::op::Message| m.metadata.response_code;
    assert_eq!(
        rcode(ask(served.addr, "www.example.com.", RecordType::A).await),
        ResponseCode::NoError
    );
    std::fs::write(dir.join("feed.txt"), "evil.example.com\nwww.example.com\n").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        rcode(ask(served.addr, "www.example.com.", RecordType::A).await),
        ResponseCode::NoError,
        "no watch: not yet"
    );
    let status = Command::new("kill")
        .args(["-HUP", &served.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut blocked = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if rcode(ask(served.addr, "www.example.com.", RecordType::A).await)
            == ResponseCode::NXDomain
        {
            blocked = true;
            break;
        }
    }
    assert!(blocked, "SIGHUP reloaded the list");
    served.terminate();
    served.exits_cleanly();
}
