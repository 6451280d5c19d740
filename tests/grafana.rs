//! The Grafana dashboards shipped in packaging/grafana/ still match what dnsward exports: every
//! metric (and label) the Prometheus dashboard queries is registered in src/metrics.rs or one of
//! the other registries (feeds, RPZ), and every table and column the ClickHouse dashboard reads
//! is in packaging/clickhouse/schema.sql. With `clickhouse-server` installed, every ClickHouse
//! panel's query also runs against the schema as `dnsward logs init-clickhouse` creates it.

#[allow(dead_code)]
mod clickhouse_support;
mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde_json::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn dashboard(rel: &str) -> Value {
    serde_json::from_str(&read(rel)).unwrap_or_else(|e| panic!("{rel} is not JSON: {e}"))
}

/// Every query of a dashboard: the panels' targets' `field`, and the template variables'.
fn queries(d: &Value, field: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        assert!(p["title"].is_string() && p["gridPos"].is_object(), "{p}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{}: no query", p["title"]);
        for t in targets {
            out.push(t[field].as_str().expect(field).to_string());
        }
    }
    for v in d["templating"]["list"].as_array().unwrap() {
        if v["type"] == "query" {
            out.push(v["query"].as_str().unwrap().to_string());
        }
    }
    out
}

/// Identifier-like words of a text: (word, the next non-space character).
fn words(s: &str) -> Vec<(String, Option<char>)> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '.')
            {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            let next = chars[i..].iter().find(|c| !c.is_whitespace()).copied();
            out.push((w, next));
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The metric families of a registry source: `register("name", ...)` under its prefix.
fn registered(rel: &str, prefix: &str) -> Vec<String> {
    let src = read(rel);
    let mut names = Vec::new();
    let mut rest = src.as_str();
    while let Some(i) = rest.find("register(") {
        rest = &rest[i + "register(".len()..];
        let t = rest.trim_start();
        if let Some(t) = t.strip_prefix('"') {
            let name = &t[..t.find('"').unwrap()];
            names.push(format!("{prefix}_{name}"));
        }
    }
    assert!(!names.is_empty(), "{rel}: no metric found");
    names
}

/// Label names: the `pub` fields of the label structs (`...Label`/`...Labels`) of a source.
fn labels(rel: &str) -> Vec<String> {
    let src = read(rel);
    let mut out = Vec::new();
    for block in src.split("pub struct ").skip(1) {
        let name = block.split_whitespace().next().unwrap_or("");
        if !(name.ends_with("Label") || name.ends_with("Labels")) {
            continue;
        }
        let body = &block[block.find('{').unwrap() + 1..block.find('}').unwrap()];
        for line in body.lines() {
            if let Some(f) = line.trim().strip_prefix("pub ") {
                out.push(f.split(':').next().unwrap().trim().to_string());
            }
        }
    }
    out
}

#[test]
fn the_prometheus_dashboard_uses_only_metrics_and_labels_dnsward_exports() {
    let d = dashboard("packaging/grafana/dnsward-prometheus.json");
    let mut families: Vec<String> = registered("src/metrics.rs", "dnsward");
    families.extend(registered("src/rpzxfr/metrics.rs", "dnsward"));
    families.extend(registered("src/feeds/metrics.rs", "dnsward_feed"));
    let mut known_labels: BTreeSet<String> = ["instance", "job", "le"].map(String::from).into();
    for f in [
        "src/metrics.rs",
        "src/feeds/metrics.rs",
        "src/rpzxfr/metrics.rs",
    ] {
        known_labels.extend(labels(f));
    }
    let mut used = BTreeSet::new();
    for q in queries(&d, "expr") {
        // `{{label}}` legends are not in expr; `by (a, b)` and `{a="x"}` name labels.
        for (w, next) in words(&q) {
            if w.starts_with("dnsward_") {
                let family = ["_total", "_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        w.strip_suffix(s)
                            .filter(|b| families.iter().any(|f| f == b))
                    })
                    .unwrap_or(&w);
                assert!(
                    families.iter().any(|f| f == family),
                    "{w} is not a registered metric (in {q})"
                );
                used.insert(family.to_string());
            } else if matches!(next, Some('=' | '!')) {
                assert!(
                    known_labels.contains(&w),
                    "label {w} is not exported (in {q})"
                );
            }
        }
        for group in q.split("by (").skip(1) {
            for l in group[..group.find(')').unwrap()].split(',') {
                let l = l.trim();
                assert!(
                    known_labels.contains(l),
                    "label {l} is not exported (in {q})"
                );
            }
        }
    }
    // The dashboard covers the families that matter to an operator.
    for f in [
        "dnsward_queries",
        "dnsward_blocked",
        "dnsward_answer_latency_seconds",
        "dnsward_cache_hits",
        "dnsward_querylog_dropped",
        "dnsward_feed_age_seconds",
    ] {
        assert!(used.contains(f), "{f} is not on the dashboard");
    }
}

