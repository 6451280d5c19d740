use super::*;
use std::path::PathBuf;

struct Lists {
    dir: tempfile::TempDir,
}

impl Lists {
    fn new() -> Self {
        Lists {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn write(&self, file: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        p
    }
    fn spec(&self, name: &str, file: &str, category: Category, format: ListFormat) -> ListSpec {
        ListSpec {
            name: name.into(),
            category,
            path: self.dir.path().join(file),
            format,
            action: None,
        }
    }
}

fn describe(v: &Verdict) -> String {
    let kind = match v {
        Verdict::Allow(_) => "allow".to_string(),
        Verdict::Block { action, .. } => format!("block:{action:?}"),
        Verdict::LocalData { records, .. } => format!("local:{}", records.len()),
        Verdict::Drop(_) => "drop".to_string(),
    };
    let r = v.rule();
    format!("{kind} {} {}:{}", r.trigger_name, r.list, r.line)
}

fn m(s: &Snapshot, q: &str) -> Option<String> {
    s.match_name(q).map(|v| describe(&v))
}

fn std_snapshot(l: &Lists) -> Snapshot {
    l.write("threat.txt", "evil.example\n0.0.0.0 Tracker.Example. other.example\n||ads.example^\n*.wild.example\ncdn.example\n");
    l.write("abandoned.txt", "old.example\ngood.cdn.example\n");
    l.write(
        "allow.txt",
        "# fix false positives\nok.evil.example\ncdn.example\n",
    );
    l.write(
        "ips.txt",
        "10.0.0.0/8\n10.1.0.0/16\n2001:db8::/32\n192.0.2.1\n",
    );
    l.write("ipallow.txt", "10.1.2.0/24\n");
    let specs = vec![
        l.spec("threat", "threat.txt", Category::Threat, ListFormat::Auto),
        l.spec(
            "abandoned",
            "abandoned.txt",
            Category::Abandoned,
            ListFormat::Auto,
        ),
        l.spec("allow", "allow.txt", Category::Allow, ListFormat::Auto),
        l.spec("ips", "ips.txt", Category::Threat, ListFormat::Ip),
        l.spec("ipallow", "ipallow.txt", Category::Allow, ListFormat::Auto),
    ];
    let (s, rep) = Snapshot::build(&specs, None);
    assert!(rep.all_fresh(), "{rep:?}");
    s
}

#[test]
fn name_matching_basics() {
    let l = Lists::new();
    let s = std_snapshot(&l);
    assert_eq!(
        m(&s, "evil.example").as_deref(),
        Some("block:None evil.example threat:1")
    );
    assert_eq!(
        m(&s, "WWW.Evil.Example.").as_deref(),
        Some("block:None evil.example threat:1")
    );
    assert_eq!(
        m(&s, "x.tracker.example").as_deref(),
        Some("block:None tracker.example threat:2")
    );
    assert_eq!(
        m(&s, "a.ads.example").as_deref(),
        Some("block:None ads.example threat:3")
    );
    // `*.x` in a block list covers x itself too (see parse.rs).
    assert_eq!(
        m(&s, "wild.example").as_deref(),
        Some("block:None wild.example threat:4")
    );
    assert_eq!(
        m(&s, "a.wild.example").as_deref(),
        Some("block:None wild.example threat:4")
    );
    assert_eq!(
        m(&s, "old.example").as_deref(),
        Some("block:None old.example abandoned:1")
    );
    assert_eq!(m(&s, "example"), None);
    assert_eq!(m(&s, "notevil.example"), None);
    assert_eq!(m(&s, ""), None);
    assert_eq!(m(&s, "."), None);
    assert_eq!(s.name_entries(), 10);
    assert_eq!(s.ip_entries(), 5);
    assert!(s.is_blocked("evil.example"));
    assert!(!s.is_blocked("ok.evil.example"));
}

#[test]
fn allow_beats_block_anywhere() {
    let l = Lists::new();
    let s = std_snapshot(&l);
    // allow more specific than the block
    assert_eq!(
        m(&s, "ok.evil.example").as_deref(),
        Some("allow ok.evil.example allow:2")
    );
    assert_eq!(
        m(&s, "a.b.ok.evil.example").as_deref(),
        Some("allow ok.evil.example allow:2")
    );
    // allow less specific than the block (good.cdn.example listed as abandoned)
    assert_eq!(
        m(&s, "good.cdn.example").as_deref(),
        Some("allow cdn.example allow:3")
    );
    // same name in a threat list and the allow list
    assert_eq!(
        m(&s, "cdn.example").as_deref(),
        Some("allow cdn.example allow:3")
    );
}

#[test]
fn deep_names_no_depth_cap() {
    let l = Lists::new();
    let s = std_snapshot(&l);
    let q12 = "l1.l2.l3.l4.l5.l6.l7.l8.l9.l10.evil.example";
    assert_eq!(q12.split('.').count(), 12);
    assert_eq!(
        m(&s, q12).as_deref(),
        Some("block:None evil.example threat:1")
    );
    // 120 labels (a 250-byte name) still matched
    let deep = format!("{}evil.example", "a.".repeat(119));
    assert!(deep.len() <= 253);
    assert_eq!(
        m(&s, &deep).as_deref(),
        Some("block:None evil.example threat:1")
    );
    // longer than a DNS name can be (heap path): still matched
    let huge = format!("{}evil.example", "ab.".repeat(200));
    assert_eq!(
        m(&s, &huge).as_deref(),
        Some("block:None evil.example threat:1")
    );
}

#[test]
fn most_specific_block_wins_and_explain_order() {
    let l = Lists::new();
    l.write("a.txt", "example.org\nsub.example.org\n");
    l.write("b.txt", "deep.sub.example.org\nexample.org\n");
    l.write("c.txt", "@@||x.deep.sub.example.org^\n");
    let specs = vec![
        l.spec("a", "a.txt", Category::Threat, ListFormat::Auto),
        l.spec("b", "b.txt", Category::Abandoned, ListFormat::Auto),
        l.spec("c", "c.txt", Category::Threat, ListFormat::Adblock),
    ];
    let (s, _) = Snapshot::build(&specs, None);
    assert_eq!(
        m(&s, "q.deep.sub.example.org").as_deref(),
        Some("block:None deep.sub.example.org b:1")
    );
    assert_eq!(
        m(&s, "q.sub.example.org").as_deref(),
        Some("block:None sub.example.org a:2")
    );
    // same specificity: list configured first wins
    assert_eq!(
        m(&s, "q.example.org").as_deref(),
        Some("block:None example.org a:1")
    );
    let ex: Vec<String> = s
        .explain_name("y.x.deep.sub.example.org")
        .iter()
        .map(describe)
        .collect();
    assert_eq!(
        ex,
        vec![
            "allow x.deep.sub.example.org c:1",
            "block:None deep.sub.example.org b:1",
            "block:None sub.example.org a:2",
            "block:None example.org a:1",
            "block:None example.org b:2",
        ]
    );
    assert_eq!(
        m(&s, "y.x.deep.sub.example.org").as_deref(),
        Some("allow x.deep.sub.example.org c:1")
    );
    assert!(s.explain_name("unrelated.test").is_empty());
}

#[test]
fn ip_matching_longest_prefix_and_allow() {
    let l = Lists::new();
    let s = std_snapshot(&l);
    let mi = |ip: &str| s.match_ip(ip.parse().unwrap()).map(|v| describe(&v));
    assert_eq!(
        mi("10.9.9.9").as_deref(),
        Some("block:None 10.0.0.0/8 ips:1")
    );
    assert_eq!(
        mi("10.1.9.9").as_deref(),
        Some("block:None 10.1.0.0/16 ips:2")
    );
    assert_eq!(
        mi("10.1.2.3").as_deref(),
        Some("allow 10.1.2.0/24 ipallow:1")
    );
    assert_eq!(
        mi("192.0.2.1").as_deref(),
        Some("block:None 192.0.2.1/32 ips:4")
    );
    assert_eq!(mi("192.0.2.2"), None);
    assert_eq!(
        mi("2001:db8::5").as_deref(),
        Some("block:None 2001:db8::/32 ips:3")
    );
    assert_eq!(mi("2001:db9::5"), None);
    let ex: Vec<String> = s
        .explain_ip("10.1.2.3".parse().unwrap())
        .iter()
        .map(describe)
        .collect();
    assert_eq!(
        ex,
        vec![
            "allow 10.1.2.0/24 ipallow:1",
            "block:None 10.1.0.0/16 ips:2",
            "block:None 10.0.0.0/8 ips:1"
        ]
    );
}

#[test]
fn list_action_override_and_unbound_actions() {
    let l = Lists::new();
    l.write("t.txt", "evil.example\n");
    l.write(
        "u.conf",
        "local-zone: \"nx.example.\" always_nxdomain\nlocal-zone: \"deny.example\" deny\n",
    );
    let mut a = l.spec("t", "t.txt", Category::Threat, ListFormat::Auto);
    a.action = Some(Action::Sinkhole);
    let u = l.spec("u", "u.conf", Category::Threat, ListFormat::Auto);
    let (s, _) = Snapshot::build(&[a, u.clone()], None);
    assert_eq!(
        m(&s, "evil.example").as_deref(),
        Some("block:Some(Sinkhole) evil.example t:1")
    );
    assert_eq!(
        m(&s, "nx.example").as_deref(),
        Some("block:Some(Nxdomain) nx.example u:1")
    );
    assert_eq!(
        m(&s, "deny.example").as_deref(),
        Some("drop deny.example u:2")
    );
    let mut u2 = u;
    u2.action = Some(Action::Refused);
    let (s, _) = Snapshot::build(&[u2], None);
    assert_eq!(
        m(&s, "nx.example").as_deref(),
        Some("block:Some(Refused) nx.example u:1")
    );
    assert_eq!(
        m(&s, "deny.example").as_deref(),
        Some("block:Some(Refused) deny.example u:2")
    );
}

#[test]
fn failed_list_keeps_previous_copy() {
    let l = Lists::new();
    l.write("t.txt", "evil.example\n");
    l.write("rpz.zone", "$ORIGIN rpz.\nlocal.example A 192.0.2.1\n");
    l.write("ip.txt", "10.0.0.0/8\n");
    let specs = vec![
        l.spec("t", "t.txt", Category::Threat, ListFormat::Auto),
        l.spec("z", "rpz.zone", Category::Threat, ListFormat::Auto),
        l.spec("ip", "ip.txt", Category::Threat, ListFormat::Auto),
    ];
    let (s1, _) = Snapshot::build(&specs, None);
    assert_eq!(s1.name_entries(), 2);
    // the threat list disappears, the zone becomes binary garbage; ip list reordered first
    std::fs::remove_file(l.dir.path().join("t.txt")).unwrap();
    std::fs::write(
        l.dir.path().join("rpz.zone"),
        [0xffu8, 0xfe, 0x00, 0x80].repeat(100),
    )
    .unwrap();
    let specs2 = vec![specs[2].clone(), specs[0].clone(), specs[1].clone()];
    let (s2, rep) = Snapshot::build(&specs2, Some(&s1));
    assert_eq!(rep.lists[0].kept_previous, None);
    let why = rep.lists[1].kept_previous.as_deref().unwrap();
    assert!(why.contains("cannot open"), "{why}");
    assert_eq!(rep.lists[1].entries, 1);
    assert!(rep.lists[2]
        .kept_previous
        .as_deref()
        .unwrap()
        .contains("does not look like a text list"));
    assert!(!rep.all_fresh());
    assert_eq!(
        m(&s2, "a.evil.example").as_deref(),
        Some("block:None evil.example t:1")
    );
    assert_eq!(
        m(&s2, "local.example").as_deref(),
        Some("local:1 local.example z:2")
    );
    assert!(s2.match_ip("10.0.0.1".parse().unwrap()).is_some());
    // without a previous snapshot: error, nothing kept
    let (s3, rep) = Snapshot::build(&specs2, None);
    assert!(rep.lists[1].error.is_some() && rep.lists[1].kept_previous.is_none());
    assert_eq!(m(&s3, "evil.example"), None);
    // an empty file is a valid, empty list (not a failure)
    std::fs::write(l.dir.path().join("t.txt"), "").unwrap();
    let (s4, rep) = Snapshot::build(&specs2, Some(&s2));
    assert_eq!(rep.lists[1].error, None);
    assert_eq!(rep.lists[1].entries, 0);
    assert_eq!(m(&s4, "evil.example"), None);
    assert_eq!(
        m(&s4, "local.example").as_deref(),
        Some("local:1 local.example z:2")
    );
}

#[test]
fn rpz_semantics() {
    let l = Lists::new();
    l.write(
        "policy.rpz",
        "$TTL 60\n@ SOA ns.rpz. admin.rpz. 1 3600 600 86400 60\n  NS ns.rpz.\n$ORIGIN policy.rpz.\n\
         exact.example CNAME .\n\
         *.wild.example CNAME *.\n\
         both.example CNAME .\n\
         *.both.example CNAME rpz-drop.\n\
         ok.both.example CNAME rpz-passthru.\n\
         *.pt.example CNAME rpz-passthru.\n\
         blocked.pt.example CNAME .\n\
         walled.example A 192.0.2.10\n\
         walled.example AAAA 2001:db8::10\n\
         walled.example TXT \"blocked by policy\"\n\
         redir.example CNAME garden.example.\n\
         32.10.2.0.192.rpz-ip CNAME .\n\
         24.0.2.0.192.rpz-ip A 198.51.100.7\n\
         128.1.zz.db8.2001.rpz-ip CNAME rpz-drop.\n",
    );
    l.write("plain.txt", "exact.example\n");
    let rpz = l.spec("rpz", "policy.rpz", Category::Threat, ListFormat::Auto);
    let (s, rep) = Snapshot::build(std::slice::from_ref(&rpz), None);
    assert_eq!(rep.lists[0].format, ListFormat::Rpz);
    assert_eq!(rep.lists[0].bad_lines, 0, "{:?}", rep.lists[0].first_bad);
    // exact owner: itself only
    assert_eq!(
        m(&s, "exact.example").as_deref(),
        Some("block:Some(Nxdomain) exact.example rpz:5")
    );
    assert_eq!(m(&s, "sub.exact.example"), None);
    // wildcard owner: subdomains only
    assert_eq!(m(&s, "wild.example"), None);
    assert_eq!(
        m(&s, "a.b.wild.example").as_deref(),
        Some("block:Some(Nodata) *.wild.example rpz:6")
    );
    // both
    assert_eq!(
        m(&s, "both.example").as_deref(),
        Some("block:Some(Nxdomain) both.example rpz:7")
    );
    assert_eq!(
        m(&s, "x.both.example").as_deref(),
        Some("drop *.both.example rpz:8")
    );
    // passthru wins, exact or wildcard
    assert_eq!(
        m(&s, "ok.both.example").as_deref(),
        Some("allow ok.both.example rpz:9")
    );
    assert_eq!(
        m(&s, "blocked.pt.example").as_deref(),
        Some("allow *.pt.example rpz:10")
    );
    // local data, grouped
    match s.match_name("WALLED.example.").unwrap() {
        Verdict::LocalData { rule, records } => {
            assert_eq!(rule.line, 12);
            assert_eq!(
                &records[..],
                &[
                    LocalRecord::A("192.0.2.10".parse().unwrap()),
                    LocalRecord::Aaaa("2001:db8::10".parse().unwrap()),
                    LocalRecord::Txt("blocked by policy".into())
                ]
            );
            assert_eq!(rule.rule_text().unwrap(), "walled.example A 192.0.2.10");
        }
        other => panic!("{other:?}"),
    }
    match s.match_name("redir.example").unwrap() {
        Verdict::LocalData { records, .. } => {
            assert_eq!(&records[..], &[LocalRecord::Cname("garden.example".into())])
        }
        other => panic!("{other:?}"),
    }
    // rpz-ip triggers
    let mi = |ip: &str| s.match_ip(ip.parse().unwrap()).map(|v| describe(&v));
    assert_eq!(
        mi("192.0.2.10").as_deref(),
        Some("block:Some(Nxdomain) 192.0.2.10/32 rpz:16")
    );
    assert_eq!(
        mi("192.0.2.11").as_deref(),
        Some("local:1 192.0.2.0/24 rpz:17")
    );
    assert_eq!(
        mi("2001:db8::1").as_deref(),
        Some("drop 2001:db8::1/128 rpz:18")
    );
    assert_eq!(mi("2001:db8::2"), None);
    // a list action does not override RPZ's own actions
    let mut rpz2 = rpz;
    rpz2.action = Some(Action::Sinkhole);
    let plain = l.spec("plain", "plain.txt", Category::Threat, ListFormat::Auto);
    let (s, _) = Snapshot::build(&[rpz2, plain], None);
    assert_eq!(
        m(&s, "exact.example").as_deref(),
        Some("block:Some(Nxdomain) exact.example rpz:5")
    );
    // plain semantics for the same name in the plain list: subdomains blocked too
    assert_eq!(
        m(&s, "sub.exact.example").as_deref(),
        Some("block:None exact.example plain:1")
    );
}

#[test]
fn rpz_detected_by_soa_not_per_line() {
    let l = Lists::new();
    l.write(
        "feed.txt",
        "$TTL 300\n@ IN SOA a. b. 1 2 3 4 5\nx.example CNAME .\n",
    );
    l.write("mixed.txt", "y.example\nx.example CNAME .\n");
    let (s, rep) = Snapshot::build(
        &[
            l.spec("a", "feed.txt", Category::Threat, ListFormat::Auto),
            l.spec("b", "mixed.txt", Category::Threat, ListFormat::Auto),
        ],
        None,
    );
    assert_eq!(rep.lists[0].format, ListFormat::Rpz);
    assert_eq!(rep.lists[1].format, ListFormat::Auto);
    assert_eq!(rep.lists[1].bad_lines, 1);
    assert_eq!(rep.lists[1].first_bad[0].0, 2);
    assert_eq!(
        m(&s, "x.example").as_deref(),
        Some("block:Some(Nxdomain) x.example a:3")
    );
    assert_eq!(
        m(&s, "y.example").as_deref(),
        Some("block:None y.example b:1")
    );
}

#[test]
fn rule_text_rereads_the_line() {
    let l = Lists::new();
    let s = std_snapshot(&l);
    let v = s.match_name("a.tracker.example").unwrap();
    assert_eq!(
        v.rule().rule_text().unwrap(),
        "0.0.0.0 Tracker.Example. other.example"
    );
    assert_eq!(
        v.rule().file.as_ref(),
        l.dir.path().join("threat.txt").as_path()
    );
    let v = s.match_ip("10.1.9.9".parse().unwrap()).unwrap();
    assert_eq!(v.rule().rule_text().unwrap(), "10.1.0.0/16");
    let mut r = v.rule().clone();
    r.line = 99;
    assert_eq!(
        r.rule_text().unwrap_err().kind(),
        std::io::ErrorKind::UnexpectedEof
    );
}

#[test]
fn idn_query_and_list() {
    let l = Lists::new();
    l.write("idn.txt", "bücher.example\n");
    let (s, _) = Snapshot::build(
        &[l.spec("i", "idn.txt", Category::Threat, ListFormat::Auto)],
        None,
    );
    assert_eq!(
        m(&s, "www.xn--bcher-kva.example").as_deref(),
        Some("block:None xn--bcher-kva.example i:1")
    );
    assert_eq!(
        m(&s, "WWW.BÜCHER.example").as_deref(),
        Some("block:None xn--bcher-kva.example i:1")
    );
}

#[test]
fn groups_see_only_their_lists_and_take_their_action() {
    use crate::policy::groups::{ClientSpec, GroupSpec, GroupsSpec, LogMode};
    let l = Lists::new();
    l.write("threat.txt", "evil.example\nads.example\n");
    l.write("ads.txt", "ads.example\n");
    l.write("allow.txt", "ok.evil.example\n");
    l.write("ips.txt", "10.0.0.0/8\n");
    let mut ads = l.spec("ads", "ads.txt", Category::Threat, ListFormat::Auto);
    ads.action = Some(Action::Refused);
    let specs = vec![
        l.spec("threat", "threat.txt", Category::Threat, ListFormat::Auto),
        ads,
        l.spec("allow", "allow.txt", Category::Allow, ListFormat::Auto),
        l.spec("ips", "ips.txt", Category::Threat, ListFormat::Ip),
    ];
    let group = |name: &str, lists: &[&str], action| GroupSpec {
        name: name.into(),
        lists: Some(lists.iter().map(|s| s.to_string()).collect()),
        action,
        log: LogMode::All,
    };
    let spec = GroupsSpec {
        groups: vec![
            group("strict", &["threat", "ads"], Some(Action::Sinkhole)),
            group("open", &["allow"], None),
        ],
        clients: vec![
            ClientSpec {
                net: "192.0.2.0/24".parse().unwrap(),
                name: None,
                group: Some("strict".into()),
            },
            ClientSpec {
                net: "198.51.100.0/24".parse().unwrap(),
                name: None,
                group: Some("open".into()),
            },
        ],
    };
    let (s, _) = Snapshot::build_grouped(&specs, &spec, None);
    let strict = s.groups().lookup("192.0.2.9".parse().unwrap());
    let open = s.groups().lookup("198.51.100.9".parse().unwrap());
    let d = |who, q: &str| s.match_name_for(q, who).map(|v| describe(&v));
    // strict: no allow list, so ok.evil.example is blocked too; the group's action
    // replaces [policy] action, the list's own action still wins
    assert_eq!(
        d(strict, "ok.evil.example").as_deref(),
        Some("block:Some(Sinkhole) evil.example threat:1")
    );
    assert_eq!(
        d(strict, "ads.example").as_deref(),
        Some("block:Some(Sinkhole) ads.example threat:2")
    );
    assert!(s
        .explain_name_for("ads.example", strict)
        .iter()
        .any(|v| matches!(
            v,
            Verdict::Block {
                action: Some(Action::Refused),
                ..
            }
        )));
    // open: only the allow list
    assert_eq!(d(open, "evil.example"), None);
    assert_eq!(
        d(open, "ok.evil.example").as_deref(),
        Some("allow ok.evil.example allow:1")
    );
    assert!(!s.is_blocked_for("ads.example", open) && s.is_blocked_for("ads.example", strict));
    assert!(s.match_ip_for("10.1.1.1".parse().unwrap(), open).is_none());
    assert!(
        s.match_ip_for("10.1.1.1".parse().unwrap(), strict)
            .is_none(),
        "strict does not name the ip list"
    );
    // nobody's client: the default group, every list (allow wins), as without groups
    let nobody = s.groups().lookup("203.0.113.1".parse().unwrap());
    assert_eq!(
        d(nobody, "ok.evil.example").as_deref(),
        Some("allow ok.evil.example allow:1")
    );
    assert_eq!(d(nobody, "ads.example"), m(&s, "ads.example"));
    assert!(s.match_ip("10.1.1.1".parse().unwrap()).is_some());
    // the same table as without groups
    let (flat, _) = Snapshot::build(&specs, None);
    assert_eq!(flat.name_table_bytes(), s.name_table_bytes());
}

#[test]
fn snapshot_is_send_sync() {
    fn ok<T: Send + Sync>() {}
    ok::<Snapshot>();
    ok::<Verdict>();
    let s = Snapshot::empty();
    assert!(s.match_name("a.example").is_none());
    assert!(s.match_ip("10.0.0.1".parse().unwrap()).is_none());
    assert_eq!((s.name_entries(), s.ip_entries()), (0, 0));
}
