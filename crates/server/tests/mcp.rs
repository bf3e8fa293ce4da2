//! `greenlight serve` as an MCP gateway over real HTTP, in front of a
//! recording MCP server: everything but `tools/call` passes unchanged,
//! the caller's token never reaches the upstream, a token for another
//! resource is refused, and a refund that needs approval is executed
//! upstream exactly once after it is approved, in both protocol
//! revisions' ways (URL elicitation by error; input-required with a
//! signed request state). The official SDKs' clients are tried in
//! `tests/mcp/`.

use std::sync::{Arc, Mutex};

use common::server::*;
use greenlight::dev::{DevTokenRequest, dev_token};
use serde_json::{Value, json};

mod common;

const RESOURCE: &str = "https://payments-mcp.example.com/mcp";

/// What the upstream saw: each request's method, JSON-RPC body and
/// whether it carried an `authorization` header.
type Seen = Arc<Mutex<Vec<(String, Value, bool)>>>;

/// A small MCP server: answers `initialize` with a session, `tools/list`
/// as an event stream, and `tools/call` with what it executed.
async fn upstream() -> (std::net::SocketAddr, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/mcp",
        axum::routing::any(
            move |method: axum::http::Method, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let s = s.clone();
                async move {
                    let msg: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    s.lock().expect("lock").push((
                        method.to_string(),
                        msg.clone(),
                        headers.contains_key("authorization"),
                    ));
                    let id = msg["id"].clone();
                    let json = |v: Value| {
                        axum::response::Response::builder()
                            .header("content-type", "application/json")
                            .header("mcp-session-id", "s-1")
                            .body(axum::body::Body::from(v.to_string()))
                            .expect("response")
                    };
                    match msg["method"].as_str() {
                        Some("initialize") => json(json!({ "jsonrpc": "2.0", "id": id, "result": {
                            "protocolVersion": "2025-11-25", "capabilities": { "tools": {} },
                            "serverInfo": { "name": "payments", "version": "1" } } })),
                        Some("tools/list") => axum::response::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(axum::body::Body::from(format!(
                                "event: message\ndata: {}\n\n",
                                json!({ "jsonrpc": "2.0", "id": id, "result": { "tools": [
                                    { "name": "refund_payment", "inputSchema": { "type": "object" } } ] } })
                            )))
                            .expect("response"),
                        Some("tools/call") => json(json!({ "jsonrpc": "2.0", "id": id, "result": {
                            "content": [{ "type": "text", "text": format!("executed {}", msg["params"]) }] } })),
                        _ => axum::response::Response::builder()
                            .status(202)
                            .body(axum::body::Body::empty())
                            .expect("response"),
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

/// The tool calls the upstream executed.
fn executed(seen: &Seen) -> Vec<Value> {
    seen.lock()
        .expect("lock")
        .iter()
        .filter(|(_, m, _)| m["method"] == "tools/call")
        .map(|(_, m, _)| m["params"].clone())
        .collect()
}

/// A token of the MCP demo's IdP, for this gateway.
fn mcp_token(sub: &str, client: Option<&str>, scope: Option<&str>, groups: &[&str]) -> String {
    dev_token(
        &root().join("examples/mcp/bundle"),
        &DevTokenRequest {
            subject: sub.to_owned(),
            scope: scope.map(str::to_owned),
            client_id: client.map(str::to_owned),
            claims: vec![("groups".to_owned(), json!(groups).to_string())],
            ttl: 7200,
            now: u64::try_from(T0).expect("positive"),
        },
    )
    .expect("dev token")
}

async fn gateway(upstream: std::net::SocketAddr) -> Server {
    gateway_with(upstream, "").await
}

/// A gateway with `more` settings besides `[mcp]`.
async fn gateway_with(upstream: std::net::SocketAddr, more: &str) -> Server {
    gateway_at(upstream, RESOURCE, more).await
}

/// A gateway that is the protected resource `resource`.
async fn gateway_at(upstream: std::net::SocketAddr, resource: &str, more: &str) -> Server {
    let settings: Settings = toml::from_str(&format!(
        "[mcp]\nupstream = \"http://{upstream}/mcp\"\nresource = \"{resource}\"\nwait = 1\n{more}"
    ))
    .expect("settings");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    let srv = Server::start_full(settings, &store, &root().join("examples/mcp/bundle")).await;
    std::mem::forget(dir);
    srv
}

/// POSTs one JSON-RPC message to the gateway.
async fn rpc(
    srv: &Server,
    token: Option<&str>,
    revision: &str,
    body: &Value,
) -> (u16, Vec<(String, String)>, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", revision),
    ];
    if let Some(b) = &bearer {
        headers.push(("authorization", b));
    }
    common::request(
        srv.addr,
        "POST",
        "/mcp",
        &headers,
        Some(("application/json", body.to_string())),
    )
    .await
}

fn refund_call(id: u64, amount: i64) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "refund_payment",
        "arguments": { "payment_id": "pay_123", "amount": amount, "currency": "EUR" } } })
}

