//! The approvals API: list, read, approve, deny, revoke.
//!
//! Who may vote (README, "Security model"):
//! - only with a credential meant for approving: a token from a client its
//!   issuer lists in `approver_clients`, or carrying its `approval_scope`;
//! - never through the client that asked for the action, whoever holds
//!   its token;
//! - a person who is one of the obligation's approvers, by identity
//!   (issuer, subject): a group the token's issuer is authoritative for,
//!   a tenant-scoped group within the requester's own issuer and tenant,
//!   a named user of the bundle's first issuer, or the requester for a
//!   `subject` confirmation;
//! - the requester confirms their own action only with a fresh sign-in
//!   (`auth_time` within `confirm_max_age`), and never approves it
//!   otherwise.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use greenlight_store::{Approval, Status, StoreError};
use greenlight_types::{Approver, Credential, Principal};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{authenticate, voter};
use super::{ApiError, AppState};

/// The most approvals one listing returns.
const LIST_LIMIT: u32 = 200;

/// How many one listing returns unless the caller says.
const LIST_DEFAULT: u32 = 50;

/// How many approvals are read from the store at a time while listing.
const LIST_PAGE: u32 = 200;

/// The most approvals one listing reads before it answers with what it
/// found and where to continue.
const LIST_SCAN: usize = 2000;

/// Whether `who` is the person who asked for `approval`.
pub(super) fn is_requester(approval: &Approval, who: &Principal) -> bool {
    who.issuer == approval.requester_issuer && who.subject == approval.requester
}

/// Whether `who` is one of the approvers `a` names for `approval`; `first`
/// is the bundle's first issuer, whose subjects `user:` names.
fn names(a: &Approver, approval: &Approval, who: &Principal, first: &str) -> bool {
    match a {
        Approver::Subject => is_requester(approval, who),
        // The engine keeps only groups the token's issuer is authoritative for.
        Approver::Group(group) => who.groups.iter().any(|g| g == group),
        // Only members within the requester's own tenant, of the same issuer.
        Approver::TenantGroup(group) => {
            who.groups.iter().any(|g| g == group)
                && !who.tenant.is_empty()
                && who.issuer == approval.requester_issuer
                && approval.requester_tenant.as_deref() == Some(who.tenant.as_str())
        }
        Approver::User(user) => who.issuer == first && who.subject == *user,
    }
}

