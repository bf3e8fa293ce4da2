//! The MCP gateway: `greenlight serve` with `[mcp]` stands in front of an
//! MCP server over the Streamable HTTP transport.
//!
//! Every request needs the caller's OAuth access token (MCP's
//! authorization: the gateway is a protected resource, RFC 9728 metadata
//! at `/.well-known/oauth-protected-resource{path}`), issued for this
//! resource (RFC 8707: `aud` names it); a missing or refused token is a
//! `401` whose challenge names the metadata. The token is never passed
//! on: the upstream sees the gateway, not the caller's credential.
//!
//! Everything passes through unchanged (sessions, server-sent event
//! streams, notifications) except a `tools/call`, which is decided like
//! any request, as `{method: "tools/call", path: "/TOOL", params:
//! ARGUMENTS}` by the bundle's `[[tools]]`:
//!
//! - allowed: forwarded as sent;
//! - refused: a tool result with `isError: true` saying why, which the
//!   model reads; the upstream never sees the call;
//! - approval required: see [`approval`]; an approved call is forwarded
//!   exactly once, after its use is claimed in the store.

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use greenlight_types::{HttpRequest, Principal, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub mod approval;
mod message;
mod sessions;

use message::{malformed, mirror_mismatch};
pub use sessions::{Session, Sessions};

/// The protocol revision whose approval answer is an input-required
/// result (multi round-trip requests); earlier ones get URL elicitation.
pub const MODERN_REVISION: &str = "2026-07-28";

/// The JSON-RPC error a 2025-11-25 server answers when a URL elicitation
/// must be completed first.
pub const URL_ELICITATION_REQUIRED: i64 = -32042;

/// Request headers passed to the upstream, besides every `mcp-*` one
/// (`Mcp-Session-Id`, `MCP-Protocol-Version`, and 2026-07-28's mirrors of
/// the body: `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`); every other one
/// (the caller's `authorization` first) stays here.
const FORWARD_REQUEST: [&str; 3] = ["content-type", "accept", "last-event-id"];

/// Response headers passed back to the caller, besides every `mcp-*` one.
const FORWARD_RESPONSE: [&str; 3] = ["content-type", "content-length", "cache-control"];

/// Whether header `name` passes: one of `listed`, or an MCP header.
fn passes(name: &str, listed: &[&str]) -> bool {
    name.starts_with("mcp-") || listed.contains(&name)
}

/// The longest `[mcp] wait`.
const MAX_WAIT: u64 = 60;

/// Retries waiting for a decision at once; beyond, a retry answers at
/// once that the approval is still pending.
const MAX_WAITERS: usize = 256;

/// Paths the service itself serves, which `[mcp] path` may not take.
const RESERVED: [&str; 9] = [
    "/v1/",
    "/access/",
    "/oauth/",
    "/.well-known/",
    "/portal",
    "/slack",
    "/metrics",
    "/healthz",
    "/static",
];

/// `[mcp]`: the gateway.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSettings {
    /// The MCP server's Streamable HTTP endpoint, e.g.
    /// `http://127.0.0.1:9000/mcp`. Only the gateway should reach it.
    pub upstream: String,
    /// Where the gateway serves MCP. Defaults to `/mcp`.
    pub path: Option<String>,
    /// The resource identifier access tokens must be issued for (their
    /// `aud`, RFC 8707), as the protected-resource metadata says.
    /// Defaults to the public URL followed by `path`.
    pub resource: Option<String>,
    /// The authorization servers the metadata names. Defaults to the
    /// bundle's issuers.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Seconds to wait for the upstream's answer to begin. Default 300.
    pub timeout: Option<u64>,
    /// Seconds a retried call whose approval is still pending waits for
    /// the decision before answering "still waiting" (2026-07-28). Default 20.
    pub wait: Option<u64>,
}

impl McpSettings {
    /// Where the gateway serves MCP.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("/mcp")
    }

    /// Refuses settings that cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        let url = url::Url::parse(&self.upstream)
            .map_err(|e| anyhow::anyhow!("mcp.upstream `{}` is not a URL: {e}", self.upstream))?;
        if !matches!(url.scheme(), "http" | "https") {
            anyhow::bail!("mcp.upstream `{}` is not an http(s) URL", self.upstream);
        }
        let path = self.path();
        if !path.starts_with('/')
            || path.len() < 2
            || path.ends_with('/')
            || path.contains(['{', '}', '*', '?', '#'])
        {
            anyhow::bail!("mcp.path `{path}` must be a plain path such as `/mcp`");
        }
        if RESERVED
            .iter()
            .any(|r| path.starts_with(r) || r.trim_end_matches('/') == path)
        {
            anyhow::bail!("mcp.path `{path}` is one of the service's own paths");
        }
        if self.timeout == Some(0) {
            anyhow::bail!("mcp.timeout must be at least 1 second");
        }
        if self.wait.is_some_and(|w| w > MAX_WAIT) {
            anyhow::bail!("mcp.wait is at most {MAX_WAIT} seconds");
        }
        Ok(())
    }
}

