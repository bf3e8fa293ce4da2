//! RFC 8785 canonicalisation, as the action digest uses it.
//!
//! Input: arbitrary bytes; those that serde_json reads as JSON are
//! canonicalised with `serde_json_canonicalizer` (what
//! `greenlight_types::Action` hashes) and, when the value is an object,
//! made the parameters of an [`Action`].
//!
//! Invariants (each from RFC 8785 or from `Action`'s documentation):
//! - canonicalising a value serde_json read never fails (`Action` relies on
//!   it: a failure would give an empty canonical text and a digest no token
//!   carries);
//! - the canonical text is JSON that reads back to the same value, numbers
//!   compared as the IEEE doubles RFC 8785 writes, and integers within
//!   ±2^53 kept exactly as integers;
//! - every object of the canonical text lists its members sorted by UTF-16
//!   code units, each name once;
//! - canonicalising the canonical text again gives the same bytes;
//! - for an object: `Action::new` keeps its parameters in canonical order,
//!   `params_json` is exactly the canonical text, the digest matches and
//!   is SHA-256 over the canonicalizer's text of the whole action (both
//!   are written directly where they can be),
//!   reversing the members' order at every depth gives the same action and
//!   digest, and rebuilding the action from `params_json` does too.

#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use greenlight_fuzz::{Raw, members_sorted};
use greenlight_types::Action;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

const EXACT: u64 = (1 << 53) - 1;

/// `a` and `b` are the same JSON value as RFC 8785 sees it.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let exact_int = x.as_i64().map(i64::unsigned_abs).or(x.as_u64());
            match exact_int {
                Some(n) if n <= EXACT => {
                    // Written in integer form, read back as the same integer.
                    x.as_i64() == y.as_i64() && x.as_u64() == y.as_u64()
                }
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// `value` with every object's members in reverse order.
fn reversed(value: &Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.iter().map(reversed).collect()),
        Value::Object(m) => Value::Object(
            m.iter()
                .rev()
                .map(|(k, v)| (k.clone(), reversed(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        other => panic!("expected an object, got {other}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let canon =
        serde_json_canonicalizer::to_vec(&value).expect("a value serde_json read canonicalises");
    let text = std::str::from_utf8(&canon).expect("canonical JSON is UTF-8");

    let back: Value = serde_json::from_str(text).expect("canonical JSON reads back");
    assert!(
        same(&value, &back),
        "canonical JSON reads back as another value: {text}"
    );
    // Member order and uniqueness as written, not as a map would keep them.
    let raw = Raw::parse(&canon).expect("canonical JSON reads back");
    assert!(
        raw.duplicates().is_empty(),
        "canonical JSON names a member twice: {text}"
    );
    assert!(
        members_sorted(&back),
        "canonical JSON members are not in UTF-16 order: {text}"
    );
    let again = serde_json_canonicalizer::to_vec(&back).expect("canonical JSON canonicalises");
    assert_eq!(
        canon,
        again,
        "canonicalising is not idempotent: {text} became {}",
        String::from_utf8_lossy(&again)
    );

    let Value::Object(params) = value else {
        return;
    };
    let action = Action::new("fuzz.act", "Thing", "t-1", params.clone());
    assert!(
        members_sorted(&Value::Object(action.params.clone())),
        "action parameters are not in canonical order"
    );
    assert_eq!(
        action.params_json(),
        text,
        "params_json is not the canonical text"
    );
    assert!(
        action.digest_matches(),
        "a fresh action's digest does not match"
    );
    // The digest is written directly where it can be: it must be the
    // canonicalizer's, byte for byte.
    let by_canonicalizer = serde_json_canonicalizer::to_vec(&action.canonical_value())
        .expect("an action canonicalises");
    assert_eq!(
        action.digest,
        URL_SAFE_NO_PAD.encode(Sha256::digest(&by_canonicalizer)),
        "the digest is not SHA-256 over the canonicalizer's text: {}",
        String::from_utf8_lossy(&by_canonicalizer)
    );
    let shuffled = Action::new(
        "fuzz.act",
        "Thing",
        "t-1",
        object(reversed(&Value::Object(params))),
    );
    assert_eq!(action, shuffled, "member order changed the action");
    let rebuilt = Action::new("fuzz.act", "Thing", "t-1", object(back));
    assert_eq!(
        rebuilt.digest, action.digest,
        "the action rebuilt from its canonical parameters has another digest"
    );
});
