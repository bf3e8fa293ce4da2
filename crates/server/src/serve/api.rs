//! `/healthz`, `/v1/check` and the approvals API.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use greenlight_core::{Decision, DenialCode, GrantMode, Verdict};
use greenlight_host::Principal;
use greenlight_store::{Approval, Status, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};
use crate::request::RequestFile;

/// The most approvals one listing returns.
const LIST_LIMIT: u32 = 200;

/// Reads the bearer token of the caller's own `authorization` header.
pub(super) fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| ApiError::invalid_token("no bearer token was presented"))?
        .to_str()
        .map_err(|_| ApiError::invalid_token("the authorization header is not text"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim().to_owned())
        }
        _ => Err(ApiError::invalid_token(
            "the authorization header is not `Bearer <token>`",
        )),
    }
}

/// Authenticates the caller with their own access token.
pub(super) fn authenticate(st: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let token = bearer(headers)?;
    let now = u64::try_from(st.now()).unwrap_or(0);
    st.policy
        .authenticate(&token, now)
        .map_err(|d| ApiError::invalid_token(format!("{}: {}", d.code, d.message)))
}

/// `GET /healthz`.
pub async fn healthz(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({ "status": "ok", "policy_hash": st.policy.policy_hash() }))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

fn deny(code: DenialCode, message: String, hash: &str) -> Decision {
    Decision::deny(code, message, hash)
}

/// Who a decision was made for, so a window grant can be looked up.
#[derive(Clone, Copy, Debug)]
pub(super) enum Caller<'a> {
    /// The bearer token presented (authenticated only if a grant matters).
    Token(&'a str),
    /// A subject a trusted PEP vouched for.
    Subject(&'a str),
    /// Nobody: no token was presented.
    Nobody,
}

/// Completes a decision with what needs state: a single-use action token is
/// consumed (a second use is a replay), a revoked approval's token is
/// refused, and an active window grant turns approval-required into allow.
/// A store failure denies.
pub(super) async fn act(st: &AppState, caller: Caller<'_>, decision: Decision) -> Decision {
    let now = st.now();
    let hash = decision.policy_hash.clone();
    match &decision.verdict {
        Verdict::Allow(allow) => {
            let approval = allow
                .forward_headers
                .iter()
                .find(|(k, _)| k == "x-greenlight-approval")
                .map(|(_, v)| v.clone());
            if let Some(id) = &approval {
                match st.store.get_approval(id).await {
                    Ok(Some(a)) if a.status == Status::Revoked => {
                        return deny(
                            DenialCode::ActionTokenReplayed,
                            format!("approval `{id}` was revoked"),
                            &hash,
                        );
                    }
                    Ok(_) => {}
                    Err(e) => return store_failure(e, &hash),
                }
            }
            if let Some(single) = &allow.consume {
                // Remember the token id until it can no longer be accepted:
                // its expiry plus the verifier's leeway.
                let leeway = st
                    .config
                    .action_tokens
                    .as_ref()
                    .and_then(|a| a.leeway)
                    .unwrap_or(greenlight_core::config::DEFAULT_LEEWAY_SECONDS);
                let keep_until =
                    i64::try_from(single.expires_at.saturating_add(leeway)).unwrap_or(i64::MAX);
                match st
                    .store
                    .consume_token(
                        &single.token_id,
                        keep_until,
                        approval.as_deref(),
                        &allow.subject,
                        now,
                    )
                    .await
                {
                    Ok(()) => {}
                    Err(StoreError::Replay { .. }) => {
                        return deny(
                            DenialCode::ActionTokenReplayed,
                            format!("action token `{}` was already used", single.token_id),
                            &hash,
                        );
                    }
                    Err(e) => return store_failure(e, &hash),
                }
            }
            decision
        }
        Verdict::ApprovalRequired(ch) if ch.obligation.grant == GrantMode::Window => {
            let subject = match caller {
                Caller::Token(token) => {
                    match st
                        .policy
                        .authenticate(token, u64::try_from(now).unwrap_or(0))
                    {
                        Ok(who) => who.subject,
                        Err(_) => return decision,
                    }
                }
                Caller::Subject(s) => s.to_owned(),
                Caller::Nobody => return decision,
            };
            match st
                .store
                .find_active_grant(&subject, &ch.action_digest, now)
                .await
            {
                Ok(Some(grant)) => Decision {
                    verdict: Verdict::Allow(greenlight_core::Allowance {
                        subject: subject.clone(),
                        consume: None,
                        forward_headers: vec![
                            ("x-greenlight-subject".to_owned(), subject),
                            (
                                "x-greenlight-action".to_owned(),
                                ch.authorization_details[0]["actions"][0]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_owned(),
                            ),
                            ("x-greenlight-approval".to_owned(), grant.approval_id),
                        ],
                    }),
                    reasons: decision.reasons.clone(),
                    policy_hash: hash,
                },
                Ok(None) => decision,
                Err(e) => store_failure(e, &hash),
            }
        }
        _ => decision,
    }
}

fn store_failure(e: StoreError, hash: &str) -> Decision {
    tracing::error!(error = %e, "store failure while deciding; denying");
    deny(
        DenialCode::EngineUnavailable,
        "the approval store is unavailable".to_owned(),
        hash,
    )
}

/// The decision as JSON, with where to ask when approval is required.
pub(super) fn decision_json(st: &AppState, d: &Decision) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if matches!(d.verdict, Verdict::ApprovalRequired(_)) {
        v["ask"] = json!({
            "backchannel_authentication_endpoint": st.url("/oauth/bc-authorize"),
            "token_endpoint": st.url("/oauth/token"),
        });
    }
    v
}

