//! The analyst dashboard on the admin listener: the page at `/` (`page.rs`, assets embedded in
//! the binary) and its JSON under `/api/ui/`, behind the admin API's bearer token (nested in
//! `api::router`'s token layer). The data is read through the same store interface as
//! `dnsward logs` (`querylog::read::LogReader`): SQLite by default, ClickHouse with
//! `?source=clickhouse` (or when only ClickHouse is configured). Every read is bounded: a
//! window of at most [`MAX_RANGE_US`] and a row limit. Actions (`actions.rs`) go through the
//! admin API's own handlers and are recorded with who and why.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::api::{error, explain_value, AdminState, ExplainQuery};
use crate::querylog::event::EventAction;
use crate::querylog::read::ui::{ClientPage, DomainPage, Window};
use crate::querylog::read::{
    open_reader, write_csv_line, Filters, LogReader, Scope, Search, TopQuery, CSV_HEADER,
};
use crate::timefmt::{now_us, parse_time_us};

mod actions;
mod page;
mod tail;

pub use actions::ActionRecord;
pub use page::page_routes;

/// The longest window one request may read.
pub const MAX_RANGE_US: i64 = 31 * 24 * 3_600_000_000;
/// Points on a chart at most.
const MAX_BUCKETS: i64 = 120;
/// Rows per top list at most.
const MAX_TOP: usize = 100;

/// The dashboard's own state beside the admin API's.
#[derive(Default)]
pub struct UiState {
    /// The latest actions taken from the page, newest last (at most 200).
    pub actions: Mutex<VecDeque<ActionRecord>>,
    /// (when, queries answered): the last sample of the query counter, for q/s.
    qps_sample: Mutex<Option<(Instant, u64, Option<f64>)>>,
}

/// The JSON routes, nested under `/api/ui` inside the token layer.
pub fn data_routes() -> Router<AdminState> {
    Router::new()
        .route("/overview", get(overview))
        .route("/top", get(top))
        .route("/clients", get(clients))
        .route("/client", get(client))
        .route("/domain", get(domain))
        .route("/search", get(search))
        .route("/search.csv", get(search_csv))
        .route("/tail", get(tail::tail))
        .route("/actions", get(actions::list).post(actions::act))
}

/// The window and store of a request: `since` (`1h`, `7d`, RFC 3339; default 1 hour ago),
/// `until` (default now), `source` (`sqlite` or `clickhouse`).
#[derive(Deserialize, Default, Clone)]
pub struct Range {
    pub since: Option<String>,
    pub until: Option<String>,
    pub source: Option<String>,
    pub group: Option<String>,
    /// One resolver of the fleet (`[server] name`; the overview lists them).
    pub resolver: Option<String>,
    pub limit: Option<usize>,
}

impl Range {
    fn times(&self) -> Result<(i64, i64), Bad> {
        let now = now_us();
        let t = |s: &Option<String>, default: i64| match s.as_deref().map(str::trim) {
            None | Some("") => Ok(default),
            Some(s) => parse_time_us(s, now).map_err(|e| Bad(e.to_string())),
        };
        let until = t(&self.until, now)?;
        let since = t(&self.since, now - 3_600_000_000)?;
        if since >= until {
            return Err(Bad("since must be before until".into()));
        }
        if until - since > MAX_RANGE_US {
            return Err(Bad("the range is longer than 31 days".into()));
        }
        Ok((since, until))
    }

    fn window(&self) -> Result<Window, Bad> {
        let (since, until) = self.times()?;
        Ok(Window::new(since, until, MAX_BUCKETS))
    }

    fn limit(&self, default: usize) -> usize {
        self.limit.unwrap_or(default).clamp(1, MAX_TOP)
    }

    fn group(&self) -> Option<String> {
        self.group.clone().filter(|g| !g.is_empty())
    }

    fn resolver(&self) -> Option<String> {
        self.resolver.clone().filter(|r| !r.is_empty())
    }

    fn scope(&self) -> Scope {
        Scope {
            group: self.group(),
            resolver: self.resolver(),
        }
    }
}

/// A request the routes refuse (400), with the reason.
struct Bad(String);

impl IntoResponse for Bad {
    fn into_response(self) -> Response {
        error(StatusCode::BAD_REQUEST, self.0)
    }
}

