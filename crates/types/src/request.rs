//! What a host asks the engine about.

use serde::{Deserialize, Serialize};

/// An HTTP request as a gateway sees it (the WIT `http-request`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequest {
    /// The method, case-insensitive.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string without `?`; empty when absent.
    #[serde(default)]
    pub query: String,
    /// The headers as `(name, value)` pairs; names match case-insensitively.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The JSON parameters (usually the body), as text; `None` for none.
    #[serde(default)]
    pub params: Option<String>,
}

/// An AuthZEN-shaped request (the WIT `access-request`): the action and
/// resource are named directly instead of derived from a route.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequest {
    /// The bearer token (a base access token or an action token).
    pub token: String,
    /// The action id.
    pub action: String,
    /// The resource's entity type.
    pub resource_type: String,
    /// The resource's id.
    pub resource_id: String,
    /// Resource attributes, as a JSON object text.
    #[serde(default)]
    pub resource_properties: Option<String>,
    /// The action's parameters, as a JSON object text.
    #[serde(default)]
    pub context: Option<String>,
}
