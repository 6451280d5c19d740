//! Downloading one feed with reqwest (rustls, gzip): conditional requests (ETag /
//! If-Modified-Since), the size limit enforced while the body streams in (after gzip decoding,
//! so a compression bomb stops at the limit too), a timeout over the whole download, a bounded
//! number of redirects that never leave https, and retries with doubling backoff.

use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, ETAG, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use reqwest::StatusCode;

use super::config::{is_loopback_host, FeedsConfig};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("redirect refused: {0}")]
    Redirect(String),
    #[error("body larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("{0}")]
    Transport(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Timeout(_) => "timeout",
            FetchError::Redirect(_) => "redirect",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::Status(_) => "http_status",
            FetchError::Transport(_) => "transport",
            FetchError::Client(_) => "client",
        }
    }

    /// Worth another attempt: the feed may answer in a moment. A body too large, a redirect
    /// loop or a 4xx will be the same again.
    fn retryable(&self) -> bool {
        match self {
            FetchError::Timeout(_) | FetchError::Transport(_) => true,
            FetchError::Status(s) => *s >= 500 || *s == 429,
            _ => false,
        }
    }
}

/// The validators of the copy in force, sent so an unchanged feed answers 304.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

#[derive(Debug)]
pub enum Fetched {
    NotModified,
    Body {
        bytes: Vec<u8>,
        content_type: Option<String>,
        validators: Validators,
    },
}

pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_bytes: u64,
    retries: u32,
    backoff: Duration,
}

impl Fetcher {
    pub fn new(cfg: &FeedsConfig) -> Result<Fetcher, FetchError> {
        let max_redirects = cfg.max_redirects;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > max_redirects {
                attempt.error(format!("more than {max_redirects} redirects"))
            } else if attempt.url().scheme() != "https" && !loopback_to_loopback(&attempt) {
                // Plain http only where the feed itself is on this machine: a remote feed must
                // not be able to steer the fetcher to a loopback service or off TLS.
                let to = attempt.url().to_string();
                attempt.error(format!("to {to}: a feed is fetched over https only"))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .user_agent(concat!(
                "dnsward/",
                env!("CARGO_PKG_VERSION"),
                " (threat feed fetcher)"
            ))
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout.min(Duration::from_secs(10)))
            .redirect(redirects)
            .gzip(true)
            .build()
            .map_err(|e| FetchError::Client(chain(&e)))?;
        Ok(Fetcher {
            client,
            timeout: cfg.timeout,
            max_bytes: cfg.max_size_mb * 1024 * 1024,
            retries: cfg.retries,
            backoff: cfg.retry_backoff,
        })
    }

    /// Fetches `url`, retrying transient failures `retries` times with doubling backoff.
    pub async fn fetch(&self, url: &str, v: &Validators) -> Result<Fetched, FetchError> {
        let mut attempt = 0u32;
        loop {
            match self.fetch_once(url, v).await {
                Err(e) if e.retryable() && attempt < self.retries => {
                    let wait = self.backoff.saturating_mul(1 << attempt.min(16));
                    tracing::warn!(%url, error = %e, retry_in = ?wait, "feed download failed; retrying");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn fetch_once(&self, url: &str, v: &Validators) -> Result<Fetched, FetchError> {
        let mut req = self.client.get(url);
        if let Some(e) = &v.etag {
            req = req.header(IF_NONE_MATCH, e);
        }
        if let Some(m) = &v.last_modified {
            req = req.header(IF_MODIFIED_SINCE, m);
        }
        let mut resp = req.send().await.map_err(|e| self.classify(e))?;
        let status = resp.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|h: &reqwest::header::HeaderValue| h.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE);
        let validators = Validators {
            etag: header(ETAG),
            last_modified: header(LAST_MODIFIED),
        };
        let limit = self.max_bytes;
        // Content-Length is the compressed size with gzip, so this is only an early no; the
        // count below holds whatever the header says.
        if resp.content_length().is_some_and(|n| n > limit) {
            return Err(FetchError::TooLarge { limit });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(e))? {
            if bytes.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge { limit });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Fetched::Body {
            bytes,
            content_type,
            validators,
        })
    }

    fn classify(&self, e: reqwest::Error) -> FetchError {
        if e.is_timeout() {
            FetchError::Timeout(self.timeout)
        } else if e.is_redirect() {
            FetchError::Redirect(chain(&e))
        } else {
            FetchError::Transport(chain(&e))
        }
    }
}

/// A redirect from a plain-http loopback feed (a local mirror, a test) to loopback.
fn loopback_to_loopback(attempt: &reqwest::redirect::Attempt<'_>) -> bool {
    let origin = attempt.previous().first();
    origin.is_some_and(|o| o.scheme() == "http" && is_loopback_host(o))
        && is_loopback_host(attempt.url())
}

/// An error with its causes (reqwest's own text is often just "error sending request").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}
