//! `/healthz`, `/v1/check` and the answer for any other path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use serde_json::{Value, json};

use super::enforce::act;
use super::{ApiError, AppState};
use crate::request::RequestFile;

/// `GET /healthz`: `ok`, or `degraded` while an issuer whose keys are
/// fetched has none (its tokens are denied); each such issuer's keys, their
/// age and the last fetch error. Always 200: the server is serving.
pub async fn healthz(State(st): State<Arc<AppState>>) -> Json<Value> {
    let v = st.version();
    let status = if v.key_sources.all_loaded() {
        "ok"
    } else {
        "degraded"
    };
    Json(json!({
        "status": status,
        "policy_hash": v.policy_hash(),
        "component_hash": v.component_hash(),
        "keys": v.key_sources.health(),
    }))
}

/// Any other path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// `POST /v1/check`: the request JSON of `greenlight check` (without
/// `entities`), the same decision JSON back (plus `ask` when approval is
/// required).
pub async fn check(
    State(st): State<Arc<AppState>>,
    body: Result<Json<RequestFile>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(file) = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    if file.entities.is_some() {
        // Whoever calls over HTTP is not trusted to state facts; a host
        // that is adds them in-process.
        return Err(ApiError::invalid_request(
            "`entities` are not taken over HTTP: entity data comes from the bundle",
        ));
    }
    let req = file.into_http(None);
    let v = st.version();
    let decision = st.decide(&v, |p, now| p.evaluate_http(&req, now)).await;
    let decision = act(&st, &v, decision).await;
    st.metrics.decision("check", &decision);
    Ok(Json(st.decision_json(&v, &decision)))
}
