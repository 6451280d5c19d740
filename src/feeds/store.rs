//! A feed's files in `[feeds] cache_dir`: the copy in force (`NAME.list`), its status and HTTP
//! validators (`NAME.state.json`), and a rejected download waiting for an operator
//! (`NAME.rejected`). Every write is atomic (a temporary file in the same directory, synced,
//! then renamed), so a crash never leaves half a list in force.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::timefmt::unix_now;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where one feed's files live.
#[derive(Debug, Clone)]
pub struct FeedFiles {
    pub list: PathBuf,
    pub state: PathBuf,
    pub rejected: PathBuf,
    /// Downloads land here before they are judged.
    pub download: PathBuf,
}

impl FeedFiles {
    pub fn new(cache_dir: &Path, name: &str) -> FeedFiles {
        FeedFiles {
            list: cache_dir.join(format!("{name}.list")),
            state: cache_dir.join(format!("{name}.state.json")),
            rejected: cache_dir.join(format!("{name}.rejected")),
            download: cache_dir.join(format!("{name}.download.tmp")),
        }
    }
}

/// The file the policy loads for a feed: the cached copy when there is one, else the shipped
/// snapshot, else the cache path (missing: the list is empty until the first download).
pub fn in_force_path(cache_dir: &Path, name: &str, snapshot: Option<&Path>) -> PathBuf {
    let files = FeedFiles::new(cache_dir, name);
    match snapshot {
        Some(s) if !files.list.is_file() => s.to_path_buf(),
        _ => files.list,
    }
}

/// Where the copy in force came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopySource {
    /// No copy yet: the list is empty until the first good download.
    #[default]
    None,
    /// The snapshot shipped with the config (`[[lists]] snapshot`).
    Snapshot,
    /// A download from the feed.
    Download,
}

/// A download the guards refused, kept for `POST /api/lists/NAME/accept` when it is a list.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rejection {
    /// Short machine name of the guard (`shrink`, `bad_lines`, `html`, ...).
    pub kind: String,
    pub reason: String,
    pub unix: u64,
    /// Entries of the rejected download, when it parsed as a list.
    pub entries: Option<usize>,
    /// Whether an operator may put it in force (only lists: never an HTML page or binary).
    pub acceptable: bool,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Everything remembered about a feed between runs (and read by `dnsward check`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FeedState {
    /// The URL the validators belong to: a changed URL starts without them.
    pub url: String,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub source: CopySource,
    /// When the copy in force was downloaded (or the snapshot's modification time).
    pub copy_unix: Option<u64>,
    /// Entries of the copy in force (the base of the shrink guard).
    pub entries: usize,
    /// Last fetch that ended well: a download put in force, or 304 Not Modified.
    pub last_success_unix: Option<u64>,
    pub last_error: Option<String>,
    pub last_error_unix: Option<u64>,
    /// A rejected download waiting for an operator's decision.
    pub rejected: Option<Rejection>,
}

impl FeedState {
    /// The state on disk; a missing or unreadable file is a fresh state (logged when unreadable).
    pub fn load(files: &FeedFiles) -> FeedState {
        match std::fs::read(&files.state) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(file = %files.state.display(), error = %e, "feed state unreadable; starting without validators");
                FeedState::default()
            }),
            Err(_) => FeedState::default(),
        }
    }

    pub fn save(&self, files: &FeedFiles) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(self).expect("a FeedState serializes");
        write_atomic(&files.state, &bytes)
    }

    /// A fetch that failed, or a download that could not be stored.
    pub fn record_failure(&mut self, error: String, now: u64) {
        self.last_error = Some(error);
        self.last_error_unix = Some(now);
    }

    /// The feed sent the copy in force again (a full download of the same bytes).
    pub fn record_unchanged(
        &mut self,
        etag: Option<String>,
        last_modified: Option<String>,
        now: u64,
    ) {
        self.etag = etag;
        self.last_modified = last_modified;
        self.last_success_unix = Some(now);
        self.rejected = None;
    }

    /// A download passed the guards and is the copy in force now.
    pub fn record_download(
        &mut self,
        etag: Option<String>,
        last_modified: Option<String>,
        entries: usize,
        now: u64,
    ) {
        self.record_unchanged(etag, last_modified, now);
        self.source = CopySource::Download;
        self.copy_unix = Some(now);
        self.entries = entries;
    }

    /// A download the guards refused: the copy in force stays.
    pub fn record_rejection(&mut self, rejection: Rejection) {
        self.last_error = Some(rejection.reason.clone());
        self.last_error_unix = Some(rejection.unix);
        self.rejected = Some(rejection);
    }

    /// An operator put the rejected download in force.
    pub fn record_accept(&mut self, r: Rejection) {
        self.etag = r.etag;
        self.last_modified = r.last_modified;
        self.source = CopySource::Download;
        self.copy_unix = Some(r.unix);
        self.entries = r.entries.unwrap_or(0);
        self.rejected = None;
    }

    /// Seconds since the copy in force was downloaded (or the snapshot written).
    pub fn age_secs(&self, now: u64) -> Option<u64> {
        self.copy_unix.map(|t| now.saturating_sub(t))
    }
}

/// Writes `bytes` to `path` atomically: readers see the old file or the new one, never a part.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = temp_beside(path);
    let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))
}

/// Renames `from` over `to` (same directory: atomic).
pub fn replace(from: &Path, to: &Path) -> Result<(), StoreError> {
    std::fs::rename(from, to).map_err(io_err(to))
}

fn temp_beside(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Creates the cache directory.
pub fn ensure_dir(dir: &Path) -> Result<(), StoreError> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

/// Copies the shipped snapshot into the cache as the first copy in force, when the cache has
/// none. Returns the snapshot's modification time (its age stands for the copy's age).
pub fn seed_from_snapshot(files: &FeedFiles, snapshot: &Path) -> Result<Option<u64>, StoreError> {
    if files.list.is_file() {
        return Ok(None);
    }
    let bytes = std::fs::read(snapshot).map_err(io_err(snapshot))?;
    write_atomic(&files.list, &bytes)?;
    Ok(Some(file_mtime(snapshot).unwrap_or_else(unix_now)))
}

/// A file's modification time, in seconds since the epoch.
pub fn file_mtime(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    t.duration_since(SystemTime::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_snapshot_seeds_once() {
        let dir = tempfile::tempdir().unwrap();
        let files = FeedFiles::new(dir.path(), "f");
        assert_eq!(FeedState::load(&files).source, CopySource::None);
        let state = FeedState {
            url: "https://x/".into(),
            etag: Some("\"e1\"".into()),
            entries: 3,
            ..Default::default()
        };
        state.save(&files).unwrap();
        let back = FeedState::load(&files);
        assert_eq!((back.etag.as_deref(), back.entries), (Some("\"e1\""), 3));

        let snap = dir.path().join("snap.txt");
        std::fs::write(&snap, "a.example\n").unwrap();
        assert_eq!(in_force_path(dir.path(), "f", Some(&snap)), snap);
        assert!(seed_from_snapshot(&files, &snap).unwrap().is_some());
        assert_eq!(in_force_path(dir.path(), "f", Some(&snap)), files.list);
        std::fs::write(&files.list, "b.example\n").unwrap();
        assert!(seed_from_snapshot(&files, &snap).unwrap().is_none());
        assert_eq!(std::fs::read_to_string(&files.list).unwrap(), "b.example\n");
    }
}
