//! The live policy: the current `Snapshot` behind an `ArcSwap`, rebuilt off the answer path on
//! SIGHUP, on a file change, or on request, and swapped atomically. Queries in flight finish on
//! the snapshot they loaded; a list that fails keeps its last good copy (see `Snapshot::build`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::timefmt::unix_now;

use arc_swap::ArcSwap;

use super::groups::GroupsSpec;
use super::{ListSpec, LoadReport, Snapshot};

pub struct PolicyStore {
    current: ArcSwap<Snapshot>,
    specs: Vec<ListSpec>,
    /// Groups and named clients, rebuilt into every snapshot with the lists they name
    /// (replaced by `reload_with_groups`: an event window opening or closing).
    groups: parking_lot::Mutex<GroupsSpec>,
    /// One rebuild at a time: a second request waits and then rebuilds from the newest files.
    rebuilding: tokio::sync::Mutex<()>,
    reloads: AtomicU64,
    last_reload_unix: AtomicU64,
    /// Whether every list loaded fresh in the last (re)load.
    last_ok: std::sync::atomic::AtomicBool,
    /// The list files' stamps when the current snapshot was built: the watch reloads only
    /// when they differ, so a file a reload already read (a feed download, a SIGHUP after an
    /// edit) does not cost a second rebuild.
    built_from: parking_lot::Mutex<Vec<Stamp>>,
}

impl PolicyStore {
    /// Builds the first snapshot (blocking: called before serving starts).
    pub fn load(specs: Vec<ListSpec>) -> (Arc<PolicyStore>, LoadReport) {
        Self::load_grouped(specs, GroupsSpec::default())
    }

    /// As `load`, with per-client groups.
    pub fn load_grouped(
        specs: Vec<ListSpec>,
        groups: GroupsSpec,
    ) -> (Arc<PolicyStore>, LoadReport) {
        let built_from = parking_lot::Mutex::new(stamps(&spec_paths(&specs)));
        let (snapshot, report) = Snapshot::build_grouped(&specs, &groups, None);
        // The parse's temporaries are free now: give them back (crate::memtrim).
        crate::memtrim::release();
        log_report("initial load", &report, &snapshot);
        let ok = report.all_fresh();
        let store = PolicyStore {
            last_ok: std::sync::atomic::AtomicBool::new(ok),
            current: ArcSwap::from_pointee(snapshot),
            specs,
            groups: parking_lot::Mutex::new(groups),
            rebuilding: tokio::sync::Mutex::new(()),
            reloads: AtomicU64::new(0),
            last_reload_unix: AtomicU64::new(unix_now()),
            built_from,
        };
        (Arc::new(store), report)
    }

    /// The snapshot a query uses from admission to answer.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.current.load()
    }

    pub fn specs(&self) -> &[ListSpec] {
        &self.specs
    }

    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    pub fn last_ok(&self) -> bool {
        self.last_ok.load(Ordering::Relaxed)
    }

    pub fn last_reload_unix(&self) -> u64 {
        self.last_reload_unix.load(Ordering::Relaxed)
    }

    /// Rebuilds from the files on a blocking thread and swaps the result in.
    pub async fn reload(self: &Arc<Self>, reason: &str) -> LoadReport {
        let _one_at_a_time = self.rebuilding.lock().await;
        *self.built_from.lock() = stamps(&spec_paths(&self.specs));
        let this = Arc::clone(self);
        let built = tokio::task::spawn_blocking(move || {
            let previous = this.current.load_full();
            let groups = this.groups.lock().clone();
            let built = Snapshot::build_grouped(&this.specs, &groups, Some(&previous));
            // The parse's temporaries are free now: give them back (crate::memtrim).
            crate::memtrim::release();
            built
        })
        .await;
        let (snapshot, report) = match built {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "list reload crashed; keeping the current lists");
                return LoadReport::default();
            }
        };
        log_report(reason, &report, &snapshot);
        self.current.store(Arc::new(snapshot));
        // The old snapshot was freed just now (unless a query still holds it): its pages
        // belong to the threads that built it, which may not allocate again for a while.
        let _ = tokio::task::spawn_blocking(crate::memtrim::release).await;
        self.reloads.fetch_add(1, Ordering::Relaxed);
        self.last_ok.store(report.all_fresh(), Ordering::Relaxed);
        self.last_reload_unix.store(unix_now(), Ordering::Relaxed);
        report
    }

    /// Replaces the groups (which lists apply to whom) and rebuilds: the same swap as a reload.
    pub async fn reload_with_groups(
        self: &Arc<Self>,
        groups: GroupsSpec,
        reason: &str,
    ) -> LoadReport {
        *self.groups.lock() = groups;
        self.reload(reason).await
    }

    /// Reloads whenever a list file changes (modification time, size or inode), checked every
    /// `interval`. Why polling rather than inotify: feeds are replaced by rename, by rsync,
    /// by editors writing in place, on network file systems — a stamp comparison sees them all.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let paths = spec_paths(&this.specs);
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let now = stamps(&paths);
                if now != *this.built_from.lock() {
                    this.reload("list file changed").await;
                }
            }
        })
    }
}

type Stamp = Option<(SystemTime, u64, u64)>;

fn spec_paths(specs: &[ListSpec]) -> Vec<PathBuf> {
    specs.iter().map(|s| s.path.clone()).collect()
}

fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    use std::os::unix::fs::MetadataExt;
    paths
        .iter()
        .map(|p| {
            std::fs::metadata(p).ok().map(|m| {
                (
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    m.len(),
                    m.ino(),
                )
            })
        })
        .collect()
}

/// One line per list, and the problems: what an operator needs after a (re)load.
pub fn log_report(reason: &str, report: &LoadReport, snapshot: &Snapshot) {
    tracing::info!(
        reason,
        lists = report.lists.len(),
        names = snapshot.name_entries(),
        addresses = snapshot.ip_entries(),
        elapsed_ms = report.elapsed.as_millis() as u64,
        "lists loaded"
    );
    for l in &report.lists {
        tracing::info!(list = %l.name, path = %l.path.display(), entries = l.entries, bad_lines = l.bad_lines, "list");
        for (line, why) in l.first_bad.iter().take(5) {
            tracing::warn!("{}:{line}: skipped: {why}", l.path.display());
        }
        if l.bad_lines > 5 {
            tracing::warn!(list = %l.name, "{} more bad lines not shown (`dnsward check` lists them)", l.bad_lines - 5);
        }
        for w in &l.warnings {
            tracing::warn!(list = %l.name, "{w}");
        }
        if let Some(why) = &l.kept_previous {
            tracing::error!(list = %l.name, "list failed, keeping its last good copy: {why}");
        } else if let Some(err) = &l.error {
            tracing::error!(list = %l.name, "list failed and has no earlier copy: {err}");
        }
    }
}
