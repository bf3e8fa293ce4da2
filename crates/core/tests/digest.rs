//! The action digest follows its definition: SHA-256 over the RFC 8785
//! canonical JSON of action, resource and bound parameters, base64url.

use greenlight_core::digest::Action;
use serde_json::json;

/// Cross-checked with Python: `json.dumps(obj, sort_keys=True,
/// separators=(",", ":"))` equals RFC 8785 output for integers and ASCII.
#[test]
fn digest_matches_an_independent_computation() {
    let action = Action {
        action: "payment.refund".into(),
        resource_type: "Payment".into(),
        resource_id: "pay_123".into(),
        params: json!({ "currency": "EUR", "amount": 500 })
            .as_object()
            .cloned()
            .expect("object"),
    };
    assert_eq!(
        action.digest(),
        "37yCphGUEolWZQHCog7QpuCi5VA8GMxvuXmGzRBmyYc"
    );
}

/// Parameter order never changes the digest; any value change does.
#[test]
fn digest_ignores_member_order_and_sees_every_value() {
    let mk = |params: serde_json::Value| Action {
        action: "a".into(),
        resource_type: "T".into(),
        resource_id: "1".into(),
        params: params.as_object().cloned().expect("object"),
    };
    let a = mk(json!({ "x": 1, "y": "z" })).digest();
    assert_eq!(a, mk(json!({ "y": "z", "x": 1 })).digest());
    assert_ne!(a, mk(json!({ "x": 2, "y": "z" })).digest());
    assert_ne!(a, mk(json!({ "x": 1 })).digest());
}