/// Run `f` on the chosen store on the blocking pool (SQLite and ClickHouse reads block).
async fn read<T: Send + 'static>(
    st: &AdminState,
    source: Option<&str>,
    f: impl FnOnce(&dyn LogReader) -> Result<T, crate::querylog::read::LogsError> + Send + 'static,
) -> Result<T, Response> {
    let Some(cfg) = st.querylog.clone() else {
        return Err(error(StatusCode::NOT_FOUND, "no [querylog] is configured"));
    };
    let clickhouse = match source {
        None | Some("") | Some("sqlite") => false,
        Some("clickhouse") => true,
        Some(s) => {
            return Err(error(
                StatusCode::BAD_REQUEST,
                format!("unknown source {s:?} (sqlite or clickhouse)"),
            ))
        }
    };
    let started = Instant::now();
    let answer = tokio::task::spawn_blocking(move || {
        let reader = open_reader(&cfg, clickhouse)?;
        f(&*reader)
    })
    .await
    .map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "dashboard read"
    );
    answer.map_err(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// Blocked queries of one list in the window, and its share of all blocked queries.
#[derive(Serialize)]
struct ListBlocks {
    list: String,
    category: Option<String>,
    blocked: u64,
    share: f64,
    /// Configured in the policy now (a list that never blocks shows with 0).
    configured: bool,
}

async fn overview(State(st): State<AdminState>, Query(r): Query<Range>) -> Response {
    let w = match r.window() {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let scope = r.scope();
    let since_us = w.since;
    let (timeline, resolvers) = match read(&st, r.source.as_deref(), move |s| {
        Ok((s.timeline(&w, &scope)?, s.resolvers(&w)?))
    })
    .await
    {
        Ok(t) => t,
        Err(e) => return e,
    };
    let policy = st.engine.policy();
    let mut lists: Vec<ListBlocks> = timeline
        .by_list
        .iter()
        .map(|s| ListBlocks {
            list: s.key.clone().unwrap_or_default(),
            category: None,
            blocked: s.total,
            share: if timeline.blocked > 0 {
                s.total as f64 / timeline.blocked as f64
            } else {
                0.0
            },
            configured: false,
        })
        .collect();
    for spec in policy.specs() {
        match lists.iter_mut().find(|l| l.list == spec.name) {
            Some(l) => {
                l.configured = true;
                l.category = Some(spec.category.as_str().to_string());
            }
            None => lists.push(ListBlocks {
                list: spec.name.clone(),
                category: Some(spec.category.as_str().to_string()),
                blocked: 0,
                share: 0.0,
                configured: true,
            }),
        }
    }
    let snap = policy.snapshot();
    let events: Vec<_> = crate::events::status(&st.events, crate::timefmt::now_us())
        .into_iter()
        .filter(|e| e.state == "active")
        .collect();
    let alerts = recent_alerts(&st, since_us).await;
    Json(json!({
        "timeline": timeline,
        "events": events,
        "alerts": alerts,
        "lists": lists,
        "live": live(&st),
        "policy": {
            "names": snap.name_entries(), "addresses": snap.ip_entries(),
            "reloads": policy.reloads(), "last_reload_unix": policy.last_reload_unix(),
            "last_reload_ok": policy.last_ok(),
        },
        "feeds": st.feeds.as_ref().map(|f| f.status()).unwrap_or_default(),
        "runtime_entries": st.runtime.as_ref().map(|r| r.list().len()),
        "groups": snap.groups().groups().iter().map(|g| &*g.name).collect::<Vec<_>>(),
        "resolvers": resolvers,
    }))
    .into_response()
}

/// The latest alerts raised within the overview's range (at most 10, oldest first) from this
/// resolver's alert history; none without `[[alerts]]` or when the history cannot be read.
async fn recent_alerts(st: &AdminState, since_us: i64) -> Vec<crate::alerts::history::Listed> {
    use crate::alerts::history::{list_from, AlertFilter, HistorySource};
    let Some(path) = st.alerts.as_ref().map(|a| a.history_path().to_path_buf()) else {
        return Vec::new();
    };
    let filter = AlertFilter {
        since_us,
        limit: 10,
        ..Default::default()
    };
    let read = tokio::task::spawn_blocking(move || {
        list_from(HistorySource::Sqlite, Some(&path), None, &filter)
    });
    match read.await {
        Ok(Ok(list)) => list,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "dashboard: cannot read the alert history");
            Vec::new()
        }
        Err(_) => Vec::new(),
    }
}

