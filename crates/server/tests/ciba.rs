//! `greenlight serve` over real HTTP: `/oauth/bc-authorize` and the CIBA grant at `/oauth/token`: asking for
//! approval of one action, polling, and collecting its action token once.

use common::server::*;
use serde_json::json;

mod common;

/// The whole refund story: challenge, ask (twice: one approval), pending and
/// slow_down, a vote that counts once, self-approval refused, quorum, the
/// token delivered once, act, replay denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_of_500_needs_two_finance_approvals_and_its_token_works_once() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &["finance"]);
    let bob = approver("bob", &["finance"]);
    let carol = approver("carol", &["finance"]);
    let mallory = approver("mallory", &["sales"]);

    // 1. Challenge.
    let (status, d) = srv
        .json("POST", "/v1/check", None, refund(500, &alice))
        .await;
    assert_eq!(status, 200);
    assert_eq!(d["verdict"]["kind"], "approval-required");
    assert_eq!(
        d["ask"]["backchannel_authentication_endpoint"],
        format!("http://{}/oauth/bc-authorize", srv.addr)
    );
    let details = d["verdict"]["authorization_details"].to_string();

    // 2. Ask, twice: the same pending action is one approval.
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[
                ("authorization_details", &details),
                ("binding_message", "R-7"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("auth_req_id").to_owned();
    assert_eq!(ask["expires_in"], 900);
    assert_eq!(ask["interval"], 5);
    let (_, again) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    assert_eq!(again["auth_req_id"], id.as_str());

    // 3. Poll: pending, then too fast.
    let (status, e) = srv.collect(&alice, &id).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (status, e) = srv.collect(&alice, &id).await;
    assert_eq!((status, e["error"].as_str()), (400, Some("slow_down")));
    assert_eq!(e["error_description"], "poll at most every 5 seconds");

    // 4. Votes. A reason is required; the requester cannot approve; an
    //    outsider cannot; the same approver twice counts once.
    let path = format!("/v1/approvals/{id}/approve");
    let (status, e) = srv.json("POST", &path, Some(&bob), json!({})).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(format!("approval `{id}` requires a reason with every decision").as_str())
        )
    );
    // alice's app cannot vote on what it asked for, whoever's token it holds.
    let (status, e) = srv
        .json("POST", &path, Some(&alice), json!({ "reason": "mine" }))
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("client `greenlight-dev` asked for this action and cannot vote on it")
        )
    );
    // alice herself, signed in to the approvals app and in finance, cannot
    // approve her own request either.
    let alice_approver = approver("alice", &["finance"]);
    let (status, e) = srv
        .json(
            "POST",
            &path,
            Some(&alice_approver),
            json!({ "reason": "mine" }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("`alice` asked for this action and cannot approve their own request")
        )
    );
    let (status, e) = srv
        .json(
            "POST",
            &path,
            Some(&mallory),
            json!({ "reason": "why not" }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("`mallory` is not among the approvers (group:finance)")
        )
    );
    let (status, v) = srv
        .json(
            "POST",
            &path,
            Some(&bob),
            json!({ "reason": "customer R-7 verified" }),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str(), v["approve_count"].as_u64()),
        (200, Some("pending"), Some(1))
    );
    let (_, v) = srv
        .json("POST", &path, Some(&bob), json!({ "reason": "again" }))
        .await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["approve_count"].as_u64(),
            v["recorded"].as_bool()
        ),
        (Some("pending"), Some(1), Some(false))
    );
    let (status, list) = srv
        .call("GET", "/v1/approvals?status=pending", Some(&carol), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["approvals"].as_array().map(Vec::len), Some(1));
    let (_, v) = srv
        .json(
            "POST",
            &path,
            Some(&carol),
            json!({ "reason": "second pair of eyes" }),
        )
        .await;
    assert_eq!(
        (v["status"].as_str(), v["approve_count"].as_u64()),
        (Some("approved"), Some(2))
    );

    // 5. The token, once.
    srv.advance(5);
    let (status, t) = srv.collect(&alice, &id).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 300);
    let action_token = t["access_token"].as_str().expect("token").to_owned();
    srv.advance(5);
    let (status, e) = srv.collect(&alice, &id).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(format!("the action token for `{id}` was already delivered").as_str())
        )
    );

    // Introspection describes the unused token...
    let (status, i) = srv
        .form("/oauth/introspect", &bob, &[("token", &action_token)])
        .await;
    assert_eq!(status, 200, "{i}");
    assert_eq!(
        (
            i["active"].as_bool(),
            i["sub"].as_str(),
            i["grant"].as_str()
        ),
        (Some(true), Some("alice"), Some("once"))
    );
    assert_eq!(i["approval_id"], id.as_str());
    assert_eq!(i["approvers"], json!(["bob", "carol"]));
    // ...and an access token it did not issue as inactive.
    let (_, i) = srv
        .form("/oauth/introspect", &bob, &[("token", &alice)])
        .await;
    assert_eq!(i, json!({ "active": false }));

    // 6. Act, then replay.
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &action_token))
        .await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    assert_eq!(d["verdict"]["principal"]["subject"], "alice");
    assert_eq!(d["reasons"], json!(["refund-large"]));
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &action_token))
        .await;
    let jti = d["verdict"]["message"].as_str().unwrap_or("").to_owned();
    assert_eq!(d["verdict"]["code"], "action-token-replayed", "{d}");
    assert!(
        jti.starts_with("action token `") && jti.ends_with("` was already used"),
        "{jti}"
    );
    // A consumed single-use token is inactive (RFC 7662).
    let (_, i) = srv
        .form("/oauth/introspect", &bob, &[("token", &action_token)])
        .await;
    assert_eq!(i, json!({ "active": false }));
    // The token is for 500 on pay_123 only.
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(501, &action_token))
        .await;
    assert_eq!(d["verdict"]["code"], "action-token-digest-mismatch");
}

