//! List file formats.
//!
//! Semantics of each form (the `kind` of the resulting entries):
//! - plain `name`, hosts `0.0.0.0 name…`, adblock `||name^`, dnsmasq
//!   `address=/name/…`, unbound `local-zone: "name" type`: the name **and all
//!   its subdomains** (`Kind::Subtree`).
//! - `*.name` (wildcard lists, or such a line in an auto list): the name and
//!   its subdomains (`Kind::Subtree`), as the feeds in this syntax mean it
//!   (dnscrypt-proxy style: hagezi's wildcard lists carry only `*.x` lines and
//!   expect `x` itself blocked). A bare name in a wildcard list is the same.
//! - RPZ zones (see `rpz.rs`) keep RPZ's own semantics: there an owner name is
//!   that name only and `*.name` its subdomains only.
//!
//! Reading is bounded: lines are read through a `BufReader` into one reused
//! buffer capped at `MAX_LINE` bytes; a longer line is skipped to its end and
//! counted as a bad line. Memory is proportional to the number of entries
//! (16 bytes per name), never to the length of a line.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipnet::IpNet;

use super::ips::IpEntry;
use super::names::{hash_name, label_bit, normalize_name, Act, Kind, NameEntry, NameTable};
use super::{Category, ListFormat, ListSpec, LocalRecord};

/// Longest line accepted (bytes, without the newline).
pub const MAX_LINE: usize = 4096;
/// How much of the head of a file is checked to decide whether it is text at all.
const SNIFF_BYTES: usize = 64 * 1024;
/// Bad lines kept with their reason in a report.
pub const MAX_FIRST_BAD: usize = 20;
/// Bad lines logged with `tracing::warn!` per list.
const MAX_LOGGED_BAD: usize = 5;

#[derive(Debug, thiserror::Error)]
pub enum ListError {
    #[error("cannot open {path}: {source}")]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} does not look like a text list ({why})")]
    NotText { path: PathBuf, why: String },
    #[error(
        "{path}: no valid entry, {bad_lines} bad lines (first: line {first_line}: {first_reason})"
    )]
    NothingValid {
        path: PathBuf,
        bad_lines: usize,
        first_line: u32,
        first_reason: String,
    },
}

