//! The DNSSEC validator against zones signed in the test (`dnsward::dnssec::signed`), with a
//! key fetcher backed by those zones and the test root's KSK as the only trust anchor.

mod common;
mod dnssec_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, RRSIG};
use hickory_proto::dnssec::{Algorithm, PublicKeyBuf};
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, NULL};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

use dnssec_support::{covers, name, sign, Hierarchy};
use dnsward::dnssec::signed::{SignOptions, SignedZone};
use dnsward::dnssec::{
    ede, strip_dnssec_records, FetchError, Fetched, KeyFetcher, Limits, Security, TrustAnchorSet,
    Validator,
};

const NOW: u32 = 1_800_000_000;

/// Asks `zone` for (qname, qtype) and validates its response.
async fn check(
    h: &Hierarchy,
    v: &Validator,
    zone: &str,
    qname: &str,
    qtype: RecordType,
) -> Security {
    let response = h.zone(zone).respond(&name(qname), qtype);
    validate(h, v, zone, qname, qtype, &response).await
}

async fn validate(
    h: &Hierarchy,
    v: &Validator,
    zone: &str,
    qname: &str,
    qtype: RecordType,
    m: &Message,
) -> Security {
    let query = Query::query(name(qname), qtype);
    v.validate(&query, m, &name(zone), h, NOW).await
}

fn assert_bogus(s: &Security, code: u16) {
    match s {
        Security::Bogus(b) => assert_eq!(b.ede, code, "{}", b.reason),
        other => panic!("expected bogus EDE {code}, got {other:?}"),
    }
}

#[tokio::test]
async fn secure_answers_and_the_key_cache() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    assert_eq!(
        check(&h, &v, "secure.", "www.secure.", RecordType::A).await,
        Security::Secure
    );
    let fetched = h.fetches.load(Ordering::Relaxed);
    assert_eq!(fetched, 3, "DNSKEY . + DS secure. + DNSKEY secure.");
    // A CNAME within the zone, and a second answer: no more key fetches.
    assert_eq!(
        check(&h, &v, "secure.", "alias.secure.", RecordType::A).await,
        Security::Secure
    );
    assert_eq!(h.fetches.load(Ordering::Relaxed), fetched);
    for zone in ["nsec3.", "optout."] {
        assert_eq!(
            check(&h, &v, zone, &format!("www.{zone}"), RecordType::A).await,
            Security::Secure,
            "{zone}"
        );
    }
}

#[tokio::test]
async fn insecure_delegation_and_its_answers() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    // The root's referral proves with NSEC that insecure. has no DS.
    assert_eq!(
        check(&h, &v, ".", "www.insecure.", RecordType::A).await,
        Security::Insecure
    );
    // An unsigned answer from the insecure zone.
    let mut unsigned = Message::response(0, hickory_proto::op::OpCode::Query);
    unsigned.add_answer(Record::from_rdata(
        name("www.insecure."),
        60,
        RData::A("192.0.2.7".parse().unwrap()),
    ));
    assert_eq!(
        validate(
            &h,
            &v,
            "insecure.",
            "www.insecure.",
            RecordType::A,
            &unsigned
        )
        .await,
        Security::Insecure
    );
    // The referral's proof is remembered, and below a cached insecure zone no DS is fetched.
    let before = h.fetches.load(Ordering::Relaxed);
    let s = validate(
        &h,
        &v,
        "insecure.",
        "www.insecure.",
        RecordType::A,
        &unsigned,
    )
    .await;
    assert_eq!(s, Security::Insecure);
    unsigned.answers[0].name = name("www.sub.insecure.");
    let s = validate(
        &h,
        &v,
        "sub.insecure.",
        "www.sub.insecure.",
        RecordType::A,
        &unsigned,
    )
    .await;
    assert_eq!(s, Security::Insecure);
    assert_eq!(h.fetches.load(Ordering::Relaxed), before);
    // A secure referral.
    assert_eq!(
        check(&h, &v, ".", "www.secure.", RecordType::A).await,
        Security::Secure
    );
}

#[tokio::test]
async fn flipped_signature_byte_is_bogus() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let mut m = h
        .zone("secure.")
        .respond(&name("www.secure."), RecordType::A);
    for r in m.answers.iter_mut() {
        dnssec_support::corrupt_rrsig(r);
    }
    assert_bogus(
        &validate(&h, &v, "secure.", "www.secure.", RecordType::A, &m).await,
        ede::DNSSEC_BOGUS,
    );
}

