//! A bundle from the outside: its file names, why one is refused, and what
//! a host needs to know about a loaded one.

use serde::{Deserialize, Serialize};

/// The configuration file every bundle has.
pub const CONFIG_FILE: &str = "greenlight.toml";
/// The policy file every bundle has.
pub const POLICY_FILE: &str = "policy.cedar";
/// The optional schema file.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The name `set-keys` uses for Greenlight's own action-token issuer.
pub const ACTION_ISSUER_NAME: &str = "greenlight";

/// What kind of problem a bundle has (the WIT `problem-kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A required file is absent.
    MissingFile,
    /// `greenlight.toml` is invalid.
    InvalidConfig,
    /// `policy.cedar` is invalid.
    InvalidPolicy,
    /// `schema.cedarschema` is invalid, or a policy violates it.
    InvalidSchema,
    /// A key set is invalid.
    InvalidKeys,
}

/// One problem in a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Its class.
    pub kind: ProblemKind,
    /// The file it is in.
    pub file: String,
    /// 1-based line, where known.
    pub line: Option<u32>,
    /// 1-based column, where known.
    pub column: Option<u32>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            (Some(l), None) => write!(f, "{}:{l}: {}", self.file, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why a bundle or key set was refused (the WIT `load-error`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Every problem found.
    #[error("the bundle has {} problem(s): {}", .0.len(), .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidBundle(Vec<Problem>),
    /// Anything else.
    #[error("{0}")]
    Other(String),
}

/// What a host needs to know about a loaded bundle (the WIT `bundle-info`):
/// read from the engine, so a host never parses `greenlight.toml` itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleInfo {
    /// Hex SHA-256 of the bundle, as every decision reports it.
    pub policy_hash: String,
    /// The claims that build a principal, for hosts that mint tokens
    /// a decision must read the same way.
    pub claims: ClaimNames,
    /// The issuers of access tokens.
    pub issuers: Vec<IssuerInfo>,
    /// Greenlight's own action tokens, when the bundle accepts them.
    pub action_tokens: Option<ActionTokenSettings>,
    /// The approval workflow's settings.
    pub approvals: ApprovalSettings,
    /// Whether the bundle has a `[dev]` signing key (for trying things,
    /// never for production).
    pub development: bool,
}

/// Claim names and the principal's entity type (`[principal]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimNames {
    /// The principal's Cedar entity type, e.g. `User`.
    pub entity_type: String,
    /// The scopes claim, e.g. `scope`.
    pub scope: String,
    /// The groups claim.
    pub groups: String,
    /// The roles claim.
    pub roles: String,
    /// The tenant claim.
    pub tenant: String,
}

/// One issuer of access tokens (`[[issuers]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerInfo {
    /// The exact `iss`.
    pub issuer: String,
    /// The audience its tokens must name.
    pub audience: String,
    /// Where the host fetches its keys, when the bundle does not carry them.
    pub jwks_uri: Option<String>,
}

/// How Greenlight's action tokens are minted and checked (`[action_tokens]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTokenSettings {
    /// The `iss` of minted tokens.
    pub issuer: String,
    /// The `aud` of minted tokens.
    pub audience: String,
    /// The longest life of a minted token, in seconds.
    pub ttl_seconds: u64,
    /// The clock leeway enforcement allows, in seconds: a consumed token
    /// id must be remembered this long past its `exp`.
    pub leeway_seconds: u64,
}

/// The approval workflow's settings (`[approvals]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// How long a pending approval stays open when a policy has no `@ttl`.
    pub default_ttl_seconds: u64,
    /// The CIBA polling interval clients are told, in seconds.
    pub poll_interval_seconds: u64,
    /// How recent the sign-in behind a token must be, in seconds, for its
    /// subject to confirm their own action.
    pub confirm_max_age_seconds: u64,
}
