//! What a schema lets every request skip: its action entities, built and
//! closed once per bundle instead of once per request, and the entity
//! types whose bare entity (no attributes, no parents) the schema accepts
//! whatever its id, so that a request's bare entities of such types need
//! no schema check of their own.
//!
//! Cedar checks a bare entity by its type alone (declared, not external,
//! no required attribute), except an enumerated type, whose ids it checks
//! against the list. So a type qualifies when it is not enumerated (read
//! from the schema's declarations) and a bare entity of it passes Cedar's
//! own check. Everything else (an entity with attributes or parents, an
//! enumerated type, any type Cedar refuses bare) is checked by Cedar on
//! every request as before.

use std::collections::HashSet;

use cedar_policy::{Entities, Entity, EntityId, EntityUid, Schema, SchemaFragment};

use super::entities::{EntityJson, is_action};

/// The id a bare entity is checked under: any id does, once enumerated
/// types are left out.
const PROBE: &str = "greenlight-bare";

/// A schema's action entities and its bare-conforming types.
#[derive(Clone, Debug)]
pub(super) struct Prebuilt {
    /// The schema's action entities with their groups, closed.
    actions: Entities,
    /// The entity types (as written, `Ns::Type`) any bare entity of which
    /// conforms to the schema.
    bare: HashSet<String>,
}

impl Prebuilt {
    /// Prebuilds for `schema`, read from `src`; `None` when Cedar refuses
    /// its actions or its declarations cannot be read back (every request
    /// then goes the checked way).
    pub(super) fn new(schema: &Schema, src: &str) -> Option<Self> {
        let actions = Entities::from_entities(std::iter::empty(), Some(schema)).ok()?;
        let enumerated = enumerated(src)?;
        let bare = schema
            .entity_types()
            .map(|t| (t, t.to_string()))
            .filter(|(_, name)| !is_action(name) && !enumerated.contains(name))
            .filter(|(t, _)| {
                let uid = EntityUid::from_type_name_and_id((*t).clone(), EntityId::new(PROBE));
                Entities::from_entities([Entity::new_no_attrs(uid, HashSet::new())], Some(schema))
                    .is_ok()
            })
            .map(|(_, name)| name)
            .collect();
        Some(Self { actions, bare })
    }

    /// Whether `e` conforms to the schema without a check: it is bare and
    /// of a type whose bare entities all do.
    pub(super) fn conforms(&self, e: &EntityJson) -> bool {
        e.attrs.is_empty() && e.parents.is_empty() && self.bare.contains(&e.uid.kind)
    }

    /// The schema's action entities, closed, for one request to add to.
    pub(super) fn actions(&self) -> Entities {
        self.actions.clone()
    }
}

/// The enumerated entity types `src` declares (`entity Colour enum
/// [...]`), by their full names, from the schema's JSON form, where each
/// namespace's `entityTypes` gives an enumerated type an `enum` member.
fn enumerated(src: &str) -> Option<HashSet<String>> {
    let (fragment, _warnings) = SchemaFragment::from_cedarschema_str(src).ok()?;
    let json = fragment.to_json_value().ok()?;
    let mut out = HashSet::new();
    for (namespace, body) in json.as_object()? {
        for (name, declared) in body.get("entityTypes")?.as_object()? {
            if declared.get("enum").is_some() {
                out.insert(if namespace.is_empty() {
                    name.clone()
                } else {
                    format!("{namespace}::{name}")
                });
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn prebuilt(text: &str) -> Prebuilt {
        Prebuilt::new(&Schema::from_str(text).expect("schema"), text).expect("prebuilt")
    }

    fn bare(kind: &str, id: &str) -> EntityJson {
        EntityJson {
            uid: super::super::entities::Uid {
                kind: kind.to_owned(),
                id: id.to_owned(),
            },
            attrs: serde_json::Map::new(),
            parents: Vec::new(),
        }
    }

    /// Only types whose every bare entity conforms qualify: not one with a
    /// required attribute, not an enumerated one (even one listing the id
    /// the check uses), in a namespace or not, not an action.
    #[test]
    fn only_types_whose_bare_entities_always_conform_qualify() {
        let p = prebuilt(
            r#"
            entity Plain;
            entity Optional { note?: String };
            entity Required { owner: String };
            entity Colour enum ["red", "greenlight-bare"];
            action "read" appliesTo { principal: Plain, resource: Plain };
            namespace Ns {
              entity Thing;
              entity Shade enum ["dark"];
            }
            "#,
        );
        let mut types: Vec<&str> = p.bare.iter().map(String::as_str).collect();
        types.sort_unstable();
        assert_eq!(types, ["Ns::Thing", "Optional", "Plain"]);
        assert!(p.conforms(&bare("Plain", "anything")));
        assert!(!p.conforms(&bare("Required", "x")));
        assert!(!p.conforms(&bare("Colour", "red")));
        assert!(!p.conforms(&bare("Unknown", "x")));
        let mut with_parent = bare("Plain", "x");
        with_parent.parents.push(super::super::entities::Uid {
            kind: "Plain".to_owned(),
            id: "y".to_owned(),
        });
        assert!(!p.conforms(&with_parent));
        let mut with_attr = bare("Optional", "x");
        with_attr
            .attrs
            .insert("note".to_owned(), serde_json::json!("n"));
        assert!(!p.conforms(&with_attr));
        // The actions are there, closed.
        assert_eq!(p.actions().iter().count(), 1);
    }
}