/// Checks that `v` is the upstream's answer to the refund of 500, the
/// only call it executed.
fn ran_only_the_refund_of_500(v: &Value, seen: &Seen) {
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("executed ")),
        "{v}"
    );
    assert_eq!(
        executed(seen),
        vec![json!({ "name": "refund_payment",
            "arguments": { "payment_id": "pay_123", "amount": 500, "currency": "EUR" } })]
    );
}

/// The text of a tool error, after checking it is one.
fn tool_error(v: &Value) -> String {
    assert_eq!(v["result"]["isError"], true, "{v}");
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Two finance approvers approve `id` (tokens of the approvals app).
async fn approve(srv: &Server, id: &str) {
    for who in ["bob", "carol"] {
        let (status, v) = srv
            .json(
                "POST",
                &format!("/v1/approvals/{id}/approve"),
                Some(&mcp_token(who, Some("approvals-app"), None, &["finance"])),
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
}

/// The protected-resource metadata, the challenge that names it, and a
/// token for another resource refused before anything reaches the
/// upstream; then everything but a tool call passes as it is, without
/// the caller's token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_is_a_protected_resource_that_passes_the_rest_through() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let (status, meta) = srv
        .call(
            "GET",
            "/.well-known/oauth-protected-resource/mcp",
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        meta,
        json!({
            "resource": RESOURCE,
            "authorization_servers": ["https://idp.example.com"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Greenlight MCP gateway",
        })
    );
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let (status, headers, _) = rpc(&srv, None, "2025-11-25", &init).await;
    assert_eq!(status, 401);
    let challenge = header(&headers, "www-authenticate").expect("challenge");
    assert!(
        challenge.ends_with(&format!(
            "resource_metadata=\"http://{}/.well-known/oauth-protected-resource/mcp\"",
            srv.addr
        )),
        "{challenge}"
    );
    // A token of the same IdP issued for the payments API, not this gateway.
    let for_api = token("alice", "payments:refund payments:read", &[]);
    let (status, headers, _) = rpc(&srv, Some(&for_api), "2025-11-25", &init).await;
    assert_eq!(status, 401);
    assert!(
        header(&headers, "www-authenticate").is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "{headers:?}"
    );
    let (status, _, _) = rpc(&srv, Some(&for_api), "2025-11-25", &refund_call(2, 50)).await;
    assert_eq!(status, 401);
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing reached the upstream"
    );

    // The gateway's own check, for a token the bundle's issuer accepts but
    // issued for another resource than the one this gateway is (RFC 8707).
    let elsewhere = gateway_at(up, "https://other-mcp.example.com/mcp", "").await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let (status, headers, _) = rpc(&elsewhere, Some(&alice), "2025-11-25", &init).await;
    assert_eq!(status, 401);
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some(
            format!(
                "Bearer error=\"invalid_token\", error_description=\"the token is not issued for `https://other-mcp.example.com/mcp` (its `aud` is '{RESOURCE}')\", resource_metadata=\"http://{}/.well-known/oauth-protected-resource/mcp\"",
                elsewhere.addr
            )
            .as_str()
        )
    );
    assert!(
        seen.lock().expect("lock").is_empty(),
        "nothing reached the upstream"
    );

    let alice = mcp_token("alice", None, Some("payments:refund payments:read"), &[]);
    let (status, headers, v) = rpc(&srv, Some(&alice), "2025-11-25", &init).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(header(&headers, "mcp-session-id"), Some("s-1"));
    assert_eq!(v["result"]["serverInfo"]["name"], "payments");
    let list = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/list" });
    let (status, headers, v) = rpc(&srv, Some(&alice), "2025-11-25", &list).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("text/event-stream"));
    assert!(
        v.as_str().is_some_and(
            |s| s.starts_with("event: message\ndata: {") && s.contains("\"refund_payment\"")
        ),
        "{v}"
    );
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
    let (status, _, _) = rpc(&srv, Some(&alice), "2025-11-25", &note).await;
    assert_eq!(status, 202);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen.iter()
            .map(|(m, b, auth)| (m.as_str(), b["method"].as_str().unwrap_or(""), *auth))
            .collect::<Vec<_>>(),
        vec![
            ("POST", "initialize", false),
            ("POST", "tools/list", false),
            ("POST", "notifications/initialized", false),
        ]
    );
}

