//! `greenlight serve` over real HTTP: RFC 8693 token exchange at `/oauth/token`.

use common::server::*;
use serde_json::json;

mod common;

/// RFC 8693: an action policy allows outright is exchanged for a single-use
/// action token at once; one that needs approval opens the same pending
/// approval as bc-authorize; bad exchanges are refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_mints_at_once_or_opens_the_pending_approval() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let exchange = |details: String, token: String| {
        let srv = &srv;
        async move {
            srv.token_endpoint(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("authorization_details", &details),
            ])
            .await
        }
    };

    // Allowed outright: an action token now, good once.
    let (status, t) = exchange(refund_details(50), alice.clone()).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(t["expires_in"], 300);
    assert_eq!(
        t["authorization_details"][0]["params"],
        json!({"amount": 50, "currency": "EUR"})
    );
    let at = t["access_token"].as_str().expect("access_token").to_owned();
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    assert_eq!(d["verdict"]["principal"]["subject"], "alice");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["code"], "action-token-replayed", "{d}");
    // It is good for that refund only.
    let (_, d) = srv.json("POST", "/v1/check", None, refund(60, &at)).await;
    assert_eq!(d["verdict"]["code"], "action-token-digest-mismatch", "{d}");

    // An action token never outlives the token it was exchanged for.
    let short = dev("alice", Some("payments:refund"), &[], 120);
    let (status, t) = exchange(refund_details(50), short).await;
    assert_eq!((status, t["expires_in"].as_i64()), (200, Some(120)), "{t}");

    // Needs approval: the pending approval, the same one bc-authorize finds.
    let (status, e) = exchange(refund_details(500), alice.clone()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("authorization_pending")),
        "{e}"
    );
    assert_eq!(
        e["error_description"],
        "this action needs approval; poll the token endpoint with grant_type=urn:openid:params:grant-type:ciba and this auth_req_id"
    );
    assert_eq!(
        (e["expires_in"].as_i64(), e["interval"].as_i64()),
        (Some(900), Some(5))
    );
    let id = e["auth_req_id"].as_str().expect("auth_req_id").to_owned();
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(ask["auth_req_id"], id.as_str());

    // Refused: a forbidden action, a bad token, a missing or wrong type.
    let (status, e) = exchange(refund_details(-5), alice.clone()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    assert_eq!(
        e["error_description"],
        "policy-forbidden: `payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`"
    );
    let (status, e) = exchange(refund_details(50), "not.a.token".to_owned()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    let (status, e) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &alice),
            ("authorization_details", &refund_details(50)),
        ])
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (400, Some("subject_token_type is required"))
    );
    let (status, e) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &alice),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            ("authorization_details", &refund_details(50)),
        ])
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                "subject_token_type `urn:ietf:params:oauth:token-type:id_token` is not supported; use `urn:ietf:params:oauth:token-type:access_token`"
            )
        )
    );
}

/// Token responses, successful or not, are never cached (RFC 6749 §5.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_responses_are_never_cached() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    for fields in [
        vec![
            ("grant_type", EXCHANGE),
            ("subject_token", alice.as_str()),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("authorization_details", &refund_details(50)),
        ],
        vec![("grant_type", "password")],
    ] {
        let (status, headers, body) = common::call_full(
            srv.addr,
            "POST",
            "/oauth/token",
            None,
            Some(("application/x-www-form-urlencoded", common::form(&fields))),
        )
        .await;
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(
            (header("cache-control"), header("pragma")),
            (Some("no-store"), Some("no-cache")),
            "{status} {body}"
        );
    }
}

/// An action token is spent on its one action: exchanging it for another
/// (which once gave as many single-use tokens as asked for, each outliving
/// the approval's revocation) or asking with it is refused, and the
/// original still works once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_token_cannot_be_exchanged_or_ask_again() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let at = srv.exchanged(50, &alice).await;
    let refused =
        "an action token cannot ask for an approval or another token: ask with your access token";
    let (status, e) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &at),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("authorization_details", &refund_details(50)),
        ])
        .await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (400, Some("invalid_request"), Some(refused))
    );
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            &at,
            &[("authorization_details", &refund_details(50))],
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (400, Some(refused))
    );
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["code"], "action-token-replayed", "{d}");
}
