//! DNS over HTTPS (RFC 8484) at `/dns-query`: GET with `?dns=` (base64url) and POST with an
//! `application/dns-message` body. Our own axum handler because hickory-server 0.26's DoH
//! rejects GET (hickory-dns issue 3916); the message then takes the same pipeline as UDP.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Deserialize;

use super::exchange::exchange;
use super::http::Peer;
use crate::dnswire;
use crate::pipeline::{Engine, Transport};

pub const PATH: &str = "/dns-query";
pub const CONTENT_TYPE: &str = "application/dns-message";
/// A DNS message is at most 65,535 bytes; a bigger body is refused with 413.
const MAX_MESSAGE: usize = 65_535;
/// A POST body must arrive within this long (slow senders are cut off with 408).
const BODY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
struct DohState {
    engine: Arc<Engine>,
}

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new()
        .route(PATH, get(doh_get).post(doh_post))
        .with_state(DohState { engine })
}

#[derive(Deserialize)]
struct GetParams {
    dns: Option<String>,
}

async fn doh_get(
    State(st): State<DohState>,
    Extension(Peer(peer)): Extension<Peer>,
    params: Result<Query<GetParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(GetParams { dns: Some(b64) })) = params else {
        return bad(
            peer,
            StatusCode::BAD_REQUEST,
            "GET needs ?dns= with a base64url DNS message",
        );
    };
    // RFC 8484 says base64url without padding; tolerate padding some clients still send.
    let trimmed = b64.trim_end_matches('=');
    if trimmed.len() > (MAX_MESSAGE * 4).div_ceil(3) {
        return bad(
            peer,
            StatusCode::URI_TOO_LONG,
            "dns= is longer than any DNS message",
        );
    }
    let Ok(msg) = data_encoding::BASE64URL_NOPAD.decode(trimmed.as_bytes()) else {
        return bad(peer, StatusCode::BAD_REQUEST, "dns= is not base64url");
    };
    answer(&st.engine, &msg, peer).await
}

async fn doh_post(
    State(st): State<DohState>,
    Extension(Peer(peer)): Extension<Peer>,
    req: Request,
) -> Response {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(CONTENT_TYPE))
    {
        return bad(
            peer,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "POST needs Content-Type: application/dns-message",
        );
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MESSAGE) {
        return bad(
            peer,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body larger than a DNS message",
        );
    }
    let body = match tokio::time::timeout(
        BODY_TIMEOUT,
        axum::body::to_bytes(req.into_body(), MAX_MESSAGE),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return bad(
                peer,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body larger than a DNS message",
            )
        }
        Err(_) => return bad(peer, StatusCode::REQUEST_TIMEOUT, "body too slow"),
    };
    answer(&st.engine, &body, peer).await
}

async fn answer(engine: &Engine, msg: &[u8], peer: std::net::SocketAddr) -> Response {
    // A message that parses but carries bytes after its last record is malformed (RFC 8484
    // 4.2.1: the body is exactly one DNS message).
    if let Ok(q) = dnswire::parse_query(msg) {
        if q.end != msg.len() {
            return bad(
                peer,
                StatusCode::BAD_REQUEST,
                "trailing bytes after the DNS message",
            );
        }
    } else if msg.len() < 12 {
        return bad(peer, StatusCode::BAD_REQUEST, "not a DNS message");
    }
    let Some(resp) = exchange(engine, msg, Transport::Doh, peer).await else {
        // Dropped by policy or the ACL: nothing to send, as over UDP; say so plainly.
        return (StatusCode::FORBIDDEN, "no answer\n").into_response();
    };
    // RFC 8484 5.1: freshness no longer than the smallest TTL in the answer.
    let max_age = dnswire::ttl_offsets(&resp)
        .and_then(|(_, min)| min)
        .unwrap_or(0);
    let mut r = Response::new(Body::from(Bytes::from(resp)));
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(v) = HeaderValue::from_str(&format!("max-age={max_age}")) {
        h.insert(header::CACHE_CONTROL, v);
    }
    r
}

fn bad(peer: std::net::SocketAddr, status: StatusCode, why: &'static str) -> Response {
    tracing::info!(%peer, status = status.as_u16(), "DoH request refused: {why}");
    (status, format!("{why}\n")).into_response()
}
