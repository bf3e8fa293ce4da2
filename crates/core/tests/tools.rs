//! `[[tools]]`: an MCP tool call is decided as the request `{method:
//! "tools/call", path: "/TOOL", params: ARGUMENTS}` by the tool's mapping,
//! exactly as the HTTP route for the same action is: the same action, the
//! same digest, the same verdict. No HTTP request reaches a tool's mapping
//! and no tool call reaches an HTTP route, and a bad mapping is refused at
//! load with where it is.

use std::path::Path;

use greenlight_core::{Engine, HttpRequest, LoadError, Problem, ProblemKind, Verdict};
use serde_json::{Value, json};

/// The demo bundle's files, `greenlight.toml` with `extra` appended.
fn demo_with(extra: &str) -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle");
    [
        "greenlight.toml",
        "policy.cedar",
        "schema.cedarschema",
        "idp.jwks.json",
    ]
    .iter()
    .map(|n| {
        let mut text = std::fs::read_to_string(dir.join(n)).expect("bundle file");
        if *n == "greenlight.toml" {
            text.push_str(extra);
        }
        ((*n).to_owned(), text)
    })
    .collect()
}

const TOOLS: &str = r#"
[[tools]]
name = "refund_payment"
action = "payment.refund"
resource = { type = "Payment", id = "{payment_id}" }
params.amount = { from = "arguments.amount", type = "long" }
params.currency = { from = "arguments.money.currency", type = "string" }
"#;

fn engine() -> Engine {
    Engine::load(&demo_with(TOOLS)).expect("the bundle with tools loads")
}

fn vector(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).expect("vector")).expect("json")
}

/// The vector's bearer token and time.
fn token_of(v: &Value) -> (String, u64) {
    let header = v["request"]["http"]["headers"][0][1]
        .as_str()
        .expect("header");
    (
        header.strip_prefix("Bearer ").expect("bearer").to_owned(),
        v["now"].as_u64().expect("now"),
    )
}

fn call(method: &str, tool: &str, token: &str, arguments: &Value) -> HttpRequest {
    HttpRequest {
        method: method.to_owned(),
        path: format!("/{tool}"),
        query: String::new(),
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        params: Some(arguments.to_string()),
        entities: None,
    }
}

fn refund(amount: Value) -> Value {
    json!({ "payment_id": "pay_123", "amount": amount, "money": { "currency": "EUR" } })
}

/// A refund of 500 called as a tool is decided as the HTTP refund of 500
/// is (approval required, by the same policy), but its approval is bound
/// to every argument the tool would run with: an undeclared one changes
/// the digest. A refund of 50 is allowed.
#[test]
fn a_tool_call_decides_as_the_route_and_binds_every_argument() {
    let e = engine();
    let v = vector("002-demo-refund-500-needs-finance.json");
    let (token, now) = token_of(&v);
    let d = e.evaluate_http(
        &call("tools/call", "refund_payment", &token, &refund(json!(500))),
        now,
    );
    let expected: greenlight_core::Decision =
        serde_json::from_value(v["expect"].clone()).expect("decision");
    let (Verdict::ApprovalRequired(ch), Verdict::ApprovalRequired(http)) =
        (&d.verdict, &expected.verdict)
    else {
        panic!("approval required: {d:?}");
    };
    assert_eq!(d.reasons, expected.reasons);
    assert_eq!(
        (&ch.obligation, &ch.requester),
        (&http.obligation, &http.requester)
    );
    assert_eq!(
        (ch.action.name.as_str(), ch.action.resource_id.as_str()),
        ("payment.refund", "pay_123")
    );
    assert_eq!(
        serde_json::Value::Object(ch.action.params.clone()),
        json!({
            "@arguments": { "payment_id": "pay_123", "amount": 500, "money": { "currency": "EUR" } },
            "@tool": "refund_payment",
            "amount": 500,
            "currency": "EUR",
        })
    );
    assert_ne!(ch.action.digest, http.action.digest);
    let mut more = refund(json!(500));
    more["destination"] = json!("acct_evil");
    let d2 = e.evaluate_http(&call("tools/call", "refund_payment", &token, &more), now);
    let Verdict::ApprovalRequired(ch2) = &d2.verdict else {
        panic!("approval required: {d2:?}");
    };
    assert_ne!(
        ch2.action.digest, ch.action.digest,
        "an undeclared argument is bound too"
    );
    let again = e.evaluate_http(
        &call("tools/call", "refund_payment", &token, &refund(json!(500))),
        now,
    );
    let Verdict::ApprovalRequired(ch3) = &again.verdict else {
        panic!("approval required: {again:?}");
    };
    assert_eq!(
        ch3.action.digest, ch.action.digest,
        "the same call, the same digest"
    );

    let v = vector("001-demo-refund-50-allowed.json");
    let (token, now) = token_of(&v);
    let d = e.evaluate_http(
        &call("tools/call", "refund_payment", &token, &refund(json!(50))),
        now,
    );
    assert!(matches!(d.verdict, Verdict::Allow(_)), "{d:?}");
    assert_eq!(d.reasons, vec!["refund-small".to_owned()]);
}

