//! Alerts to the on-duty team: `[[alerts]]` rules evaluated on the query-event stream, off the
//! answer path. The alerts are one more consumer of the query-log bus (`querylog::Consumer`:
//! a bounded queue of their own, fed with the sinks' batches, drop-oldest), drained by one
//! task; what a rule raises is de-duplicated per (rule, client) over `quiet`, capped per minute
//! (one summary alert when the cap trips), kept in the history (SQLite) and written to the
//! on-disk outbox of each action; one worker per action kind delivers and retries. So a slow
//! mail server or a dead webhook can never slow DNS: the answer path only pushes a batch.
//!
//! - `config`: `[[alerts]]`, `[smtp]`, `[alerting]` and their checks;
//! - `rules`: the per-rule state (thresholds, watch sets, the new-domain set) and evaluation;
//! - `nod`: the new-domain set (two Bloom filters in turn, saved across restarts);
//! - `deliver`: outbox, workers, webhook / email / syslog;
//! - `history`: the history (SQLite) and its reading with filters; `history_ch`: the same in
//!   the fleet's ClickHouse; `metrics`: the counters appended to `/metrics`.
//!
//! Dependencies: `alerts` uses `config`, `querylog` (the bus), `feeds` (status) and `policy`
//! (types); the pipeline and the policy know nothing of it.

pub mod config;
pub mod deliver;
pub mod history;
pub mod history_ch;
pub mod metrics;
pub mod nod;
pub mod prefilter;
pub mod rules;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::feeds::Feeds;
use crate::querylog::clickhouse_client::{ClickhouseError, ClickhouseTarget};
use crate::querylog::{Consumer, QueryLog, SinkQueue};
use config::AlertRule;
use deliver::{ActionKind, Job, Outbox, Senders};
use metrics::AlertMetrics;
use rules::RuleState;

/// Events the alerts' queue holds at most (drop-oldest beyond, counted like a sink's).
pub const QUEUE_EVENTS: usize = 65_536;
/// How often the periodic kinds (feeds, query-log drops) are checked and the sets saved.
const TICK: Duration = Duration::from_secs(2);
const NOD_SAVE_EVERY: Duration = Duration::from_secs(300);

/// One name in an alert, with how often it was queried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameCount {
    pub name: String,
    pub count: u64,
}

/// What is sent and stored: everything the on-duty person needs to act.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Unique (16 hex digits): links the alert to its deliveries in the history, and lets a
    /// receiver drop a retried duplicate.
    #[serde(default)]
    pub id: String,
    pub rule: String,
    pub kind: String,
    /// When raised (RFC 3339 UTC) and the same in microseconds.
    pub time: String,
    pub ts_us: i64,
    /// The client's address (or its privacy token), its `[[clients]]` name and its group.
    pub client: Option<String>,
    pub client_name: Option<String>,
    pub group: Option<String>,
    pub names: Vec<NameCount>,
    pub count: u64,
    /// First and last query that counted (RFC 3339 UTC).
    pub first: Option<String>,
    pub last: Option<String>,
    /// The list and rule that blocked, when one did.
    pub list: Option<String>,
    pub list_rule: Option<String>,
    pub category: Option<String>,
    /// One line for people.
    pub message: String,
    /// The hotline from `[policy] contact`.
    pub contact: Option<String>,
    /// The `[server] name` (or host name) of the resolver that raised it.
    pub server: String,
    /// Alerts of this (rule, client) held back within `quiet` before this one.
    #[serde(default)]
    pub suppressed: u64,
    /// `dnsward alerts test RULE`.
    #[serde(default)]
    pub test: bool,
}

/// The alert as plain text (mail body).
pub fn text(a: &Alert) -> String {
    let mut s = format!(
        "{}\n\nrule: {} ({})\ntime: {}\n",
        a.message, a.rule, a.kind, a.time
    );
    if let Some(c) = &a.client {
        s += &format!("client: {c}");
        if let Some(n) = &a.client_name {
            s += &format!(" ({n})");
        }
        if let Some(g) = &a.group {
            s += &format!(", group {g}");
        }
        s.push('\n');
    }
    for n in &a.names {
        s += &format!("name: {} x{}\n", n.name, n.count);
    }
    if let (Some(f), Some(l)) = (&a.first, &a.last) {
        s += &format!("first: {f}\nlast: {l}\n");
    }
    if let Some(l) = &a.list {
        s += &format!("list: {l}");
        if let Some(r) = &a.list_rule {
            s += &format!(" rule {r}");
        }
        s.push('\n');
    }
    if a.suppressed > 0 {
        s += &format!("held back since the last alert: {}\n", a.suppressed);
    }
    if let Some(c) = &a.contact {
        s += &format!("\nhotline: {c}\n");
    }
    s += &format!("server: {}\n", a.server);
    s
}