/// The gateway's state: its settings, the clients to the upstream, the
/// sessions it has seen begin and the retries waiting for a decision.
#[derive(Debug)]
pub struct Gateway {
    settings: McpSettings,
    /// For messages: an answer must begin within the timeout.
    client: reqwest::Client,
    /// For the GET stream, which may stay quiet for long.
    stream: reqwest::Client,
    /// Who each session belongs to.
    pub sessions: Sessions,
    /// Bounds the retries waiting for a decision at once.
    pub waiters: tokio::sync::Semaphore,
    /// The resource identifier tokens are issued for.
    pub resource: String,
    /// The protected-resource metadata's URL.
    pub metadata_url: String,
}

impl Gateway {
    /// The gateway for `settings`, at `public_url`.
    pub fn new(settings: &McpSettings, public_url: &str) -> anyhow::Result<Self> {
        let base = public_url.trim_end_matches('/');
        // One for messages (bounded by `timeout`), one for streams (open
        // as long as the upstream streams), otherwise alike.
        let builder = || {
            reqwest::Client::builder()
                .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
        };
        let client = builder()
            .read_timeout(Duration::from_secs(settings.timeout.unwrap_or(300)))
            .build()?;
        let stream = builder().build()?;
        Ok(Self {
            stream,
            sessions: Sessions::default(),
            waiters: tokio::sync::Semaphore::new(MAX_WAITERS),
            resource: settings
                .resource
                .clone()
                .unwrap_or_else(|| format!("{base}{}", settings.path())),
            metadata_url: format!(
                "{base}/.well-known/oauth-protected-resource{}",
                settings.path()
            ),
            settings: settings.clone(),
            client,
        })
    }

    /// Seconds a pending approval's retry waits.
    pub fn wait(&self) -> u64 {
        self.settings.wait.unwrap_or(20).min(MAX_WAIT)
    }
}

/// `GET /.well-known/oauth-protected-resource{path}` (RFC 9728).
pub async fn metadata(State(st): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let gw = gateway(&st)?;
    let servers: Vec<String> = if gw.settings.authorization_servers.is_empty() {
        st.version()
            .info()
            .issuers
            .iter()
            .map(|i| i.issuer.clone())
            .collect()
    } else {
        gw.settings.authorization_servers.clone()
    };
    Ok(axum::Json(json!({
        "resource": gw.resource,
        "authorization_servers": servers,
        "bearer_methods_supported": ["header"],
        "resource_name": "Greenlight MCP gateway",
    }))
    .into_response())
}

fn gateway(st: &AppState) -> Result<&Gateway, ApiError> {
    st.mcp
        .as_deref()
        .ok_or_else(|| ApiError::not_found("no MCP gateway is configured"))
}

/// A `401` as MCP's authorization says: the challenge names the
/// protected-resource metadata.
fn unauthorized(gw: &Gateway, why: &str) -> Response {
    let mut e = ApiError::invalid_token(why.to_owned());
    e.challenge = Some(format!(
        "Bearer error=\"invalid_token\", error_description=\"{}\", resource_metadata=\"{}\"",
        why.replace(['"', '\\'], "'"),
        gw.metadata_url
    ));
    e.into_response()
}

/// The caller's token, verified, and issued for this resource; `Err` is
/// the `401` to answer.
async fn caller(
    st: &AppState,
    gw: &Gateway,
    headers: &HeaderMap,
) -> Result<(String, Principal), Response> {
    let token = super::auth::bearer(headers).map_err(|e| unauthorized(gw, &e.description))?;
    // Read once: its type and audience (trusted only after the engine has
    // verified it below).
    let (typ, aud) = greenlight_core::jws::parse(&token).map_or((None, Value::Null), |j| {
        let claims = serde_json::from_slice::<Value>(&j.payload).unwrap_or(Value::Null);
        (j.typ, claims["aud"].clone())
    });
    // Greenlight's own action tokens are for the one action they name, at
    // an API; they are not an MCP client's credential.
    if typ.as_deref() == Some(greenlight_types::ACTION_TOKEN_TYP) {
        return Err(unauthorized(
            gw,
            "an action token is not an MCP client's credential",
        ));
    }
    let who = super::auth::authenticate_token(st, &token)
        .await
        .map_err(|e| unauthorized(gw, &e.description))?
        .principal;
    // RFC 8707: a token for another resource is not for this one, whatever
    // the bundle's issuer accepts.
    let for_us = match &aud {
        Value::String(a) => *a == gw.resource,
        Value::Array(all) => all.iter().any(|a| *a == gw.resource.as_str()),
        _ => false,
    };
    if !for_us {
        return Err(unauthorized(
            gw,
            &format!(
                "the token is not issued for `{}` (its `aud` is {aud})",
                gw.resource
            ),
        ));
    }
    Ok((token, who))
}