/// Whether the person `who` is among `approval`'s approvers (identity and
/// membership only; see [`may_vote`] for the credential); the reason when
/// not.
pub(super) fn is_approver(
    st: &AppState,
    approval: &Approval,
    who: &Principal,
) -> Result<(), String> {
    let approvers = &approval.obligation.approvers;
    let v = st.version();
    let first = v.info().issuers.first().map_or("", |i| i.issuer.as_str());
    if is_requester(approval, who) && !approvers.contains(&Approver::Subject) {
        return Err(format!(
            "`{}` asked for this action and cannot approve their own request",
            who.subject
        ));
    }
    if !approvers.iter().any(|a| names(a, approval, who, first)) {
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

/// Whether `cred` may vote on (or revoke) `approval` at `now`; the reason
/// when not.
pub(super) fn may_vote(
    st: &AppState,
    approval: &Approval,
    cred: &Credential,
    now: u64,
) -> Result<(), String> {
    let who = &cred.principal;
    if who.issuer == approval.requester_issuer && who.client_id == approval.client_id {
        return Err(format!(
            "client `{}` asked for this action and cannot vote on it",
            who.client_id
        ));
    }
    if !cred.approver {
        return Err(format!(
            "a token of client `{}` is not meant for approving: votes are cast with a token \
             from one of the issuer's approver clients or with its approval scope",
            who.client_id
        ));
    }
    is_approver(st, approval, who)?;
    if is_requester(approval, who) {
        // A confirmation of one's own action: the person must have signed
        // in just now, not an app holding an old token of theirs.
        let max_age = st.version().info().approvals.confirm_max_age_seconds;
        let fresh = cred
            .auth_time
            .is_some_and(|t| t <= now.saturating_add(60) && now.saturating_sub(t) <= max_age);
        if !fresh {
            return Err(format!(
                "confirming your own action needs a sign-in within the last {max_age} seconds \
                 (`auth_time` {})",
                cred.auth_time
                    .map_or_else(|| "is missing".to_owned(), |t| format!("is {t}"))
            ));
        }
    }
    Ok(())
}

/// Whether `cred` may see `approval`: the requester through the client
/// that asked, or a person who may vote on it.
fn may_see(st: &AppState, approval: &Approval, cred: &Credential, now: u64) -> bool {
    let who = &cred.principal;
    (is_requester(approval, who) && who.client_id == approval.client_id)
        || may_vote(st, approval, cred, now).is_ok()
}

/// `?status=&after=&limit=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/approvals?status=pending&after=ID&limit=N`: the approvals the
/// caller may decide, newest first, `limit` (default 50, at most 200) at a
/// time. `next` is the `after` for the following page, `null` at the end
/// (see [`decidable`]).
pub async fn list_approvals(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(&st, &headers).await?;
    let Query(q) = query.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(s.parse::<Status>().map_err(|_| {
            ApiError::invalid_request(format!(
                "status `{s}` is not one of pending, approved, denied, expired, revoked"
            ))
        })?),
    };
    let limit = q.limit.unwrap_or(LIST_DEFAULT);
    if !(1..=LIST_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "limit {limit} is not between 1 and {LIST_LIMIT}"
        )));
    }
    let (list, next) = decidable(&st, &who, status, q.after, limit).await?;
    let now = st.now();
    let list: Vec<Value> = list.iter().map(|a| approval_json(a, now)).collect();
    Ok(Json(json!({ "approvals": list, "next": next })))
}

/// Up to `limit` approvals `who` may decide, newest first, only those with
/// `status` (as of now) if given, listed after `after`; and the `after` of
/// the next page, `None` at the end.
///
/// The store is read in pages and filtered here (who may vote is decided
/// per approval), at most [`LIST_SCAN`] rows per call: a flood of others'
/// approvals shortens a page but never hides one, since the next page
/// continues where the scan stopped.
pub(super) async fn decidable(
    st: &AppState,
    who: &Credential,
    status: Option<Status>,
    after: Option<String>,
    limit: u32,
) -> Result<(Vec<Approval>, Option<String>), ApiError> {
    let now = st.now();
    let at = st.clock.now();
    let mut list = Vec::new();
    let mut after = after;
    let mut scanned = 0;
    let next = loop {
        let page = match st
            .store
            .list_approvals(status, after.as_deref(), LIST_PAGE)
            .await
        {
            Err(StoreError::NotFound { id, .. }) => {
                return Err(ApiError::invalid_request(format!(
                    "no approval `{id}` to list after"
                )));
            }
            page => page?,
        };
        let full_page = page.len() == LIST_PAGE as usize;
        for a in page {
            scanned += 1;
            after = Some(a.id.clone());
            if may_vote(st, &a, who, at).is_ok() && status.is_none_or(|s| a.status_at(now) == s) {
                list.push(a);
                if list.len() == limit as usize {
                    break;
                }
            }
        }
        if !full_page && list.len() < limit as usize {
            break None;
        }
        if list.len() == limit as usize || scanned >= LIST_SCAN {
            break after;
        }
    };
    Ok((list, next))
}

/// An approval as the API shows it: its status as of `now`.
pub(super) fn approval_json(a: &Approval, now: i64) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    v["status"] = json!(a.status_at(now));
    v
}

