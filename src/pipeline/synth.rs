//! Safe answers for blocked queries: NXDOMAIN / NODATA with an SOA that names the policy,
//! sinkhole addresses, REFUSED, RPZ local data — never the original records, never AD — and
//! an Extended DNS Error (RFC 8914) naming the list and the hotline when the client sent EDNS.

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::config::PolicyConfig;
use crate::dnswire::{self, QueryView};
use crate::policy::{Action, Category, LocalRecord, Verdict};

/// What set the block off (for logs and the EDE text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Qname,
    Cname,
    Ip,
}

impl Trigger {
    pub fn as_str(&self) -> &'static str {
        match self {
            Trigger::Qname => "qname",
            Trigger::Cname => "cname",
            Trigger::Ip => "ip",
        }
    }
}

/// RFC 8914 INFO-CODEs we use.
pub const EDE_BLOCKED: u16 = 15;
pub const EDE_FILTERED: u16 = 17;
const EDNS_OPTION_EDE: u16 = 15;

/// The synthesized response (without OPT), and the EDE option bytes to put in our OPT.
/// `None`: drop the query (RPZ `rpz-drop.`).
pub fn blocked_response(
    q: &QueryView<'_>,
    verdict: &Verdict,
    trigger: Trigger,
    policy: &PolicyConfig,
) -> Option<(Vec<u8>, Vec<u8>)> {
    let rule = verdict.rule();
    let name = Name::read(&mut BinDecoder::new(q.qname)).ok()?;
    let mut query = Query::query(name.clone(), RecordType::from(q.qtype));
    query.set_query_class(DNSClass::from(q.qclass));

    let mut m = Message::response(q.id, OpCode::Query);
    m.metadata.recursion_desired = q.recursion_desired();
    m.metadata.checking_disabled = q.checking_disabled();
    m.metadata.recursion_available = true;
    m.metadata.authentic_data = false;
    m.add_query(query);
    let ttl = policy.ttl;
    let soa = || soa_record(&name, &rule.list, ttl);
    let qtype = RecordType::from(q.qtype);

    match verdict {
        Verdict::Drop(_) | Verdict::Allow(_) => return None,
        Verdict::Block { action, .. } => match action.unwrap_or(policy.action) {
            Action::Nxdomain => {
                m.metadata.response_code = ResponseCode::NXDomain;
                m.add_authority(soa());
            }
            Action::Nodata => {
                m.add_authority(soa());
            }
            Action::Refused => {
                m.metadata.response_code = ResponseCode::Refused;
            }
            Action::Sinkhole => match qtype {
                RecordType::A => {
                    m.add_answer(Record::from_rdata(name.clone(), ttl, RData::A(A(policy.sinkhole_ipv4))));
                }
                RecordType::AAAA => {
                    m.add_answer(Record::from_rdata(name.clone(), ttl, RData::AAAA(AAAA(policy.sinkhole_ipv6))));
                }
                _ => {
                    m.add_authority(soa());
                }
            },
        },
        Verdict::LocalData { records, .. } => {
            let mut any = false;
            for r in records.iter() {
                let data = match (r, qtype) {
                    // A CNAME answers every type (RFC 1034 3.6.2), as in RPZ.
                    (LocalRecord::Cname(target), _) => {
                        let target = target.strip_prefix("*.").unwrap_or(target);
                        Name::from_ascii(format!("{}.", target.trim_end_matches('.'))).ok().map(|n| RData::CNAME(CNAME(n)))
                    }
                    (LocalRecord::A(a), RecordType::A | RecordType::ANY) => Some(RData::A(A(*a))),
                    (LocalRecord::Aaaa(a), RecordType::AAAA | RecordType::ANY) => Some(RData::AAAA(AAAA(*a))),
                    (LocalRecord::Txt(t), RecordType::TXT | RecordType::ANY) => Some(RData::TXT(TXT::new(vec![t.clone()]))),
                    _ => None,
                };
                if let Some(data) = data {
                    m.add_answer(Record::from_rdata(name.clone(), ttl, data));
                    any = true;
                }
            }
            if !any {
                // Local data answers only the types it holds: NODATA for the others.
                m.add_authority(soa());
            }
        }
    }
    let wire = m.to_vec().ok()?;
    Some((wire, ede_option(rule.category, &rule.list, &rule.trigger_name, trigger, policy.contact.as_deref())))
}

/// SOA owned by the blocked name, whose MNAME names the list: `<list>.policy.dnsward.`
fn soa_record(owner: &Name, list: &str, ttl: u32) -> Record {
    let label: String = list
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '-' })
        .take(63)
        .collect();
    let label = if label.is_empty() { "list".to_string() } else { label };
    let mname = Name::from_ascii(format!("{label}.policy.dnsward.")).unwrap_or_else(|_| Name::root());
    let rname = Name::from_ascii("hostmaster.policy.dnsward.").expect("static name");
    Record::from_rdata(owner.clone(), ttl, RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86_400, ttl)))
}

/// The EDE option: INFO-CODE 15 (Blocked) for threats, 17 (Filtered) for abandoned domains.
pub fn ede_option(category: Category, list: &str, rule: &str, trigger: Trigger, contact: Option<&str>) -> Vec<u8> {
    let code = match category {
        Category::Abandoned => EDE_FILTERED,
        _ => EDE_BLOCKED,
    };
    let mut text = format!("dnsward: {} blocked by list {list:?} ({}) rule {rule} ({})", "query", category.as_str(), trigger.as_str());
    if let Some(contact) = contact {
        text.push_str("; report to ");
        text.push_str(contact);
    }
    // EXTRA-TEXT is UTF-8; keep the whole OPT well inside any UDP limit.
    let mut text = text.into_bytes();
    text.truncate(400);
    let mut out = Vec::with_capacity(6 + text.len());
    out.extend_from_slice(&EDNS_OPTION_EDE.to_be_bytes());
    out.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(&text);
    out
}

/// Writes `out` = blocked answer for `q`, with our OPT (and EDE) when the client sent EDNS.
/// Returns false when the query is to be dropped.
pub fn write_blocked(
    q: &QueryView<'_>,
    verdict: &Verdict,
    trigger: Trigger,
    policy: &PolicyConfig,
    max_udp: u16,
    out: &mut Vec<u8>,
) -> bool {
    let Some((wire, ede)) = blocked_response(q, verdict, trigger, policy) else {
        return false;
    };
    *out = wire;
    if let Some(e) = q.edns {
        dnswire::append_opt(out, max_udp, e.dnssec_ok, &ede);
    }
    true
}
