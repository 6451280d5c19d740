//! The path of one query, from bytes in to bytes out (see ARCHITECTURE.md):
//! admission (parse, refuse what we do not serve) -> cache -> resolve on a miss -> respond.
//!
//! `answer_fast` is synchronous and serves everything that needs no upstream (cache hits,
//! errors); only a miss goes to the async `resolve_miss`. The UDP loop calls the fast path inline.

pub mod admission;
pub mod ddr;
pub mod dns64;
pub mod record;
pub mod resolve;
pub mod sde;
pub mod synth;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::Query;
use hickory_proto::rr::{DNSClass, Name, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};

use crate::cache::{CachedAnswer, Lookup, PacketCache};
use crate::config::{Config, PolicyConfig};
use crate::dnswire::{self, QueryView, Reject};
use crate::policy::groups::{ClientCache, ClientMatch};
use crate::policy::reload::PolicyStore;
use crate::policy::{RuleRef, Snapshot, Verdict};
use crate::upstream::{ClientFlags, Upstream};
use admission::Gate;
use resolve::{Outcome, Resolve};
use synth::Trigger;

/// Per-worker buffers reused from one packet to the next, and what happened to the last query
/// (for the query log).
#[derive(Default)]
pub struct Scratch {
    pub key: Vec<u8>,
    pub out: Vec<u8>,
    pub name: String,
    pub decision: Decision,
    /// Recent clients' groups (a UDP worker keeps its scratch, so repeat clients hit).
    pub clients: ClientCache,
}

impl Scratch {
    /// What `Engine::resolve_miss` needs of this scratch after `answer_fast` said
    /// `Fast::Miss` (the cache key, the name, the client), for a miss resolved as its own task
    /// while this scratch serves the next packet.
    pub fn carry_for_miss(&self) -> Scratch {
        Scratch {
            key: self.key.clone(),
            name: self.name.clone(),
            decision: Decision {
                client: self.decision.client,
                ..Default::default()
            },
            ..Scratch::default()
        }
    }
}

/// What the pipeline decided for one query.
#[derive(Default, Debug, Clone)]
pub struct Decision {
    /// Set when policy rewrote or dropped the answer.
    pub blocked: Option<(RuleRef, Trigger)>,
    /// Answered from the packet cache without going upstream.
    pub from_cache: bool,
    /// Upstream failed and a stale answer was served.
    pub stale: bool,
    /// The (cached or fresh) upstream answer the response came from.
    pub answer: Option<Arc<CachedAnswer>>,
    /// Who asked: named client and group, looked up once at admission.
    pub client: ClientMatch,
}

/// What the fast path decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Fast {
    /// `out` holds the response.
    Reply,
    /// Send nothing.
    Drop,
    /// Needs upstream: call `Engine::resolve_miss` with the packet and the same scratch.
    Miss,
}

/// The transport a query came over: one vocabulary for the pipeline, metrics and the log.
pub use crate::querylog::Transport;

pub struct Engine {
    cache: Arc<PacketCache>,
    resolve: Arc<Resolve>,
    policy: Arc<PolicyStore>,
    policy_cfg: PolicyConfig,
    pub recorder: record::Recorder,
    pub admission: admission::Admission,
    /// Largest UDP response we send (also what our OPT advertises).
    max_udp: u16,
    /// Structured DNS Errors: what a blocked answer says to a client that asks for them.
    sde: sde::Sde,
    /// DDR answers; set once the DoT/DoH listeners are bound (their ports are known only then).
    pub ddr: std::sync::OnceLock<ddr::Ddr>,
    /// `[resolver] prefetch`: refresh entries asked for near the end of their TTL.
    prefetch: bool,
    /// `[resolver] dns64_prefix`: AAAA synthesized from A for DNS64 clients (`pipeline::dns64`).
    dns64: Option<Arc<dns64::Dns64>>,
}

