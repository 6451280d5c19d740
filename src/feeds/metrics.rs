//! Feed metrics (prometheus-client), in a registry of their own that the admin listener's
//! `/metrics` appends to the main one: counters move on every fetch, gauges are read from the
//! feeds' state at scrape time.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    pub list: String,
    /// `updated`, `not_modified`, `unchanged`, `rejected`, `failed`.
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProblemLabels {
    pub list: String,
    /// A guard (`html`, `shrink`, ...) or a download error (`timeout`, `too_large`, ...).
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabel {
    pub list: String,
}

pub struct FeedMetrics {
    registry: Registry,
    pub fetches: Family<FetchLabels, Counter>,
    pub problems: Family<ProblemLabels, Counter>,
    pub entries: Family<ListLabel, Gauge<i64>>,
    pub age: Family<ListLabel, Gauge<i64>>,
    pub last_success: Family<ListLabel, Gauge<f64, AtomicU64>>,
    pub last_error: Family<ListLabel, Gauge<f64, AtomicU64>>,
    pub rejected_pending: Family<ListLabel, Gauge<i64>>,
}

impl FeedMetrics {
    pub fn new() -> FeedMetrics {
        let mut registry = Registry::with_prefix("dnsward_feed");
        let m = FeedMetrics {
            registry: Registry::default(),
            fetches: Family::default(),
            problems: Family::default(),
            entries: Family::default(),
            age: Family::default(),
            last_success: Family::default(),
            last_error: Family::default(),
            rejected_pending: Family::default(),
        };
        registry.register(
            "fetches",
            "Feed fetches by list and result (updated, not_modified, unchanged, rejected, failed)",
            m.fetches.clone(),
        );
        registry.register(
            "problems",
            "Rejected downloads and failed fetches by list and kind",
            m.problems.clone(),
        );
        registry.register("entries", "Entries of the copy in force", m.entries.clone());
        registry.register(
            "age_seconds",
            "Age of the copy in force (since its download, or the snapshot's date)",
            m.age.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Last fetch that ended well (new copy or 304)",
            m.last_success.clone(),
        );
        registry.register(
            "last_error_timestamp_seconds",
            "Last fetch that failed or was rejected",
            m.last_error.clone(),
        );
        registry.register(
            "rejected_pending",
            "1 while a rejected download waits for POST /api/lists/NAME/accept",
            m.rejected_pending.clone(),
        );
        FeedMetrics { registry, ..m }
    }

    /// The samples, without the trailing `# EOF` (the caller ends the exposition).
    pub fn encode_into(&self, out: &mut String) {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
            .expect("writing to a String cannot fail");
    }
}

impl Default for FeedMetrics {
    fn default() -> Self {
        Self::new()
    }
}
