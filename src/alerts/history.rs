//! Alert history: every alert sent (and the cap's summaries), with what became of each of its
//! deliveries, in SQLite beside the query log and, when the fleet store is used (`[querylog]
//! clickhouse`), in ClickHouse too (`history_ch`). Read by `dnsward alerts list` and
//! `GET /api/alerts` through one [`list`] over either store, so both give the same JSON.
//!
//! A delivery's outcome is an append-only record (queued, failed, delivered, lost), never an
//! update, so ClickHouse 18.16 keeps it as SQLite does; the outcome of an alert is worked out
//! when reading.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};
use serde::Serialize;

use super::Alert;
use crate::querylog::clickhouse_client::ClickhouseError;

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("alert history (SQLite): {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("alert history: {0}")]
    Clickhouse(#[from] ClickhouseError),
    #[error("alert history: unreadable answer: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    BadFilter(String),
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS alerts (
    ts_us INTEGER NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    client TEXT,
    message TEXT NOT NULL,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts(ts_us);
CREATE TABLE IF NOT EXISTS alert_deliveries (
    ts_us INTEGER NOT NULL,
    alert_id TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_deliveries_ts ON alert_deliveries(ts_us);";

/// Alerts a filtered read looks at, at most (a window of history is small: the per-minute cap
/// bounds it).
pub const SCAN_MAX: usize = 100_000;

/// One step of one delivery, as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    /// Written to the outbox.
    Queued,
    /// The first attempt that failed (it stays queued and is retried).
    Failed,
    Delivered,
    /// Given up: the outbox was full, or the file unreadable.
    Lost,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Queued => "queued",
            DeliveryState::Failed => "failed",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Lost => "lost",
        }
    }

    fn parse(s: &str) -> Option<DeliveryState> {
        [
            DeliveryState::Queued,
            DeliveryState::Failed,
            DeliveryState::Delivered,
            DeliveryState::Lost,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
    }

    /// Which of two records at the same microsecond is the later step.
    fn rank(self) -> u8 {
        match self {
            DeliveryState::Queued => 0,
            DeliveryState::Failed => 1,
            DeliveryState::Delivered | DeliveryState::Lost => 2,
        }
    }

    fn outcome(self) -> Outcome {
        match self {
            DeliveryState::Queued => Outcome::Pending,
            DeliveryState::Failed => Outcome::Retrying,
            DeliveryState::Delivered => Outcome::Delivered,
            DeliveryState::Lost => Outcome::Lost,
        }
    }
}

/// One record of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub ts_us: i64,
    pub alert_id: String,
    pub action: String,
    pub target: String,
    pub state: DeliveryState,
}

/// What became of an alert's deliveries (of one action, or of all of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every delivery arrived.
    Delivered,
    /// Waiting in the outbox, not tried or not failed yet.
    Pending,
    /// An attempt failed; waiting for the next.
    Retrying,
    /// A delivery was given up (outbox full).
    Lost,
    /// The alert had no delivery (a test alert whose rule has no action, or history from
    /// before outcomes were kept).
    None,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Delivered,
        Outcome::Pending,
        Outcome::Retrying,
        Outcome::Lost,
        Outcome::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Delivered => "delivered",
            Outcome::Pending => "pending",
            Outcome::Retrying => "retrying",
            Outcome::Lost => "lost",
            Outcome::None => "none",
        }
    }

    /// The worse of two: lost, then retrying, then pending, then delivered.
    fn worst(self, other: Outcome) -> Outcome {
        let badness = |o: Outcome| match o {
            Outcome::None => 0,
            Outcome::Delivered => 1,
            Outcome::Pending => 2,
            Outcome::Retrying => 3,
            Outcome::Lost => 4,
        };
        if badness(other) > badness(self) {
            other
        } else {
            self
        }
    }
}

impl FromStr for Outcome {
    type Err = HistoryError;
    fn from_str(s: &str) -> Result<Outcome, HistoryError> {
        Outcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                HistoryError::BadFilter(format!(
                    "outcome {s:?}: expected one of {}",
                    Outcome::ALL.map(Outcome::as_str).join(", ")
                ))
            })
    }
}

