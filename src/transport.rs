//! One question to one server: UDP from a fresh socket (random source port) with a random ID,
//! TCP when the answer is truncated. Replies that do not match the question (ID, source, QR
//! bit, question name/type/class) or do not parse are ignored, as if never received. Used by the
//! iterative resolver (authoritative servers) and by the forwarder (recursive upstreams).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, Query};
use hickory_proto::serialize::binary::BinEncodable;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// Why one exchange with one server gave nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("timed out")]
    Timeout,
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("the reply over TCP does not parse or does not match the question")]
    BadTcpReply,
    #[error("cannot encode the query: {0}")]
    Encode(#[from] hickory_proto::ProtoError),
}

/// The EDNS payload size we advertise upstream (DNS flag day 2020).
pub const EDNS_PAYLOAD: u16 = 1232;
/// Largest UDP datagram we read; larger ones are cut and then fail to parse (ignored).
const UDP_BUFFER: usize = 4096;

#[derive(Debug, Clone, Copy, Default)]
pub struct QueryFlags {
    pub edns: bool,
    pub dnssec_ok: bool,
    /// RD: set when asking a recursive resolver (forwarding), clear for authoritative servers.
    pub recursion_desired: bool,
    /// CD: a validating forwarder must pass data it judges bogus; we judge it ourselves.
    pub checking_disabled: bool,
}

pub struct Reply {
    pub message: Message,
    pub rtt: Duration,
}

/// Asks `server` one question within `timeout` (UDP, then TCP if the UDP reply was truncated).
pub async fn exchange(
    server: SocketAddr,
    query: &Query,
    flags: QueryFlags,
    timeout: Duration,
) -> Result<Reply, ExchangeError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let id: u16 = rand::random();
    let wire = encode(id, query, flags)?;
    let message =
        match tokio::time::timeout_at(deadline.into(), udp(server, id, query, &wire)).await {
            Err(_) => return Err(ExchangeError::Timeout),
            Ok(r) => r?,
        };
    if !message.metadata.truncation {
        return Ok(Reply {
            message,
            rtt: started.elapsed(),
        });
    }
    let message =
        match tokio::time::timeout_at(deadline.into(), tcp(server, id, query, &wire)).await {
            Err(_) => return Err(ExchangeError::Timeout),
            Ok(r) => r?,
        };
    Ok(Reply {
        message,
        rtt: started.elapsed(),
    })
}

fn encode(id: u16, query: &Query, flags: QueryFlags) -> Result<Vec<u8>, ExchangeError> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = flags.recursion_desired;
    m.metadata.checking_disabled = flags.checking_disabled;
    m.add_query(query.clone());
    if flags.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        edns.set_dnssec_ok(flags.dnssec_ok);
        m.set_edns(edns);
    }
    Ok(m.to_vec()?)
}

async fn udp(
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
) -> Result<Message, ExchangeError> {
    let bind: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let sock = UdpSocket::bind(bind).await?;
    // connect(): the kernel then drops datagrams from any other source address or port.
    sock.connect(server).await?;
    sock.send(wire).await?;
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let n = sock.recv(&mut buf).await?;
        if let Some(m) = matching(&buf[..n], id, query) {
            return Ok(m);
        }
        // Not ours (spoofed, late, or garbage): keep listening until the deadline.
    }
}

async fn tcp(
    server: SocketAddr,
    id: u16,
    query: &Query,
    wire: &[u8],
) -> Result<Message, ExchangeError> {
    let mut stream = TcpStream::connect(server).await?;
    let mut framed = Vec::with_capacity(wire.len() + 2);
    framed.extend_from_slice(&(wire.len() as u16).to_be_bytes());
    framed.extend_from_slice(wire);
    stream.write_all(&framed).await?;
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).await?;
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).await?;
    matching(&buf, id, query).ok_or(ExchangeError::BadTcpReply)
}

/// The reply parsed, if it is a response to exactly this question with this ID.
fn matching(bytes: &[u8], id: u16, query: &Query) -> Option<Message> {
    if bytes.len() < 12 || u16::from_be_bytes([bytes[0], bytes[1]]) != id {
        return None;
    }
    let m = Message::from_vec(bytes).ok()?;
    if m.metadata.message_type != MessageType::Response || m.queries.len() != 1 {
        return None;
    }
    let q = &m.queries[0];
    let same = q.query_type() == query.query_type()
        && q.query_class() == query.query_class()
        && q.name() == query.name();
    same.then(|| without_duplicates(m))
}

/// Drops repeated records (same owner, type, class and data; RFC 2181 section 5: an RRset
/// has no duplicates) from every section, keeping the first: clients never see a record
/// twice, and a signature over the RRset verifies (RFC 4034 section 6.3).
fn without_duplicates(mut m: Message) -> Message {
    for section in [&mut m.answers, &mut m.authorities, &mut m.additionals] {
        if section.len() < 2 {
            continue;
        }
        let mut seen = HashSet::with_capacity(section.len());
        section.retain(|r| {
            let mut key = r.name.to_lowercase().to_bytes().unwrap_or_default();
            key.extend(u16::from(r.record_type()).to_be_bytes());
            key.extend(u16::from(r.dns_class).to_be_bytes());
            key.extend(r.data.to_bytes().unwrap_or_default());
            seen.insert(key)
        });
    }
    m
}
