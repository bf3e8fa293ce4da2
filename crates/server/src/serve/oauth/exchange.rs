//! RFC 8693 token exchange at `/oauth/token`: the base access token as
//! `subject_token` and the action as `authorization_details`.

use axum::Json;
use serde_json::{Value, json};

use super::super::auth::token_exp;
use super::super::{ApiError, AppState};
use super::ask::{Ask, Opened, details_error, open_approval, pending_answer};
use super::mint::{Mint, mint};
use super::{ACCESS_TOKEN_TYPE, CIBA_GRANT, TokenRequest, token_error};

/// An action policy allows outright gets its action token at once (`grant:
/// once`, no approval); one that needs approval opens (or finds) the same
/// pending approval as `bc-authorize` and answers `authorization_pending`
/// with its `auth_req_id`, to be polled with the CIBA grant.
pub(super) async fn exchange(st: &AppState, form: TokenRequest) -> Result<Json<Value>, ApiError> {
    let token = form
        .subject_token
        .ok_or_else(|| ApiError::invalid_request("subject_token is required"))?;
    match form.subject_token_type.as_deref() {
        Some(ACCESS_TOKEN_TYPE) => {}
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "subject_token_type `{other}` is not supported; use `{ACCESS_TOKEN_TYPE}`"
            )));
        }
        None => return Err(ApiError::invalid_request("subject_token_type is required")),
    }
    if let Some(t) = form.requested_token_type.as_deref()
        && t != ACCESS_TOKEN_TYPE
    {
        return Err(ApiError::invalid_request(format!(
            "requested_token_type `{t}` is not supported; use `{ACCESS_TOKEN_TYPE}`"
        )));
    }
    let details = form
        .authorization_details
        .ok_or_else(|| details_error("authorization_details is required"))?;
    let opened = open_approval(
        st,
        Ask {
            token: &token,
            details: &details,
            binding_message: form.binding_message,
            reason: form.reason,
            requested_expiry: form.requested_expiry,
        },
    )
    .await
    .map_err(ApiError::at_token_endpoint)?;
    let now = st.now();
    match opened {
        Opened::Pending(approval) => {
            let pending = pending_answer(st, &approval, now).await?;
            Err(token_error(
                "authorization_pending",
                format!(
                    "this action needs approval; poll the token endpoint with grant_type={CIBA_GRANT} and this auth_req_id"
                ),
            )
            .with_extra(pending))
        }
        Opened::Allowed(allowance) => {
            // An action token never outlives the token it was exchanged for
            // (verified by the decision; its `exp` is only read here).
            let left = token_exp(&token)
                .map(|exp| exp.saturating_sub(st.clock.now()))
                .ok_or_else(|| ApiError::invalid_request("subject_token has no `exp`"))?;
            let action = &allowance.action;
            let v = st.version();
            let minted = mint(
                st,
                &allowance.principal,
                Mint {
                    authorization_details: action.authorization_details(&v.action_tokens.audience),
                    digest: action.digest.clone(),
                    window: false,
                    lifetime: v.action_tokens.ttl_seconds.min(left),
                    approval_id: None,
                    approvers: Vec::new(),
                },
            )?;
            st.store
                .append_audit(greenlight_store::NewAuditEvent {
                    at: now,
                    actor: allowance.principal.subject.clone(),
                    event: greenlight_store::events::TOKEN_MINTED.to_owned(),
                    approval_id: None,
                    detail: json!({ "jti": minted.jti, "act_digest": minted.digest, "exp": minted.exp,
                                    "grant": "once", "via": "token-exchange" }),
                })
                .await?;
            Ok(Json(minted.response()))
        }
    }
}
