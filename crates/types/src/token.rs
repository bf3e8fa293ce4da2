//! What the engine tells about tokens outside a decision.

use serde::{Deserialize, Serialize};

use crate::decision::GrantMode;
use crate::principal::Principal;

/// The `typ` of Greenlight's action tokens (RFC 8725 §3.11: explicit
/// typing), so no resource server that accepts access tokens (`at+jwt`)
/// can mistake one for an access token, and an access token of
/// Greenlight's issuer is never taken for an action token.
pub const ACTION_TOKEN_TYP: &str = "greenlight-action+jwt";

/// The claims of a Greenlight action token verified with exactly the rules
/// of enforcement (the WIT `action-token`, from `inspect`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionToken {
    /// Who it was minted for, as a decision would see them; `issuer` is
    /// Greenlight's.
    pub principal: Principal,
    /// The audience it was checked against.
    pub audience: String,
    /// `jti`.
    pub token_id: String,
    /// `iat`, if present.
    pub issued_at: Option<u64>,
    /// `exp`.
    pub expires_at: u64,
    /// `act_digest`: the one action it allows.
    pub digest: String,
    /// `grant`: single use or window.
    pub grant: GrantMode,
    /// `approval_id`: the approval that produced it, if any.
    pub approval_id: Option<String>,
    /// `approvers`: who approved, if any.
    pub approvers: Vec<String>,
    /// `authorization_details` (RFC 9396), `null` when absent.
    pub authorization_details: serde_json::Value,
}

/// Counters of one engine: how often a token was checked and how often that
/// took a signature verification (the rest were answered from the cache of
/// verified tokens).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Tokens checked (each decision, authentication or inspection checks one).
    pub token_checks: u64,
    /// Signature verifications: token checks the cache could not answer.
    pub signature_checks: u64,
}

impl std::ops::Add for EngineStats {
    type Output = Self;

    fn add(self, other: Self) -> Self {
        Self {
            token_checks: self.token_checks.saturating_add(other.token_checks),
            signature_checks: self.signature_checks.saturating_add(other.signature_checks),
        }
    }
}