/// The resolver's own figures now: q/s since the previous overview, cache hit ratio and mean
/// upstream latency since start; answers the validator found bogus (`null` without validation).
fn live(st: &AdminState) -> Value {
    let e = &st.engine;
    let text = e.recorder.metrics.encode();
    let sum = |prefix: &str| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let total = sum("dnsward_queries_total") as u64;
    let now = Instant::now();
    let qps = {
        let mut s = st.ui.qps_sample.lock().unwrap_or_else(|p| p.into_inner());
        let qps = match *s {
            Some((t, n, _)) if now.duration_since(t).as_secs_f64() >= 1.0 => {
                Some(total.saturating_sub(n) as f64 / now.duration_since(t).as_secs_f64())
            }
            Some((_, _, last)) => last,
            None => None,
        };
        if s.is_none_or(|(t, _, _)| now.duration_since(t).as_secs_f64() >= 1.0) {
            *s = Some((now, total, qps));
        }
        qps
    };
    let c = e.cache().stats();
    let lookups = c.hits + c.misses;
    let (lat_sum, lat_n) = (
        sum("dnsward_upstream_latency_seconds_sum"),
        sum("dnsward_upstream_latency_seconds_count"),
    );
    json!({
        "queries_total": total,
        "qps": qps,
        "cache_hit_ratio": (lookups > 0).then(|| c.hits as f64 / lookups as f64),
        "cache_entries": c.entries,
        "upstream_latency_ms": (lat_n > 0.0).then(|| 1000.0 * lat_sum / lat_n),
        "upstream_failures": e.resolve_stats().upstream_failures,
        "dnssec_bogus": e.validator().map(|v| v.bogus_count()),
        "negative_trust_anchors": e.validator().map(|v| v.negative_trust_anchors().iter().map(|z| z.to_ascii()).collect::<Vec<_>>()),
    })
}

