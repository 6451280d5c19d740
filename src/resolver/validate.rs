//! The bridge between the iterator and the DNSSEC validator (`crate::dnssec`): each zone's
//! answer is judged once, as it enters the caches; DS and DNSKEY records are fetched through the
//! iterator itself (same budget, same servers, unvalidated), and the verdict becomes the
//! `secure` flag of what is cached, or a SERVFAIL with the validator's EDE.

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};

use super::classify::ZoneAnswer;
use super::error::ResolveError;
use super::iterate::Ctx;
use super::Resolver;
use crate::dnssec::{now_unix, FetchError, Fetched, KeyFetcher, Security};

/// What the validator said of one zone's answer, as the iterator uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Secure,
    /// Insecure, indeterminate (no trust anchor covers it), or not validated (off, process).
    Unsigned,
    /// Bogus, but the client set CD: the data goes to it unvalidated and is not cached.
    BogusUnchecked,
}

struct IteratorFetcher<'a> {
    resolver: &'a Resolver,
    ctx: &'a Ctx,
}

#[async_trait]
impl KeyFetcher for IteratorFetcher<'_> {
    async fn fetch(&self, name: &Name, rtype: RecordType) -> Result<Fetched, FetchError> {
        match self.resolver.iterate(self.ctx, name, rtype).await {
            Ok((answer, zone)) => Ok(Fetched {
                message: zone_message(name, rtype, &answer),
                zone,
            }),
            Err(e @ (ResolveError::Deadline(_) | ResolveError::ServersFailed { .. })) => {
                Err(FetchError::Unreachable(e.to_string()))
            }
            Err(e) => Err(FetchError::Failed(e.to_string())),
        }
    }
}

impl Resolver {
    /// Judges one zone's answer for (`name`, `qtype`) from `zone`.
    pub(super) async fn judge(
        &self,
        ctx: &Ctx,
        name: &Name,
        qtype: RecordType,
        answer: &ZoneAnswer,
        zone: &Name,
    ) -> Result<Verdict, ResolveError> {
        let Some(validator) = &self.validator else {
            return Ok(Verdict::Unsigned);
        };
        let message = zone_message(name, qtype, answer);
        let fetcher = IteratorFetcher {
            resolver: self,
            ctx,
        };
        let query = Query::query(name.clone(), qtype);
        match validator
            .validate(&query, &message, zone, &fetcher, now_unix())
            .await
        {
            Security::Secure => Ok(Verdict::Secure),
            Security::Insecure | Security::Indeterminate => Ok(Verdict::Unsigned),
            Security::Bogus(_) if ctx.checking_disabled => Ok(Verdict::BogusUnchecked),
            Security::Bogus(b) => {
                validator.note_bogus();
                tracing::info!(%name, %qtype, %zone, ede = b.ede, reason = %b.reason, "DNSSEC bogus");
                Err(ResolveError::Bogus {
                    ede: b.ede,
                    reason: format!("{name} {qtype}: {}", b.reason),
                })
            }
        }
    }
}

/// One zone's answer as the message its server sent (the validator's input).
fn zone_message(name: &Name, qtype: RecordType, answer: &ZoneAnswer) -> Message {
    let mut m = Message::new(0, MessageType::Response, OpCode::Query);
    m.metadata.authoritative = true;
    m.metadata.response_code = answer.rcode;
    m.add_query(Query::query(name.clone(), qtype));
    m.answers = answer.records.clone();
    m.authorities = answer.authority.clone();
    m
}
