//! One inventory name audited: its lookups through dnsward's resolver, then the findings.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use ipnet::IpNet;

use super::baseline::{drift, NameState};
use super::inventory::InventoryEntry;
use super::suffixes::claimable_suffix;
use super::{Finding, Kind, NameReport, Severity};
use crate::policy::groups::ClientMatch;
use crate::policy::{Snapshot, Verdict};
use crate::resolver::error::{ExchangeError, ResolveError};
use crate::resolver::Resolver;
use crate::transport::{exchange, QueryFlags};

/// Name servers checked per zone, and addresses per name server (bounds on a hostile zone).
const MAX_NS_CHECKED: usize = 8;
const MAX_ADDRS_PER_NS: usize = 4;

/// What every name's audit shares.
pub struct Probe {
    pub resolver: Arc<Resolver>,
    pub snapshot: Arc<Snapshot>,
    pub owned: Vec<IpNet>,
    pub port: u16,
    pub ns_timeout: Duration,
    /// `[resolver] dnssec = "validate"`: the AD bit and bogus answers mean something.
    pub validating: bool,
}

type Lookup = Result<Message, ResolveError>;

fn rcode_of(r: &Lookup) -> Option<ResponseCode> {
    r.as_ref().ok().map(|m| m.metadata.response_code)
}

/// The A question failed: DNSSEC bogus (critical: validating resolvers answer SERVFAIL), or
/// the name no longer resolves (abandoned).
fn lookup_failed(e: &ResolveError, report: &mut NameReport) {
    let f = &mut report.findings;
    match e {
        ResolveError::Bogus { ede, reason } => f.push(Finding::new(
            Severity::Critical,
            Kind::DnssecBogus,
            format!("DNSSEC bogus (EDE {ede}): {reason}; validating resolvers answer SERVFAIL"),
        )),
        e => {
            let why = format!("no longer resolves (SERVFAIL: {e})");
            f.push(Finding::new(Severity::Warning, Kind::NotResolving, &why));
            report.abandoned = Some(why);
        }
    }
    sort(f);
}

/// A zone apex: its own NS set answers for it (not through a CNAME), lower-cased and sorted.
fn apex_ns(name: &Name, ns: &Lookup) -> Vec<Name> {
    match ns {
        Ok(m) if m.metadata.response_code == ResponseCode::NoError => {
            let mut v: Vec<Name> = m
                .answers
                .iter()
                .filter(|r| r.name.to_lowercase() == name.to_lowercase())
                .filter_map(|r| match &r.data {
                    RData::NS(n) => Some(n.0.to_lowercase()),
                    _ => None,
                })
                .collect();
            v.sort();
            v.dedup();
            v
        }
        _ => Vec::new(),
    }
}

