//! Forwarding to configured resolvers, in order, failing over on timeout, SERVFAIL or REFUSED.
//!
//! With a validator (`dnssec = "validate"`) a forwarder is not trusted: every question goes out
//! with DO=1 and CD=1 (so that a validating forwarder passes on what it would reject, and we
//! see the signatures), and the answer is judged exactly as an iterated one (RFC 4035 §4.9.3):
//! secure gets AD, bogus becomes SERVFAIL with the validator's EDE. The DS and DNSKEY records
//! the chain of trust needs are asked of the same forwarders (`ForwarderFetcher`). The
//! forwarder's own AD bit is never believed then.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

use super::{ClientFlags, Upstream, UpstreamError};
use crate::dnssec::{
    cap_ttls_at_signature_expiry, now_unix, FetchError, Fetched, KeyFetcher, Security, Validator,
};
use crate::transport::{self, QueryFlags};

pub struct ForwardUpstream {
    forwarders: Vec<SocketAddr>,
    timeout: Duration,
    validator: Option<Arc<Validator>>,
}

/// Why no forwarder gave a usable answer.
#[derive(Debug)]
enum ForwardFailure {
    /// No forwarder answered in time.
    Timeout,
    /// Every forwarder asked failed; one line per forwarder.
    Failed(Vec<String>),
}

impl ForwardUpstream {
    /// `validator`: `Some` with `dnssec = "validate"`.
    pub fn new(
        forwarders: Vec<SocketAddr>,
        timeout: Duration,
        validator: Option<Arc<Validator>>,
    ) -> Self {
        Self {
            forwarders,
            timeout,
            validator,
        }
    }

    /// Asks the forwarders in order until one gives an answer other than SERVFAIL or REFUSED.
    /// Each forwarder gets an equal share of what is left before `deadline`, so the last one
    /// still has a chance.
    async fn exchange(
        &self,
        query: &Query,
        flags: QueryFlags,
        deadline: Instant,
    ) -> Result<Message, ForwardFailure> {
        let mut errors = Vec::new();
        for (i, addr) in self.forwarders.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let share = left / (self.forwarders.len() - i) as u32;
            match transport::exchange(*addr, query, flags, share).await {
                Ok(reply)
                    if !matches!(
                        reply.message.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    return Ok(reply.message)
                }
                Ok(reply) => {
                    errors.push(format!("{addr}: {}", reply.message.metadata.response_code))
                }
                Err(e) => errors.push(format!("{addr}: {e}")),
            }
        }
        if errors.is_empty() || errors.iter().all(|e| e.ends_with("timed out")) {
            Err(ForwardFailure::Timeout)
        } else {
            Err(ForwardFailure::Failed(errors))
        }
    }

    fn query_flags(&self, client: ClientFlags) -> QueryFlags {
        let validating = self.validator.is_some();
        QueryFlags {
            edns: true,
            dnssec_ok: client.dnssec_ok || validating,
            recursion_desired: true,
            checking_disabled: client.checking_disabled || validating,
        }
    }

    /// Judges a forwarder's answer: AD on secure, an error on bogus, AD cleared otherwise.
    async fn validate(
        &self,
        validator: &Validator,
        query: &Query,
        mut message: Message,
        deadline: Instant,
    ) -> Result<Message, UpstreamError> {
        let fetcher = ForwarderFetcher {
            upstream: self,
            deadline,
        };
        // A forwarder's answer may cross zones (a CNAME chain from one signed zone into
        // another): the root as "the zone asked" lets each RRset be verified with the keys of
        // its own signer.
        let verdict = tokio::time::timeout_at(
            deadline.into(),
            validator.validate(query, &message, &Name::root(), &fetcher, now_unix()),
        )
        .await
        .map_err(|_| UpstreamError::Timeout(self.timeout))?;
        message.metadata.authentic_data = false;
        match verdict {
            Security::Secure => {
                message.metadata.authentic_data = true;
                let now = now_unix();
                cap_ttls_at_signature_expiry(&mut message.answers, now);
                cap_ttls_at_signature_expiry(&mut message.authorities, now);
            }
            Security::Insecure | Security::Indeterminate => {}
            Security::Bogus(b) => {
                validator.note_bogus();
                tracing::info!(%query, ede = b.ede, reason = %b.reason, "DNSSEC bogus answer from a forwarder");
                return Err(UpstreamError::Bogus(b));
            }
        }
        Ok(message)
    }
}

