//! The approvals API: list, read, approve, deny, revoke. Who may decide is
//! the obligation's typed approvers against the caller's principal.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use greenlight_store::{Approval, Status, StoreError};
use greenlight_types::{Approver, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::authenticate;
use super::{ApiError, AppState};

/// The most approvals one listing returns.
const LIST_LIMIT: u32 = 200;

/// Whether `who` is one of the approvers `a` names for `approval`.
fn names(a: &Approver, approval: &Approval, who: &Principal) -> bool {
    match a {
        Approver::Subject => who.subject == approval.requester,
        Approver::Group(group) => who.groups.iter().any(|g| g == group),
        // Only members within the requester's own tenant.
        Approver::TenantGroup(group) => {
            who.groups.iter().any(|g| g == group)
                && !who.tenant.is_empty()
                && approval.requester_tenant.as_deref() == Some(who.tenant.as_str())
        }
        Approver::User(user) => who.subject == *user,
    }
}

/// Whether `who` may decide `approval`; the reason when not.
pub(super) fn may_decide(approval: &Approval, who: &Principal) -> Result<(), String> {
    let approvers = &approval.obligation.approvers;
    let is_requester = who.subject == approval.requester;
    if is_requester && !approvers.contains(&Approver::Subject) {
        return Err(format!(
            "`{}` asked for this action and cannot approve their own request",
            who.subject
        ));
    }
    if !approvers.iter().any(|a| names(a, approval, who)) {
        return Err(format!(
            "`{}` is not among the approvers ({})",
            who.subject,
            approvers
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

/// `?status=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
}

/// `GET /v1/approvals?status=pending`: the approvals the caller may decide.
pub async fn list_approvals(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(&st, &headers)?;
    let Query(q) = query.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<Status>().map_err(|_| {
            ApiError::invalid_request(format!(
                "status `{s}` is not one of pending, approved, denied, expired, revoked"
            ))
        })?),
    };
    let now = st.now();
    let list: Vec<Value> = st
        .store
        .list_approvals(status, LIST_LIMIT)
        .await?
        .into_iter()
        .filter(|a| may_decide(a, &who).is_ok())
        .filter(|a| status.is_none_or(|s| a.status_at(now) == s))
        .map(|a| approval_json(&a, now))
        .collect();
    Ok(Json(json!({ "approvals": list })))
}

/// An approval as the API shows it: its status as of `now`.
pub(super) fn approval_json(a: &Approval, now: i64) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["status"] = json!(a.status_at(now));
    v
}

async fn load(st: &AppState, id: &str) -> Result<Approval, ApiError> {
    st.store
        .get_approval(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no approval `{id}`")))
}

/// `GET /v1/approvals/{id}`: for the requester and those who may decide.
pub async fn get_approval(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(&st, &headers)?;
    let a = load(&st, &id).await?;
    if who.subject != a.requester && may_decide(&a, &who).is_err() {
        // Not the caller's business: say no more than that it is not found.
        return Err(ApiError::not_found(format!("no approval `{id}`")));
    }
    let mut v = approval_json(&a, st.now());
    v["votes"] = serde_json::to_value(st.store.votes(&id).await?).unwrap_or(Value::Null);
    Ok(Json(v))
}

/// The body of approve, deny and revoke.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoteBody {
    /// Why.
    reason: Option<String>,
}

/// An empty body means no reason; anything else must be the JSON object.
fn vote_body(body: &[u8]) -> Result<VoteBody, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(VoteBody::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("the body is not a valid decision: {e}")))
}

async fn vote(
    st: Arc<AppState>,
    id: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    decision: greenlight_store::Decision,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(&st, &headers)?;
    let body = vote_body(&body)?;
    let a = load(&st, &id).await?;
    may_decide(&a, &who).map_err(ApiError::forbidden)?;
    let reason = body.reason.filter(|r| !r.trim().is_empty());
    if a.obligation.reason_required && reason.is_none() {
        return Err(ApiError::invalid_request(format!(
            "approval `{id}` requires a reason with every decision"
        )));
    }
    let now = st.now();
    match st
        .store
        .vote(&id, &who.subject, decision, reason.as_deref(), now)
        .await
    {
        Ok(outcome) => {
            if outcome.recorded {
                match outcome.approval.status {
                    Status::Approved if a.status == Status::Pending => {
                        st.metrics.approvals("approved", 1);
                    }
                    Status::Denied if a.status == Status::Pending => {
                        st.metrics.approvals("denied", 1);
                    }
                    _ => {}
                }
            }
            let mut v = approval_json(&outcome.approval, now);
            v["approve_count"] = json!(outcome.approve_count);
            v["recorded"] = json!(outcome.recorded);
            Ok(Json(v))
        }
        Err(StoreError::Expired { .. }) => {
            if a.status == Status::Pending {
                // The store recorded the expiry with this refusal.
                st.metrics.approvals("expired", 1);
            }
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "approval_expired",
                format!("approval `{id}` expired before this decision"),
            ))
        }
        Err(StoreError::NotPending { status, .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "approval_not_pending",
            format!("approval `{id}` is already {status}"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// `POST /v1/approvals/{id}/approve`.
pub async fn approve(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    vote(st, id, headers, body, greenlight_store::Decision::Approve).await
}

/// `POST /v1/approvals/{id}/deny`.
pub async fn deny(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    vote(st, id, headers, body, greenlight_store::Decision::Deny).await
}

/// `POST /v1/approvals/{id}/revoke`: an approver withdraws an approval and
/// any window grant it produced.
pub async fn revoke(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(&st, &headers)?;
    let body = vote_body(&body)?;
    let a = load(&st, &id).await?;
    may_decide(&a, &who).map_err(ApiError::forbidden)?;
    let now = st.now();
    match st
        .store
        .revoke_approval(&id, &who.subject, body.reason.as_deref(), now)
        .await
    {
        Ok(a) => {
            st.metrics.approvals("revoked", 1);
            Ok(Json(approval_json(&a, now)))
        }
        Err(StoreError::NotRevocable { status, .. }) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "approval_not_revocable",
            format!("approval `{id}` is {status} and cannot be revoked"),
        )),
        Err(StoreError::Expired { .. }) => {
            if a.status == Status::Pending {
                // The store recorded the expiry with this refusal.
                st.metrics.approvals("expired", 1);
            }
            Err(ApiError::new(
                StatusCode::CONFLICT,
                "approval_not_revocable",
                format!("approval `{id}` is expired and cannot be revoked"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}
