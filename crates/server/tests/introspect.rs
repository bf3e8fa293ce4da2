//! `greenlight serve` over real HTTP: RFC 7662 introspection says a token
//! is active exactly when enforcement would accept it, on the edges where
//! a second verifier would disagree: within the leeway after `exp`, a
//! wrong `typ`, a consumed single-use token, a revoked approval.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::server::*;
use serde_json::{Value, json};

mod common;

async fn introspect(srv: &Server, caller: &str, token: &str) -> Value {
    let (status, v) = srv
        .form("/oauth/introspect", caller, &[("token", token)])
        .await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The decision `/v1/check` gives for a refund of `amount` with `token`.
async fn enforce(srv: &Server, amount: i64, token: &str) -> Value {
    let (status, d) = srv
        .json("POST", "/v1/check", None, refund(amount, token))
        .await;
    assert_eq!(status, 200, "{d}");
    d["verdict"].clone()
}

/// Within the 60 s leeway after `exp` a token is active and enforced; at
/// the leeway's end it is inactive and enforcement says it expired; once
/// consumed it is inactive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_and_enforcement_agree_around_exp_and_after_use() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let used = srv.exchanged(50, &alice).await;
    let kept = srv.exchanged(50, &alice).await;
    let exp = T0 + 300;

    srv.advance(300 + 30);
    let i = introspect(&srv, &alice, &used).await;
    assert_eq!(
        (i["active"].as_bool(), i["exp"].as_i64()),
        (Some(true), Some(exp)),
        "{i}"
    );
    assert_eq!(enforce(&srv, 50, &used).await["kind"], "allow");
    // Consumed: inactive, and a replay for enforcement.
    assert_eq!(
        introspect(&srv, &alice, &used).await,
        json!({ "active": false })
    );
    let v = enforce(&srv, 50, &used).await;
    assert_eq!(v["code"], "action-token-replayed", "{v}");

    srv.advance(29);
    assert_eq!(introspect(&srv, &alice, &kept).await["active"], true);
    srv.advance(1);
    assert_eq!(
        introspect(&srv, &alice, &kept).await,
        json!({ "active": false })
    );
    assert_eq!(
        enforce(&srv, 50, &kept).await,
        json!({ "kind": "deny", "code": "token-expired",
                "message": format!("the action token expired at {exp}") })
    );
}

/// A token signed with Greenlight's own key but typed `at+jwt` (an access
/// token's type) rather than `greenlight-action+jwt` is inactive and
/// denied; the same claims typed `greenlight-action+jwt` are active (so the
/// type is the only difference).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_of_another_type_is_inactive_and_denied() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let minted = srv.exchanged(50, &alice).await;
    let payload: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(minted.split('.').nth(1).expect("a payload"))
            .expect("base64url"),
    )
    .expect("claims");
    let keys = srv.state.store.signing_keys().await.expect("keys");
    let key = keys.iter().find(|k| k.is_active()).expect("an active key");
    let sign = |typ: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.typ = Some(typ.to_owned());
        header.kid = Some(key.kid.clone());
        let secret = jsonwebtoken::EncodingKey::from_ed_pem(key.private_key_pem.as_bytes())
            .expect("the stored key");
        jsonwebtoken::encode(&header, &payload, &secret).expect("signs")
    };
    let plain = sign("at+jwt");
    assert_eq!(
        introspect(&srv, &alice, &plain).await,
        json!({ "active": false })
    );
    assert_eq!(
        enforce(&srv, 50, &plain).await,
        json!({ "kind": "deny", "code": "token-wrong-type",
                "message": "type `at+jwt` is not the required `greenlight-action+jwt`" })
    );
    let typed = sign("greenlight-action+jwt");
    let i = introspect(&srv, &alice, &typed).await;
    assert_eq!(
        (i["active"].as_bool(), &i["jti"]),
        (Some(true), &payload["jti"]),
        "{i}"
    );
}

/// The token of an approval revoked after it was collected is inactive and
/// denied; before the revocation it was active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_of_a_revoked_approval_is_inactive_and_denied() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let bob = approver("bob", &["finance"]);
    let carol = approver("carol", &["finance"]);
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("auth_req_id").to_owned();
    for approver in [&bob, &carol] {
        let (status, v) = srv
            .json(
                "POST",
                &format!("/v1/approvals/{id}/approve"),
                Some(approver),
                json!({ "reason": "checked" }),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    let (status, t) = srv.collect(&alice, &id).await;
    assert_eq!(status, 200, "{t}");
    let at = t["access_token"].as_str().expect("access_token").to_owned();
    let i = introspect(&srv, &bob, &at).await;
    assert_eq!(
        (i["active"].as_bool(), i["approval_id"].as_str()),
        (Some(true), Some(id.as_str()))
    );

    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/revoke"),
            Some(&bob),
            json!({ "reason": "customer withdrew" }),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("revoked")),
        "{v}"
    );
    assert_eq!(
        introspect(&srv, &bob, &at).await,
        json!({ "active": false })
    );
    assert_eq!(
        enforce(&srv, 500, &at).await,
        json!({ "kind": "deny", "code": "action-token-replayed",
                "message": format!("approval `{id}` was revoked") })
    );
}

/// An action token names its person by issuer and subject (RFC 9493
/// `sub_id`): introspection says Greenlight issued it for the identity
/// provider's alice, and enforcement decides for that alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_token_names_its_person_by_issuer_and_subject() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let at = srv.exchanged(50, &alice).await;
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(at.split('.').nth(1).expect("a payload"))
            .expect("base64url"),
    )
    .expect("claims");
    let alice_at_idp =
        json!({ "format": "iss_sub", "iss": "https://idp.example.com", "sub": "alice" });
    assert_eq!(
        (&claims["iss"], &claims["sub_id"]),
        (&json!("https://greenlight.example.com"), &alice_at_idp)
    );
    let i = introspect(&srv, &alice, &at).await;
    assert_eq!(
        (&i["iss"], &i["sub"], &i["sub_id"]),
        (
            &json!("https://greenlight.example.com"),
            &json!("alice"),
            &alice_at_idp
        ),
        "{i}"
    );
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(
        (&d["verdict"]["kind"], &d["verdict"]["principal"]["issuer"]),
        (&json!("allow"), &json!("https://idp.example.com")),
        "{d}"
    );
}
