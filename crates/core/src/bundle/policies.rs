//! `policy.cedar` and `schema.cedarschema`.

use std::collections::BTreeMap;

use super::{POLICY_FILE, Problems, SCHEMA_FILE, line_col};
use crate::policy::Policies;
use greenlight_types::ProblemKind;

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
