//! Test servers for tests/clickhouse.rs: a real ClickHouse of our own on loopback (started
//! with a temporary config, killed by PID when dropped) and a tiny HTTP server that plays a
//! ClickHouse answering 500 or hanging.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{dechunk, free_port};

/// The address of the client named "Finance PC-17" in group "finance" ([`store_config`]).
pub const FINANCE: &str = "127.0.0.2";

/// A config on `h` writing the query log as `querylog` (lines of `[querylog]`) with two lists
/// (`feed`: evil.example.com, `gone`: old.example.com), a named client ([`FINANCE`]) in group
/// "finance", written to `file` in the hierarchy's directory: (text, path).
pub fn store_config(
    h: &crate::common::Hierarchy,
    file: &str,
    querylog: &str,
) -> (String, std::path::PathBuf) {
    let dir = h.dir.path();
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    std::fs::write(dir.join("gone.txt"), "old.example.com\n").unwrap();
    let text = h
        .config_text("")
        .replacen("[server]\n", "[server]\nname = \"edge-1\"\n", 1)
        + &format!(
            "[policy]\ncontact = \"hotline\"\nwatch = false\n\
             [[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"threat.txt\"\n\
             [[lists]]\nname = \"gone\"\ncategory = \"abandoned\"\npath = \"gone.txt\"\n\
             [[clients]]\nname = \"Finance PC-17\"\ncidr = \"{FINANCE}\"\ngroup = \"finance\"\n\
             [[groups]]\nname = \"finance\"\nlists = [\"feed\", \"gone\"]\n\
             [querylog]\n{querylog}\n"
        );
    let path = dir.join(file);
    std::fs::write(&path, &text).unwrap();
    (text, path)
}

