//! ClickHouse sink: batches of events become one `INSERT ... FORMAT RowBinary` each, LZ4
//! compressed in ClickHouse's own block format (`querylog::clickhouse_compress`), over the
//! HTTP interface (see `querylog::clickhouse_client`). It runs on its own lower-priority
//! thread like the other sinks ([`super::OnThread`]), behind the same bounded drop-oldest
//! queue, so encoding and a slow server cost the answer path nothing.
//!
//! With `clickhouse_spool_mb > 0`, a batch that cannot be inserted (server down, slow, 500,
//! table missing) goes to a disk spool ([`crate::querylog::spool`]); while the spool holds
//! anything new batches join it, so rows arrive in order, and the spool is replayed oldest
//! first as soon as the server takes inserts again (retried with back-off). A full spool drops
//! its oldest chunks, counted. Without a spool a failed batch is dropped and counted.
//!
//! RowBinary is written by hand, to ClickHouse's format description: no crate writes it for
//! the 18.16 servers we must support (see `clickhouse_client`), and the format is simple:
//! little-endian integers, LEB128-prefixed strings, a 0/1 byte before a Nullable value, a
//! LEB128 count before an array's items; `IPv6` is its 16 bytes (as `FixedString(16)`),
//! `DateTime` a UInt32 and `LowCardinality(String)` a plain String.

use std::net::IpAddr;

use bytes::Bytes;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Backoff, BlockingSink, Delivered, Pace, SinkError};
use crate::querylog::bus::Queued;
use crate::querylog::clickhouse_client::{ClickhouseTarget, Client};
use crate::querylog::clickhouse_compress::{compress_into, BodyEncoding};
use crate::querylog::event::{ClientId, LoggedEvent};
use crate::querylog::spool::Spool;

/// One insert may take this long before the batch is spooled (or dropped) and the server is
/// treated as down.
pub const INSERT_TIMEOUT: Duration = Duration::from_secs(5);

/// Few, large inserts (ClickHouse makes a part per insert), still flushed twice a second.
pub const PACE: Pace = Pace {
    interval: Duration::from_millis(500),
    max_batch: 65_536,
};

/// Spooled chunks replayed per wake-up at most, so shutdown and new batches are not held up.
const REPLAY_CHUNKS_PER_CALL: usize = 64;

/// The columns of every insert, in RowBinary order (see packaging/clickhouse/schema.sql).
pub const INSERT_COLUMNS: &str = "time, ts_us, client, client_hash, client_port, transport, qname, qtype, rcode, action, category, list, rule, trigger, cached, answers, latency_us, instance, client_name, client_group";

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    loop {
        let b = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    put_str(out, s.unwrap_or(""));
}

/// The client as stored: an IPv6 address (IPv4 mapped) and the hash token (0 when none).
pub fn client_columns(c: &ClientId) -> ([u8; 16], u64) {
    match c {
        ClientId::Addr {
            ip: IpAddr::V4(a), ..
        } => (a.to_ipv6_mapped().octets(), 0),
        ClientId::Addr {
            ip: IpAddr::V6(a), ..
        } => (a.octets(), 0),
        ClientId::Token(t) => ([0; 16], *t),
    }
}

/// Append one event as a RowBinary row of [`INSERT_COLUMNS`].
pub fn encode_row(out: &mut Vec<u8>, l: &LoggedEvent) {
    let ev = &l.ev;
    let secs = ev.ts_us.div_euclid(1_000_000).clamp(0, i64::from(u32::MAX)) as u32;
    out.extend_from_slice(&secs.to_le_bytes());
    out.extend_from_slice(&ev.ts_us.to_le_bytes());
    let (addr, hash) = client_columns(&l.client);
    out.extend_from_slice(&addr);
    out.extend_from_slice(&hash.to_le_bytes());
    match l.client.port() {
        Some(p) => {
            out.push(0);
            out.extend_from_slice(&p.to_le_bytes());
        }
        None => out.push(1),
    }
    put_str(out, ev.transport.as_str());
    put_str(out, &ev.qname);
    put_str(out, &ev.qtype);
    put_str(out, &ev.rcode);
    put_str(out, ev.action.as_str());
    put_opt_str(out, ev.category.as_deref());
    put_opt_str(out, ev.list.as_deref());
    put_opt_str(out, ev.rule.as_deref());
    put_opt_str(out, ev.trigger.map(|t| t.as_str()));
    out.push(u8::from(ev.cached));
    put_varint(out, ev.answers.len() as u64);
    for a in ev.answers.iter() {
        put_str(out, &a.to_string());
    }
    out.extend_from_slice(&ev.latency_us.to_le_bytes());
    put_str(out, &ev.server);
    put_opt_str(out, ev.client_name.as_deref());
    put_opt_str(out, ev.group.as_deref());
}