/// Why the alerts cannot start, or a rule cannot be tested.
#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("alerts state_dir {}: {source}", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("alerts outbox in {}: {source}", path.display())]
    Outbox {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[smtp] {}: {source}", path.display())]
    SmtpFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("alert history {}: {source}", path.display())]
    History {
        path: PathBuf,
        source: history::HistoryError,
    },
    #[error("alert history in ClickHouse: {0}")]
    Clickhouse(#[from] ClickhouseError),
    #[error("alert history in ClickHouse: cannot start its writer: {0}")]
    Writer(std::io::Error),
    #[error(transparent)]
    Deliver(#[from] deliver::DeliverError),
    #[error("no [[alerts]] rule named {0:?}")]
    UnknownRule(String),
}

/// `Instance::start` reports its errors as text for now (issue 24 types them).
impl From<AlertsError> for String {
    fn from(e: AlertsError) -> String {
        e.to_string()
    }
}

/// The history's SQLite file, and ClickHouse's tables when `[querylog] clickhouse` is set.
fn open_history(
    config: &Config,
    path: &std::path::Path,
) -> Result<history::HistoryStore, AlertsError> {
    let sqlite = history::History::open(path).map_err(|source| AlertsError::History {
        path: path.to_path_buf(),
        source,
    })?;
    let target = match config.querylog.as_ref() {
        Some(q) => ClickhouseTarget::from_config(q)?,
        None => None,
    };
    let clickhouse = match target {
        Some(t) => Some(history_ch::ChWriter::start(t).map_err(AlertsError::Writer)?),
        None => None,
    };
    Ok(history::HistoryStore::new(sqlite, clickhouse))
}

/// A file `[smtp]` names (`password_file`, `ca_file`), read once at start.
fn smtp_file(
    config: &Config,
    key: impl Fn(&config::SmtpConfig) -> Option<&PathBuf>,
) -> Result<Option<String>, AlertsError> {
    let Some(p) = config.smtp.as_ref().and_then(key) else {
        return Ok(None);
    };
    let path = config.resolve_path(p);
    let text =
        std::fs::read_to_string(&path).map_err(|source| AlertsError::SmtpFile { path, source })?;
    Ok(Some(text))
}

/// A new alert's id: 16 random hex digits.
fn new_id() -> String {
    let n = getrandom::u64().unwrap_or_else(|_| crate::timefmt::now_us() as u64);
    format!("{n:016x}")
}

/// The running alerts of one instance.
pub struct Alerts {
    rules: Vec<AlertRule>,
    /// `[[events]]`: rules they name fire only inside their windows.
    events: Vec<crate::events::EventConfig>,
    base_dir: PathBuf,
    queue: Arc<SinkQueue>,
    wants_all: bool,
    outboxes: HashMap<ActionKind, Arc<Outbox>>,
    senders: Arc<Senders>,
    pub metrics: Arc<AlertMetrics>,
    history_path: PathBuf,
    history: Arc<history::HistoryStore>,
    state_dir: PathBuf,
    contact: Option<String>,
    server: String,
    max_per_minute: u32,
    max_backoff: Duration,
    nod_capacity: u64,
    stop: tokio::sync::watch::Sender<bool>,
    /// When this instance's alerts were made (Unix seconds).
    started_unix: u64,
    /// Alerts raised outside the event stream (the scheduled audit), for the evaluator.
    external: tokio::sync::mpsc::UnboundedSender<rules::Draft>,
    external_rx: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<rules::Draft>>>,
    /// The critical audit findings of the last run ("name: reason"), to alert on new ones only.
    audit_seen: Mutex<Option<std::collections::HashSet<String>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    evaluator: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Alerts {
    /// The alerts of `config`, or None when it has no `[[alerts]]`. Opens the outboxes and the
    /// history (and starts its ClickHouse writer with `[querylog] clickhouse`); nothing else
    /// runs until [`Alerts::start`].
    pub fn new(config: &Config) -> Result<Option<Arc<Alerts>>, AlertsError> {
        if config.alerts.is_empty() {
            return Ok(None);
        }
        let state_dir = config.alert_state_dir();
        std::fs::create_dir_all(&state_dir).map_err(|source| AlertsError::StateDir {
            path: state_dir.clone(),
            source,
        })?;
        let metrics = Arc::new(AlertMetrics::new());
        let history_path = config.alert_history_path();
        let history = Arc::new(open_history(config, &history_path)?);
        let mut outboxes = HashMap::new();
        for kind in ActionKind::ALL {
            let ob = Outbox::open(
                &state_dir,
                kind,
                config.alerting.queue_max,
                Arc::clone(&metrics),
                Arc::clone(&history),
            )
            .map_err(|source| AlertsError::Outbox {
                path: state_dir.clone(),
                source,
            })?;
            outboxes.insert(kind, Arc::new(ob));
        }
        let senders = Senders::new(
            config.smtp.clone(),
            smtp_file(config, |s| s.password_file.as_ref())?.map(|p| p.trim().to_string()),
            smtp_file(config, |s| s.ca_file.as_ref())?.map(String::into_bytes),
            config.instance_name(),
        )?;
        let wants_all = config.alerts.iter().any(|r| {
            matches!(
                r.kind,
                config::AlertKind::Watch | config::AlertKind::NewDomain
            )
        });
        let server = config.instance_name();
        let (external, external_rx) = tokio::sync::mpsc::unbounded_channel();
        Ok(Some(Arc::new(Alerts {
            started_unix: (crate::timefmt::now_us() / 1_000_000).max(0) as u64,
            external,
            external_rx: Mutex::new(Some(external_rx)),
            audit_seen: Mutex::new(None),
            rules: config.alerts.clone(),
            events: config.events.clone(),
            base_dir: config.base_dir.clone(),
            queue: Arc::new(SinkQueue::new("alerts", QUEUE_EVENTS, 4096)),
            wants_all,
            outboxes,
            senders: Arc::new(senders),
            metrics,
            history_path,
            history,
            state_dir,
            contact: config.policy.contact.clone(),
            server,
            max_per_minute: config.alerting.max_per_minute,
            max_backoff: config.alerting.max_backoff,
            nod_capacity: config.alerting.nod_capacity,
            stop: tokio::sync::watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            evaluator: Mutex::new(None),
        })))
    }

    /// The query-log consumer to start the query log with.
    pub fn consumer(&self) -> Consumer {
        Consumer {
            queue: Arc::clone(&self.queue),
            all_actions: self.wants_all,
            allowed_filter: prefilter::AllowedFilter::new(
                &self.rules,
                &self.base_dir,
                &self
                    .events
                    .iter()
                    .flat_map(|e| e.alerts.iter().map(String::as_str))
                    .collect::<Vec<_>>(),
            )
            .map(|f| {
                Arc::new(move |qname: &str, ts_us: i64| {
                    f.wants(qname, (ts_us.max(0) / 1_000_000) as u64)
                }) as crate::querylog::NameFilter
            }),
        }
    }

    /// A `dnssec_bogus` rule reads the EDE of SERVFAIL answers.
    pub fn wants_servfail_wire(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.kind == config::AlertKind::DnssecBogus)
    }

    /// Events the alerts' queue dropped (it was full).
    pub fn queue_dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// Starts the evaluator and the delivery workers on the current runtime.
    pub fn start(self: &Arc<Self>, log: QueryLog, feeds: Option<Arc<Feeds>>) {
        let mut tasks = lock(&self.tasks);
        for ob in self.outboxes.values() {
            tasks.push(tokio::spawn(Arc::clone(ob).run(
                Arc::clone(&self.senders),
                self.max_backoff,
                self.stop.subscribe(),
            )));
        }
        // The evaluator on a thread of its own at a lower priority (as the query log's sinks):
        // under full load the answer path keeps the CPU; the alerts' queue absorbs the lag
        // (drop-oldest, counted in `dnsward_alerts_events_dropped`).
        let me = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("alerts".into())
            .spawn(move || {
                lower_this_threads_priority(EVALUATOR_NICE);
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt.block_on(me.evaluate(log, feeds)),
                    Err(e) => tracing::error!(error = %e, "alerts: cannot start the evaluator"),
                }
            });
        match spawned {
            Ok(h) => *lock(&self.evaluator) = Some(h),
            Err(e) => tracing::error!(error = %e, "alerts: cannot start the evaluator thread"),
        }
    }

    /// Stops the tasks; the new-domain sets are saved; waiting deliveries stay on disk.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        self.queue.close();
        let evaluator = lock(&self.evaluator).take();
        if let Some(h) = evaluator {
            let joined = tokio::task::spawn_blocking(move || h.join());
            let _ = tokio::time::timeout(Duration::from_secs(5), joined).await;
        }
        let tasks: Vec<_> = std::mem::take(&mut *lock(&self.tasks));
        for mut t in tasks {
            if tokio::time::timeout(Duration::from_secs(3), &mut t)
                .await
                .is_err()
            {
                t.abort();
            }
        }
        if let Some(writer) = self.history.close() {
            let joined = tokio::task::spawn_blocking(move || writer.join());
            let _ = tokio::time::timeout(Duration::from_secs(12), joined).await;
        }
    }

    fn rule_states(&self) -> Vec<RuleState> {
        self.rules
            .iter()
            .map(|r| RuleState::new(r, &self.base_dir, &self.state_dir, self.nod_capacity))
            .collect()
    }

    async fn evaluate(self: Arc<Self>, log: QueryLog, feeds: Option<Arc<Feeds>>) {
        let mut states = self.rule_states();
        let mut gate = Gate::new(self.max_per_minute);
        let mut drained = Vec::new();
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_save = Instant::now();
        let mut periodic = rules::Periodic::new(&log, feeds.as_deref(), self.started_unix);
        let mut stop = self.stop.subscribe();
        let mut external = lock(&self.external_rx).take();
        loop {
            let mut from_outside = Vec::new();
            tokio::select! {
                _ = self.queue.notified() => {}
                _ = tick.tick() => {}
                _ = stop.changed() => {}
                Some(d) = async {
                    match external.as_mut() {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => from_outside.push(d),
            };
            let stopping = *stop.borrow() || self.queue.is_closed();
            drained.clear();
            self.queue.drain_into(QUEUE_EVENTS, &mut drained);
            let mut raised = Vec::new();
            let now_us = crate::timefmt::now_us();
            let active: Vec<bool> = self
                .rules
                .iter()
                .map(|r| crate::events::rule_active(&self.events, &r.name, now_us))
                .collect();
            for q in drained.drain(..) {
                for e in q.events() {
                    for (i, st) in states.iter_mut().enumerate() {
                        if !active[i] {
                            continue;
                        }
                        if let Some(a) = st.on_event(&self.rules[i], e) {
                            raised.push((i, a));
                        }
                    }
                }
                q.recycle(crate::querylog::BATCH_EVENTS);
            }
            for (i, st) in states.iter_mut().enumerate() {
                if !active[i] {
                    continue;
                }
                if let Some(a) = st.on_tick(&self.rules[i], &mut periodic, &log, feeds.as_deref()) {
                    raised.push((i, a));
                }
            }
            periodic.advance(&log, feeds.as_deref());
            for d in from_outside {
                for (i, r) in self.rules.iter().enumerate() {
                    if r.kind == config::AlertKind::Audit && active[i] {
                        raised.push((i, d.clone()));
                    }
                }
            }
            for (i, draft) in raised {
                self.raise(&mut gate, i, draft);
            }
            if let Some((summary, rules)) = gate.roll(Instant::now()) {
                let alert = self.finish(summary, "alert-cap", "summary", 0);
                self.store_and_send(&alert, &rules);
            }
            if stopping || last_save.elapsed() >= NOD_SAVE_EVERY {
                for st in &states {
                    st.save();
                }
                last_save = Instant::now();
            }
            if stopping {
                return;
            }
        }
    }

    fn finish(&self, d: rules::Draft, rule: &str, kind: &str, suppressed: u64) -> Alert {
        let now = crate::timefmt::now_us();
        Alert {
            id: new_id(),
            rule: rule.to_string(),
            kind: kind.to_string(),
            time: crate::timefmt::format_ts(now, 3),
            ts_us: now,
            client: d.client,
            client_name: d.client_name,
            group: d.group,
            names: d.names,
            count: d.count,
            first: d.first_us.map(|t| crate::timefmt::format_ts(t, 3)),
            last: d.last_us.map(|t| crate::timefmt::format_ts(t, 3)),
            list: d.list,
            list_rule: d.list_rule,
            category: d.category,
            message: d.message,
            contact: self.contact.clone(),
            server: self.server.clone(),
            suppressed,
            test: false,
        }
    }

    fn raise(&self, gate: &mut Gate, i: usize, draft: rules::Draft) {
        let rule = &self.rules[i];
        let key = (
            i,
            draft
                .dedup_key
                .clone()
                .or_else(|| draft.client.clone())
                .unwrap_or_default(),
        );
        match gate.admit(key, rule.quiet(), i) {
            Admit::Quiet => {
                self.metrics.suppressed.inc();
            }
            Admit::Capped => {
                self.metrics.suppressed.inc();
                tracing::warn!(rule = %rule.name, "alerts: over [alerting] max_per_minute; held back");
            }
            Admit::Send { suppressed } => {
                let a = self.finish(draft, &rule.name, rule.kind.as_str(), suppressed);
                tracing::warn!(rule = %a.rule, client = a.client.as_deref().unwrap_or(""), "alert: {}", a.message);
                self.store_and_send(&a, &[i]);
            }
        }
    }

    /// Into the history, and one job per action of each rule in `rules` (targets de-duplicated).
    fn store_and_send(&self, a: &Alert, rules: &[usize]) {
        self.history.alert(a);
        let mut jobs: Vec<Job> = Vec::new();
        for &i in rules {
            for job in self.jobs_for(&self.rules[i], a) {
                if !jobs
                    .iter()
                    .any(|j| j.action == job.action && j.target == job.target)
                {
                    jobs.push(job);
                }
            }
        }
        for job in jobs {
            self.outboxes[&job.action].push(&job);
        }
    }

    fn jobs_for(&self, r: &AlertRule, a: &Alert) -> Vec<Job> {
        let mut jobs = Vec::new();
        if let Some(url) = &r.webhook {
            jobs.push(Job {
                action: ActionKind::Webhook,
                target: url.clone(),
                secret_file: r.secret_file.as_ref().map(|p| resolve(&self.base_dir, p)),
                alert: a.clone(),
            });
        }
        if !r.email.is_empty() {
            jobs.push(Job {
                action: ActionKind::Email,
                target: r.email.join(","),
                secret_file: None,
                alert: a.clone(),
            });
        }
        if let Some(s) = &r.syslog {
            jobs.push(Job {
                action: ActionKind::Syslog,
                target: s.clone(),
                secret_file: None,
                alert: a.clone(),
            });
        }
        jobs
    }

    /// A finished scheduled audit: each critical finding not in the previous run's becomes an
    /// alert of the `audit` rules (the first run alerts on every critical finding).
    pub fn audit_report(&self, report: &crate::audit::AuditReport) {
        use crate::audit::Severity;
        let mut now = std::collections::HashSet::new();
        let mut seen = lock(&self.audit_seen);
        for n in &report.names {
            for f in n
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Critical)
            {
                let key = format!("{}: {}", n.name, f.reason);
                let is_new = seen.as_ref().is_none_or(|s| !s.contains(&key));
                if is_new {
                    let _ = self.external.send(rules::Draft {
                        names: vec![NameCount {
                            name: n.name.clone(),
                            count: 1,
                        }],
                        count: 1,
                        category: Some(f.kind.as_str().to_string()),
                        message: format!("audit: {} ({}): {}", n.name, f.kind.as_str(), f.reason),
                        dedup_key: Some(key.clone()),
                        ..Default::default()
                    });
                }
                now.insert(key);
            }
        }
        *seen = Some(now);
    }

    /// `dnsward alerts test RULE`: a test alert through each action of the rule, now (not
    /// through the outbox); one result per action.
    pub async fn send_test(
        &self,
        rule: &str,
    ) -> Result<Vec<(ActionKind, Result<(), deliver::DeliverError>)>, AlertsError> {
        let i = self
            .rules
            .iter()
            .position(|r| r.name == rule)
            .ok_or_else(|| AlertsError::UnknownRule(rule.to_string()))?;
        let r = &self.rules[i];
        let draft = rules::Draft {
            message: format!(
                "test alert of rule {:?} ({}): no action needed",
                r.name,
                r.kind.as_str()
            ),
            ..Default::default()
        };
        let mut a = self.finish(draft, &r.name, r.kind.as_str(), 0);
        a.test = true;
        self.history.alert(&a);
        let mut out = Vec::new();
        for job in self.jobs_for(r, &a) {
            let result = self.senders.send(&job).await;
            // Not queued, so not retried: a failed test delivery is lost.
            let state = match &result {
                Ok(()) => {
                    self.metrics.sent(&a.rule, job.action);
                    history::DeliveryState::Delivered
                }
                Err(_) => {
                    self.metrics.failed(job.action);
                    history::DeliveryState::Lost
                }
            };
            self.history
                .delivery(&a.id, job.action.as_str(), &job.target, state);
            out.push((job.action, result));
        }
        Ok(out)
    }

    /// The history file (for `GET /api/alerts`).
    pub fn history_path(&self) -> &std::path::Path {
        &self.history_path
    }

    /// Deliveries waiting, per action kind.
    pub fn pending(&self) -> Vec<(&'static str, usize)> {
        ActionKind::ALL
            .iter()
            .map(|k| (k.as_str(), self.outboxes[k].len()))
            .collect()
    }

    /// The alert metrics, without `# EOF`.
    pub fn encode_metrics(&self, out: &mut String) {
        self.metrics
            .queue_dropped
            .set(self.queue.dropped().min(i64::MAX as u64) as i64);
        self.metrics.encode_into(out);
    }
}

