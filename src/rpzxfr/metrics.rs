//! RPZ transfer metrics, registered into the admin `/metrics` registry.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransferLabels {
    pub zone: String,
    /// `axfr`, `ixfr`, `uptodate`, or why it was rejected (`older_serial`, `tsig`, `oversized`,
    /// `malformed`, `refused`, `unreachable`, `mismatch`, `write`).
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ZoneLabel {
    pub zone: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServedLabels {
    pub kind: &'static str,
}

/// Cheap to clone: every family is shared.
#[derive(Clone, Default)]
pub struct RpzMetrics {
    /// Secondary: transfers by zone and result.
    pub transfers: Family<TransferLabels, Counter>,
    /// Secondary: serial of the copy in force.
    pub serial: Family<ZoneLabel, Gauge<i64>>,
    /// Secondary: 1 when the primary was not reached for longer than the SOA expire.
    pub expired: Family<ZoneLabel, Gauge<i64>>,
    /// Primary: requests answered by kind (`axfr`, `ixfr`, `ixfr_full`, `soa`, `refused`,
    /// `bad_tsig`, `notify_sent`).
    pub served: Family<ServedLabels, Counter>,
    /// Primary: the serial served.
    pub served_serial: Gauge<i64>,
}

impl RpzMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rpz_transfers",
            "RPZ zone transfers received, by zone and result (rejections by reason)",
            self.transfers.clone(),
        );
        registry.register(
            "rpz_serial",
            "Serial of the received RPZ zone in force",
            self.serial.clone(),
        );
        registry.register(
            "rpz_expired",
            "1 when the primary was not reached for longer than the SOA expire (the last copy stays in force)",
            self.expired.clone(),
        );
        registry.register(
            "rpz_server_requests",
            "Requests to the RPZ server, by kind",
            self.served.clone(),
        );
        registry.register(
            "rpz_server_serial",
            "Serial of the RPZ zone served",
            self.served_serial.clone(),
        );
    }

    pub fn transfer(&self, zone: &str, result: &'static str) {
        self.transfers
            .get_or_create(&TransferLabels {
                zone: zone.to_string(),
                result,
            })
            .inc();
    }

    pub fn served(&self, kind: &'static str) {
        self.served.get_or_create(&ServedLabels { kind }).inc();
    }
}
