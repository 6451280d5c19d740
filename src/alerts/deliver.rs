//! Getting alerts out: a bounded on-disk outbox per action kind (one file per delivery, so
//! a restart loses nothing), one worker per kind retrying with doubling back-off per target,
//! and the three ways out: webhook (JSON POST, `X-Dnsward-Signature`), email (lettre, `[smtp]`)
//! and syslog (RFC 5424 over UDP or TCP). A receiver that is down, slow or hostile costs a
//! worker's time, never the answer path's: the evaluator only writes a file.

use crate::config::alerts::{SyslogTarget, SyslogTargetError};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::config::SmtpConfig;
use super::history::{DeliveryState, HistoryStore};
use super::metrics::AlertMetrics;
use super::Alert;

/// Why one delivery attempt failed (the job stays in the outbox and is tried again).
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    #[error("cannot encode the alert: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("secret_file {}: {source}", path.display())]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error(transparent)]
    Syslog(#[from] SyslogTargetError),
    #[error("{target}: {source}")]
    Io {
        target: String,
        source: std::io::Error,
    },
    #[error("{0}: no address")]
    NoAddress(String),
    #[error("timed out")]
    Timeout,
    #[error("no [smtp] configured")]
    NoSmtp,
    #[error("{what} {address:?}: {source}")]
    Address {
        what: &'static str,
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("cannot build the mail: {0}")]
    Mail(#[from] lettre::error::Error),
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    #[error("smtp.ca_file: {0}")]
    Ca(lettre::transport::smtp::Error),
    #[error("smtp.ca_file: no PEM certificate in it")]
    NoCa,
}

/// How long one attempt may take (connect, send, status line).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionKind {
    Webhook,
    Email,
    Syslog,
}

impl ActionKind {
    pub const ALL: [ActionKind; 3] = [ActionKind::Webhook, ActionKind::Email, ActionKind::Syslog];
    pub fn as_str(&self) -> &'static str {
        match self {
            ActionKind::Webhook => "webhook",
            ActionKind::Email => "email",
            ActionKind::Syslog => "syslog",
        }
    }
}

/// One delivery waiting: where to, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Job {
    pub action: ActionKind,
    /// URL, syslog target, or the mail addresses joined by commas.
    pub target: String,
    /// The webhook's HMAC key file, if any.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    pub alert: Alert,
}

/// The on-disk queue of one action kind.
pub struct Outbox {
    pub kind: ActionKind,
    dir: PathBuf,
    max: usize,
    seq: AtomicU64,
    wake: tokio::sync::Notify,
    metrics: Arc<AlertMetrics>,
    history: Arc<HistoryStore>,
}

impl Outbox {
    pub fn open(
        state_dir: &Path,
        kind: ActionKind,
        max: usize,
        metrics: Arc<AlertMetrics>,
        history: Arc<HistoryStore>,
    ) -> std::io::Result<Outbox> {
        let dir = state_dir.join("outbox").join(kind.as_str());
        std::fs::create_dir_all(&dir)?;
        Ok(Outbox {
            kind,
            dir,
            max: max.max(1),
            seq: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            metrics,
            history,
        })
    }

