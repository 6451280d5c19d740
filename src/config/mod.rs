//! Typed configuration (one TOML file) and validation that reports every problem at once.
//!
//! `load` returns either a `Config` or the full list of problems, each with its key path and
//! line, so that `dnsward check` and `dnsward serve` print the same messages.

mod groups;
mod locate;
mod validate;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

pub use groups::{ClientConfig, ClientNet, GroupConfig};
pub use locate::ConfigProblem;

/// The name of the list the admin API adds entries to.
pub const RUNTIME_LIST: &str = "runtime";

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
    pub events: Vec<crate::events::EventConfig>,
    /// `[audit]`: `dnsward audit` on a schedule from `serve` (see `src/audit`).
    #[serde(default)]
    pub audit: Option<crate::audit::AuditConfig>,
    /// `[[alerts]]`: rules on the query-event stream and their actions (see `src/alerts`).
    #[serde(default)]
    pub alerts: Vec<crate::alerts::config::AlertRule>,
    /// `[smtp]`: the mail server of the `email` alert actions.
    #[serde(default)]
    pub smtp: Option<crate::alerts::config::SmtpConfig>,
    /// `[alerting]`: alert history, outbox bound, per-minute cap.
    #[serde(default)]
    pub alerting: crate::alerts::config::AlertingConfig,
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
    32
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
fn default_rrl_slip() -> u32 {
    2
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            name: None,
            udp_workers: None,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Recursive,
    Forward,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolverConfig {
    #[serde(default)]
    pub mode: Mode,
    /// named.root-format file; absent = the built-in IANA root servers.
    #[serde(default)]
    pub root_hints: Option<PathBuf>,
    /// `IP:PORT` upstreams for `mode = "forward"`, tried in order.
    #[serde(default)]
    pub forwarders: Vec<SocketAddr>,
    /// Maximum number of answers held in the packet cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: usize,
    /// Upstream servers the recursor must never query (CIDR). Default: special-purpose ranges
    /// with the built-in root hints, empty with an operator's own `root_hints`.
    #[serde(default)]
    pub deny_server: Option<Vec<IpNet>>,
    /// Upstream servers that may be queried even when `deny_server` covers them.
    #[serde(default)]
    pub allow_server: Option<Vec<IpNet>>,
    /// A client gets SERVFAIL after at most this long when upstreams do not answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Expired answers are kept this long and served (TTL 30) when every upstream fails (RFC 8767).
    #[serde(default = "default_serve_stale_secs")]
    pub serve_stale_secs: u64,
    /// Port the recursor sends to on every authoritative server. 53 on the Internet; a test or
    /// lab hierarchy on loopback may run on another port.
    #[serde(default = "default_upstream_port")]
    pub upstream_port: u16,
    /// Query authoritative servers over IPv6 too (when the host has IPv6 connectivity).
    #[serde(default = "default_true")]
    pub upstream_ipv6: bool,
    /// QNAME minimisation (RFC 9156): relaxed falls back to the full name when a minimised
    /// query fails; strict never does; off always sends the full name.
    #[serde(default)]
    pub qname_minimisation: QnameMinimisation,
    /// Every TTL the resolver caches is clamped to [cache_min_ttl, cache_max_ttl] seconds.
    #[serde(default)]
    pub cache_min_ttl: u32,
    #[serde(default = "default_cache_max_ttl")]
    pub cache_max_ttl: u32,
    /// DNSSEC: validate (AD on secure answers, SERVFAIL on bogus), process (ask for and pass
    /// on signatures, no verdict), or off.
    #[serde(default)]
    pub dnssec: DnssecMode,
    /// Trust anchors (DS or DNSKEY records in zone-file form); absent = the built-in root KSKs.
    #[serde(default)]
    pub trust_anchor: Option<OneOrMany<PathBuf>>,
    /// Zones not validated (RFC 7646), e.g. during an incident at a signed zone.
    #[serde(default)]
    pub negative_trust_anchors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum QnameMinimisation {
    #[default]
    Relaxed,
    Strict,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnssecMode {
    #[default]
    Validate,
    Process,
    Off,
}

/// A key that takes one value or a list (`trust_anchor = "a"` or `["a", "b"]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Clone> OneOrMany<T> {
    pub fn to_vec(&self) -> Vec<T> {
        match self {
            OneOrMany::One(v) => vec![v.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

fn default_cache_max_ttl() -> u32 {
    86_400
}

impl Default for ResolverConfig {
    fn default() -> Self {
        Self {
            mode: Mode::default(),
            root_hints: None,
            forwarders: Vec::new(),
            cache_size: default_cache_size(),
            deny_server: None,
            allow_server: None,
            timeout_ms: default_timeout_ms(),
            serve_stale_secs: default_serve_stale_secs(),
            upstream_port: default_upstream_port(),
            upstream_ipv6: true,
            qname_minimisation: QnameMinimisation::default(),
            cache_min_ttl: 0,
            cache_max_ttl: default_cache_max_ttl(),
            dnssec: DnssecMode::default(),
            trust_anchor: None,
            negative_trust_anchors: Vec::new(),
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
}

fn default_admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9153))
}
fn default_runtime_list() -> PathBuf {
    PathBuf::from("runtime-list.txt")
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
fn default_cache_size() -> usize {
    100_000
}
fn default_timeout_ms() -> u64 {
    3000
}
fn default_serve_stale_secs() -> u64 {
    86_400
}
fn default_upstream_port() -> u16 {
    53
}

/// Special-purpose ranges (RFC 6890 and friends) the recursor refuses to query by default when it
/// starts from the public root: a hostile delegation must not steer it into the internal network.
pub const SPECIAL_PURPOSE_RANGES: &[&str] = &[
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

impl ResolverConfig {
    /// The effective deny list for upstream servers (see `deny_server`).
    pub fn effective_deny_server(&self) -> Vec<IpNet> {
        match (&self.deny_server, &self.root_hints) {
            (Some(list), _) => list.clone(),
            (None, Some(_)) => Vec::new(),
            (None, None) => SPECIAL_PURPOSE_RANGES
                .iter()
                .map(|s| s.parse().expect("built-in CIDR"))
                .collect(),
        }
    }

    pub fn effective_allow_server(&self) -> Vec<IpNet> {
        self.allow_server.clone().unwrap_or_default()
    }
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
        specs.extend(crate::rpzxfr::config::list_specs(self));
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

    /// The runtime list's file, when the admin API is on.
    pub fn runtime_list_path(&self) -> Option<PathBuf> {
        let a = self.admin.as_ref()?;
        a.token_file.as_ref()?;
        Some(self.resolve_path(&a.runtime_list))
    }

    /// The root server addresses the recursor starts from.
    pub fn root_addresses(&self) -> Result<Vec<IpAddr>, String> {
        match &self.resolver.root_hints {
            Some(p) => crate::upstream::roots::read_root_hints(&self.resolve_path(p)),
            None => Ok(crate::upstream::roots::builtin_roots()),
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
