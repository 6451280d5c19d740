//! Tests of the query log front (config, privacy, emit and the sinks' queues); `testutil`
//! builds events for the sinks' own tests.

pub(crate) mod testutil {
    use super::super::*;

    pub fn event(qname: &str, action: EventAction) -> QueryEvent {
        QueryEvent {
            ts_us: 1_714_564_800_123_456,
            client: "192.0.2.77:53001".parse().unwrap(),
            transport: Transport::Udp,
            qname: qname.into(),
            qtype: "A".into(),
            rcode: if action == EventAction::Blocked {
                "NXDOMAIN".into()
            } else {
                "NOERROR".into()
            },
            action,
            category: (action == EventAction::Blocked).then(|| "malware".into()),
            list: (action == EventAction::Blocked).then(|| "threat-feed".into()),
            rule: (action == EventAction::Blocked).then(|| "*.evil.example".to_string()),
            trigger: (action == EventAction::Blocked).then_some(Trigger::Qname),
            cached: action == EventAction::Allowed,
            answers: if action == EventAction::Allowed {
                vec![
                    "198.51.100.7".parse().unwrap(),
                    "2001:db8::7".parse().unwrap(),
                ]
                .into()
            } else {
                Answers::default()
            },
            latency_us: 1234,
            server: Arc::from("edge-1"),
            client_name: None,
            group: None,
            query_wire: None,
            response_wire: None,
        }
    }

    pub fn logged(ev: QueryEvent) -> LoggedEvent {
        let client = Privacy::Full.apply(ev.client);
        LoggedEvent { ev, client }
    }

    /// The events as the one batch a sink gets.
    pub fn batch(evs: &[LoggedEvent]) -> Vec<bus::Queued> {
        vec![bus::Queued::new(Arc::new(evs.to_vec()))]
    }
}

mod cases {
    use std::net::IpAddr;
    use std::path::Path;

    use super::super::*;
    use super::testutil::*;

    fn cfg_toml(s: &str) -> Result<QueryLogConfig, serde_json::Error> {
        // minimal TOML-free check: serde_json stands in for the config deserializer here
        serde_json::from_str(s)
    }

