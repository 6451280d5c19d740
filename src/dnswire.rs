//! Just enough DNS wire format for the fast path: read a query's header, question and OPT
//! record, find the TTL fields of an encoded response, and patch a cached response for a new
//! client — without building hickory `Message`s.
//!
//! Why by hand: the cache-hit path must not parse or allocate per record (ARCHITECTURE.md,
//! "the common cases"); hickory's decoder builds the whole message. Everything else (building
//! responses on a miss, TCP) goes through hickory_proto.

pub const HEADER_LEN: usize = 12;
pub const TYPE_OPT: u16 = 41;
pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_CNAME: u16 = 5;
pub const CLASS_IN: u16 = 1;

pub const RCODE_NOERROR: u8 = 0;
pub const RCODE_FORMERR: u8 = 1;
pub const RCODE_SERVFAIL: u8 = 2;
pub const RCODE_NXDOMAIN: u8 = 3;
pub const RCODE_NOTIMP: u8 = 4;
pub const RCODE_REFUSED: u8 = 5;

/// Header flag bits (second 16-bit word).
pub const FLAG_QR: u16 = 0x8000;
pub const FLAG_AA: u16 = 0x0400;
pub const FLAG_TC: u16 = 0x0200;
pub const FLAG_RD: u16 = 0x0100;
pub const FLAG_RA: u16 = 0x0080;
pub const FLAG_AD: u16 = 0x0020;
pub const FLAG_CD: u16 = 0x0010;

/// The client's EDNS(0) OPT record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    pub udp_size: u16,
    pub version: u8,
    pub dnssec_ok: bool,
    /// The client sent an EDE option: it asks for Structured DNS Errors
    /// (draft-ietf-dnsop-structured-dns-error).
    pub sde: bool,
}

/// A query whose header and question were read.
#[derive(Debug, Clone, Copy)]
pub struct QueryView<'a> {
    pub id: u16,
    pub flags: u16,
    /// The question name as sent (uncompressed wire labels, final zero byte included).
    pub qname: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
    pub edns: Option<Edns>,
    /// Where the last record read ends: bytes after it are trailing garbage.
    pub end: usize,
}

impl QueryView<'_> {
    pub fn recursion_desired(&self) -> bool {
        self.flags & FLAG_RD != 0
    }
    pub fn checking_disabled(&self) -> bool {
        self.flags & FLAG_CD != 0
    }
    /// The client asked for the AD bit: with DO (RFC 4035) or with AD itself (RFC 6840 5.7).
    pub fn wants_ad(&self) -> bool {
        self.flags & FLAG_AD != 0 || self.dnssec_ok()
    }
    pub fn dnssec_ok(&self) -> bool {
        self.edns.is_some_and(|e| e.dnssec_ok)
    }
    /// Largest UDP response this client accepts, capped by `server_max`.
    pub fn max_udp_response(&self, server_max: u16) -> usize {
        match self.edns {
            Some(e) => e.udp_size.clamp(512, server_max.max(512)) as usize,
            None => 512,
        }
    }
}

/// Why a packet gets no normal answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// Not worth an answer: too short to hold a header, or a response (answering responses
    /// invites reflection loops).
    Drop,
    /// Answer with this RCODE and no records.
    Error { id: u16, flags: u16, rcode: u8 },
}