#[tokio::test]
async fn expired_signatures_missing_dnskey_missing_rrsigs() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    assert_bogus(
        &check(&h, &v, "expired.", "www.expired.", RecordType::A).await,
        ede::SIGNATURE_EXPIRED,
    );
    assert_bogus(
        &check(&h, &v, "nokey.", "www.nokey.", RecordType::A).await,
        ede::DNSKEY_MISSING,
    );
    let mut m = h
        .zone("secure.")
        .respond(&name("www.secure."), RecordType::A);
    m.answers.retain(|r| r.record_type() != RecordType::RRSIG);
    assert_bogus(
        &validate(&h, &v, "secure.", "www.secure.", RecordType::A, &m).await,
        ede::RRSIGS_MISSING,
    );
    // An RRSIG whose rdata did not parse counts as no RRSIG.
    let mut m = h
        .zone("secure.")
        .respond(&name("www.secure."), RecordType::A);
    for r in m
        .answers
        .iter_mut()
        .filter(|r| r.record_type() == RecordType::RRSIG)
    {
        r.data = RData::Unknown {
            code: RecordType::RRSIG,
            rdata: hickory_proto::rr::rdata::NULL::with(vec![1, 2, 3]),
        };
    }
    assert_bogus(
        &validate(&h, &v, "secure.", "www.secure.", RecordType::A, &m).await,
        ede::RRSIGS_MISSING,
    );
}

#[tokio::test]
async fn ds_with_unsupported_algorithm_is_insecure() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let mut unsigned = Message::response(0, hickory_proto::op::OpCode::Query);
    unsigned.add_answer(Record::from_rdata(
        name("www.unsupported."),
        60,
        RData::A("192.0.2.8".parse().unwrap()),
    ));
    let s = validate(
        &h,
        &v,
        "unsupported.",
        "www.unsupported.",
        RecordType::A,
        &unsigned,
    )
    .await;
    assert_eq!(s, Security::Insecure);
}

#[tokio::test]
async fn denial_proofs_nsec_and_nsec3() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    for zone in ["secure.", "nsec3."] {
        let q = |l: &str| format!("{l}.{zone}");
        let nx = h.zone(zone).respond(&name(&q("nothere")), RecordType::A);
        assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            check(&h, &v, zone, &q("nothere"), RecordType::A).await,
            Security::Secure,
            "{zone} NXDOMAIN"
        );
        assert_eq!(
            check(&h, &v, zone, &q("www"), RecordType::TXT).await,
            Security::Secure,
            "{zone} NODATA"
        );
        assert_eq!(
            check(&h, &v, zone, &q("deep"), RecordType::A).await,
            Security::Secure,
            "{zone} ENT NODATA"
        );
        let dangling = h.zone(zone).respond(&name(&q("dangling")), RecordType::A);
        assert_eq!(dangling.metadata.response_code, ResponseCode::NXDomain);
        assert_eq!(
            check(&h, &v, zone, &q("dangling"), RecordType::A).await,
            Security::Secure,
            "{zone} CNAME to NXDOMAIN"
        );
        let wild = h.zone(zone).respond(&name(&q("x.wild")), RecordType::A);
        assert_eq!(
            wild.answers.first().map(|r| r.name.clone()),
            Some(name(&q("x.wild")))
        );
        assert_eq!(
            check(&h, &v, zone, &q("x.wild"), RecordType::A).await,
            Security::Secure,
            "{zone} wildcard"
        );
        assert_eq!(
            check(&h, &v, zone, &q("x.wild"), RecordType::MX).await,
            Security::Secure,
            "{zone} wildcard NODATA"
        );

        // Without their proofs the same answers are bogus.
        let mut m = nx.clone();
        m.authorities
            .retain(|r| !matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3));
        m.authorities
            .retain(|r| !covers(r, RecordType::NSEC) && !covers(r, RecordType::NSEC3));
        assert_bogus(
            &validate(&h, &v, zone, &q("nothere"), RecordType::A, &m).await,
            ede::NSEC_MISSING,
        );
        let mut m = wild.clone();
        m.authorities.clear();
        assert_bogus(
            &validate(&h, &v, zone, &q("x.wild"), RecordType::A, &m).await,
            ede::NSEC_MISSING,
        );
        // A wildcard answer with someone else's proof (the NODATA proof for www).
        let mut m = wild.clone();
        let other = h.zone(zone).respond(&name(&q("www")), RecordType::TXT);
        m.authorities = other
            .authorities
            .into_iter()
            .filter(|r| r.record_type() != RecordType::SOA && !covers(r, RecordType::SOA))
            .collect();
        assert_bogus(
            &validate(&h, &v, zone, &q("x.wild"), RecordType::A, &m).await,
            ede::DNSSEC_BOGUS,
        );
        // NXDOMAIN for a name that exists: the proof does not hold.
        let mut m = nx.clone();
        m.queries[0] = Query::query(name(&q("www")), RecordType::A);
        assert_bogus(
            &validate(&h, &v, zone, &q("www"), RecordType::A, &m).await,
            ede::DNSSEC_BOGUS,
        );
    }
}