/// A one-time action token ends no later than the base token that
/// collected it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_token_ends_no_later_than_the_base_token_that_collected_it() {
    let srv = Server::start().await;
    let alice = dev("alice", Some("payments:refund"), &[], 120);
    let id = srv.ask(&alice, &refund_details(500)).await;
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    srv.advance(20);
    let (status, t) = srv.collect(&alice, &id).await;
    assert_eq!((status, t["expires_in"].as_i64()), (200, Some(100)), "{t}");
}

/// Asking for approval verifies the caller's token once: the decision's
/// requester is who asks, not a second authentication. Collecting the
/// token checks the caller's token once more (its own request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asking_for_approval_verifies_the_token_once() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (checks, signatures) = srv.checks().await;
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    assert_eq!(srv.checks().await, (checks + 1, signatures + 1));
    let id = ask["auth_req_id"].as_str().expect("auth_req_id");
    let (status, e) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", id)],
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    assert_eq!(srv.checks().await.0, checks + 2);
}

/// A yes is for acting now: an approved action not collected within
/// `approvals.collect_within` (300 s) of the approval is `expired_token`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_not_collected_in_time_cannot_be_collected() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let id = srv.ask(&alice, &refund_details(500)).await;
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    srv.advance(301);
    let (status, e) = srv.collect(&alice, &id).await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            400,
            Some("expired_token"),
            Some("the approval was not collected within 300 seconds of being given")
        )
    );
}

/// A window runs from the approval, not from its collection; the token
/// that collects it ends no later than the base token that collected it,
/// while the grant lasts the window for a refreshed base token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_runs_from_the_approval_and_its_token_ends_with_its_base_token() {
    let srv = Server::start().await;
    let short = dev("alice", Some("files:write"), &[], 120);
    let write = |token: &str| {
        json!({ "method": "PUT", "path": "/users/alice/files/report.txt/content",
                "headers": { "authorization": format!("Bearer {token}") } })
    };
    let (_, d) = srv.json("POST", "/v1/check", None, write(&short)).await;
    let details = d["verdict"]["authorization_details"].to_string();
    let id = srv.ask(&short, &details).await;
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&approver("alice", &[])),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("approved")),
        "{v}"
    );
    srv.advance(50);
    let (status, t) = srv.collect(&short, &id).await;
    assert_eq!(status, 200, "{t}");
    // 250 s of window are left, but the base token has 70.
    assert_eq!(t["expires_in"], 70);
    // A base token refreshed later acts under the grant until T0 + 300.
    srv.advance(200);
    let fresh = dev_through(
        None,
        "alice",
        Some("files:write"),
        &[("iat", json!(T0 + 250))],
        7200,
    );
    let (_, d) = srv.json("POST", "/v1/check", None, write(&fresh)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    srv.advance(50);
    let (_, d) = srv.json("POST", "/v1/check", None, write(&fresh)).await;
    assert_eq!(d["verdict"]["kind"], "approval-required", "{d}");
}