/// The MX records' data, lower-cased and sorted (the baseline's `mx`).
fn mx_targets(mx: &Lookup) -> Vec<String> {
    let mut v: Vec<String> = match mx {
        Ok(m) => m
            .answers
            .iter()
            .filter(|r| r.record_type() == RecordType::MX)
            .map(|r| r.data.to_string().to_lowercase())
            .collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The finding of a name with nothing to report: where it resolves to.
fn resolves(addrs: &[IpAddr]) -> Finding {
    let what = if addrs.is_empty() {
        "resolves (no address)".to_string()
    } else {
        format!(
            "resolves to {}",
            addrs
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Finding::new(Severity::Info, Kind::Ok, what)
}

impl Probe {
    async fn lookup(&self, name: &Name, rtype: RecordType, cd: bool) -> Lookup {
        self.resolver
            .lookup(
                &Query::query(name.clone(), rtype),
                crate::upstream::ClientFlags {
                    checking_disabled: cd,
                    ..Default::default()
                },
            )
            .await
    }

    pub async fn audit(&self, entry: &InventoryEntry, old: Option<&NameState>) -> NameReport {
        let mut report = NameReport {
            name: entry.name.clone(),
            line: entry.line,
            findings: Vec::new(),
            state: None,
            abandoned: None,
        };
        let name = match Name::from_ascii(format!("{}.", entry.name)) {
            Ok(n) => n,
            Err(e) => {
                report.findings.push(Finding::new(
                    Severity::Warning,
                    Kind::NotResolving,
                    format!("not a DNS name: {e}"),
                ));
                return report;
            }
        };
        let (a, aaaa, ns, mx) = futures_util::join!(
            self.lookup(&name, RecordType::A, false),
            self.lookup(&name, RecordType::AAAA, false),
            self.lookup(&name, RecordType::NS, false),
            self.lookup(&name, RecordType::MX, false),
        );
        let a_msg = match &a {
            Ok(m) => m,
            Err(e) => {
                lookup_failed(e, &mut report);
                return report;
            }
        };
        let cnames = chain_targets(a_msg);
        if a_msg.metadata.response_code != ResponseCode::NoError {
            self.gone(a_msg.metadata.response_code, &cnames, &mut report);
            return report;
        }
        let mut addrs: BTreeSet<IpAddr> = addresses(a_msg).into_iter().collect();
        if let Ok(m) = &aaaa {
            addrs.extend(addresses(m));
        }
        let addrs: Vec<IpAddr> = addrs.into_iter().collect();
        let f = &mut report.findings;
        self.placement(&cnames, &addrs, f);
        let child_ns = apex_ns(&name, &ns);
        let mut ds_text = Vec::new();
        if !child_ns.is_empty() {
            self.delegation(&name, &child_ns, f).await;
            ds_text = self.dnssec(&name, a_msg, f).await;
        }
        let state = NameState {
            ns: child_ns.iter().map(|n| n.to_ascii()).collect(),
            addresses: addrs.iter().map(IpAddr::to_string).collect(),
            cnames: cnames.clone(),
            mx: mx_targets(&mx),
            ds: ds_text,
        };
        if let Some(old) = old {
            f.extend(drift(old, &state));
        }
        if !f.iter().any(|x| x.severity > Severity::Info) {
            f.insert(0, resolves(&addrs));
        }
        sort(f);
        report.state = Some(state);
        report
    }

    /// The A question answered, but not NOERROR: NXDOMAIN (a dangling CNAME when the chain
    /// has a target, a takeover risk under a claimable suffix; the targets still judged by
    /// the policy) or another rcode. Either way the name is abandoned.
    fn gone(&self, rcode: ResponseCode, cnames: &[String], report: &mut NameReport) {
        let f = &mut report.findings;
        let why = if rcode == ResponseCode::NXDomain {
            let why = match cnames.last() {
                Some(target) => match claimable_suffix(target) {
                    Some(suffix) => {
                        let why = format!(
                            "dangling CNAME: {target} does not exist (NXDOMAIN) and sits under {suffix}, which anyone can claim: takeover risk"
                        );
                        f.push(Finding::new(Severity::Critical, Kind::DanglingCname, &why));
                        why
                    }
                    None => {
                        let why = format!("dangling CNAME: {target} does not exist (NXDOMAIN)");
                        f.push(Finding::new(Severity::Warning, Kind::DanglingCname, &why));
                        why
                    }
                },
                None => {
                    let why = "no longer resolves (NXDOMAIN)".to_string();
                    f.push(Finding::new(Severity::Warning, Kind::NotResolving, &why));
                    why
                }
            };
            self.threats(cnames, &[], f);
            why
        } else {
            let why = format!("no longer resolves ({rcode})");
            f.push(Finding::new(Severity::Warning, Kind::NotResolving, &why));
            why
        };
        report.abandoned = Some(why);
        sort(f);
    }

    /// Where a resolving name points: a CNAME under a claimable suffix, CNAME targets and
    /// addresses the policy blocks, addresses outside the `--owned` ranges.
    fn placement(&self, cnames: &[String], addrs: &[IpAddr], f: &mut Vec<Finding>) {
        if let Some(target) = cnames.last() {
            if let Some(suffix) = claimable_suffix(target) {
                f.push(Finding::new(
                    Severity::Info,
                    Kind::ClaimableCname,
                    format!("CNAME to {target} under {suffix} (claimable hosting): delete the CNAME before the resource"),
                ));
            }
        }
        self.threats(cnames, addrs, f);
        if !self.owned.is_empty() {
            for ip in addrs
                .iter()
                .filter(|ip| !self.owned.iter().any(|n| n.contains(*ip)))
            {
                f.push(Finding::new(
                    Severity::Warning,
                    Kind::AddressNotOwned,
                    format!(
                        "address {ip} is outside the owned ranges ({})",
                        join(&self.owned)
                    ),
                ));
            }
        }
    }

    /// CNAME targets and addresses that the policy blocks (any list, the default group).
    fn threats(&self, cnames: &[String], addrs: &[IpAddr], f: &mut Vec<Finding>) {
        let who = ClientMatch::default();
        let mut hits: Vec<(String, Vec<Verdict>)> = cnames
            .iter()
            .map(|t| {
                (
                    format!("CNAME target {t}"),
                    self.snapshot.explain_name_for(t.trim_end_matches('.'), who),
                )
            })
            .collect();
        hits.extend(addrs.iter().map(|ip| {
            (
                format!("address {ip}"),
                self.snapshot.explain_ip_for(*ip, who),
            )
        }));
        for (what, verdicts) in hits {
            if verdicts.is_empty() || verdicts.iter().any(Verdict::is_allow) {
                continue;
            }
            let r = verdicts[0].rule();
            let text = r
                .rule_text()
                .map(|t| t.trim().to_string())
                .unwrap_or_default();
            f.push(Finding::new(
                Severity::Critical,
                Kind::Threat,
                format!(
                    "points at a threat: {what} is blocked by list {:?} ({}) rule {} at {}:{}: {text}",
                    &*r.list,
                    r.category.as_str(),
                    r.trigger_name,
                    r.file.display(),
                    r.line
                ),
            ));
        }
    }

    /// Parent and child NS sets, and each name server asked for the zone's SOA directly.
    async fn delegation(&self, zone: &Name, child_ns: &[Name], f: &mut Vec<Finding>) {
        let parent: Option<Vec<Name>> = self.resolver.referral(zone).map(|servers| {
            let mut v: Vec<Name> = servers.iter().map(|s| s.name.to_lowercase()).collect();
            v.sort();
            v.dedup();
            v
        });
        let mut all: Vec<Name> = child_ns.to_vec();
        if let Some(parent) = &parent {
            if parent.as_slice() != child_ns {
                f.push(Finding::new(
                    Severity::Warning,
                    Kind::NsMismatch,
                    format!(
                        "parent and child NS sets differ: the parent delegates to {} but the zone lists {}",
                        names(parent),
                        names(child_ns)
                    ),
                ));
            }
            all.extend(parent.iter().cloned());
        }
        all.sort();
        all.dedup();
        all.truncate(MAX_NS_CHECKED);
        let checks = all.iter().map(|ns| self.check_server(zone, ns));
        let results = futures_util::future::join_all(checks).await;
        let mut any_good = false;
        for (good, findings) in results {
            any_good |= good;
            f.extend(findings);
        }
        if !any_good {
            f.push(Finding::new(
                Severity::Critical,
                Kind::LameDelegation,
                format!("no name server of {zone} answers with authority"),
            ));
        }
    }

    /// One name server: does its name resolve, does each address answer with authority.
    /// Returns whether one address did, and the findings.
    async fn check_server(&self, zone: &Name, ns: &Name) -> (bool, Vec<Finding>) {
        let mut f = Vec::new();
        let (a, aaaa) = futures_util::join!(
            self.lookup(ns, RecordType::A, false),
            self.lookup(ns, RecordType::AAAA, false)
        );
        let mut addrs: Vec<IpAddr> = Vec::new();
        for m in [&a, &aaaa].into_iter().flatten() {
            addrs.extend(addresses(m));
        }
        addrs.truncate(MAX_ADDRS_PER_NS);
        if addrs.is_empty() {
            let nx = rcode_of(&a) == Some(ResponseCode::NXDomain);
            let (severity, why) = match (nx, zone.zone_of(ns)) {
                (true, false) => (
                    Severity::Critical,
                    format!("name server {ns} does not exist (NXDOMAIN): whoever registers its domain controls {zone}"),
                ),
                (true, true) => (
                    Severity::Warning,
                    format!("name server {ns} does not exist (NXDOMAIN)"),
                ),
                (false, _) => (
                    Severity::Warning,
                    match &a {
                        Err(e) => format!("name server {ns} does not resolve ({e})"),
                        Ok(_) => format!("name server {ns} has no address"),
                    },
                ),
            };
            f.push(Finding::new(severity, Kind::NsUnresolvable, why));
            return (false, f);
        }
        let mut good = false;
        let query = Query::query(zone.clone(), RecordType::SOA);
        let flags = QueryFlags {
            edns: true,
            ..QueryFlags::default()
        };
        for ip in addrs {
            let server = SocketAddr::new(ip, self.port);
            match exchange(server, &query, flags, self.ns_timeout).await {
                Err(ExchangeError::Timeout) => f.push(Finding::new(
                    Severity::Warning,
                    Kind::LameDelegation,
                    format!("name server {ns} ({ip}) does not answer (lame delegation)"),
                )),
                Err(e) => f.push(Finding::new(
                    Severity::Warning,
                    Kind::LameDelegation,
                    format!("name server {ns} ({ip}) fails: {e}"),
                )),
                Ok(reply) => {
                    let m = &reply.message;
                    let has_soa = m.answers.iter().any(|r| {
                        r.record_type() == RecordType::SOA
                            && r.name.to_lowercase() == zone.to_lowercase()
                    });
                    if m.metadata.response_code == ResponseCode::NoError
                        && m.metadata.authoritative
                        && has_soa
                    {
                        good = true;
                    } else {
                        f.push(Finding::new(
                            Severity::Warning,
                            Kind::LameDelegation,
                            format!(
                                "name server {ns} ({ip}) answers without authority for {zone} (lame: {}, AA={})",
                                m.metadata.response_code,
                                u8::from(m.metadata.authoritative)
                            ),
                        ));
                    }
                }
            }
        }
        (good, f)
    }

    /// DS at the parent, signed or not, DS without a matching key. Returns the DS texts.
    async fn dnssec(&self, zone: &Name, a: &Message, f: &mut Vec<Finding>) -> Vec<String> {
        let ds = self.lookup(zone, RecordType::DS, false).await;
        let ds_records: Vec<(u16, String)> = match &ds {
            Ok(m) => m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::DNSSEC(DNSSECRData::DS(d)) => {
                        Some((d.key_tag(), r.data.to_string().to_ascii_lowercase()))
                    }
                    _ => None,
                })
                .collect(),
            Err(ResolveError::Bogus { ede, reason }) => {
                f.push(Finding::new(
                    Severity::Critical,
                    Kind::DnssecBogus,
                    format!("DNSSEC bogus at the delegation (EDE {ede}): {reason}"),
                ));
                return Vec::new();
            }
            Err(_) => Vec::new(),
        };
        let mut text: Vec<String> = ds_records.iter().map(|(_, t)| t.clone()).collect();
        text.sort();
        if ds_records.is_empty() {
            f.push(Finding::new(
                Severity::Info,
                Kind::Dnssec,
                "DNSSEC: not signed (no DS at the parent)",
            ));
            return text;
        }
        // The zone's keys, fetched without validation (CD=1), to compare with the DS.
        let keys = self.lookup(zone, RecordType::DNSKEY, true).await;
        let tags: Vec<u16> = match &keys {
            Ok(m) => m
                .answers
                .iter()
                .filter_map(|r| match &r.data {
                    RData::DNSSEC(DNSSECRData::DNSKEY(k)) => k.calculate_key_tag().ok(),
                    _ => None,
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let ds_tags: Vec<u16> = ds_records.iter().map(|(t, _)| *t).collect();
        if !ds_tags.iter().any(|t| tags.contains(t)) {
            f.push(Finding::new(
                Severity::Critical,
                Kind::DnssecDsMismatch,
                format!(
                    "DS at the parent (key tag {}) matches no DNSKEY of the zone ({}): validating resolvers fail the zone",
                    tag_list(&ds_tags),
                    if tags.is_empty() {
                        "no DNSKEY".to_string()
                    } else {
                        format!("key tags {}", tag_list(&tags))
                    }
                ),
            ));
        } else if self.validating && a.metadata.authentic_data {
            f.push(Finding::new(
                Severity::Info,
                Kind::Dnssec,
                "DNSSEC: signed and valid (DS at the parent matches a key)",
            ));
        } else {
            f.push(Finding::new(
                Severity::Info,
                Kind::Dnssec,
                "DNSSEC: signed (DS at the parent matches a key; not validated here)",
            ));
        }
        text
    }
}

/// The CNAME targets of a chain, in order, lower case with the trailing dot.
fn chain_targets(m: &Message) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &m.answers {
        if let RData::CNAME(c) = &r.data {
            let t = c.0.to_lowercase().to_ascii();
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

fn addresses(m: &Message) -> Vec<IpAddr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect()
}

fn sort(f: &mut [Finding]) {
    f.sort_by_key(|x| std::cmp::Reverse(x.severity));
}

fn names(v: &[Name]) -> String {
    v.iter().map(Name::to_ascii).collect::<Vec<_>>().join(" ")
}

fn join(v: &[IpNet]) -> String {
    v.iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn tag_list(v: &[u16]) -> String {
    v.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
}