/// A small refund passes; one over the limit, an unmapped tool and a
/// malformed call are refused as tool errors the model reads, and the
/// upstream never sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_calls_pass_and_refused_ones_never_reach_the_upstream() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund payments:read"), &[]);
    let (status, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(1, 50)).await;
    assert_eq!(status, 200, "{v}");
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("executed "))
    );
    assert_eq!(executed(&seen).len(), 1);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(2, 20000)).await;
    assert_eq!(
        tool_error(&v),
        "Greenlight refused this call: `payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`"
    );
    let delete = json!({ "jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": { "name": "delete_customer", "arguments": { "id": "c1" } } });
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &delete).await;
    assert_eq!(
        tool_error(&v),
        "Greenlight refused this call: no tool `delete_customer` in the bundle's `[[tools]]`"
    );
    let mut typed = refund_call(4, 50);
    typed["params"]["arguments"]["amount"] = json!("50");
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &typed).await;
    assert_eq!(
        tool_error(&v),
        "Greenlight refused this call: parameter `amount` must be an integer, got `\"50\"`"
    );
    let odd = json!({ "jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": { "name": "refund%5Fpayment", "arguments": {} } });
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &odd).await;
    assert_eq!(v["error"]["code"], -32602, "{v}");
    let batch = json!([refund_call(6, 50)]);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &batch).await;
    assert_eq!(
        v["error"]["message"],
        "a batch may not carry tools/call: send each call on its own"
    );
    assert_eq!(executed(&seen).len(), 1, "only the small refund ran");
}

/// 2025-11-25: a refund of 500 answers URL-elicitation-required with the
/// approval's page; retried before the approval, the same approval; after
/// two finance approvals, the retry runs upstream once; the same call
/// again needs a new approval, and so does another amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_refund_runs_once_after_approval_by_url_elicitation() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let elicitation = |v: &Value| {
        assert_eq!(v["error"]["code"], -32042, "{v}");
        let e = v["error"]["data"]["elicitations"][0].clone();
        assert_eq!(e["mode"], "url");
        assert_eq!(
            v["error"]["message"],
            format!(
                "This tool call needs approval: {}",
                e["url"].as_str().expect("url")
            )
        );
        e
    };
    let (status, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(1, 500)).await;
    assert_eq!(status, 200);
    let e = elicitation(&v);
    let id = e["elicitationId"].as_str().expect("id").to_owned();
    assert_eq!(e["url"], format!("http://{}/v1/approvals/{id}", srv.addr));
    assert_eq!(
        e["message"],
        format!(
            "Refund above 100: two finance approvals needed. Approval `{id}` is asked of group:finance: follow it at the link; the call goes through once it is approved."
        )
    );
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(2, 500)).await;
    assert_eq!(elicitation(&v)["elicitationId"], id.as_str());
    // alice's own client cannot approve it.
    let (status, _) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    assert!(executed(&seen).is_empty());

    approve(&srv, &id).await;
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(3, 500)).await;
    ran_only_the_refund_of_500(&v, &seen);
    // The same call again: a new approval, and nothing runs.
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(4, 500)).await;
    let again = elicitation(&v)["elicitationId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_ne!(again, id);
    // Another amount is another action.
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(5, 600)).await;
    let other = elicitation(&v)["elicitationId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert!(other != id && other != again);
    // Another of alice's apps cannot use an approval given to the first.
    approve(&srv, &again).await;
    let elsewhere = mcp_token("alice", Some("other-agent"), Some("payments:refund"), &[]);
    let (_, _, v) = rpc(&srv, Some(&elsewhere), "2025-11-25", &refund_call(6, 500)).await;
    assert_ne!(elicitation(&v)["elicitationId"], again.as_str());
    assert_eq!(executed(&seen).len(), 1);
}