/// A batch as one compressed RowBinary body, and its row count.
pub fn encode_batch(batch: &[Queued]) -> (Vec<u8>, u64) {
    let mut enc = BatchEncoder::default();
    let rows = enc.encode(batch);
    (enc.body, rows)
}

/// Encodes batches into buffers it keeps: a batch of 65,536 rows is megabytes, and fresh
/// buffers each time cost more in page faults (zeroing new pages) than the encoding itself.
#[derive(Default)]
pub struct BatchEncoder {
    raw: Vec<u8>,
    /// the compressed body of the last `encode`
    pub body: Vec<u8>,
}

impl BatchEncoder {
    /// Encode `batch` into `self.body`; returns its row count.
    pub fn encode(&mut self, batch: &[Queued]) -> u64 {
        const KEEP: usize = 64 << 20;
        if self.raw.capacity() > KEEP {
            self.raw = Vec::new();
        }
        if self.body.capacity() > KEEP {
            self.body = Vec::new();
        }
        self.raw.clear();
        self.body.clear();
        let mut rows = 0u64;
        for l in batch.iter().flat_map(|b| b.events()) {
            encode_row(&mut self.raw, l);
            rows += 1;
        }
        compress_into(&self.raw, &mut self.body);
        rows
    }
}

/// Where and how large the disk spool is.
#[derive(Clone, Debug)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub max_bytes: u64,
}

/// The ClickHouse sink (blocking half; driven through [`super::OnThread`]).
pub struct ClickhouseSink {
    target: ClickhouseTarget,
    insert_sql: String,
    client: Option<Client>,
    spool_config: Option<SpoolConfig>,
    spool: Option<Spool>,
    /// the server failed: no insert is tried before this (new batches go to the spool)
    retry_at: Option<Instant>,
    backoff: Backoff,
    encoder: BatchEncoder,
}

impl ClickhouseSink {
    pub fn new(target: ClickhouseTarget, spool: Option<SpoolConfig>) -> ClickhouseSink {
        ClickhouseSink {
            insert_sql: format!(
                "INSERT INTO {} ({INSERT_COLUMNS}) FORMAT RowBinary",
                target.table_ref()
            ),
            target,
            client: None,
            spool_config: spool,
            spool: None,
            retry_at: None,
            backoff: Backoff::default(),
            encoder: BatchEncoder::default(),
        }
    }

    fn insert(&self, body: Bytes) -> Result<(), SinkError> {
        let c = self.client.as_ref().ok_or(SinkError::NotOpen)?;
        let encoding = BodyEncoding::of(&body);
        c.insert(&self.insert_sql, body, encoding)
            .map_err(|source| {
                let missing = source.is_refusal() && {
                    let m = source.to_string();
                    [
                        "doesn't exist",
                        "does not exist",
                        "UNKNOWN_TABLE",
                        "UNKNOWN_DATABASE",
                    ]
                    .iter()
                    .any(|w| m.contains(w))
                };
                SinkError::ClickhouseInsert {
                    source,
                    hint: if missing {
                        " (create it with `dnsward logs init-clickhouse`)"
                    } else {
                        ""
                    },
                }
            })
    }

