//! A signed two-zone hierarchy with fixed keys (`fuzz/dnssec_keys/`) and a fixed clock, so
//! the seed corpus's signatures stay valid from one process to the next: `test.` (NSEC; the
//! trust anchor is its DS) delegating securely to `example.test.` (NSEC3) and insecurely to
//! `insecure.test.`.

use std::sync::LazyLock;

use async_trait::async_trait;
use dnsward::dnssec::signed::{DenialChain, SignOptions, SignedZone};
use dnsward::dnssec::{FetchError, Fetched, KeyFetcher};
use hickory_proto::dnssec::Algorithm;
use hickory_proto::rr::{Name, RecordType};

/// The validator's clock: inside every signature's window.
pub const NOW: u32 = 1_800_000_000;

fn options(ksk: &[u8], zsk: &[u8], denial: DenialChain) -> SignOptions {
    SignOptions {
        algorithm: Algorithm::ECDSAP256SHA256,
        denial,
        inception: NOW - 86_400,
        expiration: NOW + 30 * 86_400,
        pkcs8_keys: Some((ksk.to_vec(), zsk.to_vec())),
        external_keys: None,
    }
}

pub struct Hierarchy {
    pub parent: SignedZone,
    pub child: SignedZone,
}

pub static ZONES: LazyLock<Hierarchy> = LazyLock::new(|| {
    let child = SignedZone::sign(
        "example.test.",
        "$TTL 3600\n@ SOA ns.example.test. host.example.test. 1 3600 600 86400 300\n\
         @ NS ns.example.test.\nns A 192.0.2.54\na A 192.0.2.2\nb AAAA 2001:db8::2\n\
         c CNAME a\n*.w TXT \"wild\"\n",
        options(
            include_bytes!("../../dnssec_keys/child_ksk.pk8"),
            include_bytes!("../../dnssec_keys/child_zsk.pk8"),
            DenialChain::Nsec3 {
                iterations: 0,
                salt: vec![0xab],
                opt_out: false,
            },
        ),
    )
    .expect("child zone signs");
    let parent = SignedZone::sign(
        "test.",
        &format!(
            "$TTL 3600\n@ SOA ns.test. host.test. 1 3600 600 86400 300\n@ NS ns.test.\n\
             ns A 192.0.2.53\nwww A 192.0.2.1\nalias CNAME www\n*.wild TXT \"wildcard\"\n\
             example NS ns.example.test.\nns.example A 192.0.2.54\n{}\n\
             insecure NS ns.insecure.test.\nns.insecure A 192.0.2.55\n",
            child.ds_line()
        ),
        options(
            include_bytes!("../../dnssec_keys/ksk.pk8"),
            include_bytes!("../../dnssec_keys/zsk.pk8"),
            DenialChain::Nsec,
        ),
    )
    .expect("parent zone signs");
    Hierarchy { parent, child }
});

/// DS and DNSKEY answers from the two zones, as the iterator would fetch them.
pub struct Fetcher;

#[async_trait]
impl KeyFetcher for Fetcher {
    async fn fetch(&self, name: &Name, rtype: RecordType) -> Result<Fetched, FetchError> {
        let z = &*ZONES;
        let in_child =
            z.child.apex.zone_of(name) && !(rtype == RecordType::DS && *name == z.child.apex);
        let zone = if in_child {
            &z.child
        } else if z.parent.apex.zone_of(name) {
            &z.parent
        } else {
            return Err(FetchError::Failed(format!(
                "{name} is outside the test hierarchy"
            )));
        };
        Ok(Fetched {
            message: zone.respond(name, rtype),
            zone: zone.apex.clone(),
        })
    }
}
