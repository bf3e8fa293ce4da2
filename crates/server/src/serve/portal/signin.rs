//! Signing in with the provider (OpenID Connect Core 1.0 §3.1, the
//! authorization code flow, with PKCE, RFC 7636) and signing out.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use greenlight_store::portal::{PortalLogin, PortalSession};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::{cookie, posting};
use super::{PageError, Portal, digest, portal, random_token, views};
use crate::serve::AppState;

/// Seconds a person has to finish signing in at the provider.
const LOGIN_TTL: i64 = 600;

/// The provider's endpoints the portal uses.
#[derive(Clone, Debug)]
pub(super) struct Endpoints {
    authorization: String,
    token: String,
}

impl Portal {
    /// The provider's endpoints, from its discovery document (OpenID
    /// Connect Discovery 1.0) at the first sign-in. Its `issuer` must be
    /// the issuer's; the token endpoint, which the server calls, must be
    /// on the issuer's host, as for key sets.
    async fn endpoints(&self) -> Result<Endpoints, PageError> {
        if let Some(e) = self.endpoints.read().await.clone() {
            return Ok(e);
        }
        let unavailable = |why: String| {
            PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("cannot reach the sign-in provider `{}`: {why}", self.issuer),
            )
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let doc = self.fetcher.document(&url).await.map_err(unavailable)?;
        if doc.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(unavailable(format!(
                "{url}: its `issuer` is not `{}`",
                self.issuer
            )));
        }
        let endpoint = |name: &str| {
            let value = doc
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| unavailable(format!("{url}: no `{name}`")))?;
            self.fetcher
                .check(value)
                .map_err(|e| unavailable(format!("{url}: {name} {e}")))
        };
        let authorization = endpoint("authorization_endpoint")?;
        let token = endpoint("token_endpoint")?;
        let own = self.fetcher.check(&url).map_err(unavailable)?;
        if (token.host_str(), token.port_or_known_default())
            != (own.host_str(), own.port_or_known_default())
        {
            return Err(unavailable(format!(
                "{url}: its token_endpoint `{token}` is not on the issuer's host"
            )));
        }
        let e = Endpoints {
            authorization: authorization.to_string(),
            token: token.to_string(),
        };
        *self.endpoints.write().await = Some(e.clone());
        Ok(e)
    }

    /// Exchanges an authorization code for the provider's tokens and
    /// returns the ID token.
    async fn redeem(
        &self,
        token_endpoint: &str,
        code: &str,
        verifier: &str,
    ) -> Result<String, PageError> {
        let refused = |why: String| {
            PageError::new(
                StatusCode::BAD_GATEWAY,
                format!("the sign-in provider did not complete the sign-in: {why}"),
            )
        };
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", verifier),
        ];
        let mut request = self.fetcher.client().post(token_endpoint);
        match &self.secret {
            // RFC 6749 §2.3.1: client_secret_basic, the method every
            // provider must support.
            Some(secret) => {
                request = request.basic_auth(
                    form_encode(&self.settings.client_id),
                    Some(form_encode(secret)),
                );
            }
            None => form.push(("client_id", self.settings.client_id.as_str())),
        }
        let response = request
            .header(header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| refused(format!("POST {token_endpoint}: {e}")))?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| {
            refused(format!(
                "POST {token_endpoint}: status {status}, not JSON: {e}"
            ))
        })?;
        if !status.is_success() {
            return Err(refused(format!(
                "{} {}",
                body.get("error").and_then(Value::as_str).unwrap_or("error"),
                body.get("error_description")
                    .and_then(Value::as_str)
                    .unwrap_or("")
            )));
        }
        body.get("id_token")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| refused("the answer has no `id_token`".to_owned()))
    }
}

/// `application/x-www-form-urlencoded` of a client id or secret, as RFC
/// 6749 §2.3.1 asks before Basic authentication.
fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// A return path inside the portal, or the portal's front page: never
/// another site (`//evil`, `/\evil`, `https://…`).
fn return_path(to: Option<&str>) -> String {
    match to {
        Some(p)
            if (p == "/portal" || p.starts_with("/portal/") || p.starts_with("/portal?"))
                && !p.contains("//")
                && !p.contains('\\')
                && p.chars().all(|c| c.is_ascii_graphic()) =>
        {
            p.to_owned()
        }
        _ => "/portal".to_owned(),
    }
}

/// `?return_to=&fresh=`.
#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    return_to: Option<String>,
    /// Asks the provider for a new sign-in (`prompt=login`, `max_age=0`),
    /// as confirming one's own action needs.
    fresh: Option<String>,
}

