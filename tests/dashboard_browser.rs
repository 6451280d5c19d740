//! The analyst dashboard end to end in headless Chromium, driven through WebDriver (Debian's
//! `chromium` and `chromium-driver`, the `fantoccini` client): dnsward on the fake hierarchy,
//! blocked and allowed queries from several loopback clients (named clients in two groups), then
//! in the browser: sign in, the blocked name and the client in the top lists and a drawn chart,
//! the domain's and the client's drill-downs, a search and its CSV, a block and an allow from
//! the page that `dig` then sees, the Resolver scope once a second resolver wrote to the store,
//! the switch to Vietnamese; and a hostile query name that stays inert text.
//! Screenshots go to target/test-artifacts/. Without chromedriver, chromium or dig the tests
//! are skipped (CI installs them: `.ci/run`).

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};

const TOKEN: &str = "browser-test-token-0123456789";
const FINANCE: &str = "127.0.0.2";
const LAB: &str = "127.0.0.3";
const WAIT: Duration = Duration::from_secs(20);

/// Whether the programs these tests need are installed (else the `SKIP:` line for the first
/// one missing, a failure under CI).
fn have_tools() -> bool {
    [
        ("chromedriver", "chromium-driver"),
        ("chromium", "chromium"),
        ("dig", "dnsutils"),
    ]
    .into_iter()
    .all(|(tool, package)| tools::require_tool(tool, package))
}

/// chromedriver on a loopback port, in a process group of its own: dropping it kills that group
/// (chromedriver and the chromium it started) by its id.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "chromedriver not listening in 20 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, port }
    }

    async fn browser(&self, profile: &Path, downloads: &Path) -> Client {
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--no-first-run", "--window-size=1400,1200", "--lang=en-US",
                    format!("--user-data-dir={}", profile.display()),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "intl.accept_languages": "en-US",
                },
            },
        });
        let caps = match caps {
            Value::Object(m) => m,
            _ => unreachable!(),
        };
        let mut conn = hyper_util::client::legacy::connect::HttpConnector::new();
        conn.enforce_http(true);
        ClientBuilder::new(conn)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a WebDriver session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // the group we created: chromedriver and its chromium
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

fn config(h: &Hierarchy) -> String {
    let dir = h.dir.path();
    std::fs::write(dir.join("threat.txt"), "evil.example.com\n").unwrap();
    std::fs::write(dir.join("gone.txt"), "old.example.com\n").unwrap();
    std::fs::write(dir.join("token"), format!("{TOKEN}\n")).unwrap();
    h.config_text("")
        .replacen("[server]\n", "[server]\nname = \"edge-1\"\n", 1)
        + &format!(
            "[policy]\ncontact = \"hotline\"\nwatch = false\n\
             [[lists]]\nname = \"feed\"\ncategory = \"threat\"\npath = \"threat.txt\"\n\
             [[lists]]\nname = \"gone\"\ncategory = \"abandoned\"\npath = \"gone.txt\"\n\
             [[clients]]\nname = \"Finance PC-17\"\ncidr = \"{FINANCE}\"\ngroup = \"finance\"\n\
             [[clients]]\nname = \"Lab printer\"\ncidr = \"{LAB}\"\ngroup = \"lab\"\n\
             [[groups]]\nname = \"finance\"\nlists = [\"feed\", \"gone\"]\n\
             [[groups]]\nname = \"lab\"\nlists = [\"feed\"]\n\
             [querylog]\nsqlite = \"log.db\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime.txt\"\n"
        )
}

/// Wait (bounded) until the store holds `n` rows, read through the dashboard's own route.
async fn rows_in_store(admin: SocketAddr, n: usize) {
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, body) =
            http(admin, "GET", "/api/ui/search?limit=1000", Some(TOKEN), None).await;
        let got = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|v| v["rows"].as_array().map(|r| r.len()))
            .filter(|_| status == 200)
            .unwrap_or(0);
        if got >= n {
            return;
        }
        assert!(Instant::now() < deadline, "{got} of {n} rows in the store");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `dig` against dnsward: the status word of the answer (NOERROR, NXDOMAIN, ...).