/// Reads header, question and OPT of a query. Never panics, whatever the bytes.
pub fn parse_query(pkt: &[u8]) -> Result<QueryView<'_>, Reject> {
    if pkt.len() < HEADER_LEN {
        return Err(Reject::Drop);
    }
    let id = u16::from_be_bytes([pkt[0], pkt[1]]);
    let flags = u16::from_be_bytes([pkt[2], pkt[3]]);
    if flags & FLAG_QR != 0 {
        return Err(Reject::Drop);
    }
    let err = |rcode| Err(Reject::Error { id, flags, rcode });
    let opcode = (flags >> 11) & 0xf;
    if opcode != 0 {
        return err(RCODE_NOTIMP);
    }
    let qdcount = u16::from_be_bytes([pkt[4], pkt[5]]);
    let ancount = u16::from_be_bytes([pkt[6], pkt[7]]);
    let nscount = u16::from_be_bytes([pkt[8], pkt[9]]);
    let arcount = u16::from_be_bytes([pkt[10], pkt[11]]);
    if qdcount != 1 {
        return err(RCODE_FORMERR);
    }
    let Some(name_end) = question_name_end(pkt, HEADER_LEN) else {
        return err(RCODE_FORMERR);
    };
    if name_end + 4 > pkt.len() {
        return err(RCODE_FORMERR);
    }
    let qname = &pkt[HEADER_LEN..name_end];
    let qtype = u16::from_be_bytes([pkt[name_end], pkt[name_end + 1]]);
    let qclass = u16::from_be_bytes([pkt[name_end + 2], pkt[name_end + 3]]);
    let mut pos = name_end + 4;
    for _ in 0..(ancount as usize + nscount as usize) {
        match skip_record(pkt, pos) {
            Some((next, _, _)) => pos = next,
            None => return err(RCODE_FORMERR),
        }
    }
    let mut edns = None;
    for _ in 0..arcount {
        let Some((next, rtype, rr_start)) = skip_record(pkt, pos) else {
            return err(RCODE_FORMERR);
        };
        if rtype == TYPE_OPT {
            if edns.is_some() || pkt[rr_start] != 0 {
                // Two OPT records, or an OPT not owned by the root (RFC 6891 6.1.1).
                return err(RCODE_FORMERR);
            }
            let f = rr_start + 1;
            let udp_size = u16::from_be_bytes([pkt[f + 2], pkt[f + 3]]);
            let version = pkt[f + 5];
            let ext = u16::from_be_bytes([pkt[f + 6], pkt[f + 7]]);
            edns = Some(Edns {
                udp_size,
                version,
                dnssec_ok: ext & 0x8000 != 0,
                sde: has_option(&pkt[f + 10..next], OPTION_EDE),
            });
        }
        pos = next;
    }
    Ok(QueryView {
        id,
        flags,
        qname,
        qtype,
        qclass,
        edns,
        end: pos,
    })
}

/// EDNS option code of Extended DNS Errors (RFC 8914).
pub const OPTION_EDE: u16 = 15;

/// Whether the options of an OPT record's RDATA hold `code` (stops at a malformed option).
fn has_option(mut rdata: &[u8], code: u16) -> bool {
    while rdata.len() >= 4 {
        let (c, len) = (
            u16::from_be_bytes([rdata[0], rdata[1]]),
            u16::from_be_bytes([rdata[2], rdata[3]]) as usize,
        );
        if c == code {
            return true;
        }
        match rdata.get(4 + len..) {
            Some(rest) => rdata = rest,
            None => return false,
        }
    }
    false
}

/// The mnemonic of a response code dnsward sends or sees (RFC 1035 / 2136), if it has one.
pub fn rcode_mnemonic(code: u8) -> Option<&'static str> {
    Some(match code {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        _ => return None,
    })
}

/// End offset of an uncompressed name starting at `start` (labels <= 63, name <= 255 bytes).
/// A compression pointer in a question is refused: no real client sends one.
pub fn question_name_end(pkt: &[u8], start: usize) -> Option<usize> {
    let mut pos = start;
    loop {
        let len = *pkt.get(pos)? as usize;
        if len == 0 {
            pos += 1;
            break;
        }
        if len > 63 {
            return None;
        }
        pos += 1 + len;
        if pos - start > 254 {
            return None;
        }
    }
    (pos <= pkt.len()).then_some(pos)
}

/// Skips a possibly compressed name; returns the offset after it. Compression pointers are not
/// followed (we only need the length), so loops cannot hang us.
fn skip_name(pkt: &[u8], mut pos: usize) -> Option<usize> {
    for _ in 0..128 {
        let len = *pkt.get(pos)?;
        match len {
            0 => return Some(pos + 1),
            l if l & 0xC0 == 0xC0 => {
                pkt.get(pos + 1)?;
                return Some(pos + 2);
            }
            l if l > 63 => return None,
            l => pos += 1 + l as usize,
        }
    }
    None
}

/// Skips one resource record: returns (offset after it, its type, offset of its owner name).
fn skip_record(pkt: &[u8], pos: usize) -> Option<(usize, u16, usize)> {
    let after_name = skip_name(pkt, pos)?;
    let fixed = pkt.get(after_name..after_name + 10)?;
    let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
    let rdlen = u16::from_be_bytes([fixed[8], fixed[9]]) as usize;
    let end = after_name + 10 + rdlen;
    (end <= pkt.len()).then_some((end, rtype, pos))
}