impl Engine {
    pub fn new(
        config: &Config,
        upstream: Arc<dyn Upstream>,
        policy: Arc<PolicyStore>,
        recorder: record::Recorder,
    ) -> Self {
        let r = &config.resolver;
        let cache = Arc::new(PacketCache::new(
            r.cache_size,
            std::time::Duration::from_secs(r.serve_stale_secs),
        ));
        let resolve = Arc::new(Resolve::new(
            upstream,
            Arc::clone(&cache),
            std::time::Duration::from_millis(r.timeout_ms),
            Arc::clone(&recorder.metrics),
        ));
        Self {
            cache,
            resolve,
            policy,
            policy_cfg: config.policy.clone(),
            recorder,
            admission: admission::Admission::new(&config.server),
            max_udp: config.server.max_udp_payload,
            sde: sde::Sde::from_config(config),
            ddr: std::sync::OnceLock::new(),
            prefetch: r.prefetch,
            dns64: dns64::Dns64::from_config(r).map(Arc::new),
        }
    }

    pub fn policy(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    pub fn cache(&self) -> &PacketCache {
        &self.cache
    }

    pub fn resolve_stats(&self) -> resolve::ResolveStats {
        self.resolve.stats()
    }

    /// The DNSSEC validator, when the resolver validates.
    pub fn validator(&self) -> Option<&Arc<crate::dnssec::Validator>> {
        self.resolve.upstream().validator()
    }

    fn size_limit(&self, q: &QueryView<'_>, transport: Transport) -> usize {
        match transport {
            Transport::Udp => q.max_udp_response(self.max_udp),
            Transport::Tcp | Transport::Dot | Transport::Doh => u16::MAX as usize,
        }
    }

    /// Serves from cache, from policy or with an error; `Fast::Miss` when upstream is needed.
    /// `snap` is the one policy snapshot this query sees from admission to answer.
    pub fn answer_fast(
        &self,
        pkt: &[u8],
        transport: Transport,
        client: IpAddr,
        snap: &Snapshot,
        s: &mut Scratch,
    ) -> Fast {
        // The client's group, once per query (cached per worker): every policy check below
        // and the query log use it.
        let who = s.clients.lookup(snap, client);
        s.decision = Decision {
            client: who,
            ..Decision::default()
        };
        match self.admission.check(client, transport == Transport::Udp) {
            Gate::Pass => {}
            Gate::Drop => return Fast::Drop,
            gate => {
                // REFUSED, or TC=1 for a client over its rate; nothing when it did not parse.
                let Ok(q) = dnswire::parse_query(pkt) else {
                    return Fast::Drop;
                };
                s.out = match gate {
                    Gate::Refuse => self.header_only(&q, dnswire::RCODE_REFUSED, false),
                    _ => self.header_only(&q, dnswire::RCODE_NOERROR, true),
                };
                return Fast::Reply;
            }
        }
        let q = match admit(pkt) {
            Ok(q) => q,
            Err(Reject::Drop) => return Fast::Drop,
            Err(Reject::Error { id, flags, rcode }) => {
                // Echo the question when it parsed (unsupported class or type), not otherwise.
                let parsed = dnswire::parse_query(pkt).ok();
                let question = parsed.map(|q| (q.qname, q.qtype, q.qclass));
                let edns = parsed.and_then(|q| self.reply_edns(&q));
                s.out = dnswire::error_response(id, flags, rcode, question, edns, false);
                return Fast::Reply;
            }
        };
        if let Some(ddr) = self.ddr.get().filter(|_| ddr::Ddr::is_ddr_query(&q)) {
            if let Some(answer) = ddr.answer(&q) {
                s.out = answer;
                self.finish(&q, transport, &mut s.out, &[]);
                return Fast::Reply;
            }
        }
        // Query policy: the qname, whatever the qtype. Allow exempts the whole answer.
        dnswire::name_into(q.qname, &mut s.name);
        let exempt = match snap.match_name_for(&s.name, who) {
            Some(Verdict::Allow(_)) => true,
            Some(v) => return self.blocked(&q, v, Trigger::Qname, transport, s),
            None => false,
        };
        PacketCache::key_into(
            &mut s.key,
            q.qname,
            q.qtype,
            q.qclass,
            q.dnssec_ok(),
            q.checking_disabled(),
        );
        if let Some(d) = &self.dns64 {
            d.mark_key(&mut s.key, client, &q, &s.name); // synthesized answers: own entries
        }
        let now = Instant::now();
        match self.cache.lookup(&s.key, now) {
            Lookup::Fresh(answer) => {
                s.decision.from_cache = true;
                if self.prefetch && answer.claim_prefetch(now) {
                    self.start_prefetch(&q, &s.key);
                }
                if !exempt {
                    if let Some((v, trigger)) = response_verdict(snap, &answer, who) {
                        return self.blocked(&q, v, trigger, transport, s);
                    }
                }
                answer.render(&mut s.out, q.id, q.flags, q.qname, now, false, q.wants_ad());
                s.decision.answer = Some(answer);
                self.finish(&q, transport, &mut s.out, &[]);
                self.rrl(&q, transport, client, s)
            }
            Lookup::Stale(_) | Lookup::Miss => Fast::Miss,
        }
    }

    /// Refreshes the entry under `key` in the background (a hit in the last part of its
    /// TTL; at most once per entry, see `CachedAnswer::claim_prefetch`). A DNS64 entry is
    /// made again by `Dns64::prefetch`, any other by `Resolve::prefetch`.
    #[cold]
    fn start_prefetch(&self, q: &QueryView<'_>, key: &[u8]) {
        let Some(query) = question_of(q) else {
            return;
        };
        let flags = ClientFlags {
            dnssec_ok: q.dnssec_ok(),
            checking_disabled: q.checking_disabled(),
            refresh: false,
        };
        match &self.dns64 {
            Some(d) if dns64::is_marked(key) => {
                if d.prefetch(&self.resolve, &self.cache, key, query, flags) {
                    self.recorder.metrics.prefetches.inc();
                }
            }
            _ => self.resolve.prefetch(key, query, flags),
        }
    }

    fn blocked(
        &self,
        q: &QueryView<'_>,
        v: Verdict,
        trigger: Trigger,
        transport: Transport,
        s: &mut Scratch,
    ) -> Fast {
        let limits = (self.max_udp, self.size_limit(q, transport));
        let answered = synth::write_blocked(
            q,
            &v,
            trigger,
            &self.policy_cfg,
            &self.sde,
            limits,
            &mut s.out,
        );
        s.decision.blocked = Some((v.into_rule(), trigger));
        if !answered {
            return Fast::Drop;
        }
        self.truncate_if_oversize(q, transport, &mut s.out);
        Fast::Reply
    }

    /// Our OPT for a reply: present when the client sent one, with our size and its DO bit.
    fn reply_edns(&self, q: &QueryView<'_>) -> Option<(u16, bool)> {
        q.edns.map(|e| (self.max_udp, e.dnssec_ok))
    }

    /// A reply with no records: the question echoed, our OPT when the client sent EDNS.
    fn header_only(&self, q: &QueryView<'_>, rcode: u8, tc: bool) -> Vec<u8> {
        dnswire::error_response(
            q.id,
            q.flags,
            rcode,
            Some((q.qname, q.qtype, q.qclass)),
            self.reply_edns(q),
            tc,
        )
    }

    /// What does not fit the transport becomes a header-only reply with TC=1, same RCODE.
    fn truncate_if_oversize(&self, q: &QueryView<'_>, transport: Transport, out: &mut Vec<u8>) {
        if out.len() > self.size_limit(q, transport) {
            *out = self.header_only(q, (dnswire::get_u16(out, 2) & 0xf) as u8, true);
        }
    }

    /// Response rate limiting over UDP: identical answers to one prefix beyond the rate are
    /// dropped or slipped out truncated.
    fn rrl(
        &self,
        q: &QueryView<'_>,
        transport: Transport,
        client: IpAddr,
        s: &mut Scratch,
    ) -> Fast {
        if transport != Transport::Udp {
            return Fast::Reply;
        }
        let rcode = (dnswire::get_u16(&s.out, 2) & 0xf) as u8;
        match self.admission.response(client, q.qname, q.qtype, rcode) {
            Gate::Pass | Gate::Refuse => Fast::Reply,
            Gate::Drop => Fast::Drop,
            Gate::Truncate => {
                s.out = self.header_only(q, rcode, true);
                Fast::Reply
            }
        }
    }

    /// Fast path, else resolve; the answer is left in `s.out`. False = send nothing.
    pub async fn answer_with(
        &self,
        pkt: &[u8],
        transport: Transport,
        client: IpAddr,
        snap: &Snapshot,
        s: &mut Scratch,
    ) -> bool {
        match self.answer_fast(pkt, transport, client, snap, s) {
            Fast::Reply => true,
            Fast::Drop => false,
            Fast::Miss => self.resolve_miss(pkt, transport, client, snap, s).await,
        }
    }

    /// The rest of the path after `answer_fast` said `Fast::Miss` for this packet (with `s.key`,
    /// `s.name` and `s.decision.client` as it left them): admission and query policy are not
    /// run again.
    pub async fn resolve_miss(
        &self,
        pkt: &[u8],
        transport: Transport,
        client: IpAddr,
        snap: &Snapshot,
        s: &mut Scratch,
    ) -> bool {
        let Ok(q) = dnswire::parse_query(pkt) else {
            return false;
        };
        let Some(query) = question_of(&q) else {
            s.out =
                dnswire::error_response(q.id, q.flags, dnswire::RCODE_FORMERR, None, None, false);
            return true;
        };
        let who = s.decision.client;
        let exempt = matches!(snap.match_name_for(&s.name, who), Some(Verdict::Allow(_)));
        let flags = ClientFlags {
            dnssec_ok: q.dnssec_ok(),
            checking_disabled: q.checking_disabled(),
            refresh: false,
        };
        let outcome = match &self.dns64 {
            Some(d) if dns64::is_marked(&s.key) => {
                d.resolve(&self.resolve, &self.cache, &s.key, query, flags)
                    .await
            }
            _ => self.resolve.resolve(&s.key, query, flags).await,
        };
        match outcome {
            Outcome::Answer { answer, stale } => {
                s.decision.stale = stale;
                if !exempt {
                    if let Some((v, trigger)) = response_verdict(snap, &answer, who) {
                        return self.blocked(&q, v, trigger, transport, s) == Fast::Reply;
                    }
                }
                answer.render(
                    &mut s.out,
                    q.id,
                    q.flags,
                    q.qname,
                    Instant::now(),
                    stale,
                    q.wants_ad(),
                );
                self.finish(&q, transport, &mut s.out, &[]);
                s.decision.answer = Some(answer);
                return self.rrl(&q, transport, client, s) == Fast::Reply;
            }
            Outcome::Failed(ede) => {
                s.out = dnswire::error_response(
                    q.id,
                    q.flags,
                    dnswire::RCODE_SERVFAIL,
                    Some((q.qname, q.qtype, q.qclass)),
                    None,
                    false,
                );
                let option = ede
                    .map(|(code, text)| dnswire::ede_option(code, &text))
                    .unwrap_or_default();
                self.finish(&q, transport, &mut s.out, &option);
            }
        }
        true
    }

    /// Adds our OPT when the client sent one, and truncates (TC) what does not fit over UDP.
    fn finish(&self, q: &QueryView<'_>, transport: Transport, out: &mut Vec<u8>, options: &[u8]) {
        if let Some((size, dnssec_ok)) = self.reply_edns(q) {
            dnswire::append_opt(out, size, dnssec_ok, options);
        }
        self.truncate_if_oversize(q, transport, out);
    }
}

/// Response policy: every CNAME target in the chain, then every address in the answer.
/// A matching block rule blocks the whole answer (CNAME cloaking, bad address ranges).
fn response_verdict(
    snap: &Snapshot,
    answer: &CachedAnswer,
    who: ClientMatch,
) -> Option<(Verdict, Trigger)> {
    for target in answer.cname_targets.iter() {
        match snap.match_name_for(target, who) {
            Some(v) if !v.is_allow() => return Some((v, Trigger::Cname)),
            _ => {}
        }
    }
    for ip in answer.addresses.iter() {
        match snap.match_ip_for(*ip, who) {
            Some(v) if !v.is_allow() => return Some((v, Trigger::Ip)),
            _ => {}
        }
    }
    None
}

/// Admission: parse, then refuse classes and types a recursive resolver does not serve.
fn admit(pkt: &[u8]) -> Result<QueryView<'_>, Reject> {
    let q = dnswire::parse_query(pkt)?;
    let reject = |rcode| {
        Err(Reject::Error {
            id: q.id,
            flags: q.flags,
            rcode,
        })
    };
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
