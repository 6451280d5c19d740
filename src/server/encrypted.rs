//! The encrypted listeners: DoT on `[server] tls_listen`, DoH on `[server] https_listen`,
//! sharing one certificate store and one set of connection caps.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::h2_records::ResponseRecords;
use super::http::HttpLimits;
use super::limits::{accept_tls, ConnLimits};
use super::tls::{CertStore, TlsError};
use super::{doh, dot, http};
use crate::config::Config;
use crate::pipeline::Engine;

#[derive(Debug, thiserror::Error)]
pub enum EncryptedError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

pub struct Encrypted {
    pub dot_addrs: Vec<SocketAddr>,
    pub doh_addrs: Vec<SocketAddr>,
    pub certs: Arc<CertStore>,
    pub limits: Arc<ConnLimits>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Encrypted {
    /// Binds every DoT and DoH address; `None` when neither is configured.
    pub async fn start(
        config: &Config,
        engine: Arc<Engine>,
    ) -> Result<Option<Encrypted>, EncryptedError> {
        let s = &config.server;
        let (Some(cert), Some(key)) = (&s.tls_cert, &s.tls_key) else {
            return Ok(None);
        };
        if s.tls_listen.is_empty() && s.https_listen.is_empty() {
            return Ok(None);
        }
        let certs = CertStore::load(&config.resolve_path(cert), &config.resolve_path(key))?;
        let limits = ConnLimits::from_config(s);
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();

        let dot_acceptor = TlsAcceptor::from(certs.server_config(&[b"dot"]));
        let mut dot_addrs = Vec::new();
        for want in &s.tls_listen {
            let (listener, bound) = bind(*want, "dot").await?;
            dot_addrs.push(bound);
            let (engine, limits2) = (Arc::clone(&engine), Arc::clone(&limits));
            let serve = move |tls, peer, stop| {
                dot::serve_connection(Arc::clone(&engine), Arc::clone(&limits2), tls, peer, stop)
            };
            tasks.push(tokio::spawn(accept_tls(
                listener,
                dot_acceptor.clone(),
                Arc::clone(&limits),
                stop_rx.clone(),
                "dot",
                std::convert::identity,
                serve,
            )));
        }

        let doh_acceptor = TlsAcceptor::from(certs.server_config(&[b"h2", b"http/1.1"]));
        let http_limits = Arc::new(HttpLimits {
            header_timeout: Duration::from_secs(s.tcp_idle_secs),
            max_streams: s.tls_max_in_flight as u32,
        });
        let router = doh::router(Arc::clone(&engine));
        let mut doh_addrs = Vec::new();
        for want in &s.https_listen {
            let (listener, bound) = bind(*want, "doh").await?;
            doh_addrs.push(bound);
            // One response per TLS record: dnsperf's DoH client needs it (h2_records). The
            // records then gather in a buffer under TLS and go out together when hyper
            // flushes: one system call for a burst of answers instead of one each.
            let serve = http::handler(router.clone(), Arc::clone(&http_limits));
            let serve = move |tls, peer, stop| serve(ResponseRecords::new(tls), peer, stop);
            tasks.push(tokio::spawn(accept_tls(
                listener,
                doh_acceptor.clone(),
                Arc::clone(&limits),
                stop_rx.clone(),
                "doh",
                tokio::io::BufWriter::new,
                serve,
            )));
        }
        tracing::info!(dot = ?dot_addrs, doh = ?doh_addrs, name = ?certs.dns_name(), "listening (dot, doh)");
        Ok(Some(Encrypted {
            dot_addrs,
            doh_addrs,
            certs,
            limits,
            stop,
            tasks,
        }))
    }

    /// Stops accepting and asks open connections to finish; waits at most `grace`.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(grace, t).await;
        }
    }
}

/// Binds `addr` and returns the listener with the address it got (port 0 -> the kernel's).
pub async fn bind(
    addr: SocketAddr,
    what: &'static str,
) -> Result<(TcpListener, SocketAddr), EncryptedError> {
    let err = |source| EncryptedError::Bind { addr, what, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let bound = listener.local_addr().map_err(err)?;
    Ok((listener, bound))
}
