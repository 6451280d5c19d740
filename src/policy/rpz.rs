//! RPZ zone files (a master file, RFC 1035 syntax, read by the rules of the
//! RPZ draft, draft-vixie-dnsop-dns-rpz).
//!
//! Supported: `$ORIGIN`, `$TTL`, SOA/NS at the apex (ignored), owner names
//! relative to the origin or absolute under it, `@`, owner omitted (line starts
//! with white space = previous owner), optional TTL/class, parentheses over
//! several lines, `;` comments (not inside quotes).
//!
//! Triggers: QNAME (`name` = that name only, `*.name` = names below it only)
//! and response IP (`<len>.<reversed address>.rpz-ip`, IPv6 with `zz` for `::`).
//! NSDNAME, NSIP and client-IP triggers are counted as warnings and skipped.
//!
//! Actions: `CNAME .` NXDOMAIN, `CNAME *.` NODATA, `CNAME rpz-passthru.`
//! passthru (allow), `CNAME rpz-drop.` drop, anything else (`A`, `AAAA`,
//! `TXT`, `CNAME other.name.`) local data; all records of one trigger are kept
//! together and answer only the types they hold.

use std::collections::HashMap;
use std::io::{self, BufRead};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use ipnet::IpNet;

use super::names::{hash_name, label_bit, normalize_name, Act, Kind};
use super::parse::{LineError, LineReader, Sink, MAX_LINE};
use super::LocalRecord;

/// Longest record spread over lines with parentheses.
const MAX_JOINED_LINES: usize = 64;

#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum TriggerKey {
    Name(u64, Kind),
    Ip(IpNet),
}

enum Trigger {
    Name(u64, Kind),
    Ip(IpNet),
}

/// Splits a record into tokens; quoted strings (with `\"` escapes) are single
/// tokens (quotes kept); `;` outside quotes starts a comment.
fn tokenize(s: &str, out: &mut Vec<(usize, usize)>) -> Result<(), &'static str> {
    out.clear();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'(' | b')' => i += 1,
            b';' => break,
            b'"' => {
                let st = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated quoted string");
                }
                i += 1;
                out.push((st, i));
            }
            _ => {
                let st = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b';' | b'(' | b')' | b'"') {
                    i += 1;
                }
                out.push((st, i));
            }
        }
    }
    Ok(())
}

/// Paren depth change of a line (outside quotes and comments).
fn paren_delta(s: &str) -> i32 {
    let mut d = 0;
    let mut q = false;
    let mut esc = false;
    for c in s.bytes() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            b'\\' if q => esc = true,
            b'"' => q = !q,
            b';' if !q => break,
            b'(' if !q => d += 1,
            b')' if !q => d -= 1,
            _ => {}
        }
    }
    d
}

struct Zone {
    origin: Option<String>,
    last_owner: Option<String>,
    groups: HashMap<TriggerKey, (u32, Vec<LocalRecord>)>,
    toks: Vec<(usize, usize)>,
}

pub(crate) fn parse_rpz<R: BufRead>(reader: R, sink: &mut Sink<'_>) -> io::Result<()> {
    let mut lr = LineReader::new(reader);
    let mut z = Zone {
        origin: None,
        last_owner: None,
        groups: HashMap::new(),
        toks: Vec::new(),
    };
    // A record joined over several lines (parentheses), and its first line.
    let mut joined = String::new();
    let mut joined_line = 0u32;
    let mut joined_count = 0usize;
    let mut depth = 0i32;
    while let Some((line_no, text)) = lr.next_text(sink)? {
        if depth > 0 {
            joined.push(' ');
            joined.push_str(text);
            joined_count += 1;
            depth += paren_delta(text);
            if depth <= 0 {
                depth = 0;
                let rec = std::mem::take(&mut joined);
                if let Err(e) = record(&rec, joined_line, &mut z, sink) {
                    sink.bad(joined_line, e);
                }
            } else if joined_count > MAX_JOINED_LINES || joined.len() > MAX_LINE {
                sink.bad(joined_line, LineError::Unbalanced);
                depth = 0;
                joined.clear();
            }
            continue;
        }
        let trimmed = text.trim_start();
        if trimmed.is_empty() || trimmed.starts_with(';') || trimmed.starts_with('#') {
            continue;
        }
        let d = paren_delta(text);
        if d > 0 {
            depth = d;
            joined.clear();
            joined.push_str(text);
            joined_line = line_no;
            joined_count = 1;
            continue;
        }
        if let Err(e) = record(text, line_no, &mut z, sink) {
            sink.bad(line_no, e);
        }
    }
    if depth > 0 {
        sink.bad(joined_line, LineError::UnbalancedAtEnd);
    }
    sink.out.lines = lr.line_no;
    for (_, (line, recs)) in z.groups.drain() {
        sink.out.local.insert(line, Arc::from(recs));
    }
    Ok(())
}

