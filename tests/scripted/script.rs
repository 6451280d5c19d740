//! What a scripted authoritative server answers: zone data served the way a correct
//! authoritative server serves it, and the misbehaviours of real ones, chosen per
//! (name, type), per name or per zone.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::NULL;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable;
use hickory_proto::serialize::txt::Parser;

/// Parses zone-file lines (one record a line, `;` comments (so none inside TXT strings), `@`
/// and relative names against
/// `origin`, default TTL 3600) with hickory's zone parser, keeping the order of the lines.
/// hickory cannot parse DNAME, so a DNAME line is parsed as a CNAME and re-typed.
pub fn records(origin: &str, text: &str) -> Vec<Record> {
    let origin = Name::from_ascii(origin).unwrap_or_else(|e| panic!("bad origin {origin:?}: {e}"));
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split(';').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        // The type token: any but the first (the owner).
        let is_dname = tokens
            .iter()
            .skip(1)
            .any(|t| t.eq_ignore_ascii_case("DNAME"));
        let line = if is_dname {
            let retyped = tokens.iter().enumerate().map(|(i, t)| {
                if i > 0 && t.eq_ignore_ascii_case("DNAME") {
                    "CNAME"
                } else {
                    t
                }
            });
            retyped.collect::<Vec<_>>().join(" ")
        } else {
            line.to_string()
        };
        let zone_text = format!("$TTL 3600\n{line}\n");
        let (_, sets) = Parser::new(zone_text, None, Some(origin.clone()))
            .parse()
            .unwrap_or_else(|e| panic!("bad record line {line:?}: {e}"));
        for set in sets.into_values() {
            for record in set.records_without_rrsigs() {
                let mut record = record.clone();
                if is_dname {
                    if let RData::CNAME(target) = &record.data {
                        let wire = target.0.to_bytes().expect("DNAME target encodes");
                        record.data = RData::Unknown {
                            code: RecordType::DNAME,
                            rdata: NULL::with(wire),
                        };
                    }
                }
                out.push(record);
            }
        }
    }
    out
}

/// One name, parsed (panics on a typo in a test).
pub fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap_or_else(|e| panic!("bad name {text:?}: {e}"))
}

/// An answer spelled out section by section.
#[derive(Clone, Debug, Default)]
pub struct Reply {
    pub rcode: ResponseCode,
    pub aa: bool,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    pub additionals: Vec<Record>,
}

impl Reply {
    /// NOERROR, AA set, no records yet.
    pub fn authoritative() -> Reply {
        Reply {
            aa: true,
            ..Reply::default()
        }
    }
    /// NOERROR, AA clear, no records yet (a referral or a lame answer).
    pub fn non_authoritative() -> Reply {
        Reply::default()
    }
    pub fn rcode(mut self, rcode: ResponseCode) -> Reply {
        self.rcode = rcode;
        self
    }
    /// Records (zone-file lines with absolute names) for the answer section.
    pub fn answer(mut self, text: &str) -> Reply {
        self.answers.extend(records(".", text));
        self
    }
    pub fn authority(mut self, text: &str) -> Reply {
        self.authorities.extend(records(".", text));
        self
    }
    pub fn additional(mut self, text: &str) -> Reply {
        self.additionals.extend(records(".", text));
        self
    }
}

/// Builds raw response bytes from the query (its parsed form and its bytes).
pub type RawFn = Arc<dyn Fn(&Message, &[u8], &[Zone]) -> Vec<u8> + Send + Sync>;

/// What a server does with a query.
#[derive(Clone)]
pub enum Behaviour {
    /// Answer from the server's zone data, as a correct authoritative server does: answer (AA),
    /// CNAME followed inside the zone, DNAME synthesis, referral (NS + the glue the zone
    /// holds), NODATA or NXDOMAIN with the SOA; REFUSED for a name in none of its zones.
    Zone,
    /// Exactly this answer (question and ID copied from the query).
    Reply(Reply),
    /// No answer at all (UDP: the datagram is dropped; TCP: the connection stays silent).
    Timeout,
    /// A header-only answer with this rcode (SERVFAIL, REFUSED, FORMERR, NOTIMP...).
    Rcode(ResponseCode),
    /// FORMERR without OPT to a query with EDNS (a server that predates EDNS); the inner
    /// behaviour to a query without EDNS.
    FormerrOnEdns(Box<Behaviour>),
    /// TC=1 and no records over UDP; the inner behaviour over TCP.
    TruncatedOverUdp(Box<Behaviour>),
    /// The inner behaviour's answer, but its question names another name.
    WrongQuestion(Name, Box<Behaviour>),
    /// The inner behaviour's answer with another message ID.
    WrongId(Box<Behaviour>),
    /// The inner behaviour after a delay.
    Delay(Duration, Box<Behaviour>),
    /// These bytes, whatever they are.
    Raw(RawFn),
}

impl Behaviour {
    /// A lame server: NOERROR, AA clear, nothing in any section (no answer, no referral).
    pub fn lame() -> Behaviour {
        Behaviour::Reply(Reply::non_authoritative())
    }

