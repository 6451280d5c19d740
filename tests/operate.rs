//! Operating safely: the client ACL and rate limiting, over real sockets from several
//! loopback addresses.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn from(src: &str, addr: SocketAddr, name: &str) -> Option<Message> {
    let q = query_message(name, RecordType::A, Some(1232));
    let resp = udp_raw_from(
        ip(src),
        addr,
        &q.to_vec().unwrap(),
        Duration::from_millis(700),
    )
    .await?;
    Some(Message::from_vec(&resp).unwrap())
}

async fn tcp_from(src: &str, addr: SocketAddr, name: &str) -> Option<Message> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(ip(src), 0)).unwrap();
    let mut s = sock.connect(addr).await.ok()?;
    let q = query_message(name, RecordType::A, None).to_vec().unwrap();
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    s.write_all(&framed).await.ok()?;
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(2), s.read_exact(&mut len))
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(Message::from_vec(&buf).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_outside_the_acl_are_refused_or_dropped() {
    let h = Hierarchy::start("").await;
    let text = h.config_text("").replacen(
        "[server]\n",
        "[server]\nallow = [\"127.0.0.1/32\", \"127.0.0.4/32\"]\ndeny = [\"127.0.0.4/32\"]\n",
        1,
    );
    let d = start_dnsward_text(&text, h.dir.path()).await;
    let addr = d.addrs()[0];
    let ok = from("127.0.0.1", addr, "www.example.com.").await.unwrap();
    assert_eq!(answer_strings(&ok), vec!["A 192.0.2.10"]);
    let refused = from("127.0.0.2", addr, "www.example.com.")
        .await
        .expect("an answer");
    assert_eq!(refused.metadata.response_code, ResponseCode::Refused);
    assert!(
        refused.answers.is_empty(),
        "no data leaks to a refused client"
    );
    let denied = from("127.0.0.4", addr, "www.example.com.")
        .await
        .expect("an answer");
    assert_eq!(
        denied.metadata.response_code,
        ResponseCode::Refused,
        "deny beats allow"
    );
    let over_tcp = tcp_from("127.0.0.2", addr, "www.example.com.")
        .await
        .expect("a TCP answer");
    assert_eq!(over_tcp.metadata.response_code, ResponseCode::Refused);
    assert!(
        d.engine
            .admission
            .refused
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 3
    );
    d.shutdown().await;

    let text = h.config_text("").replacen(
        "[server]\n",
        "[server]\nallow = [\"127.0.0.1/32\"]\nrefuse_action = \"drop\"\n",
        1,
    );
    let d = start_dnsward_text(&text, h.dir.path()).await;
    assert!(
        from("127.0.0.2", d.addrs()[0], "www.example.com.")
            .await
            .is_none(),
        "dropped: no answer at all"
    );
    assert!(from("127.0.0.1", d.addrs()[0], "www.example.com.")
        .await
        .is_some());
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_client_is_limited_while_another_keeps_its_answers() {
    let h = Hierarchy::start("").await;
    let text = h.config_text("").replacen(
        "[server]\n",
        "[server]\nrate_limit_qps = 50\nrate_limit_burst = 50\n",
        1,
    );
    let d = start_dnsward_text(&text, h.dir.path()).await;
    let addr = d.addrs()[0];
    assert!(from("127.0.0.1", addr, "www.example.com.").await.is_some()); // warm the cache

    // The flood: 600 queries from 127.0.0.3 as fast as one socket sends them.
    let flood = tokio::spawn(async move {
        let sock = tokio::net::UdpSocket::bind("127.0.0.3:0").await.unwrap();
        let q = query_message("www.example.com.", RecordType::A, None)
            .to_vec()
            .unwrap();
        for _ in 0..600 {
            sock.send_to(&q, addr).await.unwrap();
        }
        let (mut full, mut truncated) = (0, 0);
        let mut buf = vec![0u8; 2048];
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
        {
            let m = Message::from_vec(&buf[..n]).unwrap();
            if m.metadata.truncation {
                truncated += 1;
            } else {
                full += 1;
            }
        }
        (full, truncated)
    });
    // Meanwhile another client asks at a normal pace and gets every answer, untruncated.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = Instant::now();
        let m = from("127.0.0.4", addr, "www.example.com.")
            .await
            .expect("answered during the flood");
        worst = worst.max(started.elapsed());
        assert!(!m.metadata.truncation);
        assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (full, truncated) = flood.await.unwrap();
    // Burst 50 plus 50/s of refill while the flood is processed (generous for a slow CI).
    assert!(
        full <= 150,
        "the flood got at most its burst plus refill as full answers: {full}"
    );
    assert!(
        truncated > 0,
        "the rest got TC=1 so real clients retry over TCP: {truncated}"
    );
    // The client's socket may overflow and lose answers; the server's count is exact.
    let limited = d
        .engine
        .admission
        .rate_limited
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        limited >= 400 && limited >= truncated as u64,
        "{limited} rate limited"
    );
    eprintln!("flood: {full} full, {truncated} truncated; other client's slowest answer {worst:?}");
    // The limited client still gets answers over TCP.
    let m = tcp_from("127.0.0.3", addr, "www.example.com.")
        .await
        .expect("TCP is not rate limited");
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_answers_are_response_rate_limited() {
    let h = Hierarchy::start("").await;
    let text = h.config_text("").replacen(
        "[server]\n",
        "[server]\nrrl_responses_per_second = 10\nrrl_slip = 2\n",
        1,
    );
    let d = start_dnsward_text(&text, h.dir.path()).await;
    let addr = d.addrs()[0];
    assert!(from("127.0.0.1", addr, "www.example.com.").await.is_some());
    let sock = tokio::net::UdpSocket::bind("127.0.0.5:0").await.unwrap();
    let q = query_message("www.example.com.", RecordType::A, None)
        .to_vec()
        .unwrap();
    for _ in 0..200 {
        sock.send_to(&q, addr).await.unwrap();
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0u8; 2048];
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await
    {
        if Message::from_vec(&buf[..n]).unwrap().metadata.truncation {
            truncated += 1;
        } else {
            full += 1;
        }
    }
    assert!(full <= 50, "burst 20 plus refill: {full}");
    assert!(
        truncated > 0 && truncated <= 100,
        "every other limited answer slips out truncated: {truncated}"
    );
    let limited = d
        .engine
        .admission
        .rrl_limited
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(limited >= 140, "{limited} answers rate limited");
    // A different name to the same client is not affected.
    let m = from("127.0.0.5", addr, "mail.example.com.").await.unwrap();
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.25"]);
    d.shutdown().await;
}
