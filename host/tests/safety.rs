//! The host fails closed and keeps serving: a guest that loops, allocates
//! without bound or traps gets a deny with its own code, and the next call
//! is answered by a fresh instance.

use std::time::Duration;

use greenlight_core::{DenialCode, HttpRequest, Verdict};
use greenlight_host::{Engine, HostError, Limits};

fn hostile() -> greenlight_host::Policy {
    let bytes =
        std::fs::read(greenlight_component::HOSTILE_WASM_PATH).expect("hostile component built");
    let limits = Limits {
        call_budget: Duration::from_millis(50),
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    Engine::with_options(&bytes, limits, None)
        .expect("hostile component compiles")
        .load_bundle(Vec::new())
        .expect("the hostile module accepts any bundle")
}

fn call(policy: &greenlight_host::Policy, path: &str) -> greenlight_core::Decision {
    policy.evaluate_http(
        &HttpRequest {
            method: "GET".into(),
            path: path.into(),
            ..HttpRequest::default()
        },
        0,
    )
}

fn assert_served(policy: &greenlight_host::Policy) {
    let d = call(policy, "/ok");
    match d.verdict {
        Verdict::Allow(a) => assert_eq!(a.principal.subject, "hostile"),
        other => panic!("the host did not serve after a failure: {other:?}"),
    }
}

fn assert_denied(d: &greenlight_core::Decision, code: DenialCode, message: &str) {
    match &d.verdict {
        Verdict::Deny(den) => {
            assert_eq!(den.code, code);
            assert_eq!(den.message, message);
        }
        other => panic!("expected a deny, got {other:?}"),
    }
    assert_eq!(d.policy_hash, "hostile");
    assert!(d.reasons.is_empty());
}

/// An endless loop is stopped by the epoch budget and denied; the next call works.
#[test]
fn a_guest_that_loops_is_denied_for_timeout_and_the_host_keeps_serving() {
    let policy = hostile();
    assert_served(&policy);
    let d = call(&policy, "/loop");
    assert_denied(
        &d,
        DenialCode::EngineTimeout,
        "the policy module ran past its time budget",
    );
    assert_served(&policy);
}

/// Unbounded allocation hits the memory cap and is denied; the next call works.
#[test]
fn a_guest_that_allocates_without_bound_is_denied_for_memory_and_the_host_keeps_serving() {
    let policy = hostile();
    let d = call(&policy, "/alloc");
    assert_denied(
        &d,
        DenialCode::EngineMemoryExceeded,
        "the policy module ran past its memory cap of 16777216 bytes",
    );
    assert_served(&policy);
}

/// A trap is denied with the trap's description; the next call works.
#[test]
fn a_guest_that_traps_is_denied_and_the_host_keeps_serving() {
    let policy = hostile();
    let d = call(&policy, "/trap");
    assert_denied(
        &d,
        DenialCode::EngineTrap,
        "the policy module trapped (wasm trap: wasm `unreachable` instruction executed)",
    );
    assert_served(&policy);
    // Several failures in a row never exhaust the host.
    for _ in 0..3 {
        assert_eq!(
            call(&policy, "/trap").verdict,
            d.verdict,
            "the same failure gives the same deny"
        );
    }
    assert_served(&policy);
}

/// Bytes that are not a component are refused with a reason, not a panic.
#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let err = Engine::with_options(b"\0asm\x01\0\0\0", Limits::default(), None)
        .expect_err("a core module is not a component");
    match err {
        HostError::Component(msg) => assert_eq!(
            msg,
            "failed to parse WebAssembly module: attempted to parse a wasm module with a component parser"
        ),
        other => panic!("expected HostError::Component, got {other:?}"),
    }
}