/// Why a list line was skipped as a bad line. Its text (the `Display`) is what the list's
/// report and the logs show for that line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A line of a form no parser takes; the text names the form expected.
    #[error("{0}")]
    Form(&'static str),
    /// The name is not a valid domain name (`normalize_name`'s reason).
    #[error("{0}")]
    Name(&'static str),
    /// One of several names on a line is not a valid domain name.
    #[error("{reason}: {name:?}")]
    NameIn { reason: &'static str, name: String },
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("not UTF-8")]
    NotUtf8,
    #[error("control characters (binary data)")]
    Control,
    #[error("unsupported dnsmasq option {0:?}")]
    DnsmasqOption(String),
    #[error("bad dnsmasq address {0:?}")]
    DnsmasqAddress(String),
    #[error("unsupported local-zone type {0:?}")]
    LocalZoneType(String),
    #[error("bad CIDR {0:?}")]
    Cidr(String),
    #[error("bad IP address {0:?}")]
    Ip(String),
    /// RPZ: a `$` directive other than `$ORIGIN` and `$TTL`.
    #[error("unsupported directive {0}")]
    Directive(String),
    #[error("owner {owner} is outside the zone origin {origin}")]
    OutsideOrigin { owner: String, origin: String },
    #[error("bad CNAME target: {0}")]
    CnameTarget(&'static str),
    #[error("bad trigger name: {0}")]
    TriggerName(&'static str),
    #[error("bad rpz-ip trigger {0:?}.rpz-ip")]
    RpzIp(String),
    #[error("unbalanced parentheses")]
    Unbalanced,
    #[error("unbalanced parentheses at end of file")]
    UnbalancedAtEnd,
}

impl From<&'static str> for LineError {
    fn from(s: &'static str) -> Self {
        LineError::Form(s)
    }
}

/// The result of parsing one list file.
#[derive(Debug, Default)]
pub struct ParsedList {
    /// `Rpz` when the file was read as an RPZ zone, else the spec's format.
    pub format: ListFormat,
    /// Lines read.
    pub lines: u32,
    /// Name + IP rules accepted (before de-duplication).
    pub entries: usize,
    pub bad_lines: usize,
    pub first_bad: Vec<(u32, String)>,
    pub warnings: Vec<String>,
    pub(crate) names: Vec<NameEntry>,
    pub(crate) ips: Vec<IpEntry>,
    /// RPZ local data, keyed by the line of the trigger's first record.
    pub(crate) local: HashMap<u32, Arc<[LocalRecord]>>,
    /// See `NameTable::label_mask`.
    pub(crate) label_mask: u64,
}

impl ParsedList {
    pub fn name_entries(&self) -> usize {
        self.names.len()
    }
    pub fn ip_entries(&self) -> usize {
        self.ips.len()
    }
}

/// Parses one list file on its own (for `dnsward check`).
///
/// Fails as a whole when the file cannot be opened or read, when its head does
/// not look like text (binary, compressed), or when it has lines but not a
/// single valid rule (an HTML error page saved as a list, say). An empty file,
/// or one with only comments, is a valid empty list.
pub fn parse_list_file(spec: &ListSpec) -> Result<ParsedList, ListError> {
    parse_list(spec, 0)
}

pub(crate) fn parse_list(spec: &ListSpec, list_id: u16) -> Result<ParsedList, ListError> {
    parse_list_with(spec, list_id, false).map(|(p, _)| p)
}

/// The rules of a list by name, as the policy would apply them (for serving the policy as an
/// RPZ zone; the policy itself keeps only hashes). RPZ-format lists give no names.
#[derive(Debug, Default)]
pub struct CollectedRules {
    /// Normalized name (no trailing dot), kind, act (allow lists already `Allow`).
    pub names: Vec<(Box<str>, Kind, Act)>,
    pub ips: Vec<(IpNet, Act)>,
}

/// Parses a list and also returns its rules by name.
pub fn collect_list_rules(spec: &ListSpec) -> Result<CollectedRules, ListError> {
    parse_list_with(spec, 0, true).map(|(_, c)| c.unwrap_or_default())
}

fn parse_list_with(
    spec: &ListSpec,
    list_id: u16,
    collect: bool,
) -> Result<(ParsedList, Option<CollectedRules>), ListError> {
    let path = &spec.path;
    let mut file = File::open(path).map_err(|source| ListError::Open {
        path: path.clone(),
        source,
    })?;
    let mut head = Vec::with_capacity(SNIFF_BYTES.min(1 << 16));
    (&mut file)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|source| ListError::Read {
            path: path.clone(),
            source,
        })?;
    if let Some(why) = not_text(&head) {
        return Err(ListError::NotText {
            path: path.clone(),
            why,
        });
    }
    let rpz = match spec.format {
        ListFormat::Rpz => true,
        ListFormat::Auto => {
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .map(|e| e.to_ascii_lowercase());
            matches!(ext.as_deref(), Some("rpz") | Some("zone")) || sniff_rpz(&head)
        }
        _ => false,
    };
    let file_len = file.metadata().map_or(0, |m| m.len());
    let reader = BufReader::with_capacity(64 * 1024, io::Cursor::new(head).chain(file));
    let mut sink = Sink::new(list_id, spec.category, path);
    // Reserve for as many names as the file could hold, plus the table's slack, so the
    // entries never move while they grow (a doubling copies them and, for a moment, holds
    // both) and the snapshot can take them as they are (see `Snapshot::build_grouped`).
    // Pages never written are never resident: an over-estimate costs address space only.
    sink.out.names.reserve_exact(NameTable::capacity_for(
        usize::try_from(file_len / MIN_BYTES_PER_NAME).unwrap_or(0),
    ));
    if collect {
        sink.collected = Some(CollectedRules::default());
    }
    let res = if rpz {
        super::rpz::parse_rpz(reader, &mut sink)
    } else {
        parse_lines(reader, spec.format, &mut sink)
    };
    res.map_err(|source| ListError::Read {
        path: path.clone(),
        source,
    })?;
    let collected = sink.collected.take();
    let mut out = sink.finish();
    out.format = if rpz { ListFormat::Rpz } else { spec.format };
    if out.entries == 0 && out.bad_lines > 0 {
        let (first_line, first_reason) = out.first_bad.first().cloned().unwrap_or_default();
        return Err(ListError::NothingValid {
            path: path.clone(),
            bad_lines: out.bad_lines,
            first_line,
            first_reason,
        });
    }
    Ok((out, collected))
}

/// `Some(reason)` when the head of a file is not a text list: compressed
/// magic, or most of its lines are not UTF-8 / contain NUL. A few garbage lines
/// in a text file are only bad lines.
fn not_text(head: &[u8]) -> Option<String> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some("gzip data".into());
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"\xfd7zXZ") || head.starts_with(b"BZh")
    {
        return Some("compressed archive".into());
    }
    let mut lines = 0usize;
    let mut bad = 0usize;
    // The last piece may be cut in the middle of a character: ignore it.
    let mut pieces: Vec<&[u8]> = head.split(|&b| b == b'\n').collect();
    if pieces.len() > 1 && !head.ends_with(b"\n") {
        pieces.pop();
    }
    for l in pieces {
        if l.is_empty() {
            continue;
        }
        lines += 1;
        if l.contains(&0) || std::str::from_utf8(l).is_err() {
            bad += 1;
        }
    }
    if lines > 0 && bad * 2 > lines {
        return Some(format!(
            "{bad} of the first {lines} lines are binary or not UTF-8"
        ));
    }
    None
}