/// Tables of schema.sql (`dnsward.NAME`) and their columns (a view's: its SELECT list).
fn schema_columns() -> HashMap<String, BTreeSet<String>> {
    let sql = read("packaging/clickhouse/schema.sql");
    let sql: String = sql
        .lines()
        .map(|l| l.split("--").next().unwrap())
        .collect::<Vec<_>>()
        .join("\n");
    let mut tables = HashMap::new();
    for stmt in sql.split(';') {
        let Some(i) = stmt.find("dnsward.") else {
            continue;
        };
        if !stmt.contains("CREATE TABLE") && !stmt.contains("CREATE MATERIALIZED VIEW") {
            continue;
        }
        let name: String = stmt[i + 8..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let mut cols = BTreeSet::new();
        if stmt.contains("CREATE TABLE") {
            let body = &stmt[stmt.find('(').unwrap() + 1..stmt.find("ENGINE").unwrap()];
            for line in body.lines() {
                if let Some(c) = line.split_whitespace().next() {
                    if c.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        cols.insert(c.to_string());
                    }
                }
            }
        } else {
            let select = &stmt[stmt.find("AS SELECT").unwrap() + 9..stmt.rfind("FROM").unwrap()];
            for item in select.split(',') {
                let item = item.trim();
                let col = item.rsplit(" AS ").next().unwrap().trim();
                cols.insert(col.to_string());
            }
        }
        assert!(!cols.is_empty(), "{name}: no columns");
        tables.insert(name, cols);
    }
    tables
}

const SQL_WORDS: &[&str] = &[
    "SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "AS", "GROUP", "BY", "ORDER", "DESC",
    "ASC", "LIMIT", "HAVING", "DISTINCT", "INTERVAL", "DAY", "SECOND", "MINUTE", "HOUR",
];

#[test]
fn the_clickhouse_dashboard_reads_only_tables_and_columns_of_the_schema() {
    let d = dashboard("packaging/grafana/dnsward-clickhouse.json");
    let tables = schema_columns();
    assert!(
        tables["queries"].contains("qname") && tables["queries_minute_actions"].contains("queries")
    );
    let mut read_tables = BTreeSet::new();
    for q in queries(&d, "rawSql") {
        // string literals and Grafana's macros and variables are not columns
        let mut text = String::new();
        let mut in_str = false;
        for c in q.chars() {
            if c == '\'' {
                in_str = !in_str;
            } else if !in_str {
                text.push(c);
            }
        }
        let text = strip_grafana(&text);
        let ws = words(&text);
        let from: Vec<&str> = ws
            .iter()
            .filter_map(|(w, _)| w.strip_prefix("dnsward."))
            .collect();
        assert_eq!(from.len(), 1, "one table per query: {q}");
        let cols = tables
            .get(from[0])
            .unwrap_or_else(|| panic!("{} is not in schema.sql ({q})", from[0]));
        read_tables.insert(from[0].to_string());
        let aliases: BTreeSet<&str> = ws
            .windows(2)
            .filter(|p| p[0].0 == "AS")
            .map(|p| p[1].0.as_str())
            .collect();
        for (w, next) in &ws {
            let function = *next == Some('(');
            if function
                || w.starts_with("dnsward.")
                || SQL_WORDS.contains(&w.as_str())
                || aliases.contains(w.as_str())
            {
                continue;
            }
            assert!(cols.contains(w), "{w} is not a column of {} ({q})", from[0]);
        }
    }
    for t in [
        "queries",
        "queries_minute_actions",
        "queries_minute_qnames",
        "queries_minute_clients",
    ] {
        assert!(read_tables.contains(t), "the dashboard does not read {t}");
    }
}

/// Grafana's macros and variables as ClickHouse reads them for a check (and stripped of the
/// macro names for the column check): `$__timeFilter(c)` keeps its column.
fn strip_grafana(q: &str) -> String {
    q.replace("$__timeFilter", "")
        .replace("$__timeInterval", "")
        .replace("${instance:singlequote}", "")
}

/// What Grafana sends, for a ClickHouse of 18.16 or later.
fn expand(q: &str) -> String {
    let mut s = q.replace("${instance:singlequote}", "'edge-1'");
    for (macro_name, f) in [
        ("$__timeFilter(", "__tf("),
        ("$__timeInterval(", "toStartOfMinute("),
    ] {
        s = s.replace(macro_name, f);
    }
    // __tf(col) -> col >= now() - 86400
    while let Some(i) = s.find("__tf(") {
        let end = i + s[i..].find(')').unwrap();
        let col = s[i + 5..end].to_string();
        s.replace_range(i..=end, &format!("{col} >= now() - 86400"));
    }
    s
}

#[test]
fn every_clickhouse_panel_query_runs_against_the_schema() {
    let Some(ch) = clickhouse_support::ClickHouse::start() else {
        return;
    };
    for stmt in read("packaging/clickhouse/schema.sql")
        .lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .split(';')
        .filter(|s| !s.trim().is_empty())
    {
        // 18.16 (Debian): no TTL, IPv6 as FixedString(16), as `init-clickhouse` does there
        let stmt: String = stmt
            .lines()
            .filter(|l| !l.contains("TTL "))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("IPv6,", "FixedString(16),");
        let (status, body) = clickhouse_support::http_post(ch_port(&ch), LC, &stmt).unwrap();
        assert_eq!(status, 200, "{stmt}: {body}");
    }
    let d = dashboard("packaging/grafana/dnsward-clickhouse.json");
    for q in queries(&d, "rawSql") {
        let sql = expand(&q);
        let (status, body) = clickhouse_support::http_post(ch_port(&ch), LC, &sql).unwrap();
        assert_eq!(status, 200, "{sql}: {body}");
    }
}

/// ClickHouse 18.16 needs this for LowCardinality columns.
const LC: &str = "/?allow_experimental_low_cardinality_type=1";

fn ch_port(ch: &clickhouse_support::ClickHouse) -> u16 {
    ch.url().rsplit(':').next().unwrap().parse().unwrap()
}
