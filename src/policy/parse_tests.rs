use super::*;
use crate::policy::names::hash_name;

pub(crate) fn spec(path: &Path, format: ListFormat, category: Category) -> ListSpec {
    ListSpec {
        name: "t".into(),
        category,
        path: path.to_path_buf(),
        format,
        action: None,
    }
}

pub(crate) fn parse_str(text: &[u8], format: ListFormat) -> ParsedList {
    let mut sink = Sink::new(0, Category::Threat, Path::new("mem"));
    parse_lines(io::Cursor::new(text), format, &mut sink).unwrap();
    sink.finish()
}

fn has(p: &ParsedList, name: &str, kind: Kind, act: Act) -> Option<u32> {
    let h = hash_name(name.as_bytes());
    p.names
        .iter()
        .find(|e| e.hash == h && e.kind == kind && e.act == act)
        .map(|e| e.line)
}

#[test]
fn plain_crlf_case_dot_idn_comments() {
    let p = parse_str(
        b"# comment\r\n! also comment\r\n\r\nEvil.Example.\r\nbad..name\r\nok.example # trailing\r\nb\xc3\xbccher.example\r\n",
        ListFormat::Auto,
    );
    assert_eq!(p.entries, 3);
    assert_eq!(has(&p, "evil.example", Kind::Subtree, Act::Block), Some(4));
    assert_eq!(has(&p, "ok.example", Kind::Subtree, Act::Block), Some(6));
    assert_eq!(
        has(&p, "xn--bcher-kva.example", Kind::Subtree, Act::Block),
        Some(7)
    );
    assert_eq!(p.bad_lines, 1);
    assert_eq!(p.first_bad, vec![(5, "empty label".to_string())]);
    assert_eq!(p.lines, 7);
}

#[test]
fn hosts_lines() {
    let p = parse_str(
        b"127.0.0.1 localhost\n::1 localhost ip6-localhost\n0.0.0.0 0.0.0.0\n0.0.0.0 a.example b.example\t# c\n:: c.example\n255.255.255.255 broadcasthost\n0.0.0.0\tD.example\n",
        ListFormat::Hosts,
    );
    assert_eq!(p.entries, 4);
    assert_eq!(p.bad_lines, 0);
    assert_eq!(has(&p, "a.example", Kind::Subtree, Act::Block), Some(4));
    assert_eq!(has(&p, "b.example", Kind::Subtree, Act::Block), Some(4));
    assert_eq!(has(&p, "c.example", Kind::Subtree, Act::Block), Some(5));
    assert_eq!(has(&p, "d.example", Kind::Subtree, Act::Block), Some(7));
    // explicit hosts format rejects a bare name
    let p = parse_str(b"x.example\n", ListFormat::Hosts);
    assert_eq!((p.entries, p.bad_lines), (0, 1));
}

