//! The block page end to end: a sinkholed name opened in headless Chromium shows the domain,
//! the hotline and a reference ID that `dnsward logs tail --ref` finds in the query log; a
//! hostile Host header comes back escaped; the language follows Accept-Language; curl resolving
//! through our DoH lands on the page.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::tls::{TestCa, SERVER_NAME};
use common::*;
use dnsward::blockpage::reference::reference;
use hickory_proto::rr::RecordType;

const BLOCKED: &str = "c2.evil.example.com";
const HOTLINE: &str = "Hotline 1900 1234 (24/7)";

struct Setup {
    _h: Hierarchy,
    d: dnsward::instance::Instance,
    dir: PathBuf,
    config: PathBuf,
    ca: TestCa,
}

impl Setup {
    fn page(&self) -> SocketAddr {
        self.d.blockpage_addrs().0[0]
    }
}

async fn setup() -> Setup {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path().to_path_buf();
    let ca = TestCa::new(&dir);
    let (cert, key) = ca.issue(&dir, "server", &[SERVER_NAME]);
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    let text = h.config_text("").replacen(
        "udp_workers = 1\n",
        &format!("udp_workers = 1\nhttps_listen = [\"127.0.0.1:0\"]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n", cert.display(), key.display()),
        1,
    ) + &format!(
        "[policy]\naction = \"sinkhole\"\nsinkhole_ipv4 = \"127.0.0.1\"\nsinkhole_ipv6 = \"::1\"\ncontact = \"{HOTLINE}\"\n\n\
         [blockpage]\nlisten = [\"127.0.0.1:0\"]\nlanguages = [\"vi\", \"en\"]\nappeal_text = \"Appeal within 7 days.\"\nappeal_link = \"https://appeal.example.gov.vn/form\"\n\n\
         [[lists]]\nname = \"threats\"\ncategory = \"threat\"\npath = \"{0}/threat.txt\"\n\n[querylog]\nsqlite = \"{0}/log.db\"\n",
        dir.display()
    );
    let d = start_dnsward_text(&text, &dir).await;
    let config = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dnsward-"))
        })
        .unwrap();
    Setup {
        _h: h,
        d,
        dir,
        config,
        ca,
    }
}

/// A raw HTTP/1.1 GET with the given Host and extra headers: (status, body).
async fn get(addr: SocketAddr, host: &str, extra: &str) -> (u16, String) {
    let request = format!("GET / HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    let text = raw_http(addr, &request).await;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (
        status,
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default(),
    )
}

/// The text of `<td id="NAME">` in the page.
fn cell(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\">"))? + id.len() + 6;
    Some(html[start..start + html[start..].find('<')?].to_string())
}

/// Runs a command for at most `limit`; its stdout, or `None` when it cannot start.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + limit;
    while child.try_wait().ok()?.is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{cmd:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut out = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut()?, &mut out).ok()?;
    Some(out)
}