    /// The waiting files, oldest first (names sort by time).
    fn pending(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    pub fn len(&self) -> usize {
        self.pending().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn record(&self, job: &Job, state: DeliveryState) {
        self.history
            .delivery(&job.alert.id, self.kind.as_str(), &job.target, state);
    }

    /// Queues a delivery; when the outbox is full the oldest waiting one is dropped (counted).
    pub fn push(&self, job: &Job) {
        let pending = self.pending();
        if pending.len() >= self.max {
            for p in &pending[..pending.len() + 1 - self.max] {
                let dropped = std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Job>(&b).ok());
                if std::fs::remove_file(p).is_ok() {
                    self.metrics.lost(self.kind);
                    if let Some(j) = dropped {
                        self.record(&j, DeliveryState::Lost);
                    }
                    tracing::warn!(action = self.kind.as_str(), file = %p.display(),
                        "alerts: outbox full, oldest delivery dropped");
                }
            }
        }
        let name = format!(
            "{:020}-{:08}.json",
            crate::timefmt::now_us(),
            self.seq.fetch_add(1, Ordering::Relaxed)
        );
        let tmp = self.dir.join(format!("{name}.tmp"));
        let result = serde_json::to_vec(job)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&tmp, bytes))
            .and_then(|_| std::fs::rename(&tmp, self.dir.join(&name)));
        match result {
            Ok(()) => {
                self.record(job, DeliveryState::Queued);
                self.wake.notify_one()
            }
            Err(e) => {
                self.metrics.lost(self.kind);
                self.record(job, DeliveryState::Lost);
                tracing::error!(action = self.kind.as_str(), error = %e, "alerts: cannot queue a delivery");
            }
        }
    }

    /// Delivers until `stop` is set: oldest first, a failing target waits (doubling back-off
    /// up to `max_backoff`) while the others go on.
    pub async fn run(
        self: Arc<Self>,
        senders: Arc<Senders>,
        max_backoff: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut backoff: HashMap<String, (Instant, Duration)> = HashMap::new();
        // Jobs whose failure is recorded: one `failed` record per delivery, not per attempt.
        let mut failed: HashSet<PathBuf> = HashSet::new();
        loop {
            if *stop.borrow() {
                return;
            }
            let now = Instant::now();
            let mut next_wake = Duration::from_secs(5);
            for path in self.pending() {
                let Ok(bytes) = std::fs::read(&path) else {
                    continue;
                };
                let job: Job = match serde_json::from_slice(&bytes) {
                    Ok(j) => j,
                    Err(e) => {
                        tracing::error!(file = %path.display(), error = %e, "alerts: unreadable delivery dropped");
                        let _ = std::fs::remove_file(&path);
                        self.metrics.lost(self.kind);
                        continue;
                    }
                };
                if let Some((until, _)) = backoff.get(&job.target) {
                    if *until > now {
                        next_wake = next_wake.min(until.saturating_duration_since(now));
                        continue;
                    }
                }
                match senders.send(&job).await {
                    Ok(()) => {
                        let _ = std::fs::remove_file(&path);
                        backoff.remove(&job.target);
                        failed.remove(&path);
                        self.metrics.sent(&job.alert.rule, self.kind);
                        self.record(&job, DeliveryState::Delivered);
                    }
                    Err(e) => {
                        self.metrics.failed(self.kind);
                        if failed.len() < 100_000 && failed.insert(path.clone()) {
                            self.record(&job, DeliveryState::Failed);
                        }
                        let delay = backoff
                            .get(&job.target)
                            .map_or(FIRST_BACKOFF, |(_, d)| (*d * 2).min(max_backoff));
                        tracing::warn!(action = self.kind.as_str(), target = %job.target, error = %e,
                            retry_in = ?delay, "alerts: delivery failed; kept in the outbox");
                        backoff.insert(job.target.clone(), (Instant::now() + delay, delay));
                        next_wake = next_wake.min(delay);
                    }
                }
            }
            tokio::select! {
                _ = stop.changed() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(next_wake) => {}
            }
        }
    }
}

/// What sends: the HTTP client, the mail server's settings, the instance name.
pub struct Senders {
    http: reqwest::Client,
    smtp: Option<SmtpConfig>,
    smtp_password: Option<String>,
    /// With `starttls`: the TLS parameters (the built-in roots and `ca_file`'s).
    smtp_tls: Option<lettre::transport::smtp::client::TlsParameters>,
    hostname: String,
}

impl Senders {
    /// `ca_pem`: the contents of `[smtp] ca_file`, if set.
    pub fn new(
        smtp: Option<SmtpConfig>,
        smtp_password: Option<String>,
        ca_pem: Option<Vec<u8>>,
        hostname: String,
    ) -> Result<Senders, DeliverError> {
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("dnsward/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        let smtp_tls = match smtp.as_ref().filter(|s| s.starttls) {
            Some(s) => Some(smtp_tls(&s.server, ca_pem.as_deref())?),
            None => None,
        };
        Ok(Senders {
            http,
            smtp,
            smtp_password,
            smtp_tls,
            hostname,
        })
    }

    pub async fn send(&self, job: &Job) -> Result<(), DeliverError> {
        match job.action {
            ActionKind::Webhook => self.webhook(job).await,
            ActionKind::Syslog => self.syslog(job).await,
            ActionKind::Email => self.email(job).await,
        }
    }

    async fn webhook(&self, job: &Job) -> Result<(), DeliverError> {
        let body = serde_json::to_vec(&job.alert)?;
        let mut req = self
            .http
            .post(&job.target)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(p) = &job.secret_file {
            let secret = std::fs::read_to_string(p).map_err(|source| DeliverError::Secret {
                path: p.clone(),
                source,
            })?;
            req = req.header(
                "X-Dnsward-Signature",
                signature(secret.trim().as_bytes(), &body),
            );
        }
        // Only the status line and headers are read: a receiver sending gigabytes costs nothing.
        let resp = req.body(body).send().await?;
        let status = resp.status();
        drop(resp);
        if status.is_success() {
            Ok(())
        } else {
            Err(DeliverError::Status(status))
        }
    }

    async fn syslog(&self, job: &Job) -> Result<(), DeliverError> {
        let msg = rfc5424(&job.alert, &self.hostname);
        let target = SyslogTarget::parse(&job.target)?;
        let io = |target: &str| {
            let target = target.to_string();
            move |source| DeliverError::Io { target, source }
        };
        let fut = async {
            match target {
                SyslogTarget::Udp(addr) => {
                    let peer = resolve(&addr).await?;
                    let bind: SocketAddr = if peer.is_ipv4() {
                        ([0, 0, 0, 0], 0).into()
                    } else {
                        ([0u16; 8], 0).into()
                    };
                    let sock = tokio::net::UdpSocket::bind(bind).await.map_err(io(&addr))?;
                    sock.send_to(msg.as_bytes(), peer)
                        .await
                        .map_err(io(&addr))?;
                    Ok(())
                }
                SyslogTarget::Tcp(addr) => {
                    let peer = resolve(&addr).await?;
                    let mut s = tokio::net::TcpStream::connect(peer)
                        .await
                        .map_err(io(&addr))?;
                    // RFC 6587 octet counting.
                    let framed = format!("{} {msg}", msg.len());
                    s.write_all(framed.as_bytes()).await.map_err(io(&addr))?;
                    s.shutdown().await.map_err(io(&addr))
                }
            }
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, fut)
            .await
            .map_err(|_| DeliverError::Timeout)?
    }

