//! Error responses: OAuth 2.0 style (`{"error", "error_description"}`) for
//! every endpoint, with the status code each case calls for.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The OAuth error code, e.g. `invalid_request`.
    pub code: &'static str,
    /// A description for a person.
    pub description: String,
    /// More members of the JSON body (e.g. `auth_req_id`).
    /// (Boxed: most errors have none, and every `Result` carries the size.)
    pub extra: Box<Map<String, Value>>,
    /// Seconds to wait before trying again (`Retry-After`), for a `429`.
    pub retry_after: Option<u32>,
    /// The `WWW-Authenticate` value of a `401`, when not the plain one
    /// made of the code and description (a step-up's).
    pub challenge: Option<String>,
}

impl ApiError {
    /// Builds an error.
    pub fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: description.into(),
            extra: Box::default(),
            retry_after: None,
            challenge: None,
        }
    }

    /// Adds the members of `object` to the body (not `error` or
    /// `error_description`, which stay the error's own).
    pub fn with_extra(mut self, object: Value) -> Self {
        if let Value::Object(m) = object {
            for (k, v) in m {
                if k != "error" && k != "error_description" {
                    self.extra.insert(k, v);
                }
            }
        }
        self
    }

    /// At the token endpoint a refused or unacceptable `subject_token` is a
    /// bad request (RFC 8693 §2.2.2): 401 and 403 become 400
    /// `invalid_request`, with the same description; a step-up stays
    /// `insufficient_user_authentication`, with what to sign in with.
    pub fn at_token_endpoint(self) -> Self {
        if self.code == "insufficient_user_authentication" {
            // What to sign in with still matters to the client.
            Self {
                status: StatusCode::BAD_REQUEST,
                ..self
            }
        } else if self.status == StatusCode::UNAUTHORIZED || self.status == StatusCode::FORBIDDEN {
            Self {
                status: StatusCode::BAD_REQUEST,
                code: "invalid_request",
                ..self
            }
        } else {
            self
        }
    }

    /// 400 `invalid_request`.
    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    /// A body axum could not read, with the status it chose: 413 for a body
    /// over the limit, 415 for a wrong content type, 400 or 422 otherwise.
    pub fn rejected(status: StatusCode, text: String) -> Self {
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "request_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_request",
        };
        let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
            StatusCode::BAD_REQUEST
        } else {
            status
        };
        Self::new(status, code, text)
    }

    /// The answer to a denial the component gave about the caller's own
    /// request, with the status the gateway mapping gives its code
    /// (`greenlight_types::gateway::status_of`): 400 `invalid_request`, 401
    /// `invalid_token`, 403 `access_denied` or 503 `temporarily_unavailable`.
    pub fn from_denial(d: &greenlight_types::Denial) -> Self {
        let (status, error) = greenlight_types::gateway::status_of(d.code);
        Self::new(
            StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            error,
            d.to_string(),
        )
    }

    /// 401 `insufficient_user_authentication` (RFC 9470): the caller must
    /// sign in again as the policy requires; `acr_values` and `max_age`
    /// are in the body and the challenge.
    pub fn step_up(s: &greenlight_types::StepUp) -> Self {
        let mut extra = json!({});
        if !s.acr_values.is_empty() {
            extra["acr_values"] = json!(s.acr_values.join(" "));
        }
        if let Some(age) = s.max_age {
            extra["max_age"] = json!(age);
        }
        Self {
            challenge: Some(greenlight_types::gateway::step_up_challenge(s)),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "insufficient_user_authentication",
                s.message.clone(),
            )
            .with_extra(extra)
        }
    }

    /// 401 `invalid_token`: the caller's own token was refused.
    pub fn invalid_token(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", description)
    }

    /// 403 `access_denied`.
    pub fn forbidden(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", description)
    }

    /// 404 `not_found`.
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", description)
    }

    /// 500 `server_error`: logged, and described without internals.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "the server could not complete the request; nothing was changed unless the audit log says so",
        )
    }
}

impl From<greenlight_store::StoreError> for ApiError {
    fn from(e: greenlight_store::StoreError) -> Self {
        match e {
            // A requester over their quota: RFC 6585 §4's `429`, with when.
            greenlight_store::StoreError::QuotaReached {
                message,
                retry_after,
            } => ApiError {
                retry_after: Some(u32::try_from(retry_after.max(1)).unwrap_or(u32::MAX)),
                ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too_many_requests", message)
            },
            e => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "error_description": self.description });
        if let Value::Object(m) = &mut body {
            m.extend(*self.extra);
        }
        let mut resp = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let value = self.challenge.unwrap_or_else(|| {
                format!(
                    "Bearer error=\"{}\", error_description=\"{}\"",
                    self.code,
                    self.description.replace(['"', '\\'], "'")
                )
            });
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        if let Some(after) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(after.max(1)));
        }
        resp.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}
