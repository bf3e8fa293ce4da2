//! The decision types: the same shapes as the WIT `types` interface, with
//! the JSON form `greenlight check` prints and the conformance vectors pin.

use serde::{Deserialize, Serialize};

/// The answer to one request, with the policies that determined it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Allow, deny or approval-required.
    pub verdict: Verdict,
    /// The ids of the policies that determined the verdict, sorted.
    pub reasons: Vec<String>,
    /// Hex SHA-256 of the loaded bundle, naming the policy version.
    pub policy_hash: String,
}

impl Decision {
    /// A deny with no determining policies.
    pub fn deny(code: DenialCode, message: impl Into<String>, policy_hash: &str) -> Self {
        Self {
            verdict: Verdict::Deny(Denial {
                code,
                message: message.into(),
            }),
            reasons: Vec::new(),
            policy_hash: policy_hash.to_owned(),
        }
    }

    /// The decision as the compact JSON that every host must print the same.
    pub fn to_json(&self) -> String {
        // A Decision holds only strings, integers, booleans and JSON values:
        // serialising it cannot fail.
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

/// The verdict on one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Verdict {
    /// Let it through.
    Allow(Allowance),
    /// Refuse it.
    Deny(Denial),
    /// Refuse it for now: this exact action needs approval.
    ApprovalRequired(Challenge),
}

/// The request may proceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// The authenticated subject.
    pub subject: String,
    /// Set for a single-use action token: the host must consume it first.
    pub consume: Option<SingleUse>,
    /// Headers for the upstream request.
    pub forward_headers: Vec<(String, String)>,
}

/// A single-use action token the host must record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleUse {
    /// The token's `jti`.
    pub token_id: String,
    /// The token's `exp`, in Unix seconds.
    pub expires_at: u64,
}

/// A refusal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Denial {
    /// The failure class.
    pub code: DenialCode,
    /// A message for a person; never parse it.
    pub message: String,
}

/// What a client needs to ask for approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// RFC 9396 `authorization_details` for this exact action.
    pub authorization_details: serde_json::Value,
    /// base64url SHA-256 of the canonical action.
    pub action_digest: String,
    /// What the approval requires.
    pub obligation: Obligation,
}

/// How long a grant lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantMode {
    /// One token, one use.
    Once,
    /// Reusable for a window of seconds.
    Window,
}

/// What must happen before the action may proceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Obligation {
    /// Who may approve (`group:NAME`, `user:SUBJECT`, `subject`).
    pub approvers: Vec<String>,
    /// Distinct approvals needed.
    pub quorum: u32,
    /// How long the pending approval stays open, in seconds.
    pub ttl_seconds: u64,
    /// Single-use or window.
    pub grant: GrantMode,
    /// The window length for `window`, 0 for `once`.
    pub window_seconds: u64,
    /// Whether approvers must give a reason.
    pub reason_required: bool,
    /// The policy's `@message`, possibly empty.
    pub message: String,
}

macro_rules! denial_codes {
    ($($(#[$doc:meta])* $variant:ident => $text:literal,)*) => {
        /// Why a request was denied; each failure class has its own code.
        /// The same cases, in the same order, as the WIT `denial-code`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum DenialCode {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)*
        }

        impl DenialCode {
            /// Every code, in WIT order.
            pub const ALL: &'static [DenialCode] = &[$(DenialCode::$variant,)*];

            /// The kebab-case name used in JSON and in the WIT.
            pub fn as_str(self) -> &'static str {
                match self { $(DenialCode::$variant => $text,)* }
            }
        }
    };
}

denial_codes! {
    /// When the request itself is malformed.
    RequestInvalid => "request-invalid",
    /// When no route matches.
    RouteNotFound => "route-not-found",
    /// When no bearer token was presented.
    TokenMissing => "token-missing",
    /// When the token is over the size cap.
    TokenTooLarge => "token-too-large",
    /// When the token is not a JWS compact serialisation.
    TokenMalformed => "token-malformed",
    /// When the algorithm is not implemented.
    TokenUnsupportedAlgorithm => "token-unsupported-algorithm",
    /// When the issuer does not allow the algorithm.
    TokenAlgorithmNotAllowed => "token-algorithm-not-allowed",
    /// When `iss` names no configured issuer.
    TokenUnknownIssuer => "token-unknown-issuer",
    /// When no key matches `kid`.
    TokenUnknownKey => "token-unknown-key",
    /// When the key is bound to another algorithm or type.
    TokenKeyMismatch => "token-key-mismatch",
    /// When the signature does not verify.
    TokenBadSignature => "token-bad-signature",
    /// When `typ` is not the required one.
    TokenWrongType => "token-wrong-type",
    /// When `crit` names an unknown extension.
    TokenUnknownCriticalHeader => "token-unknown-critical-header",
    /// When `aud` does not name the audience.
    TokenWrongAudience => "token-wrong-audience",
    /// When the token has expired.
    TokenExpired => "token-expired",
    /// When `nbf` is in the future.
    TokenNotYetValid => "token-not-yet-valid",
    /// When `iat` is in the future.
    TokenIssuedInFuture => "token-issued-in-future",
    /// When a required claim is absent or mistyped.
    TokenMissingClaim => "token-missing-claim",
    /// When a `forbid` policy matched.
    PolicyForbidden => "policy-forbidden",
    /// When no `permit` matched.
    PolicyNoPermit => "policy-no-permit",
    /// When an action token is used for another action.
    ActionTokenDigestMismatch => "action-token-digest-mismatch",
    /// When an action token lacks Greenlight's claims.
    ActionTokenInvalid => "action-token-invalid",
    /// When a single-use action token was used before (host-side).
    ActionTokenReplayed => "action-token-replayed",
    /// When the policy module trapped (host-side).
    EngineTrap => "engine-trap",
    /// When the policy module ran out of time (host-side).
    EngineTimeout => "engine-timeout",
    /// When the policy module ran out of memory (host-side).
    EngineMemoryExceeded => "engine-memory-exceeded",
    /// When the policy module returned malformed output (host-side).
    EngineInvalidOutput => "engine-invalid-output",
    /// When no engine is available (host-side).
    EngineUnavailable => "engine-unavailable",
}

impl std::fmt::Display for DenialCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
