//! Discovery of Designated Resolvers (RFC 9462): `_dns.resolver.arpa. SVCB` answers with our
//! DoT and DoH endpoints, so a client that starts on plain DNS upgrades on its own.

use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::svcb::{Alpn, IpHint, SvcParamKey, SvcParamValue, Unknown, SVCB};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::dnswire::QueryView;

/// `_dns.resolver.arpa.` in wire form.
const DDR_NAME: &[u8] = b"\x04_dns\x08resolver\x04arpa\x00";
/// SvcParamKey `dohpath` (RFC 9461); hickory 0.26 has no named variant for it.
const KEY_DOHPATH: u16 = 7;
const TTL: u32 = 300;

/// The SVCB records for `_dns.resolver.arpa`, built once the listeners are bound.
#[derive(Debug, Clone)]
pub struct Ddr {
    records: Vec<SVCB>,
}

impl Ddr {
    /// `target`: the name in our certificate (clients verify the TLS session against it);
    /// `dot`, `doh`: the bound DoT and DoH addresses. `None` when there is nothing to announce.
    pub fn new(target: Option<&str>, dot: &[SocketAddr], doh: &[SocketAddr]) -> Option<Ddr> {
        let target = match target {
            Some(t) => Name::from_ascii(format!("{}.", t.trim_end_matches('.'))).ok()?,
            None => Name::root(),
        };
        let mut records = Vec::new();
        let mut priority = 1;
        for (addrs, alpn, path) in [
            (dot, &["dot"][..], None),
            (doh, &["h2", "http/1.1"][..], Some("/dns-query{?dns}")),
        ] {
            let mut ports: Vec<u16> = addrs.iter().map(SocketAddr::port).collect();
            ports.sort_unstable();
            ports.dedup();
            for port in ports {
                let at_port = addrs
                    .iter()
                    .filter(|a| a.port() == port)
                    .map(|a| a.ip())
                    .filter(|ip| !ip.is_unspecified());
                let (v4, v6): (Vec<IpAddr>, Vec<IpAddr>) = at_port.partition(IpAddr::is_ipv4);
                let mut params = vec![
                    (
                        SvcParamKey::Alpn,
                        SvcParamValue::Alpn(Alpn(alpn.iter().map(|s| s.to_string()).collect())),
                    ),
                    (SvcParamKey::Port, SvcParamValue::Port(port)),
                ];
                if !v4.is_empty() {
                    let hint = v4.iter().filter_map(|ip| match ip {
                        IpAddr::V4(a) => Some(A(*a)),
                        IpAddr::V6(_) => None,
                    });
                    params.push((
                        SvcParamKey::Ipv4Hint,
                        SvcParamValue::Ipv4Hint(IpHint(hint.collect())),
                    ));
                }
                if !v6.is_empty() {
                    let hint = v6.iter().filter_map(|ip| match ip {
                        IpAddr::V6(a) => Some(AAAA(*a)),
                        IpAddr::V4(_) => None,
                    });
                    params.push((
                        SvcParamKey::Ipv6Hint,
                        SvcParamValue::Ipv6Hint(IpHint(hint.collect())),
                    ));
                }
                if let Some(path) = path {
                    params.push((
                        SvcParamKey::Unknown(KEY_DOHPATH),
                        SvcParamValue::Unknown(Unknown(path.as_bytes().to_vec())),
                    ));
                }
                records.push(SVCB::new(priority, target.clone(), params));
                priority += 1;
            }
        }
        (!records.is_empty()).then_some(Ddr { records })
    }

    /// Whether `q` asks `_dns.resolver.arpa. SVCB` (any case).
    pub fn is_ddr_query(q: &QueryView<'_>) -> bool {
        q.qtype == u16::from(RecordType::SVCB) && q.qname.eq_ignore_ascii_case(DDR_NAME)
    }

    /// The answer (without OPT) to a DDR query.
    pub fn answer(&self, q: &QueryView<'_>) -> Option<Vec<u8>> {
        // The question as the client spelled it (case randomisation).
        let name = Name::read(&mut BinDecoder::new(q.qname)).ok()?;
        let mut query = Query::query(name.clone(), RecordType::SVCB);
        query.set_query_class(DNSClass::IN);
        let mut m = Message::response(q.id, OpCode::Query);
        m.metadata.recursion_desired = q.recursion_desired();
        m.metadata.checking_disabled = q.checking_disabled();
        m.metadata.recursion_available = true;
        m.add_query(query);
        for svcb in &self.records {
            m.add_answer(Record::from_rdata(
                name.clone(),
                TTL,
                RData::SVCB(svcb.clone()),
            ));
        }
        m.to_vec().ok()
    }
}
