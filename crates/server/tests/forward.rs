//! `greenlight serve` behind an edge proxy, over real HTTP, as the proxies
//! ask: `/v1/forward-auth` (nginx `auth_request`, Caddy `forward_auth`) and
//! `/v1/ext-authz/...` (Envoy `ext_authz`). The real proxies are driven by
//! tests/edge; these pin the service's side of the exchange.

use common::server::*;
use serde_json::{Value, json};

mod common;

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The `x-greenlight-*` headers of an answer, in order.
fn ours(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(n, _)| n.starts_with("x-greenlight-"))
        .cloned()
        .collect()
}

/// Asserts a refusal: its status, denial code and message.
fn refused(got: &(u16, Vec<(String, String)>, Value), status: u16, code: &str, message: &str) {
    let (s, _, body) = got;
    assert_eq!(
        (
            *s,
            body["code"].as_str(),
            body["error_description"].as_str()
        ),
        (status, Some(code), Some(message)),
        "{body}"
    );
}

/// The `jti` of a compact JWS: the id a replay names.
fn jti(token: &str) -> String {
    let jws = greenlight_core::jws::parse(token).expect("a JWS");
    let claims: Value = serde_json::from_slice(&jws.payload).expect("JSON claims");
    claims["jti"].as_str().expect("jti").to_owned()
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

async fn forward_auth(
    srv: &Server,
    suffix: &str,
    method: &str,
    uri: &str,
    extra: &[(&'static str, String)],
) -> (u16, Vec<(String, String)>, Value) {
    let mut headers = vec![
        ("x-forwarded-method", method.to_owned()),
        ("x-forwarded-uri", uri.to_owned()),
    ];
    headers.extend_from_slice(extra);
    let pairs: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
    common::request(
        srv.addr,
        "GET",
        &format!("/v1/forward-auth{suffix}"),
        &pairs,
        None,
    )
    .await
}

async fn ext_authz(
    srv: &Server,
    method: &str,
    uri: &str,
    extra: &[(&'static str, String)],
    body: Option<(&str, String)>,
) -> (u16, Vec<(String, String)>, Value) {
    let pairs: Vec<(&str, &str)> = extra.iter().map(|(n, v)| (*n, v.as_str())).collect();
    common::request(
        srv.addr,
        method,
        &format!("/v1/ext-authz{uri}"),
        &pairs,
        body,
    )
    .await
}

fn refund_body(amount: i64) -> Option<(&'static str, String)> {
    Some((
        "application/json",
        json!({ "amount": amount, "currency": "EUR" }).to_string(),
    ))
}

/// An allow is a 200 carrying exactly the decision's forward headers, for
/// the proxy to copy upstream; `/v1/forward-auth` sends the approval's
/// empty when none applies (Caddy 2.6 would copy its placeholder text).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allow_is_200_with_the_forward_headers() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:read payments:refund", &[]);
    let (status, headers, body) =
        forward_auth(&srv, "", "GET", "/payments/pay_123", &[bearer(&alice)]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ours(&headers),
        vec![
            ("x-greenlight-subject".to_owned(), "alice".to_owned()),
            (
                "x-greenlight-issuer".to_owned(),
                "https://idp.example.com".to_owned()
            ),
            ("x-greenlight-action".to_owned(), "payment.read".to_owned()),
            ("x-greenlight-approval".to_owned(), String::new()),
        ]
    );
    // Envoy forwards the body: a small refund passes on the scope alone.
    let (status, headers, body) = ext_authz(
        &srv,
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&alice)],
        refund_body(50),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "x-greenlight-action"),
        Some("payment.refund")
    );
    assert_eq!(header(&headers, "x-greenlight-approval"), None);
    srv.stop().await;
}

/// Approval required is the gateway's 401 challenge, body and all; for
/// nginx (`/v1/forward-auth/nginx`) the body also rides in
/// `x-greenlight-answer`, ASCII and identical in meaning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_required_is_the_401_challenge() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, headers, body) = ext_authz(
        &srv,
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&alice)],
        refund_body(500),
    )
    .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some(
            "Bearer error=\"insufficient_authorization\", error_description=\"approval required\""
        )
    );
    assert_eq!(body["code"], "approval-required");
    assert_eq!(
        body["error_description"],
        "Refund above 100: two finance approvals needed"
    );
    assert_eq!(
        body["authorization_details"][0]["params"],
        json!({ "amount": 500, "currency": "EUR" })
    );
    assert_eq!(
        body["ask"]["backchannel_authentication_endpoint"],
        format!("http://{}/oauth/bc-authorize", srv.addr)
    );
    assert_eq!(header(&headers, "x-greenlight-answer"), None);

    // nginx cannot forward a body: the same refund bound by query is the
    // one the example bundle for body-less proxies uses; here the demo's
    // body-bound route is refused, never guessed.
    let (status, headers, body) = forward_auth(
        &srv,
        "/nginx",
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&alice)],
    )
    .await;
    refused(
        &(status, headers.clone(), body.clone()),
        400,
        "request-invalid",
        "the route reads parameters from a JSON body, and the request has none",
    );
    let answer = header(&headers, "x-greenlight-answer").expect("x-greenlight-answer");
    assert_eq!(
        serde_json::from_str::<Value>(answer).expect("JSON in the header"),
        body
    );
    srv.stop().await;
}

