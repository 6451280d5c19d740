//! The UDP worker: one thread per SO_REUSEPORT socket, each driving its own single-threaded
//! tokio runtime. Cache hits are answered inline in the receive loop; a miss becomes a task on
//! the same runtime, so its upstream sockets, timers and the reply all stay on this thread.
//! Handing misses to a shared multi-threaded runtime cost a cross-thread wake-up and two
//! context switches per miss (measured: 23% of the cold-cache CPU); Unbound's threads work
//! the same way as these.
//!
//! On Linux with `[server] udp_batch` > 1 the loop takes every datagram the socket holds (up
//! to the batch size) with one `recvmmsg`, answers the cache hits and blocked names of the
//! whole batch, and sends those answers with one `sendmmsg` (`mmsg`); misses still become
//! tasks. Each datagram is judged on its own (admission, rate limit, RRL, its own answer):
//! a malformed or refused one costs the others nothing. A batch never waits for more
//! datagrams to arrive. With `udp_batch = 1`, or elsewhere, one `recvfrom` and one `sendto`
//! per query.

use std::io;
use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;

#[cfg(target_os = "linux")]
use super::mmsg;
use crate::pipeline::record::{Arrival, Recorder};
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
    /// Datagrams per `recvmmsg`/`sendmmsg` (`[server] udp_batch`); 1 = one at a time.
    pub batch: usize,
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
            #[cfg(target_os = "linux")]
            let served = if self.batch > 1 {
                self.serve_batched(socket).await
            } else {
                self.serve(socket).await
            };
            #[cfg(not(target_os = "linux"))]
            let served = self.serve(socket).await;
            if let Err(e) = served {
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
                    idle(&socket, &mut tick, recorder, &mut events).await?;
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
                    let carry = scratch.carry_for_miss();
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

    /// The receive loop with `recvmmsg`/`sendmmsg`: what `serve` does for one datagram, done
    /// for every datagram the socket holds, the answers sent together.
    #[cfg(target_os = "linux")]
    async fn serve_batched(&self, socket: StdUdpSocket) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use tokio::io::Interest;

        // The receive timeout only bounds a wait in the kernel (see `KernelWait`).
        socket.set_read_timeout(Some(IDLE_TICK))?;
        socket.set_nonblocking(true)?;
        let socket = Arc::new(UdpSocket::from_std(socket)?);
        let fd = socket.as_raw_fd();
        let mut kernel_wait = KernelWait::new(&socket);
        let mut rx = mmsg::RecvBatch::new(self.batch);
        let mut tx = mmsg::SendBatch::default();
        // The answers of one batch (buffers swapped with the scratch's, so reused), and for
        // each the datagram it answers, when it came and what was decided.
        let mut outs: Vec<Vec<u8>> = (0..rx.capacity()).map(|_| Vec::new()).collect();
        let mut answered: Vec<(usize, Arrival, Decision)> = Vec::with_capacity(rx.capacity());
        let mut scratch = Scratch::default();
        let mut events = EventBatcher::default();
        let recorder = &self.engine.recorder;
        let tick = tokio::time::sleep(IDLE_TICK);
        tokio::pin!(tick);
        let mut since_yield = 0usize;
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        while !self.stop.stopped() {
            let waits_in_kernel = kernel_wait.choose()?;
            let received = if waits_in_kernel {
                rx.recv_wait(fd)
            } else {
                socket.try_io(Interest::READABLE, || rx.recv(fd))
            };
            let n = match received {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && waits_in_kernel => {
                    // The receive timeout passed with nothing to read: the idle tick's work.
                    recorder.flush_due(&mut events, Instant::now());
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    idle(&socket, &mut tick, recorder, &mut events).await?;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "udp receive error");
                    continue;
                }
            };
            // One clock reading and one policy snapshot for the batch: its datagrams all
            // arrived by the time the call returned.
            let batch_at = Arrival::now(unspecified, Transport::Udp);
            let snap = arc_swap::Guard::into_inner(self.engine.policy().snapshot());
            answered.clear();
            for i in 0..n {
                let (pkt, Some(src)) = rx.packet(i) else {
                    continue;
                };
                let arrival = Arrival {
                    client: src,
                    ..batch_at
                };
                match self
                    .engine
                    .answer_fast(pkt, Transport::Udp, src.ip(), &snap, &mut scratch)
                {
                    Fast::Reply => {
                        std::mem::swap(&mut scratch.out, &mut outs[answered.len()]);
                        answered.push((i, arrival, std::mem::take(&mut scratch.decision)));
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
                        let carry = scratch.carry_for_miss();
                        self.spawn_miss(&socket, pkt.to_vec(), arrival, Arc::clone(&snap), carry);
                    }
                }
            }
            send_batch(&socket, &mut tx, &answered, &outs).await?;
            for ((i, arrival, decision), out) in answered.iter().zip(&outs) {
                let (pkt, _) = rx.packet(*i);
                recorder.record(arrival, pkt, Some(out), decision, &snap, Some(&mut events));
            }
            recorder.flush_due(&mut events, batch_at.at);
            since_yield += n;
            if !waits_in_kernel && since_yield >= PACKETS_BEFORE_YIELD as usize {
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

/// Where the batched receive loop waits for the next datagram. While this thread's runtime
/// has no task (no miss, prefetch or resolution under way), nothing else needs the thread, so
/// the loop sleeps in `recvmmsg` itself on a blocking socket: one system call a wake-up
/// instead of three (`recvmmsg` finding the socket empty, `epoll_wait`, `recvmmsg`), which
/// is most of what separates a cache hit from the kernel's own cost. As soon as a task
/// exists the socket goes back to non-blocking and the loop waits through the event loop,
/// so the tasks run.
#[cfg(target_os = "linux")]
struct KernelWait<'a> {
    socket: &'a UdpSocket,
    runtime: tokio::runtime::RuntimeMetrics,
    blocking: bool,
}

#[cfg(target_os = "linux")]
impl<'a> KernelWait<'a> {
    fn new(socket: &'a UdpSocket) -> Self {
        KernelWait {
            socket,
            runtime: tokio::runtime::Handle::current().metrics(),
            blocking: false,
        }
    }

    /// Puts the socket in the mode the next wait needs; true when the loop should wait in
    /// the kernel.
    fn choose(&mut self) -> io::Result<bool> {
        let idle_runtime = self.runtime.num_alive_tasks() == 0;
        if idle_runtime != self.blocking {
            socket2::SockRef::from(self.socket).set_nonblocking(!idle_runtime)?;
            self.blocking = idle_runtime;
        }
        Ok(self.blocking)
    }
}

/// Waits until the socket is readable; meanwhile the idle tick flushes a batch of query events
/// that has waited long enough (and lets the loop notice a stop).
async fn idle(
    socket: &UdpSocket,
    tick: &mut Pin<&mut tokio::time::Sleep>,
    recorder: &Recorder,
    events: &mut EventBatcher,
) -> io::Result<()> {
    tokio::select! {
        ready = socket.readable() => ready?,
        () = tick.as_mut() => {
            let now = Instant::now();
            recorder.flush_due(events, now);
            tick.as_mut().reset((now + IDLE_TICK).into());
        }
    }
    Ok(())
}

/// Sends a batch's answers (`outs[k]` answers `answered[k]`) with `sendmmsg`, as many per
/// call as the socket takes; an answer that cannot go (its address) is skipped, the rest
/// still go.
#[cfg(target_os = "linux")]
async fn send_batch(
    socket: &UdpSocket,
    tx: &mut mmsg::SendBatch,
    answered: &[(usize, Arrival, Decision)],
    outs: &[Vec<u8>],
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use tokio::io::Interest;

    let fd = socket.as_raw_fd();
    let mut sent = 0;
    while sent < answered.len() {
        let batch = answered[sent..]
            .iter()
            .zip(&outs[sent..])
            .map(|((_, a, _), out)| (&out[..], a.client));
        match socket.try_io(Interest::WRITABLE, || tx.send(fd, batch)) {
            Ok(m) => sent += m.max(1),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            Err(e) => {
                // This answer cannot go (its address): the rest still can.
                tracing::debug!(error = %e, to = %answered[sent].1.client, "udp send failed");
                sent += 1;
            }
        }
    }
    Ok(())
}

async fn send(socket: &UdpSocket, reply: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(reply, to).await {
        tracing::debug!(error = %e, %to, "udp send failed");
    }
}
