//! The alert metrics, a registry of their own appended to `/metrics` (like the feeds'):
//! `dnsward_alerts_total{rule,action}` (delivered), `dnsward_alert_failures_total{action}`
//! (failed attempts, retried), `dnsward_alerts_lost_total{action}` (dropped: outbox full,
//! unreadable), `dnsward_alerts_suppressed_total` (de-duplicated or over the per-minute cap).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::deliver::ActionKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleAction {
    pub rule: String,
    pub action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabel {
    pub action: &'static str,
}

pub struct AlertMetrics {
    registry: Registry,
    pub alerts: Family<RuleAction, Counter>,
    pub failures: Family<ActionLabel, Counter>,
    pub lost: Family<ActionLabel, Counter>,
    pub suppressed: Counter,
    /// Events the alerts' bus queue dropped (it was full), read at scrape time.
    pub queue_dropped: prometheus_client::metrics::gauge::Gauge,
}

impl Default for AlertMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl AlertMetrics {
    pub fn new() -> AlertMetrics {
        let mut registry = Registry::default();
        let m = AlertMetrics {
            registry: Registry::default(),
            alerts: Family::default(),
            failures: Family::default(),
            lost: Family::default(),
            suppressed: Counter::default(),
            queue_dropped: Default::default(),
        };
        registry.register(
            "dnsward_alerts",
            "Alerts delivered, by rule and action",
            m.alerts.clone(),
        );
        registry.register(
            "dnsward_alert_failures",
            "Failed delivery attempts (the alert stays queued and is retried), by action",
            m.failures.clone(),
        );
        registry.register(
            "dnsward_alerts_lost",
            "Deliveries given up (outbox full, unreadable), by action",
            m.lost.clone(),
        );
        registry.register(
            "dnsward_alerts_suppressed",
            "Alerts held back: de-duplicated within quiet, or over the per-minute cap",
            m.suppressed.clone(),
        );
        registry.register(
            "dnsward_alerts_events_dropped",
            "Query events the alerts' queue dropped because it was full (not evaluated)",
            m.queue_dropped.clone(),
        );
        AlertMetrics { registry, ..m }
    }

    pub fn sent(&self, rule: &str, action: ActionKind) {
        self.alerts
            .get_or_create(&RuleAction {
                rule: rule.to_string(),
                action: action.as_str(),
            })
            .inc();
    }

    pub fn failed(&self, action: ActionKind) {
        self.failures
            .get_or_create(&ActionLabel {
                action: action.as_str(),
            })
            .inc();
    }

    pub fn lost(&self, action: ActionKind) {
        self.lost
            .get_or_create(&ActionLabel {
                action: action.as_str(),
            })
            .inc();
    }

    /// The samples, without the trailing `# EOF` (the caller ends the exposition).
    pub fn encode_into(&self, out: &mut String) {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode_registry(&mut s, &self.registry).is_ok() {
            out.push_str(&s);
        }
    }
}
