//! What `dnsward logs` prints, the same for both stores: `tail`'s table or JSON lines, the
//! `top` and `clients` reports (tables or JSON), and `export`'s CSV.

use std::io::Write;

use serde::Serialize;

use super::LogsError;
use crate::querylog::event::LogRow;
use crate::timefmt::format_ts;

const TAIL_HEADERS: [&str; 11] = [
    "TIME", "CLIENT", "NAME", "PROTO", "TYPE", "QNAME", "ACTION", "RCODE", "CATEGORY", "LIST", "MS",
];

fn tail_cells(r: &LogRow) -> Vec<String> {
    vec![
        format_ts(r.ts_us, 3),
        match r.client_port {
            Some(p) if r.client.contains(':') => format!("[{}]:{p}", r.client),
            Some(p) => format!("{}:{p}", r.client),
            None => r.client.clone(),
        },
        r.client_name.clone().unwrap_or_else(|| "-".into()),
        r.transport.to_string(),
        r.qtype.clone(),
        r.qname.clone(),
        r.action.to_string() + if r.cached { "*" } else { "" },
        r.rcode.clone(),
        r.category.clone().unwrap_or_else(|| "-".into()),
        r.list.clone().unwrap_or_else(|| "-".into()),
        format!("{:.1}", f64::from(r.latency_us) / 1000.0),
    ]
}

/// `tail`'s rows: a table (with its header line when `header`) or JSON lines.
pub(super) fn print_tail_rows(
    rows: &[LogRow],
    json: bool,
    header: bool,
    out: &mut dyn Write,
) -> std::io::Result<()> {
    if json {
        for r in rows {
            serde_json::to_writer(&mut *out, r)?;
            out.write_all(b"\n")?;
        }
    } else {
        let cells: Vec<Vec<String>> = rows.iter().map(tail_cells).collect();
        write_table(
            out,
            if header {
                Some(&TAIL_HEADERS[..])
            } else {
                None
            },
            &cells,
            &[10],
        )?;
    }
    out.flush()
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopDomain {
    pub qname: String,
    pub blocked: u64,
    pub clients: u64,
    pub category: Option<String>,
}
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopClient {
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub blocked: u64,
    pub domains: u64,
}
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopCategory {
    pub category: Option<String>,
    pub blocked: u64,
    pub clients: u64,
    pub domains: u64,
}
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct TopReport {
    pub since: String,
    pub until: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub queries: u64,
    pub blocked: u64,
    pub domains: Vec<TopDomain>,
    pub clients: Vec<TopClient>,
    pub categories: Vec<TopCategory>,
}

pub(super) fn print_top(r: &TopReport, json: bool, out: &mut dyn Write) -> Result<(), LogsError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, r).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let pct = if r.queries > 0 {
        100.0 * r.blocked as f64 / r.queries as f64
    } else {
        0.0
    };
    let group = r
        .group
        .as_ref()
        .map(|g| format!(" (group {g})"))
        .unwrap_or_default();
    writeln!(
        out,
        "{} .. {}{group}: {} queries, {} blocked ({pct:.1}%)",
        r.since, r.until, r.queries, r.blocked
    )?;
    writeln!(out, "\nTop blocked domains")?;
    let rows: Vec<Vec<String>> = r
        .domains
        .iter()
        .map(|d| {
            vec![
                d.qname.clone(),
                d.blocked.to_string(),
                d.clients.to_string(),
                opt(&d.category),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&["DOMAIN", "BLOCKED", "CLIENTS", "CATEGORY"]),
        &rows,
        &[1, 2],
    )?;
    writeln!(out, "\nTop clients by blocked attempts")?;
    let rows: Vec<Vec<String>> = r
        .clients
        .iter()
        .map(|c| {
            vec![
                c.client.clone(),
                opt(&c.client_name),
                c.blocked.to_string(),
                c.domains.to_string(),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&["CLIENT", "NAME", "BLOCKED", "DOMAINS"]),
        &rows,
        &[2, 3],
    )?;
    writeln!(out, "\nBlocked per category")?;
    let rows: Vec<Vec<String>> = r
        .categories
        .iter()
        .map(|c| {
            vec![
                opt(&c.category),
                c.blocked.to_string(),
                c.clients.to_string(),
                c.domains.to_string(),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&["CATEGORY", "BLOCKED", "CLIENTS", "DOMAINS"]),
        &rows,
        &[1, 2, 3],
    )?;
    Ok(())
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SuspiciousClient {
    pub client: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    pub blocked: u64,
    pub domains: u64,
    pub categories: Vec<String>,
    pub first_seen: String,
    pub last_seen: String,
    /// the most tried blocked domains, most first (at most 3)
    pub top_domains: Vec<String>,
}

pub(super) fn print_clients(
    list: &[SuspiciousClient],
    json: bool,
    out: &mut dyn Write,
) -> Result<(), LogsError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, list).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    if list.is_empty() {
        writeln!(out, "(no client crosses the thresholds)")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.client.clone(),
                opt(&c.client_name),
                c.blocked.to_string(),
                c.domains.to_string(),
                c.categories.join(","),
                c.first_seen.clone(),
                c.last_seen.clone(),
                c.top_domains.join(" "),
            ]
        })
        .collect();
    write_table(
        out,
        Some(&[
            "CLIENT",
            "NAME",
            "BLOCKED",
            "DOMAINS",
            "CATEGORIES",
            "FIRST SEEN",
            "LAST SEEN",
            "TOP DOMAINS",
        ]),
        &rows,
        &[2, 3],
    )?;
    Ok(())
}

