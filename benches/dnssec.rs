//! DNSSEC validator benchmarks: the CPU one `Validator::validate` costs, with the per-zone key
//! cache warm (what each validated cache miss pays) and cold (a fresh validator: the chain of
//! trust from the root is built first). Zones are signed in process
//! (`tests/dnssec_support`); fetches are in-memory, so only validation is measured.
//!
//!   cargo bench --bench dnssec
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::Query;
use hickory_proto::rr::RecordType;

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/dnssec_support/mod.rs"]
mod dnssec_support;
use dnssec_support::{name, Hierarchy};

const NOW: u32 = 1_800_000_000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let h = Hierarchy::build_at(NOW, |_| {});
    let mut cases = vec![
        ("answer P-256", "secure.", "www.secure.", RecordType::A),
        (
            "nxdomain NSEC P-256",
            "secure.",
            "nothere.secure.",
            RecordType::A,
        ),
        ("answer Ed25519", "nsec3.", "www.nsec3.", RecordType::A),
        (
            "nxdomain NSEC3 Ed25519",
            "nsec3.",
            "nothere.nsec3.",
            RecordType::A,
        ),
        (
            "wildcard NSEC3 Ed25519",
            "nsec3.",
            "x.wild.nsec3.",
            RecordType::A,
        ),
    ];
    if dnssec_support::rsa_keys().is_some() {
        cases.push(("answer RSA-2048", "rsa.", "www.rsa.", RecordType::A));
    }
    let warm = h.validator();
    for (label, zone, qname, qtype) in &cases {
        let query = Query::query(name(qname), *qtype);
        let response = h.zone(zone).respond(&name(qname), *qtype);
        let zone = name(zone);
        let first = rt.block_on(warm.validate(&query, &response, &zone, &*h, NOW));
        assert!(first.is_secure(), "{label}: {first:?}");
        c.bench_function(&format!("warm {label}"), |b| {
            b.iter(|| black_box(rt.block_on(warm.validate(&query, &response, &zone, &*h, NOW))))
        });
        c.bench_function(&format!("cold {label}"), |b| {
            b.iter(|| {
                let fresh = h.validator();
                black_box(rt.block_on(fresh.validate(&query, &response, &zone, &*h, NOW)))
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