/// Which alerts to list: raised since `since_us`, the latest `limit`, and optionally of one
/// rule, kind, client, or delivery outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub since_us: i64,
    pub limit: usize,
    pub rule: Option<String>,
    pub kind: Option<String>,
    pub client: Option<String>,
    pub outcome: Option<Outcome>,
}

/// The kinds an alert can have: the rule kinds, and `summary` (the cap's).
pub const KINDS: [&str; 8] = [
    "client_threshold",
    "watch",
    "new_domain",
    "feed_failure",
    "querylog_drops",
    "dnssec_bogus",
    "audit",
    "summary",
];

impl AlertFilter {
    /// The filter from its texts (the API's query string, the command's flags), every value
    /// checked: an error says which and why.
    pub fn parse(
        since: &str,
        limit: Option<&str>,
        rule: Option<&str>,
        kind: Option<&str>,
        client: Option<&str>,
        outcome: Option<&str>,
    ) -> Result<AlertFilter, HistoryError> {
        let bad = |s: String| HistoryError::BadFilter(s);
        let since_us = crate::timefmt::parse_time_us(since, crate::timefmt::now_us())
            .map_err(|e| bad(format!("since {since:?}: {e}")))?;
        let limit = match limit {
            None => 1000,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=SCAN_MAX).contains(&n) => n,
                _ => return Err(bad(format!("limit {l:?}: expected 1 to {SCAN_MAX}"))),
            },
        };
        if let Some(r) = rule {
            if r.is_empty() || r.len() > 128 || r.chars().any(char::is_control) {
                return Err(bad(format!(
                    "rule {r:?}: expected a rule's name (1 to 128 characters, no control characters)"
                )));
            }
        }
        if let Some(k) = kind {
            if !KINDS.contains(&k) {
                return Err(bad(format!(
                    "kind {k:?}: expected one of {}",
                    KINDS.join(", ")
                )));
            }
        }
        if let Some(c) = client {
            if !is_client_text(c) {
                return Err(bad(format!(
                    "client {c:?}: expected an address (192.0.2.7, 2001:db8::1) or a hashed client (h: and 16 hex digits)"
                )));
            }
        }
        Ok(AlertFilter {
            since_us,
            limit,
            rule: rule.map(str::to_string),
            kind: kind.map(str::to_string),
            client: client.map(str::to_string),
            outcome: outcome.map(str::parse).transpose()?,
        })
    }

    /// How many alerts the store is asked for: with an outcome filter the outcome is known
    /// only after reading, so the whole window (up to [`SCAN_MAX`]).
    fn store_limit(&self) -> usize {
        if self.outcome.is_some() {
            SCAN_MAX
        } else {
            self.limit
        }
    }
}

