//! The page itself: for any Host and any path, what was blocked, why, when, the reference ID
//! and whom to call. Everything taken from the request is HTML-escaped.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Deserialize;

use super::i18n::{self, Texts};
use super::reference::reference;
use crate::config::{BlockpageConfig, Config};
use crate::policy::reload::PolicyStore;
use crate::policy::{Category, Verdict};
use crate::timefmt::{format_ts, now_us};

/// What the page needs beside the request.
#[derive(Clone)]
pub struct PageState {
    pub policy: Arc<PolicyStore>,
    pub languages: Arc<[String]>,
    pub contact: Option<Arc<str>>,
    pub appeal_text: Option<Arc<str>>,
    pub appeal_link: Option<Arc<str>>,
}

impl PageState {
    pub fn new(config: &Config, b: &BlockpageConfig, policy: Arc<PolicyStore>) -> PageState {
        PageState {
            policy,
            languages: Arc::from(b.languages.clone()),
            contact: config.policy.contact.as_deref().map(Arc::from),
            appeal_text: b.appeal_text.as_deref().map(Arc::from),
            appeal_link: b.appeal_link.as_deref().map(Arc::from),
        }
    }
}

pub fn router(state: PageState) -> Router {
    Router::new().fallback(page).with_state(state)
}

#[derive(Deserialize)]
struct PageQuery {
    lang: Option<String>,
}

async fn page(
    State(st): State<PageState>,
    q: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let host = headers
        .get(header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .unwrap_or_default();
    let domain = strip_port(&host).trim_end_matches('.').to_ascii_lowercase();
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let lang = i18n::choose(
        &st.languages,
        q.as_ref().ok().and_then(|q| q.lang.as_deref()),
        accept,
    );
    let now = now_us();
    let verdict = st
        .policy
        .snapshot()
        .match_name(&domain)
        .filter(|v| !v.is_allow());
    let html = render(&st, i18n::texts(lang), &domain, verdict.as_ref(), now);
    let mut r = (StatusCode::OK, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // No script, no outside resource: the page cannot be turned against the reader.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(lang) {
        h.insert(header::CONTENT_LANGUAGE, v);
    }
    r
}

/// `host`, `host:port`, `[v6]:port` -> the host part.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn render(st: &PageState, t: &Texts, domain: &str, verdict: Option<&Verdict>, now: i64) -> String {
    let (why, category, list) = match verdict {
        Some(v) => {
            let r = v.rule();
            let (why, cat) = match r.category {
                Category::Threat => (t.threat, t.category_threat),
                Category::Abandoned => (t.abandoned, t.category_abandoned),
                _ => (t.other, r.category.as_str()),
            };
            (why, Some(cat), Some(r.list.to_string()))
        }
        None => (t.not_blocked, None, None),
    };
    let id = reference(domain, now);
    let mut rows = String::new();
    let mut row = |label: &str, value: &str, id_attr: &str| {
        let _ = write!(
            rows,
            "<tr><th>{}</th><td id=\"{id_attr}\">{}</td></tr>",
            escape(label),
            escape(value)
        );
    };
    row(t.domain, domain, "domain");
    if let (Some(c), Some(l)) = (category, list.as_deref()) {
        row(t.category, c, "category");
        row(t.list, l, "list");
    }
    row(t.time, &format_ts(now, 0), "time");
    row(t.reference, &id, "reference");
    if let Some(c) = st.contact.as_deref() {
        row(t.contact, c, "contact");
    }
    let mut appeal = String::new();
    if st.appeal_text.is_some() || st.appeal_link.is_some() {
        let _ = write!(appeal, "<h2>{}</h2><p>", escape(t.appeal));
        if let Some(text) = st.appeal_text.as_deref() {
            appeal.push_str(&escape(text));
        }
        if let Some(link) = st.appeal_link.as_deref() {
            let _ = write!(
                appeal,
                " <a id=\"appeal\" href=\"{0}\">{0}</a>",
                escape(link)
            );
        }
        appeal.push_str("</p>");
    }
    let others: String = st
        .languages
        .iter()
        .filter(|l| l.as_str() != t.lang)
        .map(|l| {
            format!(
                "<a href=\"?lang={0}\">{1}</a> ",
                escape(l),
                escape(i18n::texts(l).name)
            )
        })
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
<title>{title}</title><style>body{{font-family:sans-serif;max-width:40em;margin:2em auto;padding:0 1em;color:#222}}\
h1{{color:#b00020}}th{{text-align:left;padding-right:1em;vertical-align:top}}td{{word-break:break-all}}</style></head>\
<body><h1>{heading}</h1><p id=\"why\">{why}</p><table>{rows}</table><p>{mistake}</p>{appeal}<p>{others}</p></body></html>\n",
        lang = t.lang,
        title = escape(t.title),
        heading = escape(t.heading),
        why = escape(why),
        mistake = escape(t.mistake),
    )
}

/// HTML escaping of text and attribute values: five characters; a crate for this one
/// function would weigh more than it.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_strips_ports() {
        assert_eq!(
            escape("<script>alert('x')</script>&\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
        );
        assert_eq!(strip_port("evil.example:8080"), "evil.example");
        assert_eq!(strip_port("[::1]:80"), "::1");
        assert_eq!(strip_port("evil.example"), "evil.example");
    }
}
