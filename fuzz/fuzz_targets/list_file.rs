//! Each list format's parser (`src/policy/parse.rs`; plain, hosts, adblock, wildcard,
//! dnsmasq, unbound, ip, auto-detection, and RPZ through the format switch) on any file: the
//! counts add up, every rule name comes out normalised (normalising it again changes
//! nothing), the snapshot built from the list matches every rule it reports (allow wins), and
//! every blocked name's answer through the engine is a well-formed DNS message.
//!
//! Input: byte 0 picks the format (and allow vs threat), the rest is the file.
#![no_main]

mod common;
#[path = "common/lists.rs"]
mod lists;

use dnsward::policy::names::{normalize_name, Act, Kind};
use dnsward::policy::parse::{collect_list_rules, parse_list_file, MAX_FIRST_BAD};
use dnsward::policy::{Category, Verdict};
use hickory_proto::rr::RecordType;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let format = lists::format_of(sel);
    let category = if sel & 0x80 != 0 {
        Category::Allow
    } else {
        Category::Threat
    };
    let spec = lists::spec(body, format, category, "txt");
    let parsed = parse_list_file(&spec);
    let collected = collect_list_rules(&spec);
    assert_eq!(
        parsed.is_ok(),
        collected.is_ok(),
        "the same judgement twice"
    );
    let (Ok(p), Ok(c)) = (parsed, collected) else {
        return;
    };
    assert!(p.bad_lines <= p.lines as usize);
    assert!(p.first_bad.len() <= p.bad_lines.min(MAX_FIRST_BAD));
    assert!(
        p.entries > 0 || p.bad_lines == 0,
        "no entry but bad lines: an error"
    );
    let snap = lists::snapshot(&spec);
    let mut norm = String::new();
    for (i, (name, kind, act)) in c.names.iter().enumerate() {
        normalize_name(name, &mut norm).unwrap_or_else(|e| panic!("rule {name:?}: {e}"));
        assert_eq!(&norm, &**name, "rule name normalised");
        let probe = match kind {
            Kind::Subtree | Kind::Exact => name.to_string(),
            Kind::Wildcard => format!("x.{name}"),
        };
        if probe.len() > 253 {
            continue;
        }
        let v = snap.match_name(&probe);
        assert!(
            v.is_some(),
            "rule {name:?} ({kind:?}) does not match {probe:?}"
        );
        if *act == Act::Allow {
            assert!(
                matches!(v, Some(Verdict::Allow(_))),
                "allow rule {name:?} lost: {v:?}"
            );
        }
        if i < 4 && !matches!(v, Some(Verdict::Allow(_))) {
            if let Some((_, blocked)) = lists::probe(&snap, &probe, RecordType::A) {
                assert!(blocked, "{probe:?} matches a rule but was not blocked");
            }
        }
    }
    for (net, _act) in &c.ips {
        assert!(
            snap.match_ip(net.network()).is_some(),
            "ip rule {net} does not match"
        );
    }
});
