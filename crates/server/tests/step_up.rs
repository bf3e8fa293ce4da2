//! `greenlight serve` with a bundle that maps claims to attributes and
//! requires a sign-in for large refunds: RFC 9470 step-up on every
//! surface (check, CIBA, token exchange, AuthZEN), no approval opened for a
//! weak sign-in, and an action token that carries the person's attributes
//! to the one request it allows.

use std::path::Path;

use base64::Engine as _;
use common::server::*;
use serde_json::{Value, json};

mod common;

/// The demo bundle, with two mapped attributes and `refund-large`
/// requiring a multi-factor sign-in, written into `dir`.
fn step_up_bundle(dir: &Path) {
    let demo = root().join("examples/bundle");
    std::fs::create_dir_all(dir.join("dev")).expect("mkdir");
    for f in ["idp.jwks.json", "dev/idp-dev.key.pem"] {
        std::fs::copy(demo.join(f), dir.join(f)).expect("copy");
    }
    let read = |f: &str| std::fs::read_to_string(demo.join(f)).expect("read");
    let config = read("greenlight.toml")
        + "\n[principal.attributes.acr]\nclaim = \"acr\"\ntype = \"String\"\n\
           \n[principal.attributes.department]\nclaim = \"https://example.com/department\"\n\
           type = \"String\"\ndefault = \"none\"\n";
    let policy = read("policy.cedar").replace(
        "@id(\"refund-large\")\n",
        "@id(\"refund-large\")\n@acr(\"urn:example:mfa urn:example:hwk\")\n",
    ) + "\n@id(\"no-contractor-refunds\")\nforbid (principal, action == Action::\"payment.refund\", resource)\n\
           when { principal.department == \"contractors\" };\n";
    let schema = read("schema.cedarschema").replace(
        "  issuer: String,\n};",
        "  issuer: String,\n  acr?: String,\n  department: String,\n};",
    );
    assert!(policy.contains("@acr(") && schema.contains("acr?: String"));
    std::fs::write(dir.join("greenlight.toml"), config).expect("write");
    std::fs::write(dir.join("policy.cedar"), policy).expect("write");
    std::fs::write(dir.join("schema.cedarschema"), schema).expect("write");
}

/// A token of the requesting app for alice, allowed to refund, signed in
/// with `acr` (none when `None`), in the payments department.
fn alice(acr: Option<&str>) -> String {
    alice_in("payments", acr)
}

/// The same, in `department`.
fn alice_in(department: &str, acr: Option<&str>) -> String {
    let mut claims = vec![("https://example.com/department", json!(department))];
    if let Some(a) = acr {
        claims.push(("acr", json!(a)));
    }
    dev(
        "alice",
        Some("payments:read payments:refund"),
        &claims,
        7200,
    )
}