/// 2026-07-28: the refund of 500 answers input-required with a URL
/// elicitation and a signed request state; a retry while pending waits,
/// then answers with the state alone; after approval the retry runs
/// once; the state replayed, altered arguments with it, a forged state
/// and another person's use of it are refused; a declined elicitation
/// withdraws the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_refund_runs_once_after_approval_by_request_state() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let modern = "2026-07-28";
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let (_, _, v) = rpc(&srv, Some(&alice), modern, &refund_call(1, 500)).await;
    let r = &v["result"];
    assert_eq!(r["resultType"], "input_required", "{v}");
    let ask = &r["inputRequests"]["io.greenlight/approval"];
    assert_eq!(ask["method"], "elicitation/create");
    assert_eq!(ask["params"]["mode"], "url");
    let url = ask["params"]["url"].as_str().expect("url").to_owned();
    let id = url.rsplit('/').next().expect("id").to_owned();
    let state = r["requestState"].as_str().expect("state").to_owned();
    let retry = |n: u64, amount: i64, state: &str, responses: Value| {
        let mut c = refund_call(n, amount);
        c["params"]["requestState"] = json!(state);
        c["params"]["inputResponses"] = responses;
        c
    };
    let accepted = json!({ "io.greenlight/approval": { "action": "accept" } });
    let (_, _, v) = rpc(
        &srv,
        Some(&alice),
        modern,
        &retry(2, 500, &state, accepted.clone()),
    )
    .await;
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    assert!(
        v["result"].get("inputRequests").is_none(),
        "state only: {v}"
    );
    let state = v["result"]["requestState"]
        .as_str()
        .expect("state")
        .to_owned();

    // Forged, altered, borrowed: refused, nothing runs.
    let (head, sig) = state.rsplit_once('.').expect("jws");
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    let forged = format!("{head}.{flipped}{}", &sig[1..]);
    let (_, _, v) = rpc(
        &srv,
        Some(&alice),
        modern,
        &retry(3, 500, &forged, json!({})),
    )
    .await;
    assert!(
        tool_error(&v).starts_with("Greenlight refused this call: its approval state cannot be used (signature check failed"),
        "{v}"
    );
    approve(&srv, &id).await;
    let (_, _, v) = rpc(
        &srv,
        Some(&alice),
        modern,
        &retry(4, 600, &state, json!({})),
    )
    .await;
    assert_eq!(
        tool_error(&v),
        "Greenlight refused this call: its approval state is for another call (other arguments); call again without it to ask for approval of this one"
    );
    let mallory = mcp_token("mallory", None, Some("payments:refund"), &[]);
    let (_, _, v) = rpc(
        &srv,
        Some(&mallory),
        modern,
        &retry(5, 500, &state, json!({})),
    )
    .await;
    assert_eq!(
        tool_error(&v),
        "Greenlight refused this call: its approval state was given to another requester or client"
    );
    assert!(executed(&seen).is_empty());

    // Approved: the retry runs, without Greenlight's members.
    let (_, _, v) = rpc(
        &srv,
        Some(&alice),
        modern,
        &retry(6, 500, &state, accepted.clone()),
    )
    .await;
    ran_only_the_refund_of_500(&v, &seen);
    let (_, _, v) = rpc(
        &srv,
        Some(&alice),
        modern,
        &retry(7, 500, &state, json!({})),
    )
    .await;
    assert_eq!(
        tool_error(&v),
        "Greenlight refused this call: its approval was already used; call again to ask for a new one"
    );
    assert_eq!(executed(&seen).len(), 1);

    // Declined in the client: the request is withdrawn.
    let (_, _, v) = rpc(&srv, Some(&alice), modern, &refund_call(8, 700)).await;
    let state = v["result"]["requestState"]
        .as_str()
        .expect("state")
        .to_owned();
    let url = v["result"]["inputRequests"]["io.greenlight/approval"]["params"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    let declined = json!({ "io.greenlight/approval": { "action": "decline" } });
    let (_, _, v) = rpc(&srv, Some(&alice), modern, &retry(9, 700, &state, declined)).await;
    assert_eq!(
        tool_error(&v),
        "You declined to ask for approval: the call was not made"
    );
    let withdrawn = url.rsplit('/').next().expect("id");
    let (_, seen_approval) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{withdrawn}"),
            Some(&mcp_token("bob", Some("approvals-app"), None, &["finance"])),
            None,
        )
        .await;
    assert_eq!(seen_approval["status"], "revoked");
    assert_eq!(executed(&seen).len(), 1);
}

