//! Typed configuration (one TOML file) and validation that reports every problem at once.
//!
//! `load` returns either a `Config` or the full list of problems, each with its key path and
//! line, so that `dnsward check` and `dnsward serve` print the same messages.

pub mod alerts;
pub mod audit;
pub mod events;
mod groups;
mod locate;
mod validate;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

pub use crate::resolver::config::{DnssecMode, Mode, OneOrMany, QnameMinimisation, ResolverConfig};
pub use groups::{ClientConfig, ClientNet, GroupConfig};
pub use locate::ConfigProblem;

pub use crate::policy::groups::RUNTIME_LIST;

use crate::policy::{Action, Category, ListFormat, ListSpec};
use crate::querylog::QueryLogConfig;

/// The whole config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub resolver: ResolverConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    #[serde(default)]
    pub lists: Vec<ListConfig>,
    /// `[querylog]`; absent = no query log.
    #[serde(default)]
    pub querylog: Option<QueryLogConfig>,
    /// `[admin]`; absent = no metrics endpoint and no admin API.
    #[serde(default)]
    pub admin: Option<AdminConfig>,
    /// `[[clients]]`: names for addresses and CIDRs (query log, explain), optional group.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// `[[groups]]`: per-client policy groups (which lists apply, action, logging).
    #[serde(default)]
    pub groups: Vec<GroupConfig>,
    /// `[blockpage]`; absent = no block page server.
    #[serde(default)]
    pub blockpage: Option<BlockpageConfig>,
    /// `[feeds]`: where remote lists (`[[lists]] url`) are cached and how downloads are judged.
    #[serde(default)]
    pub feeds: crate::feeds::FeedsConfig,
    /// `[[rpz]]`: RPZ zones received by zone transfer (see `src/rpzxfr`).
    #[serde(default)]
    pub rpz: Vec<crate::rpzxfr::config::RpzConfig>,
    /// `[rpz_server]`: the local policy served as an RPZ zone; absent = not served.
    #[serde(default)]
    pub rpz_server: Option<crate::rpzxfr::config::RpzServerConfig>,
    /// `[[events]]`: event windows (lists and alert rules in force only between start and end).
    #[serde(default)]
    pub events: Vec<events::EventConfig>,
    /// `[audit]`: `dnsward audit` on a schedule from `serve` (see `src/audit`).
    #[serde(default)]
    pub audit: Option<audit::AuditConfig>,
    /// `[[alerts]]`: rules on the query-event stream and their actions (see `src/alerts`).
    #[serde(default)]
    pub alerts: Vec<alerts::AlertRule>,
    /// `[smtp]`: the mail server of the `email` alert actions.
    #[serde(default)]
    pub smtp: Option<alerts::SmtpConfig>,
    /// `[alerting]`: alert history, outbox bound, per-minute cap.
    #[serde(default)]
    pub alerting: alerts::AlertingConfig,
    /// Directory the config file lives in: relative paths in the file are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Every address gets a UDP and a TCP listener.
    #[serde(default = "default_listen")]
    pub listen: Vec<SocketAddr>,
    /// Instance name written into query-log events (default: the host name).
    #[serde(default)]
    pub name: Option<String>,
    /// UDP worker loops per listen address (default: number of CPUs).
    #[serde(default)]
    pub udp_workers: Option<usize>,
    /// Datagrams a UDP worker receives with one `recvmmsg` and answers with one `sendmmsg`
    /// (Linux; elsewhere always 1). 1 = one `recvfrom`/`sendto` per query.
    #[serde(default = "default_udp_batch")]
    pub udp_batch: usize,
    /// Idle TCP connections are closed after this many seconds.
    #[serde(default = "default_tcp_idle_secs")]
    pub tcp_idle_secs: u64,
    /// Largest UDP response we send, whatever the client advertises (RFC 9715 / DNS flag day 2020).
    #[serde(default = "default_max_udp_payload")]
    pub max_udp_payload: u16,
    /// On SIGINT/SIGTERM, in-flight queries get at most this long to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Clients that may query (CIDR). Default: loopback only — never an open resolver.
    #[serde(default = "default_allow")]
    pub allow: Vec<IpNet>,
    /// Clients refused even when `allow` covers them.
    #[serde(default)]
    pub deny: Vec<IpNet>,
    /// What clients outside the ACL get: `refuse` (REFUSED) or `drop` (nothing).
    #[serde(default)]
    pub refuse_action: RefuseAction,
    /// Queries per second per client (/32, or /56 for IPv6) over UDP; 0 = no limit.
    #[serde(default)]
    pub rate_limit_qps: u32,
    /// Bucket size: queries a client may send at once (default: 2 x rate_limit_qps).
    #[serde(default)]
    pub rate_limit_burst: u32,
    /// Over the limit: `truncate` (TC=1, a real client retries over TCP) or `drop`.
    #[serde(default)]
    pub rate_limit_action: LimitAction,
    /// Identical answers per second to one prefix before RRL drops/slips them; 0 = off.
    #[serde(default)]
    pub rrl_responses_per_second: u32,
    /// Every n-th rate-limited answer goes out truncated instead of dropped (0 = drop all).
    #[serde(default = "default_rrl_slip")]
    pub rrl_slip: u32,
    // --- encrypted DNS (issue 12) ---
    /// DNS over TLS (RFC 7858) listeners; 853 in production.
    #[serde(default)]
    pub tls_listen: Vec<SocketAddr>,
    /// DNS over HTTPS (RFC 8484) listeners, serving `/dns-query`; 443 in production.
    #[serde(default)]
    pub https_listen: Vec<SocketAddr>,
    /// Certificate chain and private key (PEM) for DoT and DoH; re-read on SIGHUP and
    /// `POST /api/reload`.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// A TLS client must finish its handshake within this long.
    #[serde(default = "default_tls_handshake_timeout_ms")]
    pub tls_handshake_timeout_ms: u64,
    /// Open DoT + DoH connections, in total and per client address.
    #[serde(default = "default_tls_max_connections")]
    pub tls_max_connections: usize,
    #[serde(default = "default_tls_max_connections_per_client")]
    pub tls_max_connections_per_client: usize,
    /// Queries one DoT connection (or HTTP/2 streams one DoH connection) may have in flight.
    /// 100 by default: HTTP/2 clients (browsers, nghttp2) open up to 100 streams before they
    /// read the server's limit (RFC 9113 6.5.2), and streams beyond a lower one are refused.
    #[serde(default = "default_tls_max_in_flight")]
    pub tls_max_in_flight: usize,
}

