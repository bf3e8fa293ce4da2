//! The filter's decision flow, natively, on the demo bundle: what the
//! proxy is told to do for each kind of request and service answer.

use std::path::PathBuf;

use greenlight_core::Engine;
use greenlight_proxy_wasm::flow::{Exchange, Step};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

const NOW: u64 = 1_767_225_600;
const SERVICE: &str = "https://greenlight.example.com";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn engine() -> Engine {
    let dir = root().join("examples/bundle");
    let files: Vec<(String, String)> = [
        "greenlight.toml",
        "policy.cedar",
        "schema.cedarschema",
        "idp.jwks.json",
    ]
    .iter()
    .map(|n| {
        (
            (*n).to_owned(),
            std::fs::read_to_string(dir.join(n)).expect("bundle file"),
        )
    })
    .collect();
    Engine::load(&files).expect("the demo bundle loads")
}

fn token(sub: &str, scope: &str) -> String {
    let pem = std::fs::read(root().join("examples/bundle/dev/idp-dev.key.pem")).expect("dev key");
    let key = EncodingKey::from_ed_pem(&pem).expect("ed key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("idp-dev-1".to_owned());
    header.typ = Some("at+jwt".to_owned());
    let claims = json!({
        "iss": "https://idp.example.com", "aud": "https://api.example.com", "sub": sub,
        "iat": NOW - 60, "exp": NOW + 3600, "scope": scope, "client_id": "greenlight-dev",
    });
    jsonwebtoken::encode(&header, &claims, &key).expect("sign")
}

fn headers(method: &str, path: &str, extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    let mut h = vec![
        (":method".to_owned(), method.as_bytes().to_vec()),
        (":path".to_owned(), path.as_bytes().to_vec()),
        (":authority".to_owned(), b"api.example.com".to_vec()),
    ];
    h.extend(
        extra
            .iter()
            .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec())),
    );
    h
}

fn respond(step: Step) -> (u16, Value) {
    match step {
        Step::Respond(r) => (r.status, r.body),
        other => panic!("expected an answer, got {other:?}"),
    }
}

#[test]
fn an_allow_forwards_without_the_clients_gateway_headers() {
    let e = engine();
    let bearer = format!("Bearer {}", token("alice", "payments:read"));
    let x = Exchange::new(headers(
        "GET",
        "/payments/pay_1?expand=1",
        &[
            ("authorization", &bearer),
            ("x-greenlight-subject", "mallory"),
            ("x-greenlight_approval", "a1"),
        ],
    ))
    .expect("readable");
    assert!(!x.wants_body(&e, true));
    // A route that reads no body is decided on the headers, body or not.
    assert!(!x.wants_body(&e, false));
    let step = x.step(&x.decide(&e, NOW), SERVICE);
    assert_eq!(
        step,
        Step::Forward {
            remove: vec![
                "x-greenlight-subject".to_owned(),
                "x-greenlight_approval".to_owned()
            ],
            add: vec![
                ("x-greenlight-subject".to_owned(), "alice".to_owned()),
                (
                    "x-greenlight-issuer".to_owned(),
                    "https://idp.example.com".to_owned()
                ),
                ("x-greenlight-action".to_owned(), "payment.read".to_owned()),
            ],
        }
    );
}