/// Offsets of the TTL field of every record of an encoded response (OPT excluded: its "TTL"
/// holds flags), and the smallest TTL. `None` when the message does not parse.
pub fn ttl_offsets(msg: &[u8]) -> Option<(Vec<u16>, Option<u32>)> {
    if msg.len() < HEADER_LEN {
        return None;
    }
    let count = |i: usize| u16::from_be_bytes([msg[i], msg[i + 1]]) as usize;
    let (qd, records) = (count(4), count(6) + count(8) + count(10));
    let mut pos = HEADER_LEN;
    for _ in 0..qd {
        pos = skip_name(msg, pos)? + 4;
    }
    let mut offsets = Vec::with_capacity(records);
    let mut min_ttl: Option<u32> = None;
    for _ in 0..records {
        let after_name = skip_name(msg, pos)?;
        let (next, rtype, _) = skip_record(msg, pos)?;
        if rtype != TYPE_OPT {
            let off = after_name + 4;
            let ttl = read_u32(msg, off);
            min_ttl = Some(min_ttl.map_or(ttl, |m| m.min(ttl)));
            offsets.push(u16::try_from(off).ok()?);
        }
        pos = next;
    }
    Some((offsets, min_ttl))
}

pub fn read_u32(buf: &[u8], off: usize) -> u32 {
    u32::from_be_bytes([buf[off], buf[off + 1], buf[off + 2], buf[off + 3]])
}

pub fn write_u32(buf: &mut [u8], off: usize, v: u32) {
    buf[off..off + 4].copy_from_slice(&v.to_be_bytes());
}

pub fn set_u16(buf: &mut [u8], off: usize, v: u16) {
    buf[off..off + 2].copy_from_slice(&v.to_be_bytes());
}

pub fn get_u16(buf: &[u8], off: usize) -> u16 {
    u16::from_be_bytes([buf[off], buf[off + 1]])
}

/// Appends our OPT record (RFC 6891) to a response and bumps ARCOUNT.
pub fn append_opt(out: &mut Vec<u8>, udp_size: u16, dnssec_ok: bool, options: &[u8]) {
    out.push(0); // root owner
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&udp_size.to_be_bytes());
    out.extend_from_slice(&[0, 0]); // extended rcode, version 0
    out.extend_from_slice(&(if dnssec_ok { 0x8000u16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&(options.len() as u16).to_be_bytes());
    out.extend_from_slice(options);
    let ar = get_u16(out, 10);
    set_u16(out, 10, ar.wrapping_add(1));
}

/// An Extended DNS Error option (RFC 8914): INFO-CODE and EXTRA-TEXT (cut to 300 bytes, at a
/// character boundary, so the OPT stays well inside any UDP limit).
pub fn ede_option(code: u16, text: &str) -> Vec<u8> {
    let mut end = text.len().min(300);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let text = &text.as_bytes()[..end];
    let mut out = Vec::with_capacity(6 + text.len());
    out.extend_from_slice(&EDNS_OPTION_EDE.to_be_bytes());
    out.extend_from_slice(&((2 + text.len()) as u16).to_be_bytes());
    out.extend_from_slice(&code.to_be_bytes());
    out.extend_from_slice(text);
    out
}

/// EDNS option code of Extended DNS Errors.
pub const EDNS_OPTION_EDE: u16 = 15;

/// A response with only a header (and the question when we have one): FORMERR, NOTIMP,
/// SERVFAIL, REFUSED, or a truncated answer (TC set).
pub fn error_response(
    id: u16,
    query_flags: u16,
    rcode: u8,
    question: Option<(&[u8], u16, u16)>,
    edns: Option<(u16, bool)>,
    tc: bool,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&id.to_be_bytes());
    // Keep the opcode and RD/CD of the query; QR and RA set; AA/AD never set.
    let mut flags = (query_flags & (0x7800 | FLAG_RD | FLAG_CD)) | FLAG_QR | FLAG_RA | rcode as u16;
    if tc {
        flags |= FLAG_TC;
    }
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, question.is_some() as u8, 0, 0, 0, 0, 0, 0]);
    if let Some((qname, qtype, qclass)) = question {
        out.extend_from_slice(qname);
        out.extend_from_slice(&qtype.to_be_bytes());
        out.extend_from_slice(&qclass.to_be_bytes());
    }
    if let Some((size, dnssec_ok)) = edns {
        append_opt(&mut out, size, dnssec_ok, &[]);
    }
    out
}

/// Writes the lower-cased question name into `out` (cache keys are case-insensitive).
pub fn lowercase_name_into(qname: &[u8], out: &mut Vec<u8>) {
    out.extend(qname.iter().map(u8::to_ascii_lowercase));
}

/// The presentation form of a wire name, lower case, without the trailing dot ("" for the root).
pub fn name_to_string(qname: &[u8]) -> String {
    let mut s = String::with_capacity(qname.len());
    name_into(qname, &mut s);
    s
}