/// `GET /portal/login`: starts a sign-in and sends the browser to the
/// provider.
pub(super) async fn login(
    State(st): State<Arc<AppState>>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let Query(q) = query.map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let endpoints = portal.endpoints().await?;
    let state = random_token()?;
    let nonce = random_token()?;
    let verifier = random_token()?;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    let now = st.now();
    st.store
        .begin_login(&PortalLogin {
            state_hash: digest(&state),
            nonce: nonce.clone(),
            verifier,
            return_to: return_path(q.return_to.as_deref()),
            created_at: now,
            expires_at: now.saturating_add(LOGIN_TTL),
        })
        .await?;
    let mut url = reqwest::Url::parse(&endpoints.authorization).map_err(|e| {
        PageError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the authorization endpoint: {e}"),
        )
    })?;
    {
        let mut p = url.query_pairs_mut();
        p.append_pair("response_type", "code")
            .append_pair("client_id", &portal.settings.client_id)
            .append_pair("redirect_uri", &portal.redirect_uri)
            .append_pair("scope", portal.settings.scopes())
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        // With `max_age` the ID token must say when the person signed in
        // (`auth_time`, OpenID Connect Core §3.1.2.1), which confirming
        // one's own action needs.
        if q.fresh.is_some() {
            p.append_pair("prompt", "login").append_pair("max_age", "0");
        } else {
            p.append_pair("max_age", &portal.settings.session_ttl().to_string());
        }
    }
    let mut response = Redirect::to(url.as_str()).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        portal.cookie(portal.login_cookie(), &state, LOGIN_TTL.unsigned_abs()),
    );
    Ok(response)
}

/// `?code=&state=` or `?error=&error_description=&state=`.
#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /portal/callback`: the provider sends the browser back; the code
/// becomes an ID token, the ID token a session.
pub(super) async fn callback(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let Query(q) = query.map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let bad = |m: &str| PageError::new(StatusCode::BAD_REQUEST, m);
    let state = q
        .state
        .as_deref()
        .ok_or_else(|| bad("the sign-in answer has no `state`"))?;
    // The state must be the one this browser was sent off with: a link
    // carrying someone else's sign-in does not sign anyone in here.
    let bound = cookie(&headers, portal.login_cookie())
        .is_some_and(|c| bool::from(c.as_bytes().ct_eq(state.as_bytes())));
    if !bound {
        return Err(bad(
            "this sign-in was not started in this browser: start again",
        ));
    }
    let login = st
        .store
        .take_login(&digest(state), st.now())
        .await?
        .ok_or_else(|| bad("this sign-in is unknown, used or expired: start again"))?;
    if let Some(error) = q.error {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "the sign-in provider did not sign you in: {error}{}",
                q.error_description
                    .map(|d| format!(": {d}"))
                    .unwrap_or_default()
            ),
        ));
    }
    let code = q
        .code
        .as_deref()
        .ok_or_else(|| bad("the sign-in answer has no `code`"))?;
    let endpoints = portal.endpoints().await?;
    let id_token = portal
        .redeem(&endpoints.token, code, &login.verifier)
        .await?;
    let who = st
        .policy
        .authenticate_id_token(
            &id_token,
            &portal.settings.client_id,
            &login.nonce,
            st.clock.now(),
        )
        .map_err(|d| {
            PageError::new(
                StatusCode::UNAUTHORIZED,
                format!("the sign-in was refused: {} ({})", d.message, d.code),
            )
        })?;
    let id = random_token()?;
    let now = st.now();
    let ttl = portal.settings.session_ttl();
    st.store
        .create_session(&PortalSession {
            id_hash: digest(&id),
            issuer: who.principal.issuer.clone(),
            subject: who.principal.subject.clone(),
            credential: serde_json::to_value(&who).unwrap_or(Value::Null),
            csrf: random_token()?,
            created_at: now,
            expires_at: now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)),
            ended_at: None,
        })
        .await?;
    tracing::info!(issuer = %who.principal.issuer, subject = %who.principal.subject, "portal sign-in");
    let mut response = Redirect::to(&login.return_to).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        portal.cookie(portal.session_cookie(), &id, ttl),
    );
    h.append(
        header::SET_COOKIE,
        portal.cookie(portal.login_cookie(), "", 0),
    );
    Ok(response)
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub(super) struct LogoutForm {
    csrf: String,
}

/// `POST /portal/logout`: ends the session in the store (its cookie is
/// worthless from now on, wherever it was copied) and clears the cookie.
pub(super) async fn logout(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<LogoutForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let Form(form) = form.map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let live = posting(&st, portal, &headers, &form.csrf).await?;
    st.store.end_session(&live.id_hash, st.now()).await?;
    let mut response = Redirect::to("/portal/signed-out").into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        portal.cookie(portal.session_cookie(), "", 0),
    );
    Ok(response)
}

/// `GET /portal/signed-out`.
pub(super) async fn signed_out() -> Response {
    views::page(
        StatusCode::OK,
        &views::Message {
            title: "Signed out".to_owned(),
            message: "You signed out of Greenlight.".to_owned(),
            link: Some(("/portal/login".to_owned(), "Sign in again".to_owned())),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::return_path;

    #[test]
    fn a_return_path_stays_in_the_portal() {
        for good in [
            "/portal",
            "/portal/approvals/ab12",
            "/portal/confirm?code=BCDF-GHJK",
        ] {
            assert_eq!(return_path(Some(good)), good);
        }
        for bad in [
            "https://evil.example/portal",
            "//evil.example/portal",
            "/portal//evil.example",
            "/portal/\\evil.example",
            "/portalx",
            "/v1/approvals",
            "/portal/a b",
            "",
        ] {
            assert_eq!(return_path(Some(bad)), "/portal", "{bad}");
        }
        assert_eq!(return_path(None), "/portal");
    }
}