/// The once-only action token an approval yields passes once through the
/// proxy, with the approval named upstream; its replay is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_token_passes_once() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let id = srv.ask(&alice, &refund_details(500)).await;
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    let (status, t) = srv.collect(&alice, &id).await;
    assert_eq!(status, 200, "{t}");
    let action = t["access_token"].as_str().expect("access_token").to_owned();
    let (status, headers, body) = ext_authz(
        &srv,
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&action)],
        refund_body(500),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-greenlight-approval"), Some(id.as_str()));
    let replay = ext_authz(
        &srv,
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&action)],
        refund_body(500),
    )
    .await;
    let message = format!("action token `{}` was already used", jti(&action));
    refused(&replay, 401, "action-token-replayed", &message);
    assert_eq!(
        header(&replay.1, "www-authenticate"),
        Some(format!("Bearer error=\"invalid_token\", error_description=\"{message}\"").as_str())
    );
    // Another amount with a fresh token of the same approval's kind is
    // refused as a digest mismatch.
    let other = srv.exchanged(50, &alice).await;
    let mismatch = ext_authz(
        &srv,
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&other)],
        refund_body(60),
    )
    .await;
    refused(
        &mismatch,
        403,
        "action-token-digest-mismatch",
        "the action token was issued for another action than `payment.refund` on `Payment::pay_123`",
    );
    srv.stop().await;
}

/// A client that sends a header only the gateway sets — either spelling —
/// is refused whatever else it carries: not every proxy can strip them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sent_gateway_header_is_refused() {
    let srv = Server::start().await;
    let mallory = token("mallory", "payments:read", &[]);
    for name in [
        "x-greenlight-subject",
        "x-greenlight_approval",
        "X-Greenlight-Foo",
    ] {
        let (status, _, body) = forward_auth(
            &srv,
            "",
            "GET",
            "/payments/pay_123",
            &[bearer(&mallory), (name, "alice".to_owned())],
        )
        .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["error_description"],
            format!(
                "the request carries `{}`, a header only the gateway sets",
                name.to_ascii_lowercase()
            )
        );
        let got = ext_authz(
            &srv,
            "GET",
            "/payments/pay_123",
            &[bearer(&mallory), (name, "alice".to_owned())],
            None,
        )
        .await;
        refused(
            &got,
            400,
            "request-invalid",
            &format!(
                "the request carries `{}`, a header only the gateway sets",
                name.to_ascii_lowercase()
            ),
        );
    }
    srv.stop().await;
}

/// Without the proxy's headers, or with either of them twice, nothing is
/// decided: a request the proxy did not describe is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_the_proxy_did_not_describe_is_refused() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:read", &[]);
    let auth = format!("Bearer {alice}");
    let got = common::request(
        srv.addr,
        "GET",
        "/v1/forward-auth",
        &[("authorization", auth.as_str())],
        None,
    )
    .await;
    refused(
        &got,
        400,
        "request-invalid",
        "the proxy must send `x-forwarded-method` exactly once (docs/edge.md)",
    );
    // A client's own `x-forwarded-uri` beside the proxy's: two values.
    let got = forward_auth(
        &srv,
        "",
        "GET",
        "/payments/pay_123",
        &[
            bearer(&alice),
            ("x-forwarded-uri", "/payments/other".to_owned()),
        ],
    )
    .await;
    refused(
        &got,
        400,
        "request-invalid",
        "the proxy must send `x-forwarded-uri` exactly once (docs/edge.md)",
    );
    let got = forward_auth(
        &srv,
        "",
        "GET",
        "https://elsewhere.example/payments/pay_123",
        &[bearer(&alice)],
    )
    .await;
    refused(
        &got,
        400,
        "request-invalid",
        "`x-forwarded-uri` must be a path starting with `/`, not `https://elsewhere.example/payments/pay_123`",
    );
    // nginx hands its subrequest the client's query: the auth request's
    // own query is not the original request's, and changes nothing.
    let (status, headers, body) = forward_auth(
        &srv,
        "/nginx?amount=5",
        "GET",
        "/payments/pay_123",
        &[bearer(&alice)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        header(&headers, "x-greenlight-action"),
        Some("payment.read")
    );
    // An unknown route behind the proxy is denied like any other.
    let got = forward_auth(&srv, "", "GET", "/admin", &[bearer(&alice)]).await;
    refused(&got, 403, "route-not-found", "no route for `GET /admin`");
    srv.stop().await;
}

/// Only JSON (or untyped) bodies are parameters: a form body leaves the
/// refund without its parameters, refused rather than decided without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_is_not_json_is_not_parameters() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let got = ext_authz(
        &srv,
        "POST",
        "/payments/pay_123/refund",
        &[bearer(&alice)],
        Some((
            "application/x-www-form-urlencoded",
            "amount=50&currency=EUR".to_owned(),
        )),
    )
    .await;
    refused(
        &got,
        400,
        "request-invalid",
        "the route reads parameters from a JSON body, and the request has none",
    );
    srv.stop().await;
}
