//! Builds an SQLite query log through the real sink (`SqliteSink::write_batch`, 65,536
//! events per transaction) and times the real `dnsward logs` commands over it.
//!
//!   cargo run --release --example querylog_store -- --rows 10000000 [--db PATH] [--keep]
//!   cargo run --release --example querylog_store -- --db PATH --queries-only --repeat 3
//!
//! The rows cover the last 24 hours evenly: 2,000 clients, 50,000 allowed names, 2 % of
//! queries blocked over 500 names in 4 categories. Printed: CPU per event written while
//! building, then the wall time of each command (`top`, `clients`, `tail --client`,
//! `export` of the last hour) and the export rate; and the same export through
//! `commands::logs::CsvExport` (CSV straight from the rows), checked to write the same bytes.
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use dnsward::commands::logs::{run_logs, CsvExport, LogsCommand, CSV_HEADER};
use dnsward::querylog::bus::Queued;
use dnsward::querylog::sinks::sqlite::SqliteSink;
use dnsward::querylog::sinks::sqlite::COLUMNS;
use dnsward::querylog::sinks::BlockingSink;
use dnsward::querylog::{ClientId, EventAction, LoggedEvent, QueryEvent, Transport};
use dnsward::timefmt::{format_ts_us, now_us};
use rusqlite::{Connection, OpenFlags};

const TX: usize = 65_536;
const CLIENTS: usize = 2_000;
const NAMES: usize = 50_000;
const BLOCKED_NAMES: usize = 500;
const CATEGORIES: [&str; 4] = ["malware", "phishing", "abandoned", "botnet"];

#[derive(Parser)]
struct Args {
    /// Rows to write
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Store to build (default: a temporary directory)
    #[arg(long)]
    db: Option<PathBuf>,
    /// Keep the store afterwards
    #[arg(long)]
    keep: bool,
    /// Only time the commands over an existing `--db` (built by an earlier run)
    #[arg(long, requires = "db")]
    queries_only: bool,
    /// Time each command this many times
    #[arg(long, default_value_t = 1)]
    repeat: usize,
}

#[derive(Parser)]
struct Logs {
    #[command(subcommand)]
    cmd: LogsCommand,
}

/// CPU time (user + system) of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A cheap deterministic mix, so every run builds the same store.
fn mix(i: usize) -> usize {
    let mut x = i as u64 ^ 0x9e37_79b9_7f4a_7c15;
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (x ^ (x >> 31)) as usize
}

struct Gen {
    names: Vec<Arc<str>>,
    blocked: Vec<Arc<str>>,
    server: Arc<str>,
    /// one per name, shared by its events as a cache entry's addresses are
    answers: Vec<dnsward::querylog::Answers>,
}

impl Gen {
    fn new() -> Gen {
        Gen {
            names: (0..NAMES)
                .map(|i| Arc::from(format!("www.site{i:05}.example")))
                .collect(),
            blocked: (0..BLOCKED_NAMES)
                .map(|i| Arc::from(format!("c2-{i:03}.evil.example")))
                .collect(),
            server: Arc::from("bench-1"),
            answers: (0..NAMES)
                .map(|i| vec![std::net::IpAddr::from([192, 0, 2, (i % 250) as u8 + 1])].into())
                .collect(),
        }
    }

    fn event(&self, i: usize, ts_us: i64) -> LoggedEvent {
        let r = mix(i);
        let c = r % CLIENTS;
        let client = std::net::SocketAddr::from(([10, 1, (c >> 8) as u8, c as u8], 1024));
        let blocked = r.is_multiple_of(50);
        let (qname, action, category, list, answers) = if blocked {
            let b = (r >> 16) % BLOCKED_NAMES;
            (
                Arc::clone(&self.blocked[b]),
                EventAction::Blocked,
                Some(CATEGORIES[b % CATEGORIES.len()].into()),
                Some("threats".into()),
                Default::default(),
            )
        } else {
            // a skewed pick: popular names far more often
            let n = ((r >> 16) % NAMES) * ((r >> 40) % 8 + 1) / 8;
            let answers = self.answers[n].clone();
            (
                Arc::clone(&self.names[n]),
                EventAction::Allowed,
                None,
                None,
                answers,
            )
        };
        LoggedEvent {
            ev: QueryEvent {
                ts_us,
                client,
                transport: Transport::Udp,
                qname,
                qtype: if r.is_multiple_of(5) {
                    "AAAA".into()
                } else {
                    "A".into()
                },
                rcode: if blocked { "NXDOMAIN" } else { "NOERROR" }.into(),
                action,
                category,
                list,
                rule: None,
                trigger: None,
                cached: true,
                answers,
                latency_us: 6,
                server: Arc::clone(&self.server),
                client_name: None,
                group: None,
                query_wire: None,
                response_wire: None,
            },
            client: ClientId::Addr {
                ip: client.ip(),
                port: None,
            },
        }
    }
}

/// Wall time, CPU time and output lines of one `dnsward logs` command.
fn time_command(db: &std::path::Path, args: &str) -> (Duration, Duration, u64) {
    let mut out = Counter::default();
    let (c0, t) = (cpu_time(), Instant::now());
    run_command(db, args, &mut out);
    (t.elapsed(), cpu_time() - c0, out.lines)
}

fn run_command(db: &std::path::Path, args: &str, out: &mut Counter) {
    let cmd = Logs::try_parse_from(std::iter::once("logs").chain(args.split_whitespace()))
        .unwrap_or_else(|e| panic!("{args}: {e}"))
        .cmd;
    run_logs(db, cmd, out).unwrap_or_else(|e| panic!("{args}: {e}"));
}