/// `POST /v1/check`: the request JSON of `greenlight check`, the same
/// decision JSON back (plus `ask` when approval is required).
pub async fn check(
    State(st): State<Arc<AppState>>,
    body: Result<Json<RequestFile>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(file) = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let req = file.into_http(None);
    // The same token the engine decided on (one header, `Bearer`), if any.
    let token = greenlight_core::engine::bearer(&req.headers)
        .ok()
        .map(str::to_owned);
    let now = u64::try_from(st.now()).unwrap_or(0);
    let decision = st.policy.evaluate_http(&req, now);
    let caller = token.as_deref().map_or(Caller::Nobody, Caller::Token);
    let decision = act(&st, caller, decision).await;
    st.metrics.decision("check", &decision);
    Ok(Json(decision_json(&st, &decision)))
}

/// Whether `who` may decide `approval`; the reason when not.
fn may_decide(approval: &Approval, who: &Principal) -> Result<(), String> {
    let is_requester = who.subject == approval.requester;
    let approvers = &approval.obligation.approvers;
    let named = approvers.iter().any(|a| {
        if a == "subject" {
            is_requester
        } else if let Some(group) = a.strip_prefix("group:") {
            match group.strip_suffix("@tenant") {
                // Only members within the requester's own tenant.
                Some(group) => {
                    who.groups.iter().any(|g| g == group)
                        && !who.tenant.is_empty()
                        && approval.requester_tenant.as_deref() == Some(who.tenant.as_str())
                }
                None => who.groups.iter().any(|g| g == group),
            }
        } else if let Some(user) = a.strip_prefix("user:") {
            who.subject == user
        } else {
            false
        }
    });
    if is_requester && !approvers.iter().any(|a| a == "subject") {
        return Err(format!(
            "`{}` asked for this action and cannot approve their own request",
            who.subject
        ));
    }
    if !named {
        return Err(format!(
            "`{}` is not among the approvers ({})",
            who.subject,
            approvers.join(", ")
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

fn approval_json(a: &Approval, now: i64) -> Value {
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
                axum::http::StatusCode::CONFLICT,
                "approval_expired",
                format!("approval `{id}` expired before this decision"),
            ))
        }
        Err(StoreError::NotPending { status, .. }) => Err(ApiError::new(
            axum::http::StatusCode::CONFLICT,
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
pub async fn deny_approval(
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
            axum::http::StatusCode::CONFLICT,
            "approval_not_revocable",
            format!("approval `{id}` is {status} and cannot be revoked"),
        )),
        Err(StoreError::Expired { .. }) => {
            if a.status == Status::Pending {
                // The store recorded the expiry with this refusal.
                st.metrics.approvals("expired", 1);
            }
            Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                "approval_not_revocable",
                format!("approval `{id}` is expired and cannot be revoked"),
            ))
        }
        Err(e) => Err(e.into()),
    }
}
