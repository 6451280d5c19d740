//! `[[alerts]]` rules, `[smtp]` and `[alerting]`: types, defaults, and their checks (each a key
//! path and a message, so `dnsward check` names the file and line).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Config;
use crate::feeds::config::{duration, opt_duration};
use crate::policy::Category;

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A client queried >= `count` blocked names (of `category`) within `window`.
    ClientThreshold,
    /// Any query for a name (or below it) in `names` / `names_file`, blocked or not.
    Watch,
    /// A registrable domain not seen by this resolver within `nod_days`.
    NewDomain,
    /// A feed's download failed (checked every few seconds).
    FeedFailure,
    /// The query log lost events (>= `count`, default 1, within `window`).
    QuerylogDrops,
    /// SERVFAIL answers for DNSSEC-bogus data above `count` within `window`.
    DnssecBogus,
    /// A new critical finding of the scheduled audit.
    Audit,
}

impl AlertKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AlertKind::ClientThreshold => "client_threshold",
            AlertKind::Watch => "watch",
            AlertKind::NewDomain => "new_domain",
            AlertKind::FeedFailure => "feed_failure",
            AlertKind::QuerylogDrops => "querylog_drops",
            AlertKind::DnssecBogus => "dnssec_bogus",
            AlertKind::Audit => "audit",
        }
    }
}

/// One `[[alerts]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    pub name: String,
    pub kind: AlertKind,
    /// client_threshold: blocked names; querylog_drops: lost events; dnssec_bogus: answers.
    #[serde(default)]
    pub count: Option<u32>,
    #[serde(default, deserialize_with = "opt_duration")]
    pub window: Option<Duration>,
    /// client_threshold: only blocks of this category.
    #[serde(default)]
    pub category: Option<Category>,
    /// client_threshold / watch / new_domain: only this `[[clients]]` name.
    #[serde(default)]
    pub client: Option<String>,
    /// client_threshold / watch / new_domain: only clients of this `[[groups]]` group.
    #[serde(default)]
    pub group: Option<String>,
    /// watch: names (each with everything below it).
    #[serde(default)]
    pub names: Vec<String>,
    /// watch: a plain list file of names (one a line, `#` comments).
    #[serde(default)]
    pub names_file: Option<PathBuf>,
    /// new_domain: how long a domain stays "seen" (default 30 days).
    #[serde(default)]
    pub nod_days: Option<u32>,
    /// new_domain: suffixes never reported (e.g. the agency's own, CDNs).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// De-duplication per (rule, client): one alert per `quiet` (default 15 min).
    #[serde(default, deserialize_with = "opt_duration")]
    pub quiet: Option<Duration>,
    /// JSON POST to this URL.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Key of the `X-Dnsward-Signature` HMAC-SHA256 header.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Mail to these addresses through `[smtp]`.
    #[serde(default)]
    pub email: Vec<String>,
    /// `udp://host:514` or `tcp://host:601`: RFC 5424.
    #[serde(default)]
    pub syslog: Option<String>,
}

pub const DEFAULT_QUIET: Duration = Duration::from_secs(15 * 60);
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(10 * 60);
pub const DEFAULT_NOD_DAYS: u32 = 30;

impl AlertRule {
    pub fn quiet(&self) -> Duration {
        self.quiet.unwrap_or(DEFAULT_QUIET)
    }
    pub fn window(&self) -> Duration {
        self.window.unwrap_or(DEFAULT_WINDOW)
    }
    pub fn has_action(&self) -> bool {
        self.webhook.is_some() || !self.email.is_empty() || self.syslog.is_some()
    }
}

/// `[smtp]`: the mail server of `email` actions.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub server: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// STARTTLS before authenticating (default true; false only for a local relay).
    #[serde(default = "default_true")]
    pub starttls: bool,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// With `starttls`: a PEM file of CA certificates trusted besides the built-in roots (an
    /// agency's own CA, or a relay's self-signed certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    pub from: String,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_true() -> bool {
    true
}

/// `[alerting]`: where alerts are kept and how many may go out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertingConfig {
    /// Alert history (SQLite). Default: `alerts.db` beside the query log's SQLite store, or
    /// beside the config file.
    #[serde(default)]
    pub history: Option<PathBuf>,
    /// Pending deliveries (one file each) and the new-domain sets. Default: `alerts/` beside
    /// the history.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// Deliveries waiting at most (per action kind); beyond it the oldest is dropped, counted.
    #[serde(default = "default_queue_max")]
    pub queue_max: usize,
    /// Alerts sent per minute at most; over it one summary alert says how many were held back.
    #[serde(default = "default_max_per_minute")]
    pub max_per_minute: u32,
    /// Longest wait between two delivery attempts (back-off doubles from 1 s up to it).
    #[serde(default = "default_max_backoff", deserialize_with = "duration")]
    pub max_backoff: Duration,
    /// new_domain: names each set holds before its false-positive rate passes ~1%.
    #[serde(default = "default_nod_capacity")]
    pub nod_capacity: u64,
}

