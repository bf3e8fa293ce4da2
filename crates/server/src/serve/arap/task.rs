//! The task: its handle and result, who may read or cancel it, and the
//! two endpoints that do (a bulk task's own answer is in [`super::bulk`]).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use greenlight_store::bundles::Bundle;
use greenlight_store::{Approval, Status};
use greenlight_types::Principal;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::auth::{authenticate, voter};
use super::super::{ApiError, AppState, authzen};
use super::{
    PROBLEM_TASK_EXPIRED, PROBLEM_TASK_STATE, PROBLEM_UNKNOWN_TASK, Problem, binding, bulk, rfc3339,
};

/// A task's status endpoint.
pub(super) fn status_endpoint(st: &AppState, id: &str) -> String {
    st.url(&format!("/access/v1/requests/{id}"))
}

/// The task handle of `a` as of now, with the result once approved.
fn task_answer(st: &AppState, a: &Approval) -> Result<Value, Problem> {
    let now = st.now();
    let status = a.status_at(now);
    let url = status_endpoint(st, &a.id);
    let mut task = json!({
        "id": a.id,
        "status": status.task_status(),
        "status_endpoint": url,
        "display": {
            "title": format!("Approval of {}", a.action),
            "description": if a.obligation.message.is_empty() {
                format!("{} needs approval", a.action)
            } else {
                a.obligation.message.clone()
            },
        },
    });
    // No `review` link: that is the approvers' page, not the PEP's.
    let mut links = Map::new();
    let mut out = json!({});
    match status {
        Status::Pending => {
            task["expires_at"] = json!(rfc3339(a.expires_at));
            links.insert("cancel".into(), json!(format!("{url}/cancel")));
        }
        Status::Approved => {
            let until = super::super::approval_use::use_until(st, a);
            if now >= until {
                // Its result can no longer be used (ARAP: `task_expired`
                // once `task.expires_at` has passed).
                return Err(Problem::new(
                    PROBLEM_TASK_EXPIRED,
                    410,
                    format!(
                        "task `{}` was approved, to be used until {}",
                        a.id,
                        rfc3339(until)
                    ),
                ));
            }
            task["expires_at"] = json!(rfc3339(until));
            let approval = binding::approval_result(st, a, until).map_err(ApiError::internal)?;
            out["result"] = json!({ "mode": "reevaluate", "approval": approval });
        }
        _ => {}
    }
    if !links.is_empty() {
        task["links"] = Value::Object(links);
    }
    out["task"] = task;
    Ok(out)
}

/// A task answer with `status`, `Location` and, while pending,
/// `Retry-After` (the approval's poll interval).
pub(super) fn task_response(
    st: &AppState,
    a: &Approval,
    status: StatusCode,
) -> Result<Response, Problem> {
    let body = task_answer(st, a)?;
    Ok(with_headers(
        st,
        &a.id,
        std::slice::from_ref(a),
        status,
        body,
    ))
}

