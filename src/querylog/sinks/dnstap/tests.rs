use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::sync::mpsc;
use std::time::Duration;

use bytes::Bytes;
use prost::Message as _;

use super::proto::*;
use super::*;
use crate::querylog::event::{ClientId, EventAction, LoggedEvent, Transport};
use crate::querylog::testutil::*;
use crate::querylog::{QueryLog, QueryLogConfig};

/// The two payloads (CLIENT_QUERY, CLIENT_RESPONSE) the encoder writes for one event.
fn encode_event(l: &LoggedEvent, version: &str) -> [Vec<u8>; 2] {
    let mut out = Vec::new();
    Encoder::new(version).put_event(l, &mut out);
    let mut frames = Vec::new();
    let mut rest = &out[..];
    while !rest.is_empty() {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        frames.push(rest[4..4 + len].to_vec());
        rest = &rest[4 + len..];
    }
    frames.try_into().expect("two frames per event")
}

fn decode(payload: &[u8]) -> Dnstap {
    Dnstap::decode(payload).unwrap()
}

#[test]
fn synthesized_query_is_wire_format() {
    let q = synth_query("c2.evil.example", "AAAA").unwrap();
    assert_eq!(&q[..12], &[0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(&q[12..], b"\x02c2\x04evil\x07example\x00\x00\x1c\x00\x01");
    assert_eq!(qtype_code("TYPE65"), Some(65));
    assert_eq!(qtype_code("https"), Some(65));
    assert_eq!(qtype_code("BOGUS"), None);
    assert!(synth_query(&"a".repeat(64), "A").is_none());
}

#[test]
fn encoded_event_decodes_with_every_field() {
    let mut ev = event("c2.evil.example", EventAction::Blocked);
    ev.query_wire = Some(Bytes::from_static(b"QUERYBYTES"));
    ev.response_wire = Some(Bytes::from_static(b"RESPONSEBYTES"));
    ev.transport = Transport::Dot;
    ev.ts_us = 1_714_564_800_123_456;
    ev.latency_us = 900_000; // crosses a second
    let [q, r] = encode_event(&logged(ev), "dnsward 9.9");
    let (q, r) = (decode(&q), decode(&r));
    for d in [&q, &r] {
        assert_eq!(d.identity.as_deref(), Some(&b"edge-1"[..]));
        assert_eq!(d.version.as_deref(), Some(&b"dnsward 9.9"[..]));
        assert_eq!(d.r#type, DnstapType::Message as i32);
    }
    // the verdict's details ride on the response
    assert_eq!(q.extra, None);
    let extra: serde_json::Value = serde_json::from_slice(r.extra.as_deref().unwrap()).unwrap();
    assert_eq!(extra["category"], "malware");
    assert_eq!(extra["action"], "blocked");
    assert_eq!(extra["client"], "192.0.2.77");
    assert_eq!(extra["cached"], false);
    assert_eq!(extra["group"], serde_json::Value::Null);
    let qm = q.message.unwrap();
    assert_eq!(qm.r#type, MessageType::ClientQuery as i32);
    assert_eq!(qm.socket_family, Some(SocketFamily::Inet as i32));
    assert_eq!(qm.socket_protocol, Some(SocketProtocol::Dot as i32));
    assert_eq!(qm.query_address.as_deref(), Some(&[192, 0, 2, 77][..]));
    assert_eq!(qm.query_port, Some(53001));
    assert_eq!(
        (qm.query_time_sec, qm.query_time_nsec),
        (Some(1_714_564_800), Some(123_456_000))
    );
    assert_eq!(qm.query_message.as_deref(), Some(&b"QUERYBYTES"[..]));
    assert_eq!(qm.response_message, None);
    assert_eq!(qm.policy, None);
    let rm = r.message.unwrap();
    assert_eq!(rm.r#type, MessageType::ClientResponse as i32);
    assert_eq!(
        (rm.response_time_sec, rm.response_time_nsec),
        (Some(1_714_564_801), Some(23_456_000))
    );
    assert_eq!(rm.response_message.as_deref(), Some(&b"RESPONSEBYTES"[..]));
    let p = rm.policy.unwrap();
    assert_eq!(p.r#type.as_deref(), Some("dnsward"));
    assert_eq!(p.rule.as_deref(), Some(&b"*.evil.example"[..]));
    assert_eq!(p.action, Some(PolicyAction::Nxdomain as i32));
    assert_eq!(p.r#match, Some(PolicyMatch::Qname as i32));
    assert_eq!(p.value.as_deref(), Some(&b"c2.evil.example"[..]));

    // allowed, hashed client: no policy, no address disclosed; synthesized question
    let mut ev = event("ok.example", EventAction::Allowed);
    ev.client = "[2001:db8::1]:9".parse().unwrap();
    let l = LoggedEvent {
        ev,
        client: ClientId::Token(7),
    };
    let [q, r] = encode_event(&l, "v");
    let qm = decode(&q).message.unwrap();
    assert_eq!(
        (qm.socket_family, qm.query_address.as_ref(), qm.query_port),
        (None, None, None)
    );
    assert_eq!(
        qm.query_message.as_deref(),
        synth_query("ok.example", "A").as_deref()
    );
    assert_eq!(decode(&r).message.unwrap().policy, None);
}

/// A Frame Streams collector for one connection: handshake, then data frames until STOP.
fn collect(listener: UnixListener) -> Vec<Vec<u8>> {
    let (mut s, _) = listener.accept().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (kind, types) = read_control(&mut s).unwrap();
    assert_eq!(kind, CONTROL_READY);
    assert_eq!(types, vec![CONTENT_TYPE.to_vec()]);
    s.write_all(&control_frame(CONTROL_ACCEPT, Some(CONTENT_TYPE)))
        .unwrap();
    let (kind, types) = read_control(&mut s).unwrap();
    assert_eq!((kind, types), (CONTROL_START, vec![CONTENT_TYPE.to_vec()]));
    let mut frames = Vec::new();
    let read_u32 = |s: &mut std::os::unix::net::UnixStream| {
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        u32::from_be_bytes(b)
    };
    loop {
        let len = read_u32(&mut s);
        if len == 0 {
            let clen = read_u32(&mut s) as usize;
            let mut body = vec![0; clen];
            s.read_exact(&mut body).unwrap();
            assert_eq!(&body[..4], &CONTROL_STOP.to_be_bytes());
            s.write_all(&control_frame(CONTROL_FINISH, None)).unwrap();
            return frames;
        }
        let mut f = vec![0; len as usize];
        s.read_exact(&mut f).unwrap();
        frames.push(f);
    }
}

/// `collect` on a thread of its own; its frames arrive on the returned channel.
fn spawn_collector(listener: UnixListener) -> mpsc::Receiver<Vec<Vec<u8>>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(collect(listener));
    });
    rx
}

/// Run dnstap-ldns on a Frame Streams file; None when the tool is not installed.
fn dnstap_ldns(file: &std::path::Path) -> Option<String> {
    let mut child = match std::process::Command::new("dnstap-ldns")
        .arg("-y")
        .arg("-r")
        .arg(file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: dnstap-ldns not installed (apt-get install dnstap-ldns); only the Rust decode was checked");
            return None;
        }
        Err(e) => panic!("cannot run dnstap-ldns: {e}"),
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill(); // this child, by its PID
            let _ = child.wait();
            panic!("dnstap-ldns did not finish");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "dnstap-ldns failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

fn emit_three(log: &QueryLog) {
    log.emit(event("c2.evil.example", EventAction::Blocked));
    let mut e = event("www.example.org", EventAction::Allowed);
    e.qtype = "AAAA".into();
    log.emit(e);
    log.emit(event("pay.bad.example", EventAction::Blocked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_collector_receives_decodable_frames() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let collector = spawn_collector(UnixListener::bind(&sock).unwrap());
    let cfg = QueryLogConfig {
        dnstap: Some(format!("unix:{}", sock.display())),
        ..Default::default()
    };
    let log = QueryLog::start(&cfg).await.unwrap();
    emit_three(&log);
    log.shutdown().await;
    let frames = collector.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(frames.len(), 6);
    let types: Vec<i32> = frames
        .iter()
        .map(|f| decode(f).message.unwrap().r#type)
        .collect();
    let (cq, cr) = (
        MessageType::ClientQuery as i32,
        MessageType::ClientResponse as i32,
    );
    assert_eq!(types, [cq, cr, cq, cr, cq, cr]);
    let s = &log.stats()[0];
    assert_eq!((s.written, s.dropped, s.errors), (3, 0, 0), "{s:?}");

    // the same frames as a Frame Streams file, read by the reference reader
    let file = dir.path().join("capture.fstrm");
    let mut buf = control_frame(CONTROL_START, Some(CONTENT_TYPE));
    for f in &frames {
        put_data_frame(&mut buf, f);
    }
    buf.extend_from_slice(&control_frame(CONTROL_STOP, None));
    std::fs::write(&file, buf).unwrap();
    if let Some(text) = dnstap_ldns(&file) {
        for want in [
            "c2.evil.example.",
            "www.example.org.",
            "pay.bad.example.",
            "CLIENT_QUERY",
            "CLIENT_RESPONSE",
            "edge-1",
            "192.0.2.77",
        ] {
            assert!(
                text.contains(want),
                "dnstap-ldns output lacks {want:?}:\n{text}"
            );
        }
        assert!(text.contains("AAAA"), "{text}");
    }
}

#[tokio::test]
async fn file_target_is_readable_by_dnstap_ldns() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.dnstap");
    let cfg = QueryLogConfig {
        dnstap: Some(format!("file:{}", file.display())),
        ..Default::default()
    };
    let log = QueryLog::start(&cfg).await.unwrap();
    emit_three(&log);
    log.shutdown().await;
    let data = std::fs::read(&file).unwrap();
    assert!(data.starts_with(&control_frame(CONTROL_START, Some(CONTENT_TYPE))));
    assert!(data.ends_with(&control_frame(CONTROL_STOP, None)));
    if let Some(text) = dnstap_ldns(&file) {
        assert_eq!(text.matches("type: CLIENT_QUERY").count(), 3, "{text}");
        assert!(text.contains("c2.evil.example."), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_that_never_reads_does_not_block_emit() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    // accepts and holds connections, never reads or answers
    let holder = std::thread::spawn(move || {
        listener.set_nonblocking(true).unwrap();
        let mut held = Vec::new();
        let until = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < until {
            match listener.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });
    let cfg = QueryLogConfig {
        dnstap: Some(format!("unix:{}", sock.display())),
        queue_size: 1024,
        ..Default::default()
    };
    let log = QueryLog::start(&cfg).await.unwrap();
    let ev = event("flood.example", EventAction::Blocked);
    let t = std::time::Instant::now();
    for _ in 0..100_000 {
        log.emit(ev.clone());
    }
    let took = t.elapsed();
    let s = &log.stats()[0];
    assert!(s.dropped >= 100_000 - 1024, "{s:?}");
    assert!(s.queued <= 1024);
    let t = std::time::Instant::now();
    log.shutdown().await;
    assert!(t.elapsed() < Duration::from_secs(7), "shutdown is bounded");
    let s = &log.stats()[0];
    assert_eq!(s.written, 0);
    assert_eq!(s.dropped, 100_000, "{s:?}");
    eprintln!("100k emits against a stuck collector took {took:?}");
    drop(holder); // ends by itself
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_collector_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("tap.sock");
    let cfg = QueryLogConfig {
        dnstap: Some(format!("unix:{}", sock.display())),
        ..Default::default()
    };
    let log = QueryLog::start(&cfg).await.unwrap();
    log.emit(event("early.example", EventAction::Blocked));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = &log.stats()[0];
    assert!(
        s.errors >= 1 && s.last_error.as_deref().unwrap().contains("connect"),
        "{s:?}"
    );
    let collector = spawn_collector(UnixListener::bind(&sock).unwrap());
    // wait for the retry (backoff 0.5 s, then 1 s)
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.stats()[0].written < 1 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    log.emit(event("late.example", EventAction::Blocked));
    log.shutdown().await;
    let frames = collector.recv_timeout(Duration::from_secs(5)).unwrap();
    let names: Vec<Vec<u8>> = frames
        .iter()
        .filter_map(|f| decode(f).message.unwrap().query_message.map(|b| b.to_vec()))
        .collect();
    assert_eq!(
        names,
        [
            synth_query("early.example", "A").unwrap(),
            synth_query("late.example", "A").unwrap()
        ]
    );
}

#[test]
fn targets_parse() {
    assert_eq!(
        DnstapTarget::parse("unix:/run/x.sock").unwrap(),
        DnstapTarget::Unix("/run/x.sock".into())
    );
    assert_eq!(
        DnstapTarget::parse("tcp:127.0.0.1:6000").unwrap(),
        DnstapTarget::Tcp("127.0.0.1:6000".parse().unwrap())
    );
    assert_eq!(
        DnstapTarget::parse("tcp:127.0.0.1:6000")
            .unwrap()
            .to_string(),
        "tcp:127.0.0.1:6000"
    );
    assert!(DnstapTarget::parse("tcp:example.com:6000")
        .unwrap_err()
        .to_string()
        .contains("IP address"));
}
