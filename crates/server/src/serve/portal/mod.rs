//! The approval portal: people sign in with the configured OpenID provider
//! and decide what waits for them, in a browser, without JavaScript.
//!
//! - Sign-in (`signin`): authorization code with PKCE (RFC 7636), `state`
//!   bound to the browser by a cookie and good once, `nonce` checked, the
//!   ID token verified by the component (`authenticate-id-token`: the same
//!   issuer, keys and claim mapping as access tokens). A server-side
//!   session in the store follows; the browser holds only an opaque,
//!   `HttpOnly`, `SameSite=Lax` cookie, `Secure` (and `__Host-`) unless
//!   the portal is served on loopback over plain HTTP.
//! - Pages (`pages`): what waits for the signed-in person, one approval
//!   with everything it binds, and a vote form that posts back the action
//!   digest the page showed. Who may see and decide is the JSON API's rule
//!   ([`super::approvals::may_vote`]); anyone else gets a 404.
//! - History (`history`): decided approvals with their votes, the action
//!   token handed out and its use, for those who took part and for the
//!   auditor role; also as JSON lines.
//! - Safety: every form carries the session's CSRF token and must come
//!   from this origin; a strict Content-Security-Policy (no script at all),
//!   no third-party assets, output escaped by the templates (askama).

mod config;
mod history;
mod pages;
mod session;
mod signin;
mod views;

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use greenlight_types::BundleInfo;
use sha2::{Digest, Sha256};

pub use config::{DEFAULT_SESSION_TTL, PortalSettings};

use super::keysource::fetch::Fetcher;
use super::{ApiError, AppState};

/// The portal's OpenID Connect client, ready to sign people in.
#[derive(Debug)]
pub struct Portal {
    settings: PortalSettings,
    /// The issuer people sign in with.
    issuer: String,
    secret: Option<String>,
    fetcher: Fetcher,
    /// The provider's endpoints, discovered at the first sign-in.
    endpoints: tokio::sync::RwLock<Option<signin::Endpoints>>,
    /// Whether cookies are `Secure` (the portal is served over HTTPS).
    secure: bool,
    /// `scheme://host[:port]` of the public URL: where forms must come from.
    origin: String,
    /// `{public_url}/portal/callback`.
    redirect_uri: String,
    /// The issuer's origin, where its sign-in pages are.
    issuer_origin: String,
}

impl Portal {
    /// The issuer people sign in with: every version of the bundle must
    /// keep trusting it.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The portal for `settings`, served at `public_url`. Refused when the
    /// issuer is not one of the bundle's, or when the public URL is plain
    /// HTTP anywhere but loopback (session cookies must be `Secure`).
    pub fn new(
        settings: &PortalSettings,
        info: &BundleInfo,
        public_url: &str,
    ) -> anyhow::Result<Self> {
        settings.check()?;
        let issuer = match &settings.issuer {
            Some(i) => {
                if !info.issuers.iter().any(|b| &b.issuer == i) {
                    anyhow::bail!("portal.issuer `{i}` is not one of the bundle's issuers");
                }
                i.clone()
            }
            None => info.issuers.first().map(|i| i.issuer.clone()).context(
                "the portal signs people in with the bundle's first issuer, and it has none",
            )?,
        };
        let issuer_origin = reqwest::Url::parse(&issuer)
            .map(|u| u.origin().ascii_serialization())
            .with_context(|| format!("the issuer `{issuer}` is not a URL"))?;
        let url = reqwest::Url::parse(public_url)
            .with_context(|| format!("the public URL `{public_url}` is not a URL"))?;
        let secure = match url.scheme() {
            "https" => true,
            "http" if crate::serve::keysource::fetch::is_loopback(&url) => false,
            _ => anyhow::bail!(
                "the portal's session cookies must be Secure: serve it at an https:// public URL \
                 (--public-url), or on loopback for trying it"
            ),
        };
        Ok(Self {
            settings: settings.clone(),
            issuer,
            secret: settings.client_secret()?,
            fetcher: Fetcher::new(&info.key_fetch)?,
            endpoints: tokio::sync::RwLock::new(None),
            secure,
            origin: url.origin().ascii_serialization(),
            redirect_uri: format!("{}/portal/callback", public_url.trim_end_matches('/')),
            issuer_origin,
        })
    }
}

impl Portal {
    /// The `form-action` sources beyond `'self'`: the issuer's origin and,
    /// once discovered, the authorization endpoint's (both worked out
    /// once, not per answer).
    async fn provider_origins(&self) -> Vec<String> {
        let mut origins = vec![self.issuer_origin.clone()];
        if let Some(e) = self.endpoints.read().await.as_ref()
            && !origins.contains(&e.authorization_origin)
        {
            origins.push(e.authorization_origin.clone());
        }
        origins
    }
}

