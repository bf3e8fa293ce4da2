//! RFC 9457 problems, as the profile's endpoints answer errors.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::super::ApiError;

/// An RFC 9457 problem: `type`, `title`, `status`, `detail`, and the
/// OAuth-style `error` code beside them. A `401` keeps its
/// `WWW-Authenticate` challenge (RFC 6750).
#[derive(Debug)]
pub struct Problem {
    kind: String,
    error: ApiError,
}

impl Problem {
    /// A problem of one of the profile's types.
    pub fn new(kind: &'static str, status: u16, detail: impl Into<String>) -> Self {
        // The profile's code is the type's last segment.
        let code = kind.rsplit(':').next().unwrap_or(kind);
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        Self {
            kind: kind.to_owned(),
            error: ApiError::new(status, code, detail),
        }
    }

    /// The same problem, its detail prefixed with where it arose (an item
    /// of a bulk submission).
    pub fn at(mut self, place: &str) -> Self {
        self.error.description = format!("{place}: {}", self.error.description);
        self
    }
}

impl From<ApiError> for Problem {
    fn from(error: ApiError) -> Self {
        Self {
            kind: format!("urn:greenlight:error:{}", error.code),
            error,
        }
    }
}

impl From<greenlight_store::StoreError> for Problem {
    fn from(e: greenlight_store::StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.error.status;
        let mut body = json!({
            "type": self.kind,
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.error.description,
            "error": self.error.code,
        });
        if let Value::Object(m) = &mut body {
            for (k, v) in self.error.extra.iter() {
                m.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        // The error's own response carries the headers (challenge,
        // Retry-After, no-store); only the body changes.
        let (mut parts, _) = self.error.into_response().into_parts();
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        parts.headers.remove(header::CONTENT_LENGTH);
        Response::from_parts(parts, axum::body::Body::from(body.to_string()))
    }
}