/// Arguments are read as typed as a JSON body is; the resource id needs
/// its parameter; a tool without a mapping, or a tool's name as an HTTP
/// path, reaches nothing.
#[test]
fn arguments_are_typed_and_only_tool_calls_reach_tools() {
    let e = engine();
    let v = vector("002-demo-refund-500-needs-finance.json");
    let (token, now) = token_of(&v);
    let denial = |req: &HttpRequest| match e.evaluate_http(req, now).verdict {
        Verdict::Deny(d) => (d.code.to_string(), d.message),
        other => panic!("a denial: {other:?}"),
    };
    assert_eq!(
        denial(&call(
            "tools/call",
            "refund_payment",
            &token,
            &refund(json!("500"))
        )),
        (
            "request-invalid".to_owned(),
            "parameter `amount` must be an integer, got `\"500\"`".to_owned()
        )
    );
    let mut no_currency = refund(json!(500));
    no_currency["money"] = json!({});
    assert_eq!(
        denial(&call("tools/call", "refund_payment", &token, &no_currency)),
        (
            "request-invalid".to_owned(),
            "parameter `currency` is required".to_owned()
        )
    );
    let mut empty_id = refund(json!(500));
    empty_id["payment_id"] = json!("");
    assert_eq!(
        denial(&call("tools/call", "refund_payment", &token, &empty_id)),
        (
            "request-invalid".to_owned(),
            "argument `payment_id` must be a non-empty string or an integer: the resource id is made of it".to_owned()
        )
    );
    let mut no_id = refund(json!(500));
    no_id.as_object_mut().expect("object").remove("payment_id");
    assert_eq!(
        denial(&call("tools/call", "refund_payment", &token, &no_id)).1,
        "argument `payment_id` must be a non-empty string or an integer: the resource id is made of it"
    );
    let joined = Engine::load(&demo_with(
        r#"
[[tools]]
name = "refund_payment"
action = "payment.refund"
resource = { type = "Payment", id = "{payment_id}-{amount}" }
params.amount = { from = "arguments.amount", type = "long" }
params.currency = { from = "arguments.money.currency", type = "string" }
"#,
    ))
    .expect("loads");
    let mut dashed = refund(json!(500));
    dashed["payment_id"] = json!("a-b");
    // A hyphen is fine where it joins nothing.
    let mut plain = refund(json!(500));
    plain["payment_id"] = json!("pay-123");
    assert!(matches!(
        e.evaluate_http(&call("tools/call", "refund_payment", &token, &plain), now)
            .verdict,
        Verdict::ApprovalRequired(_)
    ));
    match joined
        .evaluate_http(&call("tools/call", "refund_payment", &token, &dashed), now)
        .verdict
    {
        Verdict::Deny(d) => assert_eq!(
            d.message,
            "argument `payment_id` holds text that joins the parts of the resource id's template `{payment_id}-{amount}`"
        ),
        other => panic!("a denial: {other:?}"),
    }
    assert_eq!(
        denial(&call("tools/call", "delete_everything", &token, &json!({}))),
        (
            "route-not-found".to_owned(),
            "no tool `delete_everything` in the bundle's `[[tools]]`".to_owned()
        )
    );
    assert_eq!(
        denial(&call("POST", "refund_payment", &token, &refund(json!(50)))),
        (
            "route-not-found".to_owned(),
            "no route for `POST /refund_payment`".to_owned()
        )
    );
    // The demo's HTTP refund route is not a tool.
    assert_eq!(
        denial(&call(
            "tools/call",
            "payments/pay_123/refund",
            &token,
            &json!({ "amount": 50, "currency": "EUR" })
        )),
        (
            "route-not-found".to_owned(),
            "no tool `payments/pay_123/refund` in the bundle's `[[tools]]`".to_owned()
        )
    );
}

fn problems(extra: &str) -> Vec<String> {
    match Engine::load(&demo_with(extra)) {
        Err(LoadError::InvalidBundle(p)) => p
            .into_iter()
            .map(
                |Problem {
                     kind,
                     message,
                     line,
                     ..
                 }| {
                    assert_eq!(kind, ProblemKind::InvalidConfig);
                    assert!(line.is_some(), "located: {message}");
                    message
                },
            )
            .collect(),
        Err(other) => panic!("expected InvalidBundle, got {other:?}"),
        Ok(_) => panic!("the bundle loaded"),
    }
}

/// Every problem of a mapping is reported, located at its name.
#[test]
fn a_bad_tool_mapping_is_refused_with_every_problem() {
    assert_eq!(
        problems(
            r#"
[[tools]]
name = "refund/payment"
action = ""
resource = { type = "Pay ment", id = "{payment id}-{flag}" }
params.flag = { from = "arguments.flag", type = "bool" }
params.amount = { from = "body.amount", type = "long" }
params.note = { from = "arguments.note", type = "text" }
params."@arguments" = { from = "arguments.all" }
bind = ["reason"]
"#
        ),
        vec![
            "tool `refund/payment`: tool name `refund/payment` is not 1 to 128 of `A-Z a-z 0-9 _ - .`",
            "tool `refund/payment`: parameter `@arguments` is reserved for the call's tool and whole arguments",
            "tool `refund/payment`: parameter `amount`: `body.amount` should be `arguments.NAME`: a tool's parameters are read from its arguments",
            "tool `refund/payment`: parameter `note`: type `text` is not one of `string`, `long`, `bool`, `list`",
            "tool `refund/payment`: resource id uses `{payment id}`, which is not an argument name",
            "tool `refund/payment`: `bind` names parameter `reason`, which the tool does not define",
            "tool `refund/payment`: resource type `Pay ment` is not a Cedar entity type name",
            "tool `refund/payment`: the action is empty",
        ]
    );
    assert_eq!(
        problems(&format!("{TOOLS}{TOOLS}")),
        vec!["tool `refund_payment`: the tool is mapped twice"]
    );
    assert_eq!(
        problems(
            r#"
[[tools]]
name = ".."
action = "payment.read"
resource = { type = "Payment", id = "p" }
"#
        ),
        vec!["tool `..`: tool name `..` is not 1 to 128 of `A-Z a-z 0-9 _ - .`"]
    );
}
