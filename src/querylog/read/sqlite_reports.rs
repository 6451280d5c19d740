//! `top` and `clients` over the SQLite store.

/// The tallies hash a few hundred thousand keys per report: ahash, not SipHash (no keys an
/// attacker can choose matter here: the names are the store's).
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
type HashSet<T> = std::collections::HashSet<T, ahash::RandomState>;

use rusqlite::types::Value;
use rusqlite::Connection;

use super::store::{ClientsQuery, TopQuery};
use super::{SuspiciousClient, TopCategory, TopClient, TopDomain, TopReport};
use crate::querylog::sinks::sqlite::MINUTE_US;
use crate::timefmt::format_ts;

/// ` AND client_group = ?N AND server = ?M` for the parts of a scope asked for, numbered from
/// `first`, and their parameters.
pub(super) fn scope_cond(
    group: Option<&str>,
    resolver: Option<&str>,
    first: usize,
) -> (String, Vec<Value>) {
    let mut cond = String::new();
    let mut p = Vec::new();
    for (col, v) in [("client_group", group), ("server", resolver)] {
        if let Some(v) = v {
            p.push(Value::Text(v.to_string()));
            cond.push_str(&format!(" AND {col} = ?{}", first + p.len() - 1));
        }
    }
    (cond, p)
}

