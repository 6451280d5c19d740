//! `top` and `clients` over ClickHouse: the same [`TopReport`] and [`SuspiciousClient`]
//! values as over SQLite, ties broken by the client's text as SQLite does.

use serde::Deserialize;

use super::clickhouse::{client_text, lit, none_if_empty, ChReader};
use super::store::{ClientsQuery, TopQuery};
use super::LogsError;
use super::{SuspiciousClient, TopCategory, TopClient, TopDomain, TopReport};
use crate::timefmt::format_ts;

impl ChReader {
    /// ` AND client_group = ... AND instance = ...` for the parts of a scope asked for.
    pub(super) fn scope_cond(group: Option<&str>, resolver: Option<&str>) -> String {
        let mut c = String::new();
        for (col, v) in [("client_group", group), ("instance", resolver)] {
            if let Some(v) = v {
                c.push_str(&format!(" AND {col} = {}", lit(v)));
            }
        }
        c
    }

    pub fn read_top(&self, q: &TopQuery) -> Result<TopReport, LogsError> {
        let (since, now, limit, group) = (q.since, q.until, q.limit, q.group.as_deref());
        let t = self.table();
        let gc = Self::scope_cond(group, q.resolver.as_deref());
        let tc = Self::time_conds(Some(since), Some(now)).join(" AND ");
        let blocked = format!("action = 'blocked' AND {tc}{gc}");
        #[derive(Deserialize)]
        struct Totals {
            q: u64,
            b: u64,
        }
        let mut totals = Totals { q: 0, b: 0 };
        self.stream(
            &format!(
                "SELECT count() AS q, countIf(action = 'blocked') AS b FROM {t} WHERE {tc}{gc}"
            ),
            |r: Totals| {
                totals = r;
                Ok(())
            },
        )?;
        let domains = self.top_domains(&blocked, limit)?;
        let clients = self.top_clients(&blocked, limit)?;
        let categories = self.top_categories(&blocked, limit)?;
        Ok(TopReport {
            since: format_ts(since, 0),
            until: format_ts(now, 0),
            group: group.map(str::to_string),
            queries: totals.q,
            blocked: totals.b,
            domains,
            clients,
            categories,
        })
    }

    /// `top`'s domains over the blocked rows `blocked` selects.
    fn top_domains(&self, blocked: &str, limit: usize) -> Result<Vec<TopDomain>, LogsError> {
        let t = self.table();
        #[derive(Deserialize)]
        struct D {
            qname: String,
            n: u64,
            c: u64,
            category: String,
        }
        let mut domains = Vec::new();
        self.stream(
            &format!(
                "SELECT qname, count() AS n, uniqExact(client, client_hash) AS c, max(category) AS category
                 FROM {t} WHERE {blocked} GROUP BY qname ORDER BY n DESC, qname LIMIT {limit}"
            ),
            |r: D| {
                domains.push(TopDomain {
                    qname: r.qname,
                    blocked: r.n,
                    clients: r.c,
                    category: none_if_empty(r.category),
                });
                Ok(())
            },
        )?;
        Ok(domains)
    }

    /// `top`'s clients over the blocked rows `blocked` selects.
    fn top_clients(&self, blocked: &str, limit: usize) -> Result<Vec<TopClient>, LogsError> {
        let t = self.table();
        #[derive(Deserialize)]
        struct C {
            client_text: String,
            client_hash: u64,
            name: String,
            n: u64,
            d: u64,
        }
        // Clients tie-break on their text, which ClickHouse does not have: take every client
        // at least as busy as the limit-th one and sort here.
        let group_by = format!(
            "SELECT {} AS client_text, client_hash, max(client_name) AS name, count() AS n, uniqExact(qname) AS d
             FROM {t} WHERE {blocked} GROUP BY client, client_hash",
            self.client_expr()
        );
        let mut clients: Vec<TopClient> = Vec::new();
        self.stream(
            &format!(
                "SELECT * FROM ({group_by}) WHERE n >= (SELECT min(n) FROM ({group_by} ORDER BY n DESC LIMIT {limit}))"
            ),
            |r: C| {
                clients.push(TopClient {
                    client: client_text(&r.client_text, r.client_hash),
                    client_name: none_if_empty(r.name),
                    blocked: r.n,
                    domains: r.d,
                });
                Ok(())
            },
        )?;
        clients.sort_by(|a, b| {
            b.blocked
                .cmp(&a.blocked)
                .then_with(|| a.client.cmp(&b.client))
        });
        clients.truncate(limit);
        Ok(clients)
    }