    #[test]
    fn config_defaults_and_unknown_fields() {
        let c = cfg_toml(r#"{"sqlite": "/tmp/q.db"}"#).unwrap();
        assert!(c.log_allowed);
        assert_eq!(c.jsonl_max_size_mb, 100);
        assert_eq!(c.jsonl_keep, 5);
        assert_eq!(c.queue_size, 131_072);
        assert_eq!(c.client_ip, ClientIpMode::Full);
        assert!(c.validate().is_empty());
        let e = cfg_toml(r#"{"sqlite": "/tmp/q.db", "sqllite": 1}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `sqllite`"), "{e}");
        let c = cfg_toml(r#"{"client_ip": "truncate", "log_allowed": false}"#).unwrap();
        assert_eq!(c.client_ip, ClientIpMode::Truncate);
        assert!(!c.log_allowed);
    }

    #[test]
    fn validate_reports_every_problem() {
        let c = QueryLogConfig {
            sqlite: Some("/x/q".into()),
            jsonl: Some("/x/q".into()),
            dnstap: Some("udp:1.2.3.4:6000".into()),
            retention_days: Some(0),
            max_size_mb: Some(0),
            jsonl_max_size_mb: 0,
            queue_size: 1,
            sink_nice: 20,
            hash_key_file: Some("/k".into()),
            log_allowed: false,
            sqlite_log_allowed: Some(true),
            ..Default::default()
        };
        let p = c.validate();
        assert_eq!(p.len(), 9, "{p:#?}");
        assert!(
            p.iter()
                .any(|m| m == "querylog.sink_nice: 20 is outside 0..=19"),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.contains("sqlite_log_allowed = true needs log_allowed = true")),
            "{p:#?}"
        );
        assert!(
            p.iter()
                .any(|m| m.starts_with("querylog.dnstap:") && m.contains("udp:1.2.3.4:6000")),
            "{p:#?}"
        );
        for bad in [
            "tcp:localhost:6000",
            "tcp:127.0.0.1",
            "unix:relative/sock",
            "unix:",
            "tcp:127.0.0.1:0",
        ] {
            let c = QueryLogConfig {
                dnstap: Some(bad.into()),
                ..Default::default()
            };
            assert_eq!(c.validate().len(), 1, "{bad} should be rejected");
        }
        for good in [
            "tcp:127.0.0.1:6000",
            "tcp:[::1]:6000",
            "unix:/run/dnstap.sock",
            "file:/var/log/d.tap",
        ] {
            let c = QueryLogConfig {
                dnstap: Some(good.into()),
                ..Default::default()
            };
            assert!(
                c.validate().is_empty(),
                "{good} should be accepted: {:?}",
                c.validate()
            );
        }
    }

    #[tokio::test]
    async fn start_rejects_bad_config_with_all_messages() {
        let c = QueryLogConfig {
            dnstap: Some("bogus".into()),
            queue_size: 0,
            ..Default::default()
        };
        let e = QueryLog::start(&c).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("querylog.dnstap") && msg.contains("querylog.queue_size"),
            "{msg}"
        );
    }

    #[test]
    fn truncation_masks_v4_24_and_v6_56() {
        assert_eq!(
            truncate_ip("192.0.2.77".parse().unwrap()),
            "192.0.2.0".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            truncate_ip("2001:db8:aaaa:bbcc:dddd::1".parse().unwrap()),
            "2001:db8:aaaa:bb00::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn privacy_modes() {
        let c: std::net::SocketAddr = "192.0.2.77:53001".parse().unwrap();
        assert_eq!(
            Privacy::Full.apply(c),
            ClientId::Addr {
                ip: c.ip(),
                port: Some(53001)
            }
        );
        assert_eq!(
            Privacy::Truncate.apply(c),
            ClientId::Addr {
                ip: "192.0.2.0".parse().unwrap(),
                port: None
            }
        );
        // v4-mapped v6 from a dual-stack socket is truncated as IPv4, not as a /56
        let mapped: std::net::SocketAddr = "[::ffff:192.0.2.77]:1".parse().unwrap();
        assert_eq!(Privacy::Truncate.apply(mapped).to_string(), "192.0.2.0");
        let h = Privacy::Hash { k0: 1, k1: 2 };
        let t1 = h.apply(c);
        let t2 = h.apply("192.0.2.77:9".parse().unwrap());
        let t3 = h.apply("192.0.2.78:53001".parse().unwrap());
        let other_key = Privacy::Hash { k0: 1, k1: 3 }.apply(c);
        assert!(matches!(t1, ClientId::Token(_)));
        assert_eq!(t1, t2, "same client, same token (port ignored)");
        assert_ne!(t1, t3);
        assert_ne!(t1, other_key, "the key matters");
        assert_eq!(h.apply(mapped), t1, "mapped form hashes like the IPv4 form");
        let s = t1.to_string();
        assert!(
            s.starts_with("h:") && s.len() == 18 && !s.contains("192"),
            "{s}"
        );
    }

    #[test]
    fn hash_key_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/key");
        let k1 = load_or_create_hash_key(&p).unwrap();
        let k2 = load_or_create_hash_key(&p).unwrap();
        assert_eq!(k1, k2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::write(&p, "zz").unwrap();
        assert!(load_or_create_hash_key(&p)
            .unwrap_err()
            .to_string()
            .contains("32 hexadecimal"));
        let c = QueryLogConfig {
            sqlite: Some("/var/db/dnsward/q.db".into()),
            ..Default::default()
        };
        assert_eq!(
            c.default_hash_key_path(),
            PathBuf::from("/var/db/dnsward/querylog.hashkey")
        );
    }

    #[tokio::test]
    async fn bad_explicit_hash_key_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "not a key").unwrap();
        let c = QueryLogConfig {
            jsonl: Some(dir.path().join("q.jsonl")),
            client_ip: ClientIpMode::Hash,
            hash_key_file: Some(key),
            ..Default::default()
        };
        assert!(matches!(
            QueryLog::start(&c).await,
            Err(QueryLogError::HashKey { .. })
        ));
    }