fn default_tls_handshake_timeout_ms() -> u64 {
    5000
}
fn default_tls_max_connections() -> usize {
    4096
}
fn default_tls_max_connections_per_client() -> usize {
    64
}
fn default_tls_max_in_flight() -> usize {
    100
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefuseAction {
    #[default]
    Refuse,
    Drop,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LimitAction {
    #[default]
    Truncate,
    Drop,
}

fn default_allow() -> Vec<IpNet> {
    vec![
        "127.0.0.0/8".parse().expect("CIDR"),
        "::1/128".parse().expect("CIDR"),
    ]
}
/// Largest `udp_batch` accepted: 256 slots of 64 KiB are 16 MiB of (mostly untouched)
/// buffer per worker, and more than the socket holds between two wake-ups at any real rate.
pub const MAX_UDP_BATCH: usize = 256;
fn default_udp_batch() -> usize {
    32
}
fn default_rrl_slip() -> u32 {
    2
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            name: None,
            udp_workers: None,
            udp_batch: default_udp_batch(),
            tcp_idle_secs: default_tcp_idle_secs(),
            max_udp_payload: default_max_udp_payload(),
            shutdown_grace_ms: default_shutdown_grace_ms(),
            allow: default_allow(),
            deny: Vec::new(),
            refuse_action: RefuseAction::default(),
            rate_limit_qps: 0,
            rate_limit_burst: 0,
            rate_limit_action: LimitAction::default(),
            rrl_responses_per_second: 0,
            rrl_slip: default_rrl_slip(),
            tls_listen: Vec::new(),
            https_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_handshake_timeout_ms: default_tls_handshake_timeout_ms(),
            tls_max_connections: default_tls_max_connections(),
            tls_max_connections_per_client: default_tls_max_connections_per_client(),
            tls_max_in_flight: default_tls_max_in_flight(),
        }
    }
}

