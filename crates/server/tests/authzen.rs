//! `greenlight serve` over real HTTP: OpenID AuthZEN 1.0 evaluations, with tokens and with vouched subjects.

use common::server::*;
use serde_json::{Value, json};

mod common;

/// AuthZEN: the same decisions as /v1/check in the AuthZEN shape, single
/// and batched, with approval-required as `decision: false` plus the
/// challenge, and the short-circuit semantics honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_evaluations_answer_like_check() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let eval = |amount: i64| {
        json!({
            "subject": { "type": "bearer", "id": alice },
            "action": { "name": "payment.refund" },
            "resource": { "type": "Payment", "id": "pay_123" },
            "context": { "amount": amount, "currency": "EUR" },
        })
    };
    let (status, a) = srv
        .json("POST", "/access/v1/evaluation", None, eval(50))
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["decision"], true);
    assert_eq!(a["context"]["reasons"], json!(["refund-small"]));
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", None, eval(500))
        .await;
    assert_eq!(a["decision"], false);
    assert_eq!(
        a["context"]["approval_required"]["kind"],
        "approval-required"
    );
    assert_eq!(a["context"]["approval_required"]["obligation"]["quorum"], 2);
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", None, eval(20000))
        .await;
    assert_eq!(
        (a["decision"].as_bool(), a["context"]["code"].as_str()),
        (Some(false), Some("policy-forbidden"))
    );

    let batch = |semantic: &str| {
        json!({
            "subject": { "type": "bearer", "id": alice },
            "action": { "name": "payment.refund" },
            "resource": { "type": "Payment", "id": "pay_123" },
            "options": { "evaluations_semantic": semantic },
            "evaluations": [
                { "context": { "amount": 50, "currency": "EUR" } },
                { "context": { "amount": 500, "currency": "EUR" } },
                { "context": { "amount": 60, "currency": "EUR" } },
            ],
        })
    };
    let (_, b) = srv
        .json("POST", "/access/v1/evaluations", None, batch("execute_all"))
        .await;
    let decisions: Vec<bool> = b["evaluations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["decision"] == true)
        .collect();
    assert_eq!(decisions, [true, false, true]);
    let (_, b) = srv
        .json(
            "POST",
            "/access/v1/evaluations",
            None,
            batch("deny_on_first_deny"),
        )
        .await;
    assert_eq!(b["evaluations"].as_array().map(Vec::len), Some(2));
    let (_, b) = srv
        .json(
            "POST",
            "/access/v1/evaluations",
            None,
            batch("permit_on_first_permit"),
        )
        .await;
    assert_eq!(b["evaluations"].as_array().map(Vec::len), Some(1));
    let (status, e) = srv
        .json("POST", "/access/v1/evaluations", None, batch("sometimes"))
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                "evaluations_semantic `\"sometimes\"` is not one of execute_all, deny_on_first_deny, permit_on_first_permit"
            )
        )
    );
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            json!({ "subject": { "type": "user", "id": "alice" } }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                "`subject.type` must be `bearer`, with the token as `subject.id`, or `User` from a trusted PEP"
            )
        )
    );
}

