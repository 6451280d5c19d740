//! The certificate of DoT, DoH (and the block page's HTTPS): loaded from PEM files, served
//! through a rustls `ResolvesServerCert` backed by an `ArcSwap`, so a reload (SIGHUP,
//! `POST /api/reload`) takes effect for new handshakes while open connections keep theirs.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS certificate {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("TLS key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS certificate {cert} and key {key} do not match: {message}")]
    Mismatch {
        cert: PathBuf,
        key: PathBuf,
        message: String,
    },
}

/// A certificate and key read from files, swappable at run time.
#[derive(Debug)]
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        let key = read_pair(cert_path, key_path)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.to_path_buf(),
            key_path: key_path.to_path_buf(),
            current: ArcSwap::from_pointee(key),
        }))
    }

    /// Re-reads both files; on any error the current certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_pair(&self.cert_path, &self.key_path)?;
        self.current.store(Arc::new(key));
        tracing::info!(cert = %self.cert_path.display(), "TLS certificate reloaded");
        Ok(())
    }

    /// The first DNS name of the certificate in use (the name DDR announces).
    pub fn dns_name(&self) -> Option<String> {
        let key = self.current.load();
        let der = key.cert.first()?;
        let cert = webpki::EndEntityCert::try_from(der).ok()?;
        let first = cert
            .valid_dns_names()
            .find(|n| !n.starts_with('*'))
            .map(str::to_string);
        first
    }

    /// A rustls server config that asks this store for its certificate on every handshake.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(Arc::clone(self))));
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current.load_full())
    }
}

fn read_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_err = |message: String| TlsError::Cert {
        path: cert_path.to_path_buf(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no CERTIFICATE block in the file".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| TlsError::Key {
        path: key_path.to_path_buf(),
        message: e.to_string(),
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::Key {
            path: key_path.to_path_buf(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::Mismatch {
        cert: cert_path.to_path_buf(),
        key: key_path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(certified)
}
