//! What `dnsward logs` prints, the same for both stores: `tail`'s table or JSON lines, the
//! `top` and `clients` reports (tables or JSON), and `export`'s CSV.

use std::io::Write;

use super::{LogsError, SuspiciousClient, TopReport};
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