/// The top lists of the range in whole minutes, as the overview's timeline: from the start
/// of `since`'s minute, and to the end of the unfinished minute when the range ends now (no
/// row is logged after now), so the totals come from the per-minute rollup alone and not from
/// the rows of the minutes at the ends (at 100,000 q/s a minute holds 6 million rows, and a
/// dashboard polls every few seconds). A range that ends in the past keeps its exact end.
async fn top(State(st): State<AdminState>, Query(r): Query<Range>) -> Response {
    let (since, until) = match r.times() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let m = crate::querylog::sinks::sqlite::MINUTE_US;
    let end = (until + m - 1).div_euclid(m) * m;
    let (since, until) = (
        since.div_euclid(m) * m,
        // `until` is now (the default, or given as now): the range reaches the present
        if until + 500_000 >= now_us() {
            end
        } else {
            until
        },
    );
    let q = TopQuery {
        since,
        until,
        limit: r.limit(10),
        group: r.group(),
        resolver: r.resolver(),
    };
    match read(&st, r.source.as_deref(), move |s| s.top(&q)).await {
        Ok(t) => Json(t).into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct ClientsQuery {
    min_blocked: Option<u64>,
    min_domains: Option<u64>,
    /// One category, or several separated by commas.
    category: Option<String>,
}

/// Clients that look infected: `dnsward logs clients`' view.
async fn clients(
    State(st): State<AdminState>,
    Query(range): Query<Range>,
    Query(q): Query<ClientsQuery>,
) -> Response {
    let (since, until) = match range.times() {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let (limit, group, resolver) = (range.limit(50), range.group(), range.resolver());
    let cats: Vec<String> = q
        .category
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let q = crate::querylog::read::ClientsQuery {
        window: (since, until),
        min_blocked: q.min_blocked.unwrap_or(10),
        min_domains: q.min_domains.unwrap_or(3),
        categories: cats,
        limit,
        group,
        resolver,
    };
    match read(&st, range.source.as_deref(), move |s| {
        s.suspicious_clients(&q)
    })
    .await
    {
        Ok(t) => Json(t).into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct ClientQuery {
    client: String,
}

/// One client's page: name, group, timeline, top domains blocked and allowed.
async fn client(
    State(st): State<AdminState>,
    Query(range): Query<Range>,
    Query(q): Query<ClientQuery>,
) -> Response {
    let w = match range.window() {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let limit = range.limit(20);
    let c = q.client.trim().to_string();
    match read(&st, range.source.as_deref(), move |s| {
        let rows = s.client_rows(&c, &w)?;
        Ok(ClientPage::build(&c, &w, &rows, limit))
    })
    .await
    {
        Ok(p) => Json(p).into_response(),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
struct DomainQuery {
    name: String,
}

/// One name's page: who asked, when, and the list and rule that block it now (`explain`).
async fn domain(
    State(st): State<AdminState>,
    Query(range): Query<Range>,
    Query(q): Query<DomainQuery>,
) -> Response {
    let w = match range.window() {
        Ok(w) => w,
        Err(e) => return e.into_response(),
    };
    let limit = range.limit(50);
    let name = q.name.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "give ?name=NAME");
    }
    let n = name.clone();
    let page: DomainPage = match read(&st, range.source.as_deref(), move |s| {
        let rows = s.domain_rows(&n, &w)?;
        Ok(DomainPage::build(&n, &w, &rows, limit))
    })
    .await
    {
        Ok(p) => p,
        Err(e) => return e,
    };
    // The policy as it stands, for the first client that asked (its group's lists).
    let client = page.clients.first().and_then(|c| c.client.parse().ok());
    let explain = explain_value(
        &st,
        &ExplainQuery {
            name: Some(name),
            ip: None,
            client,
        },
    );
    let mut v = serde_json::to_value(&page).unwrap_or(Value::Null);
    v["explain"] = explain;
    Json(v).into_response()
}

/// `GET /api/ui/search`'s parameters: the filters of `dnsward logs`, type, rcode, list, a
/// time range and a page.
#[derive(Deserialize, Default)]
struct SearchQuery {
    client: Option<String>,
    /// A name: exact, or with `suffix=1` the name and everything under it.
    name: Option<String>,
    suffix: Option<String>,
    action: Option<String>,
    category: Option<String>,
    list: Option<String>,
    client_name: Option<String>,
    qtype: Option<String>,
    rcode: Option<String>,
    offset: Option<usize>,
}

fn nonempty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
}

impl SearchQuery {
    fn search(&self, range: &Range) -> Result<Search, Bad> {
        let (since, until) = range.times()?;
        let action = match nonempty(&self.action) {
            Some(a) => Some(a.parse::<EventAction>().map_err(Bad)?),
            None => None,
        };
        let name = nonempty(&self.name).map(|n| n.trim_end_matches('.').to_ascii_lowercase());
        let suffix = matches!(self.suffix.as_deref(), Some("1" | "true" | "on"));
        let mut filters = Filters {
            client: nonempty(&self.client),
            action,
            category: nonempty(&self.category),
            client_name: nonempty(&self.client_name),
            group: range.group(),
            ..Filters::default()
        };
        let mut qname_exact = None;
        match (name, suffix) {
            (Some(n), true) => filters.qname_suffix = Some(n),
            (Some(n), false) => qname_exact = Some(n),
            (None, _) => {}
        }
        Ok(Search {
            filters,
            since,
            until,
            qname: qname_exact,
            qtype: nonempty(&self.qtype).map(|t| t.to_ascii_uppercase()),
            rcode: nonempty(&self.rcode).map(|t| t.to_ascii_uppercase()),
            list: nonempty(&self.list),
            resolver: range.resolver(),
            offset: self.offset.unwrap_or(0).min(100_000),
            limit: range.limit.unwrap_or(100).clamp(1, 1000),
        })
    }
}

async fn search(
    State(st): State<AdminState>,
    Query(range): Query<Range>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let s = match q.search(&range) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let (offset, limit) = (s.offset, s.limit);
    match read(&st, range.source.as_deref(), move |r| r.search(&s)).await {
        Ok(rows) => Json(json!({
            "offset": offset, "limit": limit, "more": rows.len() >= limit, "rows": rows,
        }))
        .into_response(),
        Err(e) => e,
    }
}

/// The same page as `search`, as CSV (`dnsward logs export`'s columns).
async fn search_csv(
    State(st): State<AdminState>,
    Query(range): Query<Range>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let s = match q.search(&range) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    match read(&st, range.source.as_deref(), move |r| r.search(&s)).await {
        Ok(rows) => {
            let mut body = String::from(CSV_HEADER);
            body.push('\n');
            let mut line = String::new();
            for r in &rows {
                write_csv_line(&mut line, r);
                body.push_str(&line);
            }
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                    (
                        header::CONTENT_DISPOSITION,
                        "attachment; filename=\"dnsward-search.csv\"",
                    ),
                ],
                body,
            )
                .into_response()
        }
        Err(e) => e,
    }
}
