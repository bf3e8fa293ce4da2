//! Cedar values built directly from a request's JSON, without Cedar's JSON
//! parser: the warm path's way in.
//!
//! Cedar's JSON reader costs most of a warm decision (BENCHMARKS.md, "Profile
//! of a warm decision"): it tries each value as an extension value before
//! taking it as what it is, building and discarding an error message each
//! time. Most of a request is plain JSON: strings, booleans, integers,
//! arrays and objects. Those are built here as Cedar reads them without a
//! schema (a string is a `String`, an integer a `Long`, an array a `Set`,
//! an object a record), and the entity (`{"__entity": {"type", "id"}}`) and
//! extension (`{"__extn": {"fn", "arg"}}`) escapes as Cedar reads them.
//!
//! Anything else gets `None`, and the caller takes Cedar's reader, which
//! says what is wrong with it or reads it by the schema (a string where the
//! schema wants an `ipaddr`, `{"type", "id"}` where it wants an entity). A
//! value built here is then held to the schema exactly as one Cedar read
//! (`Entities::from_entities` and `Request::new` with the schema), and when
//! it does not fit, the caller again takes Cedar's reader: a schema's own
//! reading of a value never differs from this one when this one fits it,
//! so both ways decide alike. Debug builds decide every request both ways
//! and compare (`Policies::decide`).

use std::collections::{HashMap, HashSet};

use cedar_policy::{Entity, EntityUid, RestrictedExpression};
use serde_json::{Map, Value};

use super::entities::{EntityJson, Uid};

/// The extension functions whose one-argument form (`{"__extn": {"fn",
/// "arg"}}`) is built here.
const EXTENSIONS: [&str; 4] = ["ip", "decimal", "datetime", "duration"];

/// A JSON value as Cedar reads it without a schema; `None` for what only
/// Cedar's reader reads (a fraction, an integer beyond `i64`, `null`, an
/// escape other than the two above, an object with another `__` member).
pub(super) fn plain(value: &Value) -> Option<RestrictedExpression> {
    Some(match value {
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => RestrictedExpression::new_long(n.as_i64()?),
        Value::Array(items) => {
            RestrictedExpression::new_set(items.iter().map(plain).collect::<Option<Vec<_>>>()?)
        }
        Value::Object(m) => {
            if let Some(inner) = escape(m, "__entity") {
                let (kind, id) = pair(inner, "type", "id")?;
                return Some(RestrictedExpression::new_entity_uid(uid(kind, id)?));
            }
            if let Some(inner) = escape(m, "__extn") {
                let (name, arg) = pair(inner, "fn", "arg")?;
                return Some(match EXTENSIONS.iter().position(|e| *e == name)? {
                    0 => RestrictedExpression::new_ip(arg),
                    1 => RestrictedExpression::new_decimal(arg),
                    2 => RestrictedExpression::new_datetime(arg),
                    _ => RestrictedExpression::new_duration(arg),
                });
            }
            if m.keys().any(|k| k.starts_with("__")) {
                return None;
            }
            RestrictedExpression::new_record(
                m.iter()
                    .map(|(k, v)| Some((k.clone(), plain(v)?)))
                    .collect::<Option<Vec<_>>>()?,
            )
            .ok()?
        }
        Value::Null => return None,
    })
}

/// The inner object of a one-member escape object `{"NAME": {...}}`.
fn escape<'a>(m: &'a Map<String, Value>, name: &str) -> Option<&'a Map<String, Value>> {
    if m.len() != 1 {
        return None;
    }
    match m.get(name)? {
        Value::Object(inner) => Some(inner),
        _ => None,
    }
}

/// The two string members of an object that has exactly those two.
fn pair<'a>(m: &'a Map<String, Value>, a: &str, b: &str) -> Option<(&'a str, &'a str)> {
    if m.len() != 2 {
        return None;
    }
    Some((m.get(a)?.as_str()?, m.get(b)?.as_str()?))
}

fn uid(kind: &str, id: &str) -> Option<EntityUid> {
    super::uid(kind, id).ok()
}

/// A record's members, each [`plain`].
pub(super) fn record(m: &Map<String, Value>) -> Option<Vec<(String, RestrictedExpression)>> {
    m.iter()
        .map(|(k, v)| Some((k.clone(), plain(v)?)))
        .collect()
}

/// An entity in Cedar's entity JSON, built directly: `None` when a value is
/// not [`plain`] or Cedar refuses it.
pub(super) fn entity(e: &EntityJson) -> Option<Entity> {
    let attrs: HashMap<String, RestrictedExpression> = record(&e.attrs)?.into_iter().collect();
    let parents = e
        .parents
        .iter()
        .map(|Uid { kind, id }| uid(kind, id))
        .collect::<Option<HashSet<_>>>()?;
    Entity::new(uid(&e.uid.kind, &e.uid.id)?, attrs, parents).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use cedar_policy::Context;
    use serde_json::json;

    /// `v` built directly, as a context member, against Cedar's reader.
    fn both(v: &Value) -> Option<(Context, Context)> {
        let direct = Context::from_pairs([("v".to_owned(), plain(v)?)]).expect("context");
        let read = Context::from_json_value(json!({ "v": v }), None).expect("read");
        Some((direct, read))
    }

    fn read(v: Value) -> Option<()> {
        plain(&v).map(|_| ())
    }

    #[test]
    fn plain_json_is_built_as_cedar_reads_it() {
        for v in [
            json!("a"),
            json!(""),
            json!(true),
            json!(-7),
            json!(i64::MAX),
            json!([1, 2, 2, "x"]),
            json!([]),
            json!({"b": {"c": "d"}, "a": [true]}),
            json!({}),
            json!({"__entity": {"type": "Role", "id": "admin"}}),
            json!({"__entity": {"id": "admin", "type": "Ns::Role"}}),
            json!({"__extn": {"fn": "ip", "arg": "10.0.0.1"}}),
            json!({"__extn": {"fn": "decimal", "arg": "1.25"}}),
            json!({"__extn": {"fn": "datetime", "arg": "2026-01-01"}}),
            json!({"__extn": {"fn": "duration", "arg": "1h"}}),
        ] {
            let (direct, read) = both(&v).unwrap_or_else(|| panic!("{v} is plain"));
            assert_eq!(direct, read, "{v}");
        }
    }

    #[test]
    fn what_only_cedars_reader_reads_is_left_to_it() {
        for v in [
            json!(null),
            json!(1.5),
            json!(u64::MAX),
            json!({"__entity": {"type": "Role"}}),
            json!({"__entity": {"type": "Role", "id": "a"}, "x": 1}),
            json!({"__entity": {"type": "not a name", "id": "a"}}),
            json!({"__extn": {"fn": "offset", "args": []}}),
            json!({"__extn": {"fn": "nope", "arg": "x"}}),
            json!({"__expr": "1 + 1"}),
            json!({"a": [1, null]}),
        ] {
            assert_eq!(read(v.clone()), None, "{v}");
        }
    }

    #[test]
    fn an_entity_whose_value_cedar_refuses_is_left_to_it() {
        let e = EntityJson {
            uid: Uid {
                kind: "Host".into(),
                id: "h".into(),
            },
            attrs: json!({"ip": {"__extn": {"fn": "ip", "arg": "not an address"}}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            parents: Vec::new(),
        };
        assert!(entity(&e).is_none());
    }
}