/// What the gateway cannot read, or could read differently from an
/// upstream, goes nowhere: a body that is not JSON to it (NaN, which some
/// servers take), a member a case-folding parser reads as `method`, an
/// unknown member of a tool call, a `tools/call` notification, and a
/// method other than POST, GET and DELETE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_read_two_ways_are_refused() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let bearer = format!("Bearer {alice}");
    let raw = |body: &str| {
        let bearer = bearer.clone();
        let body = body.to_owned();
        let addr = srv.addr;
        async move {
            common::request(
                addr,
                "POST",
                "/mcp",
                &[
                    ("authorization", &bearer),
                    ("accept", "application/json, text/event-stream"),
                ],
                Some(("application/json", body)),
            )
            .await
        }
    };
    let (status, _, v) = raw(r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund_payment","arguments":{"payment_id":"pay_123","amount":500,"currency":"EUR","x":NaN}}}"#).await;
    assert_eq!((status, &v["error"]["code"]), (400, &json!(-32700)), "{v}");
    assert!(
        v["error"]["message"].as_str().is_some_and(
            |m| m.starts_with("the body is not JSON the gateway can read: expected value")
        ),
        "{v}"
    );
    let (status, _, v) = raw(r#"{"jsonrpc":"2.0","id":2,"Method":"tools/call","params":{"name":"refund_payment","arguments":{"payment_id":"pay_123","amount":500,"currency":"EUR"}}}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"],
        json!({ "code": -32600, "message": "`Method` is not a member of a JSON-RPC message" })
    );
    let (status, _, v) = raw(r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_payment","Name":"refund_payment","arguments":{"payment_id":"pay_123"}}}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"]["message"],
        "`params.Name` is not a member of a tools/call"
    );
    let (status, _, v) = raw(r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"refund_payment","arguments":{}}}"#).await;
    assert_eq!(status, 400);
    assert_eq!(
        v["error"]["message"],
        "tools/call must be a request, with an `id`"
    );
    let (status, _, v) = rpc(&srv, Some(&alice), "2026-07-28", &refund_call(4, 50)).await;
    assert_eq!(status, 200, "{v}");
    let (status, _, v) = common::request(
        srv.addr,
        "PUT",
        "/mcp",
        &[("authorization", &bearer)],
        Some(("application/json", refund_call(5, 50).to_string())),
    )
    .await;
    assert_eq!(
        (status, v),
        (405, json!("the MCP endpoint takes POST, GET and DELETE"))
    );
    // The mirrored headers must say what the body says.
    let (status, _, v) = common::request(
        srv.addr,
        "POST",
        "/mcp",
        &[
            ("authorization", &bearer),
            ("mcp-method", "tools/call"),
            ("mcp-name", "get_payment"),
        ],
        Some(("application/json", refund_call(6, 50).to_string())),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["error"]["code"], -32020);
    // A mirror given twice mirrors nothing, even over a body without a
    // method of its own.
    let no_method = json!({ "jsonrpc": "2.0", "id": 7,
        "params": { "name": "refund_payment", "arguments": {} } });
    let (status, _, v) = common::request(
        srv.addr,
        "POST",
        "/mcp",
        &[
            ("authorization", &bearer),
            ("mcp-method", "tools/call"),
            ("mcp-method", "tools/call"),
        ],
        Some(("application/json", no_method.to_string())),
    )
    .await;
    assert_eq!((status, &v["error"]["code"]), (400, &json!(-32020)), "{v}");
    assert_eq!(
        executed(&seen).len(),
        1,
        "only the well-formed small refund ran"
    );
}