/// An RPZ zone has a SOA record or an $ORIGIN directive near its top.
fn sniff_rpz(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    text.lines().take(200).any(|l| {
        let l = l.trim_start();
        if l.starts_with(';') || l.starts_with('#') {
            return false;
        }
        // by bytes: the line may start with any character (fuzz/: found by list_file)
        if l.as_bytes()
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"$ORIGIN"))
        {
            return true;
        }
        let code = l.split(';').next().unwrap_or("");
        code.split_whitespace()
            .any(|t| t.eq_ignore_ascii_case("SOA"))
    })
}

/// Reads lines of at most `MAX_LINE` bytes from a `BufRead` into one buffer.
pub(crate) struct LineReader<R> {
    r: R,
    buf: Vec<u8>,
    /// The line just read was longer than `MAX_LINE` (and `buf` holds nothing of it).
    too_long: bool,
    pub line_no: u32,
}

pub(crate) enum RawLine<'a> {
    Text(&'a str),
    TooLong,
    NotUtf8,
    Control,
}

impl<R: BufRead> LineReader<R> {
    pub(crate) fn new(r: R) -> Self {
        LineReader {
            r,
            buf: Vec::with_capacity(256),
            too_long: false,
            line_no: 0,
        }
    }

    /// The next line, without its `\n` / `\r\n`; `None` at the end of input.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<RawLine<'_>>> {
        if !self.read_raw()? {
            return Ok(None);
        }
        Ok(Some(self.classify()))
    }

    /// The next line that is text, with its 1-based number. Lines that are not (too long, not
    /// UTF-8, binary) are counted as bad lines in `sink` and skipped.
    pub(crate) fn next_text(&mut self, sink: &mut Sink<'_>) -> io::Result<Option<(u32, &str)>> {
        loop {
            if !self.read_raw()? {
                return Ok(None);
            }
            let why = match self.classify() {
                RawLine::Text(_) => break,
                RawLine::TooLong => LineError::TooLong,
                RawLine::NotUtf8 => LineError::NotUtf8,
                RawLine::Control => LineError::Control,
            };
            sink.bad(self.line_no, why);
        }
        match self.classify() {
            RawLine::Text(t) => Ok(Some((self.line_no, t))),
            _ => unreachable!("classified as text just above"),
        }
    }

    /// Reads the next line into `buf` (bounded); false at the end of input.
    fn read_raw(&mut self) -> io::Result<bool> {
        self.buf.clear();
        let mut too_long = false;
        let mut any = false;
        loop {
            let avail = match self.r.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !any {
                    return Ok(false);
                }
                break;
            }
            any = true;
            let nl = avail.iter().position(|&b| b == b'\n');
            let take = nl.unwrap_or(avail.len());
            if !too_long {
                if self.buf.len() + take > MAX_LINE {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            match nl {
                Some(i) => {
                    self.r.consume(i + 1);
                    break;
                }
                None => {
                    let n = avail.len();
                    self.r.consume(n);
                }
            }
        }
        self.line_no = self.line_no.saturating_add(1);
        self.too_long = too_long;
        Ok(true)
    }

    /// What the line in `buf` is.
    fn classify(&self) -> RawLine<'_> {
        if self.too_long {
            return RawLine::TooLong;
        }
        let mut b: &[u8] = &self.buf;
        if b.last() == Some(&b'\r') {
            b = &b[..b.len() - 1];
        }
        if self.line_no == 1 && b.starts_with(b"\xEF\xBB\xBF") {
            b = &b[3..];
        }
        if b.iter().any(|&c| (c < 0x20 && c != b'\t') || c == 0x7f) {
            return RawLine::Control;
        }
        match std::str::from_utf8(b) {
            Ok(s) => RawLine::Text(s),
            Err(_) => RawLine::NotUtf8,
        }
    }
}

