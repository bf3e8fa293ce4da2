//! The browser's side of a sign-in: cookies, the session they name, and
//! the checks every form post passes.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use greenlight_types::Credential;
use subtle::ConstantTimeEq;

use super::{PageError, Portal, digest};
use crate::serve::AppState;

/// A live session: who signed in, and the token their forms carry.
#[derive(Debug)]
pub(super) struct Live {
    /// The digest the store knows the session by.
    pub id_hash: String,
    /// Who signed in, as the component verified their ID token.
    pub who: Credential,
    /// The CSRF token of this session's forms.
    pub csrf: String,
}

impl Portal {
    /// The session cookie's name: `__Host-` bound to this origin when the
    /// cookie is `Secure`.
    pub(super) fn session_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-greenlight-session"
        } else {
            "greenlight-session"
        }
    }

    /// The cookie that binds a sign-in's `state` to the browser that
    /// started it.
    pub(super) fn login_cookie(&self) -> &'static str {
        if self.secure {
            "__Host-greenlight-login"
        } else {
            "greenlight-login"
        }
    }

    /// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, path `/`, `Secure`
    /// unless on loopback; `max_age` 0 removes it.
    pub(super) fn cookie(&self, name: &str, value: &str, max_age: u64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// Refuses a form that did not come from a page of this portal: its
    /// `Origin` (sent by browsers with every POST) must be the portal's,
    /// and a browser saying it comes from another site is refused too.
    pub(super) fn same_origin(&self, headers: &HeaderMap) -> Result<(), PageError> {
        let refused = || {
            PageError::new(
                StatusCode::FORBIDDEN,
                "this form was not sent from a page of this portal",
            )
        };
        if let Some(origin) = headers.get(header::ORIGIN)
            && origin.as_bytes() != self.origin.as_bytes()
        {
            return Err(refused());
        }
        if headers
            .get("sec-fetch-site")
            .is_some_and(|s| s.as_bytes() == b"cross-site")
        {
            return Err(refused());
        }
        Ok(())
    }
}

/// The value of the cookie `name` in the request, if sent.
pub(super) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// The live session the request's cookie names, if any: not signed out,
/// not expired.
pub(super) async fn live(
    st: &AppState,
    portal: &Portal,
    headers: &HeaderMap,
) -> Result<Option<Live>, PageError> {
    let Some(id) = cookie(headers, portal.session_cookie()) else {
        return Ok(None);
    };
    let id_hash = digest(id);
    let Some(s) = st.store.session(&id_hash).await? else {
        return Ok(None);
    };
    // A session stands only while it is live and its person's issuer is
    // still the portal's (a bundle that stops trusting an issuer ends its
    // sessions at once).
    if !s.is_live(st.now()) || s.issuer != portal.issuer {
        return Ok(None);
    }
    let who: Credential = serde_json::from_value(s.credential).map_err(|e| {
        PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("a stored session is unreadable: {e}"),
        )
    })?;
    Ok(Some(Live {
        id_hash,
        who,
        csrf: s.csrf,
    }))
}

/// The live session of a form post, whose CSRF token must be the
/// session's and whose origin must be the portal's. Without a live
/// session: 401 (a form of a session that ended).
pub(super) async fn posting(
    st: &AppState,
    portal: &Portal,
    headers: &HeaderMap,
    csrf: &str,
) -> Result<Live, PageError> {
    portal.same_origin(headers)?;
    let live = live(st, portal, headers).await?.ok_or_else(|| {
        PageError::new(
            StatusCode::UNAUTHORIZED,
            "you are not signed in, or your session has ended: sign in again",
        )
    })?;
    if !bool::from(live.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
        return Err(PageError::new(
            StatusCode::FORBIDDEN,
            "this form's CSRF token is not this session's: reload the page and try again",
        ));
    }
    Ok(live)
}
