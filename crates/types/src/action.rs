//! One concrete action, its digest and its RFC 9396 `authorization_details`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The `type` of Greenlight's RFC 9396 authorization details.
pub const AUTHORIZATION_DETAILS_TYPE: &str = "urn:greenlight:action";

/// One concrete action: what is done, to what, with which bound parameters,
/// and the digest that names exactly this action (the WIT `action`).
///
/// Build one with [`Action::new`], which puts the parameters in RFC 8785
/// order and computes the digest, so two equal actions are equal values
/// whatever order their parameters arrived in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Action {
    /// The action id, e.g. `payment.refund`.
    pub name: String,
    /// The resource's entity type, e.g. `Payment`.
    pub resource_type: String,
    /// The resource's id, e.g. `pay_123`.
    pub resource_id: String,
    /// The bound parameters, in RFC 8785 member order.
    pub params: Map<String, Value>,
    /// base64url (no padding) SHA-256 over the RFC 8785 canonical JSON of
    /// [`Action::canonical_value`].
    pub digest: String,
}

/// The largest integer every host represents exactly (2^53 - 1): RFC 8785
/// writes numbers as IEEE doubles, so a larger one would be rounded in the
/// digest while the policy saw it exact, and two different values could
/// share one approval.
pub const MAX_EXACT_INTEGER: u64 = (1 << 53) - 1;

/// Refuses parameters an action cannot be bound to exactly: an integer
/// beyond ±(2^53 - 1), at any depth. The error names the parameter.
pub fn check_exact(params: &Map<String, Value>) -> Result<(), String> {
    fn walk(path: &str, v: &Value) -> Result<(), String> {
        match v {
            Value::Number(n) => {
                let exact = n
                    .as_u64()
                    .map(|u| u <= MAX_EXACT_INTEGER)
                    .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= MAX_EXACT_INTEGER))
                    .unwrap_or(true);
                if exact {
                    Ok(())
                } else {
                    Err(format!(
                        "parameter `{path}` is `{n}`, beyond ±2^53: an approval cannot be bound to it exactly"
                    ))
                }
            }
            Value::Array(items) => items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| walk(&format!("{path}[{i}]"), item)),
            Value::Object(m) => m
                .iter()
                .try_for_each(|(k, item)| walk(&format!("{path}.{k}"), item)),
            _ => Ok(()),
        }
    }
    params.iter().try_for_each(|(k, v)| walk(k, v))
}

/// RFC 8785 canonical bytes of a value. Canonicalising a value parsed from
/// or built as JSON cannot fail (serde_json has no NaN or infinity); an
/// empty result would give a digest no token carries.
fn canonical(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    if write_canonical(value, &mut out) {
        out
    } else {
        serde_json_canonicalizer::to_vec(value).unwrap_or_default()
    }
}

/// Whether RFC 8785 writes this number as serde_json does: an integer
/// within ±(2^53 - 1), which an IEEE double holds exactly and ECMAScript
/// prints as its digits. Others (fractions, exponents, larger integers)
/// are left to the canonicalizer.
fn plain_integer(n: &serde_json::Number) -> bool {
    n.as_u64().is_some_and(|u| u <= MAX_EXACT_INTEGER)
        || n.as_i64()
            .is_some_and(|i| i.unsigned_abs() <= MAX_EXACT_INTEGER)
}

/// Writes `value` as RFC 8785 canonical JSON, the common case directly:
/// members in UTF-16 code unit order, strings as serde_json escapes them
/// (exactly the escapes RFC 8785 prescribes), integers as digits. `false`
/// (with `out` half written) at a number only the canonicalizer writes.
fn write_canonical(value: &Value, out: &mut Vec<u8>) -> bool {
    match value {
        Value::Object(m) => write_object(m, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if !write_canonical(v, out) {
                    return false;
                }
            }
            out.push(b']');
            true
        }
        Value::Number(n) if !plain_integer(n) => false,
        other => serde_json::to_writer(out, other).is_ok(),
    }
}