#[tokio::test]
async fn nsec3_opt_out_delegation_is_insecure() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let referral = h
        .zone("optout.")
        .respond(&name("www.child.optout."), RecordType::A);
    assert!(referral
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::NS));
    assert_eq!(
        check(&h, &v, "optout.", "www.child.optout.", RecordType::A).await,
        Security::Insecure
    );
    assert_eq!(
        check(&h, &v, "optout.", "child.optout.", RecordType::DS).await,
        Security::Insecure
    );
}

#[tokio::test]
async fn nsec3_iterations_above_the_limit_are_insecure() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let started = Instant::now();
    assert_eq!(
        check(&h, &v, "slow.", "nothere.slow.", RecordType::A).await,
        Security::Insecure
    );
    assert_eq!(
        check(&h, &v, "slow.", "www.slow.", RecordType::TXT).await,
        Security::Insecure
    );
    // Positive answers stay secure: only the denial is unprovable.
    assert_eq!(
        check(&h, &v, "slow.", "www.slow.", RecordType::A).await,
        Security::Secure
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    let strict = Validator::new(
        h.anchors(),
        Vec::new(),
        Limits {
            nsec3_max_iterations: 1000,
            ..Limits::default()
        },
    );
    assert_eq!(
        check(&h, &strict, "slow.", "nothere.slow.", RecordType::A).await,
        Security::Secure
    );
}

#[tokio::test]
async fn negative_trust_anchor_makes_a_zone_insecure() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    assert!(matches!(
        check(&h, &v, "expired.", "www.expired.", RecordType::A).await,
        Security::Bogus(_)
    ));
    v.set_negative_trust_anchors(vec![name("Expired.")]);
    assert_eq!(v.negative_trust_anchors(), vec![name("expired.")]);
    assert_eq!(
        check(&h, &v, "expired.", "www.expired.", RecordType::A).await,
        Security::Insecure
    );
    v.set_negative_trust_anchors(Vec::new());
    assert!(matches!(
        check(&h, &v, "expired.", "www.expired.", RecordType::A).await,
        Security::Bogus(_)
    ));
}

#[tokio::test]
async fn thousands_of_signatures_are_bounded() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let mut m = h
        .zone("secure.")
        .respond(&name("www.secure."), RecordType::A);
    let real = m
        .answers
        .iter()
        .find(|r| r.record_type() == RecordType::RRSIG)
        .unwrap()
        .clone();
    let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &real.data else {
        unreachable!()
    };
    m.answers.retain(|r| r.record_type() != RecordType::RRSIG);
    for i in 0..5000u32 {
        let mut bytes = sig.sig().to_vec();
        bytes[..4].copy_from_slice(&i.to_be_bytes());
        let mut r = real.clone();
        r.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
            sig.input().clone(),
            bytes,
        )));
        m.answers.push(r);
    }
    m.answers.push(real); // the valid one comes last, past the per-RRset cap
    let started = Instant::now();
    assert_bogus(
        &validate(&h, &v, "secure.", "www.secure.", RecordType::A, &m).await,
        ede::DNSSEC_BOGUS,
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

/// A fetcher that answers every DS from the asked name itself: a loop in the chain.
struct Looping(Arc<Hierarchy>);

#[async_trait]
impl KeyFetcher for Looping {
    async fn fetch(&self, qname: &Name, rtype: RecordType) -> Result<Fetched, FetchError> {
        let mut f = self.0.fetch(qname, rtype).await?;
        if rtype == RecordType::DS {
            f.zone = qname.clone();
        }
        Ok(f)
    }
}

#[tokio::test]
async fn a_ds_answered_by_the_child_itself_is_bogus_not_a_loop() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let m = h
        .zone("secure.")
        .respond(&name("www.secure."), RecordType::A);
    let query = Query::query(name("www.secure."), RecordType::A);
    let s = v
        .validate(&query, &m, &name("secure."), &Looping(h.clone()), NOW)
        .await;
    assert_bogus(&s, ede::DNSSEC_BOGUS);
}

