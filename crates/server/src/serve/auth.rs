//! Who is calling: the bearer token of the caller's own `authorization`
//! header, verified by the component.

use axum::http::HeaderMap;
use greenlight_types::{Credential, Principal};

use super::keysource::refresh_issuer;
use super::{ApiError, AppState};

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

/// Authenticates the caller with their own access token: who they are,
/// through which client, and whether the token is meant for approving.
/// A token naming a `kid` its issuer's fetched keys lack fetches them
/// (rate-limited) and is checked once more.
pub(super) async fn authenticate(
    st: &AppState,
    headers: &HeaderMap,
) -> Result<Credential, ApiError> {
    authenticate_token(st, &bearer(headers)?).await
}

/// Authenticates the bearer of `token` as [`authenticate`] does.
pub(super) async fn authenticate_token(st: &AppState, token: &str) -> Result<Credential, ApiError> {
    let v = st.version();
    let seen = v.key_sources.changes();
    let mut answer = v.policy.authenticate(token, st.clock.now());
    if let Err(d) = &answer
        && let Some(issuer) = refresh_issuer(d)
        && v.key_sources
            .unknown_kid(issuer, seen, v.policy.as_ref())
            .await
    {
        answer = v.policy.authenticate(token, st.clock.now());
    }
    answer.map_err(|d| ApiError::invalid_token(d.to_string()))
}

/// One string naming a person (issuer, subject) and the client acting for
/// them: what idempotency keys and MCP sessions are scoped to.
pub(super) fn identity_key(p: &Principal) -> String {
    format!("{}\u{1f}{}\u{1f}{}", p.issuer, p.subject, p.client_id)
}

/// A person's identity and the client acting for them, as the store keeps
/// them beside every approval, vote and grant.
pub(super) fn voter(p: &Principal) -> greenlight_store::Voter {
    greenlight_store::Voter {
        issuer: p.issuer.clone(),
        subject: p.subject.clone(),
        client_id: p.client_id.clone(),
    }
}

/// The claims of a compact JWT the component has already verified in this
/// request: its payload is only decoded here (core's JWS parser), never
/// trusted unverified.
fn token_claims(token: &str) -> Option<serde_json::Value> {
    let jws = greenlight_core::jws::parse(token).ok()?;
    serde_json::from_slice(&jws.payload).ok()
}

/// The `exp` of a verified token ([`token_claims`]).
pub(super) fn token_exp(token: &str) -> Option<u64> {
    token_claims(token)?["exp"].as_u64()
}

/// Who acts for the person a verified token names, when an agent does: the
/// `sub` of its RFC 8693 `act` claim (the current actor; earlier ones nest
/// inside it), decoded as [`token_claims`].
pub(super) fn token_actor(token: &str) -> Option<String> {
    token_claims(token)?["act"]["sub"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}
