//! The query strategy: from the closest known zone cut down to the answer, one referral at a
//! time, with QNAME minimisation, server selection by the infra cache, NS names resolved when
//! glue is missing, and CNAME/DNAME chains followed across zones. Every step spends from one
//! budget per client question, so a hostile zone cannot make one question expensive.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Query, ResponseCode};
use hickory_proto::rr::rdata::CNAME;
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::classify::{classify, Classified, ZoneAnswer, MAX_CHAIN};
use super::config::QnameMinimisation;
use super::delegation::{Delegation, NameServer};
use super::error::{ExchangeError, ResolveError};
use super::infra::Failure;
use super::rrcache::Cached;
use super::validate::Verdict;
use super::Resolver;
use crate::transport::{self, QueryFlags};

/// Upstream queries one client question may cause, NS lookups and chains included.
pub const MAX_QUERIES_PER_QUESTION: u32 = 100;
/// Referrals followed while descending for one name.
pub const MAX_REFERRALS: usize = 30;
/// NS names resolved (for missing glue) per client question.
pub const MAX_NS_LOOKUPS: u32 = 20;
/// NS names resolved at once for one zone cut.
const NS_LOOKUPS_AT_ONCE: usize = 3;
/// Nesting of NS-name lookups (the NS of the NS of the NS ...).
const MAX_NS_DEPTH: usize = 4;
/// Minimised queries per name before the full name is sent (RFC 9156 MAX_MINIMISE_COUNT).
const MAX_MINIMISE_STEPS: u8 = 10;
/// Sends to one address per zone question: a lost datagram or a busy server gets another
/// chance once every other address had one (a server that answered uselessly gets none).
const MAX_SENDS_PER_ADDRESS: u8 = 3;

/// What one client question may still spend; shared by the NS lookups it starts.
pub struct Budget {
    pub deadline: Instant,
    queries: AtomicU32,
    ns_lookups: AtomicU32,
}

impl Budget {
    pub fn new(deadline: Instant) -> Arc<Self> {
        Arc::new(Self {
            deadline,
            queries: AtomicU32::new(0),
            ns_lookups: AtomicU32::new(0),
        })
    }

    pub fn queries_spent(&self) -> u32 {
        self.queries.load(Ordering::Relaxed)
    }

    fn spend_query(&self) -> Result<(), ResolveError> {
        if self.queries.fetch_add(1, Ordering::Relaxed) >= MAX_QUERIES_PER_QUESTION {
            return Err(ResolveError::QueryBudget(MAX_QUERIES_PER_QUESTION));
        }
        Ok(())
    }

    fn check_deadline(&self, timeout: std::time::Duration) -> Result<(), ResolveError> {
        if Instant::now() >= self.deadline {
            return Err(ResolveError::Deadline(timeout));
        }
        Ok(())
    }
}

/// One resolution under way: its budget and the NS names being resolved above it (for loops).
#[derive(Clone)]
pub struct Ctx {
    pub budget: Arc<Budget>,
    ns_stack: Vec<Name>,
    /// The client set CD: bogus data is returned to it unvalidated (RFC 4035 3.2.2).
    pub checking_disabled: bool,
    /// A prefetch: the question's own chain is asked again, not taken from the record cache
    /// (where it is as close to expiry as the answer being refreshed).
    pub refresh: bool,
}

impl Ctx {
    pub fn new(budget: Arc<Budget>, checking_disabled: bool) -> Self {
        Self {
            budget,
            ns_stack: Vec::new(),
            checking_disabled,
            refresh: false,
        }
    }
}

