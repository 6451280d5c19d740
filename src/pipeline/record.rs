//! One query event per query, built from what the pipeline decided and the bytes it sent, and
//! handed to the query log's bounded, non-blocking bus.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::synth::Trigger;
use super::{Decision, Transport};
use crate::dnswire;
use crate::metrics::{qtype_label, rcode_label, ListLabel, Metrics, QueryLabels};
use crate::policy::groups::{runtime_scope, LogMode};
use crate::policy::runtime::RuntimeList;
use crate::policy::{RuleRef, Snapshot};
use crate::querylog::event::{qtype_name, rcode_name};
use crate::querylog::{self, Answers, EventAction, EventBatcher, QueryEvent, QueryLog};
use prometheus_client::metrics::counter::Counter;

/// When and from whom a query came.
#[derive(Clone, Copy)]
pub struct Arrival {
    pub client: SocketAddr,
    pub transport: Transport,
    pub ts_us: i64,
    pub at: Instant,
}

impl Arrival {
    pub fn now(client: SocketAddr, transport: Transport) -> Self {
        Self {
            client,
            transport,
            ts_us: crate::timefmt::now_us(),
            at: Instant::now(),
        }
    }
}

pub struct Recorder {
    log: QueryLog,
    pub metrics: Arc<Metrics>,
    server: Arc<str>,
    /// dnstap wants the raw messages; the other sinks do not, so copy them only then.
    keep_wire: bool,
    /// Keep the response of SERVFAIL answers (its EDE says why: the alerts' `dnssec_bogus`).
    pub keep_servfail_wire: bool,
    /// For entries of the admin API's runtime list, the log names who added them and why.
    pub runtime: Option<Arc<RuntimeList>>,
    /// Per group (by index, as in the snapshot's groups), one counter per action; empty
    /// without groups. Made once, so counting costs one atomic add and no label lookup.
    group_counters: Vec<[Counter; 4]>,
}

impl Recorder {
    pub fn new(log: QueryLog, server: &str, keep_wire: bool) -> Self {
        Self {
            log,
            metrics: Arc::new(Metrics::new()),
            server: Arc::from(server),
            keep_wire,
            keep_servfail_wire: false,
            runtime: None,
            group_counters: Vec::new(),
        }
    }

    /// Per-group query counters (`dnsward_group_queries{group,action}`) for the groups of
    /// `snap` (groups are fixed for the life of the process: they come from the config).
    pub fn count_groups(&mut self, snap: &Snapshot) {
        if snap.groups().is_trivial() {
            return;
        }
        self.group_counters = snap
            .groups()
            .groups()
            .iter()
            .map(|g| {
                [
                    EventAction::Allowed,
                    EventAction::Blocked,
                    EventAction::Refused,
                    EventAction::Servfail,
                ]
                .map(|a| {
                    self.metrics
                        .group_queries
                        .get_or_create(&crate::metrics::GroupLabel {
                            group: g.name.to_string(),
                            action: a.as_str(),
                        })
                        .clone()
                })
            })
            .collect();
    }

    pub fn disabled() -> Self {
        Self::new(QueryLog::disabled(), "dnsward", false)
    }

    pub fn log(&self) -> &QueryLog {
        &self.log
    }

