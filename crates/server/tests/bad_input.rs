//! `greenlight serve` over real HTTP: Bad input on every endpoint gets a clear error and changes nothing.

use common::server::*;
use serde_json::json;

mod common;

/// Bad input gets a clear error and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, e) = srv
        .call(
            "POST",
            "/v1/check",
            None,
            Some(("application/json", "{\"method\": ".to_owned())),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, e) = srv
        .json(
            "POST",
            "/v1/check",
            None,
            json!({ "method": "GET", "path": "/", "body": 1 }),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            400,
            Some("invalid_request"),
            Some(
                "Failed to deserialize the JSON body into the target type: body: unknown field `body`, expected one of `method`, `path`, `query`, `headers`, `params`, `entities` at line 1 column 33"
            )
        )
    );
    let (status, _) = srv
        .call(
            "POST",
            "/v1/check",
            None,
            Some((
                "application/json",
                format!("{{\"method\":\"{}\"}}", "x".repeat(70_000)),
            )),
        )
        .await;
    assert_eq!(status, 413);
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            "not-a-token",
            &[("authorization_details", "[]")],
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_authorization_details"))
    );
    let (status, e) = srv.form("/oauth/bc-authorize", "not-a-token", &[("authorization_details", "[{\"type\":\"urn:greenlight:action\",\"actions\":[\"payment.refund\"],\"resource\":{\"type\":\"Payment\",\"id\":\"p\"},\"params\":{\"amount\":500,\"currency\":\"EUR\"}}]")]).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_token")));
    let (status, e) = srv.form("/oauth/bc-authorize", &alice, &[("authorization_details", "[{\"type\":\"urn:greenlight:action\",\"actions\":[\"payment.refund\"],\"resource\":{\"type\":\"Payment\",\"id\":\"p\"},\"params\":{\"amount\":50,\"currency\":\"EUR\"}}]")]).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some("`payment.refund` on `Payment::p` is allowed without approval")
        )
    );
    let (status, e) = srv
        .form("/oauth/token", &alice, &[("grant_type", "password")])
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, e) = srv.call("GET", "/v1/approvals", None, None).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_token")));
    let (status, e) = srv.call("GET", "/admin", None, None).await;
    assert_eq!((status, e["error"].as_str()), (404, Some("not_found")));
    // Nothing was written by any of that.
    let bob = approver("bob", &["finance"]);
    let (_, list) = srv.call("GET", "/v1/approvals", Some(&bob), None).await;
    assert_eq!(list["approvals"], json!([]));
}
