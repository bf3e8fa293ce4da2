//! `greenlight serve` over real HTTP: who may vote, and identity as
//! (issuer, subject). Each test is an attack from the outside review,
//! tried and refused with the exact status and reason:
//!
//! - the requesting client approves its own request (critical);
//! - another client holding an approver's token casts their vote (high);
//! - a second provider's users pass for the first provider's (high).

use common::server::*;
use serde_json::{Value, json};

mod common;

/// The file write the demo's user confirms herself (`@approvers("subject")`).
fn write(token: &str) -> Value {
    json!({ "method": "PUT", "path": "/users/alice/files/report.txt/content",
            "headers": { "authorization": format!("Bearer {token}") } })
}

/// Asks for the confirmation of `write` and returns its `auth_req_id`.
async fn ask_write(srv: &Server, token: &str) -> String {
    let (_, d) = srv.json("POST", "/v1/check", None, write(token)).await;
    let details = d["verdict"]["authorization_details"].to_string();
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            token,
            &[("authorization_details", &details)],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    ask["auth_req_id"].as_str().expect("auth_req_id").to_owned()
}

async fn vote(srv: &Server, id: &str, token: &str, body: Value) -> (u16, Value) {
    srv.json(
        "POST",
        &format!("/v1/approvals/{id}/approve"),
        Some(token),
        body,
    )
    .await
}

async fn status_of(srv: &Server, id: &str) -> String {
    let a = srv
        .state
        .store
        .get_approval(id)
        .await
        .expect("store")
        .expect("the approval");
    a.status_at(srv.state.now()).to_string()
}

/// The critical finding: the app that asked holds the user's token and
/// "confirms" with it. Refused; the approval stays pending, and nothing
/// the app can poll for appears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requesting_client_cannot_confirm_or_approve_its_own_request() {
    let srv = Server::start().await;
    let app = token("alice", "files:write", &[]);
    let id = ask_write(&srv, &app).await;
    let (status, e) = vote(&srv, &id, &app, json!({})).await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            403,
            Some("access_denied"),
            Some("client `greenlight-dev` asked for this action and cannot vote on it")
        )
    );
    // Not even with the approval scope or as an approver client: the
    // client that asked is never a voter on it.
    let (status, _) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/revoke"),
            Some(&app),
            json!({}),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(status_of(&srv, &id).await, "pending");
    let (status, e) = srv.collect(&app, &id).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
}

/// A person confirms their own action only with a sign-in the requesting
/// app does not control: a token of the approvals app, signed in within
/// `confirm_max_age` (300 s). A stale sign-in, or none recorded, is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmation_needs_a_fresh_sign_in_through_an_approver_client() {
    let srv = Server::start().await;
    let app = token("alice", "files:write", &[]);
    let id = ask_write(&srv, &app).await;
    let stale = dev_through(
        Some(APPROVALS_APP),
        "alice",
        None,
        &[("auth_time", json!(T0 - 301))],
        7200,
    );
    let (status, e) = vote(&srv, &id, &stale, json!({})).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some(format!(
                "confirming your own action needs a sign-in within the last 300 seconds (`auth_time` is {})",
                T0 - 301
            )
            .as_str())
        )
    );
    let unknown = dev_through(
        Some(APPROVALS_APP),
        "alice",
        None,
        &[("auth_time", Value::Null)],
        7200,
    );
    let (status, e) = vote(&srv, &id, &unknown, json!({})).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some(
                "confirming your own action needs a sign-in within the last 300 seconds (`auth_time` is missing)"
            )
        )
    );
    assert_eq!(status_of(&srv, &id).await, "pending");
    let fresh = approver("alice", &[]);
    let (status, v) = vote(&srv, &id, &fresh, json!({})).await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("approved")),
        "{v}"
    );
}