const WEAK: &str = "`payment.refund` on `Payment::pay_123` needs a new sign-in: the sign-in's class `urn:example:pwd` is not one of `urn:example:mfa urn:example:hwk`";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_sign_in_is_asked_to_step_up_and_opens_no_approval() {
    let dir = tempfile::tempdir().expect("tempdir");
    step_up_bundle(dir.path());
    let srv = Server::start_with_bundle(dir.path()).await;
    let weak = alice(Some("urn:example:pwd"));

    let (status, d) = srv
        .json("POST", "/v1/check", None, refund(500, &weak))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (&d["verdict"], &d["reasons"]),
        (
            &json!({ "kind": "step-up-required",
                     "acr_values": ["urn:example:mfa", "urn:example:hwk"],
                     "max_age": null, "message": WEAK }),
            &json!(["refund-large"])
        )
    );
    // A small refund needs no particular sign-in.
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &weak)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");

    // CIBA: the client is told how to sign in, not given an auth_req_id.
    let body = common::form(&[("authorization_details", &refund_details(500))]);
    let (status, headers, e) = common::call_full(
        srv.addr,
        "POST",
        "/oauth/bc-authorize",
        Some(&weak),
        Some(("application/x-www-form-urlencoded", body)),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        e,
        json!({ "error": "insufficient_user_authentication", "error_description": WEAK,
                "acr_values": "urn:example:mfa urn:example:hwk" })
    );
    let challenge = headers
        .iter()
        .find(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        challenge,
        Some(
            format!(
                "Bearer error=\"insufficient_user_authentication\", error_description=\"{WEAK}\", acr_values=\"urn:example:mfa urn:example:hwk\""
            )
            .as_str()
        )
    );
    // Without `acr` at all, the same.
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            &alice(None),
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(
        (status, e),
        (
            401,
            json!({ "error": "insufficient_user_authentication",
                    "error_description": "`payment.refund` on `Payment::pay_123` needs a new sign-in: the token names no sign-in class (`acr`); one of `urn:example:mfa urn:example:hwk` is needed",
                    "acr_values": "urn:example:mfa urn:example:hwk" })
        )
    );

    // Token exchange: a bad request (RFC 8693), still saying what to sign in with.
    let (status, e) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &weak),
            ("subject_token_type", ACCESS_TOKEN_TYPE),
            ("authorization_details", &refund_details(500)),
        ])
        .await;
    assert_eq!(
        (status, e),
        (
            400,
            json!({ "error": "insufficient_user_authentication", "error_description": WEAK,
                    "acr_values": "urn:example:mfa urn:example:hwk" })
        )
    );

    // AuthZEN: a no, with the requirement in the context.
    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            json!({ "subject": { "type": "bearer", "id": weak },
                    "action": { "name": "payment.refund" },
                    "resource": { "type": "Payment", "id": "pay_123" },
                    "context": { "amount": 500, "currency": "EUR" } }),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(a["decision"], false);
    assert_eq!(
        (
            &a["context"]["code"],
            &a["context"]["reason"],
            &a["context"]["acr_values"],
            &a["context"]["max_age"]
        ),
        (
            &json!("step-up-required"),
            &json!(WEAK),
            &json!(["urn:example:mfa", "urn:example:hwk"]),
            &Value::Null
        )
    );

    // Nobody was asked.
    let finance = approver("fiona", &["finance"]);
    let (status, list) = srv
        .json("GET", "/v1/approvals", Some(&finance), Value::Null)
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["approvals"], json!([]), "{list}");
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWS");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64url"),
    )
    .expect("JSON claims")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stepped_up_request_is_approved_and_its_token_carries_the_attributes() {
    let dir = tempfile::tempdir().expect("tempdir");
    step_up_bundle(dir.path());
    let srv = Server::start_with_bundle(dir.path()).await;
    let strong = alice(Some("urn:example:hwk"));
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &strong))
        .await;
    assert_eq!(d["verdict"]["kind"], "approval-required", "{d}");
    assert_eq!(
        d["verdict"]["requester"]["attributes"],
        json!({ "acr": { "string": "urn:example:hwk" },
                "department": { "string": "payments" } })
    );
    let id = srv.ask(&strong, &refund_details(500)).await;
    srv.approve_by_finance(&id, &["fiona", "frank"]).await;
    // The token that collects is the one the action token is minted from:
    // it must still lead to the approved decision. A weaker sign-in of the
    // same person and client does not...
    let (status, e) = srv.collect(&alice(Some("urn:example:pwd")), &id).await;
    assert_eq!(
        (status, e),
        (
            400,
            json!({ "error": "insufficient_user_authentication", "error_description": WEAK,
                    "acr_values": "urn:example:mfa urn:example:hwk" })
        )
    );
    // ...nor one whose attributes now forbid the action.
    srv.advance(5);
    let (status, e) = srv
        .collect(&alice_in("contractors", Some("urn:example:hwk")), &id)
        .await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            400,
            Some("invalid_grant"),
            Some(
                "the action is now refused (policy-forbidden: `payment.refund` on `Payment::pay_123` is forbidden by policy `no-contractor-refunds`): this approval cannot be collected with this token; ask again"
            )
        ),
        "{e}"
    );
    srv.advance(5);
    let (status, t) = srv.collect(&strong, &id).await;
    assert_eq!(status, 200, "{t}");
    let action_token = t["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(
        claims_of(&action_token)["principal_attributes"],
        json!({ "acr": "urn:example:hwk", "department": "payments" })
    );
    // The action token allows its one refund, as alice with her attributes.
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &action_token))
        .await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    assert_eq!(
        d["verdict"]["principal"]["attributes"],
        json!({ "acr": { "string": "urn:example:hwk" },
                "department": { "string": "payments" } })
    );
    assert_eq!(d["verdict"]["approval_id"], json!(id));
    // Spent.
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &action_token))
        .await;
    assert_eq!(
        (&d["verdict"]["kind"], &d["verdict"]["code"]),
        (&json!("deny"), &json!("action-token-replayed")),
        "{d}"
    );
}

