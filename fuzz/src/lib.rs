//! What the fuzz targets share: the bundles they load (compiled in, so a
//! target binary needs no files at run time), the instant the conformance
//! vectors decide at, and an independent JSON reader that keeps every
//! object member, duplicates included.

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

/// The `now` of every conformance vector (tests/vectors): the seed tokens
/// are valid at this instant.
pub const NOW: u64 = 1_767_225_600;

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
        .collect()
}

/// The AuthZEN interop Todo bundle (tests/authzen-interop/todo) without
/// its entity data: a principal type `user`, roles as parents.
pub fn todo_bundle() -> Vec<(String, String)> {
    files(&[
        (
            "greenlight.toml",
            include_str!("../../tests/authzen-interop/todo/greenlight.toml"),
        ),
        (
            "idp.jwks.json",
            include_str!("../../tests/authzen-interop/todo/idp.jwks.json"),
        ),
        (
            "policy.cedar",
            include_str!("../../tests/authzen-interop/todo/policy.cedar"),
        ),
    ])
}

/// The Todo bundle's entity data.
pub const TODO_ENTITIES: &str = include_str!("../../tests/authzen-interop/todo/entities.json");

/// The demo bundle (examples/bundle), as `greenlight_host::read_bundle_dir`
/// reads it: the three named files and every `.json`, sorted by name.
pub fn demo_bundle() -> Vec<(String, String)> {
    files(&[
        (
            "greenlight.toml",
            include_str!("../../examples/bundle/greenlight.toml"),
        ),
        (
            "idp.jwks.json",
            include_str!("../../examples/bundle/idp.jwks.json"),
        ),
        (
            "policy.cedar",
            include_str!("../../examples/bundle/policy.cedar"),
        ),
        (
            "schema.cedarschema",
            include_str!("../../examples/bundle/schema.cedarschema"),
        ),
    ])
}

/// The token-conformance bundle (tests/bundles/tokens): one issuer per key
/// family, a shared secret, and Greenlight's action tokens with their keys.
pub fn tokens_bundle() -> Vec<(String, String)> {
    files(&[
        (
            "ec.jwks.json",
            include_str!("../../tests/bundles/tokens/ec.jwks.json"),
        ),
        (
            "ed.jwks.json",
            include_str!("../../tests/bundles/tokens/ed.jwks.json"),
        ),
        (
            "greenlight.jwks.json",
            include_str!("../../tests/bundles/tokens/greenlight.jwks.json"),
        ),
        (
            "greenlight.toml",
            include_str!("../../tests/bundles/tokens/greenlight.toml"),
        ),
        (
            "hs.jwks.json",
            include_str!("../../tests/bundles/tokens/hs.jwks.json"),
        ),
        (
            "policy.cedar",
            include_str!("../../tests/bundles/tokens/policy.cedar"),
        ),
        (
            "rsa.jwks.json",
            include_str!("../../tests/bundles/tokens/rsa.jwks.json"),
        ),
    ])
}

/// Bearer tokens for the demo bundle from the conformance vectors
/// (data/demo-tokens.txt), valid and invalid at [`NOW`]; the first is
/// alice's, valid, with every scope.
pub fn demo_tokens() -> Vec<&'static str> {
    include_str!("../data/demo-tokens.txt")
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// A JSON value read without any map type: an object is its members in
/// document order, a name given twice kept twice. It is the oracle the
/// strict reader (`greenlight_core::strict`) is checked against, so it
/// shares none of that reader's code.
#[derive(Clone, Debug, PartialEq)]
pub enum Raw {
    /// Anything but an array or an object (its value does not matter here).
    Scalar,
    /// An array.
    Array(Vec<Raw>),
    /// An object's members, in order, duplicates kept.
    Object(Vec<(String, Raw)>),
}

impl Raw {
    /// Reads `bytes` as one JSON document, as serde_json reads it (same
    /// grammar, same nesting limit, trailing whitespace only).
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let raw = Raw::deserialize(&mut de).ok()?;
        de.end().ok()?;
        Some(raw)
    }

    /// The names given more than once in one object, anywhere in the value.
    pub fn duplicates(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.collect_duplicates(&mut out);
        out
    }

    fn collect_duplicates(&self, out: &mut Vec<String>) {
        match self {
            Raw::Scalar => {}
            Raw::Array(items) => items.iter().for_each(|i| i.collect_duplicates(out)),
            Raw::Object(members) => {
                for (i, (name, value)) in members.iter().enumerate() {
                    if members[..i].iter().any(|(n, _)| n == name) {
                        out.push(name.clone());
                    }
                    value.collect_duplicates(out);
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar)
    }

    fn visit_str<E>(self, _: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar)
    }

    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut members = Vec::new();
        while let Some((name, value)) = map.next_entry::<String, Raw>()? {
            members.push((name, value));
        }
        Ok(Raw::Object(members))
    }
}

/// Whether `a` sorts strictly before `b` by UTF-16 code units, the member
/// order of RFC 8785 §3.2.3.
pub fn utf16_less(a: &str, b: &str) -> bool {
    a.encode_utf16().lt(b.encode_utf16())
}

/// Every object of `value` lists its members in RFC 8785 order.
pub fn members_sorted(value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::Array(items) => items.iter().all(members_sorted),
        serde_json::Value::Object(m) => {
            let names: Vec<&String> = m.keys().collect();
            names.windows(2).all(|w| utf16_less(w[0], w[1])) && m.values().all(members_sorted)
        }
        _ => true,
    }
}
