//! The new-domain set at size: 10 million distinct domains inserted into the `[alerting]
//! nod_capacity` default, then its memory, the size of the saved file, the time per insert
//! and the false-positive rate (domains never inserted that the set calls "seen").
//!
//!   cargo run --release --example nod_size [-- NAMES]

use std::time::Instant;

use dnsward::alerts::nod::NodSet;

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000_000);
    let mut set = NodSet::new(10_000_000, 30);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = Instant::now();
    let mut new = 0u64;
    for i in 0..n {
        if set.check_and_insert(&format!("d{i}-x.example"), now) {
            new += 1;
        }
    }
    let per = t.elapsed().as_nanos() as f64 / n as f64;
    let probes = 1_000_000u64;
    let fp = (0..probes)
        .filter(|i| !set.check_and_insert(&format!("never{i}.other"), now))
        .count();
    let dir = std::env::temp_dir().join(format!("nod-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nod.bin");
    set.save(&path).unwrap();
    let file = std::fs::metadata(&path).unwrap().len();
    std::fs::remove_dir_all(&dir).ok();
    println!(
        "{n} domains: {new} reported new ({:.3} % lost to false positives while filling), {per:.0} ns per insert"
        , 100.0 * (n - new) as f64 / n as f64
    );
    println!(
        "memory {} bytes ({:.1} MiB) with the front cache, saved file {} bytes",
        set.total_bytes(),
        set.total_bytes() as f64 / (1 << 20) as f64,
        file
    );
    println!(
        "false positives on {probes} unseen domains after the fill: {fp} ({:.2} %)",
        100.0 * fp as f64 / probes as f64
    );
}
