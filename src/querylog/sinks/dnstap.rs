//! dnstap sink: every event becomes two dnstap `Message`s (CLIENT_QUERY and CLIENT_RESPONSE),
//! sent as Frame Streams data frames with content type `protobuf:dnstap.Dnstap` to a
//! collector on a unix socket or TCP (bidirectional handshake READY/ACCEPT/START ... STOP/
//! FINISH), or written to a file (unidirectional START ... STOP, readable with
//! `dnstap-ldns -r FILE` or `fstrm_dump`).
//!
//! Blocked answers carry the `policy` field (type "dnsward", rule, action, match, value).
//!
//! The protobuf structs are written by hand from dnstap.proto (the version with `Policy` and
//! `http_protocol`) with `#[derive(prost::Message)]`, so no protoc / prost-build is needed at
//! build time. Frame Streams is hand-written too: the framing is a dozen lines (a 4-byte length
//! per frame and three kinds of control frame), and the existing Rust crates for it are either
//! unmaintained or pull in a different async stack.
//!
//! On connection loss the sink reconnects with backoff; meanwhile the queue keeps the newest
//! events and drops (and counts) the oldest.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use prost::Message as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::{Delivered, FLUSH_INTERVAL};
use crate::querylog::bus::Queued;

/// Events encoded and written in one go.
pub const MAX_BATCH: usize = super::MAX_BATCH;
use crate::querylog::bus::SinkQueue;
use crate::querylog::event::{ClientId, EventAction, LoggedEvent, Transport, Trigger};

