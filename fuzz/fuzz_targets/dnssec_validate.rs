//! The DNSSEC validator (`src/dnssec`) on a response + keys: a signed hierarchy with fixed keys
//! (`common/signed.rs`), the response fuzzed. Whatever the response: validation ends, the
//! verdict is secure / insecure / bogus / indeterminate, a bogus one has a reason and an EDE
//! code, a response without a single RRSIG is never secure, and asking again (verdicts now
//! cached) gives the same verdict.
//!
//! Input: byte 0 picks the zone the response came from (`test.` or `example.test.`) and the
//! client's view; the rest is the response (its first question is the query).
#![no_main]

mod common;
#[path = "common/signed.rs"]
mod signed;

use dnsward::dnssec::{Limits, Security, TrustAnchorSet, Validator};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use libfuzzer_sys::fuzz_target;

fn kind(s: &Security) -> u8 {
    match s {
        Security::Secure => 0,
        Security::Insecure => 1,
        Security::Bogus(_) => 2,
        Security::Indeterminate => 3,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, bytes)) = data.split_first() else {
        return;
    };
    let Ok(response) = Message::from_vec(bytes) else {
        return;
    };
    let Some(query) = response.queries.first().cloned() else {
        return;
    };
    let z = &*signed::ZONES;
    let zone = if sel & 1 == 0 {
        &z.parent.apex
    } else {
        &z.child.apex
    };
    let mut anchors = TrustAnchorSet::empty();
    anchors.add_ds(z.parent.apex.clone(), z.parent.ds());
    let validator = Validator::new(anchors, Vec::new(), Limits::default());
    let verdict = common::RT.block_on(validator.validate(
        &query,
        &response,
        zone,
        &signed::Fetcher,
        signed::NOW,
    ));
    if let Security::Bogus(b) = &verdict {
        assert!(!b.reason.is_empty(), "bogus without a reason");
        assert!((1..=30).contains(&b.ede), "EDE {} for {}", b.ede, b.reason);
    }
    let signed = response
        .answers
        .iter()
        .chain(response.authorities.iter())
        .chain(response.additionals.iter())
        .any(|r| r.record_type() == RecordType::RRSIG);
    if !signed {
        assert_ne!(
            verdict,
            Security::Secure,
            "a response without RRSIGs is secure"
        );
    }
    let again = common::RT.block_on(validator.validate(
        &query,
        &response,
        zone,
        &signed::Fetcher,
        signed::NOW,
    ));
    assert_eq!(kind(&verdict), kind(&again), "{verdict:?} then {again:?}");
});
