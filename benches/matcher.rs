//! Matcher benchmarks: load (parse + build) of a synthetic 1,000,000-domain
//! plain list, and lookups of 5-label names (hit, miss, allowed).
use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion};
use dnsward::policy::{Category, ListFormat, ListSpec, Snapshot};

const N: usize = 1_000_000;

/// Listed name i: 3 labels, e.g. `n123456-ab.zone789.com`.
fn listed(i: usize) -> String {
    format!("n{i}-ab.zone{}.{}", i % 1000, ["com", "net", "org", "info"][i % 4])
}

fn write_list(dir: &std::path::Path) -> std::path::PathBuf {
    let p = dir.join("synthetic-1m.txt");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&p).unwrap());
    writeln!(w, "# synthetic list").unwrap();
    for i in 0..N {
        writeln!(w, "{}", listed(i)).unwrap();
    }
    w.flush().unwrap();
    p
}

fn specs(path: &std::path::Path) -> Vec<ListSpec> {
    vec![ListSpec { name: "synthetic".into(), category: Category::Threat, path: path.to_path_buf(), format: ListFormat::Auto, action: None }]
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_list(dir.path());
    let specs = specs(&path);

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("plain_1m_parse_build", |b| b.iter(|| black_box(Snapshot::build(&specs, None).0.name_entries())));
    g.finish();

    let (snap, rep) = Snapshot::build(&specs, None);
    assert_eq!(rep.lists[0].entries, N);
    // 5-label queries spread over the whole list (not one hot entry).
    let step = 7919; // prime: visits entries all over the table
    let hits: Vec<String> = (0..4096).map(|k| format!("www.api.{}", listed((k * step) % N))).collect();
    let misses: Vec<String> = (0..4096).map(|k| format!("www.api.m{}-ab.zone{}.com", k * step, k % 1000)).collect();
    assert!(hits.iter().all(|q| snap.match_name(q).is_some()));
    assert!(misses.iter().all(|q| snap.match_name(q).is_none()));

    let mut g = c.benchmark_group("lookup_5_labels");
    let mut i = 0usize;
    g.bench_function("match_name_hit", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(snap.match_name(black_box(&hits[i])))
        })
    });
    g.bench_function("match_name_miss", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(snap.match_name(black_box(&misses[i])))
        })
    });
    g.bench_function("is_blocked_hit", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(snap.is_blocked(black_box(&hits[i])))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
