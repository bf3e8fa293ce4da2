//! The admin API: `POST /v1/admin/reload` swaps in what the bundle folder
//! and component file hold now (see [`super::reload`]), `GET
//! /v1/admin/policy` says which version decides and how the last attempt
//! ended. Both need `Authorization: Bearer` with the admin token of
//! `[admin]` in the server's settings; without that section they answer
//! `404`, as if absent.
//!
//! ```toml
//! [admin]
//! token_env = "GREENLIGHT_ADMIN_TOKEN"   # at least 32 characters
//! # token_file = "/run/secrets/greenlight-admin"
//! ```

use std::sync::Arc;

use anyhow::{Context, bail};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{Outcome, reload};
use crate::serve::{ApiError, AppState};

/// The shortest admin token accepted: a guessable one would let anyone
/// who reaches the port change what decides.
pub const MIN_TOKEN_LEN: usize = 32;

/// `[admin]`: who may use the admin API.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The environment variable holding the admin token.
    pub token_env: Option<String>,
    /// A file holding the admin token (surrounding whitespace ignored).
    pub token_file: Option<std::path::PathBuf>,
}

impl AdminSettings {
    /// The SHA-256 of the admin token, read from where the settings say.
    pub fn token_digest(&self) -> anyhow::Result<[u8; 32]> {
        let token = match (&self.token_env, &self.token_file) {
            (Some(_), Some(_)) => bail!("admin sets both token_env and token_file; choose one"),
            (Some(var), None) => std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .with_context(|| {
                    format!("admin.token_env names `{var}`, which is not set or empty")
                })?,
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read admin.token_file {}", path.display()))?
                .trim()
                .to_owned(),
            (None, None) => bail!("admin needs token_env or token_file"),
        };
        if token.len() < MIN_TOKEN_LEN {
            bail!("the admin token is shorter than {MIN_TOKEN_LEN} characters");
        }
        Ok(Sha256::digest(token.as_bytes()).into())
    }
}

/// The refusal of a request without the admin token: `404` when no admin
/// API is configured, `401` with a challenge otherwise; `None` for the
/// admin.
fn refusal(st: &AppState, headers: &HeaderMap) -> Option<Response> {
    let Some(want) = &st.admin_token else {
        return Some(ApiError::not_found("no such endpoint").into_response());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| Sha256::digest(t.as_bytes()));
    match given {
        Some(d) if bool::from(d[..].ct_eq(&want[..])) => None,
        _ => Some(
            (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"greenlight-admin\"",
                )],
                Json(json!({
                    "error": "invalid_token",
                    "error_description": "the admin API needs the admin token as a bearer token",
                })),
            )
                .into_response(),
        ),
    }
}

/// `POST /v1/admin/reload`: swap in what the sources hold now. `200` with
/// the attempt when it swapped or nothing changed, `422` when it was
/// refused, `503` when the sources cannot be read (the old version keeps
/// deciding either way).
pub async fn reload_now(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&st, &headers) {
        return r;
    }
    let attempt = reload(&st, "admin").await;
    let status = match attempt.outcome {
        Outcome::Refused => StatusCode::UNPROCESSABLE_ENTITY,
        Outcome::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Outcome::Swapped | Outcome::Unchanged => StatusCode::OK,
    };
    (status, Json(attempt)).into_response()
}

/// `GET /v1/admin/policy`: the version deciding and the last attempt.
pub async fn policy(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if let Some(r) = refusal(&st, &headers) {
        return r;
    }
    let v = st.live.current();
    Json(json!({
        "policy_hash": v.policy_hash(),
        "component_hash": v.component_hash(),
        "bundle": st.live.sources().bundle.to_string(),
        "component": st.live.sources().component.as_ref().map(|p| p.display().to_string()),
        "last_attempt": st.live.last_attempt(),
    }))
    .into_response()
}