/// A blocked query over TCP (`evil.example.com. TXT`: NXDOMAIN), then 300 ms: its event is
/// pushed at once, before any of the UDP workers' batches (those wait up to 100 ms), so it is
/// the first row of both stores.
pub async fn blocked_over_tcp_first(addr: std::net::SocketAddr) {
    let q = crate::common::query_message(
        "evil.example.com.",
        hickory_proto::rr::RecordType::TXT,
        None,
    );
    let m = crate::common::tcp_query(addr, &q).await;
    assert_eq!(
        m.metadata.response_code,
        hickory_proto::op::ResponseCode::NXDomain
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
}

pub const SERVER: &str = "/usr/sbin/clickhouse-server";

/// The server binary: `DNSWARD_CLICKHOUSE_SERVER` if set (e.g. one unpacked from the .deb
/// with `dpkg -x`), else Debian's.
pub fn server() -> String {
    std::env::var("DNSWARD_CLICKHOUSE_SERVER").unwrap_or_else(|_| SERVER.to_string())
}

/// A ClickHouse server of our own: its data under a temporary directory, HTTP only, on
/// 127.0.0.1 (never ::), killed when dropped.
pub struct ClickHouse {
    dir: tempfile::TempDir,
    http_port: u16,
    child: Option<Child>,
}

impl ClickHouse {
    pub fn start() -> Option<ClickHouse> {
        if !crate::common::tools::require_tool(&server(), "clickhouse-server") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let http_port = free_port();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <listen_host>127.0.0.1</listen_host>
  <http_port>{http_port}</http_port>
  <path>{d}/data/</path>
  <tmp_path>{d}/tmp/</tmp_path>
  <user_files_path>{d}/user_files/</user_files_path>
  <format_schema_path>{d}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>0</uncompressed_cache_size>
  <timezone>UTC</timezone>
</yandex>
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("users.xml"),
            r#"<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <dnsward><password>s3cret</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></dnsward>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#,
        )
        .unwrap();
        let mut ch = ClickHouse {
            dir,
            http_port,
            child: None,
        };
        ch.run();
        Some(ch)
    }

    /// Start the server process (again) and wait, bounded, until it answers.
    pub fn run(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new(server())
            .arg(format!(
                "--config-file={}",
                self.dir.path().join("config.xml").display()
            ))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("clickhouse-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = http_post(self.http_port, "/", "SELECT 1") {
                if body.trim() == "1" {
                    return;
                }
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!(
                    "clickhouse-server exited ({status}): {}",
                    std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "clickhouse-server did not answer within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Kill the server (by its PID) and wait for it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn query(&self, sql: &str) -> String {
        match http_post(self.http_port, "/", sql) {
            Ok((200, body)) => body,
            other => panic!("{sql}: {other:?}"),
        }
    }

    pub fn count(&self, table: &str) -> u64 {
        self.query(&format!("SELECT count() FROM {table}"))
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for ClickHouse {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A bare HTTP/1.1 POST on loopback; (status, body).
pub fn http_post(port: u16, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    http_post_bytes(port, path, body.as_bytes(), Duration::from_secs(30))
}

/// A bare HTTP/1.1 POST of bytes on loopback, the answer awaited for `timeout`; (status,
/// body, de-chunked).
pub fn http_post_bytes(
    port: u16,
    path: &str,
    body: &[u8],
    timeout: Duration,
) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let head_end = text.find("\r\n\r\n").map_or(text.len(), |i| i + 4);
    let head = &text[..head_end];
    let mut body = text[head_end..].to_string();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Ok((status, body))
}

/// What the fake ClickHouse does with an insert.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Fake {
    Ok,
    Error500,
    Hang,
}

/// A tiny HTTP server standing in for ClickHouse: answers every request as `mode` says and
/// counts the inserts it accepted.
pub struct FakeClickHouse {
    pub port: u16,
    mode: Arc<Mutex<Fake>>,
    pub accepted: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
}

impl FakeClickHouse {
    pub fn start() -> FakeClickHouse {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let mode = Arc::new(Mutex::new(Fake::Ok));
        let accepted = Arc::new(AtomicUsize::new(0));
        let refused = Arc::new(AtomicUsize::new(0));
        let (m, a, r) = (mode.clone(), accepted.clone(), refused.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let (m, a, r) = (m.clone(), a.clone(), r.clone());
                std::thread::spawn(move || serve_fake(&mut conn, &m, &a, &r));
            }
        });
        FakeClickHouse {
            port,
            mode,
            accepted,
            refused,
        }
    }
    pub fn set(&self, f: Fake) {
        *self.mode.lock().unwrap() = f;
    }
}

pub fn serve_fake(
    conn: &mut TcpStream,
    mode: &Mutex<Fake>,
    accepted: &AtomicUsize,
    refused: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        // one request per connection is enough for the test: read the head and the body
        let Ok(n) = conn.read(&mut chunk) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if buf.len() < end + 4 + len {
            continue;
        }
        let m = *mode.lock().unwrap();
        let (status, body) = match m {
            Fake::Ok => {
                accepted.fetch_add(1, Ordering::SeqCst);
                ("200 OK", "")
            }
            Fake::Error500 => {
                refused.fetch_add(1, Ordering::SeqCst);
                (
                    "500 Internal Server Error",
                    "Code: 252, e.displayText() = DB::Exception: Too many parts (300)",
                )
            }
            Fake::Hang => {
                std::thread::sleep(Duration::from_secs(15));
                return;
            }
        };
        let _ = write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        buf.drain(..end + 4 + len);
    }
}

