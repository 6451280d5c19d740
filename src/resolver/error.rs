//! Why a resolution failed. The client sees SERVFAIL (or a stale answer) for every one of these;
//! the text goes to the debug log and, where it helps the operator, into the EDE text.

use std::time::Duration;

use hickory_proto::rr::Name;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ResolveError {
    #[error("no answer within the {0:?} deadline")]
    Deadline(Duration),
    #[error("gave up after {0} upstream queries (the per-question budget)")]
    QueryBudget(u32),
    #[error("more than {0} referrals")]
    ReferralLimit(usize),
    #[error("CNAME/DNAME chain longer than {0}")]
    ChainTooLong(usize),
    #[error("CNAME/DNAME loop at {0}")]
    ChainLoop(Name),
    #[error("no name server of {zone} gave a usable answer ({tried} addresses tried)")]
    ServersFailed { zone: Name, tried: usize },
    #[error("dependency loop or depth limit while resolving the name servers of {0}")]
    NsLoop(Name),
    #[error("a recent resolution of this question failed (cached failure)")]
    CachedFailure,
    #[error("DNSSEC validation failed: {reason}")]
    Bogus { ede: u16, reason: String },
}

impl ResolveError {
    /// The RFC 8914 info code that describes this failure best, if any.
    pub fn ede(&self) -> Option<u16> {
        match self {
            ResolveError::Bogus { ede, .. } => Some(*ede),
            ResolveError::Deadline(_) | ResolveError::ServersFailed { .. } => Some(22), // No Reachable Authority
            ResolveError::CachedFailure => Some(13), // Cached Error
            _ => None,
        }
    }
}

pub use crate::transport::ExchangeError;
