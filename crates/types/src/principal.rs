//! Who a verified token names, as the policies see them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The subject of a request (the WIT `principal`): built by the engine from
/// a verified token's claims, or vouched for by a trusted host.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Principal {
    /// The Cedar entity type principals have in the bundle, e.g. `User`.
    pub entity_type: String,
    /// `sub`.
    pub subject: String,
    /// `client_id` (or `azp`); empty when absent.
    #[serde(default)]
    pub client_id: String,
    /// The token's scopes.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// The subject's groups (from the claim the bundle names).
    #[serde(default)]
    pub groups: Vec<String>,
    /// The subject's roles (from the claim the bundle names).
    #[serde(default)]
    pub roles: Vec<String>,
    /// The subject's tenant; empty when absent.
    #[serde(default)]
    pub tenant: String,
    /// The token's issuer.
    pub issuer: String,
    /// The attributes the bundle maps from claims (`[principal.attributes]`),
    /// by name; absent from the JSON when there are none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, AttributeValue>,
}

/// The value of a mapped principal attribute, typed as Cedar sees it (the
/// WIT `attribute-value`). In JSON, one member naming the type:
/// `{"string": "finance"}`, `{"datetime": 1767225600}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum AttributeValue {
    /// A Cedar `String`.
    String(String),
    /// A Cedar `Long`.
    Long(i64),
    /// A Cedar `Bool`.
    Bool(bool),
    /// A Cedar `Set<String>`: sorted, without repeats.
    Set(Vec<String>),
    /// A Cedar `datetime`, from a claim in Unix seconds (`auth_time`).
    Datetime(u64),
}

impl AttributeValue {
    /// The value as the claim an action token carries it in
    /// (`principal_attributes`): a JSON string, number, boolean, array of
    /// strings, or Unix seconds.
    pub fn to_claim(&self) -> serde_json::Value {
        match self {
            Self::String(s) => s.as_str().into(),
            Self::Long(n) => (*n).into(),
            Self::Bool(b) => (*b).into(),
            Self::Set(v) => v.clone().into(),
            Self::Datetime(t) => (*t).into(),
        }
    }
}

/// A verified access token (the WIT `credential`): who it names, and what a
/// host needs to know of the token itself to let its bearer act as a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credential {
    /// Who the token names; their identity is (`issuer`, `subject`).
    pub principal: Principal,
    /// `exp`, in Unix seconds.
    pub expires_at: u64,
    /// `auth_time`, in Unix seconds: when the person last signed in, if
    /// the token says.
    pub auth_time: Option<u64>,
    /// Whether the token is meant for approving: from a client its issuer
    /// lists in `approver_clients`, or with its `approval_scope`. Only such
    /// a token may vote.
    pub approver: bool,
}
