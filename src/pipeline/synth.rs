//! Safe answers for blocked queries: NXDOMAIN / NODATA with an SOA that names the policy,
//! sinkhole addresses, REFUSED, RPZ local data — never the original records, never AD — and
//! an Extended DNS Error (RFC 8914) naming the list and the hotline when the client sent EDNS.

use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, SOA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use super::sde::Sde;
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

/// The answer for RPZ local data (without OPT), built with hickory: local data is rare and
/// its records vary. `None` for other verdicts.
fn local_data_response(
    q: &QueryView<'_>,
    verdict: &Verdict,
    policy: &PolicyConfig,
) -> Option<Vec<u8>> {
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
        // Block verdicts are written by `write_block_wire`; nothing to answer for the others.
        Verdict::Drop(_) | Verdict::Allow(_) | Verdict::Block { .. } => return None,
        Verdict::LocalData { records, .. } => {
            let mut any = false;
            for r in records.iter() {
                let data = match (r, qtype) {
                    // A CNAME answers every type (RFC 1034 3.6.2), as in RPZ.
                    (LocalRecord::Cname(target), _) => {
                        let target = target.strip_prefix("*.").unwrap_or(target);
                        Name::from_ascii(format!("{}.", target.trim_end_matches('.')))
                            .ok()
                            .map(|n| RData::CNAME(CNAME(n)))
                    }
                    (LocalRecord::A(a), RecordType::A | RecordType::ANY) => Some(RData::A(A(*a))),
                    (LocalRecord::Aaaa(a), RecordType::AAAA | RecordType::ANY) => {
                        Some(RData::AAAA(AAAA(*a)))
                    }
                    (LocalRecord::Txt(t), RecordType::TXT | RecordType::ANY) => {
                        Some(RData::TXT(TXT::new(vec![t.clone()])))
                    }
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
    m.to_vec().ok()
}

/// SOA owned by the blocked name, whose MNAME names the list: `<list>.policy.dnsward.`
fn soa_record(owner: &Name, list: &str, ttl: u32) -> Record {
    let label = list_label(list);
    let mname =
        Name::from_ascii(format!("{label}.policy.dnsward.")).unwrap_or_else(|_| Name::root());
    let rname = Name::from_ascii("hostmaster.policy.dnsward.").expect("static name");
    Record::from_rdata(
        owner.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86_400, ttl)),
    )
}

/// INFO-CODE 15 (Blocked) for threats, 17 (Filtered) for abandoned domains.
pub fn ede_code(category: Category) -> u16 {
    match category {
        Category::Abandoned => EDE_FILTERED,
        _ => EDE_BLOCKED,
    }
}

/// The EDE option with its RFC 8914 free text naming the list, the rule and the hotline.
pub fn ede_option(
    category: Category,
    list: &str,
    rule: &str,
    trigger: Trigger,
    contact: Option<&str>,
) -> Vec<u8> {
    let mut text = format!(
        "dnsward: {} blocked by list {list:?} ({}) rule {rule} ({})",
        "query",
        category.as_str(),
        trigger.as_str()
    );
    if let Some(contact) = contact {
        text.push_str("; report to ");
        text.push_str(contact);
    }
    // EXTRA-TEXT is UTF-8; keep the whole OPT well inside any UDP limit.
    let mut text = text.into_bytes();
    text.truncate(400);
    ede_option_with_text(ede_code(category), &text)
}

/// An EDE option (code, INFO-CODE, EXTRA-TEXT) as EDNS option bytes.
pub fn ede_option_with_text(code: u16, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(6 + text.len());
    out.extend_from_slice(&EDNS_OPTION_EDE.to_be_bytes());
    out.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// Writes `out` = blocked answer for `q`, with our OPT (and EDE) when the client sent EDNS.
/// Returns false when the query is to be dropped.
pub fn write_blocked(
    q: &QueryView<'_>,
    verdict: &Verdict,
    trigger: Trigger,
    policy: &PolicyConfig,
    sde: &Sde,
    limits: (u16, usize),
    out: &mut Vec<u8>,
) -> bool {
    // (our advertised UDP size, the largest answer the transport takes)
    let (max_udp, size_limit) = limits;
    let rule = verdict.rule();
    match verdict {
        // The common case, written straight to wire format from a fixed layout.
        Verdict::Block { action, .. } => {
            write_block_wire(q, action.unwrap_or(policy.action), &rule.list, policy, out)
        }
        _ => match local_data_response(q, verdict, policy) {
            Some(wire) => *out = wire,
            None => return false,
        },
    }
    if let Some(e) = q.edns {
        let ede = if e.sde {
            // What is left for EXTRA-TEXT: OPT (11) + option header (4) + INFO-CODE (2).
            let budget = size_limit
                .saturating_sub(out.len() + 17)
                .min(u16::MAX as usize - 2);
            ede_option_with_text(ede_code(rule.category), &sde.extra_text(rule, budget))
        } else {
            ede_option(
                rule.category,
                &rule.list,
                &rule.trigger_name,
                trigger,
                policy.contact.as_deref(),
            )
        };
        dnswire::append_opt(out, max_udp, e.dnssec_ok, &ede);
    }
    true
}

/// NXDOMAIN / NODATA with the policy SOA, sinkhole A/AAAA, or REFUSED, as bytes: header,
/// the question as asked, and records whose owner is a pointer to the question name.
/// (Same answers as `blocked_response` builds with hickory, without building a `Message`.)
fn write_block_wire(
    q: &QueryView<'_>,
    action: Action,
    list: &str,
    policy: &PolicyConfig,
    out: &mut Vec<u8>,
) {
    const NAME_PTR: [u8; 2] = [0xC0, 0x0C];
    let (v4, v6) = (policy.sinkhole_ipv4.octets(), policy.sinkhole_ipv6.octets());
    let (rcode, answer, soa): (u8, Option<(u16, &[u8])>, bool) = match action {
        Action::Nxdomain => (dnswire::RCODE_NXDOMAIN, None, true),
        Action::Nodata => (dnswire::RCODE_NOERROR, None, true),
        Action::Refused => (dnswire::RCODE_REFUSED, None, false),
        Action::Sinkhole => match q.qtype {
            dnswire::TYPE_A => (
                dnswire::RCODE_NOERROR,
                Some((dnswire::TYPE_A, &v4[..])),
                false,
            ),
            dnswire::TYPE_AAAA => (
                dnswire::RCODE_NOERROR,
                Some((dnswire::TYPE_AAAA, &v6[..])),
                false,
            ),
            _ => (dnswire::RCODE_NOERROR, None, true),
        },
    };
    out.clear();
    out.extend_from_slice(&q.id.to_be_bytes());
    let keep = q.flags & (dnswire::FLAG_RD | dnswire::FLAG_CD);
    out.extend_from_slice(
        &(dnswire::FLAG_QR | dnswire::FLAG_RA | keep | rcode as u16).to_be_bytes(),
    );
    out.extend_from_slice(&[0, 1, 0, answer.is_some() as u8, 0, soa as u8, 0, 0]);
    out.extend_from_slice(q.qname);
    out.extend_from_slice(&q.qtype.to_be_bytes());
    out.extend_from_slice(&q.qclass.to_be_bytes());
    let ttl = policy.ttl.to_be_bytes();
    if let Some((rtype, rdata)) = answer {
        out.extend_from_slice(&NAME_PTR);
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&dnswire::CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl);
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }
    if soa {
        out.extend_from_slice(&NAME_PTR);
        out.extend_from_slice(&6u16.to_be_bytes());
        out.extend_from_slice(&dnswire::CLASS_IN.to_be_bytes());
        out.extend_from_slice(&ttl);
        let rdlen_at = out.len();
        out.extend_from_slice(&[0, 0]);
        // MNAME <list>.policy.dnsward.  RNAME hostmaster.policy.dnsward. (pointer into MNAME)
        let label = list_label(list);
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
        let policy_at = out.len();
        out.extend_from_slice(b"\x06policy\x07dnsward\x00");
        out.extend_from_slice(b"\x0ahostmaster");
        out.extend_from_slice(&(0xC000u16 | policy_at as u16).to_be_bytes());
        for v in [1u32, 3600, 600, 86_400, policy.ttl] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let rdlen = (out.len() - rdlen_at - 2) as u16;
        out[rdlen_at..rdlen_at + 2].copy_from_slice(&rdlen.to_be_bytes());
    }
}

/// The list name as one DNS label: lower-case letters, digits and `-`, at most 63 bytes.
fn list_label(list: &str) -> String {
    let label: String = list
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    if label.is_empty() {
        "list".to_string()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RuleRef;
    use hickory_proto::op::Edns;
    use hickory_proto::op::ResponseCode;
    use std::sync::Arc;

    fn verdict(action: Option<Action>) -> Verdict {
        Verdict::Block {
            rule: RuleRef {
                list: Arc::from("Agency Feed"),
                category: Category::Abandoned,
                file: Arc::from(std::path::Path::new("/x")),
                line: 3,
                trigger_name: "evil.example".into(),
            },
            action,
        }
    }

    fn answer(qtype: RecordType, action: Option<Action>) -> Message {
        let mut m = Message::query();
        m.metadata.id = 4321;
        m.metadata.recursion_desired = true;
        m.metadata.authentic_data = true;
        m.add_query(Query::query(
            Name::from_ascii("WWW.Evil.Example.").unwrap(),
            qtype,
        ));
        m.set_edns(Edns::new());
        let pkt = m.to_vec().unwrap();
        let q = dnswire::parse_query(&pkt).unwrap();
        let policy = PolicyConfig {
            sinkhole_ipv4: "192.0.2.7".parse().unwrap(),
            sinkhole_ipv6: "2001:db8::7".parse().unwrap(),
            ttl: 33,
            ..PolicyConfig::default()
        };
        let mut out = Vec::new();
        assert!(write_blocked(
            &q,
            &verdict(action),
            Trigger::Qname,
            &policy,
            &Sde::default(),
            (1232, 1232),
            &mut out
        ));
        Message::from_vec(&out).expect("hickory parses the wire we wrote")
    }

    #[test]
    fn wire_templates_parse_as_the_intended_answers() {
        let m = answer(RecordType::A, None);
        assert_eq!(m.metadata.id, 4321);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
        assert!(!m.metadata.authentic_data && !m.metadata.authoritative);
        assert_eq!(m.queries[0].name().to_ascii(), "WWW.Evil.Example.");
        let RData::SOA(soa) = &m.authorities[0].data else {
            panic!("SOA")
        };
        assert_eq!(m.authorities[0].name.to_ascii(), "WWW.Evil.Example.");
        assert_eq!(m.authorities[0].ttl, 33);
        assert_eq!(soa.mname.to_ascii(), "agency-feed.policy.dnsward.");
        assert_eq!(soa.rname.to_ascii(), "hostmaster.policy.dnsward.");
        assert_eq!(soa.minimum, 33);
        let ede = m
            .edns
            .as_ref()
            .unwrap()
            .option(hickory_proto::rr::rdata::opt::EdnsCode::from(15));
        assert!(
            matches!(ede, Some(hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, d)) if d[..2] == [0, 17])
        );

        let m = answer(RecordType::MX, Some(Action::Nodata));
        assert_eq!(
            (
                m.metadata.response_code,
                m.answers.len(),
                m.authorities.len()
            ),
            (ResponseCode::NoError, 0, 1)
        );
        let m = answer(RecordType::A, Some(Action::Sinkhole));
        assert_eq!(m.answers[0].data, RData::A(A("192.0.2.7".parse().unwrap())));
        assert_eq!(m.answers[0].name.to_ascii(), "WWW.Evil.Example.");
        let m = answer(RecordType::AAAA, Some(Action::Sinkhole));
        assert_eq!(
            m.answers[0].data,
            RData::AAAA(AAAA("2001:db8::7".parse().unwrap()))
        );
        let m = answer(RecordType::TXT, Some(Action::Sinkhole));
        assert!(m.answers.is_empty() && m.authorities.len() == 1);
        let m = answer(RecordType::A, Some(Action::Refused));
        assert_eq!(
            (
                m.metadata.response_code,
                m.answers.len(),
                m.authorities.len()
            ),
            (ResponseCode::Refused, 0, 0)
        );
    }
}