fn lower_abs(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// One record (possibly joined from several lines).
fn record(text: &str, n: u32, z: &mut Zone, sink: &mut Sink<'_>) -> Result<(), LineError> {
    let mut toks = std::mem::take(&mut z.toks);
    let r = record_inner(text, n, z, sink, &mut toks);
    z.toks = toks;
    r
}

fn record_inner(
    text: &str,
    n: u32,
    z: &mut Zone,
    sink: &mut Sink<'_>,
    toks: &mut Vec<(usize, usize)>,
) -> Result<(), LineError> {
    tokenize(text, toks)?;
    let t: Vec<&str> = toks.iter().map(|&(a, b)| &text[a..b]).collect();
    if t.is_empty() {
        return Ok(());
    }
    if t[0].starts_with('$') {
        return directive(&t, z);
    }
    let indented = text.starts_with(' ') || text.starts_with('\t');
    let (owner_raw, rest): (String, &[&str]) = if indented {
        (
            z.last_owner.clone().ok_or("record without an owner name")?,
            &t[..],
        )
    } else {
        (t[0].to_string(), &t[1..])
    };
    z.last_owner = Some(owner_raw.clone());
    let (ty, rdata) = type_and_rdata(rest)?;
    let rel = relative_owner(owner_raw, &ty, z)?;
    if rel.is_empty() {
        if !matches!(ty.as_str(), "SOA" | "NS") {
            sink.warn(n, "record at the zone apex ignored");
        }
        return Ok(());
    }
    if matches!(ty.as_str(), "SOA") {
        return Err("SOA below the zone apex".into());
    }
    if matches!(
        ty.as_str(),
        "NS" | "DNAME" | "RRSIG" | "NSEC" | "NSEC3" | "DNSKEY" | "DS"
    ) {
        sink.warn(n, "unsupported record type in policy zone ignored");
        return Ok(());
    }

    let trigger = match parse_trigger(&rel, sink)? {
        Some(t) => t,
        None => {
            sink.warn(n, "NSDNAME/NSIP/client-IP trigger not supported (ignored)");
            return Ok(());
        }
    };
    let Some(local) = action_or_local_data(&ty, rdata, &trigger, n, z, sink)? else {
        return Ok(());
    };
    let key = match trigger {
        Trigger::Name(h, k) => TriggerKey::Name(h, k),
        Trigger::Ip(net) => TriggerKey::Ip(net),
    };
    match z.groups.get_mut(&key) {
        Some((_, recs)) => recs.push(local),
        None => {
            z.groups.insert(key, (n, vec![local]));
            add(sink, &trigger, Act::Local, n);
        }
    }
    Ok(())
}

/// `$ORIGIN` (relative to the current origin unless absolute) and `$TTL` (ignored).
fn directive(t: &[&str], z: &mut Zone) -> Result<(), LineError> {
    match t[0].to_ascii_uppercase().as_str() {
        "$ORIGIN" => {
            let o = t.get(1).ok_or("$ORIGIN without a name")?;
            let o = if o.ends_with('.') {
                lower_abs(o)
            } else {
                match &z.origin {
                    Some(cur) => format!("{}.{}", o.to_ascii_lowercase(), cur),
                    None => lower_abs(o),
                }
            };
            z.origin = Some(o);
            Ok(())
        }
        "$TTL" => Ok(()),
        _ => Err(LineError::Directive(t[0].to_string())),
    }
}

/// `[ttl] [class] type rdata…` (ttl and class in either order): the type, upper case, and
/// the rdata tokens.
fn type_and_rdata<'r, 't>(rest: &'r [&'t str]) -> Result<(String, &'r [&'t str]), LineError> {
    let mut i = 0;
    while i < rest.len() && i < 2 {
        let x = rest[i];
        let is_ttl = x.as_bytes()[0].is_ascii_digit();
        let is_class = ["IN", "CH", "HS", "CS", "ANY"]
            .iter()
            .any(|c| x.eq_ignore_ascii_case(c));
        if is_ttl || is_class {
            i += 1;
        } else {
            break;
        }
    }
    let ty = rest
        .get(i)
        .ok_or("record without a type")?
        .to_ascii_uppercase();
    Ok((ty, &rest[i + 1..]))
}

