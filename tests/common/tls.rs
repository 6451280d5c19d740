//! A throw-away CA made in the test (rcgen), certificates it signs, and a rustls client that
//! trusts only it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The name every test server certificate is issued for (plus 127.0.0.1).
pub const SERVER_NAME: &str = "dns.test.example";

pub struct TestCa {
    pub ca_pem: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(dir: &Path) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "dnsward test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, cert.pem()).unwrap();
        TestCa {
            ca_pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a certificate for `names` and writes `<stem>.pem` / `<stem>-key.pem`.
    pub fn issue(&self, dir: &Path, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let (cert_path, key_path) = (
            dir.join(format!("{stem}.pem")),
            dir.join(format!("{stem}-key.pem")),
        );
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    pub fn client_config(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&self.ca_pem).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut c = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }

    /// A TLS connection to `addr` verified against this CA for `SERVER_NAME`.
    pub async fn connect(
        &self,
        addr: std::net::SocketAddr,
        alpn: &[&[u8]],
    ) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let connector = TlsConnector::from(self.client_config(alpn));
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            connector.connect(ServerName::try_from(SERVER_NAME).unwrap(), tcp),
        )
        .await
        .expect("handshake in time")
        .expect("handshake succeeds and the certificate verifies")
    }
}

/// The leaf certificate the server presented on `tls`.
pub fn peer_cert(tls: &TlsStream<TcpStream>) -> Vec<u8> {
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// One DNS message over a DoT connection (RFC 7858 framing); the answer within 5 s.
pub async fn dot_exchange(tls: &mut TlsStream<TcpStream>, msg: &[u8]) -> Vec<u8> {
    let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(msg);
    tls.write_all(&framed).await.unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(5), async {
        let mut len = [0u8; 2];
        tls.read_exact(&mut len).await.unwrap();
        let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
        tls.read_exact(&mut buf).await.unwrap();
        buf
    })
    .await
    .expect("DoT answer within 5 s")
}

/// An HTTP/1.1 request over TLS (`Connection: close`): (status, headers, body bytes).
pub async fn https_request(
    ca: &TestCa,
    addr: std::net::SocketAddr,
    head: &str,
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut tls = ca.connect(addr, &[b"http/1.1"]).await;
    let mut req = head.as_bytes().to_vec();
    req.extend_from_slice(body);
    // The server may answer (413, 431) and close before an oversized request is all sent: a
    // failed write is expected then, and the answer is still there to read.
    let _ = tls.write_all(&req).await;
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tls.read_to_end(&mut raw),
    )
    .await
    .expect("HTTP answer in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    (status, headers, raw[split + 4..].to_vec())
}