/// Queries and blocked queries in `[since, until)`: the whole minutes inside it from the
/// `minute_counts` rollup, the rows of a minute cut by either end counted one by one (so the
/// figure is exact; a window of whole minutes, as the dashboard asks, reads no row).
fn totals_between(conn: &Connection, q: &TopQuery) -> rusqlite::Result<(u64, u64)> {
    let (since, until) = (q.since, q.until);
    // the whole minutes: from the first that starts at or after `since` to the last that
    // ends at or before `until`
    let (first, end) = (
        (since + MINUTE_US - 1).div_euclid(MINUTE_US),
        until.div_euclid(MINUTE_US),
    );
    let (gc, gv) = scope_cond(q.group.as_deref(), q.resolver.as_deref(), 3);
    let rows = |from: i64, to: i64| -> rusqlite::Result<(u64, u64)> {
        let mut p = vec![Value::Integer(from), Value::Integer(to)];
        p.extend(gv.clone());
        conn.query_row(
            &format!(
                "SELECT count(*), coalesce(sum(action = 'blocked'), 0) FROM queries
                 WHERE ts_us >= ?1 AND ts_us < ?2{gc}"
            ),
            rusqlite::params_from_iter(p.iter()),
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    };
    if first >= end {
        return rows(since, until);
    }
    let mut p = vec![Value::Integer(first), Value::Integer(end)];
    p.extend(gv.clone());
    let (q1, b1): (u64, u64) = conn.query_row(
        &format!(
            "SELECT coalesce(sum(n), 0), coalesce(sum(CASE WHEN action = 'blocked' THEN n END), 0)
             FROM minute_counts WHERE minute >= ?1 AND minute < ?2{gc}"
        ),
        rusqlite::params_from_iter(p.iter()),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (q2, b2) = if since < first * MINUTE_US {
        rows(since, first * MINUTE_US)?
    } else {
        (0, 0)
    };
    let (q3, b3) = if end * MINUTE_US < until {
        rows(end * MINUTE_US, until)?
    } else {
        (0, 0)
    };
    Ok((q1 + q2 + q3, b1 + b2 + b3))
}

/// Counts and distinct counts of one group of blocked rows.
#[derive(Default)]
struct Tally {
    blocked: u64,
    distinct: u64,
    distinct2: u64,
    label: Option<String>,
}

/// The three sections of `top` in one pass over the blocked rows (read from the covering
/// index `queries_blocked_ts`): three GROUP BYs with count(DISTINCT) took three times as long.
fn blocked_summary(
    conn: &Connection,
    q: &TopQuery,
) -> rusqlite::Result<(Vec<TopDomain>, Vec<TopClient>, Vec<TopCategory>)> {
    let (gc, gv) = scope_cond(q.group.as_deref(), q.resolver.as_deref(), 3);
    let mut p = vec![Value::Integer(q.since), Value::Integer(q.until)];
    p.extend(gv);
    let mut st = conn.prepare(&format!(
        "SELECT qname, client, category, client_name FROM queries INDEXED BY queries_blocked_ts
         WHERE action = 'blocked' AND ts_us >= ?1 AND ts_us < ?2{gc}"
    ))?;
    let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
    let mut tallies = BlockedTallies::default();
    while let Some(r) = rows.next()? {
        tallies.add(
            r.get_ref(0)?.as_str()?,
            r.get_ref(1)?.as_str()?,
            r.get_ref(2)?.as_str_or_null()?,
            r.get_ref(3)?.as_str_or_null()?,
        );
    }
    Ok(tallies.into_sections(q.limit))
}

/// Blocked rows tallied per name, client and category. Names, clients and categories are
/// interned; distinct counts come from sets of pairs.
#[derive(Default)]
struct BlockedTallies {
    name_ids: HashMap<String, u32>,
    names: Vec<Tally>,
    client_ids: HashMap<String, u32>,
    clients: Vec<Tally>,
    cats: Vec<Tally>,
    cat_keys: Vec<Option<String>>,
    name_client: HashSet<(u32, u32)>,
    cat_client: HashSet<(u32, u32)>,
    cat_name: HashSet<(u32, u32)>,
}

impl BlockedTallies {
    fn add(
        &mut self,
        qname: &str,
        client: &str,
        category: Option<&str>,
        client_name: Option<&str>,
    ) {
        let n = intern(&mut self.name_ids, &mut self.names, qname);
        let c = intern(&mut self.client_ids, &mut self.clients, client);
        // a few categories (NULL one of its own): found by a look along the list
        let g = match self.cat_keys.iter().position(|k| k.as_deref() == category) {
            Some(g) => g as u32,
            None => {
                self.cat_keys.push(category.map(str::to_string));
                self.cats.push(Tally::default());
                (self.cats.len() - 1) as u32
            }
        };
        let (names, clients, cats) = (&mut self.names, &mut self.clients, &mut self.cats);
        names[n as usize].blocked += 1;
        raise(&mut names[n as usize].label, category);
        clients[c as usize].blocked += 1;
        raise(&mut clients[c as usize].label, client_name);
        cats[g as usize].blocked += 1;
        if self.name_client.insert((n, c)) {
            names[n as usize].distinct += 1;
            clients[c as usize].distinct += 1;
        }
        if self.cat_client.insert((g, c)) {
            cats[g as usize].distinct += 1;
        }
        if self.cat_name.insert((g, n)) {
            cats[g as usize].distinct2 += 1;
        }
    }

    /// The `limit` most blocked names, clients and categories.
    fn into_sections(self, limit: usize) -> (Vec<TopDomain>, Vec<TopClient>, Vec<TopCategory>) {
        let domains = ranked(self.name_ids, self.names, limit)
            .into_iter()
            .map(|(qname, t)| TopDomain {
                qname,
                blocked: t.blocked,
                clients: t.distinct,
                category: t.label,
            })
            .collect();
        let top_clients = ranked(self.client_ids, self.clients, limit)
            .into_iter()
            .map(|(client, t)| TopClient {
                client,
                client_name: t.label,
                blocked: t.blocked,
                domains: t.distinct,
            })
            .collect();
        // categories sort by their value (NULL first, as in SQL), not by the interning key
        let cat_ids: HashMap<Option<String>, u32> = self
            .cat_keys
            .into_iter()
            .enumerate()
            .map(|(i, k)| (k, i as u32))
            .collect();
        let categories = ranked(cat_ids, self.cats, limit)
            .into_iter()
            .map(|(category, t)| TopCategory {
                category,
                blocked: t.blocked,
                clients: t.distinct,
                domains: t.distinct2,
            })
            .collect();
        (domains, top_clients, categories)
    }
}

fn intern(ids: &mut HashMap<String, u32>, tallies: &mut Vec<Tally>, key: &str) -> u32 {
    if let Some(&i) = ids.get(key) {
        return i;
    }
    let i = tallies.len() as u32;
    ids.insert(key.to_string(), i);
    tallies.push(Tally::default());
    i
}

fn raise(label: &mut Option<String>, v: Option<&str>) {
    // SQL max(): NULLs ignored, the greatest text wins
    if let Some(v) = v {
        if label.as_deref().is_none_or(|l| v > l) {
            *label = Some(v.to_string());
        }
    }
}

/// The `limit` groups with the most blocked rows, ties by key.
fn ranked<K: Ord + Clone>(
    ids: HashMap<K, u32>,
    mut tallies: Vec<Tally>,
    limit: usize,
) -> Vec<(K, Tally)> {
    let mut v: Vec<(K, Tally)> = ids
        .into_iter()
        .map(|(k, i)| (k, std::mem::take(&mut tallies[i as usize])))
        .collect();
    v.sort_by(|a, b| b.1.blocked.cmp(&a.1.blocked).then_with(|| a.0.cmp(&b.0)));
    v.truncate(limit);
    v
}

pub fn top(conn: &Connection, q: &TopQuery) -> rusqlite::Result<TopReport> {
    let (queries, blocked) = totals_between(conn, q)?;
    let (domains, clients, categories) = blocked_summary(conn, q)?;
    Ok(TopReport {
        since: format_ts(q.since, 0),
        until: format_ts(q.until, 0),
        group: q.group.clone(),
        queries,
        blocked,
        domains,
        clients,
        categories,
    })
}

/// `clients` in one pass over the blocked rows of the window (the covering index
/// `queries_blocked_ts`), each client's counts, categories and names tallied here: a GROUP BY
/// client with count(DISTINCT qname), then one query per client for its top names, took
/// twice as long.
pub fn suspicious_clients(
    conn: &Connection,
    q: &ClientsQuery,
) -> rusqlite::Result<Vec<SuspiciousClient>> {
    let mut p: Vec<Value> = vec![Value::Integer(q.window.0), Value::Integer(q.window.1)];
    let mut cat_cond = String::new();
    if !q.categories.is_empty() {
        let marks: Vec<String> = q
            .categories
            .iter()
            .map(|c| {
                p.push(Value::Text(c.clone()));
                format!("?{}", p.len())
            })
            .collect();
        cat_cond = format!(" AND category IN ({})", marks.join(", "));
    }
    let (sc, sv) = scope_cond(q.group.as_deref(), q.resolver.as_deref(), p.len() + 1);
    p.extend(sv);
    let mut st = conn.prepare(&format!(
        "SELECT client, qname, ts_us, category, client_name FROM queries INDEXED BY queries_blocked_ts
         WHERE action = 'blocked' AND ts_us >= ?1 AND ts_us < ?2{cat_cond}{sc}"
    ))?;
    let mut rows = st.query(rusqlite::params_from_iter(p.iter()))?;
    let mut tallies = ClientTallies::default();
    while let Some(r) = rows.next()? {
        tallies.add(
            r.get_ref(0)?.as_str()?,
            r.get_ref(1)?.as_str()?,
            r.get(2)?,
            r.get_ref(3)?.as_str_or_null()?,
            r.get_ref(4)?.as_str_or_null()?,
        );
    }
    Ok(tallies.into_list(q))
}

/// One client's blocked rows.
struct ClientTally {
    blocked: u64,
    /// distinct names
    domains: u64,
    first: i64,
    last: i64,
    categories: Vec<String>,
    name: Option<String>,
}

/// Blocked rows tallied per client, with a count per (client, name) pair for the distinct
/// names and each client's most tried ones. Clients and names are interned.
#[derive(Default)]
struct ClientTallies {
    client_ids: HashMap<String, u32>,
    clients: Vec<(String, ClientTally)>,
    name_ids: HashMap<String, u32>,
    names: Vec<String>,
    pairs: HashMap<(u32, u32), u64>,
}

impl ClientTallies {
    fn add(
        &mut self,
        client: &str,
        qname: &str,
        ts_us: i64,
        category: Option<&str>,
        client_name: Option<&str>,
    ) {
        let c = match self.client_ids.get(client) {
            Some(&c) => c,
            None => {
                let c = self.clients.len() as u32;
                self.client_ids.insert(client.to_string(), c);
                let t = ClientTally {
                    blocked: 0,
                    domains: 0,
                    first: ts_us,
                    last: ts_us,
                    categories: Vec::new(),
                    name: None,
                };
                self.clients.push((client.to_string(), t));
                c
            }
        };
        let n = match self.name_ids.get(qname) {
            Some(&n) => n,
            None => {
                let n = self.names.len() as u32;
                self.name_ids.insert(qname.to_string(), n);
                self.names.push(qname.to_string());
                n
            }
        };
        let t = &mut self.clients[c as usize].1;
        t.blocked += 1;
        t.first = t.first.min(ts_us);
        t.last = t.last.max(ts_us);
        if let Some(cat) = category.filter(|c| !c.is_empty()) {
            if !t.categories.iter().any(|x| x == cat) {
                t.categories.push(cat.to_string());
            }
        }
        raise(&mut t.name, client_name);
        let k = self.pairs.entry((c, n)).or_insert(0);
        if *k == 0 {
            t.domains += 1;
        }
        *k += 1;
    }

    /// The clients over either threshold, most distinct names first, then most blocked, then
    /// by their text; each with its three most tried names.
    fn into_list(self, q: &ClientsQuery) -> Vec<SuspiciousClient> {
        let clients = &self.clients;
        let mut chosen: Vec<usize> = (0..clients.len())
            .filter(|&c| {
                let t = &clients[c].1;
                t.blocked >= q.min_blocked || t.domains >= q.min_domains
            })
            .collect();
        chosen.sort_by(|&a, &b| {
            let (x, y) = (&clients[a], &clients[b]);
            y.1.domains
                .cmp(&x.1.domains)
                .then(y.1.blocked.cmp(&x.1.blocked))
                .then_with(|| x.0.cmp(&y.0))
        });
        chosen.truncate(q.limit);
        let mut tried: HashMap<u32, Vec<(u64, u32)>> =
            chosen.iter().map(|&c| (c as u32, Vec::new())).collect();
        for (&(c, n), &k) in &self.pairs {
            if let Some(v) = tried.get_mut(&c) {
                v.push((k, n));
            }
        }
        let names = &self.names;
        chosen
            .into_iter()
            .map(|c| {
                let (client, t) = &clients[c];
                let mut mine = tried.remove(&(c as u32)).unwrap_or_default();
                mine.sort_by(|a, b| {
                    b.0.cmp(&a.0)
                        .then_with(|| names[a.1 as usize].cmp(&names[b.1 as usize]))
                });
                let mut categories = t.categories.clone();
                categories.sort();
                SuspiciousClient {
                    client: client.clone(),
                    client_name: t.name.clone(),
                    blocked: t.blocked,
                    domains: t.domains,
                    categories,
                    first_seen: format_ts(t.first, 0),
                    last_seen: format_ts(t.last, 0),
                    top_domains: mine
                        .iter()
                        .take(3)
                        .map(|&(_, n)| names[n as usize].clone())
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::querylog::event::EventAction;
    use crate::querylog::sinks::sqlite::{insert_batch, open_for_writing};
    use crate::querylog::testutil::{event, logged};

    /// `top`'s totals are exact whether the window's ends cut a minute or not (the whole
    /// minutes from the rollup, the cut ones from the rows).
    #[test]
    fn top_totals_are_exact_for_whole_and_cut_minutes() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = open_for_writing(&dir.path().join("q.db")).unwrap();
        let m = MINUTE_US;
        let batch: Vec<_> = (0..600i64)
            .map(|i| {
                let action = [EventAction::Allowed, EventAction::Blocked][i as usize % 3 / 2];
                let mut e = event(&format!("n{}.example", i % 17), action);
                e.ts_us = 100 * m + i * 7_000_003 % (9 * m);
                logged(e)
            })
            .collect();
        insert_batch(&mut c, &batch).unwrap();
        for (since, until) in [
            (100 * m, 109 * m),
            (100 * m + 1, 109 * m - 1),
            (101 * m + 30_000_000, 107 * m),
            (102 * m, 105 * m + 5),
            (103 * m + 5, 103 * m + 40_000_000),
            (95 * m, 120 * m),
        ] {
            let (q, b): (u64, u64) = c
                .query_row(
                    "SELECT count(*), coalesce(sum(action = 'blocked'), 0) FROM queries
                     WHERE ts_us >= ?1 AND ts_us < ?2",
                    [since, until],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            let t = top(
                &c,
                &TopQuery {
                    since,
                    until,
                    limit: 5,
                    ..TopQuery::default()
                },
            )
            .unwrap();
            assert!(q > 0, "{since}..{until}");
            assert_eq!((t.queries, t.blocked), (q, b), "{since}..{until}");
        }
    }

    /// `clients`' one pass against SQL that says the same thing plainly (GROUP BY client,
    /// count(DISTINCT qname), one query per client for its top names), over clients with ties
    /// in both counts, names tried equally often, NULL and other categories, two groups.
    #[test]
    fn clients_in_one_pass_answer_as_the_plain_sql() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.db");
        let mut c = open_for_writing(&p).unwrap();
        let mut batch = Vec::new();
        for i in 0..3_000u64 {
            let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 17;
            let action = if x % 5 == 0 {
                EventAction::Allowed
            } else {
                EventAction::Blocked
            };
            let mut e = event(&format!("n{}.evil.example", x % 23), action);
            e.ts_us = 1_000_000_000 + i as i64 * 1_000;
            e.client = format!("10.0.{}.{}:53", x % 3, (x >> 4) % 40)
                .parse()
                .unwrap();
            e.category = match x % 7 {
                0 => None,
                1 | 2 => Some("ads".into()),
                _ => Some("malware".into()),
            };
            e.group = (x % 2 == 0).then(|| "lab".into());
            e.client_name = (x % 11 == 0).then(|| format!("pc-{}", x % 4).into());
            batch.push(logged(e));
        }
        insert_batch(&mut c, &batch).unwrap();
        let plain = |q: &ClientsQuery| -> Vec<SuspiciousClient> {
            let cats = if q.categories.is_empty() {
                String::new()
            } else {
                format!(" AND category IN ('{}')", q.categories.join("', '"))
            };
            let group = q
                .group
                .as_ref()
                .map(|g| format!(" AND client_group = '{g}'"))
                .unwrap_or_default();
            let cond = format!(
                "action = 'blocked' AND ts_us >= {} AND ts_us < {}{cats}{group}",
                q.window.0, q.window.1
            );
            let mut list: Vec<SuspiciousClient> = c
                .prepare(&format!(
                    "SELECT client, count(*) AS b, count(DISTINCT qname) AS d, min(ts_us), max(ts_us),
                            coalesce(group_concat(DISTINCT category), ''), max(client_name)
                     FROM queries WHERE {cond} GROUP BY client
                     HAVING b >= {} OR d >= {} ORDER BY d DESC, b DESC, client LIMIT {}",
                    q.min_blocked, q.min_domains, q.limit
                ))
                .unwrap()
                .query_map([], |r| {
                    let cats: String = r.get(5)?;
                    let mut categories: Vec<String> =
                        cats.split(',').filter(|s| !s.is_empty()).map(String::from).collect();
                    categories.sort();
                    Ok(SuspiciousClient {
                        client: r.get(0)?,
                        client_name: r.get(6)?,
                        blocked: r.get(1)?,
                        domains: r.get(2)?,
                        categories,
                        first_seen: format_ts(r.get(3)?, 0),
                        last_seen: format_ts(r.get(4)?, 0),
                        top_domains: Vec::new(),
                    })
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            for s in &mut list {
                s.top_domains = c
                    .prepare(&format!(
                        "SELECT qname FROM queries WHERE {cond} AND client = ?1
                         GROUP BY qname ORDER BY count(*) DESC, qname LIMIT 3"
                    ))
                    .unwrap()
                    .query_map([&s.client], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
            }
            list
        };
        let base = ClientsQuery {
            window: (1_000_000_000, 1_000_000_000 + 3_000_000),
            min_blocked: 30,
            min_domains: 12,
            categories: Vec::new(),
            limit: 50,
            group: None,
            resolver: None,
        };
        for q in [
            base.clone(),
            ClientsQuery {
                limit: 7,
                ..base.clone()
            },
            ClientsQuery {
                categories: vec!["malware".into()],
                group: Some("lab".into()),
                min_blocked: 1,
                ..base.clone()
            },
            ClientsQuery {
                window: (1_000_500_000, 1_002_000_000),
                min_blocked: 0,
                ..base.clone()
            },
        ] {
            let want = plain(&q);
            assert!(want.len() > 3, "{q:?}: {} clients", want.len());
            assert_eq!(suspicious_clients(&c, &q).unwrap(), want, "{q:?}");
        }
    }
}
