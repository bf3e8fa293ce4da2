//! Reading the mapped attributes: from a token's claims (or an action
//! token's `principal_attributes`), and from a subject a host vouches for.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{ACTION_TOKEN_CLAIM, Kind, MAX_SET, Mapping, sorted};
use crate::token::MAX_NUMERIC_DATE;
use greenlight_types::{AttributeValue, Denial, DenialCode};

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "a whole number",
        Value::Number(_) => "a number with a fraction",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The value of `m` read from `value` (`null` counts as absent).
/// `shown` names the claim in messages (for an action token, the member of
/// its `principal_attributes`).
fn typed(m: &Mapping, shown: &str, value: &Value) -> Result<AttributeValue, String> {
    let wrong = || {
        format!(
            "claim `{shown}` (attribute `{}`) is not a {}: it is {}",
            m.name,
            m.kind.name(),
            describe(value)
        )
    };
    Ok(match (m.kind, value) {
        (Kind::String, Value::String(s)) => AttributeValue::String(s.clone()),
        (Kind::Long, Value::Number(n)) => AttributeValue::Long(n.as_i64().ok_or_else(wrong)?),
        (Kind::Bool, Value::Bool(b)) => AttributeValue::Bool(*b),
        (Kind::Set, Value::String(s)) => AttributeValue::Set(vec![s.clone()]),
        (Kind::Set, Value::Array(a)) if a.len() > MAX_SET => {
            return Err(format!(
                "claim `{shown}` (attribute `{}`) has {} entries, more than the {MAX_SET} a Set<String> attribute holds",
                m.name,
                a.len()
            ));
        }
        (Kind::Set, Value::Array(a)) => AttributeValue::Set(sorted(
            a.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    format!(
                        "claim `{shown}` (attribute `{}`) is not a Set<String>: an element is not a string",
                        m.name
                    )
                })?,
        )),
        (Kind::Datetime, Value::Number(n)) => AttributeValue::Datetime(
            n.as_u64()
                .filter(|t| *t <= MAX_NUMERIC_DATE)
                .ok_or_else(|| {
                    format!(
                        "claim `{shown}` (attribute `{}`) is not a datetime: `{n}` is not whole seconds from 0 to {MAX_NUMERIC_DATE}",
                        m.name
                    )
                })?,
        ),
        _ => return Err(wrong()),
    })
}

/// The mapped attributes of a token's claims; for an action token
/// (`action`), read from [`ACTION_TOKEN_CLAIM`] by attribute name. A
/// required claim absent, or any mapped claim of the wrong type, is
/// `token-missing-claim` naming the claim.
pub fn read(
    mappings: &[Mapping],
    claims: &Map<String, Value>,
    action: bool,
    issuer: &str,
) -> Result<BTreeMap<String, AttributeValue>, Denial> {
    let none = Map::new();
    let source = if action {
        match claims.get(ACTION_TOKEN_CLAIM) {
            None => &none,
            Some(Value::Object(o)) => o,
            Some(_) => {
                return Err(Denial::new(
                    DenialCode::ActionTokenInvalid,
                    format!("`{ACTION_TOKEN_CLAIM}` is not an object"),
                ));
            }
        }
    } else {
        claims
    };
    let mut out = BTreeMap::new();
    for m in mappings {
        if !m.trusts(issuer) {
            if m.required {
                return Err(Denial::new(
                    DenialCode::TokenMissingClaim,
                    format!(
                        "attribute `{}` is required, and `{issuer}` is not one of the issuers it is read from",
                        m.name
                    ),
                ));
            }
            if let Some(d) = &m.default {
                out.insert(m.name.clone(), d.clone());
            }
            continue;
        }
        let found = if action {
            source.get(&m.name)
        } else {
            let mut at = source.get(&m.path[0]);
            for segment in &m.path[1..] {
                at = at.and_then(Value::as_object).and_then(|o| o.get(segment));
            }
            at
        };
        let shown: Cow<'_, str> = if action {
            Cow::Owned(format!("{ACTION_TOKEN_CLAIM}.{}", m.name))
        } else {
            Cow::Borrowed(&m.shown)
        };
        match found.filter(|v| !v.is_null()) {
            Some(v) => {
                let value = typed(m, &shown, v)
                    .map_err(|message| Denial::new(DenialCode::TokenMissingClaim, message))?;
                out.insert(m.name.clone(), value);
            }
            None if m.required => {
                return Err(Denial::new(
                    DenialCode::TokenMissingClaim,
                    format!(
                        "claim `{shown}` (attribute `{}`) is required and missing",
                        m.name
                    ),
                ));
            }
            None => {
                if let Some(d) = &m.default {
                    out.insert(m.name.clone(), d.clone());
                }
            }
        }
    }
    Ok(out)
}

/// Checks the attributes a trusted host vouches for against the mapping:
/// each one mapped and of its type, the required ones present; absent
/// ones get their defaults.
pub fn vouched(
    mappings: &[Mapping],
    given: &BTreeMap<String, AttributeValue>,
    issuer: &str,
) -> Result<BTreeMap<String, AttributeValue>, Denial> {
    let invalid = |m: String| Denial::new(DenialCode::RequestInvalid, m);
    for (name, value) in given {
        let m = mappings.iter().find(|m| &m.name == name).ok_or_else(|| {
            invalid(format!(
                "the vouched subject's attribute `{name}` is not one the bundle maps"
            ))
        })?;
        if !m.trusts(issuer) {
            return Err(invalid(format!(
                "the vouched subject's attribute `{name}` is not read from `{issuer}`"
            )));
        }
        if Kind::of(value) != m.kind {
            return Err(invalid(format!(
                "the vouched subject's attribute `{name}` is a {}, not a {}",
                Kind::of(value).name(),
                m.kind.name()
            )));
        }
    }
    let mut out = BTreeMap::new();
    for (name, value) in given {
        let value = match value {
            AttributeValue::Set(v) if v.len() > MAX_SET => {
                return Err(invalid(format!(
                    "the vouched subject's attribute `{name}` has {} entries, more than {MAX_SET}",
                    v.len()
                )));
            }
            AttributeValue::Set(v) => AttributeValue::Set(sorted(v.clone())),
            AttributeValue::Datetime(t) if *t > MAX_NUMERIC_DATE => {
                return Err(invalid(format!(
                    "the vouched subject's attribute `{name}` is after {MAX_NUMERIC_DATE}, the last second of 9999"
                )));
            }
            other => other.clone(),
        };
        out.insert(name.clone(), value);
    }
    for m in mappings {
        if out.contains_key(&m.name) {
            continue;
        }
        if m.required {
            return Err(invalid(if m.trusts(issuer) {
                format!(
                    "the vouched subject lacks the required attribute `{}`",
                    m.name
                )
            } else {
                format!(
                    "attribute `{}` is required, and `{issuer}` is not one of the issuers it is read from",
                    m.name
                )
            }));
        }
        if let Some(d) = &m.default {
            out.insert(m.name.clone(), d.clone());
        }
    }
    Ok(out)
}