    /// A server that refers back up to the root (an upward referral: lame as well).
    pub fn upward_referral(root_ns: &str, root_ip: IpAddr) -> Behaviour {
        let glue_type = if root_ip.is_ipv4() { "A" } else { "AAAA" };
        Behaviour::Reply(
            Reply::non_authoritative()
                .authority(&format!(". 3600 NS {root_ns}"))
                .additional(&format!("{root_ns} 3600 {glue_type} {root_ip}")),
        )
    }

    /// An answer whose first answer record's owner name is a compression pointer to itself.
    pub fn compression_loop() -> Behaviour {
        Behaviour::Raw(Arc::new(|_, query, _| {
            let question = question_bytes(query);
            let mut out = header(query, 1, 1, 0, 0);
            out.extend_from_slice(question);
            let here = out.len() as u16;
            out.extend_from_slice(&(0xC000 | here).to_be_bytes()); // points at itself
            out.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 192, 0, 2, 66]);
            out
        }))
    }

    /// The correct zone answer, cut short in the middle of its last record.
    pub fn truncated_message(inner: Behaviour) -> Behaviour {
        Behaviour::Raw(Arc::new(move |msg, _, zones| {
            let full = build(&inner, msg, false, zones)
                .and_then(|m| m.to_vec().ok())
                .unwrap_or_default();
            full[..full.len().saturating_sub(3).max(12.min(full.len()))].to_vec()
        }))
    }

    /// The inner answer plus about 60 KB of out-of-bailiwick junk in the additional section,
    /// sent whatever the client's advertised UDP payload size.
    pub fn oversized(inner: Behaviour) -> Behaviour {
        Behaviour::Raw(Arc::new(move |msg, _, zones| {
            let Some(mut m) = build(&inner, msg, false, zones) else {
                return Vec::new();
            };
            for i in 0..230u32 {
                let text = format!(
                    "junk{i}.oversized.invalid. 3600 TXT \"{}\"",
                    "j".repeat(240)
                );
                m.additionals.extend(records(".", &text));
            }
            m.to_vec().unwrap_or_default()
        }))
    }
}

fn question_bytes(query: &[u8]) -> &[u8] {
    // The question: from offset 12 to the end of QNAME, plus QTYPE and QCLASS.
    let mut i = 12;
    while i < query.len() && query[i] != 0 {
        i += 1 + query[i] as usize;
    }
    &query[12.min(query.len())..(i + 5).min(query.len())]
}

fn header(query: &[u8], qd: u16, an: u16, ns: u16, ar: u16) -> Vec<u8> {
    let mut out = vec![
        query.first().copied().unwrap_or(0),
        query.get(1).copied().unwrap_or(0),
        0x84,
        0x00,
    ];
    for count in [qd, an, ns, ar] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out
}

/// A server's zone: its origin and its records in file order.
#[derive(Clone, Debug)]
pub struct Zone {
    pub origin: Name,
    pub records: Vec<Record>,
}

impl Zone {
    fn rrs<'a>(
        &'a self,
        owner: &'a Name,
        rtype: RecordType,
    ) -> impl Iterator<Item = &'a Record> + 'a {
        self.records
            .iter()
            .filter(move |r| r.name == *owner && r.record_type() == rtype)
    }

    fn name_exists(&self, owner: &Name) -> bool {
        // A name with records, or an empty non-terminal above names with records.
        self.records.iter().any(|r| owner.zone_of(&r.name))
    }

    fn soa(&self) -> Vec<Record> {
        self.rrs(&self.origin, RecordType::SOA).cloned().collect()
    }

    /// A/AAAA records the zone holds for the targets of these NS records (glue, whether or not
    /// it is in bailiwick: the script decides what it hands out).
    fn glue(&self, ns: &[Record]) -> Vec<Record> {
        let targets: Vec<&Name> = ns
            .iter()
            .filter_map(|r| {
                if let RData::NS(n) = &r.data {
                    Some(&n.0)
                } else {
                    None
                }
            })
            .collect();
        self.records
            .iter()
            .filter(|r| {
                matches!(r.record_type(), RecordType::A | RecordType::AAAA)
                    && targets.contains(&&r.name)
            })
            .cloned()
            .collect()
    }

    /// The answer a correct authoritative server gives from this zone.
    pub fn answer(&self, qname: &Name, qtype: RecordType) -> Reply {
        let origin_labels = self.origin.num_labels() as usize;
        let qname_labels = qname.num_labels() as usize;
        for depth in origin_labels + 1..=qname_labels {
            let cut = qname.trim_to(depth);
            let at_qname = depth == qname_labels;
            let ns: Vec<Record> = self.rrs(&cut, RecordType::NS).cloned().collect();
            if !ns.is_empty() && (!at_qname || qtype != RecordType::DS) {
                let glue = self.glue(&ns);
                return Reply {
                    authorities: ns,
                    additionals: glue,
                    ..Reply::non_authoritative()
                };
            }
            if !at_qname {
                if let Some(dname) = self.rrs(&cut, RecordType::DNAME).next() {
                    return self.dname_answer(dname, &cut, qname);
                }
            }
        }
        let mut reply = Reply::authoritative();
        let mut owner = qname.clone();
        // Follow CNAMEs inside the zone, as authoritative servers do (bounded by the zone size).
        for _ in 0..=self.records.len() {
            let exact: Vec<Record> = self.rrs(&owner, qtype).cloned().collect();
            if !exact.is_empty() {
                if qtype == RecordType::NS {
                    reply.additionals = self.glue(&exact);
                }
                reply.answers.extend(exact);
                return reply;
            }
            let cname = self.rrs(&owner, RecordType::CNAME).next().cloned();
            match cname {
                Some(c) if qtype != RecordType::CNAME => {
                    let RData::CNAME(target) = &c.data else {
                        unreachable!()
                    };
                    let target = target.0.clone();
                    reply.answers.push(c);
                    if !self.origin.zone_of(&target)
                        || reply.answers.iter().any(|r| r.name == target)
                    {
                        return reply;
                    }
                    owner = target;
                }
                _ => break,
            }
        }
        if !self.name_exists(&owner) {
            reply.rcode = ResponseCode::NXDomain;
        }
        reply.authorities = self.soa();
        reply
    }

    fn dname_answer(&self, dname: &Record, owner: &Name, qname: &Name) -> Reply {
        let RData::Unknown { rdata, .. } = &dname.data else {
            unreachable!("DNAME records are stored raw")
        };
        let target = Name::from_vec_bytes(&rdata.anything);
        let prefix = qname
            .iter()
            .take((qname.num_labels() - owner.num_labels()) as usize);
        let synthesized = Name::from_labels(prefix)
            .and_then(|p| p.append_domain(&target))
            .expect("DNAME target fits");
        let cname = Record::from_rdata(
            qname.clone(),
            dname.ttl,
            RData::CNAME(hickory_proto::rr::rdata::CNAME(synthesized)),
        );
        Reply {
            answers: vec![dname.clone(), cname],
            ..Reply::authoritative()
        }
    }
}