/// The task `id`'s answer `body` with `status` and its headers:
/// `Location` (its status endpoint), `Retry-After` while any of its
/// `approvals` is pending (the shortest poll interval among them), and
/// `no-store`.
pub(super) fn with_headers(
    st: &AppState,
    id: &str,
    approvals: &[Approval],
    status: StatusCode,
    body: Value,
) -> Response {
    let mut resp = (status, Json(body)).into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&status_endpoint(st, id)) {
        headers.insert(header::LOCATION, v);
    }
    let now = st.now();
    if let Some(wait) = approvals
        .iter()
        .filter(|a| a.status_at(now) == Status::Pending)
        .map(|a| a.poll_interval_seconds.max(1))
        .min()
    {
        headers.insert(
            header::RETRY_AFTER,
            HeaderValue::from(u64::try_from(wait).unwrap_or(5)),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The status a submission answers with: `202 Accepted` while any of the
/// task's `approvals` is pending, `201 Created` once all have ended (the
/// profile's synchronous completion, or a retry of an ended task).
pub(super) fn submitted(st: &AppState, approvals: &[Approval]) -> StatusCode {
    let now = st.now();
    if approvals
        .iter()
        .any(|a| a.status_at(now) == Status::Pending)
    {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    }
}

/// Whether `who` may read or cancel a task of the requester `subject` at
/// `issuer` asked through `client_id`: the requester through that client,
/// or that client's own token when it is a PEP trusted to submit access
/// requests for the subjects it vouches for (`may_request`: the one that
/// submitted for them; vouching alone does not let it cancel).
fn may_handle(
    st: &AppState,
    issuer: &str,
    client_id: &str,
    subject: &str,
    who: &Principal,
) -> bool {
    let same_client = who.issuer == issuer && who.client_id == client_id;
    same_client
        && (who.subject == subject
            || authzen::trusted_pep(st, who).is_ok_and(|pep| pep.may_request))
}

/// A task: one approval, or a bulk submission's bundle over several.
enum Task {
    One(Box<Approval>),
    Bulk(Bundle, Vec<Approval>),
}

/// The task `id` if `headers` authenticate someone who may handle it;
/// `unknown_task` for anyone else, as for a task that does not exist.
async fn task_for(
    st: &AppState,
    id: &str,
    headers: &HeaderMap,
) -> Result<(Task, Principal), Problem> {
    let who = authenticate(st, headers).await?.principal;
    let unknown = || Problem::new(PROBLEM_UNKNOWN_TASK, 404, format!("no task `{id}`"));
    let task = match st.store.get_approval(id).await? {
        Some(a) => Task::One(Box::new(a)),
        None => {
            let (b, items) = bulk::load(st, id).await?.ok_or_else(unknown)?;
            Task::Bulk(b, items)
        }
    };
    let mine = match &task {
        Task::One(a) => may_handle(st, &a.requester_issuer, &a.client_id, &a.requester, &who),
        Task::Bulk(b, _) => may_handle(st, &b.requester_issuer, &b.client_id, &b.requester, &who),
    };
    if !mine {
        return Err(unknown());
    }
    Ok((task, who))
}

/// `GET /access/v1/requests/{id}`.
pub async fn status(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    match task_for(&st, &id, &headers).await? {
        (Task::One(a), _) => task_response(&st, &a, StatusCode::OK),
        (Task::Bulk(b, items), _) => bulk::response(&st, &b, &items, StatusCode::OK),
    }
}

/// The optional body of a cancellation.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancellation {
    reason: Option<String>,
    comment: Option<String>,
}

/// `POST` or `DELETE /access/v1/requests/{id}/cancel`: withdraws a
/// pending request (Greenlight's `revoked`, shown as `cancelled`).
pub async fn cancel(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let (task, who) = task_for(&st, &id, &headers).await?;
    let why: Cancellation = if body.iter().all(u8::is_ascii_whitespace) {
        Cancellation::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::invalid_request(format!("the body is not a cancellation: {e}"))
        })?
    };
    let reason = match (why.reason, why.comment) {
        (Some(r), Some(c)) => Some(format!("{r}: {c}")),
        (r, c) => r.or(c),
    }
    .or_else(|| Some("cancelled by the requester".to_owned()));
    let a = match task {
        Task::One(a) => *a,
        Task::Bulk(b, items) => {
            return bulk::cancel(&st, &b, &items, &voter(&who), reason.as_deref()).await;
        }
    };
    let now = st.now();
    let status = a.status_at(now);
    if status != Status::Pending {
        return Err(Problem::new(
            PROBLEM_TASK_STATE,
            409,
            format!("task `{id}` is already {}", status.task_status()),
        ));
    }
    let tell = |done: &Approval| super::super::approvals::outcome_deliveries(&st, done, now);
    match st
        .store
        .cancel_pending_announced(&id, &voter(&who), reason.as_deref(), now, &tell)
        .await
    {
        Ok(done) => {
            st.notifier.wake();
            st.metrics.approvals("cancelled", 1);
            task_response(&st, &done, StatusCode::OK)
        }
        Err(greenlight_store::StoreError::Expired { .. }) => {
            st.notifier.wake();
            Err(Problem::new(
                PROBLEM_TASK_STATE,
                409,
                format!("task `{id}` is already expired"),
            ))
        }
        Err(greenlight_store::StoreError::NotRevocable { status, .. }) => Err(Problem::new(
            PROBLEM_TASK_STATE,
            409,
            format!("task `{id}` is already {}", status.task_status()),
        )),
        Err(e) => Err(e.into()),
    }
}