/// The owner relative to the origin ("" = the apex). An absolute owner of the first SOA
/// sets the origin when none is set yet.
fn relative_owner(owner_raw: String, ty: &str, z: &mut Zone) -> Result<String, LineError> {
    if owner_raw == "@" {
        return Ok(String::new());
    }
    if !owner_raw.ends_with('.') {
        return Ok(owner_raw.to_ascii_lowercase());
    }
    let abs = lower_abs(&owner_raw);
    if z.origin.is_none() && ty == "SOA" {
        z.origin = Some(abs.clone());
    }
    match &z.origin {
        Some(o) if abs == *o => Ok(String::new()),
        Some(o) => match abs
            .strip_suffix(o.as_str())
            .and_then(|p| p.strip_suffix('.'))
        {
            Some(p) => Ok(p.to_string()),
            None => Err(LineError::OutsideOrigin {
                owner: owner_raw,
                origin: o.clone(),
            }),
        },
        None => Err("absolute owner name before $ORIGIN or SOA".into()),
    }
}

/// A record's meaning: an action (added to `sink` here, `None` returned), local data to
/// answer with, or nothing we support (warned, `None`).
fn action_or_local_data(
    ty: &str,
    rdata: &[&str],
    trigger: &Trigger,
    n: u32,
    z: &Zone,
    sink: &mut Sink<'_>,
) -> Result<Option<LocalRecord>, LineError> {
    Ok(Some(match ty {
        "CNAME" => {
            let target = *rdata.first().ok_or("CNAME without a target")?;
            let tl = target.to_ascii_lowercase();
            let act = match tl.as_str() {
                "." => Some(Act::Nxdomain),
                "*." => Some(Act::Nodata),
                "rpz-passthru." | "rpz-passthru" => Some(Act::Allow),
                "rpz-drop." | "rpz-drop" => Some(Act::Drop),
                "rpz-tcp-only." | "rpz-tcp-only" => {
                    sink.warn(n, "rpz-tcp-only not supported (ignored)");
                    return Ok(None);
                }
                _ => None,
            };
            if let Some(act) = act {
                add(sink, trigger, act, n);
                return Ok(None);
            }
            cname_target(tl, z)?
        }
        "A" => {
            let a: Ipv4Addr = rdata
                .first()
                .and_then(|s| s.parse().ok())
                .ok_or("bad A record data")?;
            LocalRecord::A(a)
        }
        "AAAA" => {
            let a: Ipv6Addr = rdata
                .first()
                .and_then(|s| s.parse().ok())
                .ok_or("bad AAAA record data")?;
            LocalRecord::Aaaa(a)
        }
        "TXT" => {
            if rdata.is_empty() {
                return Err("TXT without data".into());
            }
            let mut s = String::new();
            for p in rdata {
                let p = p
                    .strip_prefix('"')
                    .and_then(|x| x.strip_suffix('"'))
                    .unwrap_or(p);
                s.push_str(&p.replace("\\\"", "\"").replace("\\\\", "\\"));
            }
            LocalRecord::Txt(s)
        }
        _ => {
            sink.warn(n, "local data of an unsupported type ignored");
            return Ok(None);
        }
    }))
}