/// The final result for a question: rcode, the whole chain, and the negative proof.
#[derive(Debug, Clone)]
pub struct Resolution {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    /// Every part of the chain was validated as DNSSEC-secure.
    pub secure: bool,
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Resolver {
    /// Resolves (`qname`, `qtype`), following CNAMEs and DNAMEs across zones.
    pub(super) fn resolve_chain<'a>(
        &'a self,
        ctx: &'a Ctx,
        qname: Name,
        qtype: RecordType,
    ) -> BoxFuture<'a, Result<Resolution, ResolveError>> {
        Box::pin(async move {
            let mut answers = Vec::new();
            let mut name = qname;
            let mut seen = HashSet::new();
            let mut secure = true;
            let done = |rcode, answers, authority, secure| {
                Ok(Resolution {
                    rcode,
                    answers,
                    authority,
                    secure,
                })
            };
            for _ in 0..MAX_CHAIN {
                if !seen.insert(name.to_lowercase()) {
                    return Err(ResolveError::ChainLoop(name));
                }
                let cached = if ctx.refresh && ctx.ns_stack.is_empty() {
                    None
                } else {
                    self.cache.get(&name, qtype)
                };
                if let Some((_, part_secure)) = &cached {
                    secure &= *part_secure;
                }
                match cached.map(|c| c.0) {
                    Some(Cached::Failed) => return Err(ResolveError::CachedFailure),
                    Some(Cached::Records(rs)) => {
                        let target = cname_target(&rs).filter(|_| qtype != RecordType::CNAME);
                        answers.extend(rs);
                        match target {
                            Some(t) => {
                                name = t;
                                continue;
                            }
                            None => {
                                return done(ResponseCode::NoError, answers, Vec::new(), secure)
                            }
                        }
                    }
                    Some(Cached::NoData(auth)) => {
                        return done(ResponseCode::NoError, answers, auth, secure)
                    }
                    Some(Cached::NxDomain(auth)) => {
                        return done(ResponseCode::NXDomain, answers, auth, secure)
                    }
                    None => {}
                }
                if let Some(denied) = self.cached_denial(ctx, &name, qtype) {
                    return done(denied.rcode, answers, denied.authority, secure);
                }
                let (mut zone_answer, zone) = self.iterate(ctx, &name, qtype).await?;
                let validation_zone = zone_answer.validation_zone(&zone);
                let verdict = self
                    .judge(ctx, &name, qtype, &zone_answer, &validation_zone)
                    .await?;
                if verdict == Verdict::Secure {
                    let now = crate::dnssec::now_unix();
                    crate::dnssec::cap_ttls_at_signature_expiry(&mut zone_answer.records, now);
                    crate::dnssec::cap_ttls_at_signature_expiry(&mut zone_answer.authority, now);
                    self.remember_denial(&zone_answer, now);
                }
                let part_secure = verdict == Verdict::Secure;
                secure &= part_secure;
                // A client's final RRset lives in the packet cache already; the record cache keeps
                // what the iterator itself reuses: chains, negatives, name-server addresses.
                if verdict != Verdict::BogusUnchecked {
                    self.cache_answer(
                        &name,
                        qtype,
                        &zone_answer,
                        !ctx.ns_stack.is_empty(),
                        part_secure,
                    );
                }
                answers.extend(zone_answer.records);
                match zone_answer.continue_at {
                    Some(next) => name = next,
                    None => return done(zone_answer.rcode, answers, zone_answer.authority, secure),
                }
            }
            Err(ResolveError::ChainTooLong(MAX_CHAIN))
        })
    }

    /// A negative answer proven by validated NSEC/NSEC3 records already cached (RFC 8198).
    fn cached_denial(
        &self,
        ctx: &Ctx,
        name: &Name,
        qtype: RecordType,
    ) -> Option<crate::dnssec::aggressive::Synthesized> {
        if ctx.refresh {
            return None;
        }
        let denied = self
            .denials
            .as_ref()?
            .synthesize(name, qtype, crate::dnssec::now_unix())?;
        tracing::trace!(%name, %qtype, rcode = %denied.rcode, "answered from cached NSEC/NSEC3");
        Some(denied)
    }

    /// Keeps the denial records of a secure negative answer for `cached_denial`.
    fn remember_denial(&self, answer: &ZoneAnswer, now: u32) {
        let Some(denials) = &self.denials else {
            return;
        };
        let negative = answer.continue_at.is_none()
            && (answer.rcode == ResponseCode::NXDomain || answer.records.is_empty());
        if !negative {
            return;
        }
        if let Some(soa) = answer
            .authority
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
        {
            denials.remember(&soa.name, &answer.authority, now);
        }
    }

    /// Descends from the closest known zone cut to the zone that answers for `name`.
    /// Returns that zone's answer and the zone's name.
    pub(super) async fn iterate(
        &self,
        ctx: &Ctx,
        name: &Name,
        qtype: RecordType,
    ) -> Result<(ZoneAnswer, Name), ResolveError> {
        // A DS record lives on the parent side of a zone cut.
        let start = if qtype == RecordType::DS && !name.is_root() {
            name.base_name()
        } else {
            name.clone()
        };
        let mut deleg = self.delegations.closest(&start);
        let mut minimise = self.options.qname_minimisation != QnameMinimisation::Off;
        let relaxed = self.options.qname_minimisation == QnameMinimisation::Relaxed;
        let mut labels = deleg.zone.num_labels() + 1;
        let mut steps = 0u8;
        for _ in 0..MAX_REFERRALS {
            let full = !minimise || labels >= name.num_labels() || steps >= MAX_MINIMISE_STEPS;
            let (ask_name, ask_type) = if full {
                (name.clone(), qtype)
            } else {
                (name.trim_to(labels as usize), RecordType::A)
            };
            let classified = match self.ask_zone(ctx, &deleg, &ask_name, ask_type).await {
                Ok(c) => c,
                Err(ResolveError::ServersFailed { .. }) if !full && relaxed => {
                    // No server would answer the minimised question: ask the full one.
                    minimise = false;
                    continue;
                }
                Err(e) => return Err(e),
            };
            match classified {
                Classified::Referral { zone, servers, ttl } => {
                    deleg = self.delegations.insert(Delegation::new(
                        zone,
                        servers,
                        self.cache.clamp(ttl),
                    ));
                    labels = deleg.zone.num_labels() + 1;
                }
                Classified::Answer(answer) if full => {
                    let apex = answer.apex(&deleg.zone);
                    return Ok((answer, apex));
                }
                Classified::Answer(answer) if answer.rcode == ResponseCode::NXDomain => {
                    if !relaxed {
                        // Strict: an NXDOMAIN for an ancestor means the name does not exist.
                        return Ok((answer, deleg.zone.clone()));
                    }
                    // Relaxed: broken servers say NXDOMAIN for empty non-terminals.
                    minimise = false;
                }
                Classified::Answer(answer) => {
                    // The same servers serve a child zone at the minimised name (its SOA says
                    // so): a zone cut without a referral. Otherwise no cut: one label deeper.
                    let apex = answer.apex(&deleg.zone);
                    if apex == ask_name && apex != deleg.zone {
                        let ttl = self
                            .cache
                            .clamp(super::rrcache::negative_ttl(&answer.authority));
                        deleg = self.delegations.insert(Delegation::new(
                            apex,
                            deleg.servers.clone(),
                            ttl,
                        ));
                    }
                    labels += 1;
                    steps += 1;
                }
                Classified::Loop(at) => return Err(ResolveError::ChainLoop(at)),
                Classified::Lame => unreachable!("ask_zone tries the next server on lame answers"),
            }
        }
        Err(ResolveError::ReferralLimit(MAX_REFERRALS))
    }

    /// Asks the servers of one zone cut, best first, until one gives a usable reply.
    async fn ask_zone(
        &self,
        ctx: &Ctx,
        deleg: &Delegation,
        qname: &Name,
        qtype: RecordType,
    ) -> Result<Classified, ResolveError> {
        let query = Query::query(qname.clone(), qtype);
        let zone = &deleg.zone;
        // Sends per address so far; MAX_SENDS_PER_ADDRESS once it answered uselessly.
        let mut tried: HashMap<IpAddr, u8> = HashMap::new();
        let mut looked_up: HashSet<Name> = HashSet::new();
        let mut found: Vec<IpAddr> = Vec::new();
        loop {
            ctx.budget.check_deadline(self.options.timeout)?;
            let mut candidates = self.known_addresses(deleg, &found, &tried);
            // Every known address had its first chance: find more (NS names without glue)
            // before sending anything to the same servers again.
            if candidates.iter().all(|a| tried.contains_key(a)) {
                let pending: Vec<Name> = deleg
                    .servers
                    .iter()
                    .filter(|s| {
                        s.addrs.is_empty() && !s.name.is_root() && !looked_up.contains(&s.name)
                    })
                    // A name inside the zone without glue can only be found through the zone itself.
                    .filter(|s| !zone.zone_of(&s.name))
                    .take(NS_LOOKUPS_AT_ONCE)
                    .map(|s| s.name.clone())
                    .collect();
                if !pending.is_empty() {
                    looked_up.extend(pending.iter().cloned());
                    let lookups = pending.iter().map(|ns| self.ns_addresses(ctx, ns));
                    for addrs in futures_util::future::join_all(lookups).await {
                        found.extend(addrs);
                    }
                    continue;
                }
                if candidates.is_empty() {
                    return Err(ResolveError::ServersFailed {
                        zone: zone.clone(),
                        tried: tried.len(),
                    });
                }
            }
            self.infra.order(zone, &mut candidates);
            // Addresses not tried yet first; then the ones tried least (stable: RTT order kept).
            candidates.sort_by_key(|a| tried.get(a).copied().unwrap_or(0));
            let addr = candidates[0];
            *tried.entry(addr).or_default() += 1;
            ctx.budget.spend_query()?;
            let edns = self.infra.uses_edns(addr);
            let left = ctx
                .budget
                .deadline
                .saturating_duration_since(Instant::now());
            let wait = self.infra.wait_for(addr).min(left);
            let flags = QueryFlags {
                edns,
                dnssec_ok: edns && self.options.dnssec_ok_upstream,
                ..QueryFlags::default()
            };
            let server = SocketAddr::new(addr, self.options.upstream_port);
            let reply = match transport::exchange(server, &query, flags, wait).await {
                Ok(r) => r,
                Err(ExchangeError::Timeout) => {
                    tracing::debug!(%server, %query, "upstream timeout");
                    self.infra.failed(addr, zone, Failure::Timeout);
                    continue;
                }
                Err(e) => {
                    tracing::debug!(%server, %query, error = %e, "upstream exchange failed");
                    self.infra.failed(addr, zone, Failure::Useless);
                    tried.insert(addr, MAX_SENDS_PER_ADDRESS);
                    continue;
                }
            };
            self.infra.answered(addr, reply.rtt);
            let rcode = reply.message.metadata.response_code;
            if edns && matches!(rcode, ResponseCode::FormErr | ResponseCode::NotImp) {
                // RFC 6891 7: a server that does not understand EDNS; ask it again without.
                self.infra.mark_no_edns(addr);
                *tried.entry(addr).or_default() -= 1;
                continue;
            }
            match classify(&reply.message, zone, qname, qtype) {
                Classified::Lame => {
                    tracing::debug!(%server, %query, %rcode, "lame or failing server");
                    self.infra.failed(addr, zone, Failure::Useless);
                    tried.insert(addr, MAX_SENDS_PER_ADDRESS);
                }
                other => return Ok(other),
            }
        }
    }

    /// Addresses of the zone cut's servers we can use now: glue, cached addresses of NS names,
    /// addresses found by lookups; never an address tried already or one the operator denied.
    fn known_addresses(
        &self,
        deleg: &Delegation,
        found: &[IpAddr],
        tried: &HashMap<IpAddr, u8>,
    ) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = Vec::new();
        let mut push = |ip: IpAddr| {
            let spent = tried.get(&ip).is_some_and(|n| *n >= MAX_SENDS_PER_ADDRESS);
            if !spent && !out.contains(&ip) && self.options.may_query(ip) {
                out.push(ip);
            }
        };
        for s in &deleg.servers {
            s.addrs.iter().copied().for_each(&mut push);
            if s.addrs.is_empty() && !s.name.is_root() {
                for ip in self.cached_addresses(s) {
                    push(ip);
                }
            }
        }
        found.iter().copied().for_each(push);
        out
    }

    fn cached_addresses(&self, server: &NameServer) -> Vec<IpAddr> {
        let mut out = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            if let Some((Cached::Records(rs), _)) = self.cache.get(&server.name, rtype) {
                out.extend(addresses(&rs));
            }
        }
        out
    }

    /// Resolves a name server's name (A, and AAAA when IPv6 is used), within the budget.
    async fn ns_addresses(&self, ctx: &Ctx, ns: &Name) -> Vec<IpAddr> {
        if ctx.ns_stack.iter().any(|n| n == ns) || ctx.ns_stack.len() >= MAX_NS_DEPTH {
            tracing::debug!(%ns, "NS lookup loop or depth limit");
            return Vec::new();
        }
        if ctx.budget.ns_lookups.fetch_add(1, Ordering::Relaxed) >= MAX_NS_LOOKUPS {
            return Vec::new();
        }
        let mut child = ctx.clone();
        child.ns_stack.push(ns.clone());
        let v4 = self.resolve_chain(&child, ns.clone(), RecordType::A);
        let mut out = Vec::new();
        if self.options.upstream_ipv6 {
            let (a, aaaa) = futures_util::future::join(
                v4,
                self.resolve_chain(&child, ns.clone(), RecordType::AAAA),
            )
            .await;
            for r in [a, aaaa].into_iter().flatten() {
                out.extend(addresses(&r.answers));
            }
        } else if let Ok(r) = v4.await {
            out.extend(addresses(&r.answers));
        }
        out
    }

    /// Puts a zone's answer into the record cache: each RRset of the chain with the RRSIGs that
    /// cover it, and the negative answer for the chain's last name.
    fn cache_answer(
        &self,
        qname: &Name,
        qtype: RecordType,
        answer: &ZoneAnswer,
        keep_final: bool,
        secure: bool,
    ) {
        let mut sets: Vec<((Name, RecordType), Vec<Record>)> = Vec::new();
        for r in &answer.records {
            let key = (r.name.clone(), covered_type(r));
            match sets.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(r.clone()),
                None => sets.push((key, vec![r.clone()])),
            }
        }
        for ((name, rtype), records) in sets {
            let is_final = rtype == qtype && name == answer.last;
            if (keep_final || !is_final)
                && records.iter().any(|r| r.record_type() != RecordType::RRSIG)
            {
                self.cache.put_rrset(&name, rtype, records, secure);
            }
        }
        if answer.continue_at.is_none()
            && answer
                .records
                .iter()
                .all(|r| !(r.name == answer.last && covered_type(r) == qtype))
        {
            match answer.rcode {
                ResponseCode::NXDomain => {
                    self.cache
                        .put_nxdomain(&answer.last, answer.authority.clone(), secure)
                }
                ResponseCode::NoError => {
                    let name = if answer.records.is_empty() {
                        qname
                    } else {
                        &answer.last
                    };
                    self.cache
                        .put_nodata(name, qtype, answer.authority.clone(), secure)
                }
                _ => {}
            }
        }
    }
}

/// The type an RRSIG covers, or the record's own type.
fn covered_type(r: &Record) -> RecordType {
    match &r.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => sig.input().type_covered,
        _ => r.record_type(),
    }
}

fn cname_target(records: &[Record]) -> Option<Name> {
    records.iter().find_map(|r| match &r.data {
        RData::CNAME(CNAME(t)) => Some(t.clone()),
        _ => None,
    })
}

fn addresses(records: &[Record]) -> Vec<IpAddr> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}