/// A requester over their quota gets `429 too_many_requests` with
/// `Retry-After`, whichever of their clients asks, and nothing is stored;
/// asking again for what is pending still answers, other requesters are
/// unaffected, and a decided approval frees its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requester_over_their_quota_is_told_to_wait() {
    let settings: Settings =
        toml::from_str("[approvals]\nmax_pending = 2\nmax_new = 3\nnew_per = 600")
            .expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let ask = |who: String, amount: i64| {
        let srv = &srv;
        async move {
            let (status, headers, body) = common::call_full(
                srv.addr,
                "POST",
                "/oauth/bc-authorize",
                Some(&who),
                Some((
                    "application/x-www-form-urlencoded",
                    common::form(&[("authorization_details", &refund_details(amount))]),
                )),
            )
            .await;
            let retry = headers
                .iter()
                .find(|(n, _)| n == "retry-after")
                .map(|(_, v)| v.clone());
            (status, retry, body)
        }
    };
    let (_, _, first) = ask(alice.clone(), 500).await;
    srv.advance(10);
    let (_, _, second) = ask(alice.clone(), 501).await;
    srv.advance(10);
    let (status, retry, e) = ask(alice.clone(), 502).await;
    assert_eq!(
        (status, retry.as_deref(), &e),
        (
            429,
            Some("880"),
            &json!({
                "error": "too_many_requests",
                "error_description": "`alice` has 2 approvals pending, the most allowed at once: \
                                      wait for one to be decided or to expire",
            })
        )
    );
    // Through another of alice's clients: still alice.
    let other_app = dev_through(
        Some("other-app"),
        "alice",
        Some("payments:refund"),
        &[],
        7200,
    );
    assert_eq!(ask(other_app, 502).await.0, 429);
    // Asking again for a pending refund answers as before.
    let (status, _, again) = ask(alice.clone(), 500).await;
    assert_eq!(
        (status, &again["auth_req_id"]),
        (200, &first["auth_req_id"])
    );
    // Bob has his own quota.
    let bob = token("bob", "payments:refund", &[]);
    assert_eq!(ask(bob, 502).await.0, 200);

    // Decisions free places, but three were opened in ten minutes.
    let carol = approver("carol", &["finance"]);
    for asked in [&first, &second] {
        let id = asked["auth_req_id"].as_str().expect("id");
        let (status, v) = srv
            .json(
                "POST",
                &format!("/v1/approvals/{id}/deny"),
                Some(&carol),
                json!({ "reason": "not now" }),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    assert_eq!(ask(alice.clone(), 502).await.0, 200);
    let (status, retry, e) = ask(alice.clone(), 503).await;
    assert_eq!(
        (status, retry.as_deref(), e["error_description"].as_str()),
        (
            429,
            Some("580"),
            Some(
                "`alice` opened 3 approvals in the last 600 seconds, the most allowed: try again later"
            )
        )
    );
    let all = srv
        .state
        .store
        .list_approvals(None, None, 100)
        .await
        .expect("list");
    assert_eq!(all.len(), 4, "three of alice's and bob's one");
}

/// A token that names no client cannot ask: the approval, its token and
/// its window would belong to every client of the person at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_a_client_cannot_ask() {
    let srv = Server::start().await;
    let clientless = dev_through(
        None,
        "alice",
        Some("payments:refund"),
        &[("client_id", json!(null))],
        7200,
    );
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            &clientless,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(
        (status, &e),
        (
            400,
            &json!({
                "error": "invalid_request",
                "error_description": "the token names no client (`client_id` or `azp`, or the issuer's \
                                      `client_claim`): approvals are asked for by a client, which \
                                      `https://idp.example.com`'s tokens must name",
            })
        )
    );
    let all = srv
        .state
        .store
        .list_approvals(None, None, 10)
        .await
        .expect("list");
    assert!(all.is_empty(), "nothing stored: {all:?}");
}