/// [`write_canonical`] for an object.
fn write_object(m: &Map<String, Value>, out: &mut Vec<u8>) -> bool {
    let mut members: Vec<(&String, &Value)> = m.iter().collect();
    members.sort_by(|a, b| utf16_order(a.0, b.0));
    out.push(b'{');
    for (i, (k, v)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        if serde_json::to_writer(&mut *out, k).is_err() {
            return false;
        }
        out.push(b':');
        if !write_canonical(v, out) {
            return false;
        }
    }
    out.push(b'}');
    true
}

/// RFC 8785's member order: by UTF-16 code units, which differs from
/// UTF-8 byte order only where a character beyond U+FFFF meets one in
/// U+E000–U+FFFF.
fn utf16_order(a: &str, b: &str) -> std::cmp::Ordering {
    if a.is_ascii() && b.is_ascii() {
        return a.cmp(b);
    }
    a.encode_utf16().cmp(b.encode_utf16())
}

/// Whether every number in `value` is a [`plain_integer`].
fn only_plain_numbers(value: &Value) -> bool {
    match value {
        Value::Number(n) => plain_integer(n),
        Value::Array(items) => items.iter().all(only_plain_numbers),
        Value::Object(m) => m.values().all(only_plain_numbers),
        _ => true,
    }
}

/// `m` with every object's members, at any depth, in RFC 8785 order.
fn sorted(m: Map<String, Value>) -> Map<String, Value> {
    fn value(v: Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(sorted(m)),
            Value::Array(items) => Value::Array(items.into_iter().map(value).collect()),
            other => other,
        }
    }
    let mut members: Vec<(String, Value)> = m.into_iter().collect();
    members.sort_by(|a, b| utf16_order(&a.0, &b.0));
    members.into_iter().map(|(k, v)| (k, value(v))).collect()
}

/// `params` with every object's members in RFC 8785 order (by UTF-16 code
/// units), so the decision JSON lists them as the digest sees them; a
/// number the canonicalizer writes otherwise than serde_json (`1.0` is
/// `1`) is read back as it wrote it.
fn canonical_order(params: Map<String, Value>) -> Map<String, Value> {
    if params.values().all(only_plain_numbers) {
        return sorted(params);
    }
    let value = Value::Object(params);
    match serde_json::from_slice(&canonical(&value)) {
        Ok(Value::Object(m)) => m,
        // Unreachable: the canonical form of an object is an object.
        _ => match value {
            Value::Object(m) => m,
            _ => Map::new(),
        },
    }
}

impl Action {
    /// The action with its parameters in canonical order and its digest.
    pub fn new(
        name: impl Into<String>,
        resource_type: impl Into<String>,
        resource_id: impl Into<String>,
        params: Map<String, Value>,
    ) -> Self {
        let mut action = Self {
            name: name.into(),
            resource_type: resource_type.into(),
            resource_id: resource_id.into(),
            params: canonical_order(params),
            digest: String::new(),
        };
        action.digest = URL_SAFE_NO_PAD.encode(Sha256::digest(action.canonical_bytes()));
        action
    }

