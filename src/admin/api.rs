//! The admin HTTP listener: `/metrics` (Prometheus), `/healthz`, and the JSON API under
//! `/api/`, which requires `Authorization: Bearer <token>` (compared in constant time) and is
//! off when no token file is configured.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::config::{AdminConfig, Config};
use crate::feeds::{FeedError, Feeds};
use crate::pipeline::Engine;
use crate::policy::runtime::{NewEntry, RuntimeList};
use crate::policy::Verdict;
use crate::server::tls::CertStore;

#[derive(Clone)]
pub struct AdminState {
    pub engine: Arc<Engine>,
    pub runtime: Option<Arc<RuntimeList>>,
    /// The runtime allow list (`/api/lists/allow`), beside the runtime (block) list.
    pub runtime_allow: Option<Arc<RuntimeList>>,
    token: Option<Arc<str>>,
    /// TLS certificates re-read by `POST /api/reload` (DoT/DoH, block page).
    pub certs: Arc<[Arc<CertStore>]>,
    /// Remote lists (`[[lists]] url`): status, refresh now, accept a rejected download.
    pub feeds: Option<Arc<Feeds>>,
    /// `[querylog]`: the stores the dashboard's `/api/ui/` routes read.
    pub querylog: Option<Arc<crate::querylog::QueryLogConfig>>,
    /// The dashboard's own state: its action record, the q/s sample.
    pub ui: Arc<crate::admin::ui::UiState>,
    /// `[[alerts]]`: history (`GET /api/alerts`) and metrics.
    pub alerts: Option<Arc<crate::alerts::Alerts>>,
    /// `[[events]]`: their state in `/api/stats`.
    pub events: Arc<[crate::events::EventConfig]>,
}

