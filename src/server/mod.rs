//! Listeners. UDP: a worker thread per SO_REUSEPORT socket with its own runtime, answering
//! cache hits inline and resolving misses on the same thread (`udp`). TCP: hickory-server's listener with our
//! `RequestHandler`, which runs the same pipeline.

pub mod doh;
pub mod dot;
pub mod encrypted;
pub mod exchange;
pub mod h2_records;
pub mod http;
pub mod limits;
#[cfg(target_os = "linux")]
mod mmsg;
pub mod tls;
mod udp;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hickory_proto::op::{
    Header, HeaderCounts, Message, MessageType, Metadata, OpCode, ResponseCode,
};
use hickory_proto::serialize::binary::BinDecoder;
use hickory_server::net::runtime::Time;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;
use crate::pipeline::record::Arrival;
use crate::pipeline::{Engine, Scratch, Transport};
use udp::{StopSignal, UdpWorker};

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr} ({proto}): {source}")]
    Bind {
        addr: SocketAddr,
        proto: &'static str,
        source: io::Error,
    },
}

/// A running server: its bound addresses and what `shutdown` needs to stop it.
pub struct Server {
    /// The addresses actually bound (port 0 in the config resolved), UDP and TCP alike.
    pub addrs: Vec<SocketAddr>,
    stop: Arc<StopSignal>,
    udp_threads: Vec<JoinHandle<()>>,
    tcp: hickory_server::Server<TcpHandler>,
    in_flight: Arc<AtomicUsize>,
}

impl Server {
    /// Binds every `[server] listen` address (UDP and TCP) and starts serving.
    pub async fn start(config: &Config, engine: Arc<Engine>) -> Result<Server, ServerError> {
        let workers = config
            .server
            .udp_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let stop = Arc::new(StopSignal::default());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let mut tcp = hickory_server::Server::new(TcpHandler {
            engine: Arc::clone(&engine),
        });
        let mut addrs = Vec::new();
        let mut udp_threads = Vec::new();
        for want in &config.server.listen {
            let (udp_sockets, tcp_listener) = bind_pair(*want, workers)?;
            let addr = udp_sockets[0]
                .local_addr()
                .map_err(|source| ServerError::Bind {
                    addr: *want,
                    proto: "udp",
                    source,
                })?;
            for (i, sock) in udp_sockets.into_iter().enumerate() {
                let worker = UdpWorker {
                    engine: Arc::clone(&engine),
                    batch: config.server.udp_batch,
                    stop: Arc::clone(&stop),
                    in_flight: Arc::clone(&in_flight),
                };
                let handle = std::thread::Builder::new()
                    .name(format!("udp-{addr}-{i}"))
                    .spawn(move || worker.run(sock))
                    .expect("spawn UDP worker thread");
                udp_threads.push(handle);
            }
            tcp.register_listener(
                tcp_listener,
                Duration::from_secs(config.server.tcp_idle_secs),
                64,
            );
            tracing::info!(%addr, workers, "listening (udp, tcp)");
            addrs.push(addr);
        }
        Ok(Server {
            addrs,
            stop,
            udp_threads,
            tcp,
            in_flight,
        })
    }

    /// Stops accepting, lets in-flight queries finish for at most `grace`, then returns.
    pub async fn shutdown(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.stop.stop(grace);
        let tcp_done = tokio::time::timeout(grace, self.tcp.shutdown_gracefully()).await;
        if tcp_done.is_err() {
            tracing::warn!("TCP connections still open after the grace period; closing them");
        }
        for t in self.udp_threads.drain(..) {
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.in_flight.load(Ordering::SeqCst);
        if left > 0 {
            tracing::warn!(left, "queries still unanswered at shutdown");
        }
    }
}

/// Binds `workers` UDP sockets (SO_REUSEPORT) and one TCP listener on the same address and
/// port; with port 0 the port the first UDP socket gets is used for all.
fn bind_pair(
    want: SocketAddr,
    workers: usize,
) -> Result<(Vec<UdpSocket>, tokio::net::TcpListener), ServerError> {
    // Port 0: the kernel's UDP port may be taken for TCP; try a few times.
    let attempts = if want.port() == 0 { 16 } else { 1 };
    let mut last_err = None;
    for _ in 0..attempts {
        let first = match udp_socket(want) {
            Ok(s) => s,
            Err(source) => {
                return Err(ServerError::Bind {
                    addr: want,
                    proto: "udp",
                    source,
                })
            }
        };
        let addr = first.local_addr().map_err(|source| ServerError::Bind {
            addr: want,
            proto: "udp",
            source,
        })?;
        match tcp_listener(addr) {
            Ok(tcp) => {
                let mut socks = vec![first];
                for _ in 1..workers.max(1) {
                    socks.push(udp_socket(addr).map_err(|source| ServerError::Bind {
                        addr,
                        proto: "udp",
                        source,
                    })?);
                }
                return Ok((socks, tcp));
            }
            Err(e) => last_err = Some((addr, e)),
        }
    }
    let (addr, source) = last_err.expect("at least one attempt");
    Err(ServerError::Bind {
        addr,
        proto: "tcp",
        source,
    })
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_port(true)?;
    // Bigger buffers absorb bursts while a worker is busy.
    let _ = s.set_recv_buffer_size(4 << 20);
    let _ = s.set_send_buffer_size(4 << 20);
    s.bind(&addr.into())?;
    Ok(s.into())
}

fn tcp_listener(addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    tokio::net::TcpListener::from_std(s.into())
}

/// hickory-server calls this for every TCP query (it frames and parses; malformed ones get
/// FORMERR from hickory before reaching us).
struct TcpHandler {
    engine: Arc<Engine>,
}

#[async_trait]
impl RequestHandler for TcpHandler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let id = u16::from_be_bytes([
            request.as_slice().first().copied().unwrap_or(0),
            request.as_slice().get(1).copied().unwrap_or(0),
        ]);
        let failed = |code| {
            let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
            metadata.response_code = code;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        };
        let arrival = Arrival::now(request.src(), Transport::Tcp);
        let snap = self.engine.policy().snapshot();
        let mut scratch = Scratch::default();
        let sent = self
            .engine
            .answer_with(
                request.as_slice(),
                Transport::Tcp,
                request.src().ip(),
                &snap,
                &mut scratch,
            )
            .await;
        self.engine.recorder.record(
            &arrival,
            request.as_slice(),
            sent.then_some(&scratch.out[..]),
            &scratch.decision,
            &snap,
            None,
        );
        if !sent {
            return failed(ResponseCode::Refused);
        }
        let bytes = scratch.out;
        // hickory's TCP writer takes a MessageResponse: turn our bytes back into records.
        let Ok(msg) = Message::from_vec(&bytes) else {
            return failed(ResponseCode::ServFail);
        };
        // The question section as we encoded it (the client's spelling), right after the header.
        let mut decoder = BinDecoder::new(&bytes);
        let queries = match decoder
            .read_slice(12)
            .ok()
            .and_then(|_| Queries::read(&mut decoder, msg.queries.len()).ok())
        {
            Some(q) => q,
            None => return failed(ResponseCode::ServFail),
        };
        let response = MessageResponseBuilder::new(&queries, msg.edns.as_ref()).build(
            msg.metadata,
            msg.answers.iter(),
            msg.authorities.iter(),
            std::iter::empty(),
            msg.additionals.iter(),
        );
        match response_handle.send_response(response).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!(error = %e, "tcp send failed");
                failed(ResponseCode::ServFail)
            }
        }
    }
}
