//! Times the analyst dashboard over a query-log store built by `examples/querylog_store.rs`:
//! each `/api/ui/` route over real HTTP (p50, p95, max of `--repeat` sequential requests), and,
//! with `--browser`, the page in headless Chromium through chromedriver (from navigation to the
//! overview fully drawn). A dnsward instance (forwarding to a closed loopback port: no DNS is
//! asked) serves the store read-only through its admin listener.
//!
//!   cargo run --release --example querylog_store -- --rows 10000000 --db /tmp/q.db --keep
//!   cargo run --release --example dashboard_bench -- --db /tmp/q.db --repeat 20 [--browser]
//!
//! The store's rows cover the 24 hours before it was built: run this soon after.
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;

const TOKEN: &str = "dashboard-bench-token-0123456789";

#[derive(Parser)]
struct Args {
    /// The store (built with `querylog_store --keep`)
    #[arg(long)]
    db: PathBuf,
    /// Requests per route
    #[arg(long, default_value_t = 20)]
    repeat: usize,
    /// Also time the page in headless Chromium (needs chromedriver and chromium)
    #[arg(long)]
    browser: bool,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let cfg = dir.path().join("bench.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\nname = \"bench-1\"\n\
             [resolver]\nmode = \"forward\"\nforwarders = [\"127.0.0.1:9\"]\ndnssec = \"off\"\n\
             [querylog]\nsqlite = \"{}\"\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime.txt\"\n",
            args.db.display()
        ),
    )
    .unwrap();
    let config = dnsward::config::Config::load(&cfg).expect("bench config");
    let d = dnsward::instance::Instance::start(&config)
        .await
        .expect("dnsward starts");
    let admin = d.admin_addr().unwrap();
    let http = reqwest::Client::new();
    let routes = [
        "overview?since=1h",
        "overview?since=24h",
        "overview?since=24h&resolver=bench-1",
        "top?since=1h",
        "top?since=24h",
        "clients?since=1h&min_blocked=10&min_domains=3",
        "clients?since=24h&min_blocked=10&min_domains=3",
        "client?client=10.1.3.7&since=24h",
        "domain?name=c2-001.evil.example&since=1h",
        "domain?name=c2-001.evil.example&since=24h",
        "domain?name=www.site00001.example&since=1h",
        "search?since=24h&limit=50",
        "search?since=24h&limit=50&action=blocked&name=evil.example&suffix=1",
        "search?since=24h&limit=50&client=10.1.3.7",
        "search?since=1h&limit=50&name=www.site00001.example",
        "search.csv?since=24h&limit=50&action=blocked",
    ];
    println!("| route | p50 ms | p95 ms | max ms | bytes |");
    println!("|---|---|---|---|---|");
    for r in routes {
        let url = format!("http://{admin}/api/ui/{r}");
        let mut times = Vec::with_capacity(args.repeat);
        let mut bytes = 0;
        for _ in 0..args.repeat {
            let t = Instant::now();
            let resp = http
                .get(&url)
                .bearer_auth(TOKEN)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .expect("an answer");
            assert!(resp.status().is_success(), "{r}: {}", resp.status());
            bytes = resp.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "| `{r}` | {} | {} | {} | {bytes} |",
            ms(percentile(&times, 0.5)),
            ms(percentile(&times, 0.95)),
            ms(*times.last().unwrap())
        );
    }
    if args.browser {
        page(admin).await;
    }
    d.shutdown().await;
}

/// From navigation (token already in the tab's session) to the overview drawn, five times per
/// range.
async fn page(admin: std::net::SocketAddr) {
    use fantoccini::{ClientBuilder, Locator};
    use std::os::unix::process::CommandExt;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut driver = std::process::Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .expect("chromedriver starts");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver not listening");
        std::thread::sleep(Duration::from_millis(100));
    }
    let profile = tempfile::tempdir().unwrap();
    let caps = serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1200", format!("--user-data-dir={}", profile.path().display())],
        },
    });
    let serde_json::Value::Object(caps) = caps else {
        unreachable!()
    };
    let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a WebDriver session");
    let base = format!("http://{admin}/");
    c.goto(&base).await.unwrap();
    c.execute(
        &format!("sessionStorage.setItem('dnsward-token', '{TOKEN}'); return 1"),
        vec![],
    )
    .await
    .unwrap();
    let wait = || async {
        c.wait()
            .at_most(Duration::from_secs(60))
            .every(Duration::from_millis(10))
            .for_element(Locator::Css("body[data-loaded='overview']"))
            .await
            .expect("the overview is drawn");
    };
    let (mut nav, mut day) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        // navigation to the last hour's overview drawn (page, scripts, three routes, charts)
        let t = Instant::now();
        c.goto(&base).await.unwrap();
        wait().await;
        nav.push(t.elapsed());
        // then the switch to the last 24 hours: three routes and the redraw
        let t = Instant::now();
        c.execute("delete document.body.dataset.loaded; const r = document.getElementById('range'); r.value = '24h'; r.dispatchEvent(new Event('change')); return 1", vec![]).await.unwrap();
        wait().await;
        day.push(t.elapsed());
    }
    nav.sort();
    day.sort();
    println!(
        "page: navigation to the last hour's overview drawn: median {} ms, max {} ms (5 loads)",
        ms(nav[2]),
        ms(nav[4])
    );
    println!(
        "page: switch to the last 24 hours, redrawn: median {} ms, max {} ms (5 switches)",
        ms(day[2]),
        ms(day[4])
    );
    let _ = c.close().await;
    // the group we started: chromedriver and its chromium
    unsafe {
        libc::kill(-(driver.id() as i32), libc::SIGKILL);
    }
    let _ = driver.wait();
}
