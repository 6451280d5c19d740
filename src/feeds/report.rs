//! A feed's status as people and tools read it: `/api/stats` (JSON), `/metrics` (through
//! `Feeds::encode_metrics`) and the feed lines of `dnsward check`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::store::{CopySource, FeedState};
use super::FeedSpec;
use crate::timefmt::unix_now;

/// A feed's status for `/api/stats` and `dnsward check`.
#[derive(Debug, Clone, Serialize)]
pub struct FeedStatus {
    pub name: String,
    pub refresh_secs: u64,
    pub file: PathBuf,
    #[serde(flatten)]
    pub state: FeedState,
    pub age_secs: Option<u64>,
}

pub(super) fn status_of(spec: &FeedSpec, state: FeedState, now: u64) -> FeedStatus {
    FeedStatus {
        name: spec.name.clone(),
        refresh_secs: spec.refresh.as_secs(),
        file: spec.files.list.clone(),
        age_secs: state.age_secs(now),
        state: FeedState {
            url: spec.url.clone(),
            ..state
        },
    }
}

/// The feed lines of `dnsward check`, from what the last `serve` left in `cache_dir`.
/// `specs`: every feed of the config (`Config::feed_specs`).
pub fn check_report(specs: Vec<FeedSpec>) -> Vec<String> {
    let now = unix_now();
    specs
        .into_iter()
        .map(|spec| {
            let state = FeedState::load(&spec.files);
            let snapshot = spec.snapshot.is_some();
            let st = status_of(&spec, state, now);
            describe(&st, snapshot, now)
        })
        .collect()
}

fn describe(s: &FeedStatus, has_snapshot: bool, now: u64) -> String {
    let ago = |t: Option<u64>| {
        t.map_or("never".to_string(), |t| {
            format!(
                "{} ago",
                humantime::format_duration(Duration::from_secs(now.saturating_sub(t)))
            )
        })
    };
    let source = match s.state.source {
        CopySource::None => {
            return format!(
                "feed {:?} ({}): no download yet, {}",
                s.name,
                s.state.url,
                if has_snapshot {
                    "the shipped snapshot is used"
                } else {
                    "the list is empty until the first download"
                }
            )
        }
        CopySource::Snapshot => "the shipped snapshot".to_string(),
        CopySource::Download => "a download".to_string(),
    };
    let mut out = format!(
        "feed {:?} ({}, every {}): {} entries in force from {}, {} old; last success {}",
        s.name,
        s.state.url,
        humantime::format_duration(Duration::from_secs(s.refresh_secs)),
        s.state.entries,
        source,
        s.age_secs
            .map_or("unknown".to_string(), |a| humantime::format_duration(
                Duration::from_secs(a)
            )
            .to_string()),
        ago(s.state.last_success_unix),
    );
    if let Some(e) = &s.state.last_error {
        out.push_str(&format!(
            "\n  last error ({}): {e}",
            ago(s.state.last_error_unix)
        ));
    }
    if let Some(r) = &s.state.rejected {
        out.push_str(&format!(
            "\n  warning: download rejected ({}) {}: {}{}",
            r.kind,
            ago(Some(r.unix)),
            r.reason,
            if r.acceptable {
                format!("; POST /api/lists/{}/accept puts it in force", s.name)
            } else {
                String::new()
            }
        ));
    }
    out
}