/// The shortest line that holds a name, `a.b` and its line end: the most names a file of a
/// given size can hold, for reserving (see `parse_list_with`).
const MIN_BYTES_PER_NAME: u64 = 4;

/// Collects entries, bad lines and warnings while a list is parsed.
pub(crate) struct Sink<'p> {
    pub list: u16,
    pub allow_list: bool,
    path: &'p Path,
    pub out: ParsedList,
    warn_counts: BTreeMap<&'static str, (usize, u32)>,
    pub name_buf: String,
    /// Rules by name as well, when asked for (`collect_list_rules`).
    collected: Option<CollectedRules>,
}

impl<'p> Sink<'p> {
    pub(crate) fn new(list: u16, category: Category, path: &'p Path) -> Self {
        Sink {
            list,
            allow_list: category == Category::Allow,
            path,
            out: ParsedList::default(),
            warn_counts: BTreeMap::new(),
            name_buf: String::new(),
            collected: None,
        }
    }

    pub(crate) fn bad(&mut self, line: u32, reason: LineError) {
        let reason = reason.to_string();
        if self.out.bad_lines < MAX_LOGGED_BAD {
            tracing::warn!(file = %self.path.display(), line, reason = %reason, "bad list line skipped");
        }
        self.out.bad_lines += 1;
        if self.out.first_bad.len() < MAX_FIRST_BAD {
            self.out.first_bad.push((line, reason));
        }
    }

    /// A counted warning: one summary line per kind of warning in the report.
    pub(crate) fn warn(&mut self, line: u32, what: &'static str) {
        let e = self.warn_counts.entry(what).or_insert((0, line));
        e.0 += 1;
    }

    fn act(&self, act: Act) -> Act {
        if self.allow_list {
            Act::Allow
        } else {
            act
        }
    }

    /// Adds a name rule; `tok` is normalized here.
    pub(crate) fn add_name(
        &mut self,
        tok: &str,
        kind: Kind,
        act: Act,
        line: u32,
    ) -> Result<(), &'static str> {
        let mut buf = std::mem::take(&mut self.name_buf);
        let r = normalize_name(tok, &mut buf);
        if r.is_ok() {
            if !buf.contains('.') && kind != Kind::Wildcard && act != Act::Allow && !self.allow_list
            {
                self.warn(line, "single-label name (a whole top-level domain) listed");
            }
            self.out.label_mask |= label_bit(1 + buf.bytes().filter(|&b| b == b'.').count());
            self.add_hashed(hash_name(buf.as_bytes()), kind, act, line);
            let act = self.act(act);
            if let Some(c) = self.collected.as_mut() {
                c.names.push((buf.as_str().into(), kind, act));
            }
        }
        self.name_buf = buf;
        r
    }

    pub(crate) fn add_hashed(&mut self, hash: u64, kind: Kind, act: Act, line: u32) {
        let act = self.act(act);
        self.out.names.push(NameEntry {
            hash,
            line,
            list: self.list,
            kind,
            act,
        });
        self.out.entries += 1;
    }

    pub(crate) fn add_ip(&mut self, net: IpNet, act: Act, line: u32) {
        if net.trunc() != net {
            self.warn(line, "CIDR with host bits set (masked)");
        }
        let act = self.act(act);
        if let Some(c) = self.collected.as_mut() {
            c.ips.push((net.trunc(), act));
        }
        self.out.ips.push(IpEntry {
            net: net.trunc(),
            line,
            list: self.list,
            act,
        });
        self.out.entries += 1;
    }

    pub(crate) fn finish(mut self) -> ParsedList {
        for (what, (n, first)) in std::mem::take(&mut self.warn_counts) {
            self.out
                .warnings
                .push(format!("{what}: {n} line(s), first at line {first}"));
        }
        if self.out.bad_lines > MAX_LOGGED_BAD {
            tracing::warn!(file = %self.path.display(), bad_lines = self.out.bad_lines, "list has bad lines (only the first {MAX_LOGGED_BAD} logged)");
        }
        self.out
    }
}