/// The refund's route reads the body: its headers go ahead with the
/// forward headers its token and route determine, and the body decides.
#[test]
fn a_json_body_is_read_and_decides_the_refund() {
    let e = engine();
    let bearer = format!("Bearer {}", token("alice", "payments:refund"));
    let refund = |extra: &[(&str, &str)]| {
        let mut h = vec![
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        h.extend_from_slice(extra);
        Exchange::new(headers("POST", "/payments/pay_1/refund", &h)).expect("readable")
    };
    let mut x = refund(&[("x-greenlight-approval", "forged")]);
    assert!(x.wants_body(&e, false));
    assert!(!x.went_ahead());
    assert_eq!(
        x.ahead(&e, NOW, SERVICE),
        Step::Forward {
            remove: vec!["x-greenlight-approval".to_owned()],
            add: vec![
                ("x-greenlight-subject".to_owned(), "alice".to_owned()),
                (
                    "x-greenlight-issuer".to_owned(),
                    "https://idp.example.com".to_owned()
                ),
                (
                    "x-greenlight-action".to_owned(),
                    "payment.refund".to_owned()
                ),
            ],
        }
    );
    assert!(x.went_ahead());
    x.set_body(Some(br#"{"amount": 500, "currency": "EUR"}"#), 1024)
        .expect("small");
    let (status, body) = respond(x.step(&x.decide(&e, NOW), SERVICE));
    assert_eq!(status, 401);
    assert_eq!(body["code"], "approval-required");
    assert_eq!(
        body["authorization_details"][0]["params"],
        json!({"amount": 500, "currency": "EUR"})
    );
    assert_eq!(
        body["ask"]["token_endpoint"],
        format!("{SERVICE}/oauth/token")
    );

    // A small one passes: nothing more to add, the headers are upstream.
    let mut x = refund(&[]);
    let _ = x.ahead(&e, NOW, SERVICE);
    x.set_body(Some(br#"{"amount": 50, "currency": "EUR"}"#), 1024)
        .expect("small");
    assert_eq!(
        x.step(&x.decide(&e, NOW), SERVICE),
        Step::Forward {
            remove: vec![],
            add: vec![]
        }
    );

    // A token that fails is answered before any header goes upstream.
    let mut x = Exchange::new(headers(
        "POST",
        "/payments/pay_1/refund",
        &[
            ("authorization", "Bearer not-a-jwt"),
            ("content-type", "application/json"),
        ],
    ))
    .expect("readable");
    let (status, body) = respond(x.ahead(&e, NOW, SERVICE));
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("token-malformed"))
    );
    assert!(!x.went_ahead());

    // Without its body the refund is refused, never guessed.
    let x = Exchange::new(headers(
        "POST",
        "/payments/pay_1/refund",
        &[("authorization", &bearer)],
    ))
    .expect("readable");
    assert!(!x.wants_body(&e, true));
    let (status, body) = respond(x.step(&x.decide(&e, NOW), SERVICE));
    assert_eq!(
        (status, body["error_description"].as_str()),
        (
            400,
            Some("the route reads parameters from a JSON body, and the request has none")
        )
    );
}

#[test]
fn only_json_bodies_are_read_and_never_past_the_limit() {
    let e = engine();
    let refund = "/payments/pay_1/refund";
    let with =
        |t: &str| Exchange::new(headers("POST", refund, &[("content-type", t)])).expect("readable");
    assert!(!with("application/x-www-form-urlencoded").wants_body(&e, false));
    assert!(with("application/json; charset=utf-8").wants_body(&e, false));
    let untyped = Exchange::new(headers("POST", refund, &[])).expect("readable");
    assert!(untyped.wants_body(&e, false));
    let mut json = with("application/merge-patch+json");
    assert!(json.wants_body(&e, false));
    assert_eq!(
        json.set_body(Some(b"{\"amount\": 5000000}"), 10),
        Err("the request body is larger than 10 bytes".to_owned())
    );
    assert_eq!(
        json.set_body(Some(&[0xff, 0xfe]), 10),
        Err("the request body is not UTF-8".to_owned())
    );
}

#[test]
fn a_request_the_proxy_cannot_describe_is_refused() {
    let no_method = vec![(":path".to_owned(), b"/".to_vec())];
    assert_eq!(
        Exchange::new(no_method).err(),
        Some("the proxy gave no `:method`".to_owned())
    );
    let no_path = vec![(":method".to_owned(), b"GET".to_vec())];
    assert_eq!(
        Exchange::new(no_path).err(),
        Some("the proxy gave no `:path`".to_owned())
    );
    let binary = vec![
        (":method".to_owned(), b"GET".to_vec()),
        (":path".to_owned(), b"/".to_vec()),
        ("x-bin".to_owned(), vec![0xff]),
    ];
    assert_eq!(
        Exchange::new(binary).err(),
        Some("header `x-bin` is not UTF-8".to_owned())
    );
}

/// A write the user confirmed opens a window: only the service knows of
/// it, so the filter asks with the whole request.
#[test]
fn a_window_grant_is_asked_of_the_service_with_the_whole_request() {
    let e = engine();
    let bearer = format!("Bearer {}", token("alice", "files:write"));
    let mut x = Exchange::new(headers(
        "PUT",
        "/users/alice/files/f1/content?v=2",
        &[
            ("authorization", &bearer),
            ("content-type", "application/json"),
        ],
    ))
    .expect("readable");
    x.set_body(Some(b"{\"text\": \"hi\"}"), 1024)
        .expect("small");
    let Step::Ask(json) = x.step(&x.decide(&e, NOW), SERVICE) else {
        panic!("expected to ask the service");
    };
    assert_eq!(
        serde_json::from_str::<Value>(&json).expect("JSON"),
        json!({
            "method": "PUT", "path": "/users/alice/files/f1/content", "query": "v=2",
            "headers": [["authorization", bearer], ["content-type", "application/json"]],
            "params": {"text": "hi"},
        })
    );
}

#[test]
fn the_services_answer_decides_and_anything_else_fails_closed() {
    let x = Exchange::new(headers(
        "GET",
        "/payments/pay_1",
        &[("x-greenlight-action", "x")],
    ))
    .expect("readable");
    let unavailable = |step: Step| {
        let (status, body) = respond(step);
        assert_eq!(
            (status, body["code"].as_str()),
            (503, Some("engine-unavailable"))
        );
        body["error_description"]
            .as_str()
            .expect("message")
            .to_owned()
    };
    assert_eq!(
        unavailable(x.answered(None, None, "h", SERVICE)),
        "the approval service cannot be reached"
    );
    assert_eq!(
        unavailable(x.answered(Some(500), Some(b"{}"), "h", SERVICE)),
        "the approval service answered 500"
    );
    assert_eq!(
        unavailable(x.answered(Some(200), Some(b"<html>"), "h", SERVICE)),
        "the approval service did not answer with a decision"
    );
    // The service's own allow, as /v1/check shows it (with `ask` and the
    // deciding component's hash beside).
    let bearer = format!("Bearer {}", token("alice", "payments:read"));
    let read = Exchange::new(headers(
        "GET",
        "/payments/pay_1",
        &[("authorization", &bearer)],
    ))
    .expect("readable");
    let mut allow = serde_json::to_value(read.decide(&engine(), NOW)).expect("JSON");
    allow["ask"] = json!({"ignored": true});
    allow["component_hash"] = json!("0f".repeat(32));
    let step = x.answered(Some(200), Some(allow.to_string().as_bytes()), "h", SERVICE);
    match step {
        Step::Forward { remove, add } => {
            assert_eq!(remove, vec!["x-greenlight-action".to_owned()]);
            assert_eq!(
                add,
                vec![
                    ("x-greenlight-subject".to_owned(), "alice".to_owned()),
                    (
                        "x-greenlight-issuer".to_owned(),
                        "https://idp.example.com".to_owned()
                    ),
                    ("x-greenlight-action".to_owned(), "payment.read".to_owned()),
                ]
            );
        }
        Step::Respond(r) => panic!("the allow did not parse: {}", r.body),
        other => panic!("{other:?}"),
    }
    let replayed = json!({
        "verdict": {"kind": "deny", "code": "action-token-replayed", "message": "action token `t` was already used"},
        "reasons": [], "policy_hash": "h",
    });
    let (status, body) = respond(x.answered(
        Some(200),
        Some(replayed.to_string().as_bytes()),
        "h",
        SERVICE,
    ));
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("action-token-replayed"))
    );
}

#[test]
fn a_development_bundle_needs_saying_so() {
    let info = engine().describe();
    assert!(info.development);
    let base =
        "[service]\ncluster = \"gl\"\nauthority = \"a\"\nurl = \"http://a\"\n[bundle]\nx = \"y\"\n";
    let refused = greenlight_proxy_wasm::config::Config::parse(base).expect("valid");
    assert_eq!(
        refused.admits(&info),
        Err("the bundle has a `[dev]` signing key: anyone holding it mints tokens the bundle accepts. \
             Set `development = true` to run it anyway, or remove `[dev]`"
            .to_owned())
    );
    let admitted =
        greenlight_proxy_wasm::config::Config::parse(&format!("development = true\n{base}"))
            .expect("valid");
    assert_eq!(admitted.admits(&info), Ok(()));
}

#[test]
fn a_fixed_clock_is_for_development_only() {
    let info = engine().describe();
    let base =
        "[service]\ncluster = \"gl\"\nauthority = \"a\"\nurl = \"http://a\"\n[bundle]\nx = \"y\"\n";
    let fixed =
        greenlight_proxy_wasm::config::Config::parse(&format!("test_fixed_now = 1\n{base}"))
            .expect("valid");
    assert_eq!(
        fixed.admits(&info),
        Err(
            "`test_fixed_now` stops every token from expiring: it is for the conformance tests, \
             with `development = true`"
                .to_owned()
        )
    );
}