/// Debian's chromium (or the same browser under another name); else `None` after the `SKIP:`
/// line (a failure under CI).
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find_map(tools::which);
    if found.is_none() {
        tools::missing("chromium", "chromium");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_name_in_headless_chromium_shows_domain_hotline_and_a_reference_the_log_finds() {
    let s = setup().await;
    // The sinkhole sends the browser to the block page: the DNS half of the flow.
    let m = ask(s.d.addrs()[0], &format!("{BLOCKED}."), RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 127.0.0.1"]);

    let Some(browser) = chromium() else {
        return;
    };
    let rules = format!("--host-resolver-rules=MAP * {}", s.page());
    let url = format!("http://{BLOCKED}/some/path?x=1");
    let profile = s.dir.join("chromium-profile");
    let common_args = |extra: &[String]| {
        let mut c = Command::new(&browser);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--lang=en-US",
            &rules,
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(&url);
        c
    };
    let dom = run_bounded(
        &mut common_args(&["--dump-dom".into()]),
        Duration::from_secs(90),
    )
    .expect("chromium runs");
    assert!(dom.contains(BLOCKED), "the domain is shown: {dom}");
    assert!(dom.contains(HOTLINE), "the hotline is shown: {dom}");
    assert!(
        dom.contains("Access to this site has been blocked"),
        "English for an en-US browser: {dom}"
    );
    let id = cell(&dom, "reference").expect("a reference ID on the page");
    let now = dnsward::timefmt::now_us();
    assert!(
        id == reference(BLOCKED, now) || id == reference(BLOCKED, now - 120_000_000),
        "{id}"
    );
    assert_eq!(cell(&dom, "list").as_deref(), Some("threats"));

    let shot = artifact_dir().join("blockpage.png");
    let _ = std::fs::remove_file(&shot);
    run_bounded(
        &mut common_args(&[
            format!("--screenshot={}", shot.display()),
            "--window-size=1000,800".into(),
        ]),
        Duration::from_secs(90),
    );
    let png = std::fs::read(&shot).expect("the screenshot was written");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 5_000,
        "a real screenshot ({} bytes)",
        png.len()
    );
    eprintln!("block page screenshot: {}", shot.display());

    // The analyst finds the blocked query with the ID the person reads out.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let out = Command::new(BIN)
            .arg("logs")
            .arg("--config")
            .arg(&s.config)
            .args(["tail", "--json", "--ref", &id.to_lowercase()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        if text.lines().any(|l| {
            l.contains(&format!("\"qname\":\"{BLOCKED}\"")) && l.contains("\"action\":\"blocked\"")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "logs tail --ref {id} did not find the blocked query: {text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Another ID finds nothing, a malformed one is a clear error.
    let out = Command::new(BIN)
        .arg("logs")
        .arg("--config")
        .arg(&s.config)
        .args(["tail", "--json", "--ref", &reference("other.example", now)])
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new(BIN)
        .arg("logs")
        .arg("--config")
        .arg(&s.config)
        .args(["tail", "--ref", "nope"])
        .output()
        .unwrap();
    assert!(
        !out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("not a block page reference ID")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_host_header_is_escaped() {
    let s = setup().await;
    let (status, body) = get(
        s.page(),
        "<script>alert(1)</script>\"><img src=x onerror=alert(2)>",
        "",
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        !body.contains("<script>alert") && !body.contains("<img"),
        "{body}"
    );
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img"),
        "{body}"
    );
    // Not a listed name: the page says so instead of naming a list.
    assert!(cell(&body, "list").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_follows_accept_language_and_the_query() {
    let s = setup().await;
    let host = format!("www.{BLOCKED}:8080");
    let (_, vi) = get(
        s.page(),
        &host,
        "Accept-Language: vi-VN,vi;q=0.9,en;q=0.5\r\n",
    )
    .await;
    assert!(
        vi.contains("lang=\"vi\"") && vi.contains("Truy cập đến trang web này đã bị chặn"),
        "{vi}"
    );
    assert_eq!(
        cell(&vi, "domain").as_deref(),
        Some(format!("www.{BLOCKED}").as_str())
    );
    assert_eq!(cell(&vi, "contact").as_deref(), Some(HOTLINE));
    assert!(
        vi.contains("https://appeal.example.gov.vn/form") && vi.contains("Appeal within 7 days.")
    );
    let (_, en) = get(s.page(), &host, "Accept-Language: en-GB\r\n").await;
    assert!(en.contains("lang=\"en\"") && en.contains("Access to this site has been blocked"));
    let (_, default) = get(s.page(), &host, "").await;
    assert!(
        default.contains("lang=\"vi\""),
        "the first configured language by default"
    );
}

/// curl resolves the blocked name through our DoH, gets the sinkhole, and lands on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_through_doh_lands_on_the_block_page() {
    if !tools::require_tool("curl", "curl") {
        return;
    }
    let s = setup().await;
    let doh = s.d.doh_addrs()[0];
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "15", "--cacert"])
        .arg(&s.ca.ca_pem)
        .args([
            "--resolve",
            &format!("{SERVER_NAME}:{}:127.0.0.1", doh.port()),
        ])
        .args([
            "--doh-url",
            &format!("https://{SERVER_NAME}:{}/dns-query", doh.port()),
        ])
        .arg(format!("http://{BLOCKED}:{}/", s.page().port()))
        .output()
        .expect("curl runs");
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(
        body.contains(BLOCKED) && body.contains(HOTLINE),
        "{body} {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
