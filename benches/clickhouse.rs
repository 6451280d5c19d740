//! ClickHouse sink: what one event costs the dnsward process before it leaves for
//! ClickHouse (RowBinary encoding and gzip, on the sink's own thread), per event, in batches
//! of the size the sink sends under load. Events look like the lab's cache-hit traffic (as in
//! `benches/querylog.rs`): 1,000 names, one client, A/AAAA, allowed, answered from cache.
//!
//!   cargo bench --bench clickhouse
use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dnsward::querylog::bus::Queued;
use dnsward::querylog::sinks::clickhouse::{encode_batch, PACE};
use dnsward::querylog::{ClientId, EventAction, LoggedEvent, QueryEvent, Transport};

fn events(n: usize) -> Vec<LoggedEvent> {
    let names: Vec<Arc<str>> = (0..1000)
        .map(|i| Arc::from(format!("www.zone{:04}.example{}", i * 7919 % 1000, i % 3)))
        .collect();
    let server: Arc<str> = Arc::from("bench-1");
    let answer: Vec<std::net::IpAddr> = vec!["192.0.2.10".parse().unwrap()];
    let answers: dnsward::querylog::Answers = answer.into();
    (0..n)
        .map(|i| {
            let client = std::net::SocketAddr::from(([127, 0, 0, 1], 1024 + (i % 60_000) as u16));
            LoggedEvent {
                ev: QueryEvent {
                    ts_us: 1_764_000_000_000_000 + 7 * i as i64,
                    client,
                    transport: Transport::Udp,
                    qname: Arc::clone(&names[(i * 31) % names.len()]),
                    qtype: if i % 5 == 0 {
                        "AAAA".into()
                    } else {
                        "A".into()
                    },
                    rcode: "NOERROR".into(),
                    action: EventAction::Allowed,
                    category: None,
                    list: None,
                    rule: None,
                    trigger: None,
                    cached: true,
                    answers: answers.clone(),
                    latency_us: 6,
                    server: Arc::clone(&server),
                    client_name: None,
                    group: None,
                    query_wire: None,
                    response_wire: None,
                },
                client: ClientId::Addr {
                    ip: client.ip(),
                    port: Some(client.port()),
                },
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = PACE.max_batch;
    // As the queue holds them: batches of 256 events (a UDP worker's batch).
    let batch: Vec<Queued> = events(n)
        .chunks(256)
        .map(|c| Queued::new(Arc::new(c.to_vec())))
        .collect();
    let (body, rows) = encode_batch(&batch);
    eprintln!(
        "{rows} events: {} bytes of LZ4-compressed RowBinary ({:.1} bytes per event)",
        body.len(),
        body.len() as f64 / rows as f64
    );
    let mut g = c.benchmark_group("clickhouse");
    g.throughput(Throughput::Elements(n as u64));
    g.sample_size(20);
    g.bench_function("encode_rowbinary_lz4_per_batch_of_65536", |b| {
        b.iter(|| black_box(encode_batch(black_box(&batch))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
