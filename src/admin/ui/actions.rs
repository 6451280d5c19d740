//! Actions from the dashboard, each through the admin API's own handler (the same checks, the
//! same effect as `POST /api/lists/runtime` and the others) and recorded with who (the "on
//! duty" name the analyst gave) and why: in the log, in the runtime entry itself for a block,
//! and in the list `GET /api/ui/actions` shows.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use crate::admin::api::{
    allow_add, allow_remove, cache_flush, error, nta_add, nta_remove, runtime_add, runtime_remove,
    AdminState, FlushBody, NtaBody, ScopeQuery,
};
use crate::policy::runtime::NewEntry;

/// How many actions the dashboard remembers.
const KEEP: usize = 200;

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Into the runtime list (blocked at once).
    Block,
    /// Out of the runtime list.
    Unblock,
    /// Into the runtime allow list (answered normally whatever a list says).
    Allow,
    /// Out of the runtime allow list.
    AllowRemove,
    /// The name's answers out of the packet cache.
    Flush,
    /// A negative trust anchor: the zone is not validated.
    NtaAdd,
    NtaRemove,
}

#[derive(Deserialize)]
pub struct ActionBody {
    kind: ActionKind,
    name: String,
    /// The "on duty" name of the analyst.
    who: String,
    /// Why (free text, e.g. the ticket).
    #[serde(default)]
    why: Option<String>,
    /// Block/allow: the authority's reference.
    #[serde(default)]
    reference: Option<String>,
    /// Block/allow: `48h`, `7d` or an RFC 3339 time.
    #[serde(default)]
    expires: Option<String>,
    /// Block/unblock: only this group.
    #[serde(default)]
    group: Option<String>,
}

/// One action taken from the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub at: i64,
    pub who: String,
    pub why: Option<String>,
    pub kind: ActionKind,
    pub name: String,
    /// The admin API's HTTP status for it.
    pub status: u16,
}

fn opt(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn act(
    State(st): State<AdminState>,
    body: Result<Json<ActionBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(b) = match body {
        Ok(b) => b,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let who = b.who.trim().to_string();
    if who.is_empty() || who.chars().any(char::is_control) {
        return error(
            StatusCode::BAD_REQUEST,
            "say who is acting: give the on-duty name (\"who\")",
        );
    }
    let name = b.name.trim().trim_end_matches('.').to_string();
    if name.is_empty() {
        return error(StatusCode::BAD_REQUEST, "give a name");
    }
    let why = opt(b.why);
    let resp = match b.kind {
        kind @ (ActionKind::Block | ActionKind::Allow) => {
            let new = NewEntry {
                name: name.clone(),
                added_by: who.clone(),
                reason: why.clone(),
                reference: opt(b.reference),
                expires: opt(b.expires),
                group: opt(b.group),
            };
            if kind == ActionKind::Block {
                runtime_add(State(st.clone()), Ok(Json(new))).await
            } else {
                allow_add(State(st.clone()), Ok(Json(new))).await
            }
        }
        ActionKind::Unblock => {
            runtime_remove(
                State(st.clone()),
                Path(name.clone()),
                Query(ScopeQuery {
                    group: opt(b.group),
                }),
            )
            .await
        }
        ActionKind::AllowRemove => allow_remove(State(st.clone()), Path(name.clone())).await,
        ActionKind::Flush => {
            cache_flush(
                State(st.clone()),
                Some(Json(FlushBody {
                    name: Some(name.clone()),
                })),
            )
            .await
        }
        ActionKind::NtaAdd => {
            nta_add(State(st.clone()), Json(NtaBody { zone: name.clone() })).await
        }
        ActionKind::NtaRemove => nta_remove(State(st.clone()), Path(name.clone())).await,
    };
    let status = resp.status().as_u16();
    tracing::info!(%who, why = why.as_deref().unwrap_or(""), kind = ?b.kind, %name, status, "dashboard action");
    let mut list = st.ui.actions.lock().unwrap_or_else(|p| p.into_inner());
    if list.len() >= KEEP {
        list.pop_front();
    }
    list.push_back(ActionRecord {
        at: crate::timefmt::now_us() / 1_000_000,
        who,
        why,
        kind: b.kind,
        name,
        status,
    });
    resp
}

/// The latest actions, newest first.
pub async fn list(State(st): State<AdminState>) -> Response {
    let list = st.ui.actions.lock().unwrap_or_else(|p| p.into_inner());
    Json(list.iter().rev().cloned().collect::<Vec<_>>()).into_response()
}
