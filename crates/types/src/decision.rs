//! The decision: what was decided, why, and everything a host must act on,
//! as fields. A host never re-parses a header or a JSON string the engine
//! produced: who acts, on what, under which approval, and what single-use
//! record to keep are all here. The JSON form is what `greenlight check`
//! prints and the conformance vectors pin.

use serde::{Deserialize, Serialize};

use crate::action::Action;
use crate::approver::Approver;
use crate::principal::Principal;

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
            verdict: Verdict::Deny(Denial::new(code, message)),
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
    /// Refuse it for now: the person must sign in again, more strongly or
    /// more recently (RFC 9470), and the client retry with the new token.
    StepUpRequired(StepUp),
}

/// What sign-in a policy requires that the token does not show (RFC 9470).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepUp {
    /// Acceptable authentication context classes, in the policy's order
    /// (`@acr`); empty when any will do.
    pub acr_values: Vec<String>,
    /// The oldest acceptable sign-in, in seconds before the request
    /// (`@max_age`); `None` when any age will do.
    pub max_age: Option<u64>,
    /// What is short, for a person.
    pub message: String,
}

/// The headers a gateway adds upstream for an allowance: who acts, what,
/// and under which approval. Derived here only, from the typed fields.
pub mod forward {
    /// The verified subject.
    pub const SUBJECT: &str = "x-greenlight-subject";
    /// The subject's issuer: with several issuers, the subject alone does
    /// not name a person (identity is the pair).
    pub const ISSUER: &str = "x-greenlight-issuer";
    /// The action id.
    pub const ACTION: &str = "x-greenlight-action";
    /// The approval that allowed the action, when one did.
    pub const APPROVAL: &str = "x-greenlight-approval";
    /// What every forward header starts with: a gateway strips client
    /// headers with this prefix (also read with `_` for `-`).
    pub const PREFIX: &str = "x-greenlight-";

    /// Whether a header name could pass for one of the gateway's own: it
    /// starts with [`PREFIX`], in any case, reading `_` as `-` (CGI-style
    /// stacks turn `x-greenlight_subject` into the same variable).
    pub fn is_gateway_header(name: &str) -> bool {
        let prefix = PREFIX.as_bytes();
        name.len() >= prefix.len()
            && name.as_bytes()[..prefix.len()]
                .iter()
                .zip(prefix)
                .all(|(a, b)| a.to_ascii_lowercase() == *b || (*a == b'_' && *b == b'-'))
    }
}

/// The request may proceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// Who acts: the principal of the verified token (an access token, or
    /// the action token the approval produced), or the vouched subject.
    pub principal: Principal,
    /// What they do.
    pub action: Action,
    /// The approval that allowed it: set when an action token, or a window
    /// grant the host found, allowed the action. The host checks that the
    /// approval was not revoked before letting the request through.
    pub approval_id: Option<String>,
    /// Set for a single-use action token: the host must consume it first.
    pub consume: Option<SingleUse>,
    /// Headers for the upstream request, derived from the fields above
    /// ([`Allowance::new`]).
    pub forward_headers: Vec<(String, String)>,
}

impl Allowance {
    /// An allowance with its forward headers derived from who acts, what,
    /// and the approval (the only place they are made).
    pub fn new(
        principal: Principal,
        action: Action,
        approval_id: Option<String>,
        consume: Option<SingleUse>,
    ) -> Self {
        let mut forward_headers = vec![
            (forward::SUBJECT.to_owned(), principal.subject.clone()),
            (forward::ISSUER.to_owned(), principal.issuer.clone()),
            (forward::ACTION.to_owned(), action.name.clone()),
        ];
        if let Some(id) = &approval_id {
            forward_headers.push((forward::APPROVAL.to_owned(), id.clone()));
        }
        Self {
            principal,
            action,
            approval_id,
            consume,
            forward_headers,
        }
    }

    /// Whether a gateway must ask the approval service before letting it
    /// through: a single-use token to consume, or an approval that may
    /// have been revoked.
    pub fn needs_service(&self) -> bool {
        self.consume.is_some() || self.approval_id.is_some()
    }
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
    /// For `token-unknown-key` from an issuer whose keys a host fetches:
    /// that issuer, so the host can refresh its keys (no more often than
    /// the bundle's `[key_fetch]` allows) and decide again. Absent
    /// otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
}

impl Denial {
    /// A denial with its code and message.
    pub fn new(code: DenialCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            issuer: None,
        }
    }

    /// The same denial, naming the issuer whose keys to refresh.
    #[must_use]
    pub fn for_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }
}

impl std::fmt::Display for Denial {
    /// `code: message`, as logs and error descriptions show a denial.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Denial {}

/// What a client needs to ask for approval, and what a host needs to
/// record the request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Challenge {
    /// Who asks: the verified principal of the request.
    pub requester: Principal,
    /// The action to approve.
    pub action: Action,
    /// RFC 9396 `authorization_details` for this exact action.
    pub authorization_details: serde_json::Value,
    /// What the approval requires.
    pub obligation: Obligation,
}

impl Challenge {
    /// Whether a gateway must ask the approval service, which may hold an
    /// active window grant for this action.
    pub fn needs_service(&self) -> bool {
        self.obligation.grant == GrantMode::Window
    }
}

/// How long a grant lasts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GrantMode {
    /// One token, one use.
    Once,
    /// Reusable for a window of seconds.
    Window,
}

impl GrantMode {
    /// `once` or `window`, as in JSON and action tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Once => "once",
            Self::Window => "window",
        }
    }
}

/// What must happen before the action may proceed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Obligation {
    /// Who may approve.
    pub approvers: Vec<Approver>,
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

impl Verdict {
    /// Whether a gateway must ask the approval service about this verdict
    /// instead of answering it alone (docs/gateway.md).
    pub fn needs_service(&self) -> bool {
        match self {
            Self::Allow(a) => a.needs_service(),
            Self::ApprovalRequired(c) => c.needs_service(),
            Self::Deny(_) | Self::StepUpRequired(_) => false,
        }
    }
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
    /// When a claim is given twice, or a time claim is not whole seconds
    /// within range.
    TokenInvalidClaim => "token-invalid-claim",
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
