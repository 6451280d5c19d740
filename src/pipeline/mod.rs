//! The path of one query, from bytes in to bytes out (see ARCHITECTURE.md):
//! admission (parse, refuse what we do not serve) -> cache -> resolve on a miss -> respond.
//!
//! `answer_fast` is synchronous and serves everything that needs no upstream (cache hits,
//! errors); only a miss goes to the async `answer`. The UDP loop calls the fast path inline.

pub mod resolve;

use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::cache::{Lookup, PacketCache};
use crate::config::Config;
use crate::dnswire::{self, QueryView, Reject};
use crate::upstream::Upstream;
use resolve::{Outcome, Resolve};

/// What the fast path decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Fast {
    /// `out` holds the response.
    Reply,
    /// Send nothing.
    Drop,
    /// Needs upstream: call `Engine::answer` with the packet.
    Miss,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

pub struct Engine {
    cache: Arc<PacketCache>,
    resolve: Arc<Resolve>,
    /// Largest UDP response we send (also what our OPT advertises).
    max_udp: u16,
}

impl Engine {
    pub fn new(config: &Config, upstream: Arc<dyn Upstream>) -> Self {
        let r = &config.resolver;
        let cache = Arc::new(PacketCache::new(
            r.cache_size,
            std::time::Duration::from_secs(r.serve_stale_secs),
        ));
        let resolve = Arc::new(Resolve::new(
            upstream,
            Arc::clone(&cache),
            std::time::Duration::from_millis(r.timeout_ms),
        ));
        Self {
            cache,
            resolve,
            max_udp: config.server.max_udp_payload,
        }
    }

    pub fn cache(&self) -> &PacketCache {
        &self.cache
    }

    pub fn resolve_stats(&self) -> resolve::ResolveStats {
        self.resolve.stats()
    }

    fn size_limit(&self, q: &QueryView<'_>, transport: Transport) -> usize {
        match transport {
            Transport::Udp => q.max_udp_response(self.max_udp),
            Transport::Tcp => u16::MAX as usize,
        }
    }

    /// Serves from cache or answers errors; `Fast::Miss` when upstream is needed.
    /// `key` and `out` are scratch buffers the caller reuses between packets.
    pub fn answer_fast(&self, pkt: &[u8], transport: Transport, key: &mut Vec<u8>, out: &mut Vec<u8>) -> Fast {
        let q = match admit(pkt) {
            Ok(q) => q,
            Err(Reject::Drop) => return Fast::Drop,
            Err(Reject::Error { id, flags, rcode }) => {
                // Echo the question when it parsed (unsupported class or type), not otherwise.
                let question = dnswire::parse_query(pkt).ok().map(|q| (q.qname, q.qtype, q.qclass));
                let edns = dnswire::parse_query(pkt)
                    .ok()
                    .and_then(|q| q.edns.map(|e| (self.max_udp, e.dnssec_ok)));
                *out = dnswire::error_response(id, flags, rcode, question, edns, false);
                return Fast::Reply;
            }
        };
        PacketCache::key_into(key, q.qname, q.qtype, q.qclass, q.dnssec_ok(), q.checking_disabled());
        let now = Instant::now();
        match self.cache.lookup(key, now) {
            Lookup::Fresh(answer) => {
                answer.render(out, q.id, q.flags, q.qname, now, false);
                self.finish(&q, transport, out);
                Fast::Reply
            }
            Lookup::Stale(_) | Lookup::Miss => Fast::Miss,
        }
    }

    /// The whole path for one packet: fast path, else resolve. `None` = send nothing.
    pub async fn answer(&self, pkt: &[u8], transport: Transport) -> Option<Vec<u8>> {
        let (mut key, mut out) = (Vec::with_capacity(64), Vec::with_capacity(512));
        match self.answer_fast(pkt, transport, &mut key, &mut out) {
            Fast::Reply => return Some(out),
            Fast::Drop => return None,
            Fast::Miss => {}
        }
        let q = dnswire::parse_query(pkt).ok()?;
        let query = match question_of(&q) {
            Some(query) => query,
            None => {
                return Some(dnswire::error_response(q.id, q.flags, dnswire::RCODE_FORMERR, None, None, false))
            }
        };
        match self.resolve.resolve(&key, query, q.dnssec_ok()).await {
            Outcome::Answer { answer, stale } => {
                answer.render(&mut out, q.id, q.flags, q.qname, Instant::now(), stale);
                self.finish(&q, transport, &mut out);
            }
            Outcome::Failed => {
                out = dnswire::error_response(
                    q.id,
                    q.flags,
                    dnswire::RCODE_SERVFAIL,
                    Some((q.qname, q.qtype, q.qclass)),
                    q.edns.map(|e| (self.max_udp, e.dnssec_ok)),
                    false,
                );
            }
        }
        Some(out)
    }

    /// Adds our OPT when the client sent one, and truncates (TC) what does not fit over UDP.
    fn finish(&self, q: &QueryView<'_>, transport: Transport, out: &mut Vec<u8>) {
        let edns = q.edns.map(|e| (self.max_udp, e.dnssec_ok));
        if let Some((size, dnssec_ok)) = edns {
            dnswire::append_opt(out, size, dnssec_ok, &[]);
        }
        if out.len() > self.size_limit(q, transport) {
            let rcode = (dnswire::get_u16(out, 2) & 0xf) as u8;
            *out = dnswire::error_response(q.id, q.flags, rcode, Some((q.qname, q.qtype, q.qclass)), edns, true);
        }
    }
}

/// Admission: parse, then refuse classes and types a recursive resolver does not serve.
fn admit(pkt: &[u8]) -> Result<QueryView<'_>, Reject> {
    let q = dnswire::parse_query(pkt)?;
    let reject = |rcode| Err(Reject::Error { id: q.id, flags: q.flags, rcode });
    if q.edns.is_some_and(|e| e.version != 0) {
        // BADVERS needs the extended RCODE; FORMERR is what older servers answer and is safe.
        return reject(dnswire::RCODE_FORMERR);
    }
    if q.qclass != dnswire::CLASS_IN {
        return reject(dnswire::RCODE_NOTIMP);
    }
    match q.qtype {
        dnswire::TYPE_OPT => reject(dnswire::RCODE_FORMERR),
        251 | 252 => reject(dnswire::RCODE_REFUSED), // IXFR, AXFR: not a zone server
        253 | 254 => reject(dnswire::RCODE_NOTIMP),  // MAILB, MAILA
        _ => Ok(q),
    }
}

/// The hickory `Query` for a parsed question, name lower-cased.
fn question_of(q: &QueryView<'_>) -> Option<Query> {
    let lower: Vec<u8> = q.qname.iter().map(u8::to_ascii_lowercase).collect();
    let name = Name::read(&mut BinDecoder::new(&lower)).ok()?;
    let mut query = Query::query(name, RecordType::from(q.qtype));
    query.set_query_class(DNSClass::from(q.qclass));
    Some(query)
}
