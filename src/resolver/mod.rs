//! dnsward's own iterative resolver: from the root hints down to the answer, on hickory-proto's
//! message types. Parts, each in its file:
//! - `transport`: one question to one server (UDP, TCP on truncation), replies checked;
//! - `infra`: per-server RTT, timeouts, EDNS support, lameness per zone: the order servers are tried;
//! - `delegation`: the zone cuts learnt from referrals (NS names and glue);
//! - `rrcache`: RRsets, negative answers (RFC 2308, 8020) and recent failures (RFC 9520);
//! - `classify`: one reply scrubbed and read as answer, negative answer, referral or lame;
//! - `iterate`: the query strategy (QNAME minimisation, referrals, NS lookups, chains, budget).
//!
//! The DNSSEC validator sits between `iterate` and the caches: every zone's answer is judged
//! once, when it enters the cache, so a cached answer costs the same validated or not.

pub mod classify;
pub mod delegation;
pub mod error;
pub mod infra;
pub mod iterate;
pub mod rrcache;
pub mod transport;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::RecordType;
use ipnet::IpNet;

use crate::config::{DnssecMode, QnameMinimisation, ResolverConfig};
use crate::upstream::{ClientFlags, Upstream, UpstreamError};
use delegation::Delegations;
use error::ResolveError;
use infra::Infra;
use iterate::{Budget, Ctx};
use rrcache::RecordCache;

/// What the resolver needs from `[resolver]`.
#[derive(Debug, Clone)]
pub struct Options {
    pub upstream_port: u16,
    pub upstream_ipv6: bool,
    pub qname_minimisation: QnameMinimisation,
    /// Ask authoritative servers for signatures (DO=1): with `dnssec = "validate" | "process"`.
    pub dnssec_ok_upstream: bool,
    /// The client's whole budget: after this, SERVFAIL (or stale).
    pub timeout: Duration,
    pub deny_server: Vec<IpNet>,
    pub allow_server: Vec<IpNet>,
}

impl Options {
    pub fn from_config(cfg: &ResolverConfig) -> Self {
        Self {
            upstream_port: cfg.upstream_port,
            upstream_ipv6: cfg.upstream_ipv6,
            qname_minimisation: cfg.qname_minimisation,
            dnssec_ok_upstream: cfg.dnssec != DnssecMode::Off,
            timeout: Duration::from_millis(cfg.timeout_ms),
            deny_server: cfg.effective_deny_server(),
            allow_server: cfg.effective_allow_server(),
        }
    }

    /// Special-purpose and operator-denied ranges are never queried (a hostile delegation must
    /// not steer the resolver into the internal network), unless explicitly allowed.
    pub fn may_query(&self, ip: IpAddr) -> bool {
        if ip.is_ipv6() && !self.upstream_ipv6 {
            return false;
        }
        !self.deny_server.iter().any(|n| n.contains(&ip)) || self.allow_server.iter().any(|n| n.contains(&ip))
    }
}

pub struct Resolver {
    options: Options,
    delegations: Delegations,
    infra: Infra,
    cache: RecordCache,
}

impl Resolver {
    pub fn new(roots: &[IpAddr], cfg: &ResolverConfig) -> Self {
        let options = Options::from_config(cfg);
        // One server may take at most a third of the budget, so at least three get a chance.
        let per_server = (options.timeout / 3).max(Duration::from_millis(100));
        Self {
            delegations: Delegations::new(roots, cfg.cache_size / 4),
            infra: Infra::new(per_server),
            cache: RecordCache::new(cfg.cache_size, cfg.cache_min_ttl, cfg.cache_max_ttl),
            options,
        }
    }

    /// Resolves one question into the message a client gets: the chain and the final RRset,
    /// or the rcode with the SOA (and NSEC proofs) for negative answers; nothing else
    /// (minimal responses: no upstream NS or glue).
    pub async fn lookup(&self, query: &Query) -> Result<Message, ResolveError> {
        let budget = Budget::new(Instant::now() + self.options.timeout);
        let ctx = Ctx::new(budget.clone());
        let (name, qtype) = (query.name().clone(), query.query_type());
        let result = match tokio::time::timeout(self.options.timeout, self.resolve_chain(&ctx, name.clone(), qtype)).await {
            Err(_) => Err(ResolveError::Deadline(self.options.timeout)),
            Ok(r) => r,
        };
        tracing::debug!(%query, queries = budget.queries_spent(), ok = result.is_ok(), "resolved");
        let resolution = match result {
            Ok(r) => r,
            Err(e) => {
                if !matches!(e, ResolveError::CachedFailure) {
                    self.cache.put_failure(&name, qtype);
                }
                return Err(e);
            }
        };
        let mut m = Message::response(0, OpCode::Query);
        m.metadata.recursion_available = true;
        m.metadata.response_code = resolution.rcode;
        m.metadata.authentic_data = resolution.secure;
        m.add_query(query.clone());
        m.answers = resolution.answers;
        for r in &mut m.answers {
            r.ttl = self.cache.clamp(r.ttl);
        }
        let negative = resolution.rcode == ResponseCode::NXDomain
            || !m.answers.iter().any(|r| r.name == name && (r.record_type() == qtype || qtype == RecordType::ANY));
        if negative {
            m.authorities = resolution.authority;
        }
        Ok(m)
    }

    pub fn cached_records(&self) -> usize {
        self.cache.len()
    }

    pub fn cached_zone_cuts(&self) -> usize {
        self.delegations.len()
    }
}

#[async_trait]
impl Upstream for Resolver {
    async fn resolve(&self, query: Query, _flags: ClientFlags) -> Result<Message, UpstreamError> {
        Ok(self.lookup(&query).await?)
    }
}
