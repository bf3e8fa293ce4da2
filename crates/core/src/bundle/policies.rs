//! `policy.cedar`, `schema.cedarschema` and `entities.json`.

use std::collections::BTreeMap;

use super::{ENTITIES_FILE, POLICY_FILE, Problems, SCHEMA_FILE, line_col};
use crate::claims::Mapping;
use crate::config::Config;
use crate::policy::entities::EntityData;
use crate::policy::{Policies, principal_attrs};
use greenlight_types::{Principal, ProblemKind};
use serde_json::Value;

/// Reads `entities.json`, when the bundle has one, into the policies.
pub(super) fn entity_data(
    map: &BTreeMap<&str, &str>,
    config: &Config,
    mappings: &[Mapping],
    policies: &mut Policies,
    problems: &mut Problems,
) {
    let Some(text) = map.get(ENTITIES_FILE) else {
        return;
    };
    // A principal's attributes from a token, with sample values.
    let sample = Principal {
        entity_type: config.principal.entity_type.clone(),
        subject: "sample".to_owned(),
        issuer: "sample".to_owned(),
        attributes: mappings
            .iter()
            .map(|m| (m.name.clone(), m.sample()))
            .collect(),
        ..Principal::default()
    };
    let Value::Object(token) = principal_attrs(&sample) else {
        return;
    };
    match EntityData::load(
        text,
        policies.schema(),
        &config.principal.entity_type,
        &token,
    ) {
        Ok(data) => policies.set_data(data),
        Err(errs) => {
            for e in errs {
                problems.add(ProblemKind::InvalidEntities, ENTITIES_FILE, e.at, e.message);
            }
        }
    }
}

/// The policies, validated against the schema when there is one; `None`
/// when either file has problems (all reported).
pub(super) fn policies(
    map: &BTreeMap<&str, &str>,
    default_ttl: u64,
    problems: &mut Problems,
) -> Option<Policies> {
    match map.get(POLICY_FILE) {
        None => {
            problems.add(
                ProblemKind::MissingFile,
                POLICY_FILE,
                None,
                format!("every bundle needs `{POLICY_FILE}`"),
            );
            None
        }
        Some(src) => {
            let schema = map.get(SCHEMA_FILE).copied();
            match Policies::load(src, schema, default_ttl) {
                Ok(p) => Some(p),
                Err(errs) => {
                    for e in errs {
                        let (file, text, kind) = if e.in_schema {
                            (
                                SCHEMA_FILE,
                                schema.unwrap_or(""),
                                ProblemKind::InvalidSchema,
                            )
                        } else if e.violates_schema {
                            (POLICY_FILE, *src, ProblemKind::InvalidSchema)
                        } else {
                            (POLICY_FILE, *src, ProblemKind::InvalidPolicy)
                        };
                        problems.add(kind, file, e.offset.map(|o| line_col(text, o)), e.message);
                    }
                    None
                }
            }
        }
    }
}
