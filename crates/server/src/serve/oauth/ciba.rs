//! OpenID CIBA in poll mode: `POST /oauth/bc-authorize` asks for approval
//! of one action; the CIBA grant at `/oauth/token` collects its action
//! token, exactly once.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use greenlight_store::{Status, StoreError};
use greenlight_types::GrantMode;
use serde::Deserialize;
use serde_json::Value;

use super::super::auth::{authenticate, bearer};
use super::super::state::seconds;
use super::super::{ApiError, AppState};
use super::ask::{Ask, Opened, open_approval, pending_answer, still_approved};
use super::mint::{Mint, mint};
use super::{TokenRequest, token_error};

/// `POST /oauth/bc-authorize` form fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BcAuthorize {
    /// RFC 9396 `authorization_details`: one `urn:greenlight:action` entry.
    authorization_details: String,
    /// Shown to approvers.
    binding_message: Option<String>,
    /// Why the requester wants to act.
    reason: Option<String>,
    /// Seconds the requester is willing to wait; never beyond the policy's TTL.
    requested_expiry: Option<u64>,
    /// Accepted and ignored: CIBA clients send `openid`.
    scope: Option<String>,
}

/// `POST /oauth/bc-authorize`: asks for approval of one action (CIBA poll
/// mode, the base access token as the client's credential).
pub async fn bc_authorize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<BcAuthorize>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    let token = bearer(&headers)?;
    let Form(form) = form.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let _ = form.scope;
    let opened = open_approval(
        &st,
        Ask {
            token: &token,
            details: &form.authorization_details,
            binding_message: form.binding_message,
            reason: form.reason,
            requested_expiry: form.requested_expiry,
        },
    )
    .await?;
    match opened {
        Opened::Pending(approval) => Ok(Json(pending_answer(&st, &approval, st.now()).await?)),
        Opened::Allowed(allowance) => Err(ApiError::invalid_request(format!(
            "{} is allowed without approval",
            allowance.action
        ))),
    }
}

/// CIBA polling: `authorization_pending`, `slow_down`, `access_denied`,
/// `expired_token`, or the action token, delivered once.
pub(super) async fn poll(
    st: &AppState,
    headers: &HeaderMap,
    form: TokenRequest,
) -> Result<Json<Value>, ApiError> {
    let cred = authenticate(st, headers).await?;
    let who = &cred.principal;
    let id = form
        .auth_req_id
        .ok_or_else(|| ApiError::invalid_request("auth_req_id is required"))?;
    let approval = st
        .store
        .get_approval(&id)
        .await?
        // The requester (issuer and subject) through the client that asked.
        .filter(|a| {
            a.requester_issuer == who.issuer
                && a.requester == who.subject
                && a.client_id == who.client_id
        })
        .ok_or_else(|| {
            token_error(
                "invalid_grant",
                format!("auth_req_id `{id}` is not known to this client"),
            )
        })?;
    let now = st.now();
    let previous = st.store.record_poll(&id, now).await?;
    match approval.status_at(now) {
        Status::Pending => {
            return Err(match previous {
                Some(p) if now - p < approval.poll_interval_seconds => token_error(
                    "slow_down",
                    format!(
                        "poll at most every {} seconds",
                        approval.poll_interval_seconds
                    ),
                ),
                _ => token_error(
                    "authorization_pending",
                    "the approvers have not decided yet",
                ),
            });
        }
        Status::Denied => {
            return Err(token_error(
                "access_denied",
                "an approver denied the request",
            ));
        }
        Status::Revoked => return Err(token_error("access_denied", "the approval was revoked")),
        Status::Expired => {
            return Err(token_error(
                "expired_token",
                "nobody decided before the approval expired",
            ));
        }
        Status::Approved => {}
    }
    if approval.delivered_at.is_some() {
        return Err(token_error(
            "invalid_grant",
            format!("the action token for `{id}` was already delivered"),
        ));
    }
    // A yes is for acting now: it is collected soon after it was given,
    // and a window runs from the approval, not from whenever the client
    // chooses to start it.
    let decided = approval.decided_at.unwrap_or(now);
    let collect_within = seconds(st.settings.approvals.collect_within());
    if now > decided.saturating_add(collect_within) {
        return Err(token_error(
            "expired_token",
            format!(
                "the approval was not collected within {collect_within} seconds of being given"
            ),
        ));
    }
    let window = approval.obligation.grant == GrantMode::Window;
    // No action token outlives the token that collected it.
    let base_left = cred.expires_at.saturating_sub(st.clock.now());
    let (lifetime, grant_until) = if window {
        let until = decided.saturating_add(seconds(approval.obligation.window_seconds));
        if until <= now {
            return Err(token_error(
                "expired_token",
                "the approved window ended before it was collected",
            ));
        }
        let left = u64::try_from(until.saturating_sub(now)).unwrap_or(0);
        // The grant lasts the window; the token collecting it no longer
        // than its base token (a refreshed base token acts under the grant).
        (left.min(base_left), until)
    } else {
        let lifetime = st
            .version()
            .action_tokens
            .ttl_seconds
            .min(approval.obligation.ttl_seconds)
            .min(base_left);
        (lifetime, 0)
    };
    still_approved(st, &bearer(headers)?, &approval).await?;
    let approvers: Vec<String> = st
        .store
        .votes(&id)
        .await?
        .into_iter()
        .filter(|v| v.decision == greenlight_store::Decision::Approve)
        .map(|v| v.approver)
        .collect();
    let minted = mint(
        st,
        who,
        Mint {
            authorization_details: approval.authorization_details.clone(),
            digest: approval.action_digest.clone(),
            window,
            lifetime,
            approval_id: Some(id.clone()),
            approvers,
        },
    )?;
    if !st.store.claim_delivery(&id, &minted.jti, now).await? {
        return Err(token_error(
            "invalid_grant",
            format!("the action token for `{id}` was already delivered"),
        ));
    }
    st.metrics.approvals("token_delivered", 1);
    if window {
        match st.store.create_grant(&id, grant_until, now).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(minted.response()))
}
