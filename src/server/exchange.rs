//! One DNS message through the engine for the stream transports we frame ourselves (DoT,
//! DoH): the same admission, policy, cache, resolution and query event as UDP and TCP.

use std::net::SocketAddr;

use crate::pipeline::record::Arrival;
use crate::pipeline::{Engine, Scratch, Transport};

/// The response to `pkt`, or `None` when the pipeline sends nothing (dropped by policy or
/// the ACL, or not a query). Records the query event either way.
pub async fn exchange(
    engine: &Engine,
    pkt: &[u8],
    transport: Transport,
    peer: SocketAddr,
) -> Option<Vec<u8>> {
    let arrival = Arrival::now(peer, transport);
    let snap = arc_swap::Guard::into_inner(engine.policy().snapshot());
    let mut scratch = Scratch::default();
    let sent = engine
        .answer_with(pkt, transport, peer.ip(), &snap, &mut scratch)
        .await;
    engine.recorder.record(
        &arrival,
        pkt,
        sent.then_some(&scratch.out[..]),
        &scratch.decision,
        &snap,
        None,
    );
    sent.then_some(scratch.out)
}