fn default_queue_max() -> usize {
    1000
}
fn default_max_per_minute() -> u32 {
    30
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}
fn default_nod_capacity() -> u64 {
    10_000_000
}

impl Default for AlertingConfig {
    fn default() -> Self {
        Self {
            history: None,
            state_dir: None,
            queue_max: default_queue_max(),
            max_per_minute: default_max_per_minute(),
            max_backoff: default_max_backoff(),
            nod_capacity: default_nod_capacity(),
        }
    }
}

impl Config {
    /// The alert history's SQLite file.
    pub fn alert_history_path(&self) -> PathBuf {
        if let Some(p) = &self.alerting.history {
            return self.resolve_path(p);
        }
        match self.querylog.as_ref().and_then(|q| q.sqlite.as_ref()) {
            Some(db) => db.with_file_name("alerts.db"),
            None => self.base_dir.join("alerts.db"),
        }
    }

    /// Pending deliveries and the new-domain sets.
    pub fn alert_state_dir(&self) -> PathBuf {
        match &self.alerting.state_dir {
            Some(p) => self.resolve_path(p),
            None => self.alert_history_path().with_file_name("alerts"),
        }
    }
}

/// Every problem of `[[alerts]]`, `[smtp]` and `[alerting]`.
pub fn problems(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let groups: Vec<&str> = config.groups.iter().map(|g| g.name.as_str()).collect();
    let clients: Vec<&str> = config.clients.iter().map(|c| c.name.as_str()).collect();
    let mut seen = std::collections::HashSet::new();
    for (i, r) in config.alerts.iter().enumerate() {
        let key = |k: &str| format!("alerts[{i}].{k}");
        if r.name.trim().is_empty() || r.name.chars().any(|c| c.is_control()) {
            out.push((key("name"), "must be a non-empty name".into()));
        } else if !seen.insert(r.name.as_str()) {
            out.push((key("name"), format!("another rule is named {:?}", r.name)));
        }
        rule_problems(config, i, r, (&groups[..], &clients[..]), &mut out);
        rule_target_problems(config, i, r, &mut out);
    }
    smtp_problems(config, &mut out);
    alerting_problems(&config.alerting, &mut out);
    out
}

/// One rule's action, scope (group, client) and the keys its kind takes.
fn rule_problems(
    config: &Config,
    i: usize,
    r: &AlertRule,
    (groups, clients): (&[&str], &[&str]),
    out: &mut Vec<(String, String)>,
) {
    let key = |k: &str| format!("alerts[{i}].{k}");
    if !r.has_action() {
        out.push((
            key("kind"),
            "the rule has no action: set webhook, email or syslog".into(),
        ));
    }
    if let Some(g) = &r.group {
        let known = groups.contains(&g.as_str()) || g == crate::policy::groups::DEFAULT_GROUP;
        if !known {
            out.push((key("group"), format!("unknown group {g:?}")));
        }
    }
    if let Some(c) = &r.client {
        if !clients.contains(&c.as_str()) {
            out.push((
                key("client"),
                format!("unknown client {c:?} (no [[clients]] of that name)"),
            ));
        }
    }
    let kind = r.kind;
    if kind == AlertKind::Audit && config.audit.is_none() {
        out.push((
            key("kind"),
            "kind \"audit\" needs an [audit] table (inventory, interval)".into(),
        ));
    }
    let only = |k: &str, set: bool, kinds: &[AlertKind], out: &mut Vec<(String, String)>| {
        if set && !kinds.contains(&kind) {
            out.push((key(k), format!("is not a key of kind {:?}", kind.as_str())));
        }
    };
    use AlertKind::*;
    only("category", r.category.is_some(), &[ClientThreshold], out);
    only("names", !r.names.is_empty(), &[Watch], out);
    only("names_file", r.names_file.is_some(), &[Watch], out);
    only("nod_days", r.nod_days.is_some(), &[NewDomain], out);
    only("ignore", !r.ignore.is_empty(), &[NewDomain], out);
    only(
        "count",
        r.count.is_some(),
        &[ClientThreshold, QuerylogDrops, DnssecBogus],
        out,
    );
    if kind == ClientThreshold {
        if r.count.unwrap_or(0) == 0 {
            out.push((key("kind"), "client_threshold needs count >= 1".into()));
        }
        if r.category == Some(Category::Allow) {
            out.push((key("category"), "allow lists block nothing".into()));
        }
    }
    if kind == Watch && r.names.is_empty() && r.names_file.is_none() {
        out.push((key("kind"), "watch needs names or names_file".into()));
    }
}

