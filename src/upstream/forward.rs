//! Forwarding to configured resolvers, in order, failing over on timeout, SERVFAIL or REFUSED.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::StreamExt;
use hickory_proto::op::{DnsRequestOptions, Message, Query, ResponseCode};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::xfer::DnsHandle;

use super::{ClientFlags, Upstream, UpstreamError};

pub struct ForwardUpstream {
    forwarders: Vec<SocketAddr>,
    timeout: Duration,
}

impl ForwardUpstream {
    pub fn new(forwarders: Vec<SocketAddr>, timeout: Duration) -> Self {
        Self {
            forwarders,
            timeout,
        }
    }

    async fn ask(
        &self,
        addr: SocketAddr,
        query: &Query,
        dnssec_ok: bool,
        budget: Duration,
    ) -> Result<Message, String> {
        let mut options = DnsRequestOptions::default();
        options.recursion_desired = true;
        options.use_edns = true;
        options.edns_set_dnssec_ok = dnssec_ok;
        let runtime = TokioRuntimeProvider::default();
        let udp = UdpClientStream::builder(addr, runtime.clone())
            .with_timeout(Some(budget))
            .exchange();
        let first = udp.lookup(query.clone(), options).next().await;
        let msg = match first {
            Some(Ok(resp)) => resp.into_message(),
            Some(Err(e)) => return Err(format!("{addr}: {e}")),
            None => return Err(format!("{addr}: no response")),
        };
        if !msg.metadata.truncation {
            return Ok(msg);
        }
        // Truncated over UDP: ask again over TCP for the whole answer.
        let tcp = TcpClientStream::exchange(addr, None, budget, None, runtime)
            .await
            .map_err(|e| format!("{addr} (tcp): {e}"))?;
        match tcp.lookup(query.clone(), options).next().await {
            Some(Ok(resp)) => Ok(resp.into_message()),
            Some(Err(e)) => Err(format!("{addr} (tcp): {e}")),
            None => Err(format!("{addr} (tcp): no response")),
        }
    }
}

#[async_trait]
impl Upstream for ForwardUpstream {
    async fn resolve(&self, query: Query, flags: ClientFlags) -> Result<Message, UpstreamError> {
        let dnssec_ok = flags.dnssec_ok;
        let deadline = Instant::now() + self.timeout;
        // Each forwarder gets an equal share of what is left, so the last one still has a chance.
        let mut errors = Vec::new();
        for (i, addr) in self.forwarders.iter().enumerate() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let share = left / (self.forwarders.len() - i) as u32;
            match tokio::time::timeout(share, self.ask(*addr, &query, dnssec_ok, share)).await {
                Ok(Ok(msg))
                    if !matches!(
                        msg.metadata.response_code,
                        ResponseCode::ServFail | ResponseCode::Refused
                    ) =>
                {
                    return Ok(msg)
                }
                Ok(Ok(msg)) => errors.push(format!("{addr}: {}", msg.metadata.response_code)),
                Ok(Err(e)) => errors.push(e),
                Err(_) => errors.push(format!("{addr}: timed out")),
            }
        }
        if errors.is_empty() {
            Err(UpstreamError::Timeout(self.timeout))
        } else {
            Err(UpstreamError::Failed(errors.join("; ")))
        }
    }
}
