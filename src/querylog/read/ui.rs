//! What the analyst dashboard (`admin::ui`) reads, the same from both stores: the values the
//! [`LogReader`](super::LogReader)'s timeline, drill-downs and search answer with. Each store
//! selects the rows or rollup counts of a bounded window; the values are built here from them,
//! so SQLite and ClickHouse give the same JSON for the same events.

use std::collections::HashMap;

use serde::Serialize;

use super::Filters;
use crate::querylog::sinks::sqlite::MINUTE_US;

/// At most this many rows are read for one drill-down (a client's or a domain's page); the
/// page says when it was cut.
pub const DRILL_ROWS: usize = 200_000;
/// At most this many rows in one search page.
pub const SEARCH_ROWS: usize = 1_000;
/// The SQLite store has no index on names or clients over all rows (only over the blocked
/// ones): a name's or a client's page reads its other rows, in table order, from at most this
/// many of the latest rows of the window.
pub const NAME_SCAN_ROWS: i64 = 1_000_000;

/// A drill-down's rows, latest first, and whether the store read only part of the window.
#[derive(Debug, Clone, Default)]
pub struct Rows {
    pub rows: Vec<Slim>,
    pub truncated: bool,
}

/// A chart's window: whole minutes `[since, until)` (µs) cut into `buckets` of `bucket` µs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since: i64,
    pub until: i64,
    pub bucket: i64,
}

impl Window {
    /// The minutes covering `since..until`, in at most `max_buckets` buckets of whole minutes.
    pub fn new(since: i64, until: i64, max_buckets: i64) -> Window {
        let since = since.div_euclid(MINUTE_US) * MINUTE_US;
        let until = (until.div_euclid(MINUTE_US) + 1) * MINUTE_US;
        let until = until.max(since + MINUTE_US);
        let minutes = (until - since) / MINUTE_US;
        let per = (minutes + max_buckets.max(1) - 1) / max_buckets.max(1);
        let bucket = per.max(1) * MINUTE_US;
        // a whole number of buckets
        let n = (until - since + bucket - 1) / bucket;
        Window {
            since,
            until: since + n * bucket,
            bucket,
        }
    }

    pub fn buckets(&self) -> usize {
        ((self.until - self.since) / self.bucket) as usize
    }

    /// The bucket of a time inside the window.
    pub fn index(&self, ts_us: i64) -> Option<usize> {
        (ts_us >= self.since && ts_us < self.until)
            .then(|| ((ts_us - self.since) / self.bucket) as usize)
    }

    fn empty_points(&self) -> Vec<Point> {
        (0..self.buckets())
            .map(|i| Point {
                t: (self.since + i as i64 * self.bucket) / 1_000_000,
                queries: 0,
                blocked: 0,
            })
            .collect()
    }
}

/// One bucket of a chart: its start (Unix seconds) and counts.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Point {
    pub t: i64,
    pub queries: u64,
    pub blocked: u64,
}

/// Blocked queries of one category or list, per bucket.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Split {
    pub key: Option<String>,
    pub total: u64,
    pub counts: Vec<u64>,
}

/// Queries and blocked queries over time, the blocked ones split by category and by list.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Timeline {
    pub since: i64,
    pub until: i64,
    pub bucket_secs: i64,
    pub queries: u64,
    pub blocked: u64,
    pub points: Vec<Point>,
    pub by_category: Vec<Split>,
    pub by_list: Vec<Split>,
}

impl Timeline {
    /// From the stores' counts: (time, blocked?, n) for all queries, (time, category, list,
    /// n) for the blocked ones. Times are bucket or minute starts inside the window.
    pub fn build(
        w: &Window,
        counts: impl IntoIterator<Item = (i64, bool, u64)>,
        blocked: impl IntoIterator<Item = (i64, Option<String>, Option<String>, u64)>,
    ) -> Timeline {
        let mut points = w.empty_points();
        for (ts, is_blocked, n) in counts {
            if let Some(i) = w.index(ts) {
                points[i].queries += n;
                if is_blocked {
                    points[i].blocked += n;
                }
            }
        }
        let nb = w.buckets();
        let mut cats: HashMap<Option<String>, Vec<u64>> = HashMap::new();
        let mut lists: HashMap<Option<String>, Vec<u64>> = HashMap::new();
        for (ts, cat, list, n) in blocked {
            if let Some(i) = w.index(ts) {
                cats.entry(cat).or_insert_with(|| vec![0; nb])[i] += n;
                lists.entry(list).or_insert_with(|| vec![0; nb])[i] += n;
            }
        }
        Timeline {
            since: w.since / 1_000_000,
            until: w.until / 1_000_000,
            bucket_secs: w.bucket / 1_000_000,
            queries: points.iter().map(|p| p.queries).sum(),
            blocked: points.iter().map(|p| p.blocked).sum(),
            points,
            by_category: splits(cats),
            by_list: splits(lists),
        }
    }
}

