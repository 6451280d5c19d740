//! The fast-path wire reader (`src/dnswire.rs`) on any bytes: never panics, stays inside the
//! packet, agrees with hickory's decoder where both read the packet, a question name read and
//! written back (presentation form -> wire) is the same name, and the replies built from a
//! parsed query are well-formed DNS messages with its ID and question.
#![no_main]

mod common;

use dnsward::dnswire::{self, Reject};
use hickory_proto::op::Message;
use hickory_proto::serialize::binary::BinEncodable;
use libfuzzer_sys::fuzz_target;

/// The wire form of a presentation name as `name_to_string` writes it: labels separated by
/// dots, other bytes as `\DDD`.
fn unescape(text: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if !text.is_empty() {
        for label in text.split('.') {
            let b = label.as_bytes();
            let mut l = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'\\' {
                    let d = std::str::from_utf8(&b[i + 1..i + 4]).unwrap();
                    l.push(d.parse::<u8>().unwrap());
                    i += 4;
                } else {
                    l.push(b[i]);
                    i += 1;
                }
            }
            out.push(l.len() as u8);
            out.extend_from_slice(&l);
        }
    }
    out.push(0);
    out
}

fuzz_target!(|pkt: &[u8]| {
    match dnswire::parse_query(pkt) {
        Err(Reject::Drop) => {
            assert!(
                pkt.len() < 12 || pkt[2] & 0x80 != 0,
                "dropped only if short or QR"
            );
        }
        Err(Reject::Error { id, flags, rcode }) => {
            assert_eq!(id, u16::from_be_bytes([pkt[0], pkt[1]]));
            assert_eq!(flags, u16::from_be_bytes([pkt[2], pkt[3]]));
            assert!(matches!(
                rcode,
                dnswire::RCODE_FORMERR | dnswire::RCODE_NOTIMP
            ));
            let resp = dnswire::error_response(id, flags, rcode, None, None, false);
            common::check_answer(pkt, &resp);
        }
        Ok(q) => {
            assert!(q.end <= pkt.len());
            assert_eq!(&pkt[12..12 + q.qname.len()], q.qname);
            assert_eq!(
                q.qname.last(),
                Some(&0),
                "the name ends with the root label"
            );
            // Read and written back: the presentation form (RFC 1035 \DDD escapes) parses
            // back to the same wire name, lower case.
            let text = dnswire::name_to_string(q.qname);
            let mut lower = Vec::new();
            dnswire::lowercase_name_into(q.qname, &mut lower);
            assert_eq!(unescape(&text), lower, "name {text:?} re-encoded");
            // hickory reads the same header and question where it reads the packet at all.
            if let Ok(m) = Message::from_vec(pkt) {
                assert_eq!(m.metadata.id, q.id);
                let hq = &m.queries[0];
                assert_eq!(u16::from(hq.query_type()), q.qtype);
                assert_eq!(u16::from(hq.query_class()), q.qclass);
                assert_eq!(hq.name().to_lowercase().to_bytes().unwrap(), lower);
                assert_eq!(m.edns.is_some(), q.edns.is_some(), "OPT seen by both");
            }
            for (rcode, edns, tc) in [
                (dnswire::RCODE_REFUSED, None, false),
                (dnswire::RCODE_NOERROR, Some((1232, q.dnssec_ok())), true),
            ] {
                let e = q.edns.and(edns);
                let resp = dnswire::error_response(
                    q.id,
                    q.flags,
                    rcode,
                    Some((q.qname, q.qtype, q.qclass)),
                    e,
                    tc,
                );
                common::check_answer(pkt, &resp);
            }
        }
    }
    // The TTL scan used on every answer cached stays in the message.
    if let Some((offsets, min)) = dnswire::ttl_offsets(pkt) {
        let ttls: Vec<u32> = offsets
            .iter()
            .map(|&o| {
                assert!(o as usize + 4 <= pkt.len());
                dnswire::read_u32(pkt, o as usize)
            })
            .collect();
        assert_eq!(ttls.iter().copied().min(), min);
    }
});
