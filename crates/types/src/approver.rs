//! Who may approve an action: the `@approvers` grammar, parsed once.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One entry of a policy's `@approvers` (the WIT `approver`). Written as
/// text in policies, JSON and the store: `group:NAME`, `group:NAME@tenant`,
/// `user:SUBJECT` or `subject`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Approver {
    /// `group:NAME`: members of the group (by the bundle's groups claim).
    Group(String),
    /// `group:NAME@tenant`: members of the group whose tenant is the
    /// requester's own.
    TenantGroup(String),
    /// `user:SUBJECT`: one named subject.
    User(String),
    /// `subject`: the requester confirms their own action.
    Subject,
}

/// Why an `@approvers` entry does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("approver `{0}` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`")]
pub struct ApproverError(pub String);

/// The suffix that scopes a group to the requester's tenant. Only this exact
/// suffix is special: any other `@` is part of a group's name
/// (`group:ops@example.com`).
const TENANT_SUFFIX: &str = "@tenant";

impl FromStr for Approver {
    type Err = ApproverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ApproverError(s.to_owned());
        if s == "subject" {
            return Ok(Self::Subject);
        }
        if let Some(group) = s.strip_prefix("group:") {
            return match group.strip_suffix(TENANT_SUFFIX) {
                Some(name) if !name.is_empty() => Ok(Self::TenantGroup(name.to_owned())),
                None if !group.is_empty() => Ok(Self::Group(group.to_owned())),
                _ => Err(bad()),
            };
        }
        match s.strip_prefix("user:") {
            Some(user) if !user.is_empty() => Ok(Self::User(user.to_owned())),
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for Approver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Group(g) => write!(f, "group:{g}"),
            Self::TenantGroup(g) => write!(f, "group:{g}{TENANT_SUFFIX}"),
            Self::User(u) => write!(f, "user:{u}"),
            Self::Subject => f.write_str("subject"),
        }
    }
}

impl Serialize for Approver {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Approver {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses_and_prints_back() {
        for (text, approver) in [
            ("group:finance", Approver::Group("finance".into())),
            ("group:owner@tenant", Approver::TenantGroup("owner".into())),
            (
                "group:ops@example.com",
                Approver::Group("ops@example.com".into()),
            ),
            ("user:carol", Approver::User("carol".into())),
            ("subject", Approver::Subject),
        ] {
            assert_eq!(text.parse::<Approver>(), Ok(approver.clone()), "{text}");
            assert_eq!(approver.to_string(), text);
        }
    }

    #[test]
    fn malformed_entries_are_refused_with_the_grammar() {
        for text in [
            "group:",
            "group:@tenant",
            "user:",
            "role:admin",
            "Subject",
            "",
        ] {
            let e = text.parse::<Approver>().expect_err(text);
            assert_eq!(
                e.to_string(),
                format!(
                    "approver `{text}` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`"
                )
            );
        }
    }

    #[test]
    fn json_is_the_policy_text() {
        let v: Vec<Approver> =
            serde_json::from_str(r#"["group:a@tenant","user:b"]"#).expect("approvers");
        assert_eq!(
            v,
            vec![
                Approver::TenantGroup("a".into()),
                Approver::User("b".into())
            ]
        );
        assert_eq!(
            serde_json::to_string(&v).expect("json"),
            r#"["group:a@tenant","user:b"]"#
        );
        assert!(serde_json::from_str::<Approver>(r#""admins""#).is_err());
    }
}
