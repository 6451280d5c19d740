//! `dnsward explain`: which list and rule would block a name or an answer address, or why it
//! is allowed. Exit code: 0 allowed, 1 blocked, 2 error.

use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;

use super::load_or_report;
use crate::policy::{Snapshot, Verdict};

/// Run `dnsward explain --config PATH NAME [IP] [--client ADDR]`.
pub fn run(path: &Path, name: &str, ip: Option<IpAddr>, client: Option<IpAddr>) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::from(2);
    };
    let (snapshot, report) =
        // The groups in force now: an open `[[events]]` window's lists apply.
        Snapshot::build_grouped(
            &config.list_specs(),
            &crate::events::groups_at(&config, crate::timefmt::now_us()),
            None,
        );
    for l in report.lists.iter().filter(|l| l.error.is_some()) {
        eprintln!(
            "warning: list {:?} not loaded: {}",
            l.name,
            l.error.as_deref().unwrap_or("")
        );
    }
    let who = client
        .map(|c| snapshot.groups().lookup(c))
        .unwrap_or_default();
    if let Some(c) = client {
        let groups = snapshot.groups();
        let named = groups
            .client_name(who)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        println!("client {c}{named}: group {:?}", &*groups.group(who).name);
    }
    let mut hits: Vec<(String, Verdict)> = snapshot
        .explain_name_for(name, who)
        .into_iter()
        .map(|v| (format!("name {name}"), v))
        .collect();
    if let Some(ip) = ip {
        hits.extend(
            snapshot
                .explain_ip_for(ip, who)
                .into_iter()
                .map(|v| (format!("address {ip}"), v)),
        );
    }
    if hits.is_empty() {
        println!("{name}: allowed (no list matches)");
        return ExitCode::SUCCESS;
    }
    for (what, v) in &hits {
        let r = v.rule();
        let kind = match v {
            Verdict::Allow(_) => "allow",
            Verdict::Block { .. } => "block",
            Verdict::LocalData { .. } => "local data",
            Verdict::Drop(_) => "drop",
        };
        let text = r.rule_text().unwrap_or_else(|e| format!("<{e}>"));
        println!(
            "{what}: {kind} by list {:?} ({}) rule {} at {}:{}: {}",
            r.list,
            r.category.as_str(),
            r.trigger_name,
            r.file.display(),
            r.line,
            text.trim()
        );
    }
    // The decision the server makes: allow anywhere wins, else the first (most specific) block.
    let allowed = hits.iter().any(|(_, v)| v.is_allow());
    if allowed {
        println!("{name}: allowed (an allow rule wins over every block rule)");
        ExitCode::SUCCESS
    } else {
        println!("{name}: blocked");
        ExitCode::FAILURE
    }
}
