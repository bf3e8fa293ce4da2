//! From a decision to the HTTP answer a gateway gives (docs/gateway.md).
//!
//! Every host turns a decision into the same answer: an allow passes
//! through, approval-required is a `401` challenge carrying what the client
//! needs to ask, step-up-required RFC 9470's `401` challenge naming the
//! sign-in the policy needs, a deny gets the status its code calls for. This is the one
//! mapping: the component exports it (`gateway.respond`), and the Rust host,
//! the Python and Node middlewares and every other gateway call that export
//! rather than keep a table of their own. The vectors pin the answer per
//! decision.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::decision::{Decision, DenialCode, StepUp, Verdict};

/// The answer a gateway gives of its own, or none for an allow.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// The HTTP status; 0 for an allow, which the upstream answers.
    pub status: u16,
    /// Lower-case `(name, value)` pairs: `www-authenticate` when there is
    /// one, then `content-type` and `cache-control`.
    pub headers: Vec<(String, String)>,
    /// The JSON body, `null` for an allow.
    pub body: Value,
}

/// The answer for `decision`, with the approval service at `service` (its
/// base URL, without a trailing slash) named in challenges.
pub fn respond(decision: &Decision, service: &str) -> Response {
    match &decision.verdict {
        Verdict::Allow(_) => Response {
            status: 0,
            headers: Vec::new(),
            body: Value::Null,
        },
        Verdict::ApprovalRequired(c) => {
            let description = if c.obligation.message.is_empty() {
                "approval required"
            } else {
                c.obligation.message.as_str()
            };
            let body = json!({
                "error": "insufficient_authorization",
                "error_description": description,
                "code": "approval-required",
                "authorization_details": c.authorization_details,
                "action_digest": c.action.digest,
                "obligation": c.obligation,
                "ask": {
                    "backchannel_authentication_endpoint": format!("{service}/oauth/bc-authorize"),
                    "token_endpoint": format!("{service}/oauth/token"),
                },
            });
            json_response(
                401,
                Some(
                    "Bearer error=\"insufficient_authorization\", error_description=\"approval required\""
                        .to_owned(),
                ),
                body,
            )
        }
        Verdict::StepUpRequired(s) => {
            let mut body = json!({
                "error": "insufficient_user_authentication",
                "error_description": s.message,
                "code": "step-up-required",
            });
            if !s.acr_values.is_empty() {
                body["acr_values"] = json!(s.acr_values.join(" "));
            }
            if let Some(age) = s.max_age {
                body["max_age"] = json!(age);
            }
            json_response(401, Some(step_up_challenge(s)), body)
        }
        Verdict::Deny(d) => {
            let (status, error) = status_of(d.code);
            let challenge = (status == 401).then(|| {
                if d.code == DenialCode::TokenMissing {
                    "Bearer".to_owned()
                } else {
                    format!(
                        "Bearer error=\"invalid_token\", error_description=\"{}\"",
                        quoted(&d.message)
                    )
                }
            });
            let body = json!({
                "error": error,
                "error_description": d.message,
                "code": d.code.as_str(),
            });
            json_response(status, challenge, body)
        }
    }
}

/// RFC 9470's `WWW-Authenticate` value for a step-up: the error, the
/// message, and `acr_values` and `max_age` when the policy names them.
pub fn step_up_challenge(s: &StepUp) -> String {
    let mut challenge = format!(
        "Bearer error=\"insufficient_user_authentication\", error_description=\"{}\"",
        quoted(&s.message)
    );
    if !s.acr_values.is_empty() {
        challenge.push_str(&format!(
            ", acr_values=\"{}\"",
            quoted(&s.acr_values.join(" "))
        ));
    }
    if let Some(age) = s.max_age {
        challenge.push_str(&format!(", max_age={age}"));
    }
    challenge
}

