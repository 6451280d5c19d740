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
    let body =
        b"\xff\xff\xff\x84m\xc3\xbcnchen.example\nxn--mnchen-m\xc3\xbcnchen.example\n$ORIGIN\n";
    let (_d, spec) = list(body, "txt", ListFormat::Auto);
    let _ = parse_list_file(&spec);
    let (_d, spec) = list(
        "ab\u{e9}\u{e9}\u{e9}xyz.example\n".as_bytes(),
        "txt",
        ListFormat::Auto,
    );
    let p = parse_list_file(&spec).expect("a list");
    assert_eq!(p.format, ListFormat::Auto);
}

/// xfr: a transfer with a TSIG key, answered by a message whose ANCOUNT + NSCOUNT overflow a
/// u16, panicked inside hickory's TSIG check (where overflow is checked: debug and test
/// builds); now it is a malformed transfer.
#[tokio::test]
async fn tsig_checked_transfer_with_overflowing_record_counts() {
    use dnsward::rpzxfr::transfer::{transfer, Limits, XfrError};
    use dnsward::rpzxfr::tsig::TsigKey;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let primary = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut len = [0u8; 2];
        conn.read_exact(&mut len).await.unwrap();
        let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
        conn.read_exact(&mut req).await.unwrap();
        // the fuzzer's message: QDCOUNT 0, ANCOUNT 0x7cff + NSCOUNT 0xbffe
        let mut msg = vec![
            0xff, 0xc9, 0x9a, 0x3b, 0x00, 0x00, 0x7c, 0xff, 0xbf, 0xfe, 0xff, 0xfc, 0xff, 0xff,
            0x00, 0x09, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x02, 0x58, 0x00, 0x01, 0xc0, 0x0c,
            0x00, 0x2b, 0x00, 0x01, 0x00, 0x00, 0x01, 0x01, 0x2f, 0x80, 0x00, 0x00, 0x00, 0x3c,
        ];
        msg[..2].copy_from_slice(&req[..2]);
        let mut out = (msg.len() as u16).to_be_bytes().to_vec();
        out.extend_from_slice(&msg);
        conn.write_all(&out).await.unwrap();
    });
    let key = TsigKey::parse(
        "key \"xfr-key\" { algorithm hmac-sha256; secret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\"; };",
    )
    .unwrap();
    let zone = hickory_proto::rr::Name::from_ascii("rpz.example.").unwrap();
    let r = transfer(primary, &zone, None, Some(&key), Limits::new(100)).await;
    assert!(matches!(r, Err(XfrError::Malformed(..))), "{:?}", r.err());
}

/// config: a malformed copy of the shipped config.toml made toml_edit panic ("all items have
/// spans") while the loader located problems: `dnsward check` and `serve` crashed on it
/// instead of reporting it.
#[test]
fn a_config_that_makes_the_toml_parser_panic_is_a_problem_not_a_crash() {
    let bytes =
        include_bytes!("../fuzz/seeds/config/crash-a7235ad23eb713e83148f279f05728d2663e5a86");
    let text = std::str::from_utf8(bytes).expect("the fuzzer only feeds UTF-8 to the loader");
    let path = std::path::Path::new("/nonexistent/dnsward.toml");
    let problems = dnsward::config::Config::from_text(text, path).expect_err("not a valid config");
    assert!(!problems.is_empty());
    assert!(
        problems.iter().all(|p| !p.message.is_empty()),
        "{problems:?}"
    );
}

/// classify: a reply whose answer section holds a DNAME and records below it was classified
/// with more answer records than the reply had plus the chain's synthesized CNAMEs.
#[test]
fn classify_keeps_each_answer_record_at_most_once() {
    use dnsward::resolver::classify::{classify, Classified, MAX_CHAIN};
    use hickory_proto::op::Message;
    use hickory_proto::rr::{Name, RecordType};
    let data =
        include_bytes!("../fuzz/seeds/classify/crash-701cd7f79ce74559e3b48a10bc826fb5666c86cc");
    let (sel, bytes) = data.split_first().unwrap();
    let reply = Message::from_vec(bytes).expect("the fuzzer's reply decodes");
    let q = reply.queries.first().expect("a question");
    let qname = q.name().clone();
    let qtype = if sel & 0x10 != 0 {
        RecordType::DS
    } else {
        q.query_type()
    };
    let zone = match sel & 3 {
        0 => Name::root(),
        1 => Name::from_ascii("test.").unwrap(),
        2 => Name::from_ascii("example.test.").unwrap(),
        _ => qname.base_name(),
    };
    if let Classified::Answer(a) = classify(&reply, &zone, &qname, qtype) {
        let kept: Vec<String> = a.records.iter().map(|r| r.to_string()).collect();
        assert!(
            a.records.len() <= reply.answers.len() + MAX_CHAIN + 1,
            "{} answers in the reply, {} kept: {kept:#?}",
            reply.answers.len(),
            a.records.len()
        );
    }
}