/// Reads a non-RPZ list: every line on its own, by `format` (or detected).
pub(crate) fn parse_lines<R: BufRead>(
    reader: R,
    format: ListFormat,
    sink: &mut Sink<'_>,
) -> io::Result<()> {
    let mut lr = LineReader::new(reader);
    while let Some((line_no, text)) = lr.next_text(sink)? {
        if let Err(reason) = parse_line(text, format, line_no, sink) {
            sink.bad(line_no, reason);
        }
    }
    sink.out.lines = lr.line_no;
    Ok(())
}

/// Strips comments and blanks. `None` when nothing is left.
fn strip_comment(line: &str) -> Option<&str> {
    let t = line.trim();
    if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
        return None;
    }
    // `[Adblock Plus 2.0]` style headers.
    if t.starts_with('[') && t.ends_with(']') {
        return None;
    }
    // Trailing comment: ` # …` (a `#` after white space; `##` cosmetic
    // adblock rules have no space before them and stay bad lines).
    let mut cut = t.len();
    let bytes = t.as_bytes();
    for (i, _) in t.match_indices('#') {
        if i > 0 && (bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            cut = i;
            break;
        }
    }
    let t = t[..cut].trim_end();
    if t.is_empty() {
        None
    } else {
        Some(t)
    }
}

fn starts_with_ci(s: &str, p: &str) -> bool {
    s.len() >= p.len() && s.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
}

/// Parses one line. `Err(reason)` makes it a bad line.
fn parse_line(
    line: &str,
    format: ListFormat,
    n: u32,
    sink: &mut Sink<'_>,
) -> Result<(), LineError> {
    let Some(t) = strip_comment(line) else {
        return Ok(());
    };
    match format {
        ListFormat::Plain => plain(t, Kind::Subtree, n, sink),
        ListFormat::Wildcard => wildcard(t, n, sink),
        ListFormat::Hosts => hosts(t, n, sink),
        ListFormat::Adblock => adblock(t, n, sink),
        ListFormat::Dnsmasq => dnsmasq(t, n, sink),
        ListFormat::Unbound => unbound(t, n, sink),
        ListFormat::Ip => ip_line(t, n, sink),
        ListFormat::Rpz => unreachable!("RPZ files go through rpz::parse_rpz"),
        ListFormat::Auto => auto(t, n, sink),
    }
}

fn auto(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    let first = t.as_bytes()[0];
    // Fast path: a bare LDH name (the bulk of every big list), unless an IPv4 address.
    if t.bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_')
        && !(first.is_ascii_digit() && t.parse::<std::net::Ipv4Addr>().is_ok())
    {
        return sink
            .add_name(t, Kind::Subtree, Act::Block, n)
            .map_err(LineError::Name);
    }
    if first == b'|'
        || t.starts_with("@@")
        || first == b'/'
        || t.contains("##")
        || t.contains("#@#")
        || t.contains("#?#")
        || t.contains("#$#")
        || t.contains('^')
        || t.contains('$')
    {
        return adblock(t, n, sink);
    }
    if starts_with_ci(t, "address=") || starts_with_ci(t, "server=") || starts_with_ci(t, "local=")
    {
        return dnsmasq(t, n, sink);
    }
    if starts_with_ci(t, "local-zone:")
        || starts_with_ci(t, "local-data:")
        || t.eq_ignore_ascii_case("server:")
    {
        return unbound(t, n, sink);
    }
    let mut toks = t.split_ascii_whitespace();
    let tok0 = toks.next().unwrap_or("");
    if toks.next().is_some() {
        if tok0.parse::<IpAddr>().is_ok() {
            return hosts(t, n, sink);
        }
        return Err("unrecognized line (several words, first is not an IP address)".into());
    }
    if tok0.parse::<IpAddr>().is_ok() || (tok0.contains('/') && tok0.parse::<IpNet>().is_ok()) {
        return ip_line(tok0, n, sink);
    }
    if tok0.starts_with("*.") {
        return wildcard_token(tok0, n, sink);
    }
    plain(tok0, Kind::Subtree, n, sink)
}

