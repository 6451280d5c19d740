//! List files for the parser targets: written to a scratch file, parsed as the policy
//! parses them, loaded into a snapshot, and names probed through the whole `Engine`.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::LazyLock;

use dnsward::pipeline::{Scratch, Transport};
use dnsward::policy::reload::PolicyStore;
use dnsward::policy::{Category, ListFormat, ListSpec, Snapshot};
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};

use crate::common::{check_answer, scratch_dir, ENGINE, RT};

static DIR: LazyLock<PathBuf> = LazyLock::new(|| scratch_dir("lists"));

/// `body` as the file of a list with `format` and `category`.
pub fn spec(body: &[u8], format: ListFormat, category: Category, ext: &str) -> ListSpec {
    let path = DIR.join(format!("list.{ext}"));
    std::fs::write(&path, body).unwrap();
    ListSpec {
        name: "fuzz".into(),
        category,
        path,
        format,
        action: None,
    }
}

pub fn format_of(b: u8) -> ListFormat {
    match b % 9 {
        0 => ListFormat::Auto,
        1 => ListFormat::Plain,
        2 => ListFormat::Hosts,
        3 => ListFormat::Adblock,
        4 => ListFormat::Wildcard,
        5 => ListFormat::Dnsmasq,
        6 => ListFormat::Unbound,
        7 => ListFormat::Rpz,
        _ => ListFormat::Ip,
    }
}

/// The snapshot the policy builds from `spec` alone.
pub fn snapshot(spec: &ListSpec) -> std::sync::Arc<Snapshot> {
    let (store, _report) = PolicyStore::load(vec![spec.clone()]);
    let snap = store.snapshot();
    std::sync::Arc::clone(&snap)
}

/// A query for `name` (presentation form, no trailing dot) and `qtype` through the engine with
/// `snap`: the answer is well-formed for the query. Returns the answer and whether policy
/// blocked it; None when the name is no DNS name.
pub fn probe(snap: &Snapshot, name: &str, qtype: RecordType) -> Option<(Message, bool)> {
    let n = Name::from_ascii(format!("{name}.")).ok()?;
    let mut m = Message::query();
    m.metadata.id = 0x4242;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(n, qtype));
    let pkt = m.to_vec().ok()?;
    let mut s = Scratch::default();
    let answered = RT.block_on(ENGINE.answer_with(
        &pkt,
        Transport::Tcp,
        "127.0.0.1".parse().unwrap(),
        snap,
        &mut s,
    ));
    if !answered {
        // Only an RPZ drop rule (or a client ACL) sends nothing.
        return None;
    }
    check_answer(&pkt, &s.out);
    Some((
        Message::from_vec(&s.out).unwrap(),
        s.decision.blocked.is_some(),
    ))
}
