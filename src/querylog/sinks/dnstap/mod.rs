//! dnstap sink: every event becomes two dnstap `Message`s (CLIENT_QUERY and CLIENT_RESPONSE),
//! sent as Frame Streams data frames with content type `protobuf:dnstap.Dnstap` to a
//! collector on a unix socket or TCP (bidirectional handshake READY/ACCEPT/START ... STOP/
//! FINISH), or written to a file (unidirectional START ... STOP, readable with
//! `dnstap-ldns -r FILE` or `fstrm_dump`).
//!
//! Blocked answers carry the `policy` field (type "dnsward", rule, action, match, value).
//!
//! Like the other sinks it is a [`BlockingSink`]: encoding and socket writes run on the
//! sink's own thread below the answer path's priority, with plain blocking I/O and socket
//! timeouts. Frame Streams is hand-written: the framing is a dozen lines (a 4-byte length per
//! frame and three kinds of control frame), and the existing Rust crates for it are either
//! unmaintained or pull in a different async stack.
//!
//! On connection loss the sink reconnects with backoff; meanwhile the queue keeps the newest
//! events and drops (and counts) the oldest.

mod encode;
pub mod proto;
#[cfg(test)]
mod tests;

pub use encode::Encoder;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BufMut;

use super::{BlockingSink, Pace, SinkError, FLUSH_INTERVAL};
use crate::querylog::bus::Queued;

/// How often the dnstap sink writes and how much at once.
pub const PACE: Pace = Pace {
    interval: FLUSH_INTERVAL,
    max_batch: super::MAX_BATCH,
};

// ---------------------------------------------------------------------------------------
// events -> dnstap

pub const CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

