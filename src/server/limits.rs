//! Caps shared by the TLS listeners (DoT, DoH): open connections in total and per client
//! address, and the TLS handshake deadline. A connection over a cap is closed at once, before
//! the handshake costs anything.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::config::ServerConfig;

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

    /// Connections open now (for tests and stats).
    pub fn open(&self, ip: IpAddr) -> usize {
        self.per_client.get(&ip).map_or(0, |n| *n)
    }
}

/// Accepts TCP connections until `stop` turns true; each admitted one gets its TLS handshake
/// (bounded by `handshake_timeout`) on its own task, then `serve`.
pub async fn accept_tls<F, Fut>(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    limits: Arc<ConnLimits>,
    mut stop: watch::Receiver<bool>,
    what: &'static str,
    serve: F,
) where
    F: Fn(TlsStream<TcpStream>, SocketAddr, watch::Receiver<bool>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, what, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(guard) = limits.admit(peer.ip()) else {
            tracing::debug!(%peer, what, "connection refused: connection cap reached");
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, serve, stop, timeout) = (
            acceptor.clone(),
            serve.clone(),
            stop.clone(),
            limits.handshake_timeout,
        );
        tokio::spawn(async move {
            let _guard = guard;
            match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => serve(tls, peer, stop).await,
                Ok(Err(e)) => tracing::debug!(%peer, what, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, what, "TLS handshake timed out"),
            }
        });
    }
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
            tracing::debug!(%peer, what, "connection refused: connection cap reached");
            continue;
        };
        let (serve, stop) = (serve.clone(), stop.clone());
        tokio::spawn(async move {
            let _guard = guard;
            serve(tcp, peer, stop).await;
        });
    }
}