    /// The RFC 8785 bytes of [`Action::canonical_value`], written directly
    /// (its members' order is fixed: `action`, `params`, `resource` with
    /// `id`, `type`) where the parameters allow.
    fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(b"{\"action\":");
        let written = serde_json::to_writer(&mut out, &self.name).is_ok()
            && {
                out.extend_from_slice(b",\"params\":");
                write_object(&self.params, &mut out)
            }
            && {
                out.extend_from_slice(b",\"resource\":{\"id\":");
                serde_json::to_writer(&mut out, &self.resource_id).is_ok()
            }
            && {
                out.extend_from_slice(b",\"type\":");
                serde_json::to_writer(&mut out, &self.resource_type).is_ok()
            };
        if !written {
            return canonical(&self.canonical_value());
        }
        out.extend_from_slice(b"}}");
        out
    }

    /// The canonical object the digest is taken over:
    /// `{"action", "resource": {"type", "id"}, "params"}`.
    pub fn canonical_value(&self) -> Value {
        json!({
            "action": self.name,
            "resource": { "type": self.resource_type, "id": self.resource_id },
            "params": self.params,
        })
    }

    /// The parameters as RFC 8785 canonical JSON text (the WIT `params`).
    pub fn params_json(&self) -> String {
        let mut out = Vec::with_capacity(64);
        let bytes = if write_object(&self.params, &mut out) {
            out
        } else {
            canonical(&Value::Object(self.params.clone()))
        };
        String::from_utf8(bytes).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Whether `digest` is the digest of this action's name, resource and
    /// parameters: a check on an action read from outside.
    pub fn digest_matches(&self) -> bool {
        Self::new(
            &self.name,
            &self.resource_type,
            &self.resource_id,
            self.params.clone(),
        )
        .digest
            == self.digest
    }

    /// RFC 9396 `authorization_details` naming exactly this action, to be
    /// used at `location` (the API's audience).
    pub fn authorization_details(&self, location: &str) -> Value {
        json!([{
            "type": AUTHORIZATION_DETAILS_TYPE,
            "locations": [location],
            "actions": [self.name],
            "identifier": format!("{}::{}", self.resource_type, self.resource_id),
            "resource": { "type": self.resource_type, "id": self.resource_id },
            "params": self.params,
            "action_digest": self.digest,
        }])
    }
}

impl std::fmt::Display for Action {
    /// `` `payment.refund` on `Payment::pay_123` ``, for messages.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` on `{}::{}`",
            self.name, self.resource_type, self.resource_id
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    /// The digest of the demo's refund of 500, computed independently
    /// (Python: `base64url(sha256(json.dumps(obj, sort_keys=True,
    /// separators=(",", ":"))))`).
    #[test]
    fn the_digest_is_sha256_over_the_canonical_action() {
        let a = Action::new(
            "payment.refund",
            "Payment",
            "pay_123",
            params(json!({"currency": "EUR", "amount": 500})),
        );
        assert_eq!(a.digest, "37yCphGUEolWZQHCog7QpuCi5VA8GMxvuXmGzRBmyYc");
        assert!(a.digest_matches());
    }

    #[test]
    fn parameters_are_kept_in_canonical_order_at_every_depth() {
        let a = Action::new(
            "a",
            "T",
            "1",
            params(json!({"b": 1, "a": {"z": true, "y": [{"d": 1, "c": 2}]}})),
        );
        assert_eq!(
            serde_json::to_string(&a.params).expect("json"),
            r#"{"a":{"y":[{"c":2,"d":1}],"z":true},"b":1}"#
        );
        assert_eq!(
            a.params_json(),
            r#"{"a":{"y":[{"c":2,"d":1}],"z":true},"b":1}"#
        );
    }

    #[test]
    fn integers_beyond_two_to_the_53_are_refused_at_any_depth() {
        assert_eq!(
            check_exact(&params(
                json!({"n": 9_007_199_254_740_991_u64, "m": -9_007_199_254_740_991_i64, "f": 1e300})
            )),
            Ok(())
        );
        assert_eq!(
            check_exact(&params(json!({"amount": 9_007_199_254_740_993_u64}))),
            Err("parameter `amount` is `9007199254740993`, beyond ±2^53: an approval cannot be bound to it exactly".to_owned())
        );
        assert_eq!(
            check_exact(&params(json!({"a": {"b": [1, -9_007_199_254_740_992_i64]}}))),
            Err("parameter `a.b[1]` is `-9007199254740992`, beyond ±2^53: an approval cannot be bound to it exactly".to_owned())
        );
        // The reason: both would share one digest.
        let a = Action::new(
            "a",
            "T",
            "1",
            params(json!({"n": 9_007_199_254_740_993_u64})),
        );
        let b = Action::new(
            "a",
            "T",
            "1",
            params(json!({"n": 9_007_199_254_740_992_u64})),
        );
        assert_eq!(a.digest, b.digest);
    }