#[async_trait]
impl Upstream for ForwardUpstream {
    async fn resolve(&self, query: Query, flags: ClientFlags) -> Result<Message, UpstreamError> {
        let deadline = Instant::now() + self.timeout;
        let mut message = match self
            .exchange(&query, self.query_flags(flags), deadline)
            .await
        {
            Ok(m) => m,
            Err(ForwardFailure::Timeout) => return Err(UpstreamError::Timeout(self.timeout)),
            Err(ForwardFailure::Failed(errors)) => {
                return Err(UpstreamError::Failed(errors.join("; ")))
            }
        };
        match &self.validator {
            // CD=1: the client validates itself; it gets the data as the forwarder sent it.
            Some(_) if flags.checking_disabled => {
                message.metadata.authentic_data = false;
                Ok(message)
            }
            Some(validator) => self.validate(validator, &query, message, deadline).await,
            None => Ok(message),
        }
    }

    fn validator(&self) -> Option<&Arc<Validator>> {
        self.validator.as_ref()
    }
}

/// DS and DNSKEY records for the validator, asked of the forwarders (DO=1, CD=1) within the
/// client's deadline.
struct ForwarderFetcher<'a> {
    upstream: &'a ForwardUpstream,
    deadline: Instant,
}

#[async_trait]
impl KeyFetcher for ForwarderFetcher<'_> {
    async fn fetch(&self, name: &Name, rtype: RecordType) -> Result<Fetched, FetchError> {
        let flags = QueryFlags {
            edns: true,
            dnssec_ok: true,
            recursion_desired: true,
            checking_disabled: true,
        };
        let query = Query::query(name.clone(), rtype);
        let message = match self.upstream.exchange(&query, flags, self.deadline).await {
            Ok(m) => m,
            Err(ForwardFailure::Timeout) => {
                return Err(FetchError::Unreachable(format!(
                    "no forwarder answered {name} {rtype} in time"
                )))
            }
            Err(ForwardFailure::Failed(errors)) => {
                return Err(FetchError::Failed(errors.join("; ")))
            }
        };
        let zone = answering_zone(name, rtype, &message);
        Ok(Fetched { message, zone })
    }
}

/// The zone a forwarder's DS or DNSKEY answer came from, which the iterator knows from the
/// referrals it followed and a forwarder does not say: the signer of its signatures, else the
/// owner of the SOA of a negative answer. A DNSKEY RRset lives at its zone's apex; a DS RRset
/// on the parent side of the cut, so anything not strictly above `name` falls back to the
/// parent name (the chain of trust then walks down from there one label at a time).
fn answering_zone(name: &Name, rtype: RecordType, message: &Message) -> Name {
    let name = name.to_lowercase();
    if rtype == RecordType::DNSKEY {
        return name;
    }
    let signer = message
        .answers
        .iter()
        .chain(message.authorities.iter())
        .find_map(|r| match &r.data {
            hickory_proto::rr::RData::DNSSEC(hickory_proto::dnssec::rdata::DNSSECRData::RRSIG(
                sig,
            )) => Some(sig.input().signer_name.to_lowercase()),
            _ => None,
        });
    let soa = message
        .authorities
        .iter()
        .find(|r| r.record_type() == RecordType::SOA)
        .map(|r| r.name.to_lowercase());
    match signer.or(soa) {
        Some(zone) if zone.zone_of(&name) && zone != name => zone,
        _ if name.is_root() => name,
        _ => name.base_name(),
    }
}