/// `[policy]`: what a blocked query gets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Default answer for blocked names: nxdomain | nodata | sinkhole | refused.
    #[serde(default = "default_action")]
    pub action: Action,
    /// A answers of the `sinkhole` action (point it at the block page server).
    #[serde(default = "default_sinkhole_v4")]
    pub sinkhole_ipv4: Ipv4Addr,
    #[serde(default = "default_sinkhole_v6")]
    pub sinkhole_ipv6: Ipv6Addr,
    /// TTL of synthesized answers.
    #[serde(default = "default_policy_ttl")]
    pub ttl: u32,
    /// Who to call: put in the Extended DNS Error text of every blocked answer.
    #[serde(default)]
    pub contact: Option<String>,
    /// Structured DNS Errors: contact URIs (`tel:`, `mailto:`, `https:`) sent as `c`.
    #[serde(default)]
    pub contact_uris: Vec<String>,
    /// Structured DNS Errors: the organisation that filters, sent as `o`.
    #[serde(default)]
    pub organisation: Option<String>,
    /// Reload lists when their files change (checked every `watch_interval_secs`).
    #[serde(default = "default_true")]
    pub watch: bool,
    #[serde(default = "default_watch_interval")]
    pub watch_interval_secs: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            action: default_action(),
            sinkhole_ipv4: default_sinkhole_v4(),
            sinkhole_ipv6: default_sinkhole_v6(),
            ttl: default_policy_ttl(),
            contact: None,
            contact_uris: Vec::new(),
            organisation: None,
            watch: true,
            watch_interval_secs: default_watch_interval(),
        }
    }
}

/// `[admin]`: Prometheus metrics, health check and the authenticated admin API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "default_admin_listen")]
    pub listen: SocketAddr,
    /// File holding the bearer token for /api/*; absent = the API is off (/metrics and
    /// /healthz still answer).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Needed (with `tls_cert` and `tls_key`) to listen on a non-loopback address.
    #[serde(default)]
    pub allow_remote: bool,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Where entries added through the API are kept (a list named "runtime").
    #[serde(default = "default_runtime_list")]
    pub runtime_list: PathBuf,
    /// Where names allowed through the API are kept (a list named "runtime-allow", category
    /// allow, in every group).
    #[serde(default = "default_runtime_allow_list")]
    pub runtime_allow_list: PathBuf,
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9153))
}
fn default_runtime_list() -> PathBuf {
    PathBuf::from("runtime-list.txt")
}
fn default_runtime_allow_list() -> PathBuf {
    PathBuf::from("runtime-allow.txt")
}

/// One `[[lists]]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListConfig {
    pub name: String,
    pub category: Category,
    /// A local file; exclusive with `url`.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// A remote list (feed), fetched every `refresh`; exclusive with `path` (see src/feeds).
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "crate::feeds::config::opt_duration")]
    pub refresh: Option<std::time::Duration>,
    /// A feed's shipped copy, used until the first good download.
    #[serde(default)]
    pub snapshot: Option<PathBuf>,
    #[serde(default)]
    pub format: ListFormat,
    /// Overrides `[policy] action` for this list's block rules.
    #[serde(default)]
    pub action: Option<Action>,
    /// Structured DNS Errors sub-error code (`s`) for this list's blocks; default by category.
    #[serde(default)]
    pub sde_suberror: Option<u16>,
}

/// `[blockpage]`: the page a person sees when a sinkholed name is opened in a browser.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockpageConfig {
    /// Plain HTTP listeners (the shipped config: 127.0.0.1:8080; in production the sinkhole
    /// address at port 80).
    pub listen: Vec<SocketAddr>,
    /// HTTPS listeners (the sinkhole address at port 443) with `tls_cert` / `tls_key`.
    #[serde(default)]
    pub https_listen: Vec<SocketAddr>,
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Languages offered, first = default when Accept-Language names none of them.
    #[serde(default = "default_blockpage_languages")]
    pub languages: Vec<String>,
    /// A sentence on how to appeal, and a link to an appeal form.
    #[serde(default)]
    pub appeal_text: Option<String>,
    #[serde(default)]
    pub appeal_link: Option<String>,
}

/// Languages the block page has texts for.
pub const BLOCKPAGE_LANGUAGES: &[&str] = &["vi", "en"];

fn default_blockpage_languages() -> Vec<String> {
    vec!["vi".into(), "en".into()]
}