/// A high finding: bob gave a third-party app a token (in the finance
/// group, without any scope); it cannot cast bob's vote. His own approvals
/// app can, and the vote records issuer, subject and client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_meant_for_approving_cannot_cast_a_vote() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    let third_party = dev_through(
        Some("budget-helper"),
        "bob",
        None,
        &[("groups", json!(["finance"]))],
        7200,
    );
    let (status, e) = vote(&srv, &id, &third_party, json!({ "reason": "ok" })).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some(
                "a token of client `budget-helper` is not meant for approving: votes are cast with a token from one of the issuer's approver clients or with its approval scope"
            )
        )
    );
    let (status, v) = vote(
        &srv,
        &id,
        &approver("bob", &["finance"]),
        json!({ "reason": "ok" }),
    )
    .await;
    assert_eq!((status, v["approve_count"].as_u64()), (200, Some(1)), "{v}");
    let (_, a) = srv
        .call("GET", &format!("/v1/approvals/{id}"), Some(&alice), None)
        .await;
    assert_eq!(
        (
            &a["votes"][0]["approver"],
            &a["votes"][0]["approver_issuer"],
            &a["votes"][0]["approver_client"]
        ),
        (
            &json!("bob"),
            &json!("https://idp.example.com"),
            &json!(APPROVALS_APP)
        ),
        "{a}"
    );
    let audit = srv.state.store.audit_for(&id).await.expect("audit");
    let voted = audit
        .iter()
        .find(|e| e.event == "approval.vote")
        .expect("the vote's audit event");
    assert_eq!(
        (
            voted.actor.as_str(),
            &voted.detail["issuer"],
            &voted.detail["client_id"]
        ),
        (
            "bob",
            &json!("https://idp.example.com"),
            &json!(APPROVALS_APP)
        )
    );
}

/// A high finding, for bundles with two issuers: the partner's `alice`
/// cannot poll the first provider's alice's approval (even through a
/// client of the same name); the partner's finance members are no
/// approvers of the first provider's refunds; the partner's `alice` asks
/// apart, and her approval is hers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_issuers_users_are_other_people() {
    let bundle = two_issuers();
    let srv = Server::start_with_bundle(bundle.path()).await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();

    // The partner's alice, through a client named like alice's.
    let fake_alice = partner(
        "alice",
        "greenlight-dev",
        json!({ "scope": "payments:refund" }),
    );
    let (status, e) = srv.collect(&fake_alice, &id).await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            400,
            Some("invalid_grant"),
            Some(format!("auth_req_id `{id}` is not known to this client").as_str())
        )
    );
    // Her own request of the same action is a different approval.
    let (status, own) = srv
        .form(
            "/oauth/bc-authorize",
            &fake_alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200, "{own}");
    assert_ne!(own["auth_req_id"], json!(id));

    // The partner's finance members, through its approvals app: no group
    // of theirs counts, so they are not among the approvers.
    let partner_bob = partner("bob", APPROVALS_APP, json!({ "groups": ["finance"] }));
    let (status, e) = vote(&srv, &id, &partner_bob, json!({ "reason": "ok" })).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("`bob` is not among the approvers (group:finance)")
        )
    );
    assert_eq!(status_of(&srv, &id).await, "pending");
    // The first provider's bob is.
    let (status, v) = vote(
        &srv,
        &id,
        &approver("bob", &["finance"]),
        json!({ "reason": "ok" }),
    )
    .await;
    assert_eq!((status, v["approve_count"].as_u64()), (200, Some(1)), "{v}");
}

/// A high finding: a trusted PEP is a client of one issuer. The partner's
/// token for a client named `api-gateway` does not vouch for anyone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_pep_is_a_client_of_its_issuer_only() {
    let bundle = two_issuers();
    let settings: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"api-gateway\"",
    )
    .expect("settings");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    let srv = Server::start_full(settings, &store, bundle.path()).await;
    let impostor = partner("api-gateway", "api-gateway", json!({}));
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&impostor),
            json!({
                "subject": { "type": "User", "id": "alice",
                             "properties": { "scopes": ["payments:refund"] } },
                "action": { "name": "payment.refund" },
                "resource": { "type": "Payment", "id": "pay_123" },
                "context": { "amount": 50, "currency": "EUR" },
            }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some(
                "client `api-gateway` of `https://partner.example.com` is not trusted to vouch for subjects; forward the subject's token as {\"type\": \"bearer\", \"id\": TOKEN}"
            )
        )
    );
}
