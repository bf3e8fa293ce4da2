//! What a host asks the engine about, and the request file people write
//! (`greenlight check`, `POST /v1/check`, a bundle's policy tests):
//! `{"method", "path", "query", "headers": {...}, "params": {...}}`, where
//! `headers` is an object by name or, to repeat a header as a gateway saw
//! it, a list of `[name, value]` pairs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

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
    /// Entities the host adds for this request (Cedar's entity JSON, a
    /// list), beside the bundle's entity data; `None` for none. Only a
    /// host gives them, never the client whose request it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<String>,
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
    /// Entities the host adds for this request (Cedar's entity JSON, a
    /// list), beside the bundle's entity data; `None` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entities: Option<String>,
}

/// A request as a person writes it in a file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestFile {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`. Defaults to empty.
    #[serde(default)]
    pub query: String,
    /// Headers by name, or as `[name, value]` pairs. Defaults to none.
    #[serde(default)]
    pub headers: Headers,
    /// The JSON parameters (the body). Defaults to none.
    #[serde(default)]
    pub params: Option<Value>,
    /// Entities a host adds for this request (Cedar's entity JSON, a
    /// list). Defaults to none.
    #[serde(default)]
    pub entities: Option<Value>,
}

/// The headers of a request file.
#[derive(Clone, Debug, Deserialize)]
#[serde(
    untagged,
    expecting = "headers as an object of strings or a list of [name, value] pairs"
)]
pub enum Headers {
    /// `{"name": "value"}`.
    Map(BTreeMap<String, String>),
    /// `[["name", "value"], ...]`, in order, names repeatable.
    List(Vec<(String, String)>),
}

impl Default for Headers {
    fn default() -> Self {
        Headers::Map(BTreeMap::new())
    }
}

impl Headers {
    fn into_pairs(self) -> Vec<(String, String)> {
        match self {
            Headers::Map(m) => m.into_iter().collect(),
            Headers::List(l) => l,
        }
    }
}

impl RequestFile {
    /// The engine's view of this request, with an optional bearer token
    /// placed in `authorization` (replacing one the file has).
    pub fn into_http(self, token: Option<&str>) -> HttpRequest {
        let mut headers: Vec<(String, String)> = self
            .headers
            .into_pairs()
            .into_iter()
            .filter(|(k, _)| token.is_none() || !k.eq_ignore_ascii_case("authorization"))
            .collect();
        if let Some(t) = token {
            headers.push(("authorization".to_owned(), format!("Bearer {t}")));
        }
        HttpRequest {
            method: self.method,
            path: self.path,
            query: self.query,
            headers,
            params: self.params.map(|p| p.to_string()),
            entities: self.entities.map(|e| e.to_string()),
        }
    }
}
