//! The client side of a zone transfer: one AXFR or IXFR (RFC 5936, RFC 1995) over TCP,
//! TSIG-checked, bounded, read into an `Outcome`.
//!
//! Written over a plain `TcpStream` rather than hickory's `Client::zone_transfer`: a hostile or
//! broken primary must be cut off by our own bounds (records, bytes, messages, a deadline per
//! message and for the whole transfer) and every message checked against the TSIG chain before
//! any record is used; hickory gives the messages (`Message`) and the TSIG arithmetic
//! (`TSigner`, `TSigVerifier`).

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::tsig::TsigKey;
use super::zone::{serial_newer, Diff};
use crate::timefmt::unix_now;

/// Bounds of one transfer.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_records: usize,
    /// Whole transfer.
    pub deadline: Duration,
    /// Connecting, and each message.
    pub step_timeout: Duration,
}

impl Limits {
    pub fn new(max_records: usize) -> Limits {
        Limits {
            max_records,
            deadline: Duration::from_secs(600),
            step_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum XfrError {
    #[error("cannot reach {0}: {1}")]
    Unreachable(SocketAddr, String),
    #[error("transfer from {0} timed out")]
    Timeout(SocketAddr),
    #[error("{0} answered {1}")]
    Refused(SocketAddr, String),
    #[error("malformed transfer from {0}: {1}")]
    Malformed(SocketAddr, String),
    #[error("transfer from {0} is larger than {1} records")]
    Oversized(SocketAddr, usize),
    #[error("TSIG check of the transfer from {0} failed: {1}")]
    Tsig(SocketAddr, String),
    #[error("{0} serves serial {1}, older than our {2}; keeping ours")]
    OlderSerial(SocketAddr, u32, u32),
}

impl XfrError {
    /// The metrics label of a rejection.
    pub fn label(&self) -> &'static str {
        match self {
            XfrError::Unreachable(..) | XfrError::Timeout(_) => "unreachable",
            XfrError::Refused(..) => "refused",
            XfrError::Malformed(..) => "malformed",
            XfrError::Oversized(..) => "oversized",
            XfrError::Tsig(..) => "tsig",
            XfrError::OlderSerial(..) => "older_serial",
        }
    }
}

/// What a transfer brought.
pub enum Outcome {
    /// The primary's serial is ours.
    UpToDate,
    /// The whole zone (AXFR, or an IXFR answered in full).
    Full {
        soa: SOA,
        soa_ttl: u32,
        records: Vec<Record>,
    },
    /// Difference sequences, oldest first, each with the SOA it leads to.
    Incremental { diffs: Vec<(Diff, SOA)> },
}

/// Asks `primary` for `zone`: IXFR from `have` when we hold a copy, AXFR otherwise.
pub async fn transfer(
    primary: SocketAddr,
    zone: &Name,
    have: Option<&SOA>,
    key: Option<&TsigKey>,
    limits: Limits,
) -> Result<Outcome, XfrError> {
    match tokio::time::timeout(limits.deadline, run(primary, zone, have, key, limits)).await {
        Ok(r) => r,
        Err(_) => Err(XfrError::Timeout(primary)),
    }
}

async fn run(
    primary: SocketAddr,
    zone: &Name,
    have: Option<&SOA>,
    key: Option<&TsigKey>,
    limits: Limits,
) -> Result<Outcome, XfrError> {
    let step = limits.step_timeout;
    let mut conn = tokio::time::timeout(step, TcpStream::connect(primary))
        .await
        .map_err(|_| XfrError::Timeout(primary))?
        .map_err(|e| XfrError::Unreachable(primary, e.to_string()))?;
    let (request, mut verifier) = build_request(zone, have, key)
        .map_err(|e| XfrError::Malformed(primary, format!("cannot build the request: {e}")))?;
    let id = request.metadata.id;
    let bytes = request
        .to_vec()
        .map_err(|e| XfrError::Malformed(primary, e.to_string()))?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    tokio::time::timeout(step, conn.write_all(&framed))
        .await
        .map_err(|_| XfrError::Timeout(primary))?
        .map_err(|e| XfrError::Unreachable(primary, e.to_string()))?;

    let mut records: Vec<Record> = Vec::new();
    let mut reader = StreamReader::new(have.map(|s| s.serial));
    let mut buf = vec![0u8; 65_535];
    loop {
        let mut len = [0u8; 2];
        tokio::time::timeout(step, conn.read_exact(&mut len))
            .await
            .map_err(|_| XfrError::Timeout(primary))?
            .map_err(|e| {
                XfrError::Malformed(primary, format!("connection closed mid-transfer: {e}"))
            })?;
        let len = u16::from_be_bytes(len) as usize;
        let msg = &mut buf[..len];
        tokio::time::timeout(step, conn.read_exact(msg))
            .await
            .map_err(|_| XfrError::Timeout(primary))?
            .map_err(|e| {
                XfrError::Malformed(primary, format!("connection closed mid-message: {e}"))
            })?;
        let m = match verifier.as_mut() {
            // hickory's TSIG check adds ANCOUNT and NSCOUNT as u16 before anything else (a
            // panic where overflow is checked; found by fuzz/ xfr): no message holds so many.
            Some(_)
                if msg.len() >= 12
                    && u16::from_be_bytes([msg[6], msg[7]])
                        .checked_add(u16::from_be_bytes([msg[8], msg[9]]))
                        .is_none() =>
            {
                return Err(XfrError::Malformed(
                    primary,
                    "record counts larger than any message".into(),
                ));
            }
            Some(v) => v
                .verify(msg)
                .map_err(|e| XfrError::Tsig(primary, e.to_string()))?
                .into_message(),
            None => {
                Message::from_vec(msg).map_err(|e| XfrError::Malformed(primary, e.to_string()))?
            }
        };
        if m.metadata.id != id || m.metadata.message_type != MessageType::Response {
            return Err(XfrError::Malformed(
                primary,
                "an answer with another ID, or not an answer".into(),
            ));
        }
        if m.metadata.response_code != ResponseCode::NoError {
            return Err(XfrError::Refused(
                primary,
                m.metadata.response_code.to_string(),
            ));
        }
        if records.len() + m.answers.len() > limits.max_records {
            return Err(XfrError::Oversized(primary, limits.max_records));
        }
        for r in m.answers {
            if reader
                .push(&r, zone)
                .map_err(|e| XfrError::Malformed(primary, e.to_string()))?
            {
                records.push(r);
                return reader.finish(primary, records);
            }
            records.push(r);
        }
        if reader.up_to_date_single() {
            return reader.finish(primary, records);
        }
    }
}

fn build_request(
    zone: &Name,
    have: Option<&SOA>,
    key: Option<&TsigKey>,
) -> Result<(Message, Option<hickory_proto::rr::TSigVerifier>), hickory_proto::ProtoError> {
    let mut m = Message::query();
    m.metadata.id = rand::random();
    m.metadata.recursion_desired = false;
    let qtype = if have.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    m.add_query(Query::query(zone.clone(), qtype));
    if let Some(soa) = have {
        // RFC 1995: the IXFR request carries our SOA in the authority section.
        let mut r = Record::from_rdata(zone.clone(), 0, RData::SOA(soa.clone()));
        r.dns_class = DNSClass::IN;
        m.add_authority(r);
    }
    let verifier = match key {
        Some(k) => {
            let (sig, verifier) = k.signer.sign_message(&m, unix_now())?;
            m.set_signature(sig);
            verifier
        }
        None => None,
    };
    Ok((m, verifier))
}

/// Follows the SOA records of the answer stream to find its end (RFC 5936 2.2, RFC 1995 4):
/// an AXFR ends with the second SOA of the new serial; an incremental IXFR (its second
/// record is the SOA of an older serial) with the third.
struct StreamReader {
    have: Option<u32>,
    count: usize,
    new_serial: Option<u32>,
    incremental: bool,
    seen_new: usize,
}

/// A record that cannot come where it came in the stream.
#[derive(Debug, thiserror::Error)]
enum StreamError {
    #[error("record {record} is outside the zone {zone}")]
    OutsideZone { record: Box<Name>, zone: Box<Name> },
    #[error("the transfer does not start with the SOA")]
    NoLeadingSoa,
}

impl StreamReader {
    fn new(have: Option<u32>) -> Self {
        StreamReader {
            have,
            count: 0,
            new_serial: None,
            incremental: false,
            seen_new: 0,
        }
    }

    /// True when `r` ends the transfer.
    fn push(&mut self, r: &Record, zone: &Name) -> Result<bool, StreamError> {
        self.count += 1;
        if !zone.zone_of(&r.name) {
            return Err(StreamError::OutsideZone {
                record: Box::new(r.name.clone()),
                zone: Box::new(zone.clone()),
            });
        }
        let serial = match &r.data {
            RData::SOA(s) => Some(s.serial),
            _ => None,
        };
        if self.count == 1 {
            let s = serial.ok_or(StreamError::NoLeadingSoa)?;
            self.new_serial = Some(s);
            self.seen_new = 1;
            return Ok(false);
        }
        if self.count == 2 {
            self.incremental = self.have.is_some() && serial.is_some() && serial != self.new_serial;
        }
        if serial.is_some() && serial == self.new_serial {
            self.seen_new += 1;
        }
        Ok(self.seen_new == if self.incremental { 3 } else { 2 })
    }

    /// An IXFR answered with the single SOA of a serial not newer than ours (a newer one
    /// announces a transfer whose next message is still to come).
    fn up_to_date_single(&self) -> bool {
        match (self.have, self.new_serial) {
            (Some(have), Some(new)) => self.count == 1 && !serial_newer(new, have),
            _ => false,
        }
    }

    fn finish(&self, primary: SocketAddr, records: Vec<Record>) -> Result<Outcome, XfrError> {
        let (soa, soa_ttl) = match records.first().map(|r| (&r.data, r.ttl)) {
            Some((RData::SOA(s), ttl)) => (s.clone(), ttl),
            _ => return Err(XfrError::Malformed(primary, "no SOA".into())),
        };
        if let Some(have) = self.have {
            if serial_newer(have, soa.serial) {
                return Err(XfrError::OlderSerial(primary, soa.serial, have));
            }
            if have == soa.serial {
                return Ok(Outcome::UpToDate);
            }
        }
        if records.len() < 2 {
            return Err(XfrError::Malformed(
                primary,
                "the transfer ends after its first SOA".into(),
            ));
        }
        if !self.incremental {
            // Leading and trailing SOA off; the rest is the zone.
            let n = records.len();
            let records = records
                .into_iter()
                .skip(1)
                .take(n.saturating_sub(2))
                .collect();
            return Ok(Outcome::Full {
                soa,
                soa_ttl,
                records,
            });
        }
        diffs(primary, records, self.have.unwrap_or_default())
    }
}

/// Splits an incremental IXFR body into its difference sequences:
/// `SOA(new) [SOA(old) deleted… SOA(mid) added…]… SOA(new)`.
fn diffs(primary: SocketAddr, records: Vec<Record>, have: u32) -> Result<Outcome, XfrError> {
    let bad = |why: &str| XfrError::Malformed(primary, why.to_string());
    let n = records.len();
    let mut body = records.into_iter().skip(1).take(n.saturating_sub(2));
    let mut out: Vec<(Diff, SOA)> = Vec::new();
    let mut expect_from = have;
    let mut next = body.next();
    while let Some(first) = next.take() {
        let RData::SOA(from) = &first.data else {
            return Err(bad("a difference sequence does not start with an SOA"));
        };
        if from.serial != expect_from {
            return Err(bad("the difference sequences do not chain from our serial"));
        }
        let mut diff = Diff::default();
        let to = loop {
            match body.next() {
                Some(Record {
                    data: RData::SOA(s),
                    ..
                }) => break s,
                Some(r) => diff.deleted.push(r),
                None => return Err(bad("a difference sequence has no new SOA")),
            }
        };
        loop {
            match body.next() {
                Some(r) if matches!(r.data, RData::SOA(_)) => {
                    next = Some(r);
                    break;
                }
                Some(r) => diff.added.push(r),
                None => break,
            }
        }
        expect_from = to.serial;
        out.push((diff, to));
    }
    Ok(Outcome::Incremental { diffs: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::CNAME;

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }
    fn soa(serial: u32) -> Record {
        Record::from_rdata(
            n("rpz.test."),
            60,
            RData::SOA(SOA::new(n("ns."), n("h."), serial, 60, 30, 600, 10)),
        )
    }
    fn cname(owner: &str) -> Record {
        Record::from_rdata(n(owner), 60, RData::CNAME(CNAME(Name::root())))
    }
    fn read(have: Option<u32>, stream: Vec<Record>) -> (usize, Result<Outcome, XfrError>) {
        let mut r = StreamReader::new(have);
        let zone = n("rpz.test.");
        let mut taken = Vec::new();
        for rec in stream {
            let end = r.push(&rec, &zone).unwrap();
            taken.push(rec);
            if end {
                break;
            }
        }
        let len = taken.len();
        let peer = "127.0.0.1:1".parse().unwrap();
        (len, r.finish(peer, taken))
    }

    #[test]
    fn axfr_ends_at_the_second_soa() {
        let (len, out) = read(
            None,
            vec![
                soa(5),
                cname("a.rpz.test."),
                soa(5),
                cname("junk.rpz.test."),
            ],
        );
        assert_eq!(len, 3);
        let Ok(Outcome::Full { records, soa, .. }) = out else {
            panic!("not a full transfer")
        };
        assert_eq!(soa.serial, 5);
        assert_eq!(records.len(), 1);
    }

    #[test]
    fn ixfr_diffs_chain() {
        let (len, out) = read(
            Some(3),
            vec![
                soa(5),
                soa(3),
                cname("gone.rpz.test."),
                soa(4),
                cname("new.rpz.test."),
                soa(4),
                soa(5),
                cname("newer.rpz.test."),
                soa(5),
            ],
        );
        assert_eq!(len, 9);
        let Ok(Outcome::Incremental { diffs }) = out else {
            panic!("not incremental")
        };
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0].0.deleted.len(), 1);
        assert_eq!(diffs[0].1.serial, 4);
        assert_eq!(diffs[1].0.added.len(), 1);
        assert_eq!(diffs[1].1.serial, 5);
    }

    #[test]
    fn older_serial_is_rejected() {
        let (_, out) = read(Some(9), vec![soa(5), cname("a.rpz.test."), soa(5)]);
        assert!(matches!(out, Err(XfrError::OlderSerial(_, 5, 9))));
    }

    #[test]
    fn record_outside_the_zone_is_malformed() {
        let mut r = StreamReader::new(None);
        let zone = n("rpz.test.");
        r.push(&soa(1), &zone).unwrap();
        assert!(r.push(&cname("evil.com."), &zone).is_err());
    }
}