    fn server_due(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    /// An insert failed: no new attempt before the back-off delay; one error line per outage.
    fn mark_down(&mut self, e: &SinkError) {
        let d = self.backoff.next_delay();
        if self.retry_at.is_none() {
            tracing::error!(sink = %self.describe(), error = %e, retry_in = ?d,
                spool = self.spool.is_some(),
                "querylog: ClickHouse insert failed; spooling events (or dropping them, counted, without a spool) and retrying");
        } else {
            tracing::debug!(sink = %self.describe(), error = %e, retry_in = ?d, "querylog: ClickHouse still failing");
        }
        self.retry_at = Some(Instant::now() + d);
    }

    fn mark_up(&mut self) {
        if self.retry_at.take().is_some() {
            tracing::info!(sink = %self.describe(), "querylog: ClickHouse takes inserts again");
        }
        self.backoff.reset();
    }

    /// Spool a body; rows given up to make room are counted as dropped in `d`.
    fn spool_body(&mut self, body: &[u8], rows: u64, d: &mut Delivered) -> Result<(), SinkError> {
        let Some(sp) = self.spool.as_mut() else {
            return Err(SinkError::NoSpool);
        };
        let ev = sp.push(body, rows)?;
        if ev.rows > 0 {
            tracing::error!(sink = %self.describe(), dropped = ev.rows,
                "querylog: ClickHouse spool full (clickhouse_spool_mb); oldest events dropped");
            d.dropped += ev.rows;
            d.error = Some(format!("spool full: {} oldest events dropped", ev.rows));
        }
        Ok(())
    }

    fn replay(&mut self) -> Delivered {
        let mut d = Delivered::default();
        for _ in 0..REPLAY_CHUNKS_PER_CALL {
            if !self.server_due() {
                break;
            }
            let Some(sp) = self.spool.as_mut() else { break };
            let (body, rows) = match sp.oldest() {
                Ok(Some(x)) => x,
                Ok(None) => break,
                Err(e) => {
                    // An unreadable chunk cannot be replayed: give it up rather than block
                    // the spool.
                    let lost = sp.pop_oldest().ok().flatten().unwrap_or(0);
                    d.dropped += lost;
                    d.error = Some(e.to_string());
                    continue;
                }
            };
            match self.insert(Bytes::from(body)) {
                Ok(()) => {
                    self.mark_up();
                    if let Some(sp) = self.spool.as_mut() {
                        match sp.pop_oldest() {
                            Ok(_) => d.written += rows,
                            Err(e) => {
                                // Inserted, but the file stays: stop rather than insert it twice.
                                d.error = Some(e.to_string());
                                break;
                            }
                        }
                    }
                }
                Err(e) => {
                    self.mark_down(&e);
                    d.error = Some(e.to_string());
                    break;
                }
            }
        }
        d
    }

    /// Insert a batch's body, or spool it when the server is down or older rows wait.
    fn deliver(&mut self, body: &Bytes, rows: u64) -> Result<Delivered, SinkError> {
        // Older rows first: whatever the spool holds goes before this batch.
        let mut d = self.replay();
        // Without a spool every batch gets its try (the supervisor paces reopening); with
        // one, only when nothing older waits and the back-off has passed.
        let try_now = match &self.spool {
            None => true,
            Some(sp) => sp.is_empty() && self.server_due(),
        };
        if try_now {
            match self.insert(body.clone()) {
                Ok(()) => {
                    self.mark_up();
                    d.written += rows;
                    return Ok(d);
                }
                Err(e) => {
                    self.mark_down(&e);
                    if self.spool.is_none() {
                        return Err(e);
                    }
                    d.error = Some(e.to_string());
                }
            }
        }
        self.spool_body(body, rows, &mut d)?;
        Ok(d)
    }

    /// Rows waiting in the spool.
    pub fn spooled_rows(&self) -> u64 {
        self.spool.as_ref().map_or(0, Spool::rows)
    }
}

impl BlockingSink for ClickhouseSink {
    const HOLDS_EVENTS: bool = true;