/// Local data `CNAME target` (lower case; relative to the origin unless absolute; a leading
/// `*.` kept).
fn cname_target(tl: String, z: &Zone) -> Result<LocalRecord, LineError> {
    let abs = if tl.ends_with('.') {
        lower_abs(&tl)
    } else {
        match &z.origin {
            Some(o) => format!("{tl}.{o}"),
            None => tl,
        }
    };
    let (star, body) = match abs.strip_prefix("*.") {
        Some(b) => ("*.", b),
        None => ("", abs.as_str()),
    };
    let mut buf = String::new();
    normalize_name(body, &mut buf).map_err(LineError::CnameTarget)?;
    Ok(LocalRecord::Cname(format!("{star}{buf}")))
}

fn add(sink: &mut Sink<'_>, t: &Trigger, act: Act, n: u32) {
    match *t {
        Trigger::Name(h, k) => sink.add_hashed(h, k, act, n),
        Trigger::Ip(net) => sink.add_ip(net, act, n),
    }
}

/// `Ok(None)` for trigger types we do not support.
fn parse_trigger(rel: &str, sink: &mut Sink<'_>) -> Result<Option<Trigger>, LineError> {
    let (head, last) = match rel.rsplit_once('.') {
        Some((h, l)) => (h, l),
        None => ("", rel),
    };
    match last {
        "rpz-ip" => return parse_rpz_ip(head).map(|n| Some(Trigger::Ip(n))),
        "rpz-nsdname" | "rpz-nsip" | "rpz-client-ip" => return Ok(None),
        _ => {}
    }
    let (kind, body) = match rel.strip_prefix("*.") {
        Some(b) => (Kind::Wildcard, b),
        None => (Kind::Exact, rel),
    };
    let mut buf = std::mem::take(&mut sink.name_buf);
    let r = normalize_name(body, &mut buf).map(|_| hash_name(buf.as_bytes()));
    if r.is_ok() {
        sink.out.label_mask |= label_bit(1 + buf.bytes().filter(|&b| b == b'.').count());
    }
    sink.name_buf = buf;
    let h = r.map_err(LineError::TriggerName)?;
    Ok(Some(Trigger::Name(h, kind)))
}

