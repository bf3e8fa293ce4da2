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
use greenlight_types::{HttpRequest, Verdict};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, AppState};

pub mod approval;

/// The protocol revision whose approval answer is an input-required
/// result (multi round-trip requests); earlier ones get URL elicitation.
pub const MODERN_REVISION: &str = "2026-07-28";

/// The JSON-RPC error a 2025-11-25 server answers when a URL elicitation
/// must be completed first.
pub const URL_ELICITATION_REQUIRED: i64 = -32042;

/// Request headers passed to the upstream; every other one (the caller's
/// `authorization` first) stays here.
const FORWARD_REQUEST: [&str; 5] = [
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Response headers passed back to the caller.
const FORWARD_RESPONSE: [&str; 5] = [
    "content-type",
    "content-length",
    "mcp-session-id",
    "mcp-protocol-version",
    "cache-control",
];

/// The longest MCP tool name.
const MAX_TOOL_NAME: usize = 128;

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
        if self.timeout == Some(0) {
            anyhow::bail!("mcp.timeout must be at least 1 second");
        }
        Ok(())
    }
}

/// The gateway's state: its settings and the client to the upstream.
#[derive(Debug)]
pub struct Gateway {
    settings: McpSettings,
    client: reqwest::Client,
    /// The resource identifier tokens are issued for.
    pub resource: String,
    /// The protected-resource metadata's URL.
    pub metadata_url: String,
}

impl Gateway {
    /// The gateway for `settings`, at `public_url`.
    pub fn new(settings: &McpSettings, public_url: &str) -> anyhow::Result<Self> {
        let base = public_url.trim_end_matches('/');
        let client = reqwest::Client::builder()
            .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(settings.timeout.unwrap_or(300)))
            .build()?;
        Ok(Self {
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
        self.settings.wait.unwrap_or(20)
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
async fn caller(st: &AppState, gw: &Gateway, headers: &HeaderMap) -> Result<String, Response> {
    let token = super::auth::bearer(headers).map_err(|e| unauthorized(gw, &e.description))?;
    super::auth::authenticate_token(st, &token)
        .await
        .map_err(|e| unauthorized(gw, &e.description))?;
    // RFC 8707: a token for another resource is not for this one, whatever
    // the bundle's issuer accepts.
    let aud = greenlight_core::jws::parse(&token)
        .ok()
        .and_then(|j| serde_json::from_slice::<Value>(&j.payload).ok())
        .map(|c| c["aud"].clone())
        .unwrap_or(Value::Null);
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
    Ok(token)
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

/// A tool result the model reads: `isError` with the reason.
pub fn tool_error(id: &Value, text: &str) -> Response {
    rpc_result(
        id,
        json!({ "content": [{ "type": "text", "text": text }], "isError": true }),
    )
}

fn json_response(body: Value) -> Response {
    let mut resp = (StatusCode::OK, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Whether `name` is a tool name MCP allows (and so a path segment that
/// means nothing else).
fn valid_tool_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TOOL_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.chars().all(|c| c == '.')
}

/// The MCP endpoint: every method.
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
    let token = match caller(&st, gw, &headers).await {
        Ok(t) => t,
        Err(resp) => return resp,
    };
    if method != Method::POST {
        return forward(gw, method, &headers, body).await;
    }
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        // Not JSON: the upstream says what it says; nothing is a tool call.
        return forward(gw, method, &headers, body).await;
    };
    let calls_tool = |m: &Value| m["method"] == "tools/call";
    match &message {
        Value::Object(_) if calls_tool(&message) => {}
        Value::Array(batch) if batch.iter().any(calls_tool) => {
            return rpc_error(
                &Value::Null,
                -32600,
                "a batch may not carry tools/call: send each call on its own",
                None,
            );
        }
        _ => return forward(gw, method, &headers, body).await,
    }
    tool_call(&st, gw, &headers, &token, message).await
}

/// Decides a `tools/call` and answers it.
async fn tool_call(
    st: &AppState,
    gw: &Gateway,
    headers: &HeaderMap,
    token: &str,
    mut message: Value,
) -> Response {
    let id = message["id"].clone();
    let Some(name) = message["params"]["name"].as_str().map(str::to_owned) else {
        return rpc_error(&id, -32602, "tools/call needs `params.name`", None);
    };
    if !valid_tool_name(&name) {
        return rpc_error(
            &id,
            -32602,
            &format!("`{name}` is not a tool name (1 to {MAX_TOOL_NAME} of `A-Z a-z 0-9 _ - .`)"),
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
            tool_error(&id, &format!("Greenlight refused this call: {}", d.message))
        }
        Verdict::StepUpRequired(s) => tool_error(
            &id,
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
    let Ok(method) = reqwest::Method::from_bytes(method.as_str().as_bytes()) else {
        return (StatusCode::METHOD_NOT_ALLOWED, "unsupported method").into_response();
    };
    let mut req = gw.client.request(method, &gw.settings.upstream);
    for name in FORWARD_REQUEST {
        for value in headers.get_all(name) {
            req = req.header(name, value.as_bytes());
        }
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
    let mut out = Response::builder().status(status);
    for name in FORWARD_RESPONSE {
        for value in answer.headers().get_all(name) {
            out = out.header(name, value.as_bytes());
        }
    }
    out.body(Body::from_stream(answer.bytes_stream()))
        .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}