    fn describe(&self) -> String {
        format!("clickhouse {} {}", self.target.url, self.target.table_ref())
    }

    fn is_open(&self) -> bool {
        self.client.is_some()
    }

    /// No network here: the server's state is found out by inserting, so a server that is
    /// down at start is bridged by the spool like any later outage.
    fn open(&mut self) -> Result<(), SinkError> {
        if self.spool.is_none() {
            if let Some(c) = &self.spool_config {
                let sp = Spool::open(&c.dir, c.max_bytes)?;
                if !sp.is_empty() {
                    tracing::info!(sink = %self.describe(), rows = sp.rows(),
                        "querylog: ClickHouse spool holds events from before; replaying them first");
                }
                self.spool = Some(sp);
            }
        }
        self.client = Some(Client::new(self.target.clone(), INSERT_TIMEOUT)?);
        Ok(())
    }

    fn write_batch(&mut self, batch: &[Queued]) -> Result<u64, SinkError> {
        let n = batch.iter().map(|b| b.events().len()).sum();
        self.write_counted(batch, n).map(|d| d.written)
    }

    fn write_counted(&mut self, batch: &[Queued], _events: usize) -> Result<Delivered, SinkError> {
        let rows = self.encoder.encode(batch);
        let body = Bytes::from(std::mem::take(&mut self.encoder.body));
        let r = self.deliver(&body, rows);
        // The HTTP client is done with its reference: the buffer comes back for the next batch
        // (a copy per insert would be a fresh megabyte of zeroed pages each time).
        self.encoder.body = body.try_into_mut().map(Vec::from).unwrap_or_default();
        r
    }

    fn catch_up(&mut self) -> Delivered {
        self.replay()
    }

    fn close(&mut self) {
        // Dropped here, on the sink's thread: a blocking client must not be dropped on the
        // async runtime.
        self.client = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::testutil::*;
    use crate::querylog::EventAction;

    #[test]
    fn the_body_buffer_comes_back_after_the_client_let_go_of_it() {
        let mut v = Vec::with_capacity(1 << 20);
        v.extend_from_slice(b"rows");
        let at = v.as_ptr();
        let body = Bytes::from(v);
        drop(body.clone()); // the HTTP client's reference, done with
        let back = body.try_into_mut().map(Vec::from).unwrap();
        assert_eq!((back.as_ptr(), back.capacity()), (at, 1 << 20));
    }

    #[test]
    fn varints_and_strings_follow_the_spec() {
        let mut v = Vec::new();
        put_varint(&mut v, 0);
        put_varint(&mut v, 127);
        put_varint(&mut v, 128);
        put_varint(&mut v, 300);
        assert_eq!(v, [0, 127, 0x80, 1, 0xac, 2]);
        let mut v = Vec::new();
        put_str(&mut v, "abc");
        assert_eq!(v, b"\x03abc");
    }

    #[test]
    fn a_row_has_every_column_in_order() {
        let mut ev = event("c2.evil.example", EventAction::Blocked);
        ev.client_name = Some("lab".into());
        let mut out = Vec::new();
        encode_row(&mut out, &logged(ev));
        let mut want = Vec::new();
        want.extend_from_slice(&1_714_564_800u32.to_le_bytes());
        want.extend_from_slice(&1_714_564_800_123_456i64.to_le_bytes());
        want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 77]);
        want.extend_from_slice(&0u64.to_le_bytes());
        want.extend_from_slice(&[0, 0x09, 0xcf]); // not null, port 53001 (0xcf09) little-endian
        for s in [
            "udp",
            "c2.evil.example",
            "A",
            "NXDOMAIN",
            "blocked",
            "malware",
            "threat-feed",
            "*.evil.example",
            "qname",
        ] {
            put_str(&mut want, s);
        }
        want.push(0); // cached
        want.push(0); // no answers
        want.extend_from_slice(&1234u32.to_le_bytes());
        put_str(&mut want, "edge-1");
        put_str(&mut want, "lab");
        put_str(&mut want, "");
        assert_eq!(out, want);
    }
}
