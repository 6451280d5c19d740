//! Bad input never panics or wedges the server: malformed packets get FORMERR/NOTIMP/REFUSED or
//! are dropped, and normal queries keep being answered.

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

fn header(id: u16, flags: u16, qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    [id, flags, qd, an, ns, ar]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect()
}

fn with_question(mut h: Vec<u8>, qname: &[u8], qtype: u16, qclass: u16) -> Vec<u8> {
    h.extend_from_slice(qname);
    h.extend_from_slice(&qtype.to_be_bytes());
    h.extend_from_slice(&qclass.to_be_bytes());
    h
}

async fn rcode_of(addr: std::net::SocketAddr, pkt: &[u8]) -> Option<ResponseCode> {
    let resp = udp_raw(addr, pkt, Duration::from_millis(500)).await?;
    Some(
        Message::from_vec(&resp)
            .expect("our error answers parse")
            .metadata
            .response_code,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_packets_get_errors_or_silence_and_the_server_keeps_answering() {
    let h = Hierarchy::start("").await;
    let d = h.start_dnsward("").await;
    let addr = d.addrs()[0];
    let www = b"\x03www\x07example\x03com\x00";

    // Too short for a header: dropped.
    for n in [0usize, 1, 11] {
        assert_eq!(
            udp_raw(addr, &vec![0u8; n], Duration::from_millis(300)).await,
            None,
            "{n} bytes"
        );
    }
    // A response (QR set) is never answered (no reflection loops).
    assert_eq!(
        rcode_of(
            addr,
            &with_question(header(1, 0x8000, 1, 0, 0, 0), www, 1, 1)
        )
        .await,
        None
    );
    // Header says one question, none follows.
    assert_eq!(
        rcode_of(addr, &header(2, 0x0100, 1, 0, 0, 0)).await,
        Some(ResponseCode::FormErr)
    );
    // Two questions.
    let two = with_question(
        with_question(header(3, 0x0100, 2, 0, 0, 0), www, 1, 1),
        www,
        1,
        1,
    );
    assert_eq!(rcode_of(addr, &two).await, Some(ResponseCode::FormErr));
    // Compression pointer loop in the question name.
    let looped = with_question(header(4, 0x0100, 1, 0, 0, 0), &[0xC0, 12], 1, 1);
    assert_eq!(rcode_of(addr, &looped).await, Some(ResponseCode::FormErr));
    // Label longer than 63, name longer than 255.
    let mut long_label = vec![64u8];
    long_label.extend(std::iter::repeat_n(b'a', 64));
    long_label.push(0);
    assert_eq!(
        rcode_of(
            addr,
            &with_question(header(5, 0x0100, 1, 0, 0, 0), &long_label, 1, 1)
        )
        .await,
        Some(ResponseCode::FormErr)
    );
    let mut long_name = Vec::new();
    for _ in 0..5 {
        long_name.push(60u8);
        long_name.extend(std::iter::repeat_n(b'b', 60));
    }
    long_name.push(0);
    assert_eq!(
        rcode_of(
            addr,
            &with_question(header(6, 0x0100, 1, 0, 0, 0), &long_name, 1, 1)
        )
        .await,
        Some(ResponseCode::FormErr)
    );
    // Unknown opcode (UPDATE = 5, and 15) and class (CHAOS, 999).
    for opcode in [5u16, 15] {
        let pkt = with_question(header(7, opcode << 11, 1, 0, 0, 0), www, 1, 1);
        assert_eq!(
            rcode_of(addr, &pkt).await,
            Some(ResponseCode::NotImp),
            "opcode {opcode}"
        );
    }
    for class in [3u16, 999] {
        let pkt = with_question(header(8, 0x0100, 1, 0, 0, 0), www, 16, class);
        assert_eq!(
            rcode_of(addr, &pkt).await,
            Some(ResponseCode::NotImp),
            "class {class}"
        );
    }
    // Zone transfers are not served by a resolver.
    let axfr = with_question(header(9, 0, 1, 0, 0, 0), www, 252, 1);
    assert_eq!(rcode_of(addr, &axfr).await, Some(ResponseCode::Refused));
    // Records claimed but missing, and an OPT record cut short.
    let missing = with_question(header(10, 0x0100, 1, 0, 0, 3), www, 1, 1);
    assert_eq!(rcode_of(addr, &missing).await, Some(ResponseCode::FormErr));
    let mut cut_opt = with_question(header(11, 0x0100, 1, 0, 0, 1), www, 1, 1);
    cut_opt.extend_from_slice(&[0, 0, 41, 4]);
    assert_eq!(rcode_of(addr, &cut_opt).await, Some(ResponseCode::FormErr));

    // A batch of pseudo-random garbage (deterministic, bounded), over UDP and TCP.
    let mut x: u64 = 0x2545F4914F6CDD1D;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..500 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let len = (x % 300) as usize;
        let pkt: Vec<u8> = (0..len)
            .map(|j| (x.rotate_left(j as u32 % 64) >> (j % 8)) as u8)
            .collect();
        sock.send_to(&pkt, addr).await.unwrap();
        if i % 50 == 0 {
            let _ = tcp_raw(addr, &pkt, Duration::from_millis(300)).await;
        }
    }
    // A TCP frame that promises more than it sends, then hangs up.
    if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
        use tokio::io::AsyncWriteExt;
        let _ = s.write_all(&[0x10, 0x00, 1, 2, 3]).await;
    }

    // Still answering, over both transports.
    let m = ask(addr, "www.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&m), vec!["A 192.0.2.10"]);
    let m = tcp_query(
        addr,
        &query_message("www.example.com.", RecordType::AAAA, None),
    )
    .await;
    assert_eq!(answer_strings(&m), vec!["AAAA 2001:db8::10"]);
    d.shutdown().await;
}