/// The alert history in the fleet's ClickHouse at `url` (database `db`, table `q`), beside
/// SQLite's: a dnsward with two watch rules (one delivered through syslog, one whose webhook
/// nobody takes, so retrying) writes its alerts and their delivery records to both;
/// `GET /api/alerts` and `dnsward alerts list --json` with each filter give the same JSON from
/// both stores. `count(table)` counts a table's rows on that server.
pub async fn alert_history_matches_sqlite(
    h: &crate::common::Hierarchy,
    url: &str,
    db: &str,
    count: impl Fn(&str) -> u64,
) {
    use crate::common::{dnsward_cmd, http, logs_ok, rcode_from, start_dnsward_text};
    let dir = h.dir.path();
    let syslog = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token = "alert-history-token-0123456789";
    std::fs::write(dir.join("token"), token).unwrap();
    let (text, cfg) = store_config(
        h,
        "alerts-ch.toml",
        &format!("sqlite = \"log.db\"\nclickhouse = \"{url}\"\nclickhouse_database = \"{db}\"\nclickhouse_table = \"q\"\n"),
    );
    let text = text
        + &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\n\
             [alerting]\nhistory = \"alerts.db\"\nstate_dir = \"alert-state\"\nmax_backoff = \"30s\"\n\
             [[alerts]]\nname = \"watch-ok\"\nkind = \"watch\"\nnames = [\"www.example.com\"]\nsyslog = \"udp://{}\"\n\
             [[alerts]]\nname = \"watch-down\"\nkind = \"watch\"\nnames = [\"www.other.net\"]\nwebhook = \"http://{closed}/hook\"\n",
            syslog.local_addr().unwrap()
        );
    std::fs::write(&cfg, &text).unwrap();
    let init = logs_ok(&cfg, &["init-clickhouse"]);
    assert!(
        init.contains(&format!(
            "created the alert history {db}.q_alerts and {db}.q_alert_deliveries"
        )),
        "{init}"
    );

    let d = start_dnsward_text(&text, dir).await;
    let addr = d.addrs()[0];
    use hickory_proto::rr::RecordType::A;
    rcode_from("127.0.0.1", addr, "www.example.com.", A).await;
    rcode_from(FINANCE, addr, "www.example.com.", A).await;
    rcode_from(FINANCE, addr, "www.other.net.", A).await;
    // 3 alerts; 6 delivery records (2 x queued + delivered, queued + failed).
    let (alerts, deliveries) = (format!("{db}.q_alerts"), format!("{db}.q_alert_deliveries"));
    let deadline = Instant::now() + Duration::from_secs(20);
    while (count(&alerts), count(&deliveries)) != (3, 6) {
        assert!(
            Instant::now() < deadline,
            "3 alerts and 6 delivery records within 20 s: {} {}",
            count(&alerts),
            count(&deliveries)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let admin = d.admin_addr().unwrap();
    let api = move |source: &'static str| async move {
        let (status, body) = http(
            admin,
            "GET",
            &format!("/api/alerts?since=1h&source={source}"),
            Some(token),
            None,
        )
        .await;
        assert_eq!(status, 200, "{source}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["alerts"].clone()
    };
    let from_sqlite = api("sqlite").await;
    assert_eq!(from_sqlite.as_array().unwrap().len(), 3, "{from_sqlite}");
    assert_eq!(from_sqlite, api("clickhouse").await);
    d.shutdown().await;

    let list = |source: &str, filter: &[&str]| {
        let mut args = vec!["list", "--json", "--since", "1h", "--source", source];
        args.extend_from_slice(filter);
        let out = dnsward_cmd("alerts", &cfg, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    for (filter, n) in [
        (&[][..], 3),
        (&["--rule", "watch-ok"][..], 2),
        (&["--kind", "watch"][..], 3),
        (&["--client", FINANCE][..], 2),
        (&["--outcome", "retrying"][..], 1),
        (&["--outcome", "delivered"][..], 2),
        (&["--outcome", "lost"][..], 0),
        (&["--rule", "watch-ok", "--client", "127.0.0.1"][..], 1),
        (&["--limit", "1"][..], 1),
    ] {
        let sqlite = list("sqlite", filter);
        assert_eq!(sqlite.lines().count(), n, "{filter:?}: {sqlite}");
        assert_eq!(sqlite, list("clickhouse", filter), "{filter:?}");
    }
    let finance = list("clickhouse", &["--client", FINANCE]);
    assert!(
        finance.contains("\"client_name\":\"Finance PC-17\"")
            && finance.contains("\"group\":\"finance\""),
        "{finance}"
    );
}
