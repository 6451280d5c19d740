//! The block page server (`[blockpage]`): HTTP on `listen`, HTTPS on `https_listen` with the
//! operator's certificate. Put it on the sinkhole address with `[policy] action = "sinkhole"`.
//! dnsward never makes certificates for other people's domains: over HTTPS a browser warns
//! unless the configured certificate covers the blocked name.

pub mod i18n;
pub mod page;
pub use crate::refid as reference;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::policy::reload::PolicyStore;
use crate::server::encrypted::{bind, EncryptedError};
use crate::server::http::{self, HttpLimits};
use crate::server::limits::{accept_plain, accept_tls, ConnLimits};
use crate::server::tls::CertStore;

pub struct BlockpageServer {
    pub addrs: Vec<SocketAddr>,
    pub https_addrs: Vec<SocketAddr>,
    pub certs: Option<Arc<CertStore>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl BlockpageServer {
    /// Starts the configured listeners; `None` without `[blockpage]`.
    pub async fn start(
        config: &Config,
        policy: Arc<PolicyStore>,
    ) -> Result<Option<BlockpageServer>, EncryptedError> {
        let Some(b) = &config.blockpage else {
            return Ok(None);
        };
        let router = page::router(page::PageState::new(config, b, policy));
        let limits = ConnLimits::from_config(&config.server);
        let http_limits = Arc::new(HttpLimits {
            header_timeout: Duration::from_secs(config.server.tcp_idle_secs),
            max_streams: config.server.tls_max_in_flight as u32,
        });
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        for want in &b.listen {
            let (listener, bound) = bind(*want, "blockpage").await?;
            addrs.push(bound);
            let serve = http::handler(router.clone(), Arc::clone(&http_limits));
            tasks.push(tokio::spawn(accept_plain(
                listener,
                Arc::clone(&limits),
                stop_rx.clone(),
                "blockpage",
                serve,
            )));
        }
        let mut https_addrs = Vec::new();
        let mut certs = None;
        if let (Some(cert), Some(key)) = (&b.tls_cert, &b.tls_key) {
            let store = CertStore::load(&config.resolve_path(cert), &config.resolve_path(key))?;
            let acceptor = TlsAcceptor::from(store.server_config(&[b"h2", b"http/1.1"]));
            for want in &b.https_listen {
                let (listener, bound) = bind(*want, "blockpage-https").await?;
                https_addrs.push(bound);
                let serve = http::handler(router.clone(), Arc::clone(&http_limits));
                tasks.push(tokio::spawn(accept_tls(
                    listener,
                    acceptor.clone(),
                    Arc::clone(&limits),
                    stop_rx.clone(),
                    "blockpage-https",
                    std::convert::identity,
                    serve,
                )));
            }
            certs = Some(store);
        }
        tracing::info!(http = ?addrs, https = ?https_addrs, "block page listening");
        Ok(Some(BlockpageServer {
            addrs,
            https_addrs,
            certs,
            stop,
            tasks,
        }))
    }

    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(grace, t).await;
        }
    }
}