/// A trusted PEP vouching for a subject gives mapped attributes in their
/// typed form; anything else is refused. A vouched subject shows no
/// sign-in, so it cannot meet a sign-in requirement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vouched_subjects_attributes_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    step_up_bundle(dir.path());
    let settings: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"api-gateway\"",
    )
    .expect("settings");
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    let srv = Server::start_full(settings, &store, dir.path()).await;
    let pep = token_with("api-gateway", &[("client_id", json!("api-gateway"))]);
    let ask = |amount: i64, props: Value| {
        json!({ "subject": { "type": "User", "id": "alice", "properties": props },
                "action": { "name": "payment.refund" },
                "resource": { "type": "Payment", "id": "pay_123" },
                "context": { "amount": amount, "currency": "EUR" } })
    };
    let evaluate = |body: Value| {
        let (srv, pep) = (&srv, pep.clone());
        async move {
            let (status, a) = srv
                .json("POST", "/access/v1/evaluation", Some(&pep), body)
                .await;
            assert_eq!(status, 200, "{a}");
            a
        }
    };
    let props = json!({ "scopes": ["payments:refund"],
                        "attributes": { "department": { "string": "payments" } } });
    let a = evaluate(ask(50, props.clone())).await;
    assert_eq!(a["decision"], true, "{a}");
    let a = evaluate(ask(500, props)).await;
    assert_eq!(
        (
            &a["decision"],
            &a["context"]["code"],
            &a["context"]["reason"]
        ),
        (
            &json!(false),
            &json!("step-up-required"),
            &json!(
                "`payment.refund` on `Payment::pay_123` needs a new sign-in: the token names no sign-in class (`acr`); one of `urn:example:mfa urn:example:hwk` is needed"
            )
        )
    );
    let a = evaluate(ask(
        50,
        json!({ "attributes": { "admin": { "bool": true } } }),
    ))
    .await;
    assert_eq!(
        (
            &a["decision"],
            &a["context"]["code"],
            &a["context"]["reason"]
        ),
        (
            &json!(false),
            &json!("request-invalid"),
            &json!("the vouched subject's attribute `admin` is not one the bundle maps")
        )
    );
    let a = evaluate(ask(
        50,
        json!({ "attributes": { "department": { "long": 7 } } }),
    ))
    .await;
    assert_eq!(
        (
            &a["decision"],
            &a["context"]["code"],
            &a["context"]["reason"]
        ),
        (
            &json!(false),
            &json!("request-invalid"),
            &json!("the vouched subject's attribute `department` is a Long, not a String")
        )
    );
    // Not a typed value at all: the request is refused before deciding.
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            ask(50, json!({ "attributes": { "department": "payments" } })),
        )
        .await;
    assert_eq!(
        (status, &e["error"], &e["error_description"]),
        (
            400,
            &json!("invalid_request"),
            &json!(
                "`subject.properties` do not fit: unknown variant `payments`, expected one of `string`, `long`, `bool`, `set`, `datetime`"
            )
        )
    );
}
