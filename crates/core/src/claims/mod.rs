//! Claims to principal attributes, by configuration
//! (`[principal.attributes.NAME]`): which claim, at what path, as which
//! Cedar type, whether required, and the default.
//!
//! A claim path is the exact name of a top-level claim (`claim = "…"`, so
//! namespaced claims such as `https://example.com/department` need no
//! escaping), or a path into nested claims (`path = "…"`): a JSON pointer
//! (`/realm_access/roles`) or dot-separated names (`realm_access.roles`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::config::AttributeConfig;

mod read;

use crate::token::MAX_NUMERIC_DATE;
use greenlight_types::AttributeValue;
pub use read::{read, vouched};

/// The attributes every principal has; a mapping may not take their names.
pub const BUILT_IN: &[&str] = &[
    "sub",
    "client_id",
    "scopes",
    "groups",
    "roles",
    "tenant",
    "issuer",
];

/// The most attributes a bundle may map.
pub const MAX_ATTRIBUTES: usize = 32;

/// The most strings a `Set<String>` attribute holds (every host's limit on
/// one list from the engine).
pub const MAX_SET: usize = 64;

/// The claim a Greenlight action token carries its principal's mapped
/// attributes in, by attribute name, so that the person it was minted for
/// is the same to policy as when they asked.
pub const ACTION_TOKEN_CLAIM: &str = "principal_attributes";

/// The Cedar type of a mapped attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `String`.
    String,
    /// `Long`.
    Long,
    /// `Bool`.
    Bool,
    /// `Set<String>`.
    Set,
    /// `datetime`, from whole seconds since the epoch.
    Datetime,
}

impl Kind {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "String" => Self::String,
            "Long" => Self::Long,
            "Bool" => Self::Bool,
            "Set<String>" => Self::Set,
            "datetime" => Self::Datetime,
            _ => return None,
        })
    }

    /// The type as the bundle writes it.
    pub fn name(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::Long => "Long",
            Self::Bool => "Bool",
            Self::Set => "Set<String>",
            Self::Datetime => "datetime",
        }
    }

    /// The kind of a value.
    pub fn of(value: &AttributeValue) -> Self {
        match value {
            AttributeValue::String(_) => Self::String,
            AttributeValue::Long(_) => Self::Long,
            AttributeValue::Bool(_) => Self::Bool,
            AttributeValue::Set(_) => Self::Set,
            AttributeValue::Datetime(_) => Self::Datetime,
        }
    }

    /// A value of this kind, for checking the mapping against the schema.
    fn sample(self) -> AttributeValue {
        match self {
            Self::String => AttributeValue::String(String::new()),
            Self::Long => AttributeValue::Long(0),
            Self::Bool => AttributeValue::Bool(false),
            Self::Set => AttributeValue::Set(Vec::new()),
            Self::Datetime => AttributeValue::Datetime(0),
        }
    }
}

/// One attribute read from a claim.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The attribute's name in Cedar (`principal.NAME`).
    pub name: String,
    /// The claim path as configured, for messages.
    pub shown: String,
    path: Vec<String>,
    /// Its Cedar type.
    pub kind: Kind,
    /// Whether a token without it is refused.
    pub required: bool,
    /// Its value when the claim is absent.
    pub default: Option<AttributeValue>,
    /// The issuers whose tokens give it; `None` for every one.
    pub issuers: Option<Vec<String>>,
}

impl Mapping {
    /// Whether a principal may lack this attribute (the schema must then
    /// declare it optional).
    pub fn may_be_absent(&self) -> bool {
        !self.required && self.default.is_none()
    }

    /// A value of its type, for checking it against the schema.
    pub fn sample(&self) -> AttributeValue {
        self.kind.sample()
    }

    /// Whether tokens of `issuer` give this attribute.
    pub fn trusts(&self, issuer: &str) -> bool {
        self.issuers
            .as_ref()
            .is_none_or(|list| list.iter().any(|i| i == issuer))
    }
}

/// A Cedar attribute name: a letter or `_`, then letters, digits and `_`,
/// so that policies can write `principal.NAME`.
fn identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn path_of(cfg: &AttributeConfig) -> Result<(String, Vec<String>), String> {
    match (&cfg.claim, &cfg.path) {
        (Some(claim), None) if !claim.is_empty() => Ok((claim.clone(), vec![claim.clone()])),
        (None, Some(path)) if path.starts_with('/') => {
            let segments: Vec<String> = path[1..]
                .split('/')
                .map(|s| s.replace("~1", "/").replace("~0", "~"))
                .collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!("JSON pointer `{path}` has an empty segment"));
            }
            Ok((path.clone(), segments))
        }
        (None, Some(path)) => {
            let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
            if segments.iter().any(String::is_empty) {
                return Err(format!("path `{path}` has an empty segment"));
            }
            Ok((path.clone(), segments))
        }
        (Some(_), None) => Err("`claim` is empty".to_owned()),
        (Some(_), Some(_)) => Err("give `claim` or `path`, not both".to_owned()),
        (None, None) => Err("give the `claim` (a top-level claim's exact name) or the `path` (a JSON pointer or dotted path) it is read from".to_owned()),
    }
}

