//! The BIND-format TSIG key reader (`src/rpzxfr/tsig.rs`) on any text: a key that parses
//! signs a transfer request, and its Debug form never holds the secret.
#![no_main]

use dnsward::rpzxfr::tsig::TsigKey;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(key) = TsigKey::parse(text) else {
        return;
    };
    let shown = format!("{key:?}");
    // The secret is the base64 token after `secret`.
    if let Some(i) = text.find("secret") {
        let secret: String = text[i + 6..]
            .trim_start()
            .trim_start_matches('"')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '+' || *c == '/')
            .collect();
        // (the key's name may itself contain the same characters)
        let name = key.signer.signer_name().to_string();
        if secret.len() >= 8 && !name.contains(&secret) {
            assert!(!shown.contains(&secret), "Debug shows the secret: {shown}");
        }
    }
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii("rpz.example.").unwrap(),
        RecordType::AXFR,
    ));
    key.signer
        .sign_message(&m, 1_800_000_000)
        .expect("a parsed key signs");
});
