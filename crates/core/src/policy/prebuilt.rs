//! What a schema lets every request skip: its action entities, built and
//! closed once per bundle instead of once per request, and the entity
//! types whose bare entity (no attributes, no parents) the schema accepts
//! whatever its id, so that a request's bare resource of such a type needs
//! no schema check of its own.
//!
//! A type qualifies when a bare entity of it passes Cedar's own check
//! under two made-up ids: conformance of an entity without attributes or
//! parents depends only on its type, except for an enumerated type, whose
//! ids are listed, and neither made-up id (each holds a NUL) is an id a
//! schema lists. Everything else (an entity with attributes or parents, a
//! type with required attributes, an enumerated type) is checked by Cedar
//! on every request as before.

use std::collections::HashSet;

use cedar_policy::{Entities, Entity, EntityId, EntityUid, Schema};

use super::entities::{EntityJson, is_action};

/// Ids no schema lists, to tell a type whose bare entities all conform.
const PROBES: [&str; 2] = ["\0greenlight-bare-1", "\0greenlight-bare-2"];

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
    /// Prebuilds for `schema`; `None` when Cedar refuses its actions (every
    /// request then goes the checked way, which says why).
    pub(super) fn new(schema: &Schema) -> Option<Self> {
        let actions = Entities::from_entities(std::iter::empty(), Some(schema)).ok()?;
        let bare = schema
            .entity_types()
            .filter(|t| !is_action(&t.to_string()))
            .filter(|t| {
                PROBES.iter().all(|id| {
                    let uid = EntityUid::from_type_name_and_id((*t).clone(), EntityId::new(id));
                    Entities::from_entities(
                        [Entity::new_no_attrs(uid, HashSet::new())],
                        Some(schema),
                    )
                    .is_ok()
                })
            })
            .map(ToString::to_string)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn schema(text: &str) -> Schema {
        Schema::from_str(text).expect("schema")
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
    /// required attribute, not an enumerated one, not an action.
    #[test]
    fn only_types_whose_bare_entities_always_conform_qualify() {
        let p = Prebuilt::new(&schema(
            r#"
            entity Plain;
            entity Optional { note?: String };
            entity Required { owner: String };
            entity Colour enum ["red", "\0greenlight-bare-1"];
            action "read" appliesTo { principal: Plain, resource: Plain };
            namespace Ns { entity Thing; }
            "#,
        ))
        .expect("prebuilt");
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
