//! Serving an axum `Router` on one accepted connection (TLS or plain) with hyper-util's auto
//! builder: HTTP/1.1 and HTTP/2 (by ALPN or prior knowledge), bounded header size and header
//! read time (slowloris), bounded concurrent HTTP/2 streams, graceful stop.

use std::net::SocketAddr;
use std::time::Duration;

use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

/// Largest request head we read; beyond it hyper answers 431.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The peer of the connection a request came on (an extension every request carries).
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub SocketAddr);

pub struct HttpLimits {
    /// The request head must arrive within this long (HTTP/1.1).
    pub header_timeout: Duration,
    /// Concurrent streams of one HTTP/2 connection.
    pub max_streams: u32,
}

/// Serves `router` on `io` until the client closes, a timeout fires, or `stop` turns true.
pub async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: &HttpLimits,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router.layer(Extension(Peer(peer))));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(limits.header_timeout, conn).await;
        }
    }
}

/// A connection handler for the accept loops: serves `router` on each connection.
pub fn handler<I>(
    router: Router,
    limits: std::sync::Arc<HttpLimits>,
) -> impl Fn(
    I,
    SocketAddr,
    watch::Receiver<bool>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
       + Clone
       + Send
       + Sync
       + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    move |io, peer, stop| {
        let (router, limits) = (router.clone(), std::sync::Arc::clone(&limits));
        Box::pin(async move { serve_connection(io, peer, router, &limits, stop).await })
    }
}
