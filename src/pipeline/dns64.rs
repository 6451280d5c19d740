//! DNS64 (RFC 6147): AAAA answers synthesized from A records for IPv6-only clients behind a
//! NAT64, and the reverse (PTR) names of the synthesized addresses answered from the IPv4
//! reverse tree.
//!
//! Where it sits: a query of a DNS64 client (`[resolver] dns64_clients`, default all) for
//! AAAA, or for PTR under the prefix's `ip6.arpa` tree, is looked up in the packet cache under
//! its own key (the question's key with `KEY_BIT` set in the flags byte), so clients outside
//! `dns64_clients` keep getting the real (empty) AAAA answer and a synthesized answer is served
//! from the cache like any other. On a miss, `Dns64::resolve` takes the real AAAA answer
//! (cache or upstream, stored under its ordinary key), and when the name has no AAAA outside
//! `dns64_exclude` (NODATA, not NXDOMAIN) it takes the A answer the same way and rewrites it:
//! the CNAME chain stays, each A becomes an AAAA in the prefix (RFC 6052 section 2.2), TTL =
//! min(A TTL, the AAAA negative TTL from its SOA, or 600 s without one; RFC 6147 5.1.7).
//! The result is stored under the DNS64 key and goes through response policy as any answer:
//! its addresses are the synthesized AAAAs *and* the IPv4 addresses they embed, so an address
//! trigger on the IPv4 address (or its range) still blocks it.
//!
//! Synthesized answers never carry AD and hold no RRSIGs (RFC 6147 5.5); a client that sets
//! both DO and CD validates itself and gets no synthesis (5.5 again). A PTR query for an
//! address inside the prefix is answered with a CNAME to the `in-addr.arpa` name and that
//! name's (resolved) answer (5.3.1, the CNAME form). Failures stay failures: a SERVFAIL for
//! the AAAA is not turned into a synthesized answer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::Instant;