/// `export --format csv --since <since>` through `commands::logs::CsvExport` (the CSV straight from
/// the rows), written as the CLI writes it: header, then 64 KiB buffered lines.
fn export_from_rows(db: &std::path::Path, since: i64, out: &mut Counter) {
    // NO_MUTEX: one thread uses the connection; without it SQLite locks a mutex in every
    // sqlite3_column_* call (7 % of an export, perf)
    let conn = Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let mut st = conn
        .prepare(&format!(
            "SELECT {COLUMNS} FROM queries WHERE ts_us >= ?1 ORDER BY ts_us, id"
        ))
        .unwrap();
    let mut rows = st.query([since]).unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    writeln!(out, "{CSV_HEADER}").unwrap();
    let mut csv = CsvExport::default();
    while let Some(r) = rows.next().unwrap() {
        out.write_all(csv.line(r).unwrap().as_bytes()).unwrap();
    }
    out.flush().unwrap();
}

/// Counts output lines and throws the bytes away; with `fnv`, also hashes them (FNV-1a,
/// so two outputs written in different pieces can be compared).
#[derive(Default)]
struct Counter {
    lines: u64,
    fnv: Option<u64>,
}

impl Write for Counter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.lines += b.iter().filter(|&&c| c == b'\n').count() as u64;
        if let Some(h) = &mut self.fnv {
            for &c in b {
                *h = (*h ^ u64::from(c)).wrapping_mul(0x100_0000_01b3);
            }
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes `rows` events covering the last 24 h into `db` through the sink; prints the CPU
/// per event.
fn build(db: &std::path::Path, rows: usize) {
    let gen = Gen::new();
    let now = now_us();
    let day = 86_400_000_000i64;
    let step = day / rows.max(1) as i64;
    let mut sink = SqliteSink::new(db.to_path_buf(), None, None);
    sink.open().unwrap();

    let (mut cpu, mut wall, mut written) = (Duration::ZERO, Duration::ZERO, 0u64);
    let mut i = 0;
    while i < rows {
        let n = TX.min(rows - i);
        let batch: Vec<LoggedEvent> = (i..i + n)
            .map(|k| gen.event(k, now - day + k as i64 * step))
            .collect();
        let batch = vec![Queued::new(Arc::new(batch))];
        let (c0, t0) = (cpu_time(), Instant::now());
        written += sink.write_batch(&batch).unwrap();
        cpu += cpu_time() - c0;
        wall += t0.elapsed();
        i += n;
        if i % (TX * 16) < TX {
            eprintln!(
                "{i} rows, {:.2} us CPU per event so far",
                cpu.as_secs_f64() * 1e6 / i as f64
            );
        }
    }
    sink.close();
    let size = std::fs::metadata(db).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {written} rows in {:.1} s: {:.2} us CPU per event written, {:.0} MB",
        wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / written.max(1) as f64,
        size as f64 / 1e6
    );
}

fn main() {
    let args = Args::parse();
    let tmp = tempfile::tempdir().unwrap();
    let db = args.db.clone().unwrap_or_else(|| tmp.path().join("q.db"));
    if !args.queries_only {
        build(&db, args.rows);
    }
    let client = "10.1.3.7";
    // the last hour, as one fixed time so both exports read the same rows
    let since = now_us() - 3_600_000_000;
    let export = format!("export --since {}", format_ts_us(since));
    let (mut through_logrow, mut from_rows) = (Counter::default(), Counter::default());
    through_logrow.fnv = Some(0xcbf2_9ce4_8422_2325);
    from_rows.fnv = through_logrow.fnv;
    run_command(&db, &export, &mut through_logrow);
    export_from_rows(&db, since, &mut from_rows);
    assert_eq!(
        (from_rows.lines, from_rows.fnv),
        (through_logrow.lines, through_logrow.fnv),
        "CsvExport must write what `logs export` writes"
    );
    println!(
        "CsvExport and `logs export` wrote the same {} lines",
        from_rows.lines
    );
    for _ in 0..args.repeat.max(1) {
        for cmd in [
            "top --since 24h".to_string(),
            "clients --since 24h".to_string(),
            format!("tail --since 24h --client {client}"),
            export.clone(),
        ] {
            let (took, cpu, lines) = time_command(&db, &cmd);
            let rate = if cmd.starts_with("export") {
                format!(
                    ", {:.0} rows/s",
                    lines.saturating_sub(1) as f64 / took.as_secs_f64()
                )
            } else {
                String::new()
            };
            println!(
                "logs {cmd}: {:.3} s ({:.3} s CPU), {lines} lines{rate}",
                took.as_secs_f64(),
                cpu.as_secs_f64()
            );
        }
        let mut out = Counter::default();
        let (c0, t) = (cpu_time(), Instant::now());
        export_from_rows(&db, since, &mut out);
        let (took, cpu) = (t.elapsed(), cpu_time() - c0);
        println!(
            "{export} through CsvExport directly: {:.3} s ({:.3} s CPU), {} lines, {:.0} rows/s",
            took.as_secs_f64(),
            cpu.as_secs_f64(),
            out.lines,
            out.lines.saturating_sub(1) as f64 / took.as_secs_f64()
        );
    }
    if args.keep {
        let _ = std::mem::ManuallyDrop::new(tmp);
        println!("store kept: {}", db.display());
    }
}