/// A client as alerts name it: an address, or the `h:` token of `client_ip = "hash"`.
fn is_client_text(c: &str) -> bool {
    c.parse::<std::net::IpAddr>().is_ok()
        || c.strip_prefix("h:")
            .is_some_and(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// An alert as listed: the alert, the outcome of all its deliveries and of each action.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub alert: Alert,
    pub outcome: Outcome,
    pub delivery: BTreeMap<String, Outcome>,
}

/// A store the history is read from.
pub trait AlertReader {
    /// The alerts the filter's rule, kind and client select since `since_us`: the latest
    /// `limit`, oldest first (ties: rule, client, the alert's JSON).
    fn alerts(&self, f: &AlertFilter, limit: usize) -> Result<Vec<Alert>, HistoryError>;
    /// The delivery records since `since_us`, oldest first.
    fn deliveries(&self, since_us: i64) -> Result<Vec<DeliveryRow>, HistoryError>;
}

/// The alerts `f` selects with their outcomes, oldest first.
pub fn list(store: &dyn AlertReader, f: &AlertFilter) -> Result<Vec<Listed>, HistoryError> {
    let alerts = store.alerts(f, f.store_limit())?;
    let mut latest: HashMap<(String, String, String), (i64, DeliveryState)> = HashMap::new();
    for d in store.deliveries(f.since_us)? {
        let key = (d.alert_id, d.action, d.target);
        let newer = latest
            .get(&key)
            .is_none_or(|(ts, st)| (d.ts_us, d.state.rank()) >= (*ts, st.rank()));
        if newer {
            latest.insert(key, (d.ts_us, d.state));
        }
    }
    let mut by_alert: HashMap<&str, BTreeMap<String, Outcome>> = HashMap::new();
    for ((id, action, _), (_, state)) in &latest {
        let per = by_alert.entry(id.as_str()).or_default();
        let o = per
            .get(action)
            .map_or(state.outcome(), |o| o.worst(state.outcome()));
        per.insert(action.clone(), o);
    }
    let mut out: Vec<Listed> = alerts
        .into_iter()
        .map(|a| {
            let delivery = if a.id.is_empty() {
                BTreeMap::new()
            } else {
                by_alert.get(a.id.as_str()).cloned().unwrap_or_default()
            };
            let outcome = delivery
                .values()
                .fold(Outcome::None, |acc, o| acc.worst(*o));
            Listed {
                alert: a,
                outcome,
                delivery,
            }
        })
        .filter(|l| f.outcome.is_none_or(|o| o == l.outcome))
        .collect();
    if out.len() > f.limit {
        out.drain(..out.len() - f.limit);
    }
    Ok(out)
}

/// The SQLite history, written by the evaluator and the delivery workers.
pub struct History {
    conn: Connection,
}

impl History {
    pub fn open(path: &Path) -> Result<History, HistoryError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        conn.execute_batch("PRAGMA journal_mode=WAL;")?;
        conn.execute_batch(SCHEMA)?;
        Ok(History { conn })
    }

    pub fn insert(&self, a: &Alert) -> Result<(), HistoryError> {
        let json = serde_json::to_string(a)?;
        self.conn.execute(
            "INSERT INTO alerts (ts_us, rule, kind, client, message, alert) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![a.ts_us, a.rule, a.kind, a.client, a.message, json],
        )?;
        Ok(())
    }

    pub fn delivery(&self, d: &DeliveryRow) -> Result<(), HistoryError> {
        self.conn.execute(
            "INSERT INTO alert_deliveries (ts_us, alert_id, action, target, state) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![d.ts_us, d.alert_id, d.action, d.target, d.state.as_str()],
        )?;
        Ok(())
    }
}

/// Where the history is written: SQLite, and ClickHouse when the fleet store is configured.
/// Shared by the evaluator (alerts) and the delivery workers (their outcomes).
pub struct HistoryStore {
    sqlite: std::sync::Mutex<Option<History>>,
    clickhouse: Option<super::history_ch::ChWriter>,
}

impl HistoryStore {
    pub fn new(sqlite: History, clickhouse: Option<super::history_ch::ChWriter>) -> HistoryStore {
        HistoryStore {
            sqlite: std::sync::Mutex::new(Some(sqlite)),
            clickhouse,
        }
    }

    fn with_sqlite(&self, what: &str, f: impl FnOnce(&History) -> Result<(), HistoryError>) {
        let guard = self.sqlite.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = guard.as_ref() {
            if let Err(e) = f(h) {
                tracing::error!(error = %e, "alerts: cannot store {what} in the history");
            }
        }
    }

    pub fn alert(&self, a: &Alert) {
        self.with_sqlite("an alert", |h| h.insert(a));
        if let Some(ch) = &self.clickhouse {
            ch.push(super::history_ch::Record::Alert(Box::new(a.clone())));
        }
    }

    /// One step of the delivery of alert `alert_id` through `action` to `target`.
    pub fn delivery(&self, alert_id: &str, action: &str, target: &str, state: DeliveryState) {
        if alert_id.is_empty() {
            return;
        }
        let d = DeliveryRow {
            ts_us: crate::timefmt::now_us(),
            alert_id: alert_id.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            state,
        };
        self.with_sqlite("a delivery", |h| h.delivery(&d));
        if let Some(ch) = &self.clickhouse {
            ch.push(super::history_ch::Record::Delivery(d));
        }
    }

    /// Stops the ClickHouse writer (it writes what it holds, once); the thread to wait for.
    pub fn close(&self) -> Option<std::thread::JoinHandle<()>> {
        self.clickhouse.as_ref().and_then(|c| c.close())
    }
}

/// The SQLite history opened read-only (a missing file is an empty history).
pub struct SqliteReader {
    conn: Option<Connection>,
}