/// A module that answers a deny with a pass-through (the hostile one does,
/// for every decision) cannot let the request through: the host answers
/// `503` with `engine-invalid-output`. Its pass-through for an allow is
/// accepted, since that is the right answer.
#[test]
fn a_module_that_answers_a_deny_with_a_pass_through_gets_a_503() {
    let policy = hostile();
    let denied = call(&policy, "/trap");
    let answer = policy.respond(&denied, "https://gl.example");
    assert_eq!(answer.status, 503);
    assert_eq!(
        answer.body,
        serde_json::json!({
            "error": "temporarily_unavailable",
            "error_description": "the policy module answered wrongly: status 0 with no body does not answer a deny `engine-trap`",
            "code": "engine-invalid-output",
        })
    );
    assert_eq!(
        answer.headers,
        vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ]
    );
    let allowed = call(&policy, "/ok");
    let pass = policy.respond(&allowed, "https://gl.example");
    assert_eq!(
        (pass.status, pass.headers.len(), pass.body),
        (0, 0, serde_json::Value::Null)
    );
}

/// `decide-json` fails closed the same way (a runaway allocation is the
/// same call machinery as above, whose cap that test shows under a budget
/// a loaded machine keeps), and an answer the Rust
/// host's reading refuses (not JSON, another shape, nested past serde's
/// limit, `NaN`, a number beyond a double, a lone surrogate, params over
/// 64 KiB, a member named twice) is a deny, never a decision.
#[test]
fn a_json_call_fails_closed_on_every_misbehaviour_and_the_host_keeps_serving() {
    let policy = hostile();
    let json = |path: &str| {
        policy.decide_json(
            &format!(r#"{{"http":{{"method":"GET","path":"{path}"}}}}"#),
            0,
        )
    };
    let ok = json("/ok");
    // The typed call's allow, with the call's kind the module saw.
    assert_eq!(ok.verdict, call(&policy, "/ok").verdict);
    assert_eq!(ok.reasons, ["http"]);
    let malformed = "the policy module returned a malformed decision: ";
    let cases = [
        (
            "/loop",
            DenialCode::EngineTimeout,
            "the policy module ran past its time budget".to_owned(),
        ),
        (
            "/trap",
            DenialCode::EngineTrap,
            "the policy module trapped (wasm trap: wasm `unreachable` instruction executed)"
                .to_owned(),
        ),
        (
            "/not-json",
            DenialCode::EngineInvalidOutput,
            format!("{malformed}not a decision as JSON: expected value at line 1 column 1"),
        ),
        (
            "/not-a-decision",
            DenialCode::EngineInvalidOutput,
            format!(
                "{malformed}not a decision as JSON: missing field `principal` at line 1 column 27"
            ),
        ),
        (
            "/deep",
            DenialCode::EngineInvalidOutput,
            format!(
                "{malformed}not a decision as JSON: recursion limit exceeded at line 1 column 378"
            ),
        ),
        (
            "/nan",
            DenialCode::EngineInvalidOutput,
            format!("{malformed}not a decision as JSON: expected value at line 1 column 260"),
        ),
        (
            "/huge-number",
            DenialCode::EngineInvalidOutput,
            format!("{malformed}not a decision as JSON: number out of range at line 1 column 264"),
        ),
        (
            "/surrogate",
            DenialCode::EngineInvalidOutput,
            format!(
                "{malformed}not a decision as JSON: unexpected end of hex escape at line 1 column 265"
            ),
        ),
        (
            "/big-params",
            DenialCode::EngineInvalidOutput,
            format!("{malformed}the action's params has 70010 bytes"),
        ),
        (
            "/twice",
            DenialCode::EngineInvalidOutput,
            format!(
                "{malformed}not a decision as JSON: duplicate field `verdict` at line 1 column 77"
            ),
        ),
        // Refused before it is parsed: no host reads more than 1 MiB.
        (
            "/huge-decision",
            DenialCode::EngineInvalidOutput,
            format!("{malformed}the decision is longer than 1048576 bytes"),
        ),
        // serde quotes the unknown member in full; the reason is cut at
        // 64 KiB, between two of its four-byte characters.
        ("/long-name", DenialCode::EngineInvalidOutput, {
            let start = format!("{malformed}not a decision as JSON: unknown field `");
            let fits = (64 * 1024 - start.len()) / 4;
            format!("{start}{}", "\u{1F600}".repeat(fits))
        }),
    ];
    for (path, code, message) in cases {
        assert_denied(&json(path), code, &message);
        assert_eq!(json("/ok"), ok, "served again after {path}");
    }
}