use hickory_proto::op::{Message, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{AAAA, CNAME};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use ipnet::IpNet;

use super::resolve::{lower_no_dot, Outcome, Resolve};
use crate::cache::{CachedAnswer, Lookup, PacketCache};
use crate::config::ResolverConfig;
use crate::dnswire::{self, QueryView};
use crate::rfc6052::{Prefix, DEFAULT_EXCLUDE};
use crate::upstream::ClientFlags;

/// Synthesized TTL cap when the AAAA answer had no SOA (RFC 6147 5.1.7).
const NO_SOA_TTL: u32 = 600;
/// Set in the last byte of a packet-cache key (the DO/CD flags byte, see
/// `PacketCache::key_into`) for a synthesized answer: its own entry, same key length.
const KEY_BIT: u8 = 0x80;
const TYPE_AAAA: u16 = 28;
const TYPE_PTR: u16 = 12;

/// Does a packet-cache key name a synthesized answer?
pub fn is_marked(key: &[u8]) -> bool {
    key.last().is_some_and(|b| b & KEY_BIT != 0)
}

fn mark(key: &mut [u8]) {
    if let Some(b) = key.last_mut() {
        *b |= KEY_BIT;
    }
}

fn unmarked(key: &[u8]) -> Vec<u8> {
    let mut k = key.to_vec();
    if let Some(b) = k.last_mut() {
        *b &= !KEY_BIT;
    }
    k
}

/// The DNS64 settings in force (`[resolver] dns64_*`).
#[derive(Debug)]
pub struct Dns64 {
    prefix: Prefix,
    /// None = every client.
    clients: Option<Vec<IpNet>>,
    exclude: Vec<IpNet>,
}

impl Dns64 {
    /// None when `dns64_prefix` is absent (DNS64 off). The config was checked at load.
    pub fn from_config(r: &ResolverConfig) -> Option<Dns64> {
        let prefix = Prefix::parse(r.dns64_prefix.as_deref()?).ok()?;
        let exclude = match &r.dns64_exclude {
            Some(list) => list.clone(),
            None => vec![DEFAULT_EXCLUDE.parse().expect("valid default")],
        };
        Some(Dns64 {
            prefix,
            clients: r.dns64_clients.clone(),
            exclude,
        })
    }

    /// Marks `key` (the question's packet-cache key) when this query gets DNS64: class IN, a
    /// DNS64 client that does not validate itself (not DO+CD), AAAA, or PTR for an address in
    /// the prefix. `name` is the question name as `dnswire::name_into` writes it.
    pub fn mark_key(&self, key: &mut [u8], client: IpAddr, q: &QueryView<'_>, name: &str) {
        let wanted = match q.qtype {
            TYPE_AAAA => true,
            TYPE_PTR => self.ptr_target(name).is_some(),
            _ => false,
        };
        if wanted
            && q.qclass == dnswire::CLASS_IN
            && !(q.dnssec_ok() && q.checking_disabled())
            && self.serves(client)
        {
            mark(key);
        }
    }

    fn serves(&self, client: IpAddr) -> bool {
        let client = client.to_canonical();
        match &self.clients {
            None => true,
            Some(nets) => nets.iter().any(|n| n.contains(&client)),
        }
    }

    fn excluded(&self, v6: Ipv6Addr) -> bool {
        self.exclude.iter().any(|n| n.contains(&IpAddr::V6(v6)))
    }

    /// The IPv4 address whose reverse name answers a PTR query for `name` (lower case, no
    /// trailing dot): a full 32-nibble `ip6.arpa` name of an address in the prefix.
    pub fn ptr_target(&self, name: &str) -> Option<Ipv4Addr> {
        self.prefix.extract(ip6_arpa_address(name)?)
    }

    /// Prefetch of a synthesized entry (asked for in the last 10 % of its TTL): the real AAAA
    /// and A answers fetched again in the background (`refresh`, past every cache) and the
    /// answer made again, so the DNS64 entry is never replaced by the un-synthesized answer
    /// `Resolve::prefetch` would store under its key. False without a runtime.
    pub fn prefetch(
        self: &Arc<Self>,
        resolve: &Arc<Resolve>,
        cache: &Arc<PacketCache>,
        key: &[u8],
        query: Query,
        flags: ClientFlags,
    ) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        let (this, resolve, cache) = (Arc::clone(self), Arc::clone(resolve), Arc::clone(cache));
        let key: Box<[u8]> = key.into();
        let flags = ClientFlags {
            refresh: true,
            ..flags
        };
        runtime.spawn(async move {
            this.resolve(&resolve, &cache, &key, query, flags).await;
        });
        true
    }

    /// The answer for a marked key on a cache miss (see the module doc); stored under `key`
    /// unless it was made from stale parts.
    pub async fn resolve(
        &self,
        resolve: &Arc<Resolve>,
        cache: &PacketCache,
        key: &[u8],
        query: Query,
        flags: ClientFlags,
    ) -> Outcome {
        let made = match query.query_type() {
            RecordType::PTR => self.ptr(resolve, cache, &query, flags).await,
            _ => self.aaaa(resolve, cache, key, &query, flags).await,
        };
        match made {
            Outcome::Answer { answer, stale } => {
                if !stale {
                    cache.insert(key.into(), Arc::clone(&answer));
                }
                Outcome::Answer { answer, stale }
            }
            Outcome::Failed(ede) => match cache.stale(key, Instant::now()) {
                Some(answer) => Outcome::Answer {
                    answer,
                    stale: true,
                },
                None => Outcome::Failed(ede),
            },
        }
    }

    async fn aaaa(
        &self,
        resolve: &Arc<Resolve>,
        cache: &PacketCache,
        key: &[u8],
        query: &Query,
        flags: ClientFlags,
    ) -> Outcome {
        let (aaaa, aaaa_stale) = match fetch(resolve, cache, &unmarked(key), query, flags).await {
            Outcome::Answer { answer, stale } => (answer, stale),
            failed => return failed,
        };
        if aaaa.rcode != u16::from(ResponseCode::NoError) as u8 {
            return answer_of(aaaa, aaaa_stale); // NXDOMAIN: nothing to synthesize
        }
        let Some(msg) = aged_message(&aaaa) else {
            return answer_of(aaaa, aaaa_stale);
        };
        let mut excluded = false;
        for r in &msg.answers {
            if let RData::AAAA(a) = &r.data {
                if !self.excluded(a.0) {
                    return answer_of(aaaa, aaaa_stale); // a real AAAA: no synthesis
                }
                excluded = true;
            }
        }
        // NODATA (or only excluded AAAAs): the A records decide.
        let negative_ttl = msg
            .authorities
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .unwrap_or(NO_SOA_TTL);
        let mut a_query = Query::query(query.name().clone(), RecordType::A);
        a_query.set_query_class(query.query_class());
        let a_key = key_of(query.name(), RecordType::A, flags);
        if let Outcome::Answer { answer, stale } =
            fetch(resolve, cache, &a_key, &a_query, flags).await
        {
            if let Some(synth) =
                aged_message(&answer).and_then(|a| self.synthesize(query, &a, negative_ttl))
            {
                return answer_of(Arc::new(synth), stale || aaaa_stale);
            }
        }
        if !excluded {
            return answer_of(aaaa, aaaa_stale);
        }
        // Only excluded AAAAs and no A: the AAAA answer without them (NODATA).
        let mut m = response_to(query, ResponseCode::NoError);
        m.answers = msg
            .answers
            .into_iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .collect();
        m.authorities = msg.authorities;
        match cached(m, Vec::new()) {
            Some(a) => answer_of(Arc::new(a), aaaa_stale),
            None => answer_of(aaaa, aaaa_stale),
        }
    }

    /// The AAAA answer made from an A answer: its CNAMEs, and one AAAA per A record (TTL at
    /// most `ttl_cap`); None when it holds no A record.
    fn synthesize(&self, query: &Query, a: &Message, ttl_cap: u32) -> Option<CachedAnswer> {
        if a.metadata.response_code != ResponseCode::NoError {
            return None;
        }
        let mut m = response_to(query, ResponseCode::NoError);
        let mut embedded = Vec::new();
        for r in &a.answers {
            match &r.data {
                RData::CNAME(_) => m.answers.push(r.clone()),
                RData::A(v4) => {
                    let v6 = self.prefix.embed(v4.0);
                    m.answers.push(Record::from_rdata(
                        r.name.clone(),
                        r.ttl.min(ttl_cap),
                        RData::AAAA(AAAA(v6)),
                    ));
                    embedded.push(IpAddr::V4(v4.0));
                }
                _ => {} // RRSIGs of the A records would not cover the AAAAs
            }
        }
        if embedded.is_empty() {
            return None;
        }
        cached(m, embedded)
    }

    /// PTR for an address in the prefix: a CNAME to the IPv4 reverse name, then that name's
    /// answer (resolved, or from the cache) with its rcode.
    async fn ptr(
        &self,
        resolve: &Arc<Resolve>,
        cache: &PacketCache,
        query: &Query,
        flags: ClientFlags,
    ) -> Outcome {
        let name = lower_no_dot(&query.name().to_ascii());
        let target = self
            .ptr_target(&name)
            .and_then(|v4| Name::from_ascii(in_addr_arpa(v4)).ok());
        let Some(target) = target else {
            return Outcome::Failed(None); // not marked by `mark_key`
        };
        let mut v4_query = Query::query(target.clone(), RecordType::PTR);
        v4_query.set_query_class(query.query_class());
        let v4_key = key_of(&target, RecordType::PTR, flags);
        let (answer, stale) = match fetch(resolve, cache, &v4_key, &v4_query, flags).await {
            Outcome::Answer { answer, stale } => (answer, stale),
            failed => return failed,
        };
        let Some(msg) = aged_message(&answer) else {
            return Outcome::Failed(None);
        };
        let ttl = msg
            .answers
            .iter()
            .chain(&msg.authorities)
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
            .min(NO_SOA_TTL);
        let mut m = response_to(query, msg.metadata.response_code);
        m.answers.push(Record::from_rdata(
            query.name().clone(),
            ttl,
            RData::CNAME(CNAME(target)),
        ));
        let strip = |r: &Record| r.record_type() != RecordType::RRSIG;
        m.answers.extend(msg.answers.into_iter().filter(strip));
        m.authorities = msg.authorities.into_iter().filter(strip).collect();
        match cached(m, Vec::new()) {
            Some(a) => answer_of(Arc::new(a), stale),
            None => Outcome::Failed(None),
        }
    }
}

