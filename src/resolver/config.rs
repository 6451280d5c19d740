//! `[resolver]`: the resolver's own config section (types, defaults, the effective server
//! deny/allow lists). `crate::config` embeds it and re-exports its types; the resolver reads
//! nothing else of the config.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;
use serde::Deserialize;

fn default_true() -> bool {
    true
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
    /// DNS64 (RFC 6147): the RFC 6052 prefix (/32, /40, /48, /56, /64 or /96) AAAA records
    /// are synthesized in from A records; absent = DNS64 off. (Read by `pipeline::dns64`.)
    #[serde(default)]
    pub dns64_prefix: Option<String>,
    /// Only these clients get DNS64; absent = every client.
    #[serde(default)]
    pub dns64_clients: Option<Vec<IpNet>>,
    /// AAAA records in these ranges count as absent; absent = `["::ffff:0:0/96"]`.
    #[serde(default)]
    pub dns64_exclude: Option<Vec<IpNet>>,
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
    /// Validate RSA/SHA-1 signatures (algorithms 5 and 7); false: such zones are insecure.
    #[serde(default = "default_true")]
    pub dnssec_sha1: bool,
    /// Refresh a cached answer in the background when it is asked for in the last 10 % of its
    /// TTL (Unbound's `prefetch`).
    #[serde(default = "default_true")]
    pub prefetch: bool,
    /// Answer from validated NSEC/NSEC3 records already cached where they prove a name or type
    /// absent (RFC 8198), with `dnssec = "validate"` and `mode = "recursive"`.
    #[serde(default = "default_true")]
    pub aggressive_nsec: bool,
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
            dns64_prefix: None,
            dns64_clients: None,
            dns64_exclude: None,
            cache_min_ttl: 0,
            cache_max_ttl: default_cache_max_ttl(),
            dnssec: DnssecMode::default(),
            trust_anchor: None,
            negative_trust_anchors: Vec::new(),
            dnssec_sha1: true,
            prefetch: true,
            aggressive_nsec: true,
        }
    }
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
    /// Problems of the DNS64 keys, as (key path, message).
    pub fn dns64_problems(&self) -> Vec<(String, String)> {
        let r = self;
        let mut out = Vec::new();
        if let Some(p) = &r.dns64_prefix {
            if let Err(e) = crate::rfc6052::Prefix::parse(p) {
                out.push(("resolver.dns64_prefix".into(), e.to_string()));
            }
        } else {
            for (key, set) in [
                ("resolver.dns64_clients", r.dns64_clients.is_some()),
                ("resolver.dns64_exclude", r.dns64_exclude.is_some()),
            ] {
                if set {
                    out.push((key.into(), "is only used with dns64_prefix".into()));
                }
            }
        }
        for (i, net) in r.dns64_exclude.iter().flatten().enumerate() {
            if let IpNet::V4(_) = net {
                out.push((
                    format!("resolver.dns64_exclude[{i}]"),
                    format!("{net} is an IPv4 range; AAAA records hold IPv6 addresses"),
                ));
            }
        }
        out
    }

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