/// The HTTP status and OAuth `error` of a denial code: `400
/// invalid_request`, `401 invalid_token` (the credential is at fault),
/// `403 access_denied` (the credential is fine, the action is not) or
/// `503 temporarily_unavailable` (the engine or the store failed).
pub fn status_of(code: DenialCode) -> (u16, &'static str) {
    use DenialCode as C;
    match code {
        C::RequestInvalid => (400, "invalid_request"),
        C::TokenMissing
        | C::TokenTooLarge
        | C::TokenMalformed
        | C::TokenUnsupportedAlgorithm
        | C::TokenAlgorithmNotAllowed
        | C::TokenUnknownIssuer
        | C::TokenUnknownKey
        | C::TokenKeyMismatch
        | C::TokenBadSignature
        | C::TokenWrongType
        | C::TokenUnknownCriticalHeader
        | C::TokenWrongAudience
        | C::TokenExpired
        | C::TokenNotYetValid
        | C::TokenIssuedInFuture
        | C::TokenMissingClaim
        | C::TokenInvalidClaim
        | C::ActionTokenInvalid
        | C::ActionTokenReplayed => (401, "invalid_token"),
        C::RouteNotFound
        | C::PolicyForbidden
        | C::PolicyNoPermit
        | C::ActionTokenDigestMismatch => (403, "access_denied"),
        C::EngineTrap
        | C::EngineTimeout
        | C::EngineMemoryExceeded
        | C::EngineInvalidOutput
        | C::EngineUnavailable => (503, "temporarily_unavailable"),
    }
}

/// A message made safe for one quoted string of a `www-authenticate` header.
fn quoted(message: &str) -> String {
    message
        .chars()
        .map(|c| match c {
            '"' => '\'',
            '\\' => '/',
            c if c.is_control() => ' ',
            c => c,
        })
        .collect()
}

fn json_response(status: u16, challenge: Option<String>, body: Value) -> Response {
    let mut headers = Vec::with_capacity(3);
    if let Some(c) = challenge {
        headers.push(("www-authenticate".to_owned(), c));
    }
    headers.push(("content-type".to_owned(), "application/json".to_owned()));
    headers.push(("cache-control".to_owned(), "no-store".to_owned()));
    Response {
        status,
        headers,
        body,
    }
}

