//! `greenlight serve` over real HTTP: `POST /v1/check`: decisions completed with what the store knows
//! (window grants, consumed tokens).

use common::server::*;
use serde_json::json;

mod common;

/// The user's own confirmation, signed in to the approvals app, opens a
/// window for the app that asked: the same write is allowed again without
/// a new approval until the window closes, and never for another app
/// holding a token of the same user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_grant_is_reused_then_expires() {
    let srv = Server::start().await;
    let alice = token("alice", "files:write", &[]);
    let alice_signed_in = approver("alice", &[]);
    let other_app = dev_through(Some("other-app"), "alice", Some("files:write"), &[], 7200);
    let write = json!({ "method": "PUT", "path": "/users/alice/files/report.txt/content",
                        "headers": { "authorization": format!("Bearer {alice}") } });
    let (_, d) = srv.json("POST", "/v1/check", None, write.clone()).await;
    assert_eq!(d["verdict"]["kind"], "approval-required");
    let details = d["verdict"]["authorization_details"].to_string();
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    let id = ask["auth_req_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{ask}"))
        .to_owned();
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&alice_signed_in),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("approved")),
        "{v}"
    );
    let (status, t) = srv.collect(&alice, &id).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_in"], 300);
    // Asking again inside the window opens nothing: it is approved.
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                format!(
                    "`file.write` on `File::report.txt` is already approved (approval `{id}`) until {}: act with your access token",
                    T0 + 300
                )
                .as_str()
            )
        )
    );
    for _ in 0..2 {
        let (_, d) = srv.json("POST", "/v1/check", None, write.clone()).await;
        assert_eq!(d["verdict"]["kind"], "allow", "{d}");
        assert_eq!(
            d["verdict"]["forward_headers"],
            json!([
                ["x-greenlight-subject", "alice"],
                ["x-greenlight-issuer", "https://idp.example.com"],
                ["x-greenlight-action", "file.write"],
                ["x-greenlight-approval", id]
            ])
        );
    }
    // Another app holding alice's token does not act in her window.
    let elsewhere = json!({ "method": "PUT", "path": "/users/alice/files/report.txt/content",
                            "headers": { "authorization": format!("Bearer {other_app}") } });
    let (_, d) = srv.json("POST", "/v1/check", None, elsewhere).await;
    assert_eq!(d["verdict"]["kind"], "approval-required", "{d}");
    srv.advance(301);
    let (_, d) = srv.json("POST", "/v1/check", None, write).await;
    assert_eq!(d["verdict"]["kind"], "approval-required");
}

/// /v1/check takes headers as an object or, as a gateway saw them, as
/// `[name, value]` pairs; anything else is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_takes_headers_as_pairs_too() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let mut req = refund(50, &alice);
    req["headers"] = json!([
        ["x-trace", "1"],
        ["authorization", format!("Bearer {alice}")]
    ]);
    let (status, d) = srv.json("POST", "/v1/check", None, req.clone()).await;
    assert_eq!(
        (status, d["verdict"]["kind"].as_str()),
        (200, Some("allow")),
        "{d}"
    );
    req["headers"] = json!("authorization: Bearer x");
    let (status, e) = srv.json("POST", "/v1/check", None, req).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        e["error_description"],
        "Failed to deserialize the JSON body into the target type: headers: headers as an object of strings or a list of [name, value] pairs at line 1 column 86"
    );
}

/// A check with an action token verifies it once, and so does the token
/// exchange that minted it (the subject token).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_with_an_action_token_verifies_it_once() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (checks, signatures) = srv.checks().await;
    let at = srv.exchanged(50, &alice).await;
    assert_eq!(srv.checks().await, (checks + 1, signatures + 1));
    let (status, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(
        (status, &d["verdict"]["kind"]),
        (200, &json!("allow")),
        "{d}"
    );
    assert_eq!(srv.checks().await, (checks + 2, signatures + 2));
}
