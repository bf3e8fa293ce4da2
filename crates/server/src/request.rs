//! The request file of `greenlight check`:
//! `{"method", "path", "query", "headers": {...}, "params": {...}}`.

use std::collections::BTreeMap;

use greenlight_core::HttpRequest;
use serde::Deserialize;
use serde_json::Value;

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
    /// Headers by name. Defaults to none.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The JSON parameters (the body). Defaults to none.
    #[serde(default)]
    pub params: Option<Value>,
}

impl RequestFile {
    /// The engine's view of this request, with an optional bearer token
    /// placed in `authorization` (replacing one the file has).
    pub fn into_http(self, token: Option<&str>) -> HttpRequest {
        let mut headers: Vec<(String, String)> = self
            .headers
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
        }
    }
}
