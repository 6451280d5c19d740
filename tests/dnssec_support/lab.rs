//! The DNSSEC lab of the end-to-end tests: the signed hierarchy served over real sockets, a
//! validating dnsward iterating from it or forwarding to it, and a DNS client with the DO, AD
//! and CD bits. Included by path (`#[path]`) by the tests that start dnsward.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use crate::common::{self, start_dnsward_text, udp_raw};
use crate::dnssec_support::{Authority, Hierarchy};
use dnsward::dnssec::signed::SignedZone;

pub const A: RecordType = RecordType::A;

pub struct Flags {
    pub dnssec_ok: bool,
    pub ad: bool,
    pub cd: bool,
}

pub const DO: Flags = Flags {
    dnssec_ok: true,
    ad: false,
    cd: false,
};
pub const PLAIN: Flags = Flags {
    dnssec_ok: false,
    ad: false,
    cd: false,
};

pub async fn query(server: SocketAddr, name: &str, rtype: RecordType, f: Flags) -> Message {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = true;
    m.metadata.authentic_data = f.ad;
    m.metadata.checking_disabled = f.cd;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), rtype));
    let mut e = Edns::new();
    e.set_max_payload(4096);
    e.set_dnssec_ok(f.dnssec_ok);
    m.set_edns(e);
    let bytes = udp_raw(server, &m.to_vec().unwrap(), Duration::from_secs(8))
        .await
        .expect("an answer within 8 s");
    Message::from_vec(&bytes).expect("answer parses")
}

pub fn has_rrsig(m: &Message) -> bool {
    m.all_sections()
        .any(|r| r.record_type() == RecordType::RRSIG)
}

pub struct Lab {
    pub server: Authority,
    pub dir: tempfile::TempDir,
    pub authority: SocketAddr,
    pub trust_anchor: String,
    pub hierarchy: Arc<Hierarchy>,
}

/// The hierarchy as `Hierarchy::build_at` signs it, served by one authority.
/// A secure answer to a DO query (`what` says how it was got): NOERROR, AD, and the RRSIG
/// along.
pub fn assert_secure_signed(m: &Message, what: &str) {
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::NoError,
        "{what}: {m:?}"
    );
    assert!(
        m.metadata.authentic_data,
        "{what}: a secure answer has AD: {m:?}"
    );
    assert!(has_rrsig(m), "{what}: DO: the RRSIG comes along");
}

pub async fn lab() -> Lab {
    lab_with(|_| {}, Vec::new()).await
}

pub fn now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

/// The hierarchy with `tamper` applied to its zones below the root (zones may be added), served
/// by an authority that answers REFUSED to DS questions strictly below `refuse_ds_below`.
pub async fn lab_with(
    tamper: impl FnOnce(&mut Vec<SignedZone>),
    refuse_ds_below: Vec<Name>,
) -> Lab {
    common::init_logging();
    let h = Hierarchy::build_at(now(), tamper);
    let authority = Authority::start_refusing_ds(h.clone(), refuse_ds_below).await;
    Lab {
        authority: authority.addr,
        server: authority,
        dir: tempfile::tempdir().unwrap(),
        trust_anchor: h.zone(".").ds_line(),
        hierarchy: h,
    }
}

impl Lab {
    pub async fn dnsward(&self, extra_resolver: &str, extra: &str) -> dnsward::instance::Instance {
        let resolver = self
            .server
            .validating_resolver(&self.hierarchy, self.dir.path());
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n{resolver}{extra_resolver}\n{extra}\n"
        );
        start_dnsward_text(&text, self.dir.path()).await
    }

    /// dnsward in forward mode, validating, with the hierarchy's server as its only forwarder:
    /// that server answers every question from the deepest zone holding the name, as a
    /// non-validating recursive resolver would, forged data included.
    pub async fn forwarding_dnsward(&self, dnssec: &str) -> dnsward::instance::Instance {
        std::fs::write(
            self.dir.path().join("anchor.ds"),
            format!("{}\n", self.trust_anchor),
        )
        .unwrap();
        let text = format!(
            "[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1\n[resolver]\nmode = \"forward\"\nforwarders = [\"{}\"]\ntimeout_ms = 3000\ndnssec = \"{dnssec}\"\ntrust_anchor = \"anchor.ds\"\n",
            self.authority
        );
        start_dnsward_text(&text, self.dir.path()).await
    }
}
