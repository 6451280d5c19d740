//! Query-log sink benchmarks: what logging one query costs in each sink, next to the floor of
//! an SQLite insert without any index. Events look like the lab's cache-hit traffic: 1,000
//! names, one client, A/AAAA, allowed, answered from cache (each name's answer shared by its
//! events, as a cache entry's addresses are).
//!
//!   cargo bench --bench querylog
//!
//! Figures are per event (criterion's "time" with Throughput::Elements = 1 per iteration);
//! the `sqlite_*` ones are CPU time of the writing thread, the others wall time.
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dnsward::querylog::bus::Queued;
use dnsward::querylog::sinks::jsonl::{JsonlSink, LineEncoder};
use dnsward::querylog::sinks::sqlite::{insert_batch, open_for_writing};
use dnsward::querylog::sinks::BlockingSink;
use dnsward::querylog::{ClientId, EventAction, LoggedEvent, QueryEvent, Transport};

/// Events per SQLite transaction, as the sink commits them under load.
const TX: usize = 65_536;

fn events(n: usize) -> Vec<LoggedEvent> {
    events_from(n, 1)
}

/// `clients` distinct client addresses (10.0.x.y), taken in turn.
fn events_from(n: usize, clients: usize) -> Vec<LoggedEvent> {
    let names: Vec<Arc<str>> = (0..1000)
        .map(|i| Arc::from(format!("www.zone{:04}.example{}", i * 7919 % 1000, i % 3)))
        .collect();
    let server: Arc<str> = Arc::from("bench-1");
    // one answer per name, shared by that name's events like a cache entry's addresses
    let answers: Vec<dnsward::querylog::Answers> = (0..names.len())
        .map(|i| vec![std::net::IpAddr::from([192, 0, 2, (i % 250) as u8 + 1])].into())
        .collect();
    (0..n)
        .map(|i| {
            let c = (i * 7) % clients;
            let ip = if clients == 1 {
                [127, 0, 0, 1]
            } else {
                [10, 0, (c >> 8) as u8, c as u8]
            };
            let client = std::net::SocketAddr::from((ip, 1024 + (i % 60_000) as u16));
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
                    answers: answers[(i * 31) % names.len()].clone(),
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

/// CPU time of this thread. The SQLite figures are CPU, not wall time: the target is CPU
/// per event, and on a shared machine wall time also counts the other processes' turns.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into `t`.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Per-event CPU time of inserting `iters` events in TX-sized transactions into `conn`.
/// Each batch is moved after the previous one in time (`*clock`), as real traffic is:
/// inserting the same timestamps again would make the time index's appends random inserts.
fn sqlite_time(
    conn: &mut rusqlite::Connection,
    evs: &[LoggedEvent],
    clock: &mut i64,
    iters: u64,
) -> Duration {
    let mut left = iters as usize;
    let mut spent = Duration::ZERO;
    while left > 0 {
        let n = left.min(TX).min(evs.len());
        let batch: Vec<LoggedEvent> = evs[..n]
            .iter()
            .map(|e| {
                let mut e = e.clone();
                e.ev.ts_us += *clock;
                e
            })
            .collect();
        *clock += 7 * TX as i64;
        let t = thread_cpu();
        insert_batch(conn, &batch).unwrap();
        spent += thread_cpu() - t;
        left -= n;
    }
    spent
}

fn bench(c: &mut Criterion) {
    let evs = events(TX);
    let mut g = c.benchmark_group("querylog");
    g.throughput(Throughput::Elements(1));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(10));

    let mut enc = LineEncoder::default();
    let mut line = Vec::with_capacity(512);
    let mut i = 0;
    g.bench_function("jsonl_encode", |b| {
        b.iter(|| {
            line.clear();
            enc.encode(&mut line, &evs[i % evs.len()]);
            i += 1;
            black_box(&line);
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let mut sink = JsonlSink::new(dir.path().join("q.jsonl"), 1 << 40, 1);
    sink.open().unwrap();
    let batch = vec![Queued::new(Arc::new(evs[..4096].to_vec()))];
    g.bench_function("jsonl_sink_write", |b| {
        b.iter_custom(|iters| {
            let rounds = iters.div_ceil(4096).max(1);
            let t = Instant::now();
            for _ in 0..rounds {
                sink.write_batch(&batch).unwrap();
            }
            t.elapsed().mul_f64(iters as f64 / (rounds * 4096) as f64)
        })
    });

    let mut conn = open_for_writing(&dir.path().join("q.db")).unwrap();
    let mut clock_conn = 0i64;
    g.bench_function("sqlite_insert", |b| {
        b.iter_custom(|iters| sqlite_time(&mut conn, &evs, &mut clock_conn, iters))
    });

    let many = events_from(TX, 1000);
    let mut conn = open_for_writing(&dir.path().join("q1000.db")).unwrap();
    let mut clock_conn = 0i64;
    g.bench_function("sqlite_insert_1000_clients", |b| {
        b.iter_custom(|iters| sqlite_time(&mut conn, &many, &mut clock_conn, iters))
    });

    // Schema 2's four full indexes, for comparison with the layout above.
    let mut clock_old = 0i64;
    let mut old = open_for_writing(&dir.path().join("schema2.db")).unwrap();
    old.execute_batch(
        "DROP INDEX queries_blocked_ts; DROP INDEX queries_blocked_client;
         CREATE INDEX queries_client_ts ON queries(client, ts_us);
         CREATE INDEX queries_qname ON queries(qname);
         CREATE INDEX queries_action_ts ON queries(action, ts_us);",
    )
    .unwrap();
    g.bench_function("sqlite_insert_schema2_1000_clients", |b| {
        b.iter_custom(|iters| sqlite_time(&mut old, &many, &mut clock_old, iters))
    });

    let mut clock_bare = 0i64;
    let mut bare = open_for_writing(&dir.path().join("bare.db")).unwrap();
    bare.execute_batch(
        "DROP INDEX queries_ts; DROP INDEX queries_blocked_ts; DROP INDEX queries_blocked_client;",
    )
    .unwrap();
    g.bench_function("sqlite_insert_without_indexes", |b| {
        b.iter_custom(|iters| sqlite_time(&mut bare, &evs, &mut clock_bare, iters))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
