//! The UDP worker: one thread per SO_REUSEPORT socket, each driving its own single-threaded
//! tokio runtime. Cache hits are answered inline in the receive loop; a miss becomes a task on
//! the same runtime, so its upstream sockets, timers and the reply all stay on this thread.
//! Handing misses to a shared multi-threaded runtime cost a cross-thread wake-up and two
//! context switches per miss (measured: 23% of the cold-cache CPU); Unbound's threads work
//! the same way as these.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

use crate::pipeline::record::Arrival;
use crate::pipeline::{Decision, Engine, Fast, Scratch, Transport};
use crate::policy::Snapshot;
use crate::querylog::EventBatcher;

/// How often an idle worker wakes: to flush the query log batch and to notice shutdown.
const IDLE_TICK: Duration = Duration::from_millis(100);
/// Packets answered in a row before the receive loop lets this thread's miss tasks run.
const PACKETS_BEFORE_YIELD: u32 = 32;

/// Shared by the server and its UDP workers: the stop flag, and how long a stopping worker
/// keeps its runtime going for the misses still in flight.
#[derive(Default)]
pub struct StopSignal {
    stop: AtomicBool,
    grace_ms: AtomicU64,
}

impl StopSignal {
    pub fn stop(&self, grace: Duration) {
        self.grace_ms.store(
            grace.as_millis().min(u64::MAX as u128) as u64,
            Ordering::SeqCst,
        );
        self.stop.store(true, Ordering::SeqCst);
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    fn grace(&self) -> Duration {
        Duration::from_millis(self.grace_ms.load(Ordering::SeqCst))
    }
}

pub struct UdpWorker {
    pub engine: Arc<Engine>,
    pub stop: Arc<StopSignal>,
    /// Misses under way over all workers, for the server's shutdown report.
    pub in_flight: Arc<AtomicUsize>,
}

impl UdpWorker {
    /// Runs on the worker's own thread until the stop signal, then lets its misses finish
    /// for at most the grace period.
    pub fn run(self, socket: StdUdpSocket) {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(e) => {
                tracing::error!(error = %e, "cannot start a UDP worker's runtime; this socket is not served");
                return;
            }
        };
        runtime.block_on(async move {
            if let Err(e) = self.serve(socket).await {
                tracing::error!(error = %e, "UDP worker stopped");
            }
            let deadline = Instant::now() + self.stop.grace();
            while self.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }

    async fn serve(&self, socket: StdUdpSocket) -> io::Result<()> {
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(socket)?);
        let mut buf = vec![0u8; 65_535];
        let mut scratch = Scratch::default();
        let mut events = EventBatcher::default();
        let recorder = &self.engine.recorder;
        let tick = tokio::time::sleep(IDLE_TICK);
        tokio::pin!(tick);
        let mut since_yield = 0u32;
        while !self.stop.stopped() {
            let (n, src) = match socket.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    tokio::select! {
                        ready = socket.readable() => ready?,
                        () = &mut tick => {
                            let now = Instant::now();
                            recorder.flush_due(&mut events, now);
                            tick.as_mut().reset((now + IDLE_TICK).into());
                        }
                    }
                    continue;
                }
                Err(e) => {
                    // ICMP errors from earlier sends surface here; nothing to do but go on.
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            };
            let pkt = &buf[..n];
            let arrival = Arrival::now(src, Transport::Udp);
            let snap = self.engine.policy().snapshot();
            match self
                .engine
                .answer_fast(pkt, Transport::Udp, src.ip(), &snap, &mut scratch)
            {
                Fast::Reply => {
                    send(&socket, &scratch.out, src).await;
                    recorder.record(
                        &arrival,
                        pkt,
                        Some(&scratch.out),
                        &scratch.decision,
                        &snap,
                        Some(&mut events),
                    );
                }
                Fast::Drop => recorder.record(
                    &arrival,
                    pkt,
                    None,
                    &scratch.decision,
                    &snap,
                    Some(&mut events),
                ),
                Fast::Miss => {
                    let carry = Scratch {
                        key: scratch.key.clone(),
                        name: scratch.name.clone(),
                        decision: Decision {
                            client: scratch.decision.client,
                            ..Default::default()
                        },
                        ..Scratch::default()
                    };
                    self.spawn_miss(
                        &socket,
                        pkt.to_vec(),
                        arrival,
                        arc_swap::Guard::into_inner(snap),
                        carry,
                    );
                }
            }
            // Under steady traffic the idle tick never fires: check the batch's age here too.
            recorder.flush_due(&mut events, arrival.at);
            since_yield += 1;
            if since_yield == PACKETS_BEFORE_YIELD {
                since_yield = 0;
                tokio::task::yield_now().await;
            }
        }
        recorder.flush(&mut events);
        Ok(())
    }

    fn spawn_miss(
        &self,
        socket: &Arc<UdpSocket>,
        pkt: Vec<u8>,
        arrival: Arrival,
        snap: Arc<Snapshot>,
        mut scratch: Scratch,
    ) {
        let (engine, socket, in_flight) = (
            Arc::clone(&self.engine),
            Arc::clone(socket),
            Arc::clone(&self.in_flight),
        );
        in_flight.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            let sent = engine
                .resolve_miss(
                    &pkt,
                    Transport::Udp,
                    arrival.client.ip(),
                    &snap,
                    &mut scratch,
                )
                .await;
            if sent {
                send(&socket, &scratch.out, arrival.client).await;
            }
            engine.recorder.record(
                &arrival,
                &pkt,
                sent.then_some(&scratch.out[..]),
                &scratch.decision,
                &snap,
                None,
            );
            in_flight.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

async fn send(socket: &UdpSocket, reply: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(reply, to).await {
        tracing::debug!(error = %e, %to, "udp send failed");
    }
}
