//! Each action's policies: a request is evaluated against only the
//! policies whose action scope can match its action.

use std::collections::HashMap;

use cedar_policy::{ActionConstraint, EntityUid, Policy, PolicySet, Schema};

/// The policies whose action scope can match each action: a request for
/// `Action::"a"` is evaluated against `a`'s, which decide exactly as the
/// whole set does (a policy whose scope names another action is never
/// satisfied, and Cedar never evaluates its conditions, so it can neither
/// count nor fail), without Cedar visiting every other action's policies.
#[derive(Clone, Debug, Default)]
pub(super) struct Slices {
    /// Each action the policies or the schema name, with its policies.
    pub(super) by_action: HashMap<EntityUid, PolicySet>,
    /// The policies for any action (`action` unconstrained): all that can
    /// match an action named nowhere.
    pub(super) unnamed: PolicySet,
}

/// The most policy copies the slices may hold in all: beyond it, every
/// request is evaluated against the whole set (a bundle with many actions
/// and many policies for any action would otherwise copy the latter into
/// every slice).
pub(super) const MAX_SLICED: usize = 50_000;

impl Slices {
    /// The slices of `set`, by the action groups of `schema`; `None` when
    /// they would hold more than [`MAX_SLICED`] policies.
    pub(super) fn new(set: &PolicySet, schema: Option<&Schema>) -> Option<Self> {
        let groups = match schema {
            Some(s) => Some(s.action_entities().ok()?),
            None => None,
        };
        let mut actions: Vec<EntityUid> = Vec::new();
        for p in set.policies() {
            match p.action_constraint() {
                ActionConstraint::Any => {}
                ActionConstraint::Eq(a) => actions.push(a),
                ActionConstraint::In(list) => actions.extend(list),
            }
        }
        if let Some(groups) = &groups {
            actions.extend(groups.iter().map(|e| e.uid()));
        }
        actions.retain(|a| a.type_name().to_string() == "Action");
        actions.sort_by_key(ToString::to_string);
        actions.dedup();
        // Whether `action` is `group` or one of its members.
        let within = |action: &EntityUid, group: &EntityUid| {
            action == group
                || groups
                    .as_ref()
                    .and_then(|g| g.ancestors(action))
                    .is_some_and(|mut a| a.any(|u| u == group))
        };
        let matches = |p: &Policy, action: &EntityUid| match p.action_constraint() {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(a) => a == *action,
            ActionConstraint::In(list) => list.iter().any(|g| within(action, g)),
        };
        let slice = |action: Option<&EntityUid>| -> Option<PolicySet> {
            PolicySet::from_policies(
                set.policies()
                    .filter(|p| match action {
                        Some(a) => matches(p, a),
                        None => p.action_constraint() == ActionConstraint::Any,
                    })
                    .cloned(),
            )
            .ok()
        };
        let mut total = 0;
        let mut by_action = HashMap::with_capacity(actions.len());
        for a in actions {
            let policies = slice(Some(&a))?;
            total += policies.policies().count();
            if total > MAX_SLICED {
                return None;
            }
            by_action.insert(a, policies);
        }
        Some(Self {
            by_action,
            unnamed: slice(None)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    const SCHEMA: &str = r#"
entity User;
entity Doc;
action writes;
action "write", erase in [writes] appliesTo { principal: User, resource: Doc };
action read appliesTo { principal: User, resource: Doc };
"#;

    const POLICIES: &str = r#"
permit (principal, action, resource);
permit (principal, action == Action::"read", resource);
permit (principal, action in Action::"writes", resource);
permit (principal, action in [Action::"read", Action::"erase"], resource);
forbid (principal, action == Action::"erase", resource);
"#;

    impl Slices {
        /// The policies of `action`'s slice, by id, sorted.
        fn ids(&self, action: &EntityUid) -> Vec<String> {
            let mut ids: Vec<String> = self
                .by_action
                .get(action)
                .unwrap_or(&self.unnamed)
                .policies()
                .map(|p| p.id().to_string())
                .collect();
            ids.sort();
            ids
        }
    }

    fn action(name: &str) -> EntityUid {
        EntityUid::from_str(&format!("Action::{name:?}")).expect("uid")
    }

    fn slices(schema: Option<&str>) -> Slices {
        let set = PolicySet::from_str(POLICIES).expect("policies");
        let schema = schema.map(|s| Schema::from_cedarschema_str(s).expect("schema").0);
        Slices::new(&set, schema.as_ref()).expect("slices")
    }

    #[test]
    fn each_action_gets_the_policies_its_scope_can_match() {
        let s = slices(Some(SCHEMA));
        assert_eq!(s.ids(&action("read")), ["policy0", "policy1", "policy3"]);
        // A member of a group, through the schema's action hierarchy.
        assert_eq!(s.ids(&action("write")), ["policy0", "policy2"]);
        assert_eq!(
            s.ids(&action("erase")),
            ["policy0", "policy2", "policy3", "policy4"]
        );
        assert_eq!(s.ids(&action("writes")), ["policy0", "policy2"]);
        // An action named nowhere: only the policies for any action.
        assert_eq!(s.ids(&action("other")), ["policy0"]);
    }

    #[test]
    fn without_a_schema_an_action_is_in_a_group_only_when_it_is_the_group() {
        let s = slices(None);
        assert_eq!(s.ids(&action("write")), ["policy0"]);
        assert_eq!(s.ids(&action("writes")), ["policy0", "policy2"]);
        assert_eq!(s.ids(&action("erase")), ["policy0", "policy3", "policy4"]);
    }

    #[test]
    fn too_many_copies_are_not_sliced() {
        // Every one of 300 actions would copy 200 policies for any action.
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!(
                "permit (principal, action, resource) when {{ {i} == {i} }};\n"
            ));
        }
        for i in 0..300 {
            text.push_str(&format!(
                "permit (principal, action == Action::\"a{i}\", resource);\n"
            ));
        }
        let set = PolicySet::from_str(&text).expect("policies");
        assert!(Slices::new(&set, None).is_none());
    }
}
