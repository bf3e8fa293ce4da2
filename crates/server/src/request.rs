//! The request file of `greenlight check`:
//! `{"method", "path", "query", "headers": {...}, "params": {...}}`, where
//! `headers` is an object by name or, to repeat a header as a gateway saw
//! it, a list of `[name, value]` pairs.

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
    /// Headers by name, or as `[name, value]` pairs. Defaults to none.
    #[serde(default)]
    pub headers: Headers,
    /// The JSON parameters (the body). Defaults to none.
    #[serde(default)]
    pub params: Option<Value>,
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
        }
    }
}
