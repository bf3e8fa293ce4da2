//! What clients and gateways discover: the JWKS action tokens are signed
//! with, and RFC 8414 authorization-server metadata.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::super::AppState;
use super::{CIBA_GRANT, EXCHANGE_GRANT};

/// `GET /.well-known/jwks.json`: the keys action tokens are signed with.
pub async fn jwks(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(st.signer().jwks().clone())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "issuer": st.version().action_tokens.issuer,
        "token_endpoint": st.url("/oauth/token"),
        "backchannel_authentication_endpoint": st.url("/oauth/bc-authorize"),
        "jwks_uri": st.url("/.well-known/jwks.json"),
        "grant_types_supported": [CIBA_GRANT, EXCHANGE_GRANT],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "authorization_details_types_supported": [greenlight_types::AUTHORIZATION_DETAILS_TYPE],
        "introspection_endpoint": st.url("/oauth/introspect"),
        "token_endpoint_auth_methods_supported": ["bearer"],
    }))
}
