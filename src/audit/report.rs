//! What `dnsward audit` prints (a table, or JSON for scripts) and the names it appends to an
//! abandoned list (`--write-abandoned`).

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use super::AuditReport;

/// The table: one line per finding, worst first within each name, then a summary line.
pub fn table(report: &AuditReport) -> String {
    let width = report
        .names
        .iter()
        .map(|n| n.name.len())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    let mut out = format!(
        "{:<9} {:<width$} {:<18} REASON\n",
        "SEVERITY", "NAME", "FINDING"
    );
    for n in &report.names {
        for f in &n.findings {
            out += &format!(
                "{:<9} {:<width$} {:<18} {}\n",
                f.severity.as_str(),
                n.name,
                f.kind.as_str(),
                f.reason
            );
        }
    }
    let (c, w, i) = report.counts();
    let abandoned = report
        .names
        .iter()
        .filter(|n| n.abandoned.is_some())
        .count();
    out += &format!(
        "\n{} name(s) audited: {c} critical, {w} warning(s), {i} info; {abandoned} abandoned candidate(s)\n",
        report.names.len()
    );
    out
}

/// The whole report as JSON (one object; `names[].findings[]` with `severity`, `kind`, `reason`).
pub fn json(report: &AuditReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// Appends the abandoned candidates not yet in the list file, each under a dated comment with
/// the reason, in the plain list format. Returns the names appended.
pub fn write_abandoned(report: &AuditReport, path: &Path) -> std::io::Result<Vec<String>> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let existing: HashSet<String> = current
        .lines()
        .map(|l| {
            l.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .filter(|l| !l.is_empty())
        .collect();
    let mut text = String::new();
    if !current.is_empty() && !current.ends_with('\n') {
        text.push('\n');
    }
    let mut added = Vec::new();
    for n in &report.names {
        let Some(why) = &n.abandoned else { continue };
        if existing.contains(&n.name) {
            continue;
        }
        let why: String = why.chars().filter(|c| !c.is_control()).collect();
        text += &format!("# dnsward audit {}: {why}\n{}\n", report.started, n.name);
        added.push(n.name.clone());
    }
    if added.is_empty() {
        return Ok(added);
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write, so a list reload sees either none or all of the new lines' bytes written.
    f.write_all(text.as_bytes())?;
    f.sync_data()?;
    Ok(added)
}