    async fn email(&self, job: &Job) -> Result<(), DeliverError> {
        use lettre::message::header::ContentType;
        use lettre::transport::smtp::client::Tls;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let smtp = self.smtp.as_ref().ok_or(DeliverError::NoSmtp)?;
        let address = |what: &'static str, a: &str| {
            a.parse::<lettre::message::Mailbox>()
                .map_err(|source| DeliverError::Address {
                    what,
                    address: a.to_string(),
                    source,
                })
        };
        let mut builder = Message::builder()
            .from(address("from", &smtp.from)?)
            .subject(format!(
                "[dnsward] {}: {}",
                job.alert.rule,
                first_chars(&job.alert.message, 120)
            ));
        for to in job.target.split(',').filter(|s| !s.is_empty()) {
            builder = builder.to(address("to", to)?);
        }
        let message = builder
            .header(ContentType::TEXT_PLAIN)
            .body(super::text(&job.alert))?;
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.server)
            .port(smtp.port)
            .timeout(Some(ATTEMPT_TIMEOUT));
        if let Some(tls) = &self.smtp_tls {
            // STARTTLS required: a server that does not offer it gets no mail (and no password).
            transport = transport.tls(Tls::Required(tls.clone()));
        }
        if let (Some(user), Some(pass)) = (&smtp.username, &self.smtp_password) {
            transport =
                transport.credentials(lettre::transport::smtp::authentication::Credentials::new(
                    user.clone(),
                    pass.clone(),
                ));
        }
        let transport = transport.build();
        tokio::time::timeout(ATTEMPT_TIMEOUT * 2, transport.send(message))
            .await
            .map_err(|_| DeliverError::Timeout)??;
        Ok(())
    }
}

/// STARTTLS parameters for `server`: the built-in roots, and the CA certificates of `ca_pem`.
fn smtp_tls(
    server: &str,
    ca_pem: Option<&[u8]>,
) -> Result<lettre::transport::smtp::client::TlsParameters, DeliverError> {
    use lettre::transport::smtp::client::{Certificate, TlsParameters};
    let mut b = TlsParameters::builder(server.to_string());
    if let Some(pem) = ca_pem {
        if !String::from_utf8_lossy(pem).contains("-----BEGIN CERTIFICATE-----") {
            return Err(DeliverError::NoCa);
        }
        b = b.add_root_certificate(Certificate::from_pem(pem).map_err(DeliverError::Ca)?);
    }
    b.build_rustls().map_err(DeliverError::Ca)
}

async fn resolve(hostport: &str) -> Result<SocketAddr, DeliverError> {
    tokio::net::lookup_host(hostport)
        .await
        .map_err(|source| DeliverError::Io {
            target: hostport.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| DeliverError::NoAddress(hostport.to_string()))
}

fn first_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// `sha256=` and the lower-case hex HMAC-SHA256 of the body under the key.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, body);
    format!("sha256={}", data_encoding::HEXLOWER.encode(tag.as_ref()))
}

/// One RFC 5424 message: facility local0, severity warning; structured data with the rule,
/// kind and client; the alert's one-line message.
pub fn rfc5424(a: &Alert, hostname: &str) -> String {
    let esc = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_control())
            .flat_map(|c| match c {
                '"' | '\\' | ']' => vec!['\\', c],
                c => vec![c],
            })
            .collect()
    };
    let host: String = hostname
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    let pri = 16 * 8 + 4;
    let mut sd = format!(
        "[dnsward@32473 rule=\"{}\" kind=\"{}\"",
        esc(&a.rule),
        esc(&a.kind)
    );
    if let Some(c) = &a.client {
        sd += &format!(" client=\"{}\"", esc(c));
    }
    if let Some(n) = &a.client_name {
        sd += &format!(" client_name=\"{}\"", esc(n));
    }
    sd += &format!(" count=\"{}\"]", a.count);
    let msg: String = a.message.chars().filter(|c| !c.is_control()).collect();
    format!(
        "<{pri}>1 {} {} dnsward - alert {sd} {msg}",
        a.time,
        if host.is_empty() { "-" } else { &host }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_targets() {
        assert_eq!(
            SyslogTarget::parse("udp://127.0.0.1:514"),
            Ok(SyslogTarget::Udp("127.0.0.1:514".into()))
        );
        assert!(matches!(
            SyslogTarget::parse("tcp://siem.example:601"),
            Ok(SyslogTarget::Tcp(_))
        ));
        for bad in ["udp://host", "http://x:1", "127.0.0.1:514", "tcp://:5"] {
            assert!(SyslogTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hmac_matches_rfc_4231_case_2() {
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