/// A session is its opener's: another person presenting its id is told it
/// does not exist, and nothing of it reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_id_is_not_a_credential() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let mallory = mcp_token("mallory", None, Some("payments:refund"), &[]);
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": { "name": "t", "version": "1" } } });
    let (_, headers, _) = rpc(&srv, Some(&alice), "2025-11-25", &init).await;
    assert_eq!(header(&headers, "mcp-session-id"), Some("s-1"));
    let with_session = |token: &str, method: &str| {
        let bearer = format!("Bearer {token}");
        let method = method.to_owned();
        let addr = srv.addr;
        async move {
            common::request(
                addr,
                &method,
                "/mcp",
                &[
                    ("authorization", &bearer),
                    ("mcp-session-id", "s-1"),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
                (method == "POST").then(|| {
                    (
                        "application/json",
                        json!({ "jsonrpc": "2.0", "id": 2, "method": "tools/list" }).to_string(),
                    )
                }),
            )
            .await
        }
    };
    let before = seen.lock().expect("lock").len();
    for method in ["POST", "GET", "DELETE"] {
        let (status, _, v) = with_session(&mallory, method).await;
        assert_eq!(status, 404, "{method}: {v}");
        assert_eq!(v["error"]["message"], "Session not found");
    }
    assert_eq!(
        seen.lock().expect("lock").len(),
        before,
        "nothing of mallory's went on"
    );
    let (status, _, _) = with_session(&alice, "POST").await;
    assert_eq!(status, 200);
    let (status, _, _) = with_session(&alice, "DELETE").await;
    assert_eq!(status, 202);
    // Ended: not even alice's any more.
    let (status, _, v) = with_session(&alice, "POST").await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(v["error"]["message"], "Session not found");
}

