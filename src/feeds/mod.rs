//! Remote lists (`[[lists]] url`): fetched on a timer, judged by the sanity guards, kept on
//! disk as the last good copy, and handed to the policy as a plain list file.
//!
//! Dependency rule: the policy engine knows nothing of HTTP. A feed's copy in force is an
//! ordinary list file (`cache_dir/NAME.list`) that the policy loads like any `path` list; after
//! a good download the feed asks for a reload through `PolicyStore::reload`, the same path as
//! SIGHUP (built off the answer path, swapped atomically, no query dropped).
//!
//! Start-up never waits for the network: the policy loads the cached copy (or the shipped
//! snapshot, seeded into the cache) first, and every feed is fetched in the background at once.
//!
//! - `config.rs`: `[feeds]`, the feed keys of `[[lists]]` and their checks.
//! - `fetch.rs`: the download (reqwest): validators, size limit, timeout, redirects, retries.
//! - `guard.rs`: is the download a list, and not one that wipes protection?
//! - `intake.rs`: a download's way in (guards, then the file moves).
//! - `store.rs`: the files in `cache_dir`, written atomically, and the persisted status.
//! - `report.rs`: the status for `/api/stats` and `dnsward check`.
//! - `metrics.rs`: the feed metrics.

pub mod config;
pub mod fetch;
pub mod guard;
mod intake;
pub mod metrics;
pub mod report;
pub mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Serialize;

use crate::policy::reload::PolicyStore;
use crate::policy::{Category, ListFormat};
use crate::timefmt::unix_now;
use fetch::{FetchError, Fetched, Fetcher, Validators};
use intake::{judge_download, Judged};
use metrics::{FeedMetrics, FetchLabels, ListLabel, ProblemLabels};
use store::{CopySource, FeedFiles, FeedState, Rejection, StoreError};

pub use config::FeedsConfig;
pub use report::{check_report, FeedStatus};

/// After a failed fetch the next try comes sooner than `refresh`, but not sooner than this.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("no feed is named {0:?}")]
    UnknownFeed(String),
    #[error("feed {0:?} has no rejected download to accept")]
    NothingRejected(String),
    #[error(
        "feed {name:?}: the rejected download is not a list and cannot be accepted ({reason})"
    )]
    NotAcceptable { name: String, reason: String },
    #[error("feed cache: {0}")]
    Store(#[from] StoreError),
    #[error("feed client: {0}")]
    Fetch(#[from] FetchError),
}

/// One `[[lists]]` entry with a `url`.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    pub name: String,
    pub url: String,
    pub refresh: Duration,
    pub snapshot: Option<PathBuf>,
    pub format: ListFormat,
    pub category: Category,
    pub files: FeedFiles,
}

/// What one refresh did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    Updated {
        entries: usize,
        bad_lines: usize,
    },
    NotModified,
    /// A full download identical to the copy in force (a feed without validators).
    Unchanged,
    Rejected {
        kind: String,
        reason: String,
        acceptable: bool,
    },
    Failed {
        kind: String,
        error: String,
    },
}

struct Feed {
    spec: FeedSpec,
    state: Mutex<FeedState>,
    /// One fetch or accept at a time per feed (the timer and the admin API).
    busy: tokio::sync::Mutex<()>,
}