/// One rule's names, files, windows and where it sends (webhook, email, syslog).
fn rule_target_problems(config: &Config, i: usize, r: &AlertRule, out: &mut Vec<(String, String)>) {
    let key = |k: &str| format!("alerts[{i}].{k}");
    for (j, n) in r.names.iter().enumerate() {
        if crate::hostname::normalise(n).is_err() {
            out.push((
                format!("alerts[{i}].names[{j}]"),
                format!("{n:?} is not a domain name"),
            ));
        }
    }
    if let Some(p) = &r.names_file {
        if !config.resolve_path(p).is_file() {
            out.push((key("names_file"), format!("{} does not exist", p.display())));
        }
    }
    if r.nod_days == Some(0) {
        out.push((key("nod_days"), "must be at least 1".into()));
    }
    if let Some(w) = r.window {
        if w.is_zero() {
            out.push((key("window"), "must be longer than 0".into()));
        }
    }
    if let Some(u) = &r.webhook {
        match reqwest::Url::parse(u) {
            Ok(url) if url.scheme() == "https" && url.host().is_some() => {}
            Ok(url) if url.scheme() == "http" && crate::feeds::config::is_loopback_host(&url) => {}
            Ok(_) => out.push((
                key("webhook"),
                format!("{u:?}: must be an https:// URL (http:// only to this machine)"),
            )),
            Err(e) => out.push((key("webhook"), format!("{u:?} is not a URL: {e}"))),
        }
    }
    if let Some(p) = &r.secret_file {
        if r.webhook.is_none() {
            out.push((key("secret_file"), "signs webhooks: set webhook too".into()));
        } else if !config.resolve_path(p).is_file() {
            out.push((
                key("secret_file"),
                format!("{} does not exist", p.display()),
            ));
        }
    }
    for (j, a) in r.email.iter().enumerate() {
        if a.parse::<lettre::Address>().is_err() {
            out.push((
                format!("alerts[{i}].email[{j}]"),
                format!("{a:?} is not a mail address"),
            ));
        }
    }
    if !r.email.is_empty() && config.smtp.is_none() {
        out.push((key("email"), "email needs an [smtp] table".into()));
    }
    if let Some(s) = &r.syslog {
        if let Err(e) = SyslogTarget::parse(s) {
            out.push((key("syslog"), e.to_string()));
        }
    }
}

/// `[smtp]`: the sender, the server, the credentials.
fn smtp_problems(config: &Config, out: &mut Vec<(String, String)>) {
    if let Some(s) = &config.smtp {
        if s.from.parse::<lettre::Address>().is_err() {
            out.push((
                "smtp.from".into(),
                format!("{:?} is not a mail address", s.from),
            ));
        }
        if s.server.trim().is_empty() {
            out.push(("smtp.server".into(), "must not be empty".into()));
        }
        if let Some(p) = &s.password_file {
            if !config.resolve_path(p).is_file() {
                out.push((
                    "smtp.password_file".into(),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
        if let Some(p) = &s.ca_file {
            if !s.starttls {
                out.push((
                    "smtp.ca_file".into(),
                    "is used with starttls = true only".into(),
                ));
            } else if !config.resolve_path(p).is_file() {
                out.push((
                    "smtp.ca_file".into(),
                    format!("{} does not exist", p.display()),
                ));
            }
        }
        if s.password_file.is_some() != s.username.is_some() {
            out.push((
                "smtp.username".into(),
                "username and password_file go together".into(),
            ));
        }
    }
}

/// `[alerting]`: the queue, the per-minute cap, the new-domain set's size.
fn alerting_problems(a: &AlertingConfig, out: &mut Vec<(String, String)>) {
    if a.queue_max == 0 {
        out.push(("alerting.queue_max".into(), "must be at least 1".into()));
    }
    if a.max_per_minute == 0 {
        out.push((
            "alerting.max_per_minute".into(),
            "must be at least 1".into(),
        ));
    }
    if a.nod_capacity < 1000 || a.nod_capacity > 1_000_000_000 {
        out.push((
            "alerting.nod_capacity".into(),
            "must be between 1000 and 1000000000".into(),
        ));
    }
}

/// `udp://host:514` / `tcp://host:601`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyslogTarget {
    Udp(String),
    Tcp(String),
}

/// Why a `syslog` value is not a target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyslogTargetError {
    #[error("{0:?}: write udp://host:514 or tcp://host:601")]
    NoScheme(String),
    #[error("{0:?}: host:port expected after {1}://")]
    NoHostPort(String, String),
    #[error("{0:?}: the scheme must be udp or tcp")]
    Scheme(String),
}

impl SyslogTarget {
    pub fn parse(s: &str) -> Result<SyslogTarget, SyslogTargetError> {
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| SyslogTargetError::NoScheme(s.to_string()))?;
        let hostport = rest.trim_end_matches('/');
        let ok = hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
        if !ok {
            return Err(SyslogTargetError::NoHostPort(
                s.to_string(),
                scheme.to_string(),
            ));
        }
        match scheme {
            "udp" => Ok(SyslogTarget::Udp(hostport.to_string())),
            "tcp" => Ok(SyslogTarget::Tcp(hostport.to_string())),
            _ => Err(SyslogTargetError::Scheme(s.to_string())),
        }
    }
}
