//! The AXFR/IXFR message reader (`src/rpzxfr/transfer.rs`, with TSIG from `tsig.rs`) against
//! a primary on loopback that answers the request with the fuzzed messages (their IDs patched
//! to the request's): the transfer ends (the primary closes), a zone or difference it accepts
//! holds only records inside the zone, within the record limit, and with a TSIG key
//! configured nothing unsigned is ever accepted.
//!
//! Input: byte 0 picks AXFR vs IXFR (we hold serial 5) and whether a key is configured; the
//! rest is the primary's messages, each as a 2-byte big-endian length and the message.
#![no_main]

mod common;

use std::net::SocketAddr;
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use dnsward::rpzxfr::transfer::{transfer, Limits, Outcome};
use dnsward::rpzxfr::tsig::TsigKey;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::Name;
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MAX_RECORDS: usize = 500;

/// What the primary sends next (one transfer at a time).
static NEXT: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

static PRIMARY: LazyLock<SocketAddr> = LazyLock::new(|| {
    let listener = common::RT
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    common::RT.spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let mut len = [0u8; 2];
            if conn.read_exact(&mut len).await.is_err() {
                continue;
            }
            let mut req = vec![0u8; u16::from_be_bytes(len) as usize];
            if conn.read_exact(&mut req).await.is_err() || req.len() < 2 {
                continue;
            }
            let msgs = std::mem::take(&mut *NEXT.lock().unwrap());
            let mut out = Vec::new();
            for mut m in msgs {
                if m.len() >= 2 {
                    m[..2].copy_from_slice(&req[..2]);
                }
                out.extend_from_slice(&(m.len() as u16).to_be_bytes());
                out.extend_from_slice(&m);
            }
            let _ = conn.write_all(&out).await;
            // dropped: the connection closes
        }
    });
    addr
});

static KEY: LazyLock<TsigKey> = LazyLock::new(|| {
    TsigKey::parse(
        "key \"xfr-key\" { algorithm hmac-sha256; secret \"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0\"; };",
    )
    .unwrap()
});

fuzz_target!(|data: &[u8]| {
    let Some((&sel, mut rest)) = data.split_first() else {
        return;
    };
    let mut msgs = Vec::new();
    while rest.len() >= 2 && msgs.len() < 64 {
        let n = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        msgs.push(rest[2..2 + n].to_vec());
        rest = &rest[2 + n..];
    }
    let primary = *PRIMARY;
    *NEXT.lock().unwrap() = msgs;
    let zone = Name::from_ascii("rpz.example.").unwrap();
    let have = (sel & 1 == 1).then(|| {
        SOA::new(
            Name::from_ascii("ns.rpz.example.").unwrap(),
            Name::from_ascii("host.rpz.example.").unwrap(),
            5,
            3600,
            600,
            86400,
            60,
        )
    });
    let key = (sel & 2 == 2).then(|| &*KEY);
    let limits = Limits {
        max_records: MAX_RECORDS,
        deadline: Duration::from_secs(10),
        step_timeout: Duration::from_secs(5),
    };
    let result = common::RT.block_on(transfer(primary, &zone, have.as_ref(), key, limits));
    let Ok(outcome) = result else {
        return;
    };
    let what = match &outcome {
        Outcome::UpToDate => "up to date",
        Outcome::Full { .. } => "a full zone",
        Outcome::Incremental { .. } => "differences",
    };
    assert!(
        key.is_none(),
        "an unsigned transfer accepted with a key: {what}"
    );
    match outcome {
        Outcome::UpToDate => assert!(have.is_some(), "up to date without a copy"),
        Outcome::Full { records, .. } => {
            assert!(records.len() <= MAX_RECORDS);
            for r in &records {
                assert!(zone.zone_of(&r.name), "{} outside the zone", r.name);
            }
        }
        Outcome::Incremental { diffs } => {
            assert!(have.is_some(), "differences without a copy");
            assert!(!diffs.is_empty());
            for (d, _soa) in &diffs {
                for r in d.deleted.iter().chain(d.added.iter()) {
                    assert!(zone.zone_of(&r.name), "{} outside the zone", r.name);
                }
            }
        }
    }
});