impl SqliteReader {
    pub fn open(path: &Path) -> Result<SqliteReader, HistoryError> {
        if !path.exists() {
            return Ok(SqliteReader { conn: None });
        }
        let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        Ok(SqliteReader { conn: Some(conn) })
    }

    fn has_table(conn: &Connection, table: &str) -> Result<bool, HistoryError> {
        Ok(conn
            .query_row(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl AlertReader for SqliteReader {
    fn alerts(&self, f: &AlertFilter, limit: usize) -> Result<Vec<Alert>, HistoryError> {
        let Some(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare(
            "SELECT alert FROM alerts WHERE ts_us >= ?1 AND (?2 IS NULL OR rule = ?2) \
             AND (?3 IS NULL OR kind = ?3) AND (?4 IS NULL OR client = ?4) \
             ORDER BY ts_us DESC, rule DESC, client DESC, alert DESC LIMIT ?5",
        )?;
        let rows = stmt.query_map(
            params![f.since_us, f.rule, f.kind, f.client, limit as i64],
            |r| r.get::<_, String>(0),
        )?;
        let mut out = Vec::new();
        for r in rows {
            // A row another version wrote that this one cannot read is left out.
            if let Ok(a) = serde_json::from_str::<Alert>(&r?) {
                out.push(a);
            }
        }
        out.reverse();
        Ok(out)
    }

    fn deliveries(&self, since_us: i64) -> Result<Vec<DeliveryRow>, HistoryError> {
        let Some(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        if !Self::has_table(conn, "alert_deliveries")? {
            return Ok(Vec::new());
        }
        let mut stmt = conn.prepare(
            "SELECT ts_us, alert_id, action, target, state FROM alert_deliveries WHERE ts_us >= ?1 ORDER BY ts_us",
        )?;
        let rows = stmt.query_map([since_us], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (ts_us, alert_id, action, target, state) = r?;
            if let Some(state) = DeliveryState::parse(&state) {
                out.push(DeliveryRow {
                    ts_us,
                    alert_id,
                    action,
                    target,
                    state,
                });
            }
        }
        Ok(out)
    }
}

/// Where the history is read from: this resolver's SQLite file, or the fleet's ClickHouse.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HistorySource {
    #[default]
    Sqlite,
    Clickhouse,
}

impl FromStr for HistorySource {
    type Err = HistoryError;
    fn from_str(s: &str) -> Result<HistorySource, HistoryError> {
        match s {
            "sqlite" => Ok(HistorySource::Sqlite),
            "clickhouse" => Ok(HistorySource::Clickhouse),
            _ => Err(HistoryError::BadFilter(format!(
                "source {s:?}: expected sqlite or clickhouse"
            ))),
        }
    }
}

/// The alerts `f` selects from the chosen store (`sqlite`: None when this resolver keeps no
/// history, an empty list). Blocking: call it off the async runtime.
pub fn list_from(
    source: HistorySource,
    sqlite: Option<&Path>,
    clickhouse: Option<crate::querylog::clickhouse_client::ClickhouseTarget>,
    f: &AlertFilter,
) -> Result<Vec<Listed>, HistoryError> {
    match source {
        HistorySource::Sqlite => match sqlite {
            Some(p) => list(&SqliteReader::open(p)?, f),
            None => Ok(Vec::new()),
        },
        HistorySource::Clickhouse => {
            let t = clickhouse.ok_or_else(|| {
                HistoryError::BadFilter(
                    "source clickhouse: no [querylog] clickhouse is configured".into(),
                )
            })?;
            list(&super::history_ch::ChAlertReader::new(t)?, f)
        }
    }
}

/// Reads a delivery state as stored (for the ClickHouse reader).
pub(crate) fn parse_state(s: &str) -> Option<DeliveryState> {
    DeliveryState::parse(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, rule: &str, ts_us: i64) -> Alert {
        Alert {
            id: id.into(),
            rule: rule.into(),
            kind: "watch".into(),
            time: crate::timefmt::format_ts(ts_us, 3),
            ts_us,
            client: Some("127.0.0.1".into()),
            client_name: None,
            group: None,
            names: Vec::new(),
            count: 1,
            first: None,
            last: None,
            list: None,
            list_rule: None,
            category: None,
            message: format!("{rule} {id}"),
            contact: None,
            server: "edge".into(),
            suppressed: 0,
            test: false,
        }
    }

    fn row(ts_us: i64, id: &str, action: &str, target: &str, state: DeliveryState) -> DeliveryRow {
        DeliveryRow {
            ts_us,
            alert_id: id.into(),
            action: action.into(),
            target: target.into(),
            state,
        }
    }

    #[test]
    fn outcomes_from_delivery_records_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alerts.db");
        let h = History::open(&path).unwrap();
        let t = 1_000_000_000_000_000;
        for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
            h.insert(&alert(id, if i < 2 { "one" } else { "two" }, t + i as i64))
                .unwrap();
        }
        use DeliveryState::*;
        for r in [
            row(t, "a", "webhook", "u", Queued),
            row(t + 5, "a", "webhook", "u", Delivered),
            row(t + 1, "b", "webhook", "u", Queued),
            row(t + 1, "b", "email", "m", Queued),
            row(t + 6, "b", "email", "m", Failed),
            row(t + 7, "b", "webhook", "u", Delivered),
            row(t + 2, "c", "syslog", "s", Queued),
            row(t + 3, "c", "syslog", "s", Lost),
        ] {
            h.delivery(&r).unwrap();
        }
        let reader = SqliteReader::open(&path).unwrap();
        let f = |outcome: Option<Outcome>, rule: Option<&str>| AlertFilter {
            since_us: t,
            limit: 10,
            rule: rule.map(str::to_string),
            outcome,
            ..Default::default()
        };
        let all = list(&reader, &f(None, None)).unwrap();
        let got: Vec<(&str, Outcome)> = all
            .iter()
            .map(|l| (l.alert.id.as_str(), l.outcome))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Outcome::Delivered),
                ("b", Outcome::Retrying),
                ("c", Outcome::Lost),
                ("d", Outcome::None)
            ]
        );
        assert_eq!(all[1].delivery["webhook"], Outcome::Delivered);
        assert_eq!(all[1].delivery["email"], Outcome::Retrying);
        let lost = list(&reader, &f(Some(Outcome::Lost), None)).unwrap();
        assert_eq!(lost.len(), 1);
        assert_eq!(lost[0].alert.id, "c");
        let two = list(&reader, &f(None, Some("two"))).unwrap();
        assert_eq!(two.len(), 2);
        let mut last = f(None, None);
        last.limit = 1;
        assert_eq!(list(&reader, &last).unwrap()[0].alert.id, "d");
        let json = serde_json::to_value(&all[0]).unwrap();
        assert_eq!(json["rule"], "one");
        assert_eq!(json["outcome"], "delivered");
        assert_eq!(json["delivery"]["webhook"], "delivered");
    }

