//! `top` and `clients` over the SQLite store.

use std::collections::{HashMap, HashSet};

use rusqlite::types::Value;
use rusqlite::Connection;

use super::store::{ClientsQuery, TopQuery};
use super::{SuspiciousClient, TopCategory, TopClient, TopDomain, TopReport};
use crate::querylog::sinks::sqlite::MINUTE_US;
use crate::timefmt::format_ts;

/// `AND client_group = ?N` and its parameter, when a group is asked for.
fn group_cond(group: Option<&str>, n: usize) -> (String, Option<Value>) {
    match group {
        Some(g) => (
            format!(" AND client_group = ?{n}"),
            Some(Value::Text(g.to_string())),
        ),
        None => (String::new(), None),
    }
}

/// Queries and blocked queries in `[since, until)`: whole minutes from the `minute_counts`
/// rollup, the rows of the two minutes cut by the window counted one by one (so the figure is
/// exact).
fn totals_between(
    conn: &Connection,
    since: i64,
    until: i64,
    group: Option<&str>,
) -> rusqlite::Result<(u64, u64)> {
    let (first, last) = (since / MINUTE_US, until / MINUTE_US);
    let (gc, gv) = group_cond(group, 3);
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
    if first >= last {
        return rows(since, until);
    }
    let mut p = vec![Value::Integer(first), Value::Integer(last)];
    p.extend(gv.clone());
    let (q1, b1): (u64, u64) = conn.query_row(
        &format!(
            "SELECT coalesce(sum(n), 0), coalesce(sum(CASE WHEN action = 'blocked' THEN n END), 0)
             FROM minute_counts WHERE minute > ?1 AND minute < ?2{gc}"
        ),
        rusqlite::params_from_iter(p.iter()),
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let (q2, b2) = rows(since, (first + 1) * MINUTE_US)?;
    let (q3, b3) = rows(last * MINUTE_US, until)?;
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
    since: i64,
    until: i64,
    group: Option<&str>,
    limit: usize,
) -> rusqlite::Result<(Vec<TopDomain>, Vec<TopClient>, Vec<TopCategory>)> {
    let (gc, gv) = group_cond(group, 2);
    let mut p = vec![Value::Integer(since)];
    p.extend(gv);
    let mut st = conn.prepare(&format!(
        "SELECT qname, client, category, client_name FROM queries INDEXED BY queries_blocked_ts
         WHERE action = 'blocked' AND ts_us >= ?1 AND ts_us < {until}{gc}"
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
    Ok(tallies.into_sections(limit))
}

/// Blocked rows tallied per name, client and category. Names, clients and categories are
/// interned; distinct counts come from sets of pairs.
#[derive(Default)]
struct BlockedTallies {
    name_ids: HashMap<String, u32>,
    names: Vec<Tally>,
    client_ids: HashMap<String, u32>,
    clients: Vec<Tally>,
    cat_ids: HashMap<String, u32>,
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
        // NULL category is a group of its own: keyed apart from any text
        let k = match category {
            Some(t) => format!("+{t}"),
            None => "-".to_string(),
        };
        let g = intern(&mut self.cat_ids, &mut self.cats, &k);
        if g as usize == self.cat_keys.len() {
            self.cat_keys.push(category.map(str::to_string));
        }
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
        let cat_keys = self.cat_keys;
        let cat_ids: HashMap<Option<String>, u32> = self
            .cat_ids
            .into_values()
            .map(|i| (cat_keys[i as usize].clone(), i))
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
    let (since, now, limit, group) = (q.since, q.until, q.limit, q.group.as_deref());
    let (queries, blocked) = totals_between(conn, since, now, group)?;
    let (domains, clients, categories) = blocked_summary(conn, since, now, group, limit)?;
    Ok(TopReport {
        since: format_ts(since, 0),
        until: format_ts(now, 0),
        group: group.map(str::to_string),
        queries,
        blocked,
        domains,
        clients,
        categories,
    })
}

pub fn suspicious_clients(
    conn: &Connection,
    q: &ClientsQuery,
) -> rusqlite::Result<Vec<SuspiciousClient>> {
    let (since, until) = q.window;
    let (min_blocked, min_domains, limit) = (q.min_blocked, q.min_domains, q.limit);
    let (categories, group) = (&q.categories[..], q.group.as_deref());
    let mut params: Vec<Value> = vec![
        Value::Integer(since),
        Value::Integer(min_blocked.min(i64::MAX as u64) as i64),
        Value::Integer(min_domains.min(i64::MAX as u64) as i64),
        Value::Integer(limit.min(i64::MAX as usize) as i64),
    ];
    let mut cat_cond = String::new();
    if !categories.is_empty() {
        let marks: Vec<String> = categories
            .iter()
            .map(|c| {
                params.push(Value::Text(c.clone()));
                format!("?{}", params.len())
            })
            .collect();
        cat_cond = format!(" AND category IN ({})", marks.join(", "));
    }
    let (group_cond1, gv) = group_cond(group, params.len() + 1);
    params.extend(gv);
    let sql = format!(
        "SELECT client, count(*) AS blocked, count(DISTINCT qname) AS domains, min(ts_us), max(ts_us),
                coalesce(group_concat(DISTINCT category), ''), max(client_name)
         FROM queries INDEXED BY queries_blocked_ts
         WHERE action = 'blocked' AND ts_us >= ?1 AND ts_us < {until}{cat_cond}{group_cond1}
         GROUP BY client HAVING blocked >= ?2 OR domains >= ?3
         ORDER BY domains DESC, blocked DESC, client LIMIT ?4"
    );
    let mut list: Vec<SuspiciousClient> = conn
        .prepare(&sql)?
        .query_map(rusqlite::params_from_iter(params.iter()), |r| {
            let cats: String = r.get(5)?;
            let mut categories: Vec<String> = cats
                .split(',')
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
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
        })?
        .collect::<Result<_, _>>()?;
    add_top_domains(conn, &mut list, since, until, categories, group)?;
    Ok(list)
}

/// Each client's three most tried blocked domains, under the same conditions.
fn add_top_domains(
    conn: &Connection,
    list: &mut [SuspiciousClient],
    since: i64,
    until: i64,
    categories: &[String],
    group: Option<&str>,
) -> rusqlite::Result<()> {
    let marks: Vec<String> = (0..categories.len())
        .map(|i| format!("?{}", i + 3))
        .collect();
    let cat_cond = if categories.is_empty() {
        String::new()
    } else {
        format!(" AND category IN ({})", marks.join(", "))
    };
    let (group_cond2, _) = group_cond(group, categories.len() + 3);
    let sql = format!(
        "SELECT qname FROM queries WHERE action = 'blocked' AND client = ?1 AND ts_us >= ?2 AND ts_us < {until}{cat_cond}{group_cond2}
         GROUP BY qname ORDER BY count(*) DESC, qname LIMIT 3"
    );
    let mut st = conn.prepare(&sql)?;
    for c in list {
        let mut p: Vec<Value> = vec![Value::Text(c.client.clone()), Value::Integer(since)];
        p.extend(categories.iter().map(|c| Value::Text(c.clone())));
        p.extend(group.map(|g| Value::Text(g.to_string())));
        c.top_domains = st
            .query_map(rusqlite::params_from_iter(p.iter()), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
    }
    Ok(())
}
