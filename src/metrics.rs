//! Prometheus metrics (prometheus-client). Counters that move per query are updated on the
//! answer path with atomics only; figures that live elsewhere (cache, policy, query log,
//! admission) are read into gauges when /metrics is scraped.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub transport: &'static str,
    pub qtype: &'static str,
    pub rcode: &'static str,
    pub action: &'static str,
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ListLabel {
    pub list: String,
}

/// Per-group counts: the group, never the client (bounded cardinality).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub group: String,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SinkLabel {
    pub sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub queries: Family<QueryLabels, Counter>,
    pub blocked_by_list: Family<ListLabel, Counter>,
    pub group_queries: Family<GroupLabel, Counter>,
    pub answer_latency: Histogram,
    pub upstream_latency: Histogram,
    pub upstream_errors: Counter,
    /// Cache entries refreshed in the background near the end of their TTL.
    pub prefetches: Counter,
    // Read at scrape time.
    pub cache_hits: Gauge<i64>,
    pub cache_misses: Gauge<i64>,
    pub cache_entries: Gauge<i64>,
    pub stale_served: Gauge<i64>,
    pub policy_names: Gauge<i64>,
    pub policy_addresses: Gauge<i64>,
    pub policy_last_reload: Gauge<f64, AtomicU64>,
    pub policy_last_reload_ok: Gauge<i64>,
    pub policy_reloads: Gauge<i64>,
    pub querylog_queued: Family<SinkLabel, Gauge<i64>>,
    pub querylog_dropped: Family<SinkLabel, Gauge<i64>>,
    pub querylog_written: Family<SinkLabel, Gauge<i64>>,
    pub querylog_skipped: Family<SinkLabel, Gauge<i64>>,
    pub limited: Family<KindLabel, Gauge<i64>>,
    /// RPZ zone transfers in and out (`src/rpzxfr`).
    pub rpz: crate::rpzxfr::metrics::RpzMetrics,
}

/// Latency buckets in seconds: 50 µs .. 5 s.
const LATENCY_BUCKETS: [f64; 14] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0,
];

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("dnsward");
        let m = Metrics {
            queries: Family::default(),
            blocked_by_list: Family::default(),
            group_queries: Family::default(),
            answer_latency: Histogram::new(LATENCY_BUCKETS),
            upstream_latency: Histogram::new(LATENCY_BUCKETS),
            upstream_errors: Counter::default(),
            prefetches: Counter::default(),
            cache_hits: Gauge::default(),
            cache_misses: Gauge::default(),
            cache_entries: Gauge::default(),
            stale_served: Gauge::default(),
            policy_names: Gauge::default(),
            policy_addresses: Gauge::default(),
            policy_last_reload: Gauge::default(),
            policy_last_reload_ok: Gauge::default(),
            policy_reloads: Gauge::default(),
            querylog_queued: Family::default(),
            querylog_dropped: Family::default(),
            querylog_written: Family::default(),
            querylog_skipped: Family::default(),
            limited: Family::default(),
            rpz: Default::default(),
            registry: Registry::default(),
        };
        m.register_per_query(&mut registry);
        m.register_cache_and_policy(&mut registry);
        m.register_querylog_and_limits(&mut registry);
        m.rpz.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// The counters and histograms the answer path moves.
    fn register_per_query(&self, registry: &mut Registry) {
        registry.register(
            "queries",
            "Queries answered, by transport, type, rcode, action and category",
            self.queries.clone(),
        );
        registry.register(
            "blocked",
            "Blocked queries by list",
            self.blocked_by_list.clone(),
        );
        registry.register(
            "group_queries",
            "Queries by client group and action",
            self.group_queries.clone(),
        );
        registry.register(
            "answer_latency_seconds",
            "Time from arrival to answer",
            self.answer_latency.clone(),
        );
        registry.register(
            "upstream_latency_seconds",
            "Time of one upstream resolution",
            self.upstream_latency.clone(),
        );
        registry.register(
            "upstream_errors",
            "Upstream resolutions that failed",
            self.upstream_errors.clone(),
        );
        registry.register(
            "prefetches",
            "Cache entries refreshed in the background when asked for in the last 10% of their TTL",
            self.prefetches.clone(),
        );
    }

    /// Gauges read at scrape time: the packet cache and the policy snapshot.
    fn register_cache_and_policy(&self, registry: &mut Registry) {
        registry.register("cache_hits", "Packet cache hits", self.cache_hits.clone());
        registry.register(
            "cache_misses",
            "Packet cache misses",
            self.cache_misses.clone(),
        );
        registry.register(
            "cache_entries",
            "Answers in the packet cache",
            self.cache_entries.clone(),
        );
        registry.register(
            "cache_stale_served",
            "Stale answers served because upstream failed",
            self.stale_served.clone(),
        );
        registry.register(
            "policy_names",
            "Name rules in the policy snapshot",
            self.policy_names.clone(),
        );
        registry.register(
            "policy_addresses",
            "Address rules in the policy snapshot",
            self.policy_addresses.clone(),
        );
        registry.register(
            "policy_last_reload_timestamp_seconds",
            "When the lists were last (re)loaded",
            self.policy_last_reload.clone(),
        );
        registry.register(
            "policy_last_reload_ok",
            "1 when every list of the last (re)load loaded fresh",
            self.policy_last_reload_ok.clone(),
        );
        registry.register(
            "policy_reloads",
            "List reloads since start",
            self.policy_reloads.clone(),
        );
    }

    /// Gauges read at scrape time: the query log's sinks and the admission limits.
    fn register_querylog_and_limits(&self, registry: &mut Registry) {
        registry.register(
            "querylog_queued",
            "Events waiting in a query-log sink's queue",
            self.querylog_queued.clone(),
        );
        registry.register(
            "querylog_dropped",
            "Events a query-log sink lost",
            self.querylog_dropped.clone(),
        );
        registry.register(
            "querylog_written",
            "Events a query-log sink wrote",
            self.querylog_written.clone(),
        );
        registry.register(
            "querylog_skipped",
            "Events a query-log sink left out by its own filter (sqlite_log_allowed = false)",
            self.querylog_skipped.clone(),
        );
        registry.register(
            "limited",
            "Queries refused by the ACL or rate limited, by kind",
            self.limited.clone(),
        );
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Label values with bounded cardinality: known types by name, the rest as "other".
pub fn qtype_label(qtype: u16) -> &'static str {
    match qtype {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        12 => "PTR",
        15 => "MX",
        16 => "TXT",
        28 => "AAAA",
        33 => "SRV",
        64 => "SVCB",
        65 => "HTTPS",
        255 => "ANY",
        257 => "CAA",
        _ => "other",
    }
}

pub fn rcode_label(rcode: Option<u8>) -> &'static str {
    match rcode {
        None => "none",
        Some(code) => crate::dnswire::rcode_mnemonic(code).unwrap_or("other"),
    }
}
