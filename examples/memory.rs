//! Measures load time and resident memory per rule.
//!
//!   cargo run --release --example memory                 # synthetic 1,000,000-domain plain list
//!   cargo run --release --example memory -- --groups 8    # the same with 8 per-client groups
//!   cargo run --release --example memory -- FILE [FORMAT] # a real list (format: auto, hosts, ...)
use std::io::Write;
use std::time::Instant;

use dnsward::policy::groups::{ClientMatch, GroupSpec, GroupsSpec, LogMode};
use dnsward::policy::{Category, ListFormat, ListSpec, Snapshot};

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--groups N`: N groups that all see the list (one name table, a list mask per group).
    let ngroups: usize = match args.iter().position(|a| a == "--groups") {
        Some(i) => {
            let n = args
                .get(i + 1)
                .and_then(|n| n.parse().ok())
                .expect("--groups N");
            args.drain(i..i + 2);
            n
        }
        None => 0,
    };
    let groups = GroupsSpec {
        groups: (0..ngroups)
            .map(|k| GroupSpec {
                name: format!("g{k}"),
                lists: Some(vec!["l".into()]),
                action: None,
                log: LogMode::All,
            })
            .collect(),
        clients: Vec::new(),
    };
    let _tmp;
    let (path, format) = if let Some(p) = args.first() {
        let fmt = match args.get(1).map(String::as_str) {
            None | Some("auto") => ListFormat::Auto,
            Some("plain") => ListFormat::Plain,
            Some("hosts") => ListFormat::Hosts,
            Some("adblock") => ListFormat::Adblock,
            Some("wildcard") => ListFormat::Wildcard,
            Some("dnsmasq") => ListFormat::Dnsmasq,
            Some("unbound") => ListFormat::Unbound,
            Some("rpz") => ListFormat::Rpz,
            Some("ip") => ListFormat::Ip,
            Some(o) => panic!("unknown format {o}"),
        };
        (std::path::PathBuf::from(p), fmt)
    } else {
        let dir = std::env::temp_dir().join(format!("dnsward-mem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("synthetic-1m.txt");
        let mut w = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
        for i in 0..1_000_000usize {
            writeln!(
                w,
                "n{i}-ab.zone{}.{}",
                i % 1000,
                ["com", "net", "org", "info"][i % 4]
            )
            .unwrap();
        }
        w.flush().unwrap();
        _tmp = TmpDir(dir);
        (p, ListFormat::Auto)
    };
    let specs = vec![ListSpec {
        name: "l".into(),
        category: Category::Threat,
        path: path.clone(),
        format,
        action: None,
    }];
    // Warm up rayon's pool and the page cache so neither is counted.
    let _ = std::fs::read(&path).map(|b| b.len());
    drop(Snapshot::build(&[], None));
    let before = rss_kib();
    let t = Instant::now();
    let (snap, rep) = Snapshot::build_grouped(&specs, &groups, None);
    let elapsed = t.elapsed();
    let after = rss_kib();
    let l = &rep.lists[0];
    let n = snap.name_entries() + snap.ip_entries();
    println!("file: {}", path.display());
    println!(
        "format: {:?}  parsed rules: {}  distinct name rules: {}  ip rules: {}  bad lines: {}",
        l.format,
        l.entries,
        snap.name_entries(),
        snap.ip_entries(),
        l.bad_lines
    );
    for (line, why) in l.first_bad.iter().take(5) {
        println!("  bad line {line}: {why}");
    }
    for w in &l.warnings {
        println!("  warning: {w}");
    }
    if let Some(e) = &l.error {
        println!("  error: {e}");
    }
    // Two more loads (the first snapshot still alive, as during a reload): best of three.
    let mut best = elapsed;
    for _ in 0..2 {
        let t = Instant::now();
        let (s2, _) = Snapshot::build_grouped(&specs, &groups, Some(&snap));
        best = best.min(t.elapsed());
        drop(s2);
    }
    println!(
        "load (parse + build): first {:.1} ms, best of 3 {:.1} ms",
        elapsed.as_secs_f64() * 1e3,
        best.as_secs_f64() * 1e3
    );
    println!(
        "RSS: {} KiB -> {} KiB, delta {} KiB = {:.1} bytes per rule (name table alone: {:.1} bytes per rule)",
        before,
        after,
        after.saturating_sub(before),
        (after.saturating_sub(before) * 1024) as f64 / n.max(1) as f64,
        snap.name_table_bytes() as f64 / snap.name_entries().max(1) as f64
    );
    println!("groups: {ngroups} (queries below cycle through them)");
    if args.is_empty() {
        // 5-label queries spread over the whole table (cache-cold, like the benchmark).
        let n = 1_000_000usize;
        let step = 7919;
        let hits: Vec<String> = (0..4096)
            .map(|k| {
                let i = (k * step) % n;
                format!(
                    "www.api.n{i}-ab.zone{}.{}",
                    i % 1000,
                    ["com", "net", "org", "info"][i % 4]
                )
            })
            .collect();
        let misses: Vec<String> = (0..4096)
            .map(|k| format!("www.api.m{}-ab.zone{}.com", k * step, k % 1000))
            .collect();
        let who: Vec<ClientMatch> = match ngroups {
            0 => vec![ClientMatch::default()],
            n => (0..n)
                .map(|k| snap.groups().by_name(&format!("g{k}")).expect("group"))
                .collect(),
        };
        let w = |i: usize| who[i % who.len()];
        for round in 0..3 {
            let iters = 1_000_000usize;
            let t = Instant::now();
            let mut c = 0usize;
            for i in 0..iters {
                c += snap
                    .match_name_for(std::hint::black_box(&hits[i & 4095]), w(i))
                    .is_some() as usize;
            }
            let h = t.elapsed().as_nanos() as f64 / iters as f64;
            let t = Instant::now();
            for i in 0..iters {
                c += snap.is_blocked_for(std::hint::black_box(&hits[i & 4095]), w(i)) as usize;
            }
            let hb = t.elapsed().as_nanos() as f64 / iters as f64;
            let t = Instant::now();
            for i in 0..iters {
                c += snap
                    .match_name_for(std::hint::black_box(&misses[i & 4095]), w(i))
                    .is_some() as usize;
            }
            let m = t.elapsed().as_nanos() as f64 / iters as f64;
            println!("round {round}: match_name hit {h:.0} ns, is_blocked hit {hb:.0} ns, match_name miss {m:.0} ns ({c} hits)");
        }
    }
    drop(snap);
}

struct TmpDir(std::path::PathBuf);
impl Drop for TmpDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