/// A JSON-RPC result answering `id`.
pub fn rpc_result(id: &Value, result: Value) -> Response {
    json_response(json!({ "jsonrpc": "2.0", "id": id, "result": result }))
}

/// A JSON-RPC error answering `id`.
pub fn rpc_error(id: &Value, code: i64, message: &str, data: Option<Value>) -> Response {
    let mut error = json!({ "code": code, "message": message });
    if let Some(d) = data {
        error["data"] = d;
    }
    json_response(json!({ "jsonrpc": "2.0", "id": id, "error": error }))
}

/// A tool result the model reads: `isError` with the reason (a complete
/// result, as 2026-07-28 marks every result).
pub fn tool_error(id: &Value, revision: approval::Revision, text: &str) -> Response {
    let mut result = json!({ "content": [{ "type": "text", "text": text }], "isError": true });
    if revision == approval::Revision::Modern {
        result["resultType"] = json!("complete");
    }
    rpc_result(id, result)
}

fn json_response(body: Value) -> Response {
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A `400` carrying a JSON-RPC error.
pub(super) fn bad_request(id: &Value, code: i64, message: &str) -> Response {
    let mut resp = rpc_error(id, code, message, None);
    *resp.status_mut() = StatusCode::BAD_REQUEST;
    resp
}

/// The MCP endpoint. A POST's body is read here and re-encoded before it
/// goes on (a body the gateway cannot read goes nowhere); GET (a stream)
/// and DELETE (the end of a session) go on as they are; any other method
/// is refused.
pub async fn handle(
    State(st): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let gw = match gateway(&st) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let (token, who) = match caller(&st, gw, &headers).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    if method != Method::POST && method != Method::GET && method != Method::DELETE {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "the MCP endpoint takes POST, GET and DELETE",
        )
            .into_response();
    }
    let session = match gw.sessions.check(&headers, &who) {
        Ok(s) => s,
        Err(resp) => return *resp,
    };
    if method != Method::POST {
        // A GET or DELETE carries no message: nothing unread goes on.
        let resp = forward(gw, method.clone(), &headers, Bytes::new()).await;
        if method == Method::DELETE
            && resp.status().is_success()
            && let Some(s) = &session
        {
            gw.sessions.end(&s.id);
        }
        return resp;
    }
    let message = match serde_json::from_slice::<Value>(&body) {
        Ok(m) => m,
        Err(e) => {
            return bad_request(
                &Value::Null,
                -32700,
                &format!("the body is not JSON the gateway can read: {e}"),
            );
        }
    };
    let items: Vec<&Value> = match &message {
        Value::Array(batch) => batch.iter().collect(),
        single => vec![single],
    };
    for m in &items {
        if let Some(why) = malformed(m) {
            return bad_request(&m["id"], -32600, &why);
        }
    }
    // 2026-07-28 mirrors the method and the tool's name in headers: they
    // must say what the body says, or the gateway would decide one call
    // while an upstream reading the headers ran another.
    if let Some(resp) = mirror_mismatch(&headers, &message) {
        return resp;
    }
    let calls_tool = |m: &&Value| m["method"] == "tools/call";
    let resp = match &message {
        Value::Object(_) if calls_tool(&&message) => {
            let url = approval::takes_url_elicitation(session.as_ref(), &message);
            return tool_call(&st, gw, &headers, &token, message, url).await;
        }
        Value::Array(batch) if batch.iter().any(|m| calls_tool(&m)) => {
            return bad_request(
                &Value::Null,
                -32600,
                "a batch may not carry tools/call: send each call on its own",
            );
        }
        _ => forward_json(gw, &headers, &message).await,
    };
    if session.is_none()
        && let Some(id) = resp
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
    {
        // What the client said it can do, at `initialize` (2025-11-25:
        // `capabilities.elicitation.url`).
        let url = message["method"] == "initialize"
            && message["params"]["capabilities"]["elicitation"]["url"].is_object();
        gw.sessions.start(id, &who, url);
    }
    resp
}

