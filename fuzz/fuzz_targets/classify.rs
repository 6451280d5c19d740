//! An upstream reply through the iterator's classification and scrubbing
//! (`src/resolver/classify.rs`): whatever the reply, only records inside the bailiwick of the
//! zone asked survive, a referral goes strictly down towards the name, with at most 20 name
//! servers of 8 glue addresses each and glue only for them, inside the zone; chains are
//! bounded.
//!
//! Input: byte 0 picks the zone asked (root, `test.`, `example.test.`, or the question's
//! parent) and the question type; the rest is the reply (its first question is the question).
#![no_main]

use dnsward::resolver::classify::{classify, Classified, MAX_CHAIN};
use dnsward::resolver::delegation::{MAX_ADDRS_PER_NS, MAX_NS_PER_ZONE};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let Ok(reply) = Message::from_vec(bytes) else {
        return;
    };
    let Some(q) = reply.queries.first() else {
        return;
    };
    let qname = q.name().clone();
    let qtype = if sel & 0x10 != 0 {
        RecordType::DS
    } else {
        q.query_type()
    };
    let zone = match sel & 3 {
        0 => Name::root(),
        1 => Name::from_ascii("test.").unwrap(),
        2 => Name::from_ascii("example.test.").unwrap(),
        _ => qname.base_name(),
    };
    match classify(&reply, &zone, &qname, qtype) {
        Classified::Answer(a) => {
            assert!(matches!(
                a.rcode,
                ResponseCode::NoError | ResponseCode::NXDomain
            ));
            for r in a.records.iter().chain(a.authority.iter()) {
                assert!(zone.zone_of(&r.name), "{} kept from outside {zone}", r.name);
            }
            // Each answer record once at most, plus the CNAMEs synthesized from DNAMEs.
            assert!(a.records.len() <= reply.answers.len() + MAX_CHAIN + 1);
            let apex = a.apex(&zone);
            assert!(zone.zone_of(&apex));
        }
        Classified::Referral {
            zone: cut, servers, ..
        } => {
            assert!(
                zone.zone_of(&cut) && cut != zone,
                "referral from {zone} to {cut}"
            );
            assert!(servers.len() <= MAX_NS_PER_ZONE);
            for s in &servers {
                assert!(s.addrs.len() <= MAX_ADDRS_PER_NS);
                if !s.addrs.is_empty() {
                    assert!(zone.zone_of(&s.name), "glue for {} outside {zone}", s.name);
                    // every glue address is in the reply, for that name
                    for ip in &s.addrs {
                        assert!(reply.additionals.iter().any(|r| r.name == s.name
                            && match &r.data {
                                RData::A(a) => std::net::IpAddr::V4(a.0) == *ip,
                                RData::AAAA(a) => std::net::IpAddr::V6(a.0) == *ip,
                                _ => false,
                            }));
                    }
                }
                assert!(reply
                    .authorities
                    .iter()
                    .any(|r| r.name == cut && matches!(&r.data, RData::NS(n) if n.0 == s.name)));
            }
        }
        Classified::Lame | Classified::Loop(_) => {}
    }
});
