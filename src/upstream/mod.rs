//! Where answers come from on a cache miss: the `Upstream` trait, which dnsward's own iterative
//! resolver (from the root hints) implements, and the forwarder beside it.
//! Both return a whole response `Message`; negative answers (NXDOMAIN, NODATA) are normal `Ok`
//! messages with the SOA in the authority section, so the cache can keep them.
//!
//! Dependency rule: this module knows neither the resolver nor the config; `instance` builds
//! the upstream the config asks for.

pub mod forward;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, Query};

/// The client's DNSSEC bits that change what upstream work is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFlags {
    /// DO: the client wants signatures.
    pub dnssec_ok: bool,
    /// CD: the client validates itself; return data without validating it.
    pub checking_disabled: bool,
    /// A prefetch: the answer is in the cache and about to expire, so records cached along
    /// the way must not be reused for the question's own chain.
    pub refresh: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
    #[error("upstream failure: {0}")]
    Failed(String),
    /// DNSSEC validation failed (`dnssec = "validate"`): the client gets SERVFAIL with this EDE.
    #[error("DNSSEC validation failed: {}", .0.reason)]
    Bogus(crate::dnssec::Bogus),
    /// The iterative resolver's failure, with the EDE code that describes it best.
    #[error("{source}")]
    Resolution {
        ede: Option<u16>,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl UpstreamError {
    /// The Extended DNS Error (RFC 8914) a client should see with its SERVFAIL.
    pub fn ede(&self) -> Option<(u16, String)> {
        match self {
            UpstreamError::Timeout(_) => Some((22, self.to_string())),
            UpstreamError::Failed(_) => None,
            UpstreamError::Bogus(b) => Some((b.ede, b.reason.clone())),
            UpstreamError::Resolution { ede, source } => ede.map(|code| (code, source.to_string())),
        }
    }
}

#[async_trait]
pub trait Upstream: Send + Sync + 'static {
    /// Resolves one question. Must not take (much) longer than the configured timeout.
    /// `flags` are the client's DO and CD bits. A message with AD set is DNSSEC-secure.
    async fn resolve(&self, query: Query, flags: ClientFlags) -> Result<Message, UpstreamError>;

    /// The DNSSEC validator, when this upstream validates (the admin API changes its negative
    /// trust anchors).
    fn validator(&self) -> Option<&Arc<crate::dnssec::Validator>> {
        None
    }
}