/// A trusted PEP (its own token's issuer and client_id in `[authzen]
/// trusted_clients`)
/// may name a subject by id and properties; anyone else may not, and
/// bearer subjects keep working without any PEP credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_pep_may_vouch_for_a_subject_by_id() {
    let settings: Settings =
        toml::from_str(
            "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"api-gateway\"",
        )
        .expect("settings");
    let srv = Server::start_with(settings).await;
    // A client-credentials token: the gateway speaking for itself.
    let pep = token_with("api-gateway", &[("client_id", json!("api-gateway"))]);
    let stranger = token_with("someone", &[]);
    // A user's token issued to the gateway's client is not the gateway.
    let users = token_with("mallory", &[("client_id", json!("api-gateway"))]);
    let vouched = |amount: i64, props: Value| {
        json!({
            "subject": { "type": "User", "id": "alice", "properties": props },
            "action": { "name": "payment.refund" },
            "resource": { "type": "Payment", "id": "pay_123" },
            "context": { "amount": amount, "currency": "EUR" },
        })
    };
    let refund_scope = json!({ "scopes": ["payments:refund"] });

    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["decision"], true, "{a}");
    assert_eq!(a["context"]["reasons"], json!(["refund-small"]));
    let (_, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(500, refund_scope.clone()),
        )
        .await;
    assert_eq!(a["decision"], false, "{a}");
    assert_eq!(
        a["context"]["approval_required"]["kind"],
        "approval-required"
    );
    assert_eq!(
        a["context"]["approval_required"]["obligation"]["approvers"],
        json!(["group:finance"])
    );
    let (_, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(50, json!({})),
        )
        .await;
    assert_eq!(
        (a["decision"].as_bool(), a["context"]["code"].as_str()),
        (Some(false), Some("policy-no-permit")),
        "without the scope: {a}"
    );

    // Refused: no PEP credential, an untrusted client, bad properties.
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (401, Some("no bearer token was presented"))
    );
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&stranger),
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some(
                "client `greenlight-dev` of `https://idp.example.com` is not trusted to vouch for subjects; forward the subject's token as {\"type\": \"bearer\", \"id\": TOKEN}"
            )
        )
    );
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(50, json!({ "scope": "x" })),
        )
        .await;
    let (status_u, e_u) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&users),
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(
        (status_u, e_u["error_description"].as_str()),
        (
            403,
            Some(
                "only client `api-gateway`'s own token (subject `api-gateway`, as its client-credentials grant gives) may vouch for subjects, not `mallory`'s"
            )
        )
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        e["error_description"],
        "`subject.properties` do not fit: unknown field `scope`, expected one of `scopes`, `groups`, `roles`, `tenant`, `attributes`"
    );

    // A bearer subject needs no PEP credential.
    let alice = token("alice", "payments:refund", &[]);
    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            json!({
                "subject": { "type": "bearer", "id": alice },
                "action": { "name": "payment.refund" },
                "resource": { "type": "Payment", "id": "pay_123" },
                "context": { "amount": 50, "currency": "EUR" },
            }),
        )
        .await;
    assert_eq!((status, a["decision"].as_bool()), (200, Some(true)), "{a}");
}

/// Where the client-credentials grant names a service principal rather
/// than the client (Entra: `sub` = the principal's object id), the trusted
/// client's `subject` says which: only that token vouches; the same
/// client's token with its client id as subject, or a person's, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_pep_is_known_by_its_configured_subject() {
    let settings: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"api-gateway\"\nsubject = \"sp-7c1e\"",
    )
    .expect("settings");
    let srv = Server::start_with(settings).await;
    let request = json!({
        "subject": { "type": "User", "id": "alice", "properties": { "scopes": ["payments:refund"] } },
        "action": { "name": "payment.refund" },
        "resource": { "type": "Payment", "id": "pay_123" },
        "context": { "amount": 50, "currency": "EUR" },
    });
    let call = |sub: &'static str| {
        let (srv, request) = (&srv, request.clone());
        async move {
            let token = token_with(sub, &[("client_id", json!("api-gateway"))]);
            srv.json("POST", "/access/v1/evaluation", Some(&token), request)
                .await
        }
    };
    let (status, d) = call("sp-7c1e").await;
    assert_eq!((status, &d["decision"]), (200, &json!(true)), "{d}");
    for sub in ["api-gateway", "alice"] {
        let (status, e) = call(sub).await;
        assert_eq!(
            (status, e["error_description"].as_str()),
            (
                403,
                Some(format!(
                    "only client `api-gateway`'s own token (subject `sp-7c1e`, as its client-credentials grant gives) may vouch for subjects, not `{sub}`'s"
                ).as_str())
            )
        );
    }
    let empty: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"\"",
    )
    .expect("settings");
    assert_eq!(
        empty.check().map_err(|e| e.to_string()),
        Err("authzen.trusted_clients: issuer, client_id and subject may not be empty (a client-less token would pass for the PEP)".to_owned())
    );
}

/// The PDP metadata names this server, its two evaluation endpoints and
/// the access request endpoint with its keys (ARAP), so a PEP that
/// discovers them reaches the ones it would be given by hand; the search
/// APIs are not offered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pdp_metadata_names_the_evaluation_endpoints() {
    let srv = Server::start().await;
    let base = format!("http://{}", srv.addr);
    let (status, m) = srv
        .call("GET", "/.well-known/authzen-configuration", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        m,
        json!({
            "policy_decision_point": base,
            "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
            "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
            "access_request_endpoint": format!("{base}/access/v1/requests"),
            "jwks_uri": format!("{base}/.well-known/jwks.json"),
            "capabilities": ["urn:openid:authzen:capability:access-request"],
        })
    );
}
