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
