//! What the fuzz targets (`fuzz/`) found, each kept as a test of the public entry point the
//! target drives; the input is also in the target's seeds (`fuzz/seeds/TARGET/crash-*`), so
//! the fuzzer replays it on every run.

use dnsward::policy::parse::parse_list_file;
use dnsward::policy::{Category, ListFormat, ListSpec};

fn list(body: &[u8], ext: &str, format: ListFormat) -> (tempfile::TempDir, ListSpec) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("list.{ext}"));
    std::fs::write(&path, body).unwrap();
    let spec = ListSpec {
        name: "fuzz".into(),
        category: Category::Threat,
        path,
        format,
        action: None,
    };
    (dir, spec)
}

/// list_file: a line whose 7th byte falls inside a multi-byte character panicked the RPZ
/// sniffing of an auto-format list (`l[..7]` on a `str`): a feed could crash a reload.
#[test]
fn rpz_sniffing_of_a_line_starting_with_multibyte_characters() {
    let body = b"\xff\xff\xff\x84m\xc3\xbcnchen.example\nxn--mnchen-m\xc3\xbcnchen.example\n$ORIGIN\n";
    let (_d, spec) = list(body, "txt", ListFormat::Auto);
    let _ = parse_list_file(&spec);
    let (_d, spec) = list("ab\u{e9}\u{e9}\u{e9}xyz.example\n".as_bytes(), "txt", ListFormat::Auto);
    let p = parse_list_file(&spec).expect("a list");
    assert_eq!(p.format, ListFormat::Auto);
}
