//! The RPZ parser (`src/policy/rpz.rs`) on any zone text: the counts add up, the snapshot
//! builds, and every owner name of the zone, asked for A, AAAA, TXT and CNAME through the
//! engine with that snapshot, gets a well-formed DNS message with the query's ID and question
//! (local data included) or, for a drop rule, nothing.
#![no_main]

mod common;
#[path = "common/lists.rs"]
mod lists;

use dnsward::policy::parse::parse_list_file;
use dnsward::policy::{Category, ListFormat};
use hickory_proto::rr::RecordType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let spec = lists::spec(body, ListFormat::Rpz, Category::Threat, "rpz");
    let Ok(p) = parse_list_file(&spec) else {
        return;
    };
    assert!(p.bad_lines <= p.lines as usize);
    let snap = lists::snapshot(&spec);
    // Owner names as written (relative to the zone's origin, which the policy strips).
    let text = String::from_utf8_lossy(body);
    let origin = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("$ORIGIN"))
        .map(|o| o.trim().trim_end_matches('.').to_ascii_lowercase());
    let mut probes = 0;
    for line in text.lines() {
        if probes >= 8 {
            break;
        }
        let Some(owner) = line.split_whitespace().next() else {
            continue;
        };
        if line.starts_with([' ', '\t', '$', ';', '(']) {
            continue;
        }
        let mut owner = owner.trim_end_matches('.').to_ascii_lowercase();
        if let Some(o) = &origin {
            if let Some(rel) = owner.strip_suffix(&format!(".{o}")) {
                owner = rel.to_string();
            }
        }
        let owner = owner.replace('*', "x");
        if owner.is_empty() || owner == "@" || owner.len() > 253 {
            continue;
        }
        probes += 1;
        for t in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT,
            RecordType::CNAME,
        ] {
            lists::probe(&snap, &owner, t);
        }
    }
});
