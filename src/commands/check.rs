//! `dnsward check`: validate a config and its lists, print every problem (exit 1 on any
//! error), and per feed the copy in force.

use std::path::Path;
use std::process::ExitCode;

use super::load_or_report;
use crate::policy::Snapshot;

/// A warning when the resolver iterates from root hints of its own (none of the IANA root
/// addresses) while validating with the built-in root keys: unless that root is signed with
/// them, every answer would be SERVFAIL (EDE 9, DNSKEY Missing).
fn private_root_with_builtin_anchor(config: &crate::config::Config) -> Option<String> {
    use crate::config::{DnssecMode, Mode};
    let r = &config.resolver;
    let hints = r.root_hints.as_ref()?;
    if r.mode != Mode::Recursive || r.dnssec != DnssecMode::Validate || r.trust_anchor.is_some() {
        return None;
    }
    let roots = config.root_addresses().ok()?;
    let iana = crate::resolver::roots::builtin_roots();
    if roots.iter().any(|a| iana.contains(a)) {
        return None;
    }
    Some(format!(
        "resolver.root_hints ({}) names a root of your own while dnssec = \"validate\" trusts the \
         built-in root keys: unless that root is signed with them every answer is SERVFAIL \
         (EDE 9, DNSKEY Missing); set resolver.trust_anchor to your root's DS or DNSKEY records, \
         or resolver.dnssec = \"off\"",
        hints.display()
    ))
}

/// The runtime block lists (`runtime`, `runtime@GROUP`) and the runtime allow list.
fn is_runtime_list(name: &str) -> bool {
    crate::policy::groups::runtime_scope(name).is_some()
        || name == crate::policy::groups::RUNTIME_ALLOW_LIST
}

/// Run `dnsward check --config PATH`.
pub fn run(path: &Path) -> ExitCode {
    let Some(config) = load_or_report(path) else {
        return ExitCode::FAILURE;
    };
    let (snapshot, report) =
        Snapshot::build_grouped(&config.list_specs(), &config.groups_spec(), None);
    let mut failed = false;
    for l in &report.lists {
        failed |= !print_list(&config, l);
    }
    for line in crate::feeds::check_report(config.feed_specs()) {
        println!("{line}");
    }
    if let Some(warning) = private_root_with_builtin_anchor(&config) {
        println!("warning: {warning}");
    }
    print_events(&config);
    for g in snapshot.groups().groups().iter().skip(1) {
        println!(
            "group {:?}: action {}, log {}",
            &*g.name,
            g.action
                .map_or("as [policy]".to_string(), |a| format!("{a:?}")
                    .to_lowercase()),
            g.log.as_str()
        );
    }
    println!(
        "{}: {} ({} names, {} addresses in {} lists, loaded in {} ms)",
        path.display(),
        if failed { "list errors" } else { "ok" },
        snapshot.name_entries(),
        snapshot.ip_entries(),
        report.lists.len(),
        report.elapsed.as_millis()
    );
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One list's lines of the report; false when its error fails the check.
fn print_list(config: &crate::config::Config, l: &crate::policy::ListReport) -> bool {
    println!(
        "list {:?} ({}): {} rules, {} bad lines, read as {:?}",
        l.name,
        l.path.display(),
        l.entries,
        l.bad_lines,
        l.format
    );
    for (line, why) in &l.first_bad {
        println!("  warning: {}:{line}: skipped: {why}", l.path.display());
    }
    if l.bad_lines > l.first_bad.len() {
        println!("  ... {} more bad lines", l.bad_lines - l.first_bad.len());
    }
    for w in &l.warnings {
        println!("  warning: {w}");
    }
    let is_feed = config
        .lists
        .iter()
        .any(|c| c.name == l.name && c.url.is_some());
    let rpz_note =
        crate::rpzxfr::config::not_transferred_yet(&config.rpz, &config.base_dir, &l.name);
    match &l.error {
        // A feed without a snapshot has no copy until `serve` first downloads it.
        Some(_) if is_feed && !l.path.exists() => {
            println!(
                "  warning: feed {:?} has no copy yet: it is empty until the first download",
                l.name
            )
        }
        // The admin API's runtime lists are created by `serve`.
        Some(_) if is_runtime_list(&l.name) && !l.path.exists() => {
            println!(
                "  note: list {:?} does not exist yet: `serve` creates it (empty)",
                l.name
            )
        }
        // An [[rpz]] zone has no copy until `serve` first transfers it.
        Some(_) if rpz_note.is_some() => {
            println!("  note: {}", rpz_note.as_deref().unwrap_or_default())
        }
        Some(e) => {
            eprintln!("error: list {:?}: {e}", l.name);
            return false;
        }
        None => {}
    }
    true
}

/// Each `[[events]]` window: its state and next change.
fn print_events(config: &crate::config::Config) {
    for e in crate::events::status(&config.events, crate::timefmt::now_us()) {
        println!(
            "event {:?}: {} ({} .. {}){}; lists [{}], groups [{}], alerts [{}]",
            e.name,
            e.state,
            e.start,
            e.end,
            e.next_change
                .map(|n| format!(", next change {n}"))
                .unwrap_or_default(),
            e.lists.join(", "),
            if e.groups.is_empty() {
                "all".to_string()
            } else {
                e.groups.join(", ")
            },
            e.alerts.join(", ")
        );
    }
}
