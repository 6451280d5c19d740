//! Iterative resolution with hickory-resolver's recursor.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, Record};
use hickory_resolver::config::{ConnectionConfig, ProtocolConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::xfer::DnsExchange;
use hickory_resolver::net::NetError;
use hickory_resolver::recursor::{Recursor, RecursorError, RecursorOptions};
use hickory_resolver::{ConnectionProvider, PoolContext};

use super::{Upstream, UpstreamError};
use crate::config::ResolverConfig;

/// Connects to authoritative servers on `port` instead of 53 and with our own per-server timeout.
///
/// Why our own provider: the port lets tests and labs run a hierarchy on loopback as a normal
/// user (any 127.x.y.z is bindable, port 53 is not), and the per-server timeout keeps one dead
/// server from eating the client's whole budget (hickory's default is 5 s per server).
#[derive(Clone)]
pub struct UpstreamConnector {
    runtime: TokioRuntimeProvider,
    port: u16,
    hop_timeout: Duration,
}

impl UpstreamConnector {
    pub fn new(port: u16, hop_timeout: Duration) -> Self {
        Self {
            runtime: TokioRuntimeProvider::default(),
            port,
            hop_timeout,
        }
    }
}

type ConnFuture =
    Pin<Box<dyn std::future::Future<Output = Result<DnsExchange<TokioRuntimeProvider>, NetError>> + Send>>;

impl ConnectionProvider for UpstreamConnector {
    type Conn = DnsExchange<TokioRuntimeProvider>;
    type FutureConn = ConnFuture;
    type RuntimeProvider = TokioRuntimeProvider;

    fn new_connection(
        &self,
        ip: IpAddr,
        config: &ConnectionConfig,
        cx: &PoolContext,
    ) -> Result<Self::FutureConn, NetError> {
        let remote = SocketAddr::new(ip, self.port);
        let (timeout, runtime, bind) = (self.hop_timeout, self.runtime.clone(), config.bind_addr);
        match &config.protocol {
            ProtocolConfig::Udp => {
                let avoid = cx.options.avoid_local_udp_ports.clone();
                Ok(Box::pin(async move {
                    Ok(UdpClientStream::builder(remote, runtime)
                        .with_timeout(Some(timeout))
                        .avoid_local_ports(avoid)
                        .with_bind_addr(bind)
                        .exchange())
                }))
            }
            ProtocolConfig::Tcp => Ok(Box::pin(TcpClientStream::exchange(
                remote,
                bind,
                timeout,
                Some(cx.options.max_active_requests),
                runtime,
            ))),
            #[allow(unreachable_patterns)]
            other => Err(NetError::from(format!(
                "upstream protocol {other:?} is not enabled in dnsward"
            ))),
        }
    }

    fn runtime_provider(&self) -> &Self::RuntimeProvider {
        &self.runtime
    }
}

pub struct RecursiveUpstream {
    recursor: Recursor<UpstreamConnector>,
    timeout: Duration,
}

impl RecursiveUpstream {
    pub fn new(roots: &[IpAddr], cfg: &ResolverConfig, timeout: Duration) -> Result<Self, String> {
        let options = RecursorOptions {
            deny_server: cfg.effective_deny_server(),
            allow_server: cfg.effective_allow_server(),
            // Our packet cache sits in front; the recursor's own caches hold NS and
            // intermediate data, so they can stay moderate.
            response_cache_size: (cfg.cache_size as u64).clamp(1024, 1 << 20),
            ..RecursorOptions::default()
        };
        // Leave room for at least two servers to be tried within the client's budget.
        let hop = (timeout / 3).max(Duration::from_millis(200));
        let connector = UpstreamConnector::new(cfg.upstream_port, hop);
        let recursor = Recursor::with_options(roots, options, connector)
            .map_err(|e| format!("cannot start the recursor: {e}"))?;
        Ok(Self { recursor, timeout })
    }
}

#[async_trait]
impl Upstream for RecursiveUpstream {
    async fn resolve(&self, query: Query, dnssec_ok: bool) -> Result<Message, UpstreamError> {
        let fut = self.recursor.resolve(query.clone(), Instant::now(), dnssec_ok);
        match tokio::time::timeout(self.timeout, fut).await {
            Err(_) => Err(UpstreamError::Timeout(self.timeout)),
            Ok(Ok(msg)) => Ok(msg),
            Ok(Err(e)) => negative_message(query, e),
        }
    }
}

/// The recursor reports NXDOMAIN and NODATA as errors carrying the SOA: turn them back into a
/// response message; anything else is a failure (SERVFAIL for the client).
fn negative_message(query: Query, e: RecursorError) -> Result<Message, UpstreamError> {
    let nx = e.is_nx_domain();
    if !(nx || e.is_no_records_found()) {
        return Err(UpstreamError::Failed(e.to_string()));
    }
    let mut msg = Message::new(0, MessageType::Response, OpCode::Query);
    msg.metadata.response_code = if nx {
        ResponseCode::NXDomain
    } else {
        ResponseCode::NoError
    };
    msg.add_query(query);
    if let Some(soa) = e.into_soa() {
        let soa = *soa;
        let record = Record::from_rdata(soa.name.clone(), soa.ttl, RData::SOA(soa.data.clone()));
        msg.add_authority(record);
    }
    Ok(msg)
}
