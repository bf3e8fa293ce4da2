//! Forward authentication for edge proxies (docs/edge.md): the proxy asks
//! before it forwards, and Greenlight answers with the same decision
//! `/v1/check` makes and the same HTTP answer every gateway gives.
//!
//! - `/v1/forward-auth` for nginx `auth_request` and Caddy `forward_auth`:
//!   the original method and URI come in `x-forwarded-method` and
//!   `x-forwarded-uri`, which the proxy sets (overwriting a client's); no
//!   body comes, so a route that reads body parameters is refused, never
//!   guessed. `/v1/forward-auth/nginx` answers the same and also puts a
//!   refusal's JSON body in `x-greenlight-answer`, since nginx drops the
//!   body of an `auth_request` answer.
//! - `/v1/ext-authz/{path}` for Envoy's `ext_authz` HTTP service: the
//!   method is the request's own, the path follows the prefix, and the body
//!   is the one Envoy forwards (`with_request_body`).
//!
//! An allow is a `200` carrying the decision's forward headers for the
//! proxy to copy upstream; anything else is the gateway answer itself
//! (`401` with its challenge, `403`, `400`, `503`). A request that already
//! carries an `x-greenlight-*` header is refused: those names are the
//! gateway's output, and not every proxy can strip a prefix (nginx cannot).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use greenlight_core::HttpRequest;
use greenlight_types::decision::forward;
use greenlight_types::gateway;
use greenlight_types::{Decision, DenialCode, Verdict};

use super::AppState;
use super::enforce::act;
use super::live::Version;

/// The header that carries the original method, set by the proxy.
pub const FORWARDED_METHOD: &str = "x-forwarded-method";
/// The header that carries the original path and query, set by the proxy.
pub const FORWARDED_URI: &str = "x-forwarded-uri";
/// The header that carries a refusal's JSON body (`/v1/forward-auth/nginx`).
pub const ANSWER_HEADER: &str = "x-greenlight-answer";
/// Where Envoy's `ext_authz` `path_prefix` points.
pub const EXT_AUTHZ_PREFIX: &str = "/v1/ext-authz";

/// `/v1/forward-auth`, any method: Caddy `forward_auth` (and any proxy
/// that forwards the client's body to the upstream only). Its own query is
/// ignored: nginx hands a subrequest the client's query string.
pub async fn forward_auth(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    forward(&st, &headers, false).await
}

/// `/v1/forward-auth/nginx`, any method: as [`forward_auth`], and every
/// refusal also carries its JSON body in `x-greenlight-answer`, since
/// nginx's `auth_request` drops the body of the answer.
pub async fn forward_auth_nginx(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    forward(&st, &headers, true).await
}

async fn forward(st: &AppState, headers: &HeaderMap, answer_in_header: bool) -> Response {
    let v = st.version();
    let decision = match original(headers).and_then(|(method, target)| {
        let (path, query) = split_target(&target)?;
        request(method, path, query, headers, None)
    }) {
        Ok(req) => decide(st, &v, &req).await,
        Err(why) => refuse(&v, why),
    };
    st.metrics.decision("forward-auth", &decision);
    let mut response = answer(st, &v, &decision, answer_in_header);
    // Caddy 2.6's `copy_headers` copies its own placeholder text for a
    // header the answer lacks: every forward header is present, empty
    // when it does not apply (nginx then sends none upstream).
    if response.status() == StatusCode::OK && !response.headers().contains_key(forward::APPROVAL) {
        response
            .headers_mut()
            .insert(forward::APPROVAL, HeaderValue::from_static(""));
    }
    response
}

/// `/v1/ext-authz/{path}`, any method: Envoy's `ext_authz` HTTP service
/// with `path_prefix: /v1/ext-authz`.
pub async fn ext_authz(
    State(st): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let v = st.version();
    let decision = match ext_authz_request(method, &uri, &headers, body) {
        Ok(req) => decide(&st, &v, &req).await,
        Err(why) => refuse(&v, why),
    };
    st.metrics.decision("ext-authz", &decision);
    answer(&st, &v, &decision, false)
}

fn ext_authz_request(
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<HttpRequest, String> {
    let path = uri
        .path()
        .strip_prefix(EXT_AUTHZ_PREFIX)
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| format!("the path must start with `{EXT_AUTHZ_PREFIX}/`"))?;
    let body = body.map_err(|e| format!("the request body was not read: {}", e.body_text()))?;
    let params = if body.is_empty() || !is_json(headers) {
        None
    } else {
        Some(
            String::from_utf8(body.to_vec())
                .map_err(|_| "the request body is not UTF-8".to_owned())?,
        )
    };
    request(
        method.as_str().to_owned(),
        path.to_owned(),
        uri.query().unwrap_or("").to_owned(),
        headers,
        params,
    )
}

async fn decide(st: &AppState, v: &Version, req: &HttpRequest) -> Decision {
    let decision = st.decide(v, |p, now| p.evaluate_http(req, now)).await;
    act(st, v, decision).await
}

fn refuse(v: &Version, why: String) -> Decision {
    Decision::deny(DenialCode::RequestInvalid, why, v.policy_hash())
}

/// The original method and target from the proxy's headers: each exactly
/// once.
fn original(headers: &HeaderMap) -> Result<(String, String), String> {
    let one = |name: &str| -> Result<String, String> {
        let mut values = headers.get_all(name).iter();
        let (Some(v), None) = (values.next(), values.next()) else {
            return Err(format!(
                "the proxy must send `{name}` exactly once (docs/edge.md)"
            ));
        };
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| format!("`{name}` is not visible ASCII"))
    };
    let method = one(FORWARDED_METHOD)?;
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!("`{FORWARDED_METHOD}` is not a method: `{method}`"));
    }
    Ok((method, one(FORWARDED_URI)?))
}