/// `32.4.3.2.1` -> 1.2.3.4/32; `128.1.zz.db8.2001` -> 2001:db8::1/128.
pub(crate) fn parse_rpz_ip(s: &str) -> Result<IpNet, LineError> {
    let labels: Vec<&str> = s.split('.').collect();
    let bad = || LineError::RpzIp(s.to_string());
    if labels.len() < 2 {
        return Err(bad());
    }
    let len: u8 = labels[0].parse().map_err(|_| bad())?;
    let addr = &labels[1..];
    let is_v4 = addr.len() == 4
        && addr
            .iter()
            .all(|l| !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()));
    let ip: IpAddr = if is_v4 {
        let o: Vec<u8> = addr
            .iter()
            .rev()
            .map(|l| l.parse::<u8>())
            .collect::<Result<_, _>>()
            .map_err(|_| bad())?;
        if len > 32 {
            return Err(bad());
        }
        IpAddr::V4(Ipv4Addr::new(o[0], o[1], o[2], o[3]))
    } else {
        if addr.len() > 8 || addr.iter().filter(|l| **l == "zz").count() > 1 {
            return Err(bad());
        }
        let parts: Vec<&str> = addr
            .iter()
            .rev()
            .map(|l| if *l == "zz" { "" } else { *l })
            .collect();
        let mut txt = parts.join(":");
        if txt.starts_with(':') {
            txt.insert(0, ':');
        }
        if txt.ends_with(':') {
            txt.push(':');
        }
        if len > 128 {
            return Err(bad());
        }
        IpAddr::V6(txt.parse::<Ipv6Addr>().map_err(|_| bad())?)
    };
    IpNet::new(ip, len).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::names::hash_name;
    use crate::policy::{Category, ListFormat};
    use std::path::Path;

    fn parse(text: &str) -> crate::policy::parse::ParsedList {
        let mut sink = Sink::new(0, Category::Threat, Path::new("mem.rpz"));
        parse_rpz(io::Cursor::new(text.as_bytes()), &mut sink).unwrap();
        let mut p = sink.finish();
        p.format = ListFormat::Rpz;
        p
    }

    #[test]
    fn rpz_ip_labels() {
        assert_eq!(
            parse_rpz_ip("32.4.3.2.1").unwrap().to_string(),
            "1.2.3.4/32"
        );
        assert_eq!(
            parse_rpz_ip("24.0.2.0.192").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            parse_rpz_ip("128.1.zz.db8.2001").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert_eq!(
            parse_rpz_ip("48.zz.1.db8.2001").unwrap().to_string(),
            "2001:db8:1::/48"
        );
        assert_eq!(parse_rpz_ip("128.1.zz").unwrap().to_string(), "::1/128");
        assert!(parse_rpz_ip("33.4.3.2.1").is_err());
        assert!(parse_rpz_ip("32.4.3.2.999").is_err());
        assert!(parse_rpz_ip("x.1.2.3.4").is_err());
    }

    #[test]
    fn zone_records() {
        let p = parse(
            "$TTL 300\n\
             @ IN SOA localhost. root.localhost. (\n  1 ; serial\n  3600 600 86400 60 )\n\
             \x20 IN NS localhost.\n\
             $ORIGIN rpz.example.\n\
             nx.example CNAME .\n\
             nodata.example 60 IN CNAME *.\n\
             *.wild.example CNAME .\n\
             ok.nx.example CNAME rpz-passthru.\n\
             drop.example.rpz.example. CNAME rpz-drop.\n\
             local.example A 192.0.2.1\n\
             \x20 AAAA 2001:db8::1\n\
             \x20 TXT \"blocked; see \\\"policy\\\"\" \"page\"\n\
             redir.example CNAME walled.garden.example.\n\
             32.4.3.2.1.rpz-ip CNAME .\n\
             24.0.2.0.192.rpz-ip A 198.51.100.1\n\
             128.1.zz.db8.2001.rpz-ip CNAME rpz-drop.\n\
             ns.example.rpz-nsdname CNAME .\n\
             outside.example. CNAME .\n\
             bad..name CNAME .\n",
        );
        let find = |name: &str, kind: Kind| {
            p.names
                .iter()
                .find(|e| e.hash == hash_name(name.as_bytes()) && e.kind == kind)
                .map(|e| (e.act, e.line))
        };
        assert_eq!(find("nx.example", Kind::Exact), Some((Act::Nxdomain, 7)));
        assert_eq!(find("nodata.example", Kind::Exact), Some((Act::Nodata, 8)));
        assert_eq!(
            find("wild.example", Kind::Wildcard),
            Some((Act::Nxdomain, 9))
        );
        assert_eq!(find("ok.nx.example", Kind::Exact), Some((Act::Allow, 10)));
        assert_eq!(find("drop.example", Kind::Exact), Some((Act::Drop, 11)));
        assert_eq!(find("local.example", Kind::Exact), Some((Act::Local, 12)));
        assert_eq!(find("redir.example", Kind::Exact), Some((Act::Local, 15)));
        let recs = p.local.get(&12).unwrap();
        assert_eq!(
            &recs[..],
            &[
                LocalRecord::A("192.0.2.1".parse().unwrap()),
                LocalRecord::Aaaa("2001:db8::1".parse().unwrap()),
                LocalRecord::Txt("blocked; see \"policy\"page".into())
            ]
        );
        assert_eq!(
            &p.local.get(&15).unwrap()[..],
            &[LocalRecord::Cname("walled.garden.example".into())]
        );
        let ips: Vec<(String, Act, u32)> = p
            .ips
            .iter()
            .map(|e| (e.net.to_string(), e.act, e.line))
            .collect();
        assert_eq!(
            ips,
            vec![
                ("1.2.3.4/32".into(), Act::Nxdomain, 16),
                ("192.0.2.0/24".into(), Act::Local, 17),
                ("2001:db8::1/128".into(), Act::Drop, 18)
            ]
        );
        assert_eq!(
            &p.local.get(&17).unwrap()[..],
            &[LocalRecord::A("198.51.100.1".parse().unwrap())]
        );
        assert_eq!(p.names.len(), 7);
        assert_eq!(p.bad_lines, 2, "{:?}", p.first_bad);
        assert_eq!(p.first_bad[0].0, 20);
        assert_eq!(p.first_bad[1].0, 21);
        assert!(p.warnings.iter().any(|w| w.starts_with("NSDNAME/NSIP")));
    }
}