/// An approval covers the call's every argument: the approved refund with
/// one more argument the mapping does not declare is another call, and a
/// decline after the approvers approved still makes no call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_covers_every_argument_and_a_decline_wins() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(1, 500)).await;
    let id = v["error"]["data"]["elicitations"][0]["elicitationId"]
        .as_str()
        .expect("id")
        .to_owned();
    approve(&srv, &id).await;
    let mut more = refund_call(2, 500);
    more["params"]["arguments"]["destination"] = json!("acct_evil");
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &more).await;
    assert_eq!(v["error"]["code"], -32042, "{v}");
    assert_ne!(
        v["error"]["data"]["elicitations"][0]["elicitationId"],
        id.as_str()
    );
    assert!(executed(&seen).is_empty());

    let modern = "2026-07-28";
    let (_, _, v) = rpc(&srv, Some(&alice), modern, &refund_call(3, 800)).await;
    let state = v["result"]["requestState"]
        .as_str()
        .expect("state")
        .to_owned();
    let url = v["result"]["inputRequests"]["io.greenlight/approval"]["params"]["url"]
        .as_str()
        .expect("url")
        .to_owned();
    approve(&srv, url.rsplit('/').next().expect("id")).await;
    let mut declined = refund_call(4, 800);
    declined["params"]["requestState"] = json!(state);
    declined["params"]["inputResponses"] =
        json!({ "io.greenlight/approval": { "action": "decline" } });
    let (_, _, v) = rpc(&srv, Some(&alice), modern, &declined).await;
    assert_eq!(
        v["result"]["content"][0]["text"],
        "You declined to ask for approval: the call was not made"
    );
    assert_eq!(v["result"]["resultType"], "complete");
    // Declined after the approvers approved: withdrawn, so the same call
    // without the state finds nothing to use and asks anew.
    let (_, seen_approval) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{}", url.rsplit('/').next().expect("id")),
            Some(&mcp_token("bob", Some("approvals-app"), None, &["finance"])),
            None,
        )
        .await;
    assert_eq!(seen_approval["status"], "revoked");
    let (_, _, v) = rpc(&srv, Some(&alice), modern, &refund_call(5, 800)).await;
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    assert!(executed(&seen).is_empty());
}

/// A policy that grants a window: the approved refund runs, and the same
/// call again within the window runs by the grant without another
/// approval; another amount is another action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_approval_lets_the_same_call_run_again_within_it() {
    let (up, seen) = upstream().await;
    let from = root().join("examples/mcp/bundle");
    let bundle = bundle_copy(
        &from,
        &[
            "greenlight.toml",
            "schema.cedarschema",
            "idp.jwks.json",
            "dev/idp-dev.key.pem",
        ],
    );
    let policy = std::fs::read_to_string(from.join("policy.cedar")).expect("policy");
    assert!(policy.contains("@grant(\"once\")"));
    std::fs::write(
        bundle.path().join("policy.cedar"),
        policy.replace("@grant(\"once\")", "@grant(\"window:600\")"),
    )
    .expect("write policy");
    let settings: Settings = toml::from_str(&format!(
        "[mcp]\nupstream = \"http://{up}/mcp\"\nresource = \"{RESOURCE}\"\nwait = 1\n"
    ))
    .expect("settings");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    let srv = Server::start_full(settings, &store, bundle.path()).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(1, 500)).await;
    let id = v["error"]["data"]["elicitations"][0]["elicitationId"]
        .as_str()
        .expect("id")
        .to_owned();
    approve(&srv, &id).await;
    for n in 2..5 {
        let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(n, 500)).await;
        assert!(
            v["result"]["content"][0]["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("executed ")),
            "{v}"
        );
    }
    assert_eq!(executed(&seen).len(), 3);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(5, 600)).await;
    assert_eq!(v["error"]["code"], -32042, "{v}");
    // Past the window, the same call needs approval again.
    srv.advance(601);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(6, 500)).await;
    assert_eq!(v["error"]["code"], -32042, "{v}");
    assert_eq!(executed(&seen).len(), 3);
}

/// With the portal configured, the page an approval request sends the
/// user to is the portal's page for that approval, in both revisions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_is_the_portals_page_when_there_is_a_portal() {
    let (up, _) = upstream().await;
    let srv = gateway_with(up, "[portal]\nclient_id = \"portal\"\n").await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let (_, _, v) = rpc(&srv, Some(&alice), "2025-11-25", &refund_call(1, 500)).await;
    let e = &v["error"]["data"]["elicitations"][0];
    let id = e["elicitationId"].as_str().expect("id");
    let page = format!("http://{}/portal/approvals/{id}", srv.addr);
    assert_eq!(e["url"], page.as_str());
    let (_, _, v) = rpc(&srv, Some(&alice), "2026-07-28", &refund_call(2, 700)).await;
    let url = v["result"]["inputRequests"]["io.greenlight/approval"]["params"]["url"]
        .as_str()
        .expect("url");
    assert!(
        url.starts_with(&format!("http://{}/portal/approvals/", srv.addr)),
        "{url}"
    );
    // The page is there: a visitor not signed in is sent to sign in.
    let (status, headers, _) = common::request(
        srv.addr,
        "GET",
        &format!("/portal/approvals/{id}"),
        &[],
        None,
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        header(&headers, "location").is_some_and(|l| l.starts_with("/portal/login")),
        "{headers:?}"
    );
}