/// CSV columns, the same names as the JSON fields.
pub const CSV_HEADER: &str = "time,ts_us,client,client_port,transport,qname,qtype,rcode,action,category,list,rule,trigger,cached,answers,latency_us,server,client_name,group";

/// One CSV field (RFC 4180 quoting), appended to `line`.
fn push_csv_field(line: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        line.push('"');
        line.push_str(&s.replace('"', "\"\""));
        line.push('"');
    } else {
        line.push_str(s);
    }
}

/// One export row as a CSV line (with its newline), written into `line` (cleared first):
/// no allocation per field, so `export` keeps its rate.
pub fn write_csv_line(line: &mut String, r: &LogRow) {
    use std::fmt::Write as _;
    line.clear();
    let text = |line: &mut String, v: &str| {
        push_csv_field(line, v);
        line.push(',');
    };
    text(line, &r.time);
    let _ = write!(line, "{},", r.ts_us);
    text(line, &r.client);
    if let Some(p) = r.client_port {
        let _ = write!(line, "{p}");
    }
    line.push(',');
    text(line, r.transport.as_str());
    text(line, &r.qname);
    text(line, &r.qtype);
    text(line, &r.rcode);
    text(line, r.action.as_str());
    text(line, r.category.as_deref().unwrap_or(""));
    text(line, r.list.as_deref().unwrap_or(""));
    text(line, r.rule.as_deref().unwrap_or(""));
    text(line, r.trigger.map(|t| t.as_str()).unwrap_or(""));
    let _ = write!(line, "{},", r.cached);
    let answers_at = line.len();
    for (i, a) in r.answers.iter().enumerate() {
        let _ = if i == 0 {
            write!(line, "{a}")
        } else {
            write!(line, ",{a}")
        };
    }
    if r.answers.len() > 1 {
        // several addresses are joined with ',': quote them as one field
        line.insert(answers_at, '"');
        line.push('"');
    }
    let _ = write!(line, ",{},", r.latency_us);
    text(line, &r.server);
    text(line, r.client_name.as_deref().unwrap_or(""));
    push_csv_field(line, r.group.as_deref().unwrap_or(""));
    line.push('\n');
}

fn opt(s: &Option<String>) -> String {
    s.clone().unwrap_or_else(|| "-".into())
}

/// An aligned table: columns separated by two spaces, `right` columns right-aligned.
fn write_table(
    out: &mut dyn Write,
    headers: Option<&[&str]>,
    rows: &[Vec<String>],
    right: &[usize],
) -> std::io::Result<()> {
    let ncol = headers
        .map(|h| h.len())
        .or_else(|| rows.first().map(|r| r.len()))
        .unwrap_or(0);
    let mut width = vec![0usize; ncol];
    for (i, h) in headers.unwrap_or(&[]).iter().enumerate() {
        width[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate().take(ncol) {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let mut line = |cells: &mut dyn Iterator<Item = &str>| -> std::io::Result<()> {
        let mut s = String::new();
        for (i, c) in cells.enumerate().take(ncol) {
            if i > 0 {
                s.push_str("  ");
            }
            let pad = width[i].saturating_sub(c.chars().count());
            if right.contains(&i) {
                s.extend(std::iter::repeat_n(' ', pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    if let Some(h) = headers {
        line(&mut h.iter().copied())?;
    }
    for r in rows {
        line(&mut r.iter().map(String::as_str))?;
    }
    Ok(())
}
