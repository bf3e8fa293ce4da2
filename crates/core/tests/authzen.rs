//! AuthZEN-shaped requests decide as the HTTP route for the same action
//! does, taking resource attributes from the route when none are given.

use std::path::Path;

use greenlight_core::{AccessRequest, Engine, Verdict};

fn demo() -> Engine {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/bundle");
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
    Engine::load(&files).expect("demo bundle")
}

fn vector(name: &str) -> serde_json::Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).expect("vector")).expect("json")
}

/// The file-write route maps `owner` to a resource attribute; the AuthZEN
/// shape with the same params gets the same challenge as the HTTP request.
#[test]
fn authzen_request_takes_resource_attributes_from_the_route() {
    let v = vector("013-demo-file-write-needs-user-confirmation.json");
    let header = v["request"]["http"]["headers"][0][1]
        .as_str()
        .expect("header");
    let token = header.strip_prefix("Bearer ").expect("bearer").to_owned();
    let now = v["now"].as_u64().expect("now");
    let d = demo().evaluate(
        &AccessRequest {
            token,
            action: "file.write".into(),
            resource_type: "File".into(),
            resource_id: "report.txt".into(),
            resource_properties: None,
            context: Some(r#"{"owner":"alice"}"#.into()),
            entities: None,
        },
        now,
    );
    let expected: greenlight_core::Decision =
        serde_json::from_value(v["expect"].clone()).expect("decision");
    assert_eq!(d, expected);
    assert!(matches!(d.verdict, Verdict::ApprovalRequired(_)));
}