pub struct Feeds {
    feeds: Vec<Arc<Feed>>,
    fetcher: Fetcher,
    max_shrink: f64,
    metrics: FeedMetrics,
    policy: Arc<PolicyStore>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Seeds the cache from the shipped snapshots, before the policy loads (so the policy finds a
/// copy in force for every feed that has one). Blocking file work: call it off the runtime.
/// `specs`: every feed of the config (`Config::feed_specs`), `cache_dir` resolved.
pub fn prepare(specs: Vec<FeedSpec>, cache_dir: &Path) -> Result<Vec<FeedSpec>, FeedError> {
    if specs.is_empty() {
        return Ok(specs);
    }
    store::ensure_dir(cache_dir)?;
    for f in &specs {
        let mut state = FeedState::load(&f.files);
        if let Some(snapshot) = &f.snapshot {
            if let Some(mtime) = store::seed_from_snapshot(&f.files, snapshot)? {
                state = FeedState {
                    url: f.url.clone(),
                    source: CopySource::Snapshot,
                    copy_unix: Some(mtime),
                    entries: count_entries(f, &f.files.list),
                    ..Default::default()
                };
                tracing::info!(list = %f.name, snapshot = %snapshot.display(), entries = state.entries, "feed: no cached copy yet, starting from the shipped snapshot");
                state.save(&f.files)?;
            }
        }
        if state.source == CopySource::None && f.files.list.is_file() {
            // A cached copy without its state file (deleted, or an older dnsward): count it,
            // so the shrink guard has a base.
            state.source = CopySource::Download;
            state.entries = count_entries(f, &f.files.list);
            state.copy_unix = store::file_mtime(&f.files.list);
            state.save(&f.files)?;
        }
        if state.url != f.url {
            // Another feed behind the same name: its validators mean nothing here.
            state.url = f.url.clone();
            state.etag = None;
            state.last_modified = None;
            state.save(&f.files)?;
        }
    }
    Ok(specs)
}

/// Up to 5 % more: a fleet of resolvers started together does not hit a feed in one second.
fn with_jitter(wait: Duration) -> Duration {
    let spread = (wait.as_millis() / 20).max(1) as u64;
    wait + Duration::from_millis(rand::random::<u64>() % spread)
}

/// Entries of a list file as the policy counts them (0 when it does not parse).
fn count_entries(f: &FeedSpec, path: &std::path::Path) -> usize {
    guard::check_list(path, f.format, f.category, 0, 1.0)
        .map(|p| p.entries)
        .or_else(|r| r.entries().ok_or(()))
        .unwrap_or(0)
}

impl Feeds {
    /// Starts one refresh task per feed: the first fetch at once, then every `refresh`.
    pub fn start(
        cfg: &FeedsConfig,
        specs: Vec<FeedSpec>,
        policy: Arc<PolicyStore>,
    ) -> Result<Arc<Feeds>, FeedError> {
        let feeds = specs
            .into_iter()
            .map(|spec| {
                Arc::new(Feed {
                    state: Mutex::new(FeedState::load(&spec.files)),
                    spec,
                    busy: tokio::sync::Mutex::new(()),
                })
            })
            .collect();
        let this = Arc::new(Feeds {
            feeds,
            fetcher: Fetcher::new(cfg)?,
            max_shrink: cfg.max_shrink,
            metrics: FeedMetrics::new(),
            policy,
            tasks: Mutex::new(Vec::new()),
        });
        let tasks = this
            .feeds
            .iter()
            .map(|feed| {
                let (this, feed) = (Arc::clone(&this), Arc::clone(feed));
                tokio::spawn(async move {
                    loop {
                        let wait = match this.refresh_feed(&feed).await {
                            Outcome::Failed { .. } => feed.spec.refresh.min(RETRY_AFTER_FAILURE),
                            _ => feed.spec.refresh,
                        };
                        tokio::time::sleep(with_jitter(wait)).await;
                    }
                })
            })
            .collect();
        *this.tasks.lock() = tasks;
        Ok(this)
    }

    pub fn stop(&self) {
        for t in self.tasks.lock().drain(..) {
            t.abort();
        }
    }

    fn feed(&self, name: &str) -> Result<&Arc<Feed>, FeedError> {
        self.feeds
            .iter()
            .find(|f| f.spec.name == name)
            .ok_or_else(|| FeedError::UnknownFeed(name.to_string()))
    }

    /// Fetches one feed now (`POST /api/lists/NAME/refresh`).
    pub async fn refresh(&self, name: &str) -> Result<Outcome, FeedError> {
        let feed = Arc::clone(self.feed(name)?);
        Ok(self.refresh_feed(&feed).await)
    }

    async fn refresh_feed(&self, feed: &Arc<Feed>) -> Outcome {
        let _one = feed.busy.lock().await;
        let name = &feed.spec.name;
        let validators = {
            let s = feed.state.lock();
            if feed.spec.files.list.is_file() && s.source == CopySource::Download {
                Validators {
                    etag: s.etag.clone(),
                    last_modified: s.last_modified.clone(),
                }
            } else {
                Validators::default()
            }
        };
        let outcome = match self.fetcher.fetch(&feed.spec.url, &validators).await {
            Ok(Fetched::NotModified) => {
                tracing::info!(list = %name, "feed not modified (304)");
                self.update(feed, |s| s.last_success_unix = Some(unix_now()));
                Outcome::NotModified
            }
            Ok(Fetched::Body {
                bytes,
                content_type,
                validators,
            }) => self.judge(feed, bytes, content_type, validators).await,
            Err(e) => {
                let entries = feed.state.lock().entries;
                tracing::warn!(list = %name, url = %feed.spec.url, error = %e, entries, "feed unreachable; the last good copy stays in force");
                self.update(feed, |s| s.record_failure(e.to_string(), unix_now()));
                Outcome::Failed {
                    kind: e.kind().into(),
                    error: e.to_string(),
                }
            }
        };
        self.count(name, &outcome);
        outcome
    }

    /// Runs the guards on a download (off the runtime: parsing a big list takes a while) and
    /// puts it in force, or keeps it aside as rejected.
    async fn judge(
        &self,
        feed: &Arc<Feed>,
        bytes: Vec<u8>,
        content_type: Option<String>,
        validators: Validators,
    ) -> Outcome {
        let (f, max_shrink) = (Arc::clone(feed), self.max_shrink);
        let previous = feed.state.lock().entries;
        let judged = tokio::task::spawn_blocking(move || {
            judge_download(
                &f.spec,
                &bytes,
                content_type.as_deref(),
                previous,
                max_shrink,
            )
        })
        .await
        .unwrap_or_else(|e| Err(Judged::Store(format!("judging the download crashed: {e}"))));
        let name = &feed.spec.name;
        match judged {
            Ok(None) => {
                tracing::info!(list = %name, "feed unchanged");
                let (etag, modified) = (validators.etag, validators.last_modified);
                self.update(feed, |s| s.record_unchanged(etag, modified, unix_now()));
                Outcome::Unchanged
            }
            Ok(Some(passed)) => {
                tracing::info!(list = %name, entries = passed.entries, bad_lines = passed.bad_lines, "feed updated");
                self.policy.reload(&format!("feed {name} updated")).await;
                // Recorded once the new copy is in force, so the status never runs ahead of
                // what is blocked.
                let (etag, modified) = (validators.etag, validators.last_modified);
                self.update(feed, |s| {
                    s.record_download(etag, modified, passed.entries, unix_now())
                });
                Outcome::Updated {
                    entries: passed.entries,
                    bad_lines: passed.bad_lines,
                }
            }
            Err(Judged::Rejected(r)) => {
                tracing::error!(list = %name, url = %feed.spec.url, kept_entries = previous, reason = %r,
                    "feed download rejected; the last good copy stays in force{}",
                    if r.acceptable() { format!(" (POST /api/lists/{name}/accept puts it in force)") } else { String::new() });
                let rejection = Rejection {
                    kind: r.kind().into(),
                    reason: r.to_string(),
                    unix: unix_now(),
                    entries: r.entries(),
                    acceptable: r.acceptable(),
                    etag: validators.etag,
                    last_modified: validators.last_modified,
                };
                self.update(feed, |s| s.record_rejection(rejection));
                Outcome::Rejected {
                    kind: r.kind().into(),
                    reason: r.to_string(),
                    acceptable: r.acceptable(),
                }
            }
            Err(Judged::Store(e)) => {
                tracing::error!(list = %name, error = %e, "feed download could not be stored; the last good copy stays in force");
                self.update(feed, |s| s.record_failure(e.clone(), unix_now()));
                Outcome::Failed {
                    kind: "store".into(),
                    error: e,
                }
            }
        }
    }

    /// Puts the rejected download in force once (`POST /api/lists/NAME/accept`).
    pub async fn accept(&self, name: &str) -> Result<usize, FeedError> {
        let feed = Arc::clone(self.feed(name)?);
        let _one = feed.busy.lock().await;
        let rejection = feed.state.lock().rejected.clone();
        let Some(r) = rejection else {
            return Err(FeedError::NothingRejected(name.to_string()));
        };
        if !r.acceptable || !feed.spec.files.rejected.is_file() {
            return Err(FeedError::NotAcceptable {
                name: name.to_string(),
                reason: r.reason,
            });
        }
        store::replace(&feed.spec.files.rejected, &feed.spec.files.list)?;
        let entries = r.entries.unwrap_or(0);
        tracing::warn!(list = %name, entries, reason = %r.reason, "rejected feed download accepted by an operator; it is now the copy in force");
        self.update(&feed, |s| s.record_accept(r));
        self.policy
            .reload(&format!("feed {name}: rejected download accepted"))
            .await;
        Ok(entries)
    }

    /// Changes the state and writes it to disk (a failed write is logged: the state in memory
    /// is still right, and the list file, the part that protects, is already in place).
    fn update(&self, feed: &Feed, change: impl FnOnce(&mut FeedState)) {
        let mut s = feed.state.lock();
        change(&mut s);
        if let Err(e) = s.save(&feed.spec.files) {
            tracing::error!(list = %feed.spec.name, error = %e, "cannot write the feed state");
        }
    }

    fn count(&self, name: &str, outcome: &Outcome) {
        let (result, problem) = match outcome {
            Outcome::Updated { .. } => ("updated", None),
            Outcome::NotModified => ("not_modified", None),
            Outcome::Unchanged => ("unchanged", None),
            Outcome::Rejected { kind, .. } => ("rejected", Some(kind.as_str())),
            Outcome::Failed { kind, .. } => ("failed", Some(kind.as_str())),
        };
        let list = name.to_string();
        self.metrics
            .fetches
            .get_or_create(&FetchLabels {
                list: list.clone(),
                result,
            })
            .inc();
        if let Some(kind) = problem {
            self.metrics
                .problems
                .get_or_create(&ProblemLabels {
                    list,
                    kind: static_kind(kind),
                })
                .inc();
        }
    }

    pub fn status(&self) -> Vec<FeedStatus> {
        let now = unix_now();
        self.feeds
            .iter()
            .map(|f| report::status_of(&f.spec, f.state.lock().clone(), now))
            .collect()
    }

    /// The feed metrics, gauges read now; without `# EOF`.
    pub fn encode_metrics(&self, out: &mut String) {
        let m = &self.metrics;
        for s in self.status() {
            let l = ListLabel { list: s.name };
            m.entries.get_or_create(&l).set(s.state.entries as i64);
            m.age
                .get_or_create(&l)
                .set(s.age_secs.map_or(-1, |a| a as i64));
            m.last_success
                .get_or_create(&l)
                .set(s.state.last_success_unix.unwrap_or(0) as f64);
            m.last_error
                .get_or_create(&l)
                .set(s.state.last_error_unix.unwrap_or(0) as f64);
            m.rejected_pending
                .get_or_create(&l)
                .set(s.state.rejected.is_some() as i64);
        }
        m.encode_into(out);
    }
}

/// Metric label values are `&'static str`: the kinds are a closed set.
fn static_kind(kind: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "content_type",
        "html",
        "binary",
        "bad_lines",
        "shrink",
        "unreadable",
        "timeout",
        "redirect",
        "too_large",
        "http_status",
        "transport",
        "client",
        "store",
    ];
    KINDS
        .iter()
        .find(|k| **k == kind)
        .copied()
        .unwrap_or("other")
}