#[tokio::test]
async fn no_anchor_is_indeterminate_and_strip_removes_dnssec_records() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let mut anchors = TrustAnchorSet::empty();
    anchors.add_ds(name("secure."), h.zone("secure.").ds());
    let v = Validator::new(anchors, Vec::new(), Limits::default());
    assert_eq!(
        check(&h, &v, "secure.", "www.secure.", RecordType::A).await,
        Security::Secure
    );
    assert_eq!(
        check(&h, &v, "nsec3.", "www.nsec3.", RecordType::A).await,
        Security::Indeterminate
    );

    let mut m = h
        .zone("secure.")
        .respond(&name("nothere.secure."), RecordType::A);
    strip_dnssec_records(&mut m);
    assert!(m
        .all_sections()
        .all(|r| !matches!(r.record_type(), RecordType::RRSIG | RecordType::NSEC)));
    assert!(m
        .authorities
        .iter()
        .any(|r| r.record_type() == RecordType::SOA));
    let bogus = Security::Bogus(dnsward::dnssec::Bogus::new(7, "expired"));
    assert_eq!(bogus.ede(), Some((7, "expired")));
    assert_eq!(Security::Secure.ede(), None);
}

#[tokio::test]
async fn thousands_of_keys_are_bounded() {
    let h = Hierarchy::build_at(NOW, |zones| {
        let secure = zones
            .iter_mut()
            .find(|z| z.apex == name("secure."))
            .unwrap();
        for i in 0..3000u32 {
            let garbage = PublicKeyBuf::new(i.to_be_bytes().repeat(16), Algorithm::ECDSAP256SHA256);
            let key = DNSKEY::new(true, i % 2 == 0, false, garbage);
            let record = Record::from_rdata(
                name("secure."),
                3600,
                RData::DNSSEC(DNSSECRData::DNSKEY(key)),
            );
            secure.records.push(record);
        }
    });
    let v = h.validator();
    let started = Instant::now();
    // The KSK signed the original DNSKEY RRset, not this one.
    assert_bogus(
        &check(&h, &v, "secure.", "www.secure.", RecordType::A).await,
        ede::DNSSEC_BOGUS,
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn trust_anchor_file_with_the_zone_ds() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secure.ds");
    std::fs::write(
        &path,
        format!("; the secure. KSK\n{}\n", h.zone("secure.").ds_line()),
    )
    .unwrap();
    let anchors = TrustAnchorSet::from_files(std::slice::from_ref(&path)).unwrap();
    let v = Validator::new(anchors, Vec::new(), Limits::default());
    assert_eq!(
        check(&h, &v, "secure.", "www.secure.", RecordType::A).await,
        Security::Secure
    );
    std::fs::write(&path, "; nothing\n").unwrap();
    assert!(TrustAnchorSet::from_files(&[path]).is_err());
}

#[tokio::test]
async fn dname_vouches_for_its_cname_and_chains_may_leave_the_zone() {
    let h = Hierarchy::build_at(NOW, |zones| {
        // hickory's zone parser reads no DNAME: add it as unknown rdata and sign records.
        let base = sign("dn.", "", SignOptions::new(NOW));
        let mut records: Vec<Record> = base
            .records
            .into_iter()
            .filter(|r| matches!(r.record_type(), RecordType::SOA | RecordType::NS))
            .collect();
        let target = name("secure.").to_bytes().unwrap();
        let dname = RData::Unknown {
            code: RecordType::DNAME,
            rdata: NULL::with(target),
        };
        records.push(Record::from_rdata(name("alias.dn."), 300, dname));
        records.push(Record::from_rdata(
            name("out.dn."),
            300,
            RData::CNAME(CNAME(name("www.secure."))),
        ));
        zones.push(SignedZone::sign_records(name("dn."), records, SignOptions::new(NOW)).unwrap());
    });
    let v = h.validator();
    let mut m = Message::response(0, OpCode::Query);
    m.add_query(Query::query(name("www.alias.dn."), RecordType::A));
    m.answers
        .extend(h.zone("dn.").rrset(&name("alias.dn."), RecordType::DNAME));
    m.answers.push(Record::from_rdata(
        name("www.alias.dn."),
        300,
        RData::CNAME(CNAME(name("www.secure."))),
    ));
    assert_eq!(
        validate(&h, &v, "dn.", "www.alias.dn.", RecordType::A, &m).await,
        Security::Secure
    );
    // A CNAME the DNAME does not synthesize has no signature of its own (and nothing exists
    // below a DNAME for the chain of trust to find).
    m.answers.last_mut().unwrap().data = RData::CNAME(CNAME(name("evil.example.")));
    let s = validate(&h, &v, "dn.", "www.alias.dn.", RecordType::A, &m).await;
    assert!(matches!(s, Security::Bogus(_)), "{s:?}");
    // A signed CNAME into another zone: secure here, the target is another question.
    assert_eq!(
        check(&h, &v, "dn.", "out.dn.", RecordType::A).await,
        Security::Secure
    );
}

/// The iterator runs validations on tokio tasks: the future must be `Send`, the validator
/// shareable.
#[tokio::test]
async fn validation_runs_on_spawned_tasks() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = Arc::new(h.validator());
    let tasks: Vec<_> = ["www.secure.", "nothere.nsec3.", "www.expired."]
        .into_iter()
        .map(|qname| {
            let (h, v) = (h.clone(), v.clone());
            tokio::spawn(async move {
                let zone = h
                    .answering_zone(&name(qname), RecordType::A)
                    .unwrap()
                    .apex
                    .clone();
                let response = h
                    .zone(&zone.to_ascii())
                    .respond(&name(qname), RecordType::A);
                let query = Query::query(name(qname), RecordType::A);
                v.validate(&query, &response, &zone, &*h, NOW).await
            })
        })
        .collect();
    let mut verdicts = Vec::new();
    for t in tasks {
        verdicts.push(t.await.unwrap());
    }
    assert_eq!(verdicts[0], Security::Secure);
    assert_eq!(verdicts[1], Security::Secure);
    assert!(matches!(verdicts[2], Security::Bogus(_)));
}