pub fn version_string() -> String {
    format!("dnsward {}", env!("CARGO_PKG_VERSION"))
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
pub fn read_control(r: &mut (impl Read + ?Sized)) -> std::io::Result<(u32, Vec<Vec<u8>>)> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut head = [0u8; 8];
    r.read_exact(&mut head)?;
    if head[..4] != [0; 4] {
        return Err(bad("expected a Frame Streams control frame"));
    }
    let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    if !(4..=MAX_CONTROL_LEN).contains(&len) {
        return Err(bad("bad control frame length"));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
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

/// Why a `dnstap` value names no target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnstapTargetError {
    #[error("{0:?}: {1} needs an absolute path, e.g. {1}/run/dnstap.sock")]
    RelativePath(String, &'static str),
    #[error("{0:?}: port 0")]
    PortZero(String),
    #[error("{0:?}: expected tcp:IP:PORT with an IP address, e.g. tcp:127.0.0.1:6000")]
    NotAnAddress(String),
    #[error("{0:?}: expected unix:/PATH, tcp:IP:PORT or file:/PATH")]
    Scheme(String),
}

impl DnstapTarget {
    /// `unix:/ABSOLUTE/PATH`, `tcp:IP:PORT` (an address, not a host name: the resolver must
    /// not depend on itself to log), or `file:/PATH`.
    pub fn parse(s: &str) -> Result<DnstapTarget, DnstapTargetError> {
        let abs = |p: &str, what: &'static str| {
            if p.starts_with('/') && p.len() > 1 {
                Ok(PathBuf::from(p))
            } else {
                Err(DnstapTargetError::RelativePath(s.to_string(), what))
            }
        };
        if let Some(p) = s.strip_prefix("unix:") {
            abs(p, "unix:").map(DnstapTarget::Unix)
        } else if let Some(p) = s.strip_prefix("file:") {
            abs(p, "file:").map(DnstapTarget::File)
        } else if let Some(a) = s.strip_prefix("tcp:") {
            match a.parse::<SocketAddr>() {
                Ok(sa) if sa.port() != 0 => Ok(DnstapTarget::Tcp(sa)),
                Ok(_) => Err(DnstapTargetError::PortZero(s.to_string())),
                Err(_) => Err(DnstapTargetError::NotAnAddress(s.to_string())),
            }
        } else {
            Err(DnstapTargetError::Scheme(s.to_string()))
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

/// Where the frames go: a collector's socket (with the bidirectional handshake) or a file.
enum Io {
    Unix(UnixStream),
    Tcp(TcpStream),
    File(std::fs::File),
}

impl Io {
    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Io::Unix(s) => s,
            Io::Tcp(s) => s,
            Io::File(f) => f,
        }
    }
    fn reader(&mut self) -> Option<&mut dyn Read> {
        match self {
            Io::Unix(s) => Some(s),
            Io::Tcp(s) => Some(s),
            Io::File(_) => None,
        }
    }
    fn set_read_timeout(&self, t: Duration) -> std::io::Result<()> {
        match self {
            Io::Unix(s) => s.set_read_timeout(Some(t)),
            Io::Tcp(s) => s.set_read_timeout(Some(t)),
            Io::File(_) => Ok(()),
        }
    }
    fn shutdown(&self) {
        let _ = match self {
            Io::Unix(s) => s.shutdown(Shutdown::Both),
            Io::Tcp(s) => s.shutdown(Shutdown::Both),
            Io::File(f) => f.sync_data(),
        };
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
const FINISH_TIMEOUT: Duration = Duration::from_secs(1);

fn connect(t: &DnstapTarget) -> std::io::Result<Io> {
    let mut io = match t {
        DnstapTarget::Unix(p) => {
            let s = UnixStream::connect(p)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
            Io::Unix(s)
        }
        DnstapTarget::Tcp(a) => {
            let s = TcpStream::connect_timeout(a, CONNECT_TIMEOUT)?;
            s.set_write_timeout(Some(WRITE_TIMEOUT))?;
            let _ = s.set_nodelay(true);
            Io::Tcp(s)
        }
        DnstapTarget::File(p) => {
            // Frame Streams files hold one START..STOP stream: the file is replaced.
            let mut f = std::fs::File::create(p)?;
            f.write_all(&control_frame(CONTROL_START, Some(CONTENT_TYPE)))?;
            return Ok(Io::File(f));
        }
    };
    io.set_read_timeout(CONNECT_TIMEOUT)?;
    io.writer()
        .write_all(&control_frame(CONTROL_READY, Some(CONTENT_TYPE)))?;
    let r = io.reader().expect("a socket reads");
    let (kind, types) = read_control(r)?;
    let refused = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    if kind != CONTROL_ACCEPT {
        return Err(refused(format!(
            "collector answered control frame {kind} instead of ACCEPT"
        )));
    }
    if !types.is_empty() && !types.iter().any(|t| t == CONTENT_TYPE) {
        return Err(refused(
            "collector does not accept protobuf:dnstap.Dnstap".into(),
        ));
    }
    io.writer()
        .write_all(&control_frame(CONTROL_START, Some(CONTENT_TYPE)))?;
    Ok(io)
}

/// STOP, and on a socket wait (briefly) for the collector's FINISH.
fn stop(mut io: Io) {
    if io
        .writer()
        .write_all(&control_frame(CONTROL_STOP, None))
        .is_ok()
        && io.set_read_timeout(FINISH_TIMEOUT).is_ok()
    {
        if let Some(r) = io.reader() {
            let _ = read_control(r);
        }
    }
    io.shutdown();
}

/// A connection (or file) to write dnstap frames to.
pub struct DnstapSink {
    target: DnstapTarget,
    encoder: Encoder,
    io: Option<Io>,
    buf: Vec<u8>,
}

impl DnstapSink {
    pub fn new(target: DnstapTarget) -> DnstapSink {
        DnstapSink {
            target,
            encoder: Encoder::new(&version_string()),
            io: None,
            buf: Vec::with_capacity(256 * 1024),
        }
    }
}

impl BlockingSink for DnstapSink {
    fn describe(&self) -> String {
        format!("dnstap {}", self.target)
    }
    fn is_open(&self) -> bool {
        self.io.is_some()
    }
    fn open(&mut self) -> Result<(), SinkError> {
        let io = connect(&self.target).map_err(|source| SinkError::DnstapOpen {
            target: self.target.clone(),
            action: if matches!(self.target, DnstapTarget::File(_)) {
                "create"
            } else {
                "connect"
            },
            source,
        })?;
        self.io = Some(io);
        Ok(())
    }
    fn write_batch(&mut self, batch: &[Queued]) -> Result<u64, SinkError> {
        let Some(io) = self.io.as_mut() else {
            return Err(SinkError::DnstapNotConnected(self.target.clone()));
        };
        self.buf.clear();
        let mut n = 0;
        for l in batch.iter().flat_map(|b| b.events()) {
            self.encoder.put_event(l, &mut self.buf);
            n += 1;
        }
        let r = io.writer().write_all(&self.buf);
        if self.buf.capacity() > 4 * 1024 * 1024 {
            self.buf = Vec::with_capacity(256 * 1024);
        }
        match r {
            Ok(()) => Ok(n),
            Err(e) => {
                // A broken connection gets no STOP frame: drop it, reconnect later.
                self.io = None;
                let target = self.target.clone();
                Err(
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) {
                        SinkError::DnstapTimedOut(target)
                    } else {
                        SinkError::DnstapWrite { target, source: e }
                    },
                )
            }
        }
    }
    fn close(&mut self) {
        if let Some(io) = self.io.take() {
            stop(io);
        }
    }
}