fn default_action() -> Action {
    Action::Nxdomain
}
fn default_sinkhole_v4() -> Ipv4Addr {
    Ipv4Addr::UNSPECIFIED
}
fn default_sinkhole_v6() -> Ipv6Addr {
    Ipv6Addr::UNSPECIFIED
}
fn default_policy_ttl() -> u32 {
    60
}
fn default_true() -> bool {
    true
}
fn default_watch_interval() -> u64 {
    2
}

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}
fn default_tcp_idle_secs() -> u64 {
    10
}
fn default_max_udp_payload() -> u16 {
    1232
}
fn default_shutdown_grace_ms() -> u64 {
    2000
}
impl Config {
    /// Reads, parses and validates the file. Every problem is returned, not just the first.
    pub fn load(path: &Path) -> Result<Config, Vec<ConfigProblem>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            vec![ConfigProblem {
                file: path.to_path_buf(),
                line: None,
                key: String::new(),
                message: format!("cannot read config file: {e}"),
            }]
        })?;
        Self::from_text(&text, path)
    }

    /// Parses `text` as if it were the file at `path` (used by `load` and by tests).
    pub fn from_text(text: &str, path: &Path) -> Result<Config, Vec<ConfigProblem>> {
        let mut config: Config = locate::deserialize_all(text, path)?;
        config.base_dir = path
            .parent()
            .map(Path::to_path_buf)
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or_else(|| PathBuf::from("."));
        if let Some(q) = config.querylog.as_mut() {
            let base = config.base_dir.clone();
            let resolve = |p: &mut PathBuf| {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            };
            for p in [
                &mut q.sqlite,
                &mut q.jsonl,
                &mut q.hash_key_file,
                &mut q.clickhouse_password_file,
                &mut q.clickhouse_spool_dir,
            ]
            .into_iter()
            .flatten()
            {
                resolve(p);
            }
        }
        let problems = config.semantic_problems();
        if problems.is_empty() {
            return Ok(config);
        }
        let locator = locate::Locator::new(text, path);
        Err(problems
            .into_iter()
            .map(|(key, message)| locator.problem(&key, message))
            .collect())
    }

    /// A path from the config file, resolved against the config file's directory.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }

    /// The lists as the policy engine takes them, paths resolved; with the admin API on, the
    /// runtime list comes last.
    pub fn list_specs(&self) -> Vec<ListSpec> {
        let mut specs: Vec<ListSpec> = self
            .lists
            .iter()
            .map(|l| ListSpec {
                name: l.name.clone(),
                category: l.category,
                path: self.list_path(l),
                format: l.format,
                action: l.action,
            })
            .collect();
        specs.extend(crate::rpzxfr::config::list_specs(&self.rpz, &self.base_dir));
        // The runtime list, and with groups one per group (`runtime@GROUP`).
        for (group, path) in self.runtime_list_files() {
            specs.push(ListSpec {
                name: crate::policy::groups::runtime_list_name(group.as_deref()),
                category: Category::Threat,
                path,
                format: ListFormat::Plain,
                action: None,
            });
        }
        if let Some(path) = self.runtime_allow_path() {
            specs.push(ListSpec {
                name: crate::policy::groups::RUNTIME_ALLOW_LIST.to_string(),
                category: Category::Allow,
                path,
                format: ListFormat::Plain,
                action: None,
            });
        }
        specs
    }

    /// The file the policy loads for a list: its `path`, or for a feed its copy in force.
    fn list_path(&self, l: &ListConfig) -> PathBuf {
        match (&l.path, &l.url) {
            (Some(p), _) => self.resolve_path(p),
            _ => crate::feeds::store::in_force_path(
                &self.resolve_path(&self.feeds.cache_dir),
                &l.name,
                l.snapshot.as_ref().map(|s| self.resolve_path(s)).as_deref(),
            ),
        }
    }

    /// The runtime allow list's file, when the admin API is on.
    pub fn runtime_allow_path(&self) -> Option<PathBuf> {
        let a = self.admin.as_ref()?;
        a.token_file.as_ref()?;
        Some(self.resolve_path(&a.runtime_allow_list))
    }

    /// The runtime list's file, when the admin API is on.
    pub fn runtime_list_path(&self) -> Option<PathBuf> {
        let a = self.admin.as_ref()?;
        a.token_file.as_ref()?;
        Some(self.resolve_path(&a.runtime_list))
    }

    /// Every feed (`[[lists]]` entry with a `url`), paths resolved.
    pub fn feed_specs(&self) -> Vec<crate::feeds::FeedSpec> {
        let cache_dir = self.resolve_path(&self.feeds.cache_dir);
        self.lists
            .iter()
            .filter_map(|l| {
                Some(crate::feeds::FeedSpec {
                    name: l.name.clone(),
                    url: l.url.clone()?,
                    refresh: l.refresh.unwrap_or(crate::feeds::config::DEFAULT_REFRESH),
                    snapshot: l.snapshot.as_ref().map(|s| self.resolve_path(s)),
                    format: l.format,
                    category: l.category,
                    files: crate::feeds::store::FeedFiles::new(&cache_dir, &l.name),
                })
            })
            .collect()
    }

    /// The feed keys of every `[[lists]]` entry, for `feeds::config::list_problems`.
    pub fn list_feed_keys(&self) -> Vec<crate::feeds::config::ListFeedKeys<'_>> {
        self.lists
            .iter()
            .enumerate()
            .map(|(index, l)| crate::feeds::config::ListFeedKeys {
                index,
                name: &l.name,
                has_path: l.path.is_some(),
                url: l.url.as_deref(),
                refresh: l.refresh,
                snapshot: l.snapshot.as_ref().map(|s| self.resolve_path(s)),
            })
            .collect()
    }

    /// What the RPZ transfers need of the config (`rpzxfr::Rpz::start`).
    pub fn rpz_setup(&self) -> crate::rpzxfr::RpzSetup<'_> {
        crate::rpzxfr::RpzSetup {
            secondaries: &self.rpz,
            server: self.rpz_server.as_ref(),
            base_dir: &self.base_dir,
            export: crate::rpzxfr::export::ExportSettings {
                default_action: self.policy.action,
                sinkhole_v4: self.policy.sinkhole_ipv4,
                sinkhole_v6: self.policy.sinkhole_ipv6,
            },
        }
    }

    /// The root server addresses the recursor starts from.
    pub fn root_addresses(&self) -> Result<Vec<IpAddr>, crate::resolver::roots::RootHintsError> {
        match &self.resolver.root_hints {
            Some(p) => crate::resolver::roots::read_root_hints(&self.resolve_path(p)),
            None => Ok(crate::resolver::roots::builtin_roots()),
        }
    }

    /// The instance name for logs: `[server] name` or the host name.
    pub fn instance_name(&self) -> String {
        self.server.name.clone().unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "dnsward".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<ConfigProblem> {
        Config::from_text(text, Path::new("/tmp/x/config.toml")).unwrap_err()
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_text("", Path::new("config.toml")).unwrap();
        assert_eq!(c.server.listen, default_listen());
        assert_eq!(c.resolver.mode, Mode::Recursive);
        assert!(c
            .resolver
            .effective_deny_server()
            .contains(&"127.0.0.0/8".parse().unwrap()));
    }

    #[test]
    fn own_root_hints_empty_deny_list() {
        let r = ResolverConfig {
            root_hints: Some("x".into()),
            ..Default::default()
        };
        assert!(r.effective_deny_server().is_empty());
    }

    #[test]
    fn every_problem_reported_with_line_and_key() {
        let text = "[server]\nlisten = [\"nope\"]\nbogus = 1\n\n[resolver]\ncache_size = \"big\"\nmode = \"sideways\"\n";
        let p = problems(text);
        let keys: Vec<_> = p.iter().map(|p| (p.key.as_str(), p.line)).collect();
        assert!(keys.contains(&("server.listen[0]", Some(2))), "{p:?}");
        assert!(keys.contains(&("server.bogus", Some(3))), "{p:?}");
        assert!(keys.contains(&("resolver.cache_size", Some(6))), "{p:?}");
        assert!(keys.contains(&("resolver.mode", Some(7))), "{p:?}");
        assert_eq!(p.len(), 4, "{p:?}");
    }

    #[test]
    fn semantic_problems_have_lines() {
        let text = "[resolver]\nmode = \"forward\"\ntimeout_ms = 0\n";
        let p = problems(text);
        assert!(p.iter().any(|p| p.key == "resolver.forwarders"), "{p:?}");
        assert!(p
            .iter()
            .any(|p| p.key == "resolver.timeout_ms" && p.line == Some(3)));
    }

    #[test]
    fn syntax_error_is_one_problem_with_line() {
        let p = problems("[server]\nlisten = [\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].line.is_some());
    }
}