#[test]
fn adblock_lines() {
    let p = parse_str(
        b"[Adblock Plus 2.0]\n! c\n||ads.example^\n@@||good.ads.example^\n||opt.example^$important\nexample.com##.banner\n||path.example/ads/*\n/regex[0-9]+/\n||x*y.example^\n||t.example^$badfilter\n",
        ListFormat::Auto,
    );
    assert_eq!(has(&p, "ads.example", Kind::Subtree, Act::Block), Some(3));
    assert_eq!(
        has(&p, "good.ads.example", Kind::Subtree, Act::Allow),
        Some(4)
    );
    assert_eq!(has(&p, "opt.example", Kind::Subtree, Act::Block), Some(5));
    assert_eq!(p.entries, 3);
    assert_eq!(p.bad_lines, 5);
    let bad: Vec<u32> = p.first_bad.iter().map(|b| b.0).collect();
    assert_eq!(bad, vec![6, 7, 8, 9, 10]);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("adblock $options ignored: 1 line(s), first at line 5")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn wildcard_lines() {
    let p = parse_str(
        b"*.wc.example\nbare.example\n*bad.example\n",
        ListFormat::Wildcard,
    );
    assert_eq!(has(&p, "wc.example", Kind::Subtree, Act::Block), Some(1));
    assert_eq!(has(&p, "bare.example", Kind::Subtree, Act::Block), Some(2));
    assert_eq!(p.bad_lines, 1);
    // auto: the same
    let p = parse_str(b"*.wc.example\nbare.example\n", ListFormat::Auto);
    assert_eq!(has(&p, "wc.example", Kind::Subtree, Act::Block), Some(1));
    assert_eq!(has(&p, "bare.example", Kind::Subtree, Act::Block), Some(2));
}

#[test]
fn dnsmasq_lines() {
    let p = parse_str(
        b"address=/a.example/0.0.0.0\naddress=/b.example/\naddress=/c.example/#\nserver=/d.example/\nserver=/fwd.example/10.0.0.1\naddress=/e.example/f.example/::\nlocal=/g.example/\naddress=/bad/zzz\nconf-file=/x\n",
        ListFormat::Auto,
    );
    for (nm, l) in [
        ("a.example", 1),
        ("b.example", 2),
        ("c.example", 3),
        ("d.example", 4),
        ("e.example", 6),
        ("f.example", 6),
        ("g.example", 7),
    ] {
        assert_eq!(has(&p, nm, Kind::Subtree, Act::Block), Some(l), "{nm}");
    }
    assert!(has(&p, "fwd.example", Kind::Subtree, Act::Block).is_none());
    assert_eq!(p.entries, 7);
    assert_eq!(p.bad_lines, 2);
    assert_eq!(p.first_bad[0].0, 8);
    assert_eq!(p.first_bad[1].0, 9);
}

#[test]
fn unbound_lines() {
    let p = parse_str(
        b"server:\nlocal-zone: \"a.example.\" always_nxdomain\nlocal-zone: \"b.example\" refuse\nlocal-zone: c.example static\nlocal-zone: \"ok.a.example.\" transparent\nlocal-zone: \"d.example.\" always_null\nlocal-zone: \"e.example.\" bogus\nlocal-data: \"x.example A 1.2.3.4\"\n",
        ListFormat::Auto,
    );
    assert_eq!(has(&p, "a.example", Kind::Subtree, Act::Nxdomain), Some(2));
    assert_eq!(has(&p, "b.example", Kind::Subtree, Act::Refused), Some(3));
    assert_eq!(has(&p, "c.example", Kind::Subtree, Act::Block), Some(4));
    assert_eq!(has(&p, "ok.a.example", Kind::Subtree, Act::Allow), Some(5));
    assert_eq!(has(&p, "d.example", Kind::Subtree, Act::Block), Some(6));
    assert_eq!(p.entries, 5);
    assert_eq!(
        p.first_bad,
        vec![(7, "unsupported local-zone type \"bogus\"".to_string())]
    );
}

#[test]
fn ip_lines() {
    let p = parse_str(
        b"10.0.0.0/8\n192.0.2.1\n2001:db8::/32\n10.1.2.3/16\n300.1.1.1\n",
        ListFormat::Ip,
    );
    assert_eq!(p.ips.len(), 4);
    assert_eq!(p.ips[3].net.to_string(), "10.1.0.0/16");
    assert_eq!(p.bad_lines, 1);
    assert_eq!(p.first_bad[0].0, 5);
    assert!(p.warnings[0].starts_with("CIDR with host bits set"));
    // auto detects IP lines next to names
    let p = parse_str(b"198.51.100.0/24\nx.example\n", ListFormat::Auto);
    assert_eq!((p.ips.len(), p.names.len()), (1, 1));
}

#[test]
fn huge_line_and_binary_garbage_are_bad_lines() {
    let mut text = b"a.example\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 1 << 20)); // 1 MiB line
    text.extend(b"\nb.example\n\xff\xfe\x00\x01garbage\n\x80\x81\x82\nc.example");
    let p = parse_str(&text, ListFormat::Auto);
    assert_eq!(p.entries, 3);
    assert_eq!(p.bad_lines, 3);
    assert_eq!(
        p.first_bad[0],
        (2, format!("line longer than {MAX_LINE} bytes"))
    );
    assert_eq!(p.first_bad[1].0, 4);
    assert_eq!(p.first_bad[2], (5, "not UTF-8".to_string()));
    assert_eq!(has(&p, "c.example", Kind::Subtree, Act::Block), Some(6));
}

#[test]
fn line_exactly_at_limit_is_read() {
    // 4096 bytes: a name of 63-byte labels is invalid anyway, so use spaces + a name
    let mut l = vec![b' '; MAX_LINE - 9];
    l.extend(b"x.example");
    assert_eq!(l.len(), MAX_LINE);
    l.push(b'\n');
    let p = parse_str(&l, ListFormat::Auto);
    assert_eq!((p.entries, p.bad_lines), (1, 0));
}

#[test]
fn bad_lines_are_capped_in_report() {
    let text: String = (0..100).map(|i| format!("bad name {i}\n")).collect();
    let p = parse_str(text.as_bytes(), ListFormat::Auto);
    assert_eq!(p.bad_lines, 100);
    assert_eq!(p.first_bad.len(), MAX_FIRST_BAD);
    assert_eq!(p.first_bad[19].0, 20);
}

#[test]
fn file_level_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.txt");
    assert!(matches!(
        parse_list_file(&spec(&missing, ListFormat::Auto, Category::Threat)),
        Err(ListError::Open { .. })
    ));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    let p = parse_list_file(&spec(&empty, ListFormat::Auto, Category::Threat)).unwrap();
    assert_eq!((p.entries, p.bad_lines, p.lines), (0, 0, 0));
    let gz = dir.path().join("list.gz");
    std::fs::write(&gz, b"\x1f\x8b\x08\x00garbage").unwrap();
    assert!(matches!(
        parse_list_file(&spec(&gz, ListFormat::Auto, Category::Threat)),
        Err(ListError::NotText { .. })
    ));
    let bin = dir.path().join("bin.txt");
    let junk: Vec<u8> = (0..4000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8 | 0x80)
        .collect();
    std::fs::write(&bin, &junk).unwrap();
    assert!(matches!(
        parse_list_file(&spec(&bin, ListFormat::Auto, Category::Threat)),
        Err(ListError::NotText { .. })
    ));
    let html = dir.path().join("page.txt");
    std::fs::write(
        &html,
        b"<html>\n<body>503 Service Unavailable</body>\n</html>\n",
    )
    .unwrap();
    match parse_list_file(&spec(&html, ListFormat::Auto, Category::Threat)) {
        Err(ListError::NothingValid {
            bad_lines,
            first_line,
            ..
        }) => assert_eq!((bad_lines, first_line), (3, 1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn allow_category_forces_allow() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("allow.txt");
    std::fs::write(&f, b"fp.example\n0.0.0.0 fp2.example\n").unwrap();
    let p = parse_list_file(&spec(&f, ListFormat::Auto, Category::Allow)).unwrap();
    assert_eq!(p.names.len(), 2);
    assert!(p.names.iter().all(|e| e.act == Act::Allow));
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/policy/testdata")
        .join(name)
}

/// Real-list excerpts (hagezi 2022 snapshots): every non-comment line is a rule.
#[test]
fn real_list_excerpts() {
    let cases = [
        (
            "stevenblack.domains.txt",
            ListFormat::Auto,
            "0.0.0.0.beeglivesex.com",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "adblock-light.txt",
            ListFormat::Auto,
            "000free.us",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "dnsmasq-personal.txt",
            ListFormat::Auto,
            "01c54544-2.we-stats.com",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "hosts-fake.txt",
            ListFormat::Auto,
            "10xcryptotrade.uk",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "unbound-fake.blacklist.conf",
            ListFormat::Auto,
            "11trikots.com",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "wildcard-light.txt",
            ListFormat::Auto,
            "000123456789.online",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "wildcard-light.txt",
            ListFormat::Wildcard,
            "000123456789.online",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "hosts-fake.txt",
            ListFormat::Hosts,
            "10xcryptotrade.uk",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "adblock-light.txt",
            ListFormat::Adblock,
            "000free.us",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "dnsmasq-personal.txt",
            ListFormat::Dnsmasq,
            "01c54544-2.we-stats.com",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "unbound-fake.blacklist.conf",
            ListFormat::Unbound,
            "11trikots.com",
            Kind::Subtree,
            Act::Block,
        ),
        (
            "stevenblack.domains.txt",
            ListFormat::Plain,
            "0.0.0.0.beeglivesex.com",
            Kind::Subtree,
            Act::Block,
        ),
    ];
    for (file, fmt, name, kind, act) in cases {
        let path = testdata(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let rules = text
            .lines()
            .filter(|l| {
                let t = l.trim();
                !t.is_empty() && !t.starts_with('#') && !t.starts_with('!') && t != "server:"
            })
            .count();
        let p = parse_list_file(&spec(&path, fmt, Category::Threat)).unwrap();
        assert_eq!(p.bad_lines, 0, "{file}: {:?}", p.first_bad);
        assert_eq!(p.entries, rules, "{file} {fmt:?}");
        assert!(rules >= 10, "{file}");
        assert!(has(&p, name, kind, act).is_some(), "{file} {fmt:?}: {name}");
    }
}