/// Why the admin listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin token {}: {source}", path.display())]
    Token {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("admin listener {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("admin TLS certificate/key: {0}")]
    Tls(std::io::Error),
    #[error("runtime allow list: {0}")]
    RuntimeAllow(#[from] crate::policy::runtime::RuntimeListError),
}

pub struct AdminServer {
    pub addr: SocketAddr,
    handle: axum_server::Handle<SocketAddr>,
    task: tokio::task::JoinHandle<()>,
    /// Drops runtime allow entries past their expiry.
    expiry: Option<tokio::task::JoinHandle<()>>,
}

impl AdminServer {
    pub async fn start(
        config: &Config,
        admin: &AdminConfig,
        engine: Arc<Engine>,
        runtime: Option<Arc<RuntimeList>>,
        certs: Vec<Arc<CertStore>>,
        feeds: Option<Arc<Feeds>>,
        alerts: Option<Arc<crate::alerts::Alerts>>,
    ) -> Result<AdminServer, AdminError> {
        let token = match &admin.token_file {
            Some(p) => {
                let path = config.resolve_path(p);
                let t = std::fs::read_to_string(&path)
                    .map_err(|source| AdminError::Token { path, source })?;
                Some(Arc::from(t.trim()))
            }
            None => None,
        };
        let runtime_allow = match config.runtime_allow_path() {
            Some(p) => Some(Arc::new(RuntimeList::open(&p)?)),
            None => None,
        };
        let expiry = runtime_allow
            .clone()
            .map(|list| tokio::spawn(expire_allowed(list, Arc::clone(&engine))));
        let state = AdminState {
            engine,
            runtime,
            runtime_allow,
            token,
            certs: Arc::from(certs),
            feeds,
            querylog: config.querylog.clone().map(Arc::new),
            ui: Arc::default(),
            alerts,
            events: Arc::from(config.events.clone()),
        };
        let app = router(state);
        let listen_err = |source| AdminError::Listen {
            addr: admin.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(admin.listen).map_err(listen_err)?;
        let addr = listener.local_addr().map_err(listen_err)?;
        let handle = axum_server::Handle::new();
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let task = match (&admin.tls_cert, &admin.tls_key) {
            (Some(cert), Some(key)) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(
                    config.resolve_path(cert),
                    config.resolve_path(key),
                )
                .await
                .map_err(AdminError::Tls)?;
                let server = axum_server::from_tcp_rustls(listener, tls)
                    .map_err(listen_err)?
                    .handle(handle.clone());
                tokio::spawn(async move {
                    if let Err(e) = server.serve(service).await {
                        tracing::error!(error = %e, "admin listener stopped");
                    }
                })
            }
            _ => {
                let server = axum_server::from_tcp(listener)
                    .map_err(listen_err)?
                    .handle(handle.clone());
                tokio::spawn(async move {
                    if let Err(e) = server.serve(service).await {
                        tracing::error!(error = %e, "admin listener stopped");
                    }
                })
            }
        };
        tracing::info!(%addr, tls = admin.tls_cert.is_some(), api = admin.token_file.is_some(), "admin listening (/metrics, /healthz, /api)");
        Ok(AdminServer {
            addr,
            handle,
            task,
            expiry,
        })
    }

    pub async fn shutdown(self) {
        if let Some(e) = &self.expiry {
            e.abort();
        }
        self.handle.graceful_shutdown(Some(Duration::from_secs(2)));
        let _ = tokio::time::timeout(Duration::from_secs(3), self.task).await;
    }
}

/// Runtime allow entries past their expiry drop out on their own (checked every second).
async fn expire_allowed(list: Arc<RuntimeList>, engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        match list.expire(crate::timefmt::now_us()) {
            Ok(gone) if !gone.is_empty() => {
                for g in &gone {
                    tracing::info!(name = %g.name, "runtime allow entry expired ({})", g.describe());
                }
                engine
                    .policy()
                    .reload("runtime allow entries expired")
                    .await;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("runtime allow list: {e}"),
        }
    }
}

pub fn router(state: AdminState) -> Router {
    let api = Router::new()
        .route("/reload", post(reload))
        .route("/lists/runtime", get(runtime_list).post(runtime_add))
        .route("/lists/runtime/{name}", delete(runtime_remove))
        .route("/lists/allow", get(allow_list).post(allow_add))
        .route("/lists/allow/{name}", delete(allow_remove))
        .route("/explain", get(explain))
        .route("/cache/flush", post(cache_flush))
        .route("/nta", get(nta_list).post(nta_add))
        .route("/nta/{zone}", delete(nta_remove))
        .route("/stats", get(stats))
        .route("/alerts", get(alerts_list))
        .route("/lists/{name}/accept", post(feed_accept))
        .route("/lists/{name}/refresh", post(feed_refresh))
        .nest("/ui", crate::admin::ui::data_routes())
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api", api)
        .merge(crate::admin::ui::page_routes())
        .with_state(state)
}

pub(super) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

async fn require_token(
    State(st): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    req: Request,
    next: Next,
) -> Response {
    let Some(token) = &st.token else {
        return error(
            StatusCode::NOT_FOUND,
            "the admin API is off: set [admin] token_file",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        return next.run(req).await;
    }
    tracing::warn!(%peer, method = %req.method(), path = %req.uri().path(), "admin API: missing or wrong token");
    error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token")
}

async fn metrics(State(st): State<AdminState>) -> Response {
    let e = &st.engine;
    let m = &e.recorder.metrics;
    let c = e.cache().stats();
    m.cache_hits.set(c.hits as i64);
    m.cache_misses.set(c.misses as i64);
    m.cache_entries.set(c.entries as i64);
    m.stale_served.set(c.stale_served as i64);
    let p = e.policy();
    let snap = p.snapshot();
    m.policy_names.set(snap.name_entries() as i64);
    m.policy_addresses.set(snap.ip_entries() as i64);
    m.policy_last_reload.set(p.last_reload_unix() as f64);
    m.policy_last_reload_ok.set(p.last_ok() as i64);
    m.policy_reloads.set(p.reloads() as i64);
    for s in e.recorder.log().stats() {
        let l = crate::metrics::SinkLabel {
            sink: s.name.clone(),
        };
        m.querylog_queued.get_or_create(&l).set(s.queued as i64);
        m.querylog_dropped.get_or_create(&l).set(s.dropped as i64);
        m.querylog_written.get_or_create(&l).set(s.written as i64);
        m.querylog_skipped.get_or_create(&l).set(s.skipped as i64);
    }
    let a = &e.admission;
    let ld = std::sync::atomic::Ordering::Relaxed;
    for (kind, v) in [
        ("acl", &a.refused),
        ("client_rate", &a.rate_limited),
        ("rrl", &a.rrl_limited),
    ] {
        m.limited
            .get_or_create(&crate::metrics::KindLabel { kind })
            .set(v.load(ld) as i64);
    }
    let mut body = m.encode();
    if let Some(f) = &st.feeds {
        // Both registries in one exposition: the feeds' samples go before the closing `# EOF`.
        let eof = body.rfind("# EOF").unwrap_or(body.len());
        let mut feeds = String::new();
        f.encode_metrics(&mut feeds);
        body.insert_str(eof, &feeds);
    }
    if let Some(v) = e.validator() {
        let eof = body.rfind("# EOF").unwrap_or(body.len());
        body.insert_str(eof, &dnssec_metrics(v));
    }
    if let Some(a) = &st.alerts {
        let eof = body.rfind("# EOF").unwrap_or(body.len());
        let mut alerts = String::new();
        a.encode_metrics(&mut alerts);
        body.insert_str(eof, &alerts);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// `dnsward_dnssec_bogus_total`, read from the validator at scrape time.
fn dnssec_metrics(v: &crate::dnssec::Validator) -> String {
    use prometheus_client::metrics::counter::ConstCounter;
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register(
        "dnsward_dnssec_bogus",
        "Answers the DNSSEC validator found bogus, iterating or forwarding (SERVFAIL to the client)",
        ConstCounter::new(v.bogus_count()),
    );
    let mut s = String::new();
    let _ = prometheus_client::encoding::text::encode_registry(&mut s, &registry);
    s
}

async fn reload(State(st): State<AdminState>) -> Response {
    let report = st.engine.policy().reload("admin API").await;
    let tls: Vec<Value> = st
        .certs
        .iter()
        .map(|c| match c.reload() {
            Ok(()) => json!({ "ok": true }),
            Err(e) => {
                tracing::error!("{e}; keeping the current certificate");
                json!({ "ok": false, "error": e.to_string() })
            }
        })
        .collect();
    Json(json!({
        "tls": tls,
        "elapsed_ms": report.elapsed.as_millis() as u64,
        "lists": report.lists.iter().map(|l| json!({
            "name": l.name, "path": l.path, "entries": l.entries, "bad_lines": l.bad_lines,
            "error": l.error, "kept_previous": l.kept_previous,
        })).collect::<Vec<_>>(),
    }))
    .into_response()
}

async fn runtime_list(State(st): State<AdminState>) -> Response {
    match &st.runtime {
        Some(r) => Json(json!({ "path": r.path(), "entries": r.list() })).into_response(),
        None => error(StatusCode::NOT_FOUND, "no runtime list"),
    }
}

pub(super) async fn runtime_add(
    State(st): State<AdminState>,
    body: Result<Json<NewEntry>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(r) = &st.runtime else {
        return error(StatusCode::NOT_FOUND, "no runtime list");
    };
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    match r.add(new, crate::timefmt::now_us()) {
        Ok(entry) => {
            tracing::info!(name = %entry.name, "runtime list: {}", entry.describe());
            // Takes effect at once: the new snapshot is in place before we answer.
            st.engine.policy().reload("runtime entry added").await;
            (StatusCode::CREATED, Json(json!(entry))).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn allow_list(State(st): State<AdminState>) -> Response {
    match &st.runtime_allow {
        Some(r) => Json(json!({ "path": r.path(), "entries": r.list() })).into_response(),
        None => error(StatusCode::NOT_FOUND, "no runtime allow list"),
    }
}

/// `POST /api/lists/allow`: the name (and everything below it) is answered normally whatever
/// a list says, for every group, at once; recorded with who, when, why, reference, expiry.
pub(super) async fn allow_add(
    State(st): State<AdminState>,
    body: Result<Json<NewEntry>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Some(r) = &st.runtime_allow else {
        return error(StatusCode::NOT_FOUND, "no runtime allow list");
    };
    let Json(new) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if new.group.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "the runtime allow list applies to every group: leave out \"group\"",
        );
    }
    match r.add(new, crate::timefmt::now_us()) {
        Ok(entry) => {
            tracing::warn!(name = %entry.name, "runtime allow list: {}", entry.describe());
            st.engine.policy().reload("runtime allow entry added").await;
            (StatusCode::CREATED, Json(json!(entry))).into_response()
        }
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

pub(super) async fn allow_remove(
    State(st): State<AdminState>,
    Path(name): Path<String>,
) -> Response {
    let Some(r) = &st.runtime_allow else {
        return error(StatusCode::NOT_FOUND, "no runtime allow list");
    };
    match r.remove_scoped(None, &name) {
        Ok(true) => {
            tracing::info!(%name, "runtime allow list: entry removed");
            st.engine
                .policy()
                .reload("runtime allow entry removed")
                .await;
            Json(json!({ "removed": name })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            format!("{name} is not in the runtime allow list"),
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct ScopeQuery {
    /// The group whose entry to remove; absent = the entry for every group.
    pub group: Option<String>,
}

pub(super) async fn runtime_remove(
    State(st): State<AdminState>,
    Path(name): Path<String>,
    Query(scope): Query<ScopeQuery>,
) -> Response {
    let Some(r) = &st.runtime else {
        return error(StatusCode::NOT_FOUND, "no runtime list");
    };
    match r.remove_scoped(scope.group.as_deref(), &name) {
        Ok(true) => {
            tracing::info!(%name, "runtime list: entry removed");
            st.engine.policy().reload("runtime entry removed").await;
            Json(json!({ "removed": name })).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            match &scope.group {
                Some(g) => format!("{name} is not in the runtime list of group {g}"),
                None => format!("{name} is not in the runtime list"),
            },
        ),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[derive(Deserialize)]
pub(super) struct ExplainQuery {
    pub name: Option<String>,
    pub ip: Option<IpAddr>,
    /// Answer for this client address's group.
    pub client: Option<IpAddr>,
}

async fn explain(State(st): State<AdminState>, Query(q): Query<ExplainQuery>) -> Response {
    if q.name.is_none() && q.ip.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "give ?name=NAME and/or ?ip=ADDRESS",
        );
    }
    Json(explain_value(&st, &q)).into_response()
}

/// What `GET /api/explain` answers: the rules that match, for the client's group.
pub(super) fn explain_value(st: &AdminState, q: &ExplainQuery) -> Value {
    let snap = st.engine.policy().snapshot();
    let who = q
        .client
        .map(|c| snap.groups().lookup(c))
        .unwrap_or_default();
    let mut hits: Vec<Verdict> = q
        .name
        .as_deref()
        .map(|n| snap.explain_name_for(n, who))
        .unwrap_or_default();
    if let Some(ip) = q.ip {
        hits.extend(snap.explain_ip_for(ip, who));
    }
    let blocked = !hits.is_empty() && !hits.iter().any(Verdict::is_allow);
    let rules: Vec<Value> = hits
        .iter()
        .map(|v| {
            let r = v.rule();
            let runtime = crate::policy::groups::runtime_scope(&r.list)
                .and_then(|scope| st.runtime.as_ref().and_then(|rt| rt.get_scoped(scope, &r.trigger_name)))
                .or_else(|| {
                    let allow = &*r.list == crate::policy::groups::RUNTIME_ALLOW_LIST;
                    st.runtime_allow.as_ref().filter(|_| allow)?.get_scoped(None, &r.trigger_name)
                });
            json!({
                "action": match v { Verdict::Block { action, .. } => action.map(|a| format!("{a:?}").to_lowercase()), _ => None },
                "kind": match v { Verdict::Allow(_) => "allow", Verdict::Block { .. } => "block", Verdict::LocalData { .. } => "local-data", Verdict::Drop(_) => "drop" },
                "list": &*r.list, "category": r.category.as_str(), "rule": r.trigger_name,
                "file": r.file, "line": r.line, "text": r.rule_text().ok(), "runtime": runtime,
            })
        })
        .collect();
    let groups = snap.groups();
    let client = q.client.map(|c| json!({ "address": c, "name": groups.client_name(who).map(|n| &**n), "group": &*groups.group(who).name }));
    json!({ "name": q.name, "ip": q.ip, "client": client, "blocked": blocked, "rules": rules })
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FlushBody {
    pub name: Option<String>,
}

/// The negative trust anchors (RFC 7646) in force: zones not validated until removed.
async fn nta_list(State(st): State<AdminState>) -> Response {
    match st.engine.validator() {
        Some(v) => Json(json!({ "negative_trust_anchors": nta_names(v) })).into_response(),
        None => error(
            StatusCode::CONFLICT,
            "DNSSEC validation is off ([resolver] dnssec is not \"validate\")",
        ),
    }
}

#[derive(Deserialize)]
pub(super) struct NtaBody {
    pub zone: String,
}

pub(super) async fn nta_add(State(st): State<AdminState>, Json(body): Json<NtaBody>) -> Response {
    let Some(v) = st.engine.validator() else {
        return error(
            StatusCode::CONFLICT,
            "DNSSEC validation is off ([resolver] dnssec is not \"validate\")",
        );
    };
    let zone = match hickory_proto::rr::Name::from_ascii(body.zone.trim()) {
        Ok(mut z) if !body.zone.trim().is_empty() => {
            z.set_fqdn(true);
            z.to_lowercase()
        }
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("{:?} is not a zone name", body.zone),
            )
        }
    };
    let mut zones = v.negative_trust_anchors();
    if !zones.contains(&zone) {
        zones.push(zone.clone());
    }
    v.set_negative_trust_anchors(zones);
    tracing::warn!(%zone, "negative trust anchor added through the admin API: the zone is not validated");
    Json(json!({ "negative_trust_anchors": nta_names(v) })).into_response()
}

pub(super) async fn nta_remove(State(st): State<AdminState>, Path(zone): Path<String>) -> Response {
    let Some(v) = st.engine.validator() else {
        return error(
            StatusCode::CONFLICT,
            "DNSSEC validation is off ([resolver] dnssec is not \"validate\")",
        );
    };
    let Ok(mut name) = hickory_proto::rr::Name::from_ascii(&zone) else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{zone:?} is not a zone name"),
        );
    };
    name.set_fqdn(true);
    let mut zones = v.negative_trust_anchors();
    let before = zones.len();
    zones.retain(|z| *z != name);
    if zones.len() == before {
        return error(
            StatusCode::NOT_FOUND,
            format!("{zone} is not a negative trust anchor"),
        );
    }
    v.set_negative_trust_anchors(zones);
    // Answers cached while the zone was not validated must be validated again.
    let removed = st.engine.cache().flush(None);
    tracing::info!(%zone, removed, "negative trust anchor removed through the admin API; packet cache flushed");
    Json(json!({ "negative_trust_anchors": nta_names(v) })).into_response()
}

fn nta_names(v: &crate::dnssec::Validator) -> Vec<String> {
    v.negative_trust_anchors()
        .iter()
        .map(|z| z.to_ascii())
        .collect()
}

pub(super) async fn cache_flush(
    State(st): State<AdminState>,
    body: Option<Json<FlushBody>>,
) -> Response {
    let name = body.and_then(|Json(b)| b.name);
    let wire = match name.as_deref() {
        None => None,
        Some(n) => match hickory_proto::rr::Name::from_ascii(n) {
            Ok(mut parsed) => {
                parsed.set_fqdn(true);
                let mut bytes = Vec::new();
                let mut enc = hickory_proto::serialize::binary::BinEncoder::new(&mut bytes);
                if hickory_proto::serialize::binary::BinEncodable::emit(
                    &parsed.to_lowercase(),
                    &mut enc,
                )
                .is_err()
                {
                    return error(StatusCode::BAD_REQUEST, format!("bad name {n:?}"));
                }
                Some(bytes)
            }
            Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad name {n:?}: {e}")),
        },
    };
    let removed = st.engine.cache().flush(wire.as_deref());
    tracing::info!(name = ?name, removed, "cache flushed through the admin API");
    Json(json!({ "removed": removed, "name": name })).into_response()
}

async fn stats(State(st): State<AdminState>) -> Response {
    let e = &st.engine;
    let p = e.policy();
    let snap = p.snapshot();
    let ld = std::sync::atomic::Ordering::Relaxed;
    Json(json!({
        "cache": e.cache().stats(),
        "upstream": e.resolve_stats(),
        "policy": {
            "names": snap.name_entries(), "addresses": snap.ip_entries(),
            "reloads": p.reloads(), "last_reload_unix": p.last_reload_unix(), "last_reload_ok": p.last_ok(),
        },
        "querylog": e.recorder.log().stats(),
        "feeds": st.feeds.as_ref().map(|f| f.status()).unwrap_or_default(),
        "events": crate::events::status(&st.events, crate::timefmt::now_us()),
        "admission": {
            "refused": e.admission.refused.load(ld),
            "rate_limited": e.admission.rate_limited.load(ld),
            "rrl_limited": e.admission.rrl_limited.load(ld),
        },
    }))
    .into_response()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsQuery {
    since: Option<String>,
    limit: Option<String>,
    rule: Option<String>,
    kind: Option<String>,
    client: Option<String>,
    outcome: Option<String>,
    source: Option<String>,
}

/// `GET /api/alerts?since=24h&limit=1000&rule=&kind=&client=&outcome=&source=sqlite`: the
/// alert history, oldest first, with each alert's delivery outcome; a bad value is a 400
/// saying which and why.
async fn alerts_list(
    State(st): State<AdminState>,
    q: Result<Query<AlertsQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    use crate::alerts::history::{list_from, AlertFilter, HistoryError, HistorySource};
    let Query(q) = match q {
        Ok(q) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let parsed = AlertFilter::parse(
        q.since.as_deref().unwrap_or("24h"),
        q.limit.as_deref(),
        q.rule.as_deref(),
        q.kind.as_deref(),
        q.client.as_deref(),
        q.outcome.as_deref(),
    )
    .and_then(|f| {
        let source: HistorySource = q.source.as_deref().unwrap_or("sqlite").parse()?;
        Ok((f, source))
    });
    let (filter, source) = match parsed {
        Ok(x) => x,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let sqlite = st.alerts.as_ref().map(|a| a.history_path().to_path_buf());
    let querylog = st.querylog.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let target = match querylog.as_deref() {
            Some(q) => crate::querylog::clickhouse_client::ClickhouseTarget::from_config(q)?,
            None => None,
        };
        list_from(source, sqlite.as_deref(), target, &filter)
    })
    .await;
    let pending = st.alerts.as_ref().map(|a| a.pending()).unwrap_or_default();
    match listed {
        Ok(Ok(list)) => Json(json!({ "alerts": list, "pending": pending })).into_response(),
        Ok(Err(e @ HistoryError::BadFilter(_))) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Ok(Err(e @ HistoryError::Sqlite(_))) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn feed_error(e: FeedError) -> Response {
    let status = match &e {
        FeedError::UnknownFeed(_) => StatusCode::NOT_FOUND,
        FeedError::NothingRejected(_) | FeedError::NotAcceptable { .. } => StatusCode::CONFLICT,
        FeedError::Store(_) | FeedError::Fetch(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// `POST /api/lists/NAME/accept`: the rejected download becomes the copy in force, once.
async fn feed_accept(State(st): State<AdminState>, Path(name): Path<String>) -> Response {
    let Some(feeds) = &st.feeds else {
        return error(StatusCode::NOT_FOUND, "no list has a url");
    };
    match feeds.accept(&name).await {
        Ok(entries) => {
            Json(json!({ "list": name, "accepted": true, "entries": entries })).into_response()
        }
        Err(e) => feed_error(e),
    }
}

/// `POST /api/lists/NAME/refresh`: fetch the feed now; answers what the fetch did.
async fn feed_refresh(State(st): State<AdminState>, Path(name): Path<String>) -> Response {
    let Some(feeds) = &st.feeds else {
        return error(StatusCode::NOT_FOUND, "no list has a url");
    };
    match feeds.refresh(&name).await {
        Ok(outcome) => Json(json!({ "list": name, "outcome": outcome })).into_response(),
        Err(e) => feed_error(e),
    }
}
