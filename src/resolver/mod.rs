//! dnsward's own iterative resolver: from the root hints down to the answer, on hickory-proto's
//! message types. Parts, each in its file:
//! - `infra`: per-server RTT, timeouts, EDNS support, lameness per zone: the order servers are tried;
//! - `delegation`: the zone cuts learnt from referrals (NS names and glue);
//! - `rrcache`: RRsets, negative answers (RFC 2308, 8020) and recent failures (RFC 9520);
//! - `classify`: one reply scrubbed and read as answer, negative answer, referral or lame;
//! - `iterate`: the query strategy (QNAME minimisation, referrals, NS lookups, chains, budget).
//!
//! The DNSSEC validator sits between `iterate` and the caches: every zone's answer is judged
//! once, when it enters the cache, so a cached answer costs the same validated or not.

pub mod classify;
pub mod config;
pub mod delegation;
pub mod error;
pub mod infra;
pub mod iterate;
pub mod roots;
pub mod rrcache;
pub mod validate;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, OpCode, Query};
use hickory_proto::rr::Name;
use ipnet::IpNet;

use crate::dnssec::aggressive::DenialCache;
use crate::dnssec::{DnssecError, Limits, TrustAnchorSet, Validator};
use crate::upstream::{ClientFlags, Upstream, UpstreamError};
use config::{DnssecMode, QnameMinimisation, ResolverConfig};
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
        !self.deny_server.iter().any(|n| n.contains(&ip))
            || self.allow_server.iter().any(|n| n.contains(&ip))
    }
}

pub struct Resolver {
    options: Options,
    /// `dnssec = "validate"`: judges every zone's answer as it enters the caches.
    validator: Option<Arc<Validator>>,
    /// `aggressive_nsec` (with a validator): validated NSEC/NSEC3 records answer later
    /// questions in their spans (RFC 8198).
    denials: Option<DenialCache>,
    delegations: Delegations,
    infra: Infra,
    cache: RecordCache,
}

impl Resolver {
    /// `validator`: `Some` with `dnssec = "validate"` (see `crate::dnssec::Validator`).
    pub fn new(roots: &[IpAddr], cfg: &ResolverConfig, validator: Option<Arc<Validator>>) -> Self {
        let options = Options::from_config(cfg);
        // One server may take at most a third of the budget, so at least three get a chance.
        let per_server = (options.timeout / 3).max(Duration::from_millis(100));
        let denials = validator
            .as_ref()
            .filter(|_| cfg.aggressive_nsec)
            .map(|v| DenialCache::new(v.limits().nsec3_max_iterations));
        Self {
            validator,
            denials,
            delegations: Delegations::new(roots, cfg.cache_size / 4),
            infra: Infra::new(per_server),
            cache: RecordCache::new(cfg.cache_size, cfg.cache_min_ttl, cfg.cache_max_ttl),
            options,
        }
    }

    /// The DNSSEC validator, when `dnssec = "validate"` (its negative trust anchors can change
    /// at run time).
    pub fn validator(&self) -> Option<&Arc<Validator>> {
        self.validator.as_ref()
    }

    /// The name servers of the zone cut at exactly `zone` as the parent's referral gave them
    /// (NS names and glue), once a resolution has crossed that cut; `None` otherwise. For
    /// `dnsward audit`, which compares them with the zone's own NS set.
    pub fn referral(&self, zone: &Name) -> Option<Vec<delegation::NameServer>> {
        let d = self.delegations.closest(zone);
        (!d.zone.is_root() && d.zone == zone.to_lowercase()).then(|| d.servers.clone())
    }

    /// Resolves one question into the message a client gets: the chain and the final RRset,
    /// or the rcode with the SOA (and NSEC proofs) for negative answers; nothing else
    /// (minimal responses: no upstream NS or glue).
    pub async fn lookup(&self, query: &Query, flags: ClientFlags) -> Result<Message, ResolveError> {
        let budget = Budget::new(Instant::now() + self.options.timeout);
        let mut ctx = Ctx::new(budget.clone(), flags.checking_disabled);
        ctx.refresh = flags.refresh;
        let (name, qtype) = (query.name().clone(), query.query_type());
        let result = match tokio::time::timeout(
            self.options.timeout,
            self.resolve_chain(&ctx, name.clone(), qtype),
        )
        .await
        {
            Err(_) => Err(ResolveError::Deadline(self.options.timeout)),
            Ok(r) => r,
        };
        tracing::debug!(%query, queries = budget.queries_spent(), ok = result.is_ok(), "resolved");
        let resolution = match result {
            Ok(r) => r,
            Err(e) => {
                // Bogus answers are remembered by the validator (per zone), and a client with
                // CD=1 must still get the data: not in the failure cache.
                if !matches!(e, ResolveError::CachedFailure | ResolveError::Bogus { .. }) {
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
        // Negative answers: the SOA and proofs; positive ones: only the NSEC/NSEC3 proving a
        // wildcard expansion (stripped with the RRSIGs for clients without DO).
        m.authorities = resolution.authority;
        Ok(m)
    }
}

#[async_trait]
impl Upstream for Resolver {
    async fn resolve(&self, query: Query, flags: ClientFlags) -> Result<Message, UpstreamError> {
        self.lookup(&query, flags)
            .await
            .map_err(|e| UpstreamError::Resolution {
                ede: e.ede(),
                source: Box::new(e),
            })
    }

    fn validator(&self) -> Option<&Arc<Validator>> {
        Resolver::validator(self)
    }
}

/// The DNSSEC validator for `dnssec = "validate"`: the configured trust anchors (or the
/// built-in root keys) and negative trust anchors.
pub fn validator_from_config(
    cfg: &ResolverConfig,
    base_dir: &std::path::Path,
) -> Result<Option<Arc<Validator>>, DnssecError> {
    if cfg.dnssec != DnssecMode::Validate {
        return Ok(None);
    }
    let anchors = match &cfg.trust_anchor {
        Some(paths) => {
            let paths: Vec<std::path::PathBuf> =
                paths.to_vec().iter().map(|p| base_dir.join(p)).collect();
            TrustAnchorSet::from_files(&paths)?
        }
        None => TrustAnchorSet::default(),
    };
    let ntas = cfg
        .negative_trust_anchors
        .iter()
        .filter_map(|z| Name::from_ascii(z).ok())
        .collect();
    let limits = Limits {
        sha1: cfg.dnssec_sha1,
        ..Limits::default()
    };
    Ok(Some(Arc::new(Validator::new(anchors, ntas, limits))))
}
