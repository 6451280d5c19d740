//! Where answers come from on a cache miss: dnsward's own iterative resolver (`crate::resolver`,
//! from the root hints) or forwarders. Both return a whole response `Message`; negative answers (NXDOMAIN, NODATA) are
//! normal `Ok` messages with the SOA in the authority section, so the cache can keep them.

pub mod forward;
pub mod roots;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hickory_proto::op::{Message, Query};

use crate::config::{Config, Mode};

/// The client's DNSSEC bits that change what upstream work is done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFlags {
    /// DO: the client wants signatures.
    pub dnssec_ok: bool,
    /// CD: the client validates itself; return data without validating it.
    pub checking_disabled: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream answered within {0:?}")]
    Timeout(Duration),
    #[error("upstream failure: {0}")]
    Failed(String),
    #[error(transparent)]
    Resolve(#[from] crate::resolver::error::ResolveError),
}

impl UpstreamError {
    /// The Extended DNS Error (RFC 8914) a client should see with its SERVFAIL.
    pub fn ede(&self) -> Option<(u16, String)> {
        match self {
            UpstreamError::Timeout(_) => Some((22, self.to_string())),
            UpstreamError::Failed(_) => None,
            UpstreamError::Resolve(e) => e.ede().map(|code| (code, e.to_string())),
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

/// Builds the upstream the config asks for.
pub fn from_config(config: &Config) -> Result<Arc<dyn Upstream>, String> {
    let timeout = Duration::from_millis(config.resolver.timeout_ms);
    match config.resolver.mode {
        Mode::Recursive => {
            let roots = config.root_addresses()?;
            let resolver =
                crate::resolver::Resolver::new(&roots, &config.resolver, &config.base_dir)
                    .map_err(|e| format!("resolver.trust_anchor: {e}"))?;
            Ok(Arc::new(resolver))
        }
        Mode::Forward => Ok(Arc::new(forward::ForwardUpstream::new(
            config.resolver.forwarders.clone(),
            timeout,
        ))),
    }
}