    /// Values where a hand-written canonical form could go wrong: escapes,
    /// characters beyond U+FFFF against U+E000–U+FFFF in member order,
    /// numbers at and beyond 2^53, fractions and exponents, nesting.
    fn tricky() -> Vec<Value> {
        vec![
            json!({"b": 1, "a": 2, "": 3, "aa": 4, "A": 5}),
            json!({"\u{e000}": 1, "\u{1f600}": 2, "\u{ffff}": 3, "\u{10000}": 4, "z": 5}),
            json!({"s": "quote \" backslash \\ slash / nl \n tab \t cr \r bs \u{8} ff \u{c} nul \u{0} us \u{1f} del \u{7f} é \u{2028} \u{1f600}"}),
            json!({"n": [0, -0, 1, -1, 9_007_199_254_740_991_u64, -9_007_199_254_740_991_i64]}),
            json!({"big": 9_007_199_254_740_993_u64, "neg": -9_007_199_254_740_993_i64, "max": u64::MAX}),
            json!({"f": [1.0, -0.0, 0.5, 1e21, 1e-7, 123.456, 1e300, 5e-324]}),
            json!({"deep": {"z": [{"y": {"b": [true, false, null]}, "a": ""}], "a": {}}, "e": []}),
            json!({"mixed": [1, 1.5, "x", {"k": 2.0}]}),
        ]
    }

    #[test]
    fn the_direct_canonical_form_is_the_canonicalizers() {
        for v in tricky() {
            let expected = serde_json_canonicalizer::to_vec(&v).expect("canonical");
            assert_eq!(
                String::from_utf8(canonical(&v)).expect("utf-8"),
                String::from_utf8(expected.clone()).expect("utf-8"),
                "{v}"
            );
            // And the parameters' order (and numbers) as the canonicalizer
            // would give them back.
            let Value::Object(m) = v.clone() else {
                continue;
            };
            let read_back: Value = serde_json::from_slice(&expected).expect("json");
            assert_eq!(
                serde_json::to_string(&Value::Object(canonical_order(m))).expect("json"),
                serde_json::to_string(&read_back).expect("json"),
                "{v}"
            );
        }
    }

    #[test]
    fn the_directly_written_action_is_the_canonicalizers() {
        for v in tricky() {
            let Value::Object(m) = v else { continue };
            let a = Action::new("a.b", "T\u{1f600}", "id \"1\"", m.clone());
            assert_eq!(
                a.params_json(),
                String::from_utf8(
                    serde_json_canonicalizer::to_vec(&Value::Object(m)).expect("canonical")
                )
                .expect("utf-8")
            );
            assert_eq!(
                String::from_utf8(a.canonical_bytes()).expect("utf-8"),
                String::from_utf8(
                    serde_json_canonicalizer::to_vec(&a.canonical_value()).expect("canonical")
                )
                .expect("utf-8")
            );
        }
    }

    #[test]
    fn member_order_never_changes_the_digest() {
        let a = Action::new("a", "T", "1", params(json!({"x": 1, "y": "z"})));
        let b = Action::new("a", "T", "1", params(json!({"y": "z", "x": 1})));
        assert_eq!(a, b);
        assert_ne!(
            a.digest,
            Action::new("a", "T", "1", params(json!({"x": 1}))).digest
        );
    }

    #[test]
    fn another_resource_or_parameter_is_another_digest() {
        let base = Action::new("a", "T", "1", params(json!({"n": 1})));
        assert_ne!(
            base.digest,
            Action::new("a", "T", "2", params(json!({"n": 1}))).digest
        );
        assert_ne!(
            base.digest,
            Action::new("a", "T", "1", params(json!({"n": 2}))).digest
        );
        let mut forged = base.clone();
        forged.params = params(json!({"n": 2}));
        assert!(!forged.digest_matches());
    }
}
