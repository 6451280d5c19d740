//! Caps shared by the TLS listeners (DoT, DoH): open connections in total and per client
//! address, and the TLS handshake deadline. A connection over a cap is closed at once, before
//! the handshake costs anything.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

const LOG_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct ConnLimits {
    total: Arc<Semaphore>,
    per_client: DashMap<IpAddr, usize>,
    max_per_client: usize,
    pub handshake_timeout: Duration,
    /// A connection with no query for this long is closed (`[server] tcp_idle_secs`).
    pub idle_timeout: Duration,
    /// Queries one connection may have in flight.
    pub max_in_flight: usize,
    /// Refused connections and failed handshakes, logged as a summary at most every 10 s
    /// (a flood must not flood the log too).
    trouble: Mutex<Trouble>,
}

#[derive(Debug, Default)]
struct Trouble {
    refused: u64,
    failed: u64,
    since: Option<Instant>,
}

/// One admitted connection; dropping it frees its place.
pub struct ConnGuard {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if let dashmap::Entry::Occupied(mut e) = self.limits.per_client.entry(self.ip) {
            *e.get_mut() -= 1;
            if *e.get() == 0 {
                e.remove();
            }
        }
    }
}

impl ConnLimits {
    pub fn from_config(s: &ServerConfig) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            total: Arc::new(Semaphore::new(s.tls_max_connections)),
            per_client: DashMap::new(),
            max_per_client: s.tls_max_connections_per_client,
            handshake_timeout: Duration::from_millis(s.tls_handshake_timeout_ms),
            idle_timeout: Duration::from_secs(s.tcp_idle_secs),
            max_in_flight: s.tls_max_in_flight,
            trouble: Mutex::new(Trouble::default()),
        })
    }

    /// A place for a new connection from `ip`, or `None` when a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnGuard> {
        let permit = Arc::clone(&self.total).try_acquire_owned().ok()?;
        let mut n = self.per_client.entry(ip).or_insert(0);
        if *n >= self.max_per_client {
            return None;
        }
        *n += 1;
        drop(n);
        Some(ConnGuard {
            limits: Arc::clone(self),
            ip,
            _permit: permit,
        })
    }

    /// Counts a refused connection or a failed handshake; logs a summary line when the last
    /// one is 10 s old (or on the first).
    fn note_trouble(&self, what: &'static str, peer: SocketAddr, refused: bool, why: &str) {
        let mut t = self.trouble.lock();
        if refused {
            t.refused += 1;
        } else {
            t.failed += 1;
        }
        let now = Instant::now();
        if t.since.is_none_or(|s| now.duration_since(s) >= LOG_EVERY) {
            tracing::info!(what, refused = t.refused, failed_handshakes = t.failed, latest = %peer, "{why} (counts since the last such line)");
            *t = Trouble {
                since: Some(now),
                ..Trouble::default()
            };
        }
    }

    /// Connections open now (for tests and stats).
    pub fn open(&self, ip: IpAddr) -> usize {
        self.per_client.get(&ip).map_or(0, |n| *n)
    }
}

/// Accepts TCP connections until `stop` turns true; each admitted one is wrapped by `wrap`
/// (the plain stream, or one that coalesces writes), gets its TLS handshake (bounded by
/// `handshake_timeout`) on its own task, then `serve`.
pub async fn accept_tls<IO, F, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Arc<ConnLimits>,
    stop: watch::Receiver<bool>,
    what: &'static str,
    wrap: fn(TcpStream) -> IO,
    serve: F,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(TlsStream<IO>, SocketAddr, watch::Receiver<bool>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    // The plain accept loop (caps, stop, back-off) with the bounded handshake in front of `serve`.
    let handshake_limits = Arc::clone(&limits);
    let with_tls = move |tcp: TcpStream, peer: SocketAddr, stop: watch::Receiver<bool>| {
        let (acceptor, serve, limits) = (
            acceptor.clone(),
            serve.clone(),
            Arc::clone(&handshake_limits),
        );
        async move {
            let _ = tcp.set_nodelay(true);
            match tokio::time::timeout(limits.handshake_timeout, acceptor.accept(wrap(tcp))).await {
                Ok(Ok(tls)) => serve(tls, peer, stop).await,
                Ok(Err(e)) => {
                    limits.note_trouble(what, peer, false, &format!("TLS handshake failed: {e}"))
                }
                Err(_) => limits.note_trouble(what, peer, false, "TLS handshake timed out"),
            }
        }
    };
    accept_plain(listener, limits, stop, what, with_tls).await
}

/// Accepts plain TCP connections (the block page over HTTP) under the same caps.
pub async fn accept_plain<F, Fut>(
    listener: TcpListener,
    limits: Arc<ConnLimits>,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(guard) = limits.admit(peer.ip()) else {
            limits.note_trouble(
                what,
                peer,
                true,
                "connection refused: connection cap reached",
            );
            continue;
        };
        let (serve, stop) = (serve.clone(), stop.clone());
        tokio::spawn(async move {
            let _guard = guard;
            serve(tcp, peer, stop).await;
        });
    }
}