/// A client that did not declare URL-mode elicitation is not sent one: it
/// gets the link in a tool error, and the same call, once approved, goes
/// through. One that declared it gets the elicitation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_without_url_elicitation_gets_the_link_as_text() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    let bearer = format!("Bearer {alice}");
    let in_session = |body: Value| {
        let bearer = bearer.clone();
        let addr = srv.addr;
        async move {
            common::request(
                addr,
                "POST",
                "/mcp",
                &[
                    ("authorization", &bearer),
                    ("mcp-session-id", "s-1"),
                    ("mcp-protocol-version", "2025-11-25"),
                ],
                Some(("application/json", body.to_string())),
            )
            .await
        }
    };
    // 2025-11-25: capabilities said at initialize, without `elicitation.url`.
    let init = json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": { "elicitation": { "form": {} } },
        "clientInfo": { "name": "t", "version": "1" } } });
    let (status, _, _) = rpc(&srv, Some(&alice), "2025-11-25", &init).await;
    assert_eq!(status, 200);
    let (_, _, v) = in_session(refund_call(2, 500)).await;
    let text = tool_error(&v);
    let (message, url) = text.split_once(" Open ").expect("the link in the text");
    assert!(
        message.starts_with("Refund above 100: two finance approvals needed. Approval `"),
        "{text}"
    );
    let url = url
        .strip_suffix(", then make the same call again.")
        .expect("the end");
    let id = url.rsplit('/').next().expect("id").to_owned();
    assert_eq!(url, format!("http://{}/v1/approvals/{id}", srv.addr));
    approve(&srv, &id).await;
    let (_, _, v) = in_session(refund_call(3, 500)).await;
    ran_only_the_refund_of_500(&v, &seen);

    // 2026-07-28: capabilities on the request itself.
    let meta = |url: bool| {
        let elicitation = if url {
            json!({ "form": {}, "url": {} })
        } else {
            json!({ "form": {} })
        };
        json!({ "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": { "elicitation": elicitation } })
    };
    let mut call = refund_call(4, 700);
    call["params"]["_meta"] = meta(false);
    let (_, _, v) = rpc(&srv, Some(&alice), "2026-07-28", &call).await;
    assert!(tool_error(&v).contains(" Open http://"), "{v}");
    assert_eq!(v["result"]["resultType"], "complete");
    call["params"]["_meta"] = meta(true);
    let (_, _, v) = rpc(&srv, Some(&alice), "2026-07-28", &call).await;
    assert_eq!(v["result"]["resultType"], "input_required", "{v}");
    assert_eq!(executed(&seen).len(), 1);
}

/// Greenlight's own action token, issued for this very resource, is no MCP
/// client's credential: it is refused before anything goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_token_is_not_an_mcp_credential() {
    let (up, seen) = upstream().await;
    let srv = gateway(up).await;
    let alice = mcp_token("alice", None, Some("payments:refund"), &[]);
    // An action token for a refund of 50, by token exchange.
    let (status, t) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &alice),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("authorization_details", &refund_details(50)),
        ])
        .await;
    assert_eq!(status, 200, "{t}");
    let action = t["access_token"].as_str().expect("token").to_owned();
    let (status, headers, _) = rpc(&srv, Some(&action), "2025-11-25", &refund_call(1, 50)).await;
    assert_eq!(status, 401);
    assert!(
        header(&headers, "www-authenticate").is_some_and(|c| c.starts_with(
            "Bearer error=\"invalid_token\", error_description=\"an action token is not an MCP client's credential\""
        )),
        "{headers:?}"
    );
    assert!(seen.lock().expect("lock").is_empty());
}