    #[test]
    fn bad_filter_values_say_which_and_why() {
        let ok = AlertFilter::parse(
            "1h",
            Some("5"),
            Some("r"),
            Some("watch"),
            Some("10.0.0.1"),
            Some("lost"),
        )
        .unwrap();
        assert_eq!((ok.limit, ok.outcome), (5, Some(Outcome::Lost)));
        assert!(
            AlertFilter::parse("1h", None, None, None, Some("h:00000000000000ab"), None).is_ok()
        );
        for (args, word) in [
            (["yesterday-ish", "", "", "", "", ""], "since"),
            (["1h", "0", "", "", "", ""], "limit"),
            (["1h", "x", "", "", "", ""], "limit"),
            (["1h", "", "", "nope", "", ""], "kind"),
            (["1h", "", "", "", "pc-17", ""], "client"),
            (["1h", "", "", "", "", "sent"], "outcome"),
            (["1h", "", "a\u{7}", "", "", ""], "rule"),
        ] {
            let o = |s: &'static str| (!s.is_empty()).then_some(s);
            let e = AlertFilter::parse(
                args[0],
                o(args[1]),
                o(args[2]),
                o(args[3]),
                o(args[4]),
                o(args[5]),
            )
            .unwrap_err()
            .to_string();
            assert!(e.starts_with(word), "{args:?}: {e}");
        }
    }
}
