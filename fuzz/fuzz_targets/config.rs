//! The config loader (`src/config`: TOML, serde, every problem located, the cross-field
//! checks) on any text: either a config whose derived views (lists, groups, root servers,
//! name) can be built, or at least one problem, each with a message and, when it has a place,
//! a line inside the file.
#![no_main]

use std::path::Path;

use dnsward::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("/nonexistent-dnsward-fuzz/dnsward.toml");
    match Config::from_text(text, path) {
        Ok(c) => {
            for spec in c.list_specs() {
                assert!(spec.path.is_absolute(), "{} resolved", spec.path.display());
            }
            let _ = c.groups_spec();
            let _ = c.instance_name();
            let _ = c.resolver.effective_deny_server();
            let _ = c.resolver.effective_allow_server();
            let _ = c.root_addresses();
        }
        Err(problems) => {
            assert!(!problems.is_empty(), "an error without a problem");
            let lines = text.lines().count().max(1);
            for p in &problems {
                assert!(!p.message.is_empty(), "{p:?}");
                if let Some(l) = p.line {
                    assert!(l >= 1 && l <= lines + 1, "line {l} of {lines}: {p:?}");
                }
            }
        }
    }
});