pub(super) async fn load(st: &AppState, id: &str) -> Result<Approval, ApiError> {
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
    let who = authenticate(&st, &headers).await?;
    let a = load(&st, &id).await?;
    if !may_see(&st, &a, &who, st.clock.now()) {
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

/// What a vote did: the approval after it, how many distinct approvers
/// approved, and whether it changed anything.
pub(super) struct Cast {
    pub approval: Approval,
    pub approve_count: u32,
    pub recorded: bool,
}

/// Casts `who`'s vote on `a` with the same rules whichever door it comes
/// through (this API, the portal, a chat button): the voter must be
/// allowed ([`may_vote`]), a reason given where the obligation requires
/// one, and the approval still pending.
pub(super) async fn cast(
    st: &AppState,
    a: &Approval,
    who: &Credential,
    decision: greenlight_store::Decision,
    reason: Option<String>,
) -> Result<Cast, ApiError> {
    let id = &a.id;
    may_vote(st, a, who, st.clock.now()).map_err(ApiError::forbidden)?;
    let reason = reason.filter(|r| !r.trim().is_empty());
    if a.obligation.reason_required && reason.is_none() {
        return Err(ApiError::invalid_request(format!(
            "approval `{id}` requires a reason with every decision"
        )));
    }
    let now = st.now();
    // A vote that decides the approval tells the webhooks (the requester's
    // side among them), committed with the decision.
    let tell = |decided: &Approval| outcome_deliveries(st, decided, now);
    match st
        .store
        .vote_announced(
            id,
            &voter(&who.principal),
            decision,
            reason.as_deref(),
            now,
            &tell,
        )
        .await
    {
        Ok(outcome) => {
            if outcome.approval.status != Status::Pending {
                st.notifier.wake();
            }
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
            Ok(Cast {
                approval: outcome.approval,
                approve_count: outcome.approve_count,
                recorded: outcome.recorded,
            })
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

async fn vote(
    st: Arc<AppState>,
    id: String,
    headers: HeaderMap,
    body: axum::body::Bytes,
    decision: greenlight_store::Decision,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(&st, &headers).await?;
    let body = vote_body(&body)?;
    let a = load(&st, &id).await?;
    let done = cast(&st, &a, &who, decision, body.reason).await?;
    let mut v = approval_json(&done.approval, st.now());
    v["approve_count"] = json!(done.approve_count);
    v["recorded"] = json!(done.recorded);
    Ok(Json(v))
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
    let who = authenticate(&st, &headers).await?;
    let body = vote_body(&body)?;
    let a = load(&st, &id).await?;
    may_vote(&st, &a, &who, st.clock.now()).map_err(ApiError::forbidden)?;
    let now = st.now();
    let tell = |revoked: &Approval| outcome_deliveries(&st, revoked, now);
    match st
        .store
        .revoke_approval_announced(
            &id,
            &voter(&who.principal),
            body.reason.as_deref(),
            now,
            &tell,
        )
        .await
    {
        Ok(a) => {
            st.notifier.wake();
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

/// Where an approval is seen and decided: the API's links, and the
/// portal's page when it is configured. Webhooks carry them.
pub(super) fn approval_links(st: &AppState, id: &str) -> Value {
    let base = format!("/v1/approvals/{id}");
    let mut links = json!({
        "approval": st.url(&base),
        "approve": st.url(&format!("{base}/approve")),
        "deny": st.url(&format!("{base}/deny")),
    });
    if let Some(page) = super::portal::approval_link(st, id) {
        links["portal"] = json!(page);
    }
    links
}

/// The webhook deliveries telling `a`'s outcome (approved, denied,
/// revoked or expired), for the store to commit with it; none while it is
/// pending.
pub(super) fn outcome_deliveries(
    st: &AppState,
    a: &Approval,
    now: i64,
) -> Vec<greenlight_store::NewWebhookDelivery> {
    use super::notify::{EVENT_APPROVED, EVENT_DENIED, EVENT_EXPIRED, EVENT_REVOKED};
    let event = match a.status {
        Status::Approved => EVENT_APPROVED,
        Status::Denied => EVENT_DENIED,
        Status::Revoked => EVENT_REVOKED,
        Status::Expired => EVENT_EXPIRED,
        Status::Pending => return Vec::new(),
    };
    st.notifier.outcomes(
        event,
        &approval_json(a, now),
        &approval_links(st, &a.id),
        now,
    )
}
