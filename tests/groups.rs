//! Per-client policy groups and named clients, through real sockets from several loopback
//! source addresses: 127.0.0.2 is "Finance dept, PC-17" in group `finance` (threat and
//! abandoned lists, blocked queries logged only), 127.0.0.3 is "SOC analyst" in group
//! `security` (no list), and 127.0.0.1 is nobody's (the default group: every list).

mod common;

use std::time::Duration;

use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const TOKEN: &str = "group-test-token-0123456789abcdef";
const FINANCE: &str = "127.0.0.2";
const SOC: &str = "127.0.0.3";
const NOBODY: &str = "127.0.0.1";

fn groups_config(h: &Hierarchy) -> String {
    let dir = h.dir.path();
    std::fs::write(dir.join("threat.txt"), "www.example.com\n").unwrap();
    std::fs::write(dir.join("abandoned.txt"), "old.example.com\n").unwrap();
    std::fs::write(dir.join("token"), TOKEN).unwrap();
    h.config_text("")
        + &format!(
            "[policy]\nwatch = false\n\n\
             [[lists]]\nname = \"threat\"\ncategory = \"threat\"\npath = \"threat.txt\"\n\n\
             [[lists]]\nname = \"abandoned\"\ncategory = \"abandoned\"\npath = \"abandoned.txt\"\n\n\
             [[clients]]\nname = \"Finance dept, PC-17\"\ncidr = \"{FINANCE}\"\ngroup = \"finance\"\n\n\
             [[clients]]\nname = \"SOC analyst\"\ncidr = \"{SOC}/32\"\n\n\
             [[groups]]\nname = \"finance\"\nlists = [\"threat\", \"abandoned\"]\nlog = \"blocked\"\n\n\
             [[groups]]\nname = \"security\"\nclients = [\"{SOC}\"]\nlists = []\n\n\
             [querylog]\nsqlite = \"log.db\"\njsonl = \"log.jsonl\"\n\n\
             [admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"token\"\nruntime_list = \"runtime.txt\"\n"
        )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_name_blocked_for_one_group_answered_for_another_and_logged_by_name() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let d = start_dnsward_text(&groups_config(&h), dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());

    // The same name: blocked for finance and for the default group, answered for security.
    assert_eq!(
        rcode_from(FINANCE, dns, "www.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    let soc = ask_from(SOC, dns, "www.example.com.", RecordType::A).await;
    assert_eq!(answer_strings(&soc), vec!["A 192.0.2.10"]);
    assert_eq!(
        rcode_from(NOBODY, dns, "www.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    // An allowed query from finance: answered, and (log = "blocked") not logged.
    assert_eq!(
        answer_strings(&ask_from(FINANCE, dns, "mail.example.com.", RecordType::A).await),
        vec!["A 192.0.2.25"]
    );
    assert_eq!(
        rcode_from(FINANCE, dns, "old.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );

    // JSON lines: 2 finance blocks, 1 security answer, 1 default block; no finance allowed row.
    let rows = read_jsonl(&dir.join("log.jsonl"), 4);
    std::thread::sleep(Duration::from_millis(600)); // a late (wrong) row would show up here
    let rows = if rows.len() > 4 {
        rows
    } else {
        read_jsonl(&dir.join("log.jsonl"), 4)
    };
    assert_eq!(rows.len(), 4, "{rows:#?}");
    let from = |ip: &str| {
        rows.iter()
            .filter(|r| r["client"] == ip)
            .collect::<Vec<_>>()
    };
    let fin = from(FINANCE);
    assert_eq!(fin.len(), 2, "{rows:#?}");
    assert!(fin.iter().all(|r| r["action"] == "blocked"
        && r["client_name"] == "Finance dept, PC-17"
        && r["group"] == "finance"));
    let soc_rows = from(SOC);
    assert_eq!(soc_rows.len(), 1);
    assert_eq!(soc_rows[0]["action"], "allowed");
    assert_eq!(soc_rows[0]["client_name"], "SOC analyst");
    assert_eq!(soc_rows[0]["group"], "security");
    let nobody = from(NOBODY);
    assert_eq!(nobody[0]["group"], "default");
    assert!(nobody[0]["client_name"].is_null());

    // SQLite, through `dnsward logs`: the name in the table, filters by name and group.
    let config = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .unwrap();
    let mut table = String::new();
    for _ in 0..50 {
        table = logs_ok(&config, &["tail"]);
        if table.lines().count() >= 5 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(table.lines().next().unwrap().contains("NAME"), "{table}");
    assert!(
        table.contains("Finance dept, PC-17") && table.contains("SOC analyst"),
        "{table}"
    );
    let fin: Vec<Value> = logs_ok(&config, &["tail", "--json", "--group", "finance"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(fin.len(), 2);
    assert!(fin
        .iter()
        .all(|r| r["action"] == "blocked" && r["client_name"] == "Finance dept, PC-17"));
    let by_name = logs_ok(&config, &["tail", "--json", "--client-name", "SOC analyst"]);
    assert_eq!(by_name.lines().count(), 1, "{by_name}");
    let top: Value =
        serde_json::from_str(&logs_ok(&config, &["top", "--json", "--group", "finance"])).unwrap();
    assert_eq!(top["queries"], 2);
    assert_eq!(top["blocked"], 2);
    assert_eq!(top["clients"][0]["client_name"], "Finance dept, PC-17");
    let sec: Value =
        serde_json::from_str(&logs_ok(&config, &["top", "--json", "--group", "security"])).unwrap();
    assert_eq!(
        (sec["queries"].as_u64(), sec["blocked"].as_u64()),
        (Some(1), Some(0))
    );
    let suspicious: Value = serde_json::from_str(&logs_ok(
        &config,
        &[
            "clients",
            "--json",
            "--min-blocked",
            "1",
            "--group",
            "finance",
        ],
    ))
    .unwrap();
    assert_eq!(suspicious.as_array().unwrap().len(), 1);
    assert_eq!(suspicious[0]["client_name"], "Finance dept, PC-17");
    let csv = logs_ok(&config, &["export", "--format", "csv"]);
    assert!(csv.lines().next().unwrap().ends_with(",client_name,group"));
    assert!(csv.contains(",\"Finance dept, PC-17\",finance"), "{csv}");

    // Metrics: per group, never per client.
    let (_, metrics) = http(admin, "GET", "/metrics", None, None).await;
    assert!(
        metrics.contains("dnsward_group_queries_total{group=\"finance\",action=\"blocked\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("dnsward_group_queries_total{group=\"finance\",action=\"allowed\"} 1"),
        "{metrics}"
    );
    assert!(!metrics.contains("PC-17"));
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtime_entries_scoped_explain_per_client_and_reload_keeps_groups() {
    let h = Hierarchy::start("").await;
    let dir = h.dir.path();
    let d = start_dnsward_text(&groups_config(&h), dir).await;
    let (dns, admin) = (d.addrs()[0], d.admin_addr().unwrap());

    // A runtime entry for security only.
    let body =
        r#"{"name":"www.other.net","added_by":"SOC lead","reason":"exercise","group":"security"}"#;
    let (status, created) =
        http(admin, "POST", "/api/lists/runtime", Some(TOKEN), Some(body)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        rcode_from(SOC, dns, "www.other.net.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    assert_eq!(
        answer_strings(&ask_from(FINANCE, dns, "www.other.net.", RecordType::A).await),
        vec!["A 192.0.2.20"]
    );
    assert_eq!(
        answer_strings(&ask_from(NOBODY, dns, "www.other.net.", RecordType::A).await),
        vec!["A 192.0.2.20"]
    );
    // A group that does not exist: refused with a reason.
    let (status, err) = http(
        admin,
        "POST",
        "/api/lists/runtime",
        Some(TOKEN),
        Some(r#"{"name":"x.example","added_by":"a","group":"nosuch"}"#),
    )
    .await;
    assert_eq!(status, 400, "{err}");
    assert!(err.contains("nosuch"), "{err}");
    // An entry for every group reaches security too, whose own lists are empty.
    let body = r#"{"name":"mail.example.com","added_by":"SOC lead"}"#;
    assert_eq!(
        http(admin, "POST", "/api/lists/runtime", Some(TOKEN), Some(body))
            .await
            .0,
        201
    );
    assert_eq!(
        rcode_from(SOC, dns, "mail.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    assert_eq!(
        rcode_from(FINANCE, dns, "mail.example.com.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    let (_, list) = http(admin, "GET", "/api/lists/runtime", Some(TOKEN), None).await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let scoped: Vec<&Value> = list["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["group"] == "security")
        .collect();
    assert_eq!(scoped.len(), 1);
    assert!(std::fs::read_to_string(dir.join("runtime@security.txt"))
        .unwrap()
        .contains("www.other.net # dnsward-runtime"));
    // Removing the scoped entry needs its group.
    assert_eq!(
        http(
            admin,
            "DELETE",
            "/api/lists/runtime/www.other.net",
            Some(TOKEN),
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(
        http(
            admin,
            "DELETE",
            "/api/lists/runtime/www.other.net?group=security",
            Some(TOKEN),
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        answer_strings(&ask_from(SOC, dns, "www.other.net.", RecordType::A).await),
        vec!["A 192.0.2.20"]
    );

    // Explain for a client, through the API and the CLI.
    let (_, ex) = http(
        admin,
        "GET",
        "/api/explain?name=www.example.com&client=127.0.0.2",
        Some(TOKEN),
        None,
    )
    .await;
    let ex: Value = serde_json::from_str(&ex).unwrap();
    assert_eq!(ex["blocked"], true);
    assert_eq!(ex["client"]["group"], "finance");
    assert_eq!(ex["client"]["name"], "Finance dept, PC-17");
    let (_, ex) = http(
        admin,
        "GET",
        "/api/explain?name=www.example.com&client=127.0.0.3",
        Some(TOKEN),
        None,
    )
    .await;
    let ex: Value = serde_json::from_str(&ex).unwrap();
    assert_eq!(ex["blocked"], false, "{ex}");
    assert_eq!(ex["rules"].as_array().unwrap().len(), 0);
    let config = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "toml"))
        .unwrap();
    let explain =
        |client: &str| dnsward_cmd("explain", &config, &["www.example.com", "--client", client]);
    let fin = explain(FINANCE);
    let text = String::from_utf8_lossy(&fin.stdout);
    assert_eq!(fin.status.code(), Some(1), "{text}");
    assert!(
        text.contains("client 127.0.0.2 (Finance dept, PC-17): group \"finance\"")
            && text.contains("list \"threat\""),
        "{text}"
    );
    let soc = explain(SOC);
    let text = String::from_utf8_lossy(&soc.stdout);
    assert_eq!(soc.status.code(), Some(0), "{text}");
    assert!(
        text.contains("group \"security\"") && text.contains("allowed"),
        "{text}"
    );

    // Reloads while both groups query: every answer matches the asker's group, before,
    // during and after; a name added by the reload applies to the groups that have the list.
    std::fs::write(dir.join("threat.txt"), "www.example.com\nwww.other.net\n").unwrap();
    let askers = [FINANCE, SOC].map(|who| {
        tokio::spawn(async move {
            for _ in 0..40 {
                let rc = rcode_from(who, dns, "www.example.com.", RecordType::A).await;
                let want = if who == FINANCE {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                assert_eq!(rc, want, "{who} during reloads");
            }
        })
    });
    for _ in 0..8 {
        assert_eq!(
            http(admin, "POST", "/api/reload", Some(TOKEN), None)
                .await
                .0,
            200
        );
    }
    for a in askers {
        a.await.unwrap();
    }
    assert_eq!(
        rcode_from(FINANCE, dns, "www.other.net.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    assert_eq!(
        answer_strings(&ask_from(SOC, dns, "www.other.net.", RecordType::A).await),
        vec!["A 192.0.2.20"]
    );
    assert_eq!(
        rcode_from(NOBODY, dns, "www.other.net.", RecordType::A).await,
        ResponseCode::NXDomain
    );
    d.shutdown().await;
}

#[test]
fn bad_group_config_named_with_lines_and_serve_refuses() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("t.txt"), "evil.example\n").unwrap();
    let text = "[[lists]]\nname = \"threat\"\ncategory = \"threat\"\npath = \"t.txt\"\n\n\
                [[clients]]\nname = \"PC\\u001b[31m-17\"\ncidr = \"10.2.3.17\"\n\n\
                [[groups]]\nname = \"finance\"\nclients = [\"10.2.0.0/16\"]\nlists = [\"threat\", \"family\"]\n\n\
                [[groups]]\nname = \"kids\"\nclients = [\"10.2.0.0/16\"]\n";
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, text).unwrap();
    let out = dnsward_cmd("check", &path, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let p = path.display();
    assert!(
        err.contains(&format!("{p}:7: clients[0].name: ")) && err.contains("control character"),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:13: groups[0].lists[1]: ")) && err.contains("\"family\""),
        "{err}"
    );
    assert!(
        err.contains(&format!("{p}:17: groups[1].clients[0]: "))
            && err.contains("claimed by group \"finance\""),
        "{err}"
    );
    let out = dnsward_cmd("serve", &path, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to start"));
}