/// Whether a body of this `content-type` is the request's parameters:
/// `application/json` or `application/*+json` (docs/gateway.md; a body
/// without a content type is too, which the caller decides).
pub fn is_json_media_type(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    media == "application/json"
        || media.strip_prefix("application/").is_some_and(|sub| {
            sub.strip_suffix("+json").is_some_and(|base| {
                !base.is_empty()
                    && base
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every denial code against the table of docs/gateway.md, written out
    /// here by hand rather than derived from `status_of`.
    #[test]
    fn every_denial_code_gets_the_status_of_the_documented_table() {
        let table: [(&str, u16, &str); 30] = [
            ("request-invalid", 400, "invalid_request"),
            ("route-not-found", 403, "access_denied"),
            ("token-missing", 401, "invalid_token"),
            ("token-too-large", 401, "invalid_token"),
            ("token-malformed", 401, "invalid_token"),
            ("token-unsupported-algorithm", 401, "invalid_token"),
            ("token-algorithm-not-allowed", 401, "invalid_token"),
            ("token-unknown-issuer", 401, "invalid_token"),
            ("token-unknown-key", 401, "invalid_token"),
            ("token-key-mismatch", 401, "invalid_token"),
            ("token-bad-signature", 401, "invalid_token"),
            ("token-wrong-type", 401, "invalid_token"),
            ("token-unknown-critical-header", 401, "invalid_token"),
            ("token-wrong-audience", 401, "invalid_token"),
            ("token-expired", 401, "invalid_token"),
            ("token-not-yet-valid", 401, "invalid_token"),
            ("token-issued-in-future", 401, "invalid_token"),
            ("token-missing-claim", 401, "invalid_token"),
            ("token-invalid-claim", 401, "invalid_token"),
            ("policy-forbidden", 403, "access_denied"),
            ("policy-no-permit", 403, "access_denied"),
            ("action-token-digest-mismatch", 403, "access_denied"),
            ("action-token-invalid", 401, "invalid_token"),
            ("action-token-replayed", 401, "invalid_token"),
            ("engine-trap", 503, "temporarily_unavailable"),
            ("engine-timeout", 503, "temporarily_unavailable"),
            ("engine-memory-exceeded", 503, "temporarily_unavailable"),
            ("engine-invalid-output", 503, "temporarily_unavailable"),
            ("engine-unavailable", 503, "temporarily_unavailable"),
            ("approval-required", 401, "insufficient_authorization"),
        ];
        for (code, status, error) in table {
            let d: Decision = if code == "approval-required" {
                serde_json::from_value(json!({
                    "verdict": { "kind": "approval-required",
                        "requester": { "entity_type": "User", "subject": "alice", "issuer": "i" },
                        "action": { "name": "a", "resource_type": "T", "resource_id": "1",
                                    "params": {}, "digest": "d" },
                        "authorization_details": [], "obligation": { "approvers": ["subject"],
                        "quorum": 1, "ttl_seconds": 60, "grant": "once", "window_seconds": 0,
                        "reason_required": false, "message": "" } },
                    "reasons": [], "policy_hash": "h" }))
                .expect("a challenge")
            } else {
                serde_json::from_value(json!({
                    "verdict": { "kind": "deny", "code": code, "message": "m" },
                    "reasons": [], "policy_hash": "h" }))
                .expect("a known code")
            };
            let r = respond(&d, "s");
            assert_eq!(
                (r.status, r.body["error"].as_str()),
                (status, Some(error)),
                "{code}"
            );
            assert_eq!(r.body["code"], code);
            let challenge = r.headers.iter().any(|(n, _)| n == "www-authenticate");
            assert_eq!(
                challenge,
                status == 401,
                "{code}: a challenge exactly with 401"
            );
        }
    }

    #[test]
    fn a_step_up_is_rfc_9470s_challenge() {
        let d: Decision = serde_json::from_value(json!({
            "verdict": { "kind": "step-up-required", "acr_values": ["urn:mfa", "phr"],
                         "max_age": 300, "message": "sign in with \"mfa\"" },
            "reasons": ["refund-strong"], "policy_hash": "h" }))
        .expect("a step-up");
        let r = respond(&d, "s");
        assert_eq!(r.status, 401);
        assert_eq!(
            r.headers[0].1,
            "Bearer error=\"insufficient_user_authentication\", error_description=\"sign in with 'mfa'\", acr_values=\"urn:mfa phr\", max_age=300"
        );
        assert_eq!(
            r.body,
            json!({"error": "insufficient_user_authentication", "error_description": "sign in with \"mfa\"",
                   "code": "step-up-required", "acr_values": "urn:mfa phr", "max_age": 300})
        );
        let d: Decision = serde_json::from_value(json!({
            "verdict": { "kind": "step-up-required", "acr_values": [], "max_age": null,
                         "message": "m" },
            "reasons": [], "policy_hash": "h" }))
        .expect("a step-up");
        let r = respond(&d, "s");
        assert_eq!(
            r.headers[0].1,
            "Bearer error=\"insufficient_user_authentication\", error_description=\"m\""
        );
    }

    #[test]
    fn a_missing_token_gets_a_bare_bearer_challenge() {
        let d = Decision::deny(DenialCode::TokenMissing, "no bearer token", "h");
        let r = respond(&d, "https://gl.example");
        assert_eq!(r.status, 401);
        assert_eq!(r.headers[0], ("www-authenticate".into(), "Bearer".into()));
        assert_eq!(
            r.body,
            json!({"error": "invalid_token", "error_description": "no bearer token", "code": "token-missing"})
        );
    }

    #[test]
    fn quotes_and_backslashes_cannot_break_the_header() {
        let d = Decision::deny(DenialCode::TokenMalformed, "bad \"x\\y\"\n", "h");
        let r = respond(&d, "s");
        assert_eq!(
            r.headers[0].1,
            "Bearer error=\"invalid_token\", error_description=\"bad 'x/y' \""
        );
    }

    #[test]
    fn engine_failures_are_503_without_a_challenge() {
        let d = Decision::deny(DenialCode::EngineTimeout, "slow", "h");
        let r = respond(&d, "s");
        assert_eq!(r.status, 503);
        assert_eq!(
            r.headers,
            vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into())
            ]
        );
    }

    #[test]
    fn json_bodies_are_application_json_or_a_json_suffix() {
        assert!(is_json_media_type("application/json"));
        assert!(is_json_media_type("Application/JSON; charset=utf-8"));
        assert!(is_json_media_type("application/merge-patch+json"));
        assert!(!is_json_media_type("application/+json"));
        assert!(!is_json_media_type("text/plain"));
        assert!(!is_json_media_type("application/x-www-form-urlencoded"));
        assert!(!is_json_media_type("multipart/form-data; boundary=x"));
    }

    #[test]
    fn gateway_header_names_are_recognised_with_either_separator() {
        use crate::decision::forward::is_gateway_header;
        assert!(is_gateway_header("x-greenlight-subject"));
        assert!(is_gateway_header("X-Greenlight-Whatever"));
        assert!(is_gateway_header("x-greenlight_subject"));
        assert!(is_gateway_header("x_greenlight_approval"));
        assert!(!is_gateway_header("x-greenlight"));
        assert!(!is_gateway_header("x-greenlit-subject"));
        assert!(!is_gateway_header("authorization"));
    }
}
