//! The alert history in the fleet's ClickHouse (`[querylog] clickhouse`): the tables
//! `<table>_alerts` and `<table>_alert_deliveries` beside the query log's table (created by
//! `dnsward logs init-clickhouse` from `packaging/clickhouse/schema.sql`), written by a thread
//! of its own (the client is blocking; a ClickHouse that is down or slow never holds the
//! evaluator or a delivery worker) and read as the SQLite history is ([`AlertReader`]).
//!
//! Rows go in as JSONEachRow; what ClickHouse refuses or cannot take is kept (bounded, oldest
//! dropped and counted in the log) and tried again every few seconds.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::history::{parse_state, AlertFilter, AlertReader, DeliveryRow, HistoryError};
use super::Alert;
use crate::querylog::clickhouse_client::{ClickhouseTarget, Client};
use crate::querylog::read::clickhouse::lit;

/// Rows waiting for ClickHouse at most (alerts and delivery records together).
const PENDING_MAX: usize = 10_000;
const RETRY: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(10);

/// The alert table beside the query log's `database.table`.
pub fn alerts_table(t: &ClickhouseTarget) -> String {
    format!("{}_alerts", t.table_ref())
}

/// The delivery records' table.
pub fn deliveries_table(t: &ClickhouseTarget) -> String {
    format!("{}_alert_deliveries", t.table_ref())
}

const ALERT_COLUMNS: &str = "ts_us, id, instance, rule, kind, client, alert";
const DELIVERY_COLUMNS: &str = "ts_us, alert_id, action, target, state";

/// What the writer thread is handed.
pub enum Record {
    Alert(Box<Alert>),
    Delivery(DeliveryRow),
}