/// A question's answer from the packet cache when fresh (unless this is a prefetch), else
/// through `Resolve` (which stores it under `key` and serves stale copies on failure).
async fn fetch(
    resolve: &Arc<Resolve>,
    cache: &PacketCache,
    key: &[u8],
    query: &Query,
    flags: ClientFlags,
) -> Outcome {
    if !flags.refresh {
        if let Lookup::Fresh(answer) = cache.lookup(key, Instant::now()) {
            return Outcome::Answer {
                answer,
                stale: false,
            };
        }
    }
    resolve.resolve(key, query.clone(), flags).await
}

fn answer_of(answer: Arc<CachedAnswer>, stale: bool) -> Outcome {
    Outcome::Answer { answer, stale }
}

/// A cached answer decoded, its TTLs lowered by the entry's age.
fn aged_message(a: &CachedAnswer) -> Option<Message> {
    let mut m = Message::from_vec(&a.wire).ok()?;
    let age = a.age(Instant::now());
    for r in m
        .answers
        .iter_mut()
        .chain(m.authorities.iter_mut())
        .chain(m.additionals.iter_mut())
    {
        r.ttl = r.ttl.saturating_sub(age);
    }
    Some(m)
}

/// An empty response as `cacheable_answer` writes them: ID 0, RD and RA, never AA or AD.
fn response_to(query: &Query, rcode: ResponseCode) -> Message {
    let mut m = Message::response(0, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.metadata.recursion_available = true;
    m.metadata.response_code = rcode;
    m.add_query(query.clone());
    m
}

/// A made answer as a cache entry (never secure), with the CNAME targets and addresses
/// response policy checks: the answer's own, and `extra` (the embedded IPv4 addresses).
fn cached(m: Message, extra: Vec<IpAddr>) -> Option<CachedAnswer> {
    let mut cname_targets = Vec::new();
    let mut addresses = Vec::new();
    for r in &m.answers {
        match &r.data {
            RData::CNAME(c) => cname_targets.push(lower_no_dot(&c.0.to_ascii()).into()),
            RData::A(a) => addresses.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => addresses.push(IpAddr::V6(a.0)),
            _ => {}
        }
    }
    addresses.extend(extra);
    let rcode = u16::from(m.metadata.response_code) as u8;
    CachedAnswer::new(m.to_vec().ok()?, rcode, cname_targets, addresses).map(|a| a.secure(false))
}

/// The packet-cache key of (name, type, IN) with the client's DO/CD bits.
fn key_of(name: &Name, rtype: RecordType, flags: ClientFlags) -> Vec<u8> {
    let mut wire = Vec::with_capacity(64);
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire.push(0);
    let mut key = Vec::with_capacity(wire.len() + 5);
    PacketCache::key_into(
        &mut key,
        &wire,
        u16::from(rtype),
        dnswire::CLASS_IN,
        flags.dnssec_ok,
        flags.checking_disabled,
    );
    key
}

/// `d.c.b.a.in-addr.arpa.` for a.b.c.d.
fn in_addr_arpa(v4: Ipv4Addr) -> String {
    let [a, b, c, d] = v4.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa.")
}

/// The address a full `ip6.arpa` name (32 nibble labels, lower case, no trailing dot) stands
/// for; None for anything else.
fn ip6_arpa_address(name: &str) -> Option<Ipv6Addr> {
    let nibbles = name.strip_suffix(".ip6.arpa")?;
    if nibbles.len() != 63 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, label) in nibbles.split('.').enumerate() {
        let &[c] = label.as_bytes() else {
            return None;
        };
        let v = (c as char).to_digit(16)? as u8;
        if i >= 32 || c.is_ascii_uppercase() {
            return None;
        }
        // Label i is nibble 31 - i of the address, most significant first.
        let n = 31 - i;
        bytes[n / 2] |= if n % 2 == 0 { v << 4 } else { v };
    }
    Some(Ipv6Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        Prefix::parse(s).unwrap()
    }

    fn reverse_name(v6: Ipv6Addr) -> String {
        let mut labels: Vec<String> = v6
            .octets()
            .iter()
            .flat_map(|b| [b >> 4, b & 0xf])
            .map(|n| format!("{n:x}"))
            .collect();
        labels.reverse();
        format!("{}.ip6.arpa", labels.join("."))
    }

    #[test]
    fn ptr_names_map_to_the_ipv4_reverse_tree() {
        let d = Dns64 {
            prefix: p("64:ff9b::/96"),
            clients: None,
            exclude: vec![DEFAULT_EXCLUDE.parse().unwrap()],
        };
        let v6: Ipv6Addr = "64:ff9b::c000:221".parse().unwrap();
        let name = reverse_name(v6);
        assert!(name.starts_with("1.2.2.0.0.0.0.c.0.0.0.0"), "{name}");
        assert_eq!(ip6_arpa_address(&name), Some(v6));
        let v4 = d.ptr_target(&name).unwrap();
        assert_eq!(in_addr_arpa(v4), "33.2.0.192.in-addr.arpa.");
        // Outside the prefix, partial names, and other trees are not ours.
        assert_eq!(
            d.ptr_target(&reverse_name("2001:db8::1".parse().unwrap())),
            None
        );
        assert_eq!(d.ptr_target("b.9.f.f.4.6.0.0.ip6.arpa"), None);
        assert_eq!(d.ptr_target("33.2.0.192.in-addr.arpa"), None);
        assert_eq!(d.ptr_target(&name.replacen('1', "10", 1)), None);
        assert_eq!(d.ptr_target(&name.replacen('1', "g", 1)), None);
    }

    #[test]
    fn marked_keys_are_their_own_entries() {
        let mut key = Vec::new();
        PacketCache::key_into(&mut key, b"\x03www\x07example\x00", 28, 1, true, false);
        let plain = key.clone();
        mark(&mut key);
        assert!(is_marked(&key) && !is_marked(&plain));
        assert_ne!(key, plain);
        assert_eq!(key.len(), plain.len(), "flush by name still finds it");
        assert_eq!(unmarked(&key), plain);
        let name = Name::from_ascii("WWW.example.").unwrap();
        let flags = ClientFlags {
            dnssec_ok: true,
            ..ClientFlags::default()
        };
        assert_eq!(key_of(&name, RecordType::AAAA, flags), plain);
    }

    fn a_answer(records: &[(&str, RData)], ttl: u32) -> Message {
        let mut m = response_to(
            &Query::query(Name::from_ascii(records[0].0).unwrap(), RecordType::A),
            ResponseCode::NoError,
        );
        for (name, data) in records {
            m.answers.push(Record::from_rdata(
                Name::from_ascii(name).unwrap(),
                ttl,
                data.clone(),
            ));
        }
        m
    }

    #[test]
    fn synthesis_keeps_the_chain_and_caps_the_ttl() {
        let d = Dns64 {
            prefix: p("64:ff9b::/96"),
            clients: None,
            exclude: Vec::new(),
        };
        let a = a_answer(
            &[
                (
                    "alias.example.",
                    RData::CNAME(CNAME(Name::from_ascii("v4.example.").unwrap())),
                ),
                ("v4.example.", RData::A("192.0.2.44".parse().unwrap())),
            ],
            3600,
        );
        let q = Query::query(
            Name::from_ascii("alias.example.").unwrap(),
            RecordType::AAAA,
        );
        let made = d.synthesize(&q, &a, 300).unwrap();
        let m = Message::from_vec(&made.wire).unwrap();
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
        assert_eq!(m.answers.len(), 2);
        assert_eq!(m.answers[0].record_type(), RecordType::CNAME);
        assert_eq!(m.answers[0].ttl, 3600);
        assert_eq!(
            m.answers[1].data,
            RData::AAAA(AAAA("64:ff9b::c000:22c".parse().unwrap()))
        );
        assert_eq!(m.answers[1].ttl, 300);
        assert!(!made.secure && !m.metadata.authentic_data);
        assert_eq!(&*made.cname_targets, &["v4.example".into()]);
        assert!(made.addresses.contains(&"192.0.2.44".parse().unwrap()));
        assert!(made
            .addresses
            .contains(&"64:ff9b::c000:22c".parse().unwrap()));
        // No A record: nothing to synthesize.
        let none = a_answer(
            &[(
                "alias.example.",
                RData::CNAME(CNAME(Name::from_ascii("v4.example.").unwrap())),
            )],
            60,
        );
        assert!(d.synthesize(&q, &none, 300).is_none());
    }

    #[test]
    fn clients_and_exclusions() {
        let r = ResolverConfig {
            dns64_prefix: Some("64:ff9b::/96".into()),
            dns64_clients: Some(vec!["127.0.0.1/32".parse().unwrap()]),
            ..ResolverConfig::default()
        };
        let d = Dns64::from_config(&r).unwrap();
        assert!(d.serves("127.0.0.1".parse().unwrap()));
        assert!(d.serves("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!d.serves("127.0.0.2".parse().unwrap()));
        assert!(d.excluded("::ffff:192.0.2.1".parse().unwrap()));
        assert!(!d.excluded("2001:db8::1".parse().unwrap()));
        assert!(r.dns64_problems().is_empty());
        let bad = ResolverConfig {
            dns64_prefix: Some("64:ff9b::/97".into()),
            dns64_exclude: Some(vec!["10.0.0.0/8".parse().unwrap()]),
            ..ResolverConfig::default()
        };
        let keys: Vec<String> = bad.dns64_problems().into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["resolver.dns64_prefix", "resolver.dns64_exclude[0]"]);
        let orphan = ResolverConfig {
            dns64_clients: Some(Vec::new()),
            ..ResolverConfig::default()
        };
        assert_eq!(orphan.dns64_problems()[0].0, "resolver.dns64_clients");
        assert!(Dns64::from_config(&ResolverConfig::default()).is_none());
    }
}