/// Decides a `tools/call` and answers it.
async fn tool_call(
    st: &AppState,
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    mut message: Value,
    url_elicitation: Option<bool>,
) -> Response {
    let id = message["id"].clone();
    let Some(name) = message["params"]["name"].as_str().map(str::to_owned) else {
        return rpc_error(&id, -32602, "tools/call needs `params.name`", None);
    };
    if !greenlight_core::routes::valid_tool_name(&name) {
        return rpc_error(
            &id,
            -32602,
            &format!(
                "`{name}` is not a tool name (1 to {} of `A-Z a-z 0-9 _ - .`)",
                greenlight_core::routes::MAX_TOOL_NAME
            ),
            None,
        );
    }
    let arguments = match &message["params"]["arguments"] {
        Value::Null => json!({}),
        Value::Object(a) => Value::Object(a.clone()),
        _ => return rpc_error(&id, -32602, "`params.arguments` must be an object", None),
    };
    let req = HttpRequest {
        method: greenlight_core::routes::TOOL_METHOD.to_owned(),
        path: format!("/{name}"),
        query: String::new(),
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        params: Some(arguments.to_string()),
        entities: None,
    };
    let v = st.version();
    let decision = st.decide(&v, |p, now| p.evaluate_http(&req, now)).await;
    let decision = super::enforce::act(st, &v, decision).await;
    st.metrics.decision("mcp", &decision);
    let revision = approval::revision(headers, &message);
    match decision.verdict {
        Verdict::Allow(_) => {
            // Greenlight's own round-trip members never reach the upstream.
            approval::strip(&mut message);
            forward_json(gw, headers, &message).await
        }
        Verdict::Deny(d) => {
            tracing::info!(tool = %name, code = %d.code, "tool call refused");
            tool_error(
                &id,
                revision,
                &format!("Greenlight refused this call: {}", d.message),
            )
        }
        Verdict::StepUpRequired(s) => tool_error(
            &id,
            revision,
            &format!(
                "Greenlight refused this call until you sign in again: {}",
                s.message
            ),
        ),
        Verdict::ApprovalRequired(ch) => {
            approval::required(
                st,
                gw,
                approval::Call {
                    headers,
                    token,
                    name: &name,
                    message,
                    revision,
                    policy_hash: decision.policy_hash,
                    url_elicitation,
                },
                &ch,
            )
            .await
        }
    }
}

/// Forwards `message` (re-encoded) to the upstream.
pub async fn forward_json(gw: &Gateway, headers: &HeaderMap, message: &Value) -> Response {
    forward(
        gw,
        Method::POST,
        headers,
        Bytes::from(message.to_string().into_bytes()),
    )
    .await
}

/// Forwards a request to the upstream and streams its answer back; an
/// upstream that cannot be reached is a `502`.
async fn forward(gw: &Gateway, method: Method, headers: &HeaderMap, body: Bytes) -> Response {
    let post = method == Method::POST;
    let Ok(method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
        return (StatusCode::METHOD_NOT_ALLOWED, "unsupported method").into_response();
    };
    let client = if post { &gw.client } else { &gw.stream };
    let mut req = client.request(method, &gw.settings.upstream);
    for (name, value) in headers {
        // A POST's body is the gateway's own encoding: JSON in UTF-8.
        if passes(name.as_str(), &FORWARD_REQUEST) && !(post && name == header::CONTENT_TYPE) {
            req = req.header(name.as_str(), value.as_bytes());
        }
    }
    if post {
        req = req.header(header::CONTENT_TYPE, "application/json");
    }
    let answer = match req.body(body).send().await {
        Ok(a) => a,
        Err(e) => {
            tracing::error!(error = %e, "the MCP upstream cannot be reached");
            return (
                StatusCode::BAD_GATEWAY,
                axum::Json(json!({ "error": "bad_gateway",
                    "error_description": "the MCP server behind the gateway cannot be reached" })),
            )
                .into_response();
        }
    };
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        // The caller's token was good here; the upstream refusing the
        // gateway is the gateway's problem, not a reason to sign in again.
        tracing::error!(%status, "the MCP upstream refused the gateway");
        return (
            StatusCode::BAD_GATEWAY,
            axum::Json(json!({ "error": "bad_gateway",
                "error_description": "the MCP server behind the gateway refused it" })),
        )
            .into_response();
    }
    let mut out = Response::builder().status(status);
    for (name, value) in answer.headers() {
        if passes(name.as_str(), &FORWARD_RESPONSE) {
            out = out.header(name.as_str(), value.as_bytes());
        }
    }
    out.body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