/// The portal's routes, under `/portal`.
pub fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    Router::new()
        .route("/portal", get(pages::list))
        .route(
            "/portal/approvals/{id}",
            get(pages::detail).post(pages::vote),
        )
        .route("/portal/confirm", get(pages::confirm))
        .route("/portal/history", get(history::history))
        .route("/portal/history.jsonl", get(history::export))
        .route("/portal/login", get(signin::login))
        .route("/portal/callback", get(signin::callback))
        .route("/portal/logout", post(signin::logout))
        .route("/portal/signed-out", get(signin::signed_out))
        .route("/portal/static/portal.css", get(stylesheet))
        .layer(axum::middleware::from_fn_with_state(state, protect))
}

/// The portal's own stylesheet, served by the binary: no third-party
/// assets.
async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../../static/portal.css"),
    )
        .into_response()
}

/// No script may run, nothing may load from elsewhere, no page may be
/// framed; pages are never cached and never leak their URL (which names an
/// approval) in a `Referer` to another site (`same-origin`, not
/// `no-referrer`: with that, browsers send `Origin: null` on the portal's
/// own forms). Forms go only here, and on to the provider: a form whose
/// answer sends the person to sign in (a session that ended) goes there
/// through redirects, which browsers hold to `form-action` too.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn protect(
    axum::extract::State(st): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let mut response = next.run(request).await;
    let mut csp = CSP.to_owned();
    if let Some(p) = st.portal.as_deref() {
        for origin in p.provider_origins().await {
            csp.push(' ');
            csp.push_str(&origin);
        }
    }
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static(CSP)),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A page that says what went wrong, with the status it calls for.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        Self::new(e.status, e.description)
    }
}

impl From<greenlight_store::StoreError> for PageError {
    fn from(e: greenlight_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::warn!(status = %self.status, message = %self.message, "portal error");
        }
        views::page(
            self.status,
            &views::Message {
                title: self.status.canonical_reason().unwrap_or("Error").to_owned(),
                message: self.message,
                link: Some((
                    "/portal".to_owned(),
                    "Back to what waits for you".to_owned(),
                )),
            },
        )
    }
}

/// The portal, or a 404 when it is not configured.
fn portal(st: &AppState) -> Result<&Portal, PageError> {
    st.portal
        .as_deref()
        .ok_or_else(|| PageError::not_found("the portal is not configured"))
}

/// 32 random bytes, base64url: a session id, a CSRF token, a `state`, a
/// `nonce` or a PKCE verifier.
fn random_token() -> Result<String, PageError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("no randomness: {e}"),
        )
    })?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 digest of a secret, in hex, as the store keeps it.
fn digest(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A new confirmation code: eight letters of [`pages::CODE_ALPHABET`]
/// (20^8, about 2^34.6), drawn without bias.
fn new_code() -> Result<String, ApiError> {
    let mut code = String::with_capacity(8);
    while code.len() < 8 {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)
            .map_err(|e| ApiError::internal(format!("no randomness: {e}")))?;
        for b in bytes {
            // 240 is the largest multiple of 20 under 256.
            if b < 240 && code.len() < 8 {
                code.push(char::from(pages::CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    Ok(code)
}

/// `XXXX-XXXX`, as people read and type a code.
fn display_code(code: &str) -> String {
    let (a, b) = code.split_at(code.len().min(4));
    format!("{a}-{b}")
}

/// What the requester is told about confirming their own action in the
/// portal (RFC 8628's names, as a CIBA binding they carry to any device):
/// `user_code`, `verification_uri` and `verification_uri_complete`. Only
/// for an approval that asks the requester themselves (`subject`), and
/// only when the portal is configured.
pub async fn confirmation(
    st: &AppState,
    a: &greenlight_store::Approval,
) -> Result<Option<serde_json::Value>, ApiError> {
    if st.portal.is_none()
        || !a
            .obligation
            .approvers
            .contains(&greenlight_types::Approver::Subject)
    {
        return Ok(None);
    }
    // A clash with another approval's code (about one in 2^34 per
    // approval) draws again.
    let mut code = None;
    for _ in 0..4 {
        code = st.store.confirmation_code(&a.id, &new_code()?).await?;
        if code.is_some() {
            break;
        }
    }
    let code = code.ok_or_else(|| ApiError::internal("no free confirmation code was drawn"))?;
    let shown = display_code(&code);
    Ok(Some(serde_json::json!({
        "user_code": shown,
        "verification_uri": st.url("/portal/confirm"),
        "verification_uri_complete": st.url(&format!("/portal/confirm?code={shown}")),
    })))
}

/// Where a person decides an approval in the portal, when it is
/// configured: the link webhooks and chat messages carry.
pub fn approval_link(st: &AppState, id: &str) -> Option<String> {
    st.portal
        .as_ref()
        .map(|_| st.url(&format!("/portal/approvals/{id}")))
}
