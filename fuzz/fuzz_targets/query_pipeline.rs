//! A whole query through the `Engine` (admission -> client group -> policy -> cache ->
//! in-process upstream -> response policy -> synthesized or rendered answer), no network:
//! whatever the bytes, an answer is a well-formed DNS message with the query's ID and
//! question (`common::check_answer`); a blocked name is never answered with upstream's
//! address; a response is never answered.
//!
//! Input: byte 0 picks the transport and the client, the rest is the packet.
#![no_main]

mod common;

use dnsward::pipeline::{Scratch, Transport};
use hickory_proto::op::Message;
use hickory_proto::rr::RData;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, pkt)) = data.split_first() else {
        return;
    };
    let engine = &*common::ENGINE;
    let transport = match sel & 3 {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        2 => Transport::Dot,
        _ => Transport::Doh,
    };
    let client = common::client_of(sel >> 2);
    let snap = engine.policy().snapshot();
    let mut s = Scratch::default();
    let answered = common::RT.block_on(engine.answer_with(pkt, transport, client, &snap, &mut s));
    if !answered {
        return;
    }
    let out = &s.out;
    assert!(pkt.len() >= 12, "an answer to {} bytes", pkt.len());
    assert_eq!(pkt[2] & 0x80, 0, "a response was answered");
    common::check_answer(pkt, out);
    if transport == Transport::Udp {
        let limit = dnsward::dnswire::parse_query(pkt)
            .map(|q| q.max_udp_response(1232))
            .unwrap_or(512);
        assert!(
            out.len() <= limit.max(512),
            "{} bytes over UDP (limit {limit})",
            out.len()
        );
    }
    let m = Message::from_vec(out).unwrap();
    let blocked = s.decision.blocked.is_some();
    if blocked {
        assert!(
            !m.metadata.authentic_data,
            "a rewritten answer never sets AD"
        );
        // Never upstream's records: the fake upstream's addresses are 192.0.2.1/.66,
        // 2001:db8::1 and 198.51.100.7.
        for r in &m.answers {
            if let RData::A(a) = &r.data {
                assert!(
                    ![[192, 0, 2, 1], [192, 0, 2, 66], [198, 51, 100, 7]].contains(&a.0.octets()),
                    "blocked answer carries upstream's {a}"
                );
            }
        }
    }
});