    /// `top`'s categories over the blocked rows `blocked` selects.
    fn top_categories(&self, blocked: &str, limit: usize) -> Result<Vec<TopCategory>, LogsError> {
        let t = self.table();
        #[derive(Deserialize)]
        struct K {
            category: String,
            n: u64,
            c: u64,
            d: u64,
        }
        let mut categories = Vec::new();
        self.stream(
            &format!(
                "SELECT category, count() AS n, uniqExact(client, client_hash) AS c, uniqExact(qname) AS d
                 FROM {t} WHERE {blocked} GROUP BY category ORDER BY n DESC, category LIMIT {limit}"
            ),
            |r: K| {
                categories.push(TopCategory {
                    category: none_if_empty(r.category),
                    blocked: r.n,
                    clients: r.c,
                    domains: r.d,
                });
                Ok(())
            },
        )?;
        Ok(categories)
    }

    pub fn read_suspicious_clients(
        &self,
        q: &ClientsQuery,
    ) -> Result<Vec<SuspiciousClient>, LogsError> {
        let (since, until) = q.window;
        let (min_blocked, min_domains, limit) = (q.min_blocked, q.min_domains, q.limit);
        let (categories, group) = (&q.categories[..], q.group.as_deref());
        let t = self.table();
        let mut cond = format!(
            "action = 'blocked' AND {}{}",
            Self::time_conds(Some(since), Some(until)).join(" AND "),
            Self::scope_cond(group, q.resolver.as_deref())
        );
        if !categories.is_empty() {
            let l: Vec<String> = categories.iter().map(|c| lit(c)).collect();
            cond.push_str(&format!(" AND category IN ({})", l.join(", ")));
        }
        #[derive(Deserialize)]
        struct S {
            client_text: String,
            client_hash: u64,
            blocked: u64,
            domains: u64,
            first: i64,
            last: i64,
            cats: Vec<String>,
            name: String,
        }
        // Every client over the thresholds (few by design), sorted here as SQLite does.
        let mut found: Vec<(S, String)> = Vec::new();
        self.stream(
            &format!(
                "SELECT {} AS client_text, client_hash, count() AS blocked, uniqExact(qname) AS domains,
                        min(ts_us) AS first, max(ts_us) AS last, groupUniqArray(category) AS cats,
                        max(client_name) AS name
                 FROM {t} WHERE {cond} GROUP BY client, client_hash
                 HAVING blocked >= {min_blocked} OR domains >= {min_domains}",
                self.client_expr()
            ),
            |r: S| {
                let text = client_text(&r.client_text, r.client_hash);
                found.push((r, text));
                Ok(())
            },
        )?;
        found.sort_by(|(a, at), (b, bt)| {
            b.domains
                .cmp(&a.domains)
                .then(b.blocked.cmp(&a.blocked))
                .then_with(|| at.cmp(bt))
        });
        found.truncate(limit);
        let mut list = Vec::new();
        for (s, text) in found {
            let mut cats: Vec<String> = s.cats.into_iter().filter(|c| !c.is_empty()).collect();
            cats.sort();
            let top_domains = self.top_domains_of(&text, &cond)?;
            list.push(SuspiciousClient {
                client: text,
                client_name: none_if_empty(s.name),
                blocked: s.blocked,
                domains: s.domains,
                categories: cats,
                first_seen: format_ts(s.first, 0),
                last_seen: format_ts(s.last, 0),
                top_domains,
            });
        }
        Ok(list)
    }

    /// The client's three most tried blocked domains among the rows `cond` selects.
    fn top_domains_of(&self, client: &str, cond: &str) -> Result<Vec<String>, LogsError> {
        #[derive(Deserialize)]
        struct Q {
            qname: String,
        }
        let mut top_domains = Vec::new();
        self.stream(
            &format!(
                "SELECT qname FROM {} WHERE {cond} AND {} GROUP BY qname ORDER BY count() DESC, qname LIMIT 3",
                self.table(),
                self.client_cond(client)
            ),
            |q: Q| {
                top_domains.push(q.qname);
                Ok(())
            },
        )?;
        Ok(top_domains)
    }
}