fn default_of(kind: Kind, value: &toml::Value) -> Option<AttributeValue> {
    Some(match (kind, value) {
        (Kind::String, toml::Value::String(s)) => AttributeValue::String(s.clone()),
        (Kind::Long, toml::Value::Integer(n)) => AttributeValue::Long(*n),
        (Kind::Bool, toml::Value::Boolean(b)) => AttributeValue::Bool(*b),
        (Kind::Set, toml::Value::Array(a)) => AttributeValue::Set(sorted(
            a.iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()?,
        )),
        (Kind::Datetime, toml::Value::Integer(n)) => {
            let n = u64::try_from(*n).ok().filter(|n| *n <= MAX_NUMERIC_DATE)?;
            AttributeValue::Datetime(n)
        }
        _ => return None,
    })
}

pub(crate) fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

/// Reads `[principal.attributes]` for a bundle whose issuers are
/// `issuers` (the first is the default one an attribute trusts); on error,
/// each attribute's name with what is wrong.
pub fn mappings(
    config: &BTreeMap<String, AttributeConfig>,
    issuers: &[&str],
) -> Result<Vec<Mapping>, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    if config.len() > MAX_ATTRIBUTES {
        problems.push((
            String::new(),
            format!(
                "{} attributes are mapped, more than the {MAX_ATTRIBUTES} allowed",
                config.len()
            ),
        ));
    }
    for (name, cfg) in config {
        let mut refuse = |m: String| problems.push((name.clone(), m));
        if !identifier(name) {
            refuse(format!(
                "attribute `{name}` should be a Cedar identifier (letters, digits and `_`, not starting with a digit)"
            ));
            continue;
        }
        if BUILT_IN.contains(&name.as_str()) {
            refuse(format!(
                "attribute `{name}` is built in; its claim is set in `[principal]`"
            ));
            continue;
        }
        let (shown, path) = match path_of(cfg) {
            Ok(p) => p,
            Err(m) => {
                refuse(format!("attribute `{name}`: {m}"));
                continue;
            }
        };
        let Some(kind) = Kind::parse(&cfg.kind) else {
            refuse(format!(
                "attribute `{name}`: type `{}` should be `String`, `Long`, `Bool`, `Set<String>` or `datetime`",
                cfg.kind
            ));
            continue;
        };
        let default = match &cfg.default {
            None => None,
            Some(_) if cfg.required => {
                refuse(format!(
                    "attribute `{name}` is required, so a default would never be used"
                ));
                continue;
            }
            Some(v) => match default_of(kind, v) {
                Some(d) => Some(d),
                None => {
                    refuse(format!(
                        "attribute `{name}`: the default `{v}` is not a {}",
                        kind.name()
                    ));
                    continue;
                }
            },
        };
        let trusted = match &cfg.issuers {
            None => Some(issuers.iter().take(1).map(|i| (*i).to_owned()).collect()),
            Some(list) if list.iter().any(|i| i == "*") => None,
            Some(list) => {
                if let Some(unknown) = list.iter().find(|i| !issuers.contains(&i.as_str())) {
                    refuse(format!(
                        "attribute `{name}`: `{unknown}` in `issuers` is not one of the bundle's issuers"
                    ));
                    continue;
                }
                Some(list.clone())
            }
        };
        out.push(Mapping {
            name: name.clone(),
            shown,
            path,
            kind,
            required: cfg.required,
            default,
            issuers: trusted,
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// An attribute value in Cedar's JSON entity format.
pub fn to_cedar(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::Datetime(t) => {
            json!({ "__extn": { "fn": "datetime", "arg": rfc3339(*t) } })
        }
        other => other.to_claim(),
    }
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic Gregorian
/// calendar, by the days-to-civil method).
pub fn rfc3339(t: u64) -> String {
    let days = t / 86_400;
    let secs = t % 86_400;
    // Shift the epoch to 0000-03-01, so a leap day ends each 4-year cycle.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_599), "2025-12-31T23:59:59Z");
        assert_eq!(rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(rfc3339(MAX_NUMERIC_DATE), "9999-12-31T23:59:59Z");
    }
}
