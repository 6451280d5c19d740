//! DNS over TLS (RFC 7858): two-byte length framing over a TLS stream, queries of one
//! connection answered concurrently (up to `tls_max_in_flight`) and written back as they
//! finish, out of order as RFC 7766 allows.
//!
//! Our own loop on tokio-rustls rather than hickory-server's TLS listener: it shares the
//! certificate store (hot reload) and the connection caps with DoH, and bounds the handshake.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_rustls::server::TlsStream;

use super::exchange::exchange;
use super::limits::ConnLimits;
use crate::pipeline::{Engine, Transport};

/// Answers ready together are written together up to about this many bytes (a TLS record
/// holds 16 KiB of plaintext).
const WRITE_BATCH_BYTES: usize = 16 * 1024;

/// Serves one DoT connection until the client closes it, goes idle, breaks framing, or
/// the server stops; answers already being worked on are still written.
pub async fn serve_connection(
    engine: Arc<Engine>,
    limits: Arc<ConnLimits>,
    tls: TlsStream<TcpStream>,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
) {
    let (mut rd, mut wr) = tokio::io::split(tls);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(limits.max_in_flight);
    let idle = limits.idle_timeout;
    let writer = tokio::spawn(async move {
        let mut framed = Vec::new();
        while let Some(msg) = rx.recv().await {
            // Every answer ready by now goes out in the same write: one TLS record and one
            // system call for all of them, where one each cost most of a pipelined query.
            framed.clear();
            frame_into(&mut framed, &msg);
            while framed.len() < WRITE_BATCH_BYTES {
                match rx.try_recv() {
                    Ok(msg) => frame_into(&mut framed, &msg),
                    Err(_) => break,
                }
            }
            // A client that does not read its answers is cut off like an idle one.
            match tokio::time::timeout(idle, wr.write_all(&framed)).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        let _ = tokio::time::timeout(idle, wr.shutdown()).await;
    });
    let in_flight = Arc::new(Semaphore::new(limits.max_in_flight));
    loop {
        let mut len = [0u8; 2];
        let got = tokio::select! {
            _ = stop.changed() => break,
            r = tokio::time::timeout(idle, rd.read_exact(&mut len)) => r,
        };
        if !matches!(got, Ok(Ok(_))) {
            break;
        }
        let n = u16::from_be_bytes(len) as usize;
        if n < 12 {
            tracing::debug!(%peer, n, "DoT: message shorter than a DNS header; closing");
            break;
        }
        let mut msg = vec![0u8; n];
        // The body must follow within the idle time too: a trickling client is a slowloris.
        if !matches!(
            tokio::time::timeout(idle, rd.read_exact(&mut msg)).await,
            Ok(Ok(_))
        ) {
            break;
        }
        // At the cap, stop reading until an answer is out: back-pressure, not a queue.
        let Ok(permit) = Arc::clone(&in_flight).acquire_owned().await else {
            break;
        };
        let (engine, tx) = (Arc::clone(&engine), tx.clone());
        tokio::spawn(async move {
            if let Some(resp) = exchange(&engine, &msg, Transport::Dot, peer).await {
                let _ = tx.send(resp).await;
            }
            drop(permit);
        });
    }
    // The writer ends once every answer in flight was handed over.
    drop(tx);
    let _ = writer.await;
}

/// Appends `msg` with its two-byte length (RFC 7858: the TCP framing).
fn frame_into(framed: &mut Vec<u8>, msg: &[u8]) {
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
}