trait FromVecBytes {
    fn from_vec_bytes(bytes: &[u8]) -> Name;
}

impl FromVecBytes for Name {
    fn from_vec_bytes(bytes: &[u8]) -> Name {
        use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
        Name::read(&mut BinDecoder::new(bytes)).expect("stored DNAME target decodes")
    }
}

/// The zone of `zones` closest to `qname`.
pub fn closest_zone<'a>(zones: &'a [Zone], qname: &Name) -> Option<&'a Zone> {
    zones
        .iter()
        .filter(|z| z.origin.zone_of(qname))
        .max_by_key(|z| z.origin.num_labels())
}

/// The message a behaviour answers `query` with (`None`: no answer, or raw bytes, which the
/// server handles). `zones` is the answering server's data.
pub fn build(
    behaviour: &Behaviour,
    query: &Message,
    over_tcp: bool,
    zones: &[Zone],
) -> Option<Message> {
    let q = query.queries.first()?;
    match behaviour {
        Behaviour::Zone => {
            let reply = match closest_zone(zones, q.name()) {
                Some(zone) => zone.answer(q.name(), q.query_type()),
                None => Reply::default().rcode(ResponseCode::Refused),
            };
            Some(message(query, q, reply, query.edns.is_some()))
        }
        Behaviour::Reply(reply) => Some(message(query, q, reply.clone(), query.edns.is_some())),
        Behaviour::Timeout | Behaviour::Raw(_) => None,
        Behaviour::Rcode(rcode) => Some(message(
            query,
            q,
            Reply::default().rcode(*rcode),
            query.edns.is_some(),
        )),
        Behaviour::FormerrOnEdns(inner) => {
            if query.edns.is_some() {
                Some(message(
                    query,
                    q,
                    Reply::default().rcode(ResponseCode::FormErr),
                    false,
                ))
            } else {
                build(inner, query, over_tcp, zones)
            }
        }
        Behaviour::TruncatedOverUdp(inner) => {
            if over_tcp {
                build(inner, query, over_tcp, zones)
            } else {
                let mut m = message(query, q, Reply::authoritative(), query.edns.is_some());
                m.metadata.truncation = true;
                Some(m)
            }
        }
        Behaviour::WrongQuestion(other, inner) => {
            let mut m = build(inner, query, over_tcp, zones)?;
            m.queries = vec![Query::query(other.clone(), q.query_type())];
            Some(m)
        }
        Behaviour::WrongId(inner) => {
            let mut m = build(inner, query, over_tcp, zones)?;
            m.metadata.id = m.metadata.id.wrapping_add(0x1234);
            Some(m)
        }
        Behaviour::Delay(_, inner) => build(inner, query, over_tcp, zones),
    }
}

fn message(query: &Message, q: &Query, reply: Reply, with_edns: bool) -> Message {
    let mut m = Message::response(query.metadata.id, OpCode::Query);
    m.metadata.recursion_desired = query.metadata.recursion_desired;
    m.metadata.authoritative = reply.aa;
    m.metadata.response_code = reply.rcode;
    m.queries = vec![q.clone()];
    m.answers = reply.answers;
    m.authorities = reply.authorities;
    m.additionals = reply.additionals;
    if with_edns {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        m.set_edns(edns);
    }
    m
}
