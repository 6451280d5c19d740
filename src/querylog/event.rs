//! The query event the server emits, and the row form the sinks store.
//!
//! `QueryEvent` is what the answer path builds (one per query). `emit` wraps it in a
//! [`LoggedEvent`] (privacy already applied, one allocation) and the sinks turn that into a
//! [`LogRow`] off the answer path. `LogRow` is the one shape shared by the JSON lines sink,
//! the SQLite table and `dnsward logs export`, so the three agree field for field.

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::timefmt::format_ts_us;

/// The transport a query arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Udp,
    Tcp,
    Dot,
    Doh,
}

/// What the resolver did with the query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventAction {
    Allowed,
    Blocked,
    Refused,
    Servfail,
}

/// Which part of the exchange matched a policy rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    /// the query name
    Qname,
    /// a CNAME target in the upstream answer
    Cname,
    /// an A/AAAA address in the upstream answer
    Ip,
}

macro_rules! str_enum {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The lower-case name used in the logs, the database and on the command line.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok(<$t>::$v),)*
                    _ => Err(format!("unknown {} {:?} (expected one of: {})",
                        stringify!($t), s, [$($s),*].join(", "))),
                }
            }
        }
    };
}
str_enum!(Transport { Udp => "udp", Tcp => "tcp", Dot => "dot", Doh => "doh" });
str_enum!(EventAction { Allowed => "allowed", Blocked => "blocked", Refused => "refused", Servfail => "servfail" });
str_enum!(Trigger { Qname => "qname", Cname => "cname", Ip => "ip" });

/// One query as seen by the answer path. Built for every logged query, so the fields avoid
/// allocating: names and answers are shared (`Arc`), codes are static strings.
#[derive(Clone, Debug)]
pub struct QueryEvent {
    /// When the query arrived: UTC microseconds since the Unix epoch.
    pub ts_us: i64,
    pub client: SocketAddr,
    pub transport: Transport,
    /// lower case, no trailing dot
    pub qname: Arc<str>,
    /// "A", "AAAA", "TYPE65"...
    pub qtype: Cow<'static, str>,
    /// "NOERROR", "NXDOMAIN", ..., "NONE" when nothing was sent
    pub rcode: Cow<'static, str>,
    pub action: EventAction,
    pub category: Option<Cow<'static, str>>,
    pub list: Option<Arc<str>>,
    pub rule: Option<String>,
    pub trigger: Option<Trigger>,
    pub cached: bool,
    pub answers: Answers,
    /// time from arrival to answer
    pub latency_us: u32,
    /// the `[server]` name
    pub server: Arc<str>,
    /// the `[[clients]]` name of the client, when one names it
    pub client_name: Option<Arc<str>>,
    /// the client's `[[groups]]` group (None when no group is configured)
    pub group: Option<Arc<str>>,
    /// raw DNS query, for dnstap only (not stored in SQLite / JSON lines)
    pub query_wire: Option<bytes::Bytes>,
    /// raw DNS response, for dnstap only (not stored in SQLite / JSON lines)
    pub response_wire: Option<bytes::Bytes>,
}

/// The A/AAAA addresses of an answer, shared with the cache entry they came from (cloning is
/// a reference count, not a copy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answers(Option<Arc<[IpAddr]>>);

impl Answers {
    pub fn new(addrs: Arc<[IpAddr]>) -> Answers {
        Answers((!addrs.is_empty()).then_some(addrs))
    }
}

impl std::ops::Deref for Answers {
    type Target = [IpAddr];
    fn deref(&self) -> &[IpAddr] {
        self.0.as_deref().unwrap_or(&[])
    }
}

impl From<Vec<IpAddr>> for Answers {
    fn from(v: Vec<IpAddr>) -> Answers {
        Answers::new(Arc::from(v))
    }
}

/// Name of a query type: "A", "AAAA", ..., "TYPE65534" for types without a mnemonic.
pub fn qtype_name(code: u16) -> Cow<'static, str> {
    match hickory_proto::rr::RecordType::from(code) {
        hickory_proto::rr::RecordType::Unknown(n) => Cow::Owned(format!("TYPE{n}")),
        t => Cow::Borrowed(<&'static str>::from(t)),
    }
}

/// Name of a response code ("NONE" when no response was sent).
pub fn rcode_name(code: Option<u8>) -> Cow<'static, str> {
    match code {
        None => Cow::Borrowed("NONE"),
        Some(n) => crate::dnswire::rcode_mnemonic(n)
            .map_or_else(|| Cow::Owned(format!("RCODE{n}")), Cow::Borrowed),
    }
}

/// The client as it may be recorded, after the `client_ip` privacy mode was applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientId {
    /// `full` (port kept) or `truncate` (network address, no port).
    Addr { ip: IpAddr, port: Option<u16> },
    /// `hash`: a keyed hash of the address; the same client gives the same token in a
    /// deployment (same key). Written as `h:` and 16 hex digits.
    Token(u64),
}

