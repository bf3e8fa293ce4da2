//! Who a verified token names, as the policies see them.

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
