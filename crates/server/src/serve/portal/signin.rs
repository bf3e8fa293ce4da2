//! Signing in with the provider (OpenID Connect Core 1.0 §3.1, the
//! authorization code flow, with PKCE, RFC 7636) and signing out.

use std::sync::Arc;

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use greenlight_store::portal::PortalSession;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::session::{cookie, posting};
use super::{PageError, Portal, digest, portal, random_token, views};
use crate::serve::AppState;

/// Seconds a person has to finish signing in at the provider.
const LOGIN_TTL: i64 = 600;

/// The longest return path kept across a sign-in (it travels in a cookie).
const MAX_RETURN: usize = 512;

/// The provider's endpoints the portal uses.
#[derive(Clone, Debug)]
pub(super) struct Endpoints {
    authorization: String,
    /// The authorization endpoint's origin, for `form-action`.
    pub(super) authorization_origin: String,
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
        // The details go to the log; the page, which anyone may load, says
        // only that signing in cannot work now.
        let unavailable = |why: String| {
            tracing::warn!(issuer = %self.issuer, error = %why, "portal: provider discovery failed");
            PageError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the sign-in provider cannot be reached now: try again later",
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
            authorization_origin: authorization.origin().ascii_serialization(),
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
            tracing::warn!(issuer = %self.issuer, error = %why, "portal: code exchange failed");
            PageError::new(
                StatusCode::BAD_GATEWAY,
                "the sign-in provider did not complete the sign-in: start again",
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

/// A sign-in in progress, kept in the browser that started it: the `state`
/// sent to the provider, the `nonce` the ID token must carry, the PKCE
/// verifier, where to go afterwards, and until when it may finish. Only
/// the browser's own sign-in depends on it, so a person who edits their
/// cookie only breaks their own sign-in; `return_to` is checked again.
#[derive(Debug, serde::Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    expires_at: i64,
}

impl Pending {
    fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(cookie: &str) -> Option<Self> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        let mut p: Self = serde_json::from_slice(&bytes).ok()?;
        p.return_to = return_path(Some(&p.return_to));
        Some(p)
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
                && p.len() <= MAX_RETURN
                && !p.contains("//")
                && !p.contains("/.")
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
    // The sign-in in progress lives in the browser that started it (an
    // `HttpOnly` cookie), not in the store: starting one writes nothing, so
    // nobody can fill the database by asking to sign in.
    let pending = Pending {
        state: state.clone(),
        nonce: nonce.clone(),
        verifier,
        return_to: return_path(q.return_to.as_deref()),
        expires_at: st.now().saturating_add(LOGIN_TTL),
    };
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
        portal.cookie(
            portal.login_cookie(),
            &pending.encode(),
            LOGIN_TTL.unsigned_abs(),
        ),
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
    // carrying someone else's sign-in does not sign anyone in here. The
    // cookie is cleared by this answer, whatever it is, and the provider's
    // code is good once: a sign-in finishes at most once.
    let login = cookie(&headers, portal.login_cookie())
        .and_then(Pending::decode)
        .filter(|p| bool::from(p.state.as_bytes().ct_eq(state.as_bytes())))
        .ok_or_else(|| bad("this sign-in was not started in this browser: start again"))?;
    if login.expires_at <= st.now() {
        return Err(bad("this sign-in took too long: start again"));
    }
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
        .version()
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
    // The ID token must come from the provider this portal signs in with
    // (OpenID Connect Core §3.1.3.7 2), not from another issuer the bundle
    // trusts for access tokens.
    if who.principal.issuer != portal.issuer {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            format!(
                "the sign-in was refused: the ID token is from `{}`, not `{}`",
                who.principal.issuer, portal.issuer
            ),
        ));
    }
    let now = st.now();
    let ttl = i64::try_from(portal.settings.session_ttl()).unwrap_or(i64::MAX);
    // A session lasts `session_ttl` from the sign-in at the provider, not
    // from this callback: a long-remembered provider session does not
    // stretch it.
    let signed_in_at = who
        .auth_time
        .and_then(|t| i64::try_from(t).ok())
        .map_or(now, |t| t.min(now));
    let expires_at = signed_in_at.saturating_add(ttl);
    if expires_at <= now {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "the sign-in was refused: the provider's sign-in is older than a session may last; sign in again",
        ));
    }
    // A sign-in in a browser ends the session it held before.
    if let Some(old) = cookie(&headers, portal.session_cookie()) {
        st.store.end_session(&digest(old), now).await?;
    }
    let id = random_token()?;
    st.store
        .create_session(&PortalSession {
            id_hash: digest(&id),
            issuer: who.principal.issuer.clone(),
            subject: who.principal.subject.clone(),
            credential: serde_json::to_value(&who).unwrap_or(Value::Null),
            csrf: random_token()?,
            created_at: now,
            expires_at,
            ended_at: None,
        })
        .await?;
    tracing::info!(issuer = %who.principal.issuer, subject = %who.principal.subject, "portal sign-in");
    let mut response = Redirect::to(&login.return_to).into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        portal.cookie(
            portal.session_cookie(),
            &id,
            u64::try_from(expires_at - now).unwrap_or(0),
        ),
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
            "/portal/approvals/../../v1/x",
            "",
        ] {
            assert_eq!(return_path(Some(bad)), "/portal", "{bad}");
        }
        assert_eq!(return_path(None), "/portal");
        let long = format!("/portal/{}", "a".repeat(600));
        assert_eq!(return_path(Some(&long)), "/portal");
    }
}
