//! `GET /api/ui/tail`: blocked queries as they are logged, as server-sent events (one event a
//! second with the new rows, oldest first), read from the store by polling. Rows reach the
//! store up to a few seconds after their time (batches, the sink's pace), so each poll reads
//! the last [`LAG`] again and leaves out the rows already sent. The stream ends after an hour
//! (the page reconnects); each poll is one bounded search.

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use super::{read, Range};
use crate::admin::api::AdminState;
use crate::querylog::event::EventAction;
use crate::querylog::read::{Filters, Search};
use crate::timefmt::now_us;

const POLL: Duration = Duration::from_secs(1);
const POLLS: u32 = 3600;
const FIRST: usize = 20;
const PER_POLL: usize = 200;
/// How far back each poll reads again (µs).
const LAG: i64 = 15_000_000;

struct Tail {
    st: AdminState,
    range: Range,
    /// The rows sent within the last [`LAG`] and more: (time, client, name).
    sent: HashSet<(i64, String, String)>,
    polls: u32,
}

pub async fn tail(State(st): State<AdminState>, Query(range): Query<Range>) -> Response {
    let t = Tail {
        st,
        range,
        sent: HashSet::new(),
        polls: 0,
    };
    let s = stream::unfold(t, |mut t| async move {
        if t.polls >= POLLS {
            return None;
        }
        if t.polls > 0 {
            tokio::time::sleep(POLL).await;
        }
        t.polls += 1;
        let now = now_us();
        let first = t.polls == 1;
        let search = Search {
            filters: Filters {
                action: Some(EventAction::Blocked),
                group: t.range.group(),
                ..Filters::default()
            },
            since: if first {
                now - 86_400_000_000
            } else {
                now - LAG
            },
            until: now + 1_000_000,
            limit: if first { FIRST } else { PER_POLL },
            resolver: t.range.resolver(),
            ..Search::default()
        };
        let ev = match read(&t.st, t.range.source.as_deref(), move |r| r.search(&search)).await {
            Ok(mut rows) => {
                rows.reverse();
                rows.retain(|r| t.sent.insert((r.ts_us, r.client.clone(), r.qname.clone())));
                t.sent.retain(|k| k.0 >= now - 2 * LAG);
                Event::default()
                    .event("rows")
                    .json_data(&rows)
                    .unwrap_or_else(|_| Event::default().comment("encoding failed"))
            }
            Err(_) => Event::default()
                .event("error")
                .data("the store could not be read"),
        };
        Some((Ok::<Event, Infallible>(ev), t))
    });
    Sse::new(s)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