/// A DNSKEY whose key bytes do not parse, signed into the zone's DNSKEY RRset, and an RRSIG
/// that names it: the verification fails cleanly (bogus), nothing panics.
#[tokio::test]
async fn a_dnskey_that_does_not_parse_is_bogus_not_a_panic() {
    let garbage = DNSKEY::new(
        true,
        false,
        false,
        PublicKeyBuf::new(vec![4, 1, 2, 3, 4], Algorithm::ECDSAP256SHA256),
    );
    let garbage_tag = garbage.calculate_key_tag().unwrap();
    let h = Hierarchy::build_at(NOW, |zones| {
        let base = sign(
            "garbage.",
            "www 300 IN A 192.0.2.4\n",
            SignOptions::new(NOW),
        );
        let mut records: Vec<Record> = base
            .records
            .into_iter()
            .filter(|r| !r.record_type().is_dnssec())
            .collect();
        records.push(Record::from_rdata(
            name("garbage."),
            3600,
            RData::DNSSEC(DNSSECRData::DNSKEY(garbage.clone())),
        ));
        zones.push(
            SignedZone::sign_records(name("garbage."), records, SignOptions::new(NOW)).unwrap(),
        );
    });
    let v = h.validator();
    let mut m = h
        .zone("garbage.")
        .respond(&name("www.garbage."), RecordType::A);
    for r in m.answers.iter_mut() {
        if let RData::DNSSEC(DNSSECRData::RRSIG(sig)) = &r.data {
            let mut input = sig.input().clone();
            input.key_tag = garbage_tag;
            r.data = RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(
                input,
                sig.sig().to_vec(),
            )));
        }
    }
    let s = validate(&h, &v, "garbage.", "www.garbage.", RecordType::A, &m).await;
    assert_bogus(&s, ede::DNSSEC_BOGUS);
    // The untouched answer of the same zone is secure: the bad key alone does no harm.
    assert_eq!(
        check(&h, &v, "garbage.", "www.garbage.", RecordType::A).await,
        Security::Secure
    );
}

/// A fetcher whose servers never answer.
struct NothingAnswers;

#[async_trait]
impl KeyFetcher for NothingAnswers {
    async fn fetch(&self, _name: &Name, _rtype: RecordType) -> Result<Fetched, FetchError> {
        Err(FetchError::Unreachable("no server answered".into()))
    }
}

#[tokio::test]
async fn unreachable_key_servers_are_no_reachable_authority_not_a_forgery() {
    let h = Hierarchy::build_at(NOW, |_| {});
    let v = h.validator();
    let response = h
        .zone("secure.")
        .respond(&name("www.secure."), RecordType::A);
    let query = Query::query(name("www.secure."), RecordType::A);
    let verdict = v
        .validate(&query, &response, &name("secure."), &NothingAnswers, NOW)
        .await;
    assert_bogus(&verdict, ede::NO_REACHABLE_AUTHORITY);
}
