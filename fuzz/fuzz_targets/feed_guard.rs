//! The feed guards (`src/feeds/guard.rs`) on a downloaded body: a body that passes is UTF-8
//! without NUL, counts what the policy's parser counts, has no more bad lines than entries
//! and did not shrink past `max_shrink`; a rejection says what it is, and only a list (never
//! HTML or binary) may be accepted by an operator.
//!
//! Input: byte 0 = the last good copy's entries, then the Content-Type up to the first
//! newline (`-` for none), then the body.
#![no_main]

mod common;

use dnsward::feeds::guard::{check_content, check_list, Rejected};
use dnsward::policy::parse::parse_list_file;
use dnsward::policy::{Category, ListFormat, ListSpec};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&previous, rest)) = data.split_first() else {
        return;
    };
    let previous = previous as usize;
    let nl = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
    let ct = String::from_utf8_lossy(&rest[..nl]).to_string();
    let body = rest.get(nl + 1..).unwrap_or(&[]);
    let ct = (ct != "-").then_some(ct.as_str());
    match check_content(ct, body) {
        Err(r) => {
            assert!(!r.acceptable(), "{r:?} before parsing is acceptable");
            assert!(r.entries().is_none());
            return;
        }
        Ok(()) => {
            assert!(!body.contains(&0));
            assert!(std::str::from_utf8(body).is_ok());
        }
    }
    let dir = common::scratch_dir("feed");
    let file = dir.join("download.tmp");
    std::fs::write(&file, body).unwrap();
    let max_shrink = 0.5;
    match check_list(
        &file,
        ListFormat::Auto,
        Category::Threat,
        previous,
        max_shrink,
    ) {
        Ok(passed) => {
            assert!(passed.bad_lines <= passed.entries);
            if previous > 0 {
                assert!(passed.entries as f64 >= previous as f64 * (1.0 - max_shrink) - 1e-9);
            }
            let spec = ListSpec {
                name: "d".into(),
                category: Category::Threat,
                path: file.clone(),
                format: ListFormat::Auto,
                action: None,
            };
            let p = parse_list_file(&spec).expect("what passed parses");
            assert_eq!((p.entries, p.bad_lines), (passed.entries, passed.bad_lines));
        }
        Err(r) => {
            assert!(!r.kind().is_empty() && !r.to_string().is_empty());
            if r.acceptable() {
                assert!(r
                    .entries()
                    .is_some_and(|n| n > 0 || matches!(r, Rejected::Shrink { .. })));
            }
            assert!(!matches!(r, Rejected::Html | Rejected::ContentType(_)));
        }
    }
});
