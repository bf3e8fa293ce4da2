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
    serde_json_canonicalizer::to_vec(value).unwrap_or_default()
}

/// `params` with every object's members in RFC 8785 order (by UTF-16 code
/// units), so the decision JSON lists them as the digest sees them.
fn canonical_order(params: Map<String, Value>) -> Map<String, Value> {
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
        action.digest =
            URL_SAFE_NO_PAD.encode(Sha256::digest(canonical(&action.canonical_value())));
        action
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
        String::from_utf8(canonical(&Value::Object(self.params.clone())))
            .unwrap_or_else(|_| "{}".to_owned())
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
