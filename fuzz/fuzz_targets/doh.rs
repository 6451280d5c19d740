//! The DoH request parser (`src/server/doh.rs`, GET `?dns=` and POST) in front of the engine,
//! driven as axum drives it: whatever the request, the status is one of 200, 400, 403, 408,
//! 413, 414, 415; a 200 carries `application/dns-message`, a `max-age` and an answer that is
//! a well-formed DNS message with the query's ID and question.
//!
//! Input: byte 0 picks GET with base64url of the rest, GET with the rest as the raw query
//! string, or POST with one of several content types and the rest as the body.
#![no_main]

mod common;

use std::net::SocketAddr;
use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::{Extension, Router};
use dnsward::server::doh::{router, CONTENT_TYPE, PATH};
use dnsward::server::http::Peer;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

static APP: LazyLock<Router> = LazyLock::new(|| {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    router(common::ENGINE.clone()).layer(Extension(Peer(peer)))
});

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let (req, msg): (Request<Body>, Option<&[u8]>) = match sel % 4 {
        0 => {
            let b64 = data_encoding::BASE64URL_NOPAD.encode(rest);
            let pad = if sel & 0x10 != 0 { "==" } else { "" };
            let Ok(r) = Request::get(format!("{PATH}?dns={b64}{pad}")).body(Body::empty()) else {
                return;
            };
            (r, Some(rest))
        }
        1 => {
            let q = String::from_utf8_lossy(rest);
            let Ok(r) = Request::get(format!("{PATH}?{q}")).body(Body::empty()) else {
                return;
            };
            (r, None)
        }
        _ => {
            let ct = match sel >> 4 {
                0 => CONTENT_TYPE.to_string(),
                1 => format!("{CONTENT_TYPE}; charset=binary"),
                2 => "APPLICATION/DNS-MESSAGE".into(),
                3 => "text/plain".into(),
                _ => String::new(),
            };
            let mut b = Request::post(PATH);
            if !ct.is_empty() {
                b = b.header(header::CONTENT_TYPE, ct);
            }
            let Ok(r) = b.body(Body::from(rest.to_vec())) else {
                return;
            };
            (r, Some(rest))
        }
    };
    let resp = common::RT.block_on(APP.clone().oneshot(req)).unwrap();
    let status = resp.status();
    assert!(
        [200, 400, 403, 408, 413, 414, 415].contains(&status.as_u16()),
        "status {status}"
    );
    if status != StatusCode::OK {
        return;
    }
    let h = resp.headers();
    assert_eq!(h[header::CONTENT_TYPE], CONTENT_TYPE);
    let cc = h[header::CACHE_CONTROL].to_str().unwrap();
    assert!(
        cc.strip_prefix("max-age=")
            .is_some_and(|n| n.parse::<u32>().is_ok()),
        "{cc}"
    );
    let body = common::RT
        .block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
        .unwrap();
    if let Some(msg) = msg {
        assert!(msg.len() >= 12, "200 for {} bytes", msg.len());
        common::check_answer(msg, &body);
    }
});