fn plain(t: &str, kind: Kind, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    if t.split_ascii_whitespace().nth(1).is_some() {
        return Err("more than one word in a plain domain line".into());
    }
    sink.add_name(t, kind, Act::Block, n)
        .map_err(LineError::Name)
}

fn wildcard_token(tok: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    let rest = tok.strip_prefix("*.").ok_or("not a '*.name' wildcard")?;
    sink.add_name(rest, Kind::Subtree, Act::Block, n)
        .map_err(LineError::Name)
}

/// Explicit wildcard lists: `*.name` and bare `name` both block the name and its subdomains.
fn wildcard(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    if t.split_ascii_whitespace().nth(1).is_some() {
        return Err("more than one word in a wildcard line".into());
    }
    if t.starts_with("*.") {
        wildcard_token(t, n, sink)
    } else {
        plain(t, Kind::Subtree, n, sink)
    }
}

const HOSTS_SKIP: &[&str] = &[
    "localhost",
    "localhost.localdomain",
    "local",
    "broadcasthost",
    "0.0.0.0",
    "ip6-localhost",
    "ip6-loopback",
    "ip6-localnet",
    "ip6-mcastprefix",
    "ip6-allnodes",
    "ip6-allrouters",
    "ip6-allhosts",
];

fn hosts(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    let mut toks = t.split_ascii_whitespace();
    let ip: IpAddr = toks
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or("hosts line must start with an IP address")?;
    if !ip.is_unspecified() && !ip.is_loopback() {
        sink.warn(
            n,
            "hosts entry maps to a routable address (treated as a block)",
        );
    }
    let mut any = false;
    let mut err = None;
    for name in toks {
        any = true;
        if HOSTS_SKIP.iter().any(|s| name.eq_ignore_ascii_case(s)) {
            continue;
        }
        if let Err(e) = sink.add_name(name, Kind::Subtree, Act::Block, n) {
            err = Some(LineError::NameIn {
                reason: e,
                name: name.to_string(),
            });
        }
    }
    if !any {
        return Err("hosts line without a name".into());
    }
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn adblock(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    if t.contains("##") || t.contains("#@#") || t.contains("#?#") || t.contains("#$#") {
        return Err("adblock cosmetic rule (not a DNS rule)".into());
    }
    let (allow, rest) = match t.strip_prefix("@@") {
        Some(r) => (true, r),
        None => (false, t),
    };
    if rest.starts_with('/') {
        return Err("adblock regex rule not supported".into());
    }
    let Some(rest) = rest.strip_prefix("||") else {
        return Err("adblock rule not of the form ||name^".into());
    };
    let (body, opts) = match rest.split_once('$') {
        Some((b, o)) => (b, Some(o)),
        None => (rest, None),
    };
    if let Some(o) = opts {
        if o.split(',').any(|x| x.trim() == "badfilter") {
            return Err("adblock $badfilter not supported".into());
        }
        sink.warn(n, "adblock $options ignored");
    }
    let name = if let Some(b) = body.strip_suffix("^|") {
        b
    } else if let Some(b) = body.strip_suffix('^') {
        b
    } else {
        if body.contains('/') {
            return Err("adblock path rule (not a DNS rule)".into());
        }
        sink.warn(n, "adblock rule without '^' treated as ||name^");
        body
    };
    if name.contains('/') || name.contains('^') || name.contains('|') {
        return Err("adblock path/pattern rule (not a DNS rule)".into());
    }
    if name.contains('*') {
        return Err("adblock wildcard pattern not supported".into());
    }
    let act = if allow { Act::Allow } else { Act::Block };
    sink.add_name(name, Kind::Subtree, act, n)
        .map_err(LineError::Name)
}

fn dnsmasq(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    let (key, val) = t.split_once('=').ok_or("dnsmasq line without '='")?;
    let key = key.trim().to_ascii_lowercase();
    if !matches!(key.as_str(), "address" | "server" | "local") {
        return Err(LineError::DnsmasqOption(key));
    }
    let val = val.trim();
    let inner = val
        .strip_prefix('/')
        .ok_or("dnsmasq rule not of the form key=/name/…")?;
    let parts: Vec<&str> = inner.split('/').collect();
    if parts.len() < 2 {
        return Err("dnsmasq rule not of the form key=/name/…".into());
    }
    let (target, names) = parts.split_last().expect("len >= 2");
    let target = target.trim();
    match key.as_str() {
        "address" => {
            if !(target.is_empty() || target == "#") {
                let ip: IpAddr = target
                    .parse()
                    .map_err(|_| LineError::DnsmasqAddress(target.to_string()))?;
                if !ip.is_unspecified() && !ip.is_loopback() {
                    sink.warn(
                        n,
                        "dnsmasq address= to a routable address (treated as a block)",
                    );
                }
            }
        }
        _ => {
            if !target.is_empty() {
                // server=/name/1.2.3.4 forwards, it does not block.
                sink.warn(n, "dnsmasq server=/local= forwarding rule ignored");
                return Ok(());
            }
        }
    }
    let mut err = None;
    for name in names {
        let name = name.trim().trim_start_matches('.');
        if name.is_empty() {
            err = Some(LineError::Form("empty name in dnsmasq rule"));
            continue;
        }
        if let Err(e) = sink.add_name(name, Kind::Subtree, Act::Block, n) {
            err = Some(LineError::NameIn {
                reason: e,
                name: name.to_string(),
            });
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn unbound(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    if t.eq_ignore_ascii_case("server:") {
        return Ok(());
    }
    if starts_with_ci(t, "local-data:") || starts_with_ci(t, "local-data-ptr:") {
        sink.warn(n, "unbound local-data ignored");
        return Ok(());
    }
    let rest = if starts_with_ci(t, "local-zone:") {
        &t["local-zone:".len()..]
    } else {
        return Err("unsupported unbound directive".into());
    };
    let rest = rest.trim();
    let (name, ty) = if let Some(q) = rest.strip_prefix('"') {
        let (name, after) = q
            .split_once('"')
            .ok_or("unterminated quote in local-zone")?;
        (name, after.trim())
    } else {
        rest.split_once(char::is_whitespace)
            .map(|(a, b)| (a, b.trim()))
            .ok_or("local-zone without a type")?
    };
    let act = match ty.to_ascii_lowercase().as_str() {
        "transparent" | "always_transparent" | "typetransparent" | "inform" => Act::Allow,
        "always_nxdomain" => Act::Nxdomain,
        "always_nodata" => Act::Nodata,
        "refuse" | "always_refuse" => Act::Refused,
        "deny" | "inform_deny" | "always_deny" => Act::Drop,
        "static" | "redirect" | "always_null" => Act::Block,
        "nodefault" => {
            sink.warn(n, "unbound local-zone nodefault ignored");
            return Ok(());
        }
        "" => return Err("local-zone without a type".into()),
        other => return Err(LineError::LocalZoneType(other.to_string())),
    };
    sink.add_name(name, Kind::Subtree, act, n)
        .map_err(LineError::Name)
}

fn ip_line(t: &str, n: u32, sink: &mut Sink<'_>) -> Result<(), LineError> {
    let tok = t.split_ascii_whitespace().next().unwrap_or("");
    if t.split_ascii_whitespace().nth(1).is_some() {
        return Err("more than one word in an IP line".into());
    }
    let net = if tok.contains('/') {
        tok.parse::<IpNet>()
            .map_err(|_| LineError::Cidr(tok.to_string()))?
    } else {
        IpNet::from(
            tok.parse::<IpAddr>()
                .map_err(|_| LineError::Ip(tok.to_string()))?,
        )
    };
    sink.add_ip(net, Act::Block, n);
    Ok(())
}

#[cfg(test)]
#[path = "parse_tests.rs"]
pub(crate) mod tests;