fn splits(m: HashMap<Option<String>, Vec<u64>>) -> Vec<Split> {
    let mut v: Vec<Split> = m
        .into_iter()
        .map(|(key, counts)| Split {
            key,
            total: counts.iter().sum(),
            counts,
        })
        .collect();
    v.sort_by(|a, b| b.total.cmp(&a.total).then_with(|| a.key.cmp(&b.key)));
    v
}

/// The few columns a drill-down reads of a row.
#[derive(Debug, Clone)]
pub struct Slim {
    pub ts_us: i64,
    pub client: String,
    pub qname: String,
    pub blocked: bool,
    pub category: Option<String>,
    pub list: Option<String>,
    pub rule: Option<String>,
    pub client_name: Option<String>,
    pub group: Option<String>,
}

/// A name and how often it was asked (by one client, or blocked / allowed).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NameCount {
    pub qname: String,
    pub queries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub list: Option<String>,
}

/// One client's page: who it is, its timeline, its top domains blocked and allowed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ClientPage {
    pub client: String,
    pub client_name: Option<String>,
    pub group: Option<String>,
    pub queries: u64,
    pub blocked: u64,
    pub first_seen: Option<i64>,
    pub last_seen: Option<i64>,
    pub timeline: Vec<Point>,
    pub bucket_secs: i64,
    pub top_blocked: Vec<NameCount>,
    pub top_allowed: Vec<NameCount>,
    /// More rows than [`DRILL_ROWS`] in the window (or, on SQLite, allowed rows beyond the
    /// latest [`NAME_SCAN_ROWS`]): the figures cover the latest ones only.
    pub truncated: bool,
}

/// Which clients asked for one name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DomainClient {
    pub client: String,
    pub client_name: Option<String>,
    pub group: Option<String>,
    pub queries: u64,
    pub blocked: u64,
    pub last_seen: i64,
}

/// One name's page (the live policy's `explain` is added by the route).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DomainPage {
    pub qname: String,
    pub queries: u64,
    pub blocked: u64,
    pub timeline: Vec<Point>,
    pub bucket_secs: i64,
    pub clients: Vec<DomainClient>,
    /// The list and rule of the latest blocked row, as logged.
    pub logged_list: Option<String>,
    pub logged_rule: Option<String>,
    pub logged_category: Option<String>,
    pub truncated: bool,
}

fn bump(best: &mut Option<String>, v: &Option<String>) {
    // the greatest text wins (SQL max()), so both stores agree
    if let Some(v) = v {
        if best.as_deref().is_none_or(|b| v.as_str() > b) {
            *best = Some(v.clone());
        }
    }
}

fn ranked_names(m: HashMap<String, NameCount>, limit: usize) -> Vec<NameCount> {
    let mut v: Vec<NameCount> = m.into_values().collect();
    v.sort_by(|a, b| {
        b.queries
            .cmp(&a.queries)
            .then_with(|| a.qname.cmp(&b.qname))
    });
    v.truncate(limit);
    v
}

impl ClientPage {
    pub fn build(client: &str, w: &Window, found: &Rows, limit: usize) -> ClientPage {
        let rows = &found.rows;
        let mut points = w.empty_points();
        let (mut name, mut group) = (None, None);
        let mut blocked: HashMap<String, NameCount> = HashMap::new();
        let mut allowed: HashMap<String, NameCount> = HashMap::new();
        let (mut first, mut last): (Option<i64>, Option<i64>) = (None, None);
        for r in rows {
            let Some(i) = w.index(r.ts_us) else { continue };
            points[i].queries += 1;
            bump(&mut name, &r.client_name);
            bump(&mut group, &r.group);
            first = Some(first.map_or(r.ts_us, |f| f.min(r.ts_us)));
            last = Some(last.map_or(r.ts_us, |l| l.max(r.ts_us)));
            let m = if r.blocked {
                points[i].blocked += 1;
                &mut blocked
            } else {
                &mut allowed
            };
            let e = m.entry(r.qname.clone()).or_insert_with(|| NameCount {
                qname: r.qname.clone(),
                queries: 0,
                category: None,
                list: None,
            });
            e.queries += 1;
            if r.blocked {
                bump(&mut e.category, &r.category);
                bump(&mut e.list, &r.list);
            }
        }
        ClientPage {
            client: client.to_string(),
            client_name: name,
            group,
            queries: points.iter().map(|p| p.queries).sum(),
            blocked: points.iter().map(|p| p.blocked).sum(),
            first_seen: first.map(|t| t / 1_000_000),
            last_seen: last.map(|t| t / 1_000_000),
            timeline: points,
            bucket_secs: w.bucket / 1_000_000,
            top_blocked: ranked_names(blocked, limit),
            top_allowed: ranked_names(allowed, limit),
            truncated: found.truncated || rows.len() >= DRILL_ROWS,
        }
    }
}