impl ClientId {
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            ClientId::Addr { ip, .. } => Some(*ip),
            ClientId::Token(_) => None,
        }
    }
    pub fn port(&self) -> Option<u16> {
        match self {
            ClientId::Addr { port, .. } => *port,
            ClientId::Token(_) => None,
        }
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientId::Addr { ip, .. } => write!(f, "{ip}"),
            ClientId::Token(t) => write!(f, "h:{t:016x}"),
        }
    }
}

/// What travels on the bus: the event with the privacy mode applied to its client.
/// `ev.client` must not be read by sinks; use `client`.
#[derive(Clone, Debug)]
pub struct LoggedEvent {
    pub ev: QueryEvent,
    pub client: ClientId,
}

/// One stored record: a JSON line, an SQLite row, an exported line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRow {
    /// RFC 3339, UTC, microseconds (for people; `ts_us` is authoritative)
    pub time: String,
    pub ts_us: i64,
    /// IP address, truncated network address, or `h:` token (see `client_ip`)
    pub client: String,
    /// source port, kept only with `client_ip = "full"`
    pub client_port: Option<u16>,
    pub transport: Transport,
    pub qname: String,
    pub qtype: String,
    pub rcode: String,
    pub action: EventAction,
    pub category: Option<String>,
    pub list: Option<String>,
    pub rule: Option<String>,
    pub trigger: Option<Trigger>,
    pub cached: bool,
    pub answers: Vec<IpAddr>,
    pub latency_us: u32,
    pub server: String,
    /// the `[[clients]]` name of the client
    #[serde(default)]
    pub client_name: Option<String>,
    /// the client's policy group
    #[serde(default)]
    pub group: Option<String>,
}

impl LogRow {
    pub fn from_logged(l: &LoggedEvent) -> LogRow {
        let ev = &l.ev;
        LogRow {
            time: format_ts_us(ev.ts_us),
            ts_us: ev.ts_us,
            client: l.client.to_string(),
            client_port: l.client.port(),
            transport: ev.transport,
            qname: ev.qname.to_string(),
            qtype: ev.qtype.to_string(),
            rcode: ev.rcode.to_string(),
            action: ev.action,
            category: ev.category.as_deref().map(str::to_string),
            list: ev.list.as_deref().map(str::to_string),
            rule: ev.rule.clone(),
            trigger: ev.trigger,
            cached: ev.cached,
            answers: ev.answers.to_vec(),
            latency_us: ev.latency_us,
            server: ev.server.to_string(),
            client_name: ev.client_name.as_deref().map(str::to_string),
            group: ev.group.as_deref().map(str::to_string),
        }
    }
}

/// `answers` as stored in SQLite: comma-separated addresses, "" for none.
pub fn answers_to_text(answers: &[IpAddr]) -> String {
    let mut s = String::new();
    for (i, a) in answers.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&a.to_string());
    }
    s
}

/// Inverse of [`answers_to_text`]; entries that do not parse are skipped.
pub fn answers_from_text(s: &str) -> Vec<IpAddr> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_as_lowercase() {
        assert_eq!(
            serde_json::to_string(&EventAction::Servfail).unwrap(),
            "\"servfail\""
        );
        assert_eq!(serde_json::to_string(&Transport::Doh).unwrap(), "\"doh\"");
        assert_eq!(
            "Blocked".parse::<EventAction>().unwrap(),
            EventAction::Blocked
        );
        assert_eq!("cname".parse::<Trigger>().unwrap(), Trigger::Cname);
        assert!("nope"
            .parse::<Transport>()
            .unwrap_err()
            .contains("udp, tcp, dot, doh"));
    }

    #[test]
    fn answers_text_round_trip() {
        let a: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap(), "2001:db8::1".parse().unwrap()];
        let t = answers_to_text(&a);
        assert_eq!(t, "192.0.2.1,2001:db8::1");
        assert_eq!(answers_from_text(&t), a);
        assert!(answers_from_text("").is_empty());
    }

    #[test]
    fn type_and_rcode_names() {
        assert_eq!(qtype_name(1), "A");
        assert_eq!(qtype_name(28), "AAAA");
        assert_eq!(qtype_name(65), "HTTPS");
        assert_eq!(qtype_name(65_280), "TYPE65280");
        assert_eq!(rcode_name(Some(3)), "NXDOMAIN");
        assert_eq!(rcode_name(None), "NONE");
        assert_eq!(rcode_name(Some(9)), "RCODE9");
    }

    #[test]
    fn client_id_text() {
        let c = ClientId::Token(0xab);
        assert_eq!(c.to_string(), "h:00000000000000ab");
        assert_eq!(c.port(), None);
        let c = ClientId::Addr {
            ip: "10.1.2.0".parse().unwrap(),
            port: None,
        };
        assert_eq!(c.to_string(), "10.1.2.0");
    }
}