    /// Records one query. `response` is what was sent (None: dropped). Cheap when logging is
    /// off or the event is filtered out; never blocks. With a `batcher` (a UDP worker's), the
    /// event joins the worker's batch instead of going to the sinks' queues on its own.
    pub fn record(
        &self,
        arrival: &Arrival,
        query: &[u8],
        response: Option<&[u8]>,
        decision: &Decision,
        snap: &Snapshot,
        batcher: Option<&mut EventBatcher>,
    ) {
        let rcode = response.filter(|r| r.len() >= 4).map(|r| r[3] & 0x0f);
        let action = match (&decision.blocked, rcode) {
            (Some(_), _) => EventAction::Blocked,
            (None, Some(dnswire::RCODE_REFUSED)) => EventAction::Refused,
            (None, Some(dnswire::RCODE_SERVFAIL)) => EventAction::Servfail,
            _ => EventAction::Allowed,
        };
        // Read once: both the counters and the event need the question and the clock.
        let question = dnswire::parse_query(query).ok();
        let now = Instant::now();
        self.count(
            arrival,
            now,
            question.map_or(0, |q| q.qtype),
            rcode,
            action,
            decision,
        );
        // `wants` applies `log_allowed`; the client's group may log less (by contract).
        if !self.log.wants(action) {
            return;
        }
        let groups = snap.groups();
        let group = groups.group(decision.client);
        match group.log {
            LogMode::All => {}
            LogMode::Blocked if action == EventAction::Blocked => {}
            LogMode::Blocked | LogMode::None => return,
        }
        // A cache entry carries its name ready-made: logging a hit allocates nothing for it.
        let qname: Arc<str> = match (&decision.answer, question) {
            (Some(a), _) if !a.qname.is_empty() => Arc::clone(&a.qname),
            (_, Some(q)) => Arc::from(dnswire::name_to_string(q.qname)),
            (_, None) => Arc::from(""),
        };
        if action == EventAction::Allowed && !self.log.wants_allowed(&qname, arrival.ts_us) {
            return;
        }
        let (category, list, rule, trigger) = match &decision.blocked {
            Some((r, t)) => (
                Some(Cow::Borrowed(r.category.as_str())),
                Some(Arc::clone(&r.list)),
                Some(self.rule_text(r)),
                Some(match t {
                    Trigger::Qname => querylog::Trigger::Qname,
                    Trigger::Cname => querylog::Trigger::Cname,
                    Trigger::Ip => querylog::Trigger::Ip,
                }),
            ),
            None => (None, None, None, None),
        };
        let answers = match (&decision.blocked, &decision.answer) {
            (None, Some(a)) => Answers::new(Arc::clone(&a.addresses)),
            _ => Answers::default(),
        };
        let ev = QueryEvent {
            ts_us: arrival.ts_us,
            client: arrival.client,
            transport: arrival.transport,
            qname,
            qtype: question.map_or(Cow::Borrowed(""), |q| qtype_name(q.qtype)),
            rcode: rcode_name(rcode),
            action,
            category,
            list,
            rule,
            trigger,
            cached: decision.from_cache,
            answers,
            latency_us: now
                .saturating_duration_since(arrival.at)
                .as_micros()
                .min(u32::MAX as u128) as u32,
            server: Arc::clone(&self.server),
            client_name: groups.client_name(decision.client).cloned(),
            group: (!groups.is_trivial()).then(|| Arc::clone(&group.name)),
            query_wire: self.keep_wire.then(|| bytes::Bytes::copy_from_slice(query)),
            response_wire: (self.keep_wire
                || (self.keep_servfail_wire && action == EventAction::Servfail))
                .then(|| response.map(bytes::Bytes::copy_from_slice))
                .flatten(),
        };
        match batcher {
            Some(b) => self.log.emit_batched(b, ev, now),
            None => self.log.emit(ev),
        }
    }

    /// The rule that blocked, as the log shows it: `name (file:line)`, or for an entry of the
    /// admin API's runtime list `name (runtime: who, when, why)`.
    fn rule_text(&self, r: &RuleRef) -> String {
        match self
            .runtime
            .as_ref()
            .zip(runtime_scope(&r.list))
            .and_then(|(rt, scope)| rt.get_scoped(scope, &r.trigger_name))
        {
            Some(entry) => format!("{} (runtime: {})", r.trigger_name, entry.describe()),
            None => format!("{} ({}:{})", r.trigger_name, r.file.display(), r.line),
        }
    }

    /// A batching caller's tick (after each query, and when idle): push events that waited
    /// long enough.
    pub fn flush_due(&self, batcher: &mut EventBatcher, now: Instant) {
        self.log.flush_due(batcher, now);
    }

    /// A batching caller stops: push everything it holds.
    pub fn flush(&self, batcher: &mut EventBatcher) {
        self.log.flush(batcher);
    }
}

impl Recorder {
    fn count(
        &self,
        arrival: &Arrival,
        now: Instant,
        qtype: u16,
        rcode: Option<u8>,
        action: EventAction,
        decision: &Decision,
    ) {
        let category = decision
            .blocked
            .as_ref()
            .map_or("", |(r, _)| r.category.as_str());
        self.metrics
            .queries
            .get_or_create(&QueryLabels {
                transport: arrival.transport.as_str(),
                qtype: qtype_label(qtype),
                rcode: rcode_label(rcode),
                action: action.as_str(),
                category,
            })
            .inc();
        if let Some(c) = self.group_counters.get(decision.client.group as usize) {
            c[action as usize].inc();
        }
        if let Some((r, _)) = &decision.blocked {
            self.metrics
                .blocked_by_list
                .get_or_create(&ListLabel {
                    list: r.list.to_string(),
                })
                .inc();
        }
        self.metrics
            .answer_latency
            .observe(now.saturating_duration_since(arrival.at).as_secs_f64());
    }
}
