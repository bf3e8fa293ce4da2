//! RFC 7662 introspection of action tokens: the component's `inspect`
//! (exactly the rules of enforcement) plus what the store knows.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::HeaderMap;
use greenlight_store::Status;
use greenlight_types::GrantMode;
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::auth::authenticate;
use super::super::{ApiError, AppState};

/// `POST /oauth/introspect` form fields (RFC 7662 §2.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introspect {
    /// The token to describe.
    token: String,
    /// Accepted and ignored: only action tokens are described.
    token_type_hint: Option<String>,
}

/// `POST /oauth/introspect` (RFC 7662): describes an action token this
/// server issued. It is active exactly when enforcement would accept it:
/// verified by the component with the rules of a decision (leeway and
/// `typ` included), not consumed if single-use, its approval not revoked.
/// Anything else (a foreign, forged, expired or consumed token) is
/// inactive. The caller authenticates with an access token of one of the
/// bundle's issuers.
pub async fn introspect(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<Introspect>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&st, &headers).await?;
    let Form(form) = form.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let _ = form.token_type_hint;
    let inactive = Json(json!({ "active": false }));
    let v = st.version();
    let Ok(t) = v.policy.inspect(&form.token, st.clock.now()) else {
        return Ok(inactive);
    };
    if t.grant == GrantMode::Once && st.store.consumed_token(&t.token_id).await?.is_some() {
        return Ok(inactive);
    }
    if let Some(id) = &t.approval_id
        && st
            .store
            .get_approval(id)
            .await?
            .is_some_and(|a| a.status == Status::Revoked)
    {
        return Ok(inactive);
    }
    let mut out = json!({
        "active": true,
        "token_type": "Bearer",
        "iss": v.action_tokens.issuer,
        "sub": t.principal.subject,
        "sub_id": { "format": "iss_sub", "iss": t.principal.issuer, "sub": t.principal.subject },
        "aud": t.audience,
        "client_id": t.principal.client_id,
        "scope": t.principal.scopes.join(" "),
        "exp": t.expires_at,
        "jti": t.token_id,
        "authorization_details": t.authorization_details,
        "act_digest": t.digest,
        "grant": t.grant.as_str(),
        "approvers": t.approvers,
    });
    if let Some(iat) = t.issued_at {
        out["iat"] = json!(iat);
    }
    if let Some(id) = t.approval_id {
        out["approval_id"] = json!(id);
    }
    Ok(Json(out))
}