impl DomainPage {
    pub fn build(qname: &str, w: &Window, found: &Rows, limit: usize) -> DomainPage {
        let rows = &found.rows;
        let mut points = w.empty_points();
        let mut clients: HashMap<String, DomainClient> = HashMap::new();
        let mut latest_blocked: Option<&Slim> = None;
        for r in rows {
            let Some(i) = w.index(r.ts_us) else { continue };
            points[i].queries += 1;
            let c = clients
                .entry(r.client.clone())
                .or_insert_with(|| DomainClient {
                    client: r.client.clone(),
                    client_name: None,
                    group: None,
                    queries: 0,
                    blocked: 0,
                    last_seen: 0,
                });
            c.queries += 1;
            c.last_seen = c.last_seen.max(r.ts_us / 1_000_000);
            bump(&mut c.client_name, &r.client_name);
            bump(&mut c.group, &r.group);
            if r.blocked {
                points[i].blocked += 1;
                c.blocked += 1;
                if latest_blocked.is_none_or(|l| r.ts_us > l.ts_us) {
                    latest_blocked = Some(r);
                }
            }
        }
        let mut clients: Vec<DomainClient> = clients.into_values().collect();
        clients.sort_by(|a, b| {
            b.queries
                .cmp(&a.queries)
                .then_with(|| a.client.cmp(&b.client))
        });
        clients.truncate(limit);
        DomainPage {
            qname: qname.to_string(),
            queries: points.iter().map(|p| p.queries).sum(),
            blocked: points.iter().map(|p| p.blocked).sum(),
            timeline: points,
            bucket_secs: w.bucket / 1_000_000,
            clients,
            logged_list: latest_blocked.and_then(|r| r.list.clone()),
            logged_rule: latest_blocked.and_then(|r| r.rule.clone()),
            logged_category: latest_blocked.and_then(|r| r.category.clone()),
            truncated: found.truncated || rows.len() >= DRILL_ROWS,
        }
    }
}

/// A search over the query log: the filters of `dnsward logs`, plus type, rcode, list, a
/// time range and a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Search {
    pub filters: Filters,
    pub since: i64,
    pub until: i64,
    /// Exactly this name (`filters.qname_suffix`: this name and the names under it).
    pub qname: Option<String>,
    pub qtype: Option<String>,
    pub rcode: Option<String>,
    pub list: Option<String>,
    /// Only queries answered by this resolver of the fleet (`[server] name`).
    pub resolver: Option<String>,
    pub offset: usize,
    pub limit: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_whole_minutes_in_whole_buckets() {
        let m = MINUTE_US;
        let w = Window::new(10 * m + 5, 70 * m + 7, 30);
        assert_eq!(w.since, 10 * m);
        assert_eq!(w.bucket, 3 * m);
        assert_eq!((w.until - w.since) % w.bucket, 0);
        assert!(w.until > 70 * m + 7);
        assert_eq!(w.index(10 * m), Some(0));
        assert_eq!(w.index(13 * m), Some(1));
        assert_eq!(w.index(9 * m), None);
        let one = Window::new(5 * m, 5 * m, 120);
        assert_eq!((one.since, one.until, one.bucket), (5 * m, 6 * m, m));
    }

    #[test]
    fn timelines_split_blocked_rows_by_category_and_list() {
        let m = MINUTE_US;
        let w = Window::new(0, 3 * m - 1, 10);
        let t = Timeline::build(
            &w,
            [(0, false, 5), (0, true, 2), (2 * m, true, 1)],
            [
                (0, Some("threat".into()), Some("feed".into()), 2),
                (2 * m, None, Some("runtime".into()), 1),
            ],
        );
        assert_eq!((t.queries, t.blocked), (8, 3));
        assert_eq!(t.points[0].queries, 7);
        assert_eq!(t.by_category[0].key.as_deref(), Some("threat"));
        assert_eq!(t.by_list.len(), 2);
        assert_eq!(t.by_list[0].counts, vec![2, 0, 0]);
    }
}
