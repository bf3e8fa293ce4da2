//! The OAuth side: CIBA poll mode (`/oauth/bc-authorize`, the CIBA grant at
//! `/oauth/token`), RFC 8693 token exchange, RFC 7662 introspection, the
//! JWKS and RFC 8414 metadata. Action tokens are minted in `mint.rs`, with
//! Greenlight's own key.

pub(super) mod ask;
mod ciba;
mod discovery;
mod exchange;
mod introspect;
mod mint;

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::Value;

pub use ciba::bc_authorize;
pub use discovery::{jwks, metadata};
pub use introspect::introspect;

use super::{ApiError, AppState};

/// The CIBA grant type (OpenID CIBA Core §10.1).
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";
/// The token-exchange grant type (RFC 8693 §2.1).
pub const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth 2.0 access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// A 400 with an OAuth token-endpoint error code.
fn token_error(code: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, description)
}

/// `POST /oauth/token` form fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `urn:openid:params:grant-type:ciba` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    grant_type: String,
    /// CIBA: the approval to collect.
    auth_req_id: Option<String>,
    /// Token exchange: the base access token.
    subject_token: Option<String>,
    /// Token exchange: must be `urn:ietf:params:oauth:token-type:access_token`.
    subject_token_type: Option<String>,
    /// Token exchange: when given, `urn:ietf:params:oauth:token-type:access_token`.
    requested_token_type: Option<String>,
    /// Token exchange: the one action, as RFC 9396 `authorization_details`.
    authorization_details: Option<String>,
    /// Token exchange: shown to approvers when approval is needed.
    binding_message: Option<String>,
    /// Token exchange: why the requester wants to act.
    reason: Option<String>,
    /// Token exchange: seconds the requester is willing to wait.
    requested_expiry: Option<u64>,
    /// Accepted and ignored.
    scope: Option<String>,
}

/// `POST /oauth/token`: CIBA polling, which delivers the action token of an
/// approval exactly once, or RFC 8693 token exchange.
pub async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let _ = &form.scope;
    match form.grant_type.as_str() {
        CIBA_GRANT => ciba::poll(&st, &headers, form).await,
        EXCHANGE_GRANT => exchange::exchange(&st, form).await,
        other => Err(token_error(
            "unsupported_grant_type",
            format!("grant type `{other}` is not supported"),
        )),
    }
}