/// `name_to_string` into a reused buffer (cleared first).
pub fn name_into(qname: &[u8], s: &mut String) {
    s.clear();
    let mut pos = 0;
    while let Some(&len) = qname.get(pos) {
        if len == 0 {
            break;
        }
        if !s.is_empty() {
            s.push('.');
        }
        let end = (pos + 1 + len as usize).min(qname.len());
        for &b in &qname[pos + 1..end] {
            match b.to_ascii_lowercase() {
                c @ (b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_') => s.push(c as char),
                c => s.push_str(&format!("\\{c:03}")),
            }
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Edns as HEdns, Message, Query};
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    fn query_bytes(name: &str, edns: bool) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 0x1234;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(
            Name::from_ascii(name).unwrap(),
            RecordType::AAAA,
        ));
        if edns {
            let mut e = HEdns::new();
            e.set_max_payload(4096);
            e.set_dnssec_ok(true);
            m.set_edns(e);
        }
        m.to_vec().unwrap()
    }

    #[test]
    fn parses_question_and_edns() {
        let b = query_bytes("WWW.Example.COM.", true);
        let q = parse_query(&b).unwrap();
        assert_eq!(q.id, 0x1234);
        assert_eq!(q.qtype, 28);
        assert_eq!(q.qclass, 1);
        assert!(q.recursion_desired());
        assert_eq!(name_to_string(q.qname), "www.example.com");
        assert_eq!(
            q.edns,
            Some(Edns {
                udp_size: 4096,
                version: 0,
                dnssec_ok: true,
                sde: false,
            })
        );
        assert_eq!(q.max_udp_response(1232), 1232);
        let plain = query_bytes("a.b.", false);
        let q = parse_query(&plain).unwrap();
        assert_eq!(q.edns, None);
        assert_eq!(q.max_udp_response(1232), 512);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(matches!(parse_query(&[1, 2, 3]), Err(Reject::Drop)));
        let mut b = query_bytes("a.b.", false);
        b[2] |= 0x80; // a response
        assert!(matches!(parse_query(&b), Err(Reject::Drop)));
        let mut b = query_bytes("a.b.", false);
        b[2] |= 0x28; // opcode 5 (UPDATE)
        assert!(matches!(
            parse_query(&b),
            Err(Reject::Error {
                rcode: RCODE_NOTIMP,
                ..
            })
        ));
        let mut b = query_bytes("a.b.", false);
        b[12] = 0xC0; // compression pointer in the question
        assert!(matches!(
            parse_query(&b),
            Err(Reject::Error {
                rcode: RCODE_FORMERR,
                ..
            })
        ));
        let b = query_bytes("a.b.", false);
        assert!(matches!(
            parse_query(&b[..14]),
            Err(Reject::Error {
                rcode: RCODE_FORMERR,
                ..
            })
        ));
        // every truncation and every single-byte corruption of a real query: no panic
        let b = query_bytes("www.example.com.", true);
        for n in 0..b.len() {
            let _ = parse_query(&b[..n]);
            for v in [0u8, 0x3f, 0x40, 0xc0, 0xff] {
                let mut c = b.clone();
                c[n] = v;
                let _ = parse_query(&c);
                let _ = ttl_offsets(&c);
            }
        }
    }

    #[test]
    fn finds_ttls_and_skips_opt() {
        let mut m = Message::response(7, hickory_proto::op::OpCode::Query);
        let name = Name::from_ascii("x.example.").unwrap();
        m.add_query(Query::query(name.clone(), RecordType::A));
        m.add_answer(Record::from_rdata(
            name.clone(),
            300,
            RData::A("192.0.2.1".parse().unwrap()),
        ));
        m.add_answer(Record::from_rdata(
            name,
            60,
            RData::A("192.0.2.2".parse().unwrap()),
        ));
        m.set_edns(HEdns::new());
        let b = m.to_vec().unwrap();
        let (offs, min) = ttl_offsets(&b).unwrap();
        assert_eq!(offs.len(), 2);
        assert_eq!(min, Some(60));
        assert_eq!(read_u32(&b, offs[0] as usize), 300);
    }

    #[test]
    fn error_response_round_trips_through_hickory() {
        let b = query_bytes("a.example.", true);
        let q = parse_query(&b).unwrap();
        let r = error_response(
            q.id,
            q.flags,
            RCODE_SERVFAIL,
            Some((q.qname, q.qtype, q.qclass)),
            Some((1232, false)),
            false,
        );
        let m = Message::from_vec(&r).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(
            m.metadata.response_code,
            hickory_proto::op::ResponseCode::ServFail
        );
        assert_eq!(m.queries.len(), 1);
        assert_eq!(m.edns.unwrap().max_payload(), 1232);
    }
}