fn dig_status(dns: SocketAddr, name: &str) -> String {
    let out = Command::new("dig")
        .args(["+time=3", "+tries=1", "-p", &dns.port().to_string()])
        .arg(format!("@{}", dns.ip()))
        .args([name, "A"])
        .output()
        .expect("dig runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or_else(|| panic!("no status in dig's output: {text}"))
        .to_string()
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.expect("a screenshot");
    std::fs::write(artifact_dir().join(format!("dashboard-{name}.png")), png).unwrap();
}

async fn wait_css(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css} did not appear: {e}"))
}

async fn js(c: &Client, script: &str) -> Value {
    c.execute(script, vec![]).await.expect("script runs")
}

/// Text of an element (by id), as the page rendered it.
async fn text_of(c: &Client, id: &str) -> String {
    js(
        c,
        &format!("return document.getElementById('{id}').textContent"),
    )
    .await
    .as_str()
    .unwrap_or_default()
    .to_string()
}

/// Mark the page as not loaded, so the next `wait_loaded` waits for a fresh answer.
async fn unmark(c: &Client) {
    js(c, "delete document.body.dataset.loaded; return 1").await;
}

async fn wait_loaded(c: &Client, what: &str) {
    wait_css(c, &format!("body[data-loaded='{what}']")).await;
}

/// Clicks the element `at` finds.
async fn click(c: &Client, at: Locator<'_>) {
    c.find(at).await.unwrap().click().await.unwrap();
}

/// Types `text` into the element `at` finds.
async fn type_into(c: &Client, at: Locator<'_>, text: &str) {
    c.find(at).await.unwrap().send_keys(text).await.unwrap();
}

/// Clicks the element `at` finds and waits until the page has loaded `what` anew.
async fn click_and_load(c: &Client, at: Locator<'_>, what: &str) {
    unmark(c).await;
    click(c, at).await;
    wait_loaded(c, what).await;
}