    fn read_db(p: &Path) -> Vec<LogRow> {
        let c = rusqlite::Connection::open(p).unwrap();
        let mut st = c
            .prepare(&format!(
                "SELECT {} FROM queries ORDER BY id",
                sinks::sqlite::COLUMNS
            ))
            .unwrap();
        st.query_map([], sinks::sqlite::row_to_logrow)
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn read_jsonl(p: &Path) -> Vec<LogRow> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The row for `ev` as recorded under a privacy mode that gives `client` and `port`.
    fn expected(ev: &QueryEvent, client: &str, port: Option<u16>) -> LogRow {
        let row = LogRow::from_logged(&LoggedEvent {
            ev: ev.clone(),
            client: ClientId::Token(0),
        });
        LogRow {
            client: client.to_string(),
            client_port: port,
            ..row
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emit_reaches_sqlite_and_jsonl_with_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            sqlite: Some(dir.path().join("db/q.db")),
            jsonl: Some(dir.path().join("q.jsonl")),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let mut blocked = event("c2.evil.example", EventAction::Blocked);
        blocked.transport = Transport::Doh;
        blocked.query_wire = Some(bytes::Bytes::from_static(b"wire"));
        let mut allowed = event("www.example.org", EventAction::Allowed);
        allowed.ts_us += 5;
        allowed.client = "[2001:db8::5]:40000".parse().unwrap();
        log.clone().emit(blocked.clone());
        log.emit(allowed.clone());
        log.shutdown().await;
        let want = vec![
            expected(&blocked, "192.0.2.77", Some(53001)),
            expected(&allowed, "2001:db8::5", Some(40000)),
        ];
        assert_eq!(read_db(cfg.sqlite.as_ref().unwrap()), want);
        assert_eq!(read_jsonl(cfg.jsonl.as_ref().unwrap()), want);
        for s in log.stats() {
            assert_eq!(
                (s.written, s.dropped, s.errors, s.queued),
                (2, 0, 0, 0),
                "{s:?}"
            );
        }
        assert_eq!(
            log.stats()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["sqlite", "jsonl"]
        );
        // after shutdown, emit still returns and counts
        log.emit(allowed);
        assert_eq!(log.stats()[0].dropped, 1);
    }

    #[tokio::test]
    async fn sinks_flush_within_a_second_without_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            jsonl: Some(dir.path().join("q.jsonl")),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("a.example", EventAction::Blocked));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(read_jsonl(cfg.jsonl.as_ref().unwrap()).len(), 1);
        log.shutdown().await;
    }

