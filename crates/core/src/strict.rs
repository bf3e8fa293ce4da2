//! JSON read strictly for tokens: a member named twice in one object is an
//! error, never silently read as its last value (RFC 7519 §4, RFC 7515
//! §4: a JWT's claims and a JWS header must not name a member twice; a
//! parser that keeps the last one lets `"sub":"alice", …, "sub":"admin"`
//! pass for `admin` where another parser sees `alice`).

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A JSON value whose objects, at any depth, name each member once.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number JSON cannot hold"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                return Err(de::Error::custom(Duplicate(name)));
            }
            let Strict(value) = map.next_value()?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

/// The marker a duplicate's error message carries, so it can be told from
/// other JSON errors.
struct Duplicate(String);

impl fmt::Display for Duplicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{DUPLICATE_MARK}{}", self.0)
    }
}

const DUPLICATE_MARK: &str = "duplicate member: ";

/// Why strict JSON was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum StrictError {
    /// A member is named twice in one object (the name).
    Duplicate(String),
    /// The text is not JSON, or not an object.
    Malformed,
}

/// Reads `bytes` as a JSON object whose objects name each member once.
pub fn object(bytes: &[u8]) -> Result<Map<String, Value>, StrictError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = Strict::deserialize(&mut de).and_then(|v| de.end().map(|()| v));
    match parsed {
        Ok(Strict(Value::Object(m))) => Ok(m),
        Ok(_) => Err(StrictError::Malformed),
        Err(e) => {
            let text = e.to_string();
            match text.find(DUPLICATE_MARK) {
                Some(at) => {
                    let rest = &text[at + DUPLICATE_MARK.len()..];
                    // serde_json appends " at line L column C".
                    let name = rest.rsplit_once(" at line ").map_or(rest, |(n, _)| n);
                    Err(StrictError::Duplicate(name.to_owned()))
                }
                None => Err(StrictError::Malformed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_named_twice_is_refused_at_any_depth() {
        assert_eq!(
            object(br#"{"sub":"alice","n":1,"sub":"admin"}"#),
            Err(StrictError::Duplicate("sub".to_owned()))
        );
        assert_eq!(
            object(br#"{"a":[{"x":1,"x":2}]}"#),
            Err(StrictError::Duplicate("x".to_owned()))
        );
        assert_eq!(
            object(br#"{"a at line 1":1,"a at line 1":2}"#),
            Err(StrictError::Duplicate("a at line 1".to_owned()))
        );
    }

    #[test]
    fn everything_else_reads_as_serde_json_does() {
        let text = br#"{"s":"t","n":-5,"u":18446744073709551615,"f":1.5,"b":true,"z":null,"a":[1,{"k":"v"}]}"#;
        assert_eq!(
            object(text).map(Value::Object),
            Ok(serde_json::from_slice::<Value>(text).expect("json"))
        );
        assert_eq!(object(b"[1]"), Err(StrictError::Malformed));
        assert_eq!(object(b"{\"a\":1} x"), Err(StrictError::Malformed));
        assert_eq!(object(b"{"), Err(StrictError::Malformed));
    }
}