async fn sign_in(c: &Client, admin: SocketAddr) {
    c.goto(&format!("http://{admin}/")).await.unwrap();
    let input = wait_css(c, "#login-token").await;
    input.send_keys(TOKEN).await.unwrap();
    click(c, Locator::Id("login-btn")).await;
    wait_loaded(c, "overview").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_analyst_sees_drills_down_searches_blocks_and_switches_to_vietnamese() {
    if !have_tools() {
        return;
    }
    // x.evil.example.com has an address: blocked by the feed until the analyst allows it
    let h = Hierarchy::start("x.evil IN A 192.0.2.66\n").await;
    let d = start_dnsward_text(&config(&h), h.dir.path()).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    // Blocked and allowed queries from three loopback clients, two of them named in groups.
    for (from, name, t) in [
        ("127.0.0.1", "www.example.com.", RecordType::A),
        ("127.0.0.1", "evil.example.com.", RecordType::A),
        (FINANCE, "x.evil.example.com.", RecordType::A),
        (FINANCE, "x.evil.example.com.", RecordType::AAAA),
        (FINANCE, "x.evil.example.com.", RecordType::A),
        (FINANCE, "old.example.com.", RecordType::A),
        (FINANCE, "www.example.com.", RecordType::A),
        (LAB, "x.evil.example.com.", RecordType::A),
        (LAB, "www.example.com.", RecordType::AAAA),
    ] {
        ask_from(from, dns, name, t).await;
    }
    rows_in_store(admin, 9).await;
    assert_eq!(dig_status(dns, "www.example.com"), "NOERROR");

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let downloads = artifact_dir().join("dashboard-downloads");
    let _ = std::fs::remove_dir_all(&downloads);
    std::fs::create_dir_all(&downloads).unwrap();
    let c = driver.browser(profile.path(), &downloads).await;
    let started = Instant::now();
    sign_in(&c, admin).await;
    eprintln!("overview drawn {:?} after sign-in", started.elapsed());

    // The overview: the blocked name and the client in the top lists, a drawn chart.
    let top = text_of(&c, "top-domains").await;
    assert!(top.contains("x.evil.example.com"), "{top}");
    let clients = text_of(&c, "top-clients").await;
    assert!(
        clients.contains(FINANCE) && clients.contains("Finance PC-17"),
        "{clients}"
    );
    let series = js(
        &c,
        "return Array.from(document.querySelectorAll('#chart path.series')).map(p => p.getAttribute('d'))",
    )
    .await;
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 2, "{series:?}");
    assert!(
        series
            .iter()
            .all(|d| d.as_str().unwrap().matches('L').count() >= 1),
        "{series:?}"
    );
    let bars = js(
        &c,
        "return document.querySelectorAll('#chart-cat rect.bar').length",
    )
    .await;
    assert!(bars.as_u64().unwrap() >= 1, "category bars");
    let cards = text_of(&c, "cards").await;
    assert!(
        cards.contains("Queries") && cards.contains("Cache hit ratio"),
        "{cards}"
    );
    let lists = text_of(&c, "lists").await;
    assert!(lists.contains("feed") && lists.contains("gone"), "{lists}");
    // Being sure the token is kept for this tab only.
    let kept = js(
        &c,
        "return [sessionStorage.getItem('dnsward-token'), localStorage.getItem('dnsward-token')]",
    )
    .await;
    assert_eq!(kept, json!([TOKEN, null]));
    shot(&c, "overview").await;

    // The domain's drill-down: who asked, the list and rule that block it.
    click_and_load(
        &c,
        Locator::XPath("//table[@id='top-domains']//button[text()='x.evil.example.com']"),
        "domain",
    )
    .await;
    let explain = text_of(&c, "domain-explain").await;
    assert!(
        explain.contains("feed") && explain.contains("evil.example.com"),
        "{explain}"
    );
    let who = text_of(&c, "domain-clients").await;
    assert!(
        who.contains(FINANCE) && who.contains(LAB) && who.contains("Lab printer"),
        "{who}"
    );
    shot(&c, "domain").await;

    // ... and from there the client's drill-down.
    click_and_load(
        &c,
        Locator::XPath(&format!(
            "//table[@id='domain-clients']//button[text()='{FINANCE}']"
        )),
        "client",
    )
    .await;
    let meta = text_of(&c, "client-meta").await;
    assert!(
        meta.contains("Finance PC-17") && meta.contains("finance"),
        "{meta}"
    );
    assert!(text_of(&c, "client-blocked")
        .await
        .contains("old.example.com"));
    assert!(text_of(&c, "client-allowed")
        .await
        .contains("www.example.com"));
    shot(&c, "client").await;

    // Search and CSV export of exactly what is shown.
    click_and_load(
        &c,
        Locator::Css("#tabs button[data-tab='search']"),
        "search",
    )
    .await;
    unmark(&c).await;
    type_into(&c, Locator::Id("s-name"), "evil.example.com").await;
    click(&c, Locator::Css("#s-action option[value='blocked']")).await;
    click(&c, Locator::Id("s-go")).await;
    wait_loaded(&c, "search").await;
    let shown = js(
        &c,
        "return document.querySelectorAll('#results tbody tr').length",
    )
    .await;
    assert_eq!(
        shown.as_u64(),
        Some(5),
        "five blocked queries under evil.example.com"
    );
    click(&c, Locator::Id("s-csv")).await;
    wait_css(&c, "body[data-csv-rows='5']").await;
    let csv = downloads.join("dnsward-search.csv");
    let deadline = Instant::now() + WAIT;
    while !csv.exists() {
        assert!(Instant::now() < deadline, "the CSV was not downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 6, "{text}");
    assert!(text
        .lines()
        .skip(1)
        .all(|l| l.contains("evil.example.com") && l.contains(",blocked,")));
    shot(&c, "search").await;

    // Block a name from the page (search for it, the row's Block, who and why), then dig sees it.
    type_into(&c, Locator::Id("who"), "Analyst on duty").await;
    unmark(&c).await;
    let name = c.find(Locator::Id("s-name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("www.example.com").await.unwrap();
    click(&c, Locator::Css("#s-action option[value='']")).await;
    click(&c, Locator::Id("s-go")).await;
    wait_loaded(&c, "search").await;
    click(&c, Locator::Css("#results tbody tr button.row-block")).await;
    wait_css(&c, "#act-dialog[open]").await;
    type_into(&c, Locator::Id("act-why"), "phishing report").await;
    type_into(&c, Locator::Id("act-ref"), "CV-2026-17").await;
    type_into(&c, Locator::Id("act-exp"), "2h").await;
    shot(&c, "block-dialog").await;
    click(&c, Locator::Id("act-ok")).await;
    wait_css(&c, "body[data-last-action='block www.example.com']").await;
    assert_eq!(dig_status(dns, "www.example.com"), "NXDOMAIN");
    let (_, runtime) = http(admin, "GET", "/api/lists/runtime", Some(TOKEN), None).await;
    let runtime: Value = serde_json::from_str(&runtime).unwrap();
    assert_eq!(runtime["entries"][0]["name"], "www.example.com");
    assert_eq!(runtime["entries"][0]["added_by"], "Analyst on duty");
    assert_eq!(runtime["entries"][0]["reason"], "phishing report");
    assert_eq!(runtime["entries"][0]["reference"], "CV-2026-17");
    assert!(runtime["entries"][0]["expires_at"].is_string());
    click(&c, Locator::Css("#tabs button[data-tab='actions']")).await;
    let deadline = Instant::now() + WAIT;
    while !text_of(&c, "action-log").await.contains("Analyst on duty") {
        assert!(Instant::now() < deadline, "the action is not in the log");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Allow a blocked name from its row (a feed's false positive), then dig gets its address and
    // the name's page says what allows it.
    assert_eq!(dig_status(dns, "x.evil.example.com"), "NXDOMAIN");
    click_and_load(
        &c,
        Locator::Css("#tabs button[data-tab='search']"),
        "search",
    )
    .await;
    unmark(&c).await;
    let name = c.find(Locator::Id("s-name")).await.unwrap();
    name.clear().await.unwrap();
    name.send_keys("x.evil.example.com").await.unwrap();
    click(&c, Locator::Css("#s-action option[value='blocked']")).await;
    click(&c, Locator::Id("s-go")).await;
    wait_loaded(&c, "search").await;
    click(&c, Locator::Css("#results tbody tr button.row-allow")).await;
    wait_css(&c, "#act-dialog[open]").await;
    assert_eq!(text_of(&c, "act-title").await, "Allow…");
    assert_eq!(text_of(&c, "act-name").await, "x.evil.example.com");
    type_into(&c, Locator::Id("act-why"), "false positive").await;
    type_into(&c, Locator::Id("act-ref"), "TICKET-9").await;
    type_into(&c, Locator::Id("act-exp"), "1h").await;
    shot(&c, "allow-dialog").await;
    click(&c, Locator::Id("act-ok")).await;
    wait_css(&c, "body[data-last-action='allow x.evil.example.com']").await;
    let said = text_of(&c, "status").await;
    assert!(said.contains("x.evil.example.com"), "{said}");
    assert_eq!(dig_status(dns, "x.evil.example.com"), "NOERROR");
    let (_, allowed) = http(admin, "GET", "/api/lists/allow", Some(TOKEN), None).await;
    let allowed: Value = serde_json::from_str(&allowed).unwrap();
    assert_eq!(allowed["entries"][0]["name"], "x.evil.example.com");
    assert_eq!(allowed["entries"][0]["added_by"], "Analyst on duty");
    assert_eq!(allowed["entries"][0]["reason"], "false positive");
    click_and_load(
        &c,
        Locator::XPath("//table[@id='results']//button[text()='x.evil.example.com']"),
        "domain",
    )
    .await;
    let explain = text_of(&c, "domain-explain").await;
    assert!(explain.starts_with("Allowed now by list"), "{explain}");
    shot(&c, "allowed").await;

    // The live tail shows a blocked query as it happens; pausing stops it.
    click(&c, Locator::Css("#tabs button[data-tab='tail']")).await;
    ask_from(LAB, dns, "tail.evil.example.com.", RecordType::A).await;
    let deadline = Instant::now() + WAIT;
    while !text_of(&c, "tail").await.contains("tail.evil.example.com") {
        assert!(
            Instant::now() < deadline,
            "the live tail did not show the query"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    click(&c, Locator::Id("tail-toggle")).await;
    assert_eq!(text_of(&c, "tail-state").await, "paused");
    shot(&c, "tail").await;

    // A second resolver writes to the store (as resolvers of a fleet write to its ClickHouse):
    // the Resolver scope appears, and scoped to it the overview counts only its queries.
    let text2 = config(&h)
        .replacen("name = \"edge-1\"", "name = \"edge-2\"", 1)
        .replacen("runtime.txt", "runtime-2.txt", 1);
    let d2 = start_dnsward_text(&text2, h.dir.path()).await;
    for name in [
        "y.evil.example.com.",
        "y.evil.example.com.",
        "www.example.com.",
    ] {
        ask_from(LAB, d2.addrs()[0], name, RecordType::A).await;
    }
    d2.shutdown().await;
    click_and_load(
        &c,
        Locator::Css("#tabs button[data-tab='overview']"),
        "overview",
    )
    .await;
    assert!(
        !js(
            &c,
            "return document.getElementById('resolver-scope').hidden"
        )
        .await
        .as_bool()
        .unwrap(),
        "the Resolver scope is shown"
    );
    let options = js(
        &c,
        "return Array.from(document.querySelectorAll('#resolver option')).map(o => o.value)",
    )
    .await;
    assert_eq!(options, json!(["", "edge-1", "edge-2"]));
    let all = text_of(&c, "top-domains").await;
    assert!(
        all.contains("y.evil.example.com") && all.contains("x.evil.example.com"),
        "{all}"
    );
    unmark(&c).await;
    click(&c, Locator::Css("#resolver option[value='edge-2']")).await;
    wait_loaded(&c, "overview").await;
    let scoped = text_of(&c, "top-domains").await;
    assert!(
        scoped.contains("y.evil.example.com") && !scoped.contains("x.evil.example.com"),
        "{scoped}"
    );
    let clients = text_of(&c, "top-clients").await;
    assert!(
        clients.contains(LAB) && !clients.contains(FINANCE),
        "{clients}"
    );
    // the cards' queries and blocked queries: edge-2's three and two
    let cards = js(&c, "return document.getElementById('cards').textContent").await;
    assert!(
        cards.as_str().unwrap().starts_with("3Queries2Blocked"),
        "{cards}"
    );
    shot(&c, "resolver-scope").await;
    unmark(&c).await;
    click(&c, Locator::Css("#resolver option[value='']")).await;
    wait_loaded(&c, "overview").await;
    assert!(text_of(&c, "top-domains")
        .await
        .contains("x.evil.example.com"));

    // Vietnamese.
    click_and_load(
        &c,
        Locator::Css("#tabs button[data-tab='overview']"),
        "overview",
    )
    .await;
    click_and_load(&c, Locator::Id("lang"), "overview").await;
    let tab = text_of(&c, "tabs").await;
    assert!(
        tab.contains("Tổng quan") && tab.contains("Tìm kiếm"),
        "{tab}"
    );
    assert!(text_of(&c, "cards").await.contains("Tỷ lệ trúng bộ đệm"));
    assert_eq!(js(&c, "return document.documentElement.lang").await, "vi");
    shot(&c, "vietnamese").await;

    c.close().await.unwrap();
    drop(driver);
    d.shutdown().await;
}

/// Markup, a control character and a right-to-left override in a stored name and client name
/// (a fleet store may hold what any resolver wrote): shown as text, never run or parsed.
const HOSTILE: &str = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>\u{7}\u{202e}.evil.example.com";
const HOSTILE_CLIENT: &str = "<b onmouseover=\"window.__pwned=3\">PC</b>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_query_name_is_rendered_inert() {
    if !have_tools() {
        return;
    }
    let h = Hierarchy::start("").await;
    let d = start_dnsward_text(&config(&h), h.dir.path()).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());
    // Over DNS: a label with markup bytes (the query log stores them as \DDD escapes).
    let mut q = query_message("x.evil.example.com.", RecordType::A, Some(1232));
    q.queries[0].name = hickory_proto::rr::Name::from_labels(vec![
        b"<script>window.__pwned=4</script>".to_vec(),
        b"evil".to_vec(),
        b"example".to_vec(),
        b"com".to_vec(),
    ])
    .unwrap();
    udp_raw_from(
        FINANCE.parse().unwrap(),
        dns,
        &q.to_vec().unwrap(),
        Duration::from_secs(5),
    )
    .await
    .expect("an answer");
    rows_in_store(admin, 1).await;
    // Straight into the store: raw markup and control characters, as another writer may leave.
    let db = rusqlite::Connection::open(h.dir.path().join("log.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    for _ in 0..3 {
        db.execute(
            "INSERT INTO queries (ts_us, client, client_port, transport, qname, qtype, rcode, action,
                 category, list, rule, trigger, cached, answers, latency_us, server, client_name, client_group)
             VALUES (?1, '127.0.0.9', NULL, 'udp', ?2, 'A', 'NXDOMAIN', 'blocked', 'threat', 'feed',
                 'evil.example.com', 'qname', 0, '', 0, 'edge-1', ?3, 'finance')",
            rusqlite::params![dnsward::timefmt::now_us(), HOSTILE, HOSTILE_CLIENT],
        )
        .unwrap();
    }
    drop(db);

    let driver = Driver::start();
    let profile = tempfile::tempdir().unwrap();
    let c = driver.browser(profile.path(), profile.path()).await;
    sign_in(&c, admin).await;
    let top = text_of(&c, "top-domains").await;
    let expected = "<img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>\\x07\\u{202E}.evil.example.com";
    assert!(
        top.contains(expected),
        "the name is shown as text, escapes visible: {top}"
    );
    assert!(top.contains("\\060script\\062"), "{top}");
    let clients = text_of(&c, "top-clients").await;
    assert!(clients.contains(HOSTILE_CLIENT), "{clients}");
    // Nothing of it became markup or ran.
    let state = js(
        &c,
        "return [window.__pwned === undefined, document.querySelectorAll('main img, main b, main script').length, document.scripts.length]",
    )
    .await;
    assert_eq!(
        state,
        json!([true, 0, 3]),
        "no element from the names, no script ran"
    );
    // Its drill-down too.
    click_and_load(
        &c,
        Locator::XPath("//table[@id='top-domains']//button[contains(text(), '<img')]"),
        "domain",
    )
    .await;
    assert!(text_of(&c, "domain-title").await.contains("<script>"));
    let state = js(&c, "return [window.__pwned === undefined, document.querySelectorAll('main img, main b, main script').length]").await;
    assert_eq!(state, json!([true, 0]));
    shot(&c, "hostile-name").await;
    c.close().await.unwrap();
    drop(driver);
    d.shutdown().await;
}