    #[tokio::test]
    async fn log_allowed_false_drops_allowed_only() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            jsonl: Some(dir.path().join("q.jsonl")),
            log_allowed: false,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("ok.example", EventAction::Allowed));
        log.emit(event("bad.example", EventAction::Blocked));
        let mut sf = event("broken.example", EventAction::Servfail);
        sf.rcode = "SERVFAIL".into();
        log.emit(sf);
        log.emit(event("ok2.example", EventAction::Allowed));
        log.shutdown().await;
        let names: Vec<String> = read_jsonl(cfg.jsonl.as_ref().unwrap())
            .into_iter()
            .map(|r| r.qname)
            .collect();
        assert_eq!(names, ["bad.example", "broken.example"]);
        assert_eq!(log.stats()[0].dropped, 0, "filtered events are not drops");
    }

    #[tokio::test]
    async fn privacy_modes_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let cfg = QueryLogConfig {
            sqlite: Some(db.clone()),
            client_ip: ClientIpMode::Hash,
            ..Default::default()
        };
        let mut tokens = Vec::new();
        for _ in 0..2 {
            // two runs: the generated key is reused, so tokens stay stable
            let log = QueryLog::start(&cfg).await.unwrap();
            log.emit(event("a.example", EventAction::Blocked));
            log.shutdown().await;
        }
        assert!(dir.path().join("querylog.hashkey").exists());
        for r in read_db(&db) {
            assert!(
                r.client.starts_with("h:") && r.client.len() == 18,
                "{}",
                r.client
            );
            assert_eq!(r.client_port, None);
            tokens.push(r.client);
        }
        assert_eq!(tokens.len(), 2);
        assert_eq!(tokens[0], tokens[1]);

        let cfg = QueryLogConfig {
            jsonl: Some(dir.path().join("t.jsonl")),
            client_ip: ClientIpMode::Truncate,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        log.emit(event("a.example", EventAction::Blocked));
        let mut e6 = event("b.example", EventAction::Blocked);
        e6.client = "[2001:db8:1:2ff:1::9]:5".parse().unwrap();
        log.emit(e6);
        log.shutdown().await;
        let rows = read_jsonl(cfg.jsonl.as_ref().unwrap());
        assert_eq!(
            (rows[0].client.as_str(), rows[0].client_port),
            ("192.0.2.0", None)
        );
        assert_eq!(
            (rows[1].client.as_str(), rows[1].client_port),
            ("2001:db8:1:200::", None)
        );
    }

    #[tokio::test]
    async fn unopenable_sinks_do_not_fail_start_and_count_drops() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let corrupt = dir.path().join("corrupt.db");
        std::fs::write(&corrupt, vec![0x55u8; 8192]).unwrap();
        let cfg = QueryLogConfig {
            sqlite: Some(corrupt.clone()),
            jsonl: Some(file.join("q.jsonl")), // parent is a file: cannot be created
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        for i in 0..10 {
            log.emit(event(&format!("n{i}.example"), EventAction::Blocked));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        log.shutdown().await;
        let st = log.stats();
        for s in &st {
            assert_eq!((s.written, s.dropped, s.queued), (0, 10, 0), "{s:?}");
            assert!(s.errors >= 1, "{s:?}");
        }
        assert!(
            st[0]
                .last_error
                .as_deref()
                .unwrap()
                .contains("not a database"),
            "{st:?}"
        );
        assert!(
            st[1].last_error.as_deref().unwrap().contains("plain-file"),
            "{st:?}"
        );
        assert_eq!(
            std::fs::read(&corrupt).unwrap(),
            vec![0x55u8; 8192],
            "a corrupt file is left alone"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn emit_never_waits_for_a_full_queue() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = QueryLogConfig {
            sqlite: Some(dir.path().join("q.db")),
            jsonl: Some(dir.path().join("q.jsonl")),
            queue_size: 16,
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let ev = event("flood.example", EventAction::Blocked);
        let t = std::time::Instant::now();
        for i in 0..100_000 {
            let mut e = ev.clone();
            e.ts_us += i;
            log.emit(e);
        }
        let took = t.elapsed();
        log.shutdown().await;
        for s in log.stats() {
            assert!(s.dropped > 0, "{s:?}");
            assert_eq!(
                s.written + s.dropped,
                100_000,
                "every event is written or counted: {s:?}"
            );
        }
        eprintln!("100k emits took {took:?}");
    }

    #[tokio::test]
    async fn skipped_allowed_events_are_not_counted_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        let cfg = QueryLogConfig {
            sqlite: Some(db.clone()),
            sqlite_log_allowed: Some(false),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        for (i, action) in [
            EventAction::Allowed,
            EventAction::Blocked,
            EventAction::Allowed,
        ]
        .into_iter()
        .enumerate()
        {
            log.emit(event(&format!("n{i}.example"), action));
        }
        log.shutdown().await;
        let s = &log.stats()[0];
        assert_eq!((s.written, s.skipped, s.dropped), (1, 2, 0), "{s:?}");
        assert_eq!(read_db(&db).len(), 1);
    }

    #[tokio::test]
    async fn retention_runs_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("q.db");
        {
            let mut c = sinks::sqlite::open_for_writing(&db).unwrap();
            let mut old = event("old.example", EventAction::Blocked);
            old.ts_us = crate::timefmt::now_us() - 3 * 86_400_000_000;
            sinks::sqlite::insert_batch(&mut c, &[testutil::logged(old)]).unwrap();
        }
        let cfg = QueryLogConfig {
            sqlite: Some(db.clone()),
            retention_days: Some(2),
            ..Default::default()
        };
        let log = QueryLog::start(&cfg).await.unwrap();
        let mut new = event("new.example", EventAction::Blocked);
        new.ts_us = crate::timefmt::now_us();
        log.emit(new);
        log.shutdown().await;
        let names: Vec<String> = read_db(&db).into_iter().map(|r| r.qname).collect();
        assert_eq!(names, ["new.example"]);
    }

    #[tokio::test]
    async fn disabled_and_sinkless_logs_accept_events() {
        let l = QueryLog::disabled();
        l.emit(event("a.example", EventAction::Allowed));
        assert!(l.stats().is_empty());
        l.shutdown().await;
        let l = QueryLog::start(&QueryLogConfig::default()).await.unwrap();
        assert!(!l.is_enabled());
        l.emit(event("a.example", EventAction::Blocked));
    }
}