// ---------------------------------------------------------------------------------------
// dnstap.proto, by hand

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dnstap {
    #[prost(bytes = "vec", optional, tag = "1")]
    pub identity: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub version: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    pub extra: Option<Vec<u8>>,
    #[prost(enumeration = "DnstapType", required, tag = "15")]
    pub r#type: i32,
    #[prost(message, optional, tag = "14")]
    pub message: Option<Message>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum DnstapType {
    Message = 1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketFamily {
    Inet = 1,
    Inet6 = 2,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum SocketProtocol {
    Udp = 1,
    Tcp = 2,
    Dot = 3,
    Doh = 4,
    DnsCryptUdp = 5,
    DnsCryptTcp = 6,
    Doq = 7,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum HttpProtocol {
    Http1 = 1,
    Http2 = 2,
    Http3 = 3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyMatch {
    Qname = 1,
    ClientIp = 2,
    ResponseIp = 3,
    NsName = 4,
    NsIp = 5,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum PolicyAction {
    Nxdomain = 1,
    Nodata = 2,
    Pass = 3,
    Drop = 4,
    Truncate = 5,
    LocalData = 6,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Policy {
    #[prost(string, optional, tag = "1")]
    pub r#type: Option<String>,
    #[prost(bytes = "vec", optional, tag = "2")]
    pub rule: Option<Vec<u8>>,
    #[prost(enumeration = "PolicyAction", optional, tag = "3")]
    pub action: Option<i32>,
    #[prost(enumeration = "PolicyMatch", optional, tag = "4")]
    pub r#match: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub value: Option<Vec<u8>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum MessageType {
    AuthQuery = 1,
    AuthResponse = 2,
    ResolverQuery = 3,
    ResolverResponse = 4,
    ClientQuery = 5,
    ClientResponse = 6,
    ForwarderQuery = 7,
    ForwarderResponse = 8,
    StubQuery = 9,
    StubResponse = 10,
    ToolQuery = 11,
    ToolResponse = 12,
    UpdateQuery = 13,
    UpdateResponse = 14,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    #[prost(enumeration = "MessageType", required, tag = "1")]
    pub r#type: i32,
    #[prost(enumeration = "SocketFamily", optional, tag = "2")]
    pub socket_family: Option<i32>,
    #[prost(enumeration = "SocketProtocol", optional, tag = "3")]
    pub socket_protocol: Option<i32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub query_address: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    pub response_address: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "6")]
    pub query_port: Option<u32>,
    #[prost(uint32, optional, tag = "7")]
    pub response_port: Option<u32>,
    #[prost(uint64, optional, tag = "8")]
    pub query_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "9")]
    pub query_time_nsec: Option<u32>,
    #[prost(bytes = "bytes", optional, tag = "10")]
    pub query_message: Option<Bytes>,
    #[prost(bytes = "vec", optional, tag = "11")]
    pub query_zone: Option<Vec<u8>>,
    #[prost(uint64, optional, tag = "12")]
    pub response_time_sec: Option<u64>,
    #[prost(fixed32, optional, tag = "13")]
    pub response_time_nsec: Option<u32>,
    #[prost(bytes = "bytes", optional, tag = "14")]
    pub response_message: Option<Bytes>,
    #[prost(message, optional, tag = "15")]
    pub policy: Option<Policy>,
    #[prost(enumeration = "HttpProtocol", optional, tag = "16")]
    pub http_protocol: Option<i32>,
}

// ---------------------------------------------------------------------------------------
// events -> dnstap

pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

pub fn version_string() -> String {
    format!("dnsward {}", env!("CARGO_PKG_VERSION"))
}

fn split_us(us: i64) -> (u64, u32) {
    (
        us.div_euclid(1_000_000).max(0) as u64,
        (us.rem_euclid(1_000_000) * 1000) as u32,
    )
}

/// The numeric code of a query type name ("A", "AAAA", "TYPE65"...).
pub fn qtype_code(qtype: &str) -> Option<u16> {
    let t = qtype.to_ascii_uppercase();
    Some(match t.as_str() {
        "A" => 1,
        "NS" => 2,
        "CNAME" => 5,
        "SOA" => 6,
        "PTR" => 12,
        "HINFO" => 13,
        "MX" => 15,
        "TXT" => 16,
        "AAAA" => 28,
        "SRV" => 33,
        "NAPTR" => 35,
        "DS" => 43,
        "RRSIG" => 46,
        "DNSKEY" => 48,
        "SVCB" => 64,
        "HTTPS" => 65,
        "ANY" => 255,
        "CAA" => 257,
        _ => return t.strip_prefix("TYPE")?.parse().ok(),
    })
}

/// A minimal wire-format query (ID 0, RD, one question, class IN) for events that do not
/// carry the original bytes, so dnstap readers still show the question.
pub fn synth_query(qname: &str, qtype: &str) -> Option<Vec<u8>> {
    let t = qtype_code(qtype)?;
    let mut m = Vec::with_capacity(17 + qname.len());
    m.extend_from_slice(&[0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in qname
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        if label.len() > 63 {
            return None;
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    if m.len() - 12 > 255 {
        return None;
    }
    m.put_u16(t);
    m.put_u16(1);
    Some(m)
}

fn policy_for(l: &LoggedEvent) -> Option<Policy> {
    let ev = &l.ev;
    if ev.action != EventAction::Blocked {
        return None;
    }
    let action = match &*ev.rcode {
        "NXDOMAIN" => Some(PolicyAction::Nxdomain),
        "NOERROR" if ev.answers.is_empty() => Some(PolicyAction::Nodata),
        "NOERROR" => Some(PolicyAction::LocalData),
        _ => None,
    };
    let m = ev.trigger.map(|t| match t {
        // RPZ also treats CNAME targets as QNAME triggers
        Trigger::Qname | Trigger::Cname => PolicyMatch::Qname,
        Trigger::Ip => PolicyMatch::ResponseIp,
    });
    Some(Policy {
        r#type: Some("dnsward".into()),
        rule: ev
            .rule
            .as_deref()
            .or(ev.list.as_deref())
            .map(|s| s.as_bytes().to_vec()),
        action: action.map(|a| a as i32),
        r#match: m.map(|m| m as i32),
        value: match ev.trigger {
            Some(Trigger::Qname) | None => Some(ev.qname.as_bytes().to_vec()),
            _ => None,
        },
    })
}

/// The CLIENT_QUERY and CLIENT_RESPONSE payloads for one event.
pub fn encode_event(l: &LoggedEvent, version: &str) -> [Vec<u8>; 2] {
    let ev = &l.ev;
    let (family, addr) = match l.client.ip() {
        Some(IpAddr::V4(a)) => (Some(SocketFamily::Inet as i32), Some(a.octets().to_vec())),
        Some(IpAddr::V6(a)) => (Some(SocketFamily::Inet6 as i32), Some(a.octets().to_vec())),
        None => (None, None), // hash mode: the address is not disclosed
    };
    let port = match l.client {
        ClientId::Addr { port: Some(p), .. } => Some(u32::from(p)),
        _ => None,
    };
    let proto = match ev.transport {
        Transport::Udp => SocketProtocol::Udp,
        Transport::Tcp => SocketProtocol::Tcp,
        Transport::Dot => SocketProtocol::Dot,
        Transport::Doh => SocketProtocol::Doh,
    };
    let (qs, qn) = split_us(ev.ts_us);
    let (rs, rn) = split_us(ev.ts_us + i64::from(ev.latency_us));
    let query_message = ev
        .query_wire
        .clone()
        .or_else(|| synth_query(&ev.qname, &ev.qtype).map(Bytes::from));
    let extra = serde_json::json!({
        "client": l.client.to_string(),
        "client_name": ev.client_name.as_deref(),
        "group": ev.group.as_deref(),
        "action": ev.action,
        "category": ev.category,
        "list": ev.list,
        "cached": ev.cached,
    })
    .to_string()
    .into_bytes();
    let base = Message {
        r#type: MessageType::ClientQuery as i32,
        socket_family: family,
        socket_protocol: Some(proto as i32),
        query_address: addr,
        query_port: port,
        query_time_sec: Some(qs),
        query_time_nsec: Some(qn),
        query_message,
        ..Default::default()
    };
    let mut resp = base.clone();
    resp.r#type = MessageType::ClientResponse as i32;
    resp.query_message = None;
    resp.response_time_sec = Some(rs);
    resp.response_time_nsec = Some(rn);
    resp.response_message = ev.response_wire.clone();
    resp.policy = policy_for(l);
    [base, resp].map(|m| {
        Dnstap {
            identity: Some(ev.server.as_bytes().to_vec()),
            version: Some(version.as_bytes().to_vec()),
            extra: Some(extra.clone()),
            r#type: DnstapType::Message as i32,
            message: Some(m),
        }
        .encode_to_vec()
    })
}

// ---------------------------------------------------------------------------------------
// Frame Streams

pub const CONTROL_ACCEPT: u32 = 1;
pub const CONTROL_START: u32 = 2;
pub const CONTROL_STOP: u32 = 3;
pub const CONTROL_READY: u32 = 4;
pub const CONTROL_FINISH: u32 = 5;
const FIELD_CONTENT_TYPE: u32 = 1;
const MAX_CONTROL_LEN: usize = 512;

/// Escape, length, type, and an optional content-type field.
pub fn control_frame(kind: u32, content_type: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + CONTENT_TYPE.len());
    body.put_u32(kind);
    if let Some(ct) = content_type {
        body.put_u32(FIELD_CONTENT_TYPE);
        body.put_u32(ct.len() as u32);
        body.extend_from_slice(ct);
    }
    let mut f = Vec::with_capacity(8 + body.len());
    f.put_u32(0);
    f.put_u32(body.len() as u32);
    f.extend_from_slice(&body);
    f
}

/// Append one data frame.
pub fn put_data_frame(buf: &mut Vec<u8>, payload: &[u8]) {
    buf.put_u32(payload.len() as u32);
    buf.extend_from_slice(payload);
}

/// Read a control frame; returns its type and content types.
pub async fn read_control<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<(u32, Vec<Vec<u8>>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    if r.read_u32().await? != 0 {
        return Err(bad("expected a Frame Streams control frame"));
    }
    let len = r.read_u32().await? as usize;
    if !(4..=MAX_CONTROL_LEN).contains(&len) {
        return Err(bad("bad control frame length"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    let kind = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    let mut fields = Vec::new();
    let mut rest = &body[4..];
    while rest.len() >= 8 {
        let ft = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let fl = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if rest.len() < 8 + fl {
            return Err(bad("truncated control field"));
        }
        if ft == FIELD_CONTENT_TYPE {
            fields.push(rest[8..8 + fl].to_vec());
        }
        rest = &rest[8 + fl..];
    }
    Ok((kind, fields))
}

// ---------------------------------------------------------------------------------------
// the sink

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DnstapTarget {
    Unix(PathBuf),
    Tcp(SocketAddr),
    File(PathBuf),
}

impl DnstapTarget {
    /// `unix:/ABSOLUTE/PATH`, `tcp:IP:PORT` (an address, not a host name: the resolver must
    /// not depend on itself to log), or `file:/PATH`.
    pub fn parse(s: &str) -> Result<DnstapTarget, String> {
        let abs = |p: &str, what: &str| -> Result<PathBuf, String> {
            if p.starts_with('/') && p.len() > 1 {
                Ok(PathBuf::from(p))
            } else {
                Err(format!(
                    "{s:?}: {what} needs an absolute path, e.g. {what}/run/dnstap.sock"
                ))
            }
        };
        if let Some(p) = s.strip_prefix("unix:") {
            abs(p, "unix:").map(DnstapTarget::Unix)
        } else if let Some(p) = s.strip_prefix("file:") {
            abs(p, "file:").map(DnstapTarget::File)
        } else if let Some(a) = s.strip_prefix("tcp:") {
            match a.parse::<SocketAddr>() {
                Ok(sa) if sa.port() != 0 => Ok(DnstapTarget::Tcp(sa)),
                Ok(_) => Err(format!("{s:?}: port 0")),
                Err(_) => Err(format!(
                    "{s:?}: expected tcp:IP:PORT with an IP address, e.g. tcp:127.0.0.1:6000"
                )),
            }
        } else {
            Err(format!(
                "{s:?}: expected unix:/PATH, tcp:IP:PORT or file:/PATH"
            ))
        }
    }
}

impl std::fmt::Display for DnstapTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DnstapTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            DnstapTarget::Tcp(a) => write!(f, "tcp:{a}"),
            DnstapTarget::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

struct Conn {
    io: Box<dyn Io>,
    bidirectional: bool,
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

async fn connect(t: &DnstapTarget) -> Result<Conn, String> {
    let io: Box<dyn Io> = match t {
        DnstapTarget::Unix(p) => Box::new(
            tokio::net::UnixStream::connect(p)
                .await
                .map_err(|e| format!("connect: {e}"))?,
        ),
        DnstapTarget::Tcp(a) => {
            let s = tokio::net::TcpStream::connect(a)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        }
        DnstapTarget::File(p) => {
            // Frame Streams files hold one START..STOP stream: the file is replaced.
            let f = tokio::fs::File::create(p)
                .await
                .map_err(|e| format!("create: {e}"))?;
            let mut io: Box<dyn Io> = Box::new(f);
            io.write_all(&control_frame(CONTROL_START, Some(CONTENT_TYPE)))
                .await
                .map_err(|e| format!("write: {e}"))?;
            return Ok(Conn {
                io,
                bidirectional: false,
            });
        }
    };
    let mut c = Conn {
        io,
        bidirectional: true,
    };
    c.io.write_all(&control_frame(CONTROL_READY, Some(CONTENT_TYPE)))
        .await
        .map_err(|e| format!("READY: {e}"))?;
    c.io.flush().await.map_err(|e| format!("READY: {e}"))?;
    let (kind, types) = read_control(&mut c.io)
        .await
        .map_err(|e| format!("waiting for ACCEPT: {e}"))?;
    if kind != CONTROL_ACCEPT {
        return Err(format!(
            "collector answered control frame {kind} instead of ACCEPT"
        ));
    }
    if !types.is_empty() && !types.iter().any(|t| t == CONTENT_TYPE) {
        return Err("collector does not accept protobuf:dnstap.Dnstap".into());
    }
    c.io.write_all(&control_frame(CONTROL_START, Some(CONTENT_TYPE)))
        .await
        .map_err(|e| format!("START: {e}"))?;
    c.io.flush().await.map_err(|e| format!("START: {e}"))?;
    Ok(c)
}

async fn stop(mut c: Conn) {
    let _ = timeout(FINISH_TIMEOUT, async {
        c.io.write_all(&control_frame(CONTROL_STOP, None)).await?;
        c.io.flush().await?;
        if c.bidirectional {
            let _ = read_control(&mut c.io).await;
        }
        c.io.shutdown().await
    })
    .await;
}

/// The dnstap background task. Ends after `queue.close()`.
pub async fn run(target: DnstapTarget, queue: Arc<SinkQueue>) {
    let pace = super::Pace {
        interval: FLUSH_INTERVAL,
        max_batch: MAX_BATCH,
    };
    super::supervise(DnstapSink::new(target), queue, pace, None).await
}

/// A connection (or file) to write dnstap frames to.
struct DnstapSink {
    target: DnstapTarget,
    version: String,
    conn: Option<Conn>,
    buf: Vec<u8>,
}

impl DnstapSink {
    fn new(target: DnstapTarget) -> DnstapSink {
        DnstapSink {
            target,
            version: version_string(),
            conn: None,
            buf: Vec::with_capacity(256 * 1024),
        }
    }
}

#[async_trait::async_trait]
impl super::Sink for DnstapSink {
    fn describe(&self) -> String {
        format!("dnstap {}", self.target)
    }
    fn is_open(&self) -> bool {
        self.conn.is_some()
    }
    async fn open(&mut self) -> Result<(), String> {
        let c = timeout(CONNECT_TIMEOUT, connect(&self.target))
            .await
            .unwrap_or_else(|_| Err("handshake timed out".into()))
            .map_err(|e| format!("dnstap {}: {e}", self.target))?;
        self.conn = Some(c);
        Ok(())
    }
    async fn write(
        &mut self,
        batch: Vec<Queued>,
        events: usize,
    ) -> (Vec<Queued>, Result<Delivered, String>) {
        let Some(c) = self.conn.as_mut() else {
            return (batch, Err("not connected".into()));
        };
        self.buf.clear();
        for l in batch.iter().flat_map(|b| b.events()) {
            for payload in encode_event(l, &self.version) {
                put_data_frame(&mut self.buf, &payload);
            }
        }
        let buf = &self.buf;
        let r = timeout(WRITE_TIMEOUT, async {
            c.io.write_all(buf).await?;
            c.io.flush().await
        })
        .await;
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::with_capacity(256 * 1024);
        }
        let r = match r {
            Ok(Ok(())) => Ok(Delivered::written(events)),
            Ok(Err(e)) => Err(format!("write: {e}")),
            Err(_) => Err("write timed out (collector not reading)".into()),
        };
        if r.is_err() {
            // A broken connection gets no STOP frame: drop it, reconnect later.
            self.conn = None;
        }
        (batch, r.map_err(|e| format!("dnstap {}: {e}", self.target)))
    }
    async fn close(&mut self) {
        if let Some(c) = self.conn.take() {
            stop(c).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::testutil::*;
    use crate::querylog::{QueryLog, QueryLogConfig};
    use tokio::net::UnixListener;

    fn decode(payload: &[u8]) -> Dnstap {
        Dnstap::decode(payload).unwrap()
    }

    #[test]
    fn synthesized_query_is_wire_format() {
        let q = synth_query("c2.evil.example", "AAAA").unwrap();
        assert_eq!(&q[..12], &[0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(&q[12..], b"\x02c2\x04evil\x07example\x00\x00\x1c\x00\x01");
        assert_eq!(qtype_code("TYPE65"), Some(65));
        assert_eq!(qtype_code("https"), Some(65));
        assert_eq!(qtype_code("BOGUS"), None);
        assert!(synth_query(&"a".repeat(64), "A").is_none());
    }

    #[test]
    fn encoded_event_decodes_with_every_field() {
        let mut ev = event("c2.evil.example", EventAction::Blocked);
        ev.query_wire = Some(Bytes::from_static(b"QUERYBYTES"));
        ev.response_wire = Some(Bytes::from_static(b"RESPONSEBYTES"));
        ev.transport = Transport::Dot;
        ev.ts_us = 1_714_564_800_123_456;
        ev.latency_us = 900_000; // crosses a second
        let [q, r] = encode_event(&logged(ev), "dnsward 9.9");
        let (q, r) = (decode(&q), decode(&r));
        for d in [&q, &r] {
            assert_eq!(d.identity.as_deref(), Some(&b"edge-1"[..]));
            assert_eq!(d.version.as_deref(), Some(&b"dnsward 9.9"[..]));
            assert_eq!(d.r#type, DnstapType::Message as i32);
            let extra: serde_json::Value =
                serde_json::from_slice(d.extra.as_deref().unwrap()).unwrap();
            assert_eq!(extra["category"], "malware");
        }
        let qm = q.message.unwrap();
        assert_eq!(qm.r#type, MessageType::ClientQuery as i32);
        assert_eq!(qm.socket_family, Some(SocketFamily::Inet as i32));
        assert_eq!(qm.socket_protocol, Some(SocketProtocol::Dot as i32));
        assert_eq!(qm.query_address.as_deref(), Some(&[192, 0, 2, 77][..]));
        assert_eq!(qm.query_port, Some(53001));
        assert_eq!(
            (qm.query_time_sec, qm.query_time_nsec),
            (Some(1_714_564_800), Some(123_456_000))
        );
        assert_eq!(qm.query_message.as_deref(), Some(&b"QUERYBYTES"[..]));
        assert_eq!(qm.response_message, None);
        assert_eq!(qm.policy, None);
        let rm = r.message.unwrap();
        assert_eq!(rm.r#type, MessageType::ClientResponse as i32);
        assert_eq!(
            (rm.response_time_sec, rm.response_time_nsec),
            (Some(1_714_564_801), Some(23_456_000))
        );
        assert_eq!(rm.response_message.as_deref(), Some(&b"RESPONSEBYTES"[..]));
        let p = rm.policy.unwrap();
        assert_eq!(p.r#type.as_deref(), Some("dnsward"));
        assert_eq!(p.rule.as_deref(), Some(&b"*.evil.example"[..]));
        assert_eq!(p.action, Some(PolicyAction::Nxdomain as i32));
        assert_eq!(p.r#match, Some(PolicyMatch::Qname as i32));
        assert_eq!(p.value.as_deref(), Some(&b"c2.evil.example"[..]));

        // allowed, hashed client: no policy, no address disclosed; synthesized question
        let mut ev = event("ok.example", EventAction::Allowed);
        ev.client = "[2001:db8::1]:9".parse().unwrap();
        let l = LoggedEvent {
            ev,
            client: ClientId::Token(7),
        };
        let [q, r] = encode_event(&l, "v");
        let qm = decode(&q).message.unwrap();
        assert_eq!(
            (qm.socket_family, qm.query_address.as_ref(), qm.query_port),
            (None, None, None)
        );
        assert_eq!(
            qm.query_message.as_deref(),
            synth_query("ok.example", "A").as_deref()
        );
        assert_eq!(decode(&r).message.unwrap().policy, None);
    }

    /// A Frame Streams collector for one connection: handshake, then data frames until STOP.
    async fn collect(listener: UnixListener) -> Vec<Vec<u8>> {
        let (mut s, _) = listener.accept().await.unwrap();
        let (kind, types) = read_control(&mut s).await.unwrap();
        assert_eq!(kind, CONTROL_READY);
        assert_eq!(types, vec![CONTENT_TYPE.to_vec()]);
        s.write_all(&control_frame(CONTROL_ACCEPT, Some(CONTENT_TYPE)))
            .await
            .unwrap();
        let (kind, types) = read_control(&mut s).await.unwrap();
        assert_eq!((kind, types), (CONTROL_START, vec![CONTENT_TYPE.to_vec()]));
        let mut frames = Vec::new();
        loop {
            let len = s.read_u32().await.unwrap();
            if len == 0 {
                let clen = s.read_u32().await.unwrap() as usize;
                let mut body = vec![0; clen];
                s.read_exact(&mut body).await.unwrap();
                assert_eq!(&body[..4], &CONTROL_STOP.to_be_bytes());
                s.write_all(&control_frame(CONTROL_FINISH, None))
                    .await
                    .unwrap();
                return frames;
            }
            let mut f = vec![0; len as usize];
            s.read_exact(&mut f).await.unwrap();
            frames.push(f);
        }
    }

    /// Run dnstap-ldns on a Frame Streams file; None when the tool is not installed.
    fn dnstap_ldns(file: &std::path::Path) -> Option<String> {
        let mut child = match std::process::Command::new("dnstap-ldns")
            .arg("-y")
            .arg("-r")
            .arg(file)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                eprintln!("SKIPPED: dnstap-ldns not installed (apt-get install dnstap-ldns); only the Rust decode was checked");
                return None;
            }
            Err(e) => panic!("cannot run dnstap-ldns: {e}"),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill(); // this child, by its PID
                let _ = child.wait();
                panic!("dnstap-ldns did not finish");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "dnstap-ldns failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8(out.stdout).unwrap())
    }

    fn emit_three(log: &QueryLog) {
        log.emit(event("c2.evil.example", EventAction::Blocked));
        let mut e = event("www.example.org", EventAction::Allowed);
        e.qtype = "AAAA".into();
        log.emit(e);
        log.emit(event("pay.bad.example", EventAction::Blocked));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unix_socket_collector_receives_decodable_frames() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tap.sock");
        let collector = tokio::spawn(collect(UnixListener::bind(&sock).unwrap()));
        let cfg = QueryLogConfig {
            dnstap: Some(format!("unix:{}", sock.display())),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        emit_three(&log);
        log.shutdown().await;
        let frames = tokio::time::timeout(Duration::from_secs(5), collector)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(frames.len(), 6);
        let types: Vec<i32> = frames
            .iter()
            .map(|f| decode(f).message.unwrap().r#type)
            .collect();
        let (cq, cr) = (
            MessageType::ClientQuery as i32,
            MessageType::ClientResponse as i32,
        );
        assert_eq!(types, [cq, cr, cq, cr, cq, cr]);
        let s = &log.stats()[0];
        assert_eq!((s.written, s.dropped, s.errors), (3, 0, 0), "{s:?}");

        // the same frames as a Frame Streams file, read by the reference reader
        let file = dir.path().join("capture.fstrm");
        let mut buf = control_frame(CONTROL_START, Some(CONTENT_TYPE));
        for f in &frames {
            put_data_frame(&mut buf, f);
        }
        buf.extend_from_slice(&control_frame(CONTROL_STOP, None));
        std::fs::write(&file, buf).unwrap();
        if let Some(text) = dnstap_ldns(&file) {
            for want in [
                "c2.evil.example.",
                "www.example.org.",
                "pay.bad.example.",
                "CLIENT_QUERY",
                "CLIENT_RESPONSE",
                "edge-1",
                "192.0.2.77",
            ] {
                assert!(
                    text.contains(want),
                    "dnstap-ldns output lacks {want:?}:\n{text}"
                );
            }
            assert!(text.contains("AAAA"), "{text}");
        }
    }

    #[tokio::test]
    async fn file_target_is_readable_by_dnstap_ldns() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.dnstap");
        let cfg = QueryLogConfig {
            dnstap: Some(format!("file:{}", file.display())),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        emit_three(&log);
        log.shutdown().await;
        let data = std::fs::read(&file).unwrap();
        assert!(data.starts_with(&control_frame(CONTROL_START, Some(CONTENT_TYPE))));
        assert!(data.ends_with(&control_frame(CONTROL_STOP, None)));
        if let Some(text) = dnstap_ldns(&file) {
            assert_eq!(text.matches("type: CLIENT_QUERY").count(), 3, "{text}");
            assert!(text.contains("c2.evil.example."), "{text}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn collector_that_never_reads_does_not_block_emit() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tap.sock");
        let listener = UnixListener::bind(&sock).unwrap();
        // accepts and holds connections, never reads or answers
        let holder = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let cfg = QueryLogConfig {
            dnstap: Some(format!("unix:{}", sock.display())),
            queue_size: 1024,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let ev = event("flood.example", EventAction::Blocked);
        let t = std::time::Instant::now();
        for _ in 0..100_000 {
            log.emit(ev.clone());
        }
        let took = t.elapsed();
        let s = &log.stats()[0];
        assert!(s.dropped >= 100_000 - 1024, "{s:?}");
        assert!(s.queued <= 1024);
        let t = std::time::Instant::now();
        log.shutdown().await;
        assert!(t.elapsed() < Duration::from_secs(7), "shutdown is bounded");
        let s = &log.stats()[0];
        assert_eq!(s.written, 0);
        assert_eq!(s.dropped, 100_000, "{s:?}");
        eprintln!("100k emits against a stuck collector took {took:?}");
        holder.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconnects_when_the_collector_comes_back() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("tap.sock");
        let cfg = QueryLogConfig {
            dnstap: Some(format!("unix:{}", sock.display())),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("early.example", EventAction::Blocked));
        tokio::time::sleep(Duration::from_millis(300)).await;
        let s = &log.stats()[0];
        assert!(
            s.errors >= 1 && s.last_error.as_deref().unwrap().contains("connect"),
            "{s:?}"
        );
        let collector = tokio::spawn(collect(UnixListener::bind(&sock).unwrap()));
        // wait for the retry (backoff 0.5 s, then 1 s)
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while log.stats()[0].written < 1 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        log.emit(event("late.example", EventAction::Blocked));
        log.shutdown().await;
        let frames = collector.await.unwrap();
        let names: Vec<Vec<u8>> = frames
            .iter()
            .filter_map(|f| decode(f).message.unwrap().query_message.map(|b| b.to_vec()))
            .collect();
        assert_eq!(
            names,
            [
                synth_query("early.example", "A").unwrap(),
                synth_query("late.example", "A").unwrap()
            ]
        );
    }

    #[test]
    fn targets_parse() {
        assert_eq!(
            DnstapTarget::parse("unix:/run/x.sock").unwrap(),
            DnstapTarget::Unix("/run/x.sock".into())
        );
        assert_eq!(
            DnstapTarget::parse("tcp:127.0.0.1:6000").unwrap(),
            DnstapTarget::Tcp("127.0.0.1:6000".parse().unwrap())
        );
        assert_eq!(
            DnstapTarget::parse("tcp:127.0.0.1:6000")
                .unwrap()
                .to_string(),
            "tcp:127.0.0.1:6000"
        );
        assert!(DnstapTarget::parse("tcp:example.com:6000")
            .unwrap_err()
            .contains("IP address"));
    }
}