/// How much lower than the server the evaluator thread runs (nice steps).
const EVALUATOR_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority by `steps` (Linux: per thread).
fn lower_this_threads_priority(steps: i32) {
    // SAFETY: gettid/getpriority/setpriority on the calling thread only.
    unsafe {
        let tid = libc::gettid();
        *libc::__errno_location() = 0;
        let cur = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        let cur = if *libc::__errno_location() != 0 {
            0
        } else {
            cur
        };
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, (cur + steps).min(19)) != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "alerts: cannot lower the evaluator's priority");
        }
    }
}

fn resolve(base: &std::path::Path, p: &std::path::Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

enum Admit {
    Send { suppressed: u64 },
    Quiet,
    Capped,
}

/// De-duplication per (rule, client) and the global per-minute cap.
struct Gate {
    max_per_minute: u32,
    last: HashMap<(usize, String), (Instant, u64)>,
    minute_start: Instant,
    sent: u32,
    held: HashMap<usize, u64>,
}

/// Pairs remembered for de-duplication at most (a flood of clients cannot grow it without bound).
const GATE_KEYS: usize = 100_000;

impl Gate {
    fn new(max_per_minute: u32) -> Gate {
        Gate {
            max_per_minute,
            last: HashMap::new(),
            minute_start: Instant::now(),
            sent: 0,
            held: HashMap::new(),
        }
    }

    fn admit(&mut self, key: (usize, String), quiet: Duration, rule: usize) -> Admit {
        let now = Instant::now();
        if let Some((at, held)) = self.last.get_mut(&key) {
            if now.duration_since(*at) < quiet {
                *held += 1;
                return Admit::Quiet;
            }
        }
        if self.sent >= self.max_per_minute {
            *self.held.entry(rule).or_default() += 1;
            return Admit::Capped;
        }
        self.sent += 1;
        if self.last.len() >= GATE_KEYS {
            self.last
                .retain(|_, (at, _)| now.duration_since(*at) < quiet);
            if self.last.len() >= GATE_KEYS {
                self.last.clear();
            }
        }
        let suppressed = self.last.insert(key, (now, 0)).map_or(0, |(_, h)| h);
        Admit::Send { suppressed }
    }

    /// At the end of each minute: the summary of what the cap held back, with the rules whose
    /// actions it goes to.
    fn roll(&mut self, now: Instant) -> Option<(rules::Draft, Vec<usize>)> {
        if now.duration_since(self.minute_start) < Duration::from_secs(60) {
            return None;
        }
        self.minute_start = now;
        self.sent = 0;
        if self.held.is_empty() {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        let total: u64 = held.values().sum();
        let mut rules: Vec<usize> = held.keys().copied().collect();
        rules.sort();
        Some((
            rules::Draft {
                count: total,
                message: format!(
                    "{total} alert(s) held back in the last minute by [alerting] max_per_minute = {}; see dnsward alerts list and the logs",
                    self.max_per_minute
                ),
                ..Default::default()
            },
            rules,
        ))
    }
}