/// A request target (`/path?query`) as path and query.
fn split_target(target: &str) -> Result<(String, String), String> {
    if !target.starts_with('/') {
        return Err(format!(
            "`{FORWARDED_URI}` must be a path starting with `/`, not `{target}`"
        ));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    // A fragment never reaches a server; one here is not a request target.
    if target.contains('#') {
        return Err(format!("`{FORWARDED_URI}` holds a fragment"));
    }
    Ok((path.to_owned(), query.to_owned()))
}

/// The engine's request, refusing a client's `x-greenlight-*` header.
fn request(
    method: String,
    path: String,
    query: String,
    headers: &HeaderMap,
    params: Option<String>,
) -> Result<HttpRequest, String> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = name.as_str();
        if forward::is_gateway_header(name) {
            return Err(format!(
                "the request carries `{name}`, a header only the gateway sets"
            ));
        }
        let value = value
            .to_str()
            .map_err(|_| format!("header `{name}` is not visible ASCII"))?;
        pairs.push((name.to_owned(), value.to_owned()));
    }
    Ok(HttpRequest {
        method,
        path,
        query,
        headers: pairs,
        params,
        entities: None,
    })
}

/// Whether the body is JSON (or untyped), the only bodies that are
/// parameters (docs/gateway.md).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .is_none_or(|v| v.to_str().is_ok_and(gateway::is_json_media_type))
}

/// The proxy's answer: `200` with the forward headers for an allow, the
/// gateway answer for anything else.
fn answer(st: &AppState, v: &Version, decision: &Decision, answer_in_header: bool) -> Response {
    if let Verdict::Allow(allow) = &decision.verdict {
        let mut headers = HeaderMap::new();
        for (name, value) in &allow.forward_headers {
            match (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                (Ok(n), Ok(v)) => {
                    headers.append(n, v);
                }
                _ => {
                    // A subject no header can carry: the upstream could
                    // not be told who acts, so the request does not pass.
                    let d = Decision::deny(
                        DenialCode::EngineInvalidOutput,
                        format!("the forward header `{name}` cannot be sent as an HTTP header"),
                        &decision.policy_hash,
                    );
                    return answer(st, v, &d, answer_in_header);
                }
            }
        }
        return (StatusCode::OK, headers).into_response();
    }
    let service = st.public_url.trim_end_matches('/');
    let r = v.policy.respond(decision, service);
    let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    let mut headers = HeaderMap::new();
    for (name, value) in &r.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            headers.append(n, v);
        }
    }
    let body = r.body.to_string();
    if answer_in_header && let Ok(v) = HeaderValue::try_from(ascii_json(&body)) {
        headers.insert(ANSWER_HEADER, v);
    }
    (status, headers, body).into_response()
}

/// JSON text with every non-ASCII character escaped (`\uXXXX`, surrogate
/// pairs beyond the BMP), so it fits in a header unchanged in meaning:
/// outside strings JSON is ASCII already.
fn ascii_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_untyped_body_is_parameters_and_an_unreadable_type_is_not() {
        let with = |t: &[u8]| {
            let mut h = HeaderMap::new();
            h.insert("content-type", HeaderValue::from_bytes(t).expect("value"));
            is_json(&h)
        };
        assert!(is_json(&HeaderMap::new()));
        assert!(with(b"application/json"));
        assert!(!with(b"text/plain"));
        assert!(!with(b"application/json\xff"));
    }

    #[test]
    fn a_target_splits_at_the_first_question_mark_and_must_be_a_path() {
        assert_eq!(
            split_target("/payments/p1/refund?amount=5&x=?"),
            Ok(("/payments/p1/refund".to_owned(), "amount=5&x=?".to_owned()))
        );
        assert_eq!(split_target("/a"), Ok(("/a".to_owned(), String::new())));
        assert_eq!(
            split_target("http://evil.example/a"),
            Err(
                "`x-forwarded-uri` must be a path starting with `/`, not `http://evil.example/a`"
                    .to_owned()
            )
        );
        assert_eq!(
            split_target("/a#b"),
            Err("`x-forwarded-uri` holds a fragment".to_owned())
        );
    }

    #[test]
    fn the_original_method_and_uri_come_exactly_once() {
        let mut h = HeaderMap::new();
        assert_eq!(
            original(&h),
            Err("the proxy must send `x-forwarded-method` exactly once (docs/edge.md)".to_owned())
        );
        h.insert(FORWARDED_METHOD, HeaderValue::from_static("POST"));
        h.append(FORWARDED_URI, HeaderValue::from_static("/a"));
        assert_eq!(original(&h), Ok(("POST".to_owned(), "/a".to_owned())));
        h.append(FORWARDED_URI, HeaderValue::from_static("/b"));
        assert_eq!(
            original(&h),
            Err("the proxy must send `x-forwarded-uri` exactly once (docs/edge.md)".to_owned())
        );
        h.remove(FORWARDED_URI);
        h.insert(FORWARDED_URI, HeaderValue::from_static("/a"));
        h.insert(FORWARDED_METHOD, HeaderValue::from_static("post"));
        assert_eq!(
            original(&h),
            Err("`x-forwarded-method` is not a method: `post`".to_owned())
        );
    }

    #[test]
    fn ascii_json_escapes_what_a_header_cannot_carry() {
        let text = serde_json::json!({"m": "Remboursement € 😀", "n": 1}).to_string();
        let ascii = ascii_json(&text);
        assert!(ascii.is_ascii());
        assert_eq!(ascii, r#"{"m":"Remboursement \u20ac \ud83d\ude00","n":1}"#);
        let back: serde_json::Value = serde_json::from_str(&ascii).expect("json");
        assert_eq!(back["m"], "Remboursement € 😀");
    }
}