/// The writer: a bounded hand-over to its thread.
pub struct ChWriter {
    tx: Mutex<Option<SyncSender<Record>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl ChWriter {
    /// Starts the thread writing to `target`.
    pub fn start(target: ClickhouseTarget) -> std::io::Result<ChWriter> {
        let (tx, rx) = std::sync::mpsc::sync_channel(4096);
        let thread = std::thread::Builder::new()
            .name("alerts-clickhouse".into())
            .spawn(move || write_loop(target, rx))?;
        Ok(ChWriter {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands a record over; never blocks (a full hand-over drops it, logged).
    pub fn push(&self, r: Record) {
        let guard = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = guard.as_ref() {
            if let Err(TrySendError::Full(_)) = tx.try_send(r) {
                tracing::warn!("alerts: ClickHouse history falls behind; a record dropped");
            }
        }
    }

    /// Closes the hand-over; the thread writes what it holds (one try) and ends.
    pub fn close(&self) -> Option<std::thread::JoinHandle<()>> {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        self.thread.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

fn write_loop(target: ClickhouseTarget, rx: Receiver<Record>) {
    let client = match Client::new(target, TIMEOUT) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "alerts: no ClickHouse history");
            return;
        }
    };
    let mut alerts: VecDeque<String> = VecDeque::new();
    let mut deliveries: VecDeque<String> = VecDeque::new();
    let mut open = true;
    while open {
        match rx.recv_timeout(RETRY) {
            Ok(r) => take(r, &mut alerts, &mut deliveries),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        while let Ok(r) = rx.try_recv() {
            take(r, &mut alerts, &mut deliveries);
        }
        let table_a = alerts_table(&client.target);
        let table_d = deliveries_table(&client.target);
        for (rows, table, columns) in [
            (&mut alerts, table_a, ALERT_COLUMNS),
            (&mut deliveries, table_d, DELIVERY_COLUMNS),
        ] {
            if rows.is_empty() {
                continue;
            }
            if rows.len() > PENDING_MAX {
                let dropped = rows.len() - PENDING_MAX;
                rows.drain(..dropped);
                tracing::warn!(
                    dropped,
                    "alerts: ClickHouse history unreachable too long; oldest records dropped"
                );
            }
            let body: String = rows.iter().map(|r| format!("{r}\n")).collect();
            let sql = format!("INSERT INTO {table} ({columns}) FORMAT JSONEachRow");
            match client.insert_text(&sql, body) {
                Ok(()) => rows.clear(),
                Err(e) => {
                    tracing::warn!(error = %e, waiting = rows.len(), "alerts: cannot write the history to ClickHouse; trying again")
                }
            }
        }
    }
}

fn take(r: Record, alerts: &mut VecDeque<String>, deliveries: &mut VecDeque<String>) {
    match r {
        Record::Alert(a) => alerts.push_back(
            json!({
                "ts_us": a.ts_us, "id": a.id, "instance": a.server, "rule": a.rule,
                "kind": a.kind, "client": a.client.clone().unwrap_or_default(),
                "alert": serde_json::to_string(&a).unwrap_or_default(),
            })
            .to_string(),
        ),
        Record::Delivery(d) => deliveries.push_back(
            json!({
                "ts_us": d.ts_us, "alert_id": d.alert_id, "action": d.action,
                "target": d.target, "state": d.state.as_str(),
            })
            .to_string(),
        ),
    }
}

/// The history read from ClickHouse. Blocking: use it off the async runtime.
pub struct ChAlertReader {
    client: Client,
}

impl ChAlertReader {
    pub fn new(target: ClickhouseTarget) -> Result<ChAlertReader, HistoryError> {
        Ok(ChAlertReader {
            client: Client::new(target, TIMEOUT)?,
        })
    }

    fn lines<T: for<'de> Deserialize<'de>>(&self, sql: &str) -> Result<Vec<T>, HistoryError> {
        let body = self.client.query(sql, &[])?;
        let mut out = Vec::new();
        for line in body.lines().filter(|l| !l.trim().is_empty()) {
            out.push(serde_json::from_str(line)?);
        }
        Ok(out)
    }
}

#[derive(Deserialize)]
struct AlertLine {
    alert: String,
}

#[derive(Deserialize)]
struct DeliveryLine {
    // 64-bit integers come quoted from JSONEachRow by default.
    #[serde(deserialize_with = "int_or_text")]
    ts_us: i64,
    alert_id: String,
    action: String,
    target: String,
    state: String,
}

fn int_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        I(i64),
        S(String),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

impl AlertReader for ChAlertReader {
    fn alerts(&self, f: &AlertFilter, limit: usize) -> Result<Vec<Alert>, HistoryError> {
        let mut w = format!("ts_us >= {}", f.since_us);
        for (col, v) in [("rule", &f.rule), ("kind", &f.kind), ("client", &f.client)] {
            if let Some(v) = v {
                w += &format!(" AND {col} = {}", lit(v));
            }
        }
        let sql = format!(
            "SELECT alert FROM {} WHERE {w} ORDER BY ts_us DESC, rule DESC, client DESC, alert DESC LIMIT {limit} FORMAT JSONEachRow",
            alerts_table(&self.client.target)
        );
        let mut out: Vec<Alert> = Vec::new();
        for l in self.lines::<AlertLine>(&sql)? {
            if let Ok(a) = serde_json::from_str(&l.alert) {
                out.push(a);
            }
        }
        out.reverse();
        Ok(out)
    }

    fn deliveries(&self, since_us: i64) -> Result<Vec<DeliveryRow>, HistoryError> {
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM {} WHERE ts_us >= {since_us} ORDER BY ts_us FORMAT JSONEachRow",
            deliveries_table(&self.client.target)
        );
        Ok(self
            .lines::<DeliveryLine>(&sql)?
            .into_iter()
            .filter_map(|d| {
                Some(DeliveryRow {
                    ts_us: d.ts_us,
                    alert_id: d.alert_id,
                    action: d.action,
                    target: d.target,
                    state: parse_state(&d.state)?,
                })
            })
            .collect())
    }
}
