//! Matcher benchmarks: load (parse + build) of a synthetic 1,000,000-domain
//! plain list, and lookups of 5-label names (hit, miss, allowed); the same
//! lookups with 8 per-client groups (one name table, a list mask per group),
//! and the client -> group lookup.
use std::hint::black_box;
use std::io::Write;

use criterion::{criterion_group, criterion_main, Criterion};
use dnsward::policy::groups::{
    ClientCache, ClientMatch, ClientSpec, GroupSpec, GroupsSpec, LogMode,
};
use dnsward::policy::{Category, ListFormat, ListSpec, Snapshot};

const N: usize = 1_000_000;

/// Listed name i: 3 labels, e.g. `n123456-ab.zone789.com`.
fn listed(i: usize) -> String {
    format!(
        "n{i}-ab.zone{}.{}",
        i % 1000,
        ["com", "net", "org", "info"][i % 4]
    )
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
    vec![ListSpec {
        name: "synthetic".into(),
        category: Category::Threat,
        path: path.to_path_buf(),
        format: ListFormat::Auto,
        action: None,
    }]
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_list(dir.path());
    let specs = specs(&path);

    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("plain_1m_parse_build", |b| {
        b.iter(|| black_box(Snapshot::build(&specs, None).0.name_entries()))
    });
    g.finish();

    let (snap, rep) = Snapshot::build(&specs, None);
    assert_eq!(rep.lists[0].entries, N);
    // 5-label queries spread over the whole list (not one hot entry).
    let step = 7919; // prime: visits entries all over the table
    let hits: Vec<String> = (0..4096)
        .map(|k| format!("www.api.{}", listed((k * step) % N)))
        .collect();
    let misses: Vec<String> = (0..4096)
        .map(|k| format!("www.api.m{}-ab.zone{}.com", k * step, k % 1000))
        .collect();
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

    // 8 groups over the same 1M-name table plus 7 small lists: group k sees the big list
    // and small list k. Compared with the same lists and no groups (every list applies).
    let mut specs8 = specs.clone();
    for k in 1..8 {
        let p = dir.path().join(format!("extra{k}.txt"));
        let text: String = (0..1000).map(|i| format!("x{k}-{i}.extra.com\n")).collect();
        std::fs::write(&p, text).unwrap();
        specs8.push(ListSpec {
            name: format!("extra{k}"),
            category: Category::Threat,
            path: p,
            format: ListFormat::Auto,
            action: None,
        });
    }
    let groups = GroupsSpec {
        groups: (0..8)
            .map(|k| GroupSpec {
                name: format!("g{k}"),
                lists: Some(if k == 0 {
                    vec!["synthetic".into()]
                } else {
                    vec!["synthetic".into(), format!("extra{k}")]
                }),
                action: None,
                log: LogMode::All,
            })
            .collect(),
        // 64 CIDRs per group (10.k.j.0/24), for the client lookup below.
        clients: (0..8)
            .flat_map(|k| {
                (0..64).map(move |j| ClientSpec {
                    net: format!("10.{k}.{j}.0/24").parse().unwrap(),
                    name: None,
                    group: Some(format!("g{k}")),
                })
            })
            .collect(),
    };
    drop(snap);
    let (flat, _) = Snapshot::build(&specs8, None);
    let (grouped, _) = Snapshot::build_grouped(&specs8, &groups, None);
    let who: Vec<ClientMatch> = (0..8)
        .map(|k| grouped.groups().by_name(&format!("g{k}")).unwrap())
        .collect();
    assert!(hits
        .iter()
        .zip(who.iter().cycle())
        .all(|(q, w)| grouped.match_name_for(q, *w).is_some()));
    assert!(misses
        .iter()
        .zip(who.iter().cycle())
        .all(|(q, w)| grouped.match_name_for(q, *w).is_none()));
    assert_eq!(
        flat.name_table_bytes(),
        grouped.name_table_bytes(),
        "groups add nothing to the name table"
    );

    let mut g = c.benchmark_group("lookup_5_labels_9_lists");
    g.bench_function("one_group_hit", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(flat.match_name(black_box(&hits[i])))
        })
    });
    g.bench_function("8_groups_hit", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(grouped.match_name_for(black_box(&hits[i]), who[i & 7]))
        })
    });
    g.bench_function("one_group_miss", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(flat.match_name(black_box(&misses[i])))
        })
    });
    g.bench_function("8_groups_miss", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(grouped.match_name_for(black_box(&misses[i]), who[i & 7]))
        })
    });
    g.finish();

    // Client -> group: the longest-prefix lookup over 512 CIDRs, and a worker's cache hit.
    let clients: Vec<std::net::IpAddr> = (0..4096u32)
        .map(|n| {
            std::net::Ipv4Addr::new(10, (n % 8) as u8, ((n / 8) % 64) as u8, (n % 251) as u8).into()
        })
        .collect();
    let mut g = c.benchmark_group("client_lookup");
    g.bench_function("prefix_512_cidrs", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(grouped.groups().lookup(black_box(clients[i])))
        })
    });
    let mut cache = ClientCache::default();
    g.bench_function("worker_cache_64_clients", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(cache.lookup(&grouped, black_box(clients[i & 63])))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
