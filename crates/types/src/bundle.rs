//! A bundle from the outside: its file names, why one is refused, and what
//! a host needs to know about a loaded one.

use serde::{Deserialize, Serialize};

/// The configuration file every bundle has.
pub const CONFIG_FILE: &str = "greenlight.toml";
/// The policy file every bundle has.
pub const POLICY_FILE: &str = "policy.cedar";
/// The optional schema file.
pub const SCHEMA_FILE: &str = "schema.cedarschema";
/// The optional entity data: Cedar's entity JSON.
pub const ENTITIES_FILE: &str = "entities.json";
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
    /// `entities.json` does not parse, does not fit the schema, or breaks
    /// a rule of entity data.
    InvalidEntities,
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
    /// How hosts fetch the keys of issuers the bundle does not carry.
    pub key_fetch: KeyFetchSettings,
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
    /// Where its keys come from.
    pub keys: KeySource,
    /// The signature algorithms its tokens may use, as JOSE names them.
    pub algorithms: Vec<String>,
    /// The `typ` its tokens must carry, if any.
    pub required_typ: Option<String>,
}

/// Where a host gets an issuer's keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum KeySource {
    /// The bundle carries them (`jwks = "file"`): nothing to fetch.
    Bundle,
    /// The host fetches the JWKS at this URL (`jwks_uri`) and hands it to
    /// `set-keys`.
    JwksUri(String),
    /// The host reads the provider's metadata at these URLs, in order
    /// (OpenID Connect discovery, then RFC 8414), checks that its `issuer`
    /// is exactly the issuer's, and fetches the `jwks_uri` it names.
    Discovery(Vec<String>),
}

/// How every host fetches issuers' keys (`[key_fetch]`; a missing setting
/// takes its default).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyFetchSettings {
    /// The longest wait for a connection, in milliseconds.
    pub connect_timeout_ms: u32,
    /// The longest wait for a whole response, in milliseconds.
    pub timeout_ms: u32,
    /// The largest response body accepted, in bytes.
    pub max_bytes: u32,
    /// The shortest time a fetched key set is kept before it is fetched
    /// again, whatever the provider's cache headers say, in seconds; also
    /// the freshness of a response that states none.
    pub min_age_seconds: u64,
    /// The longest time a fetched key set is kept fresh, whatever the
    /// provider's cache headers say, in seconds.
    pub max_age_seconds: u64,
    /// How long past its freshness a key set keeps serving while fetches
    /// fail, in seconds; then the issuer's tokens are denied.
    pub max_stale_seconds: u64,
    /// The shortest time between two fetches caused by tokens naming a
    /// `kid` the key set lacks, per issuer, in seconds.
    pub unknown_kid_interval_seconds: u64,
    /// Whether plain HTTP may be used to a loopback address (a provider
    /// on the same machine, as in tests). Never to any other address.
    pub allow_http_loopback: bool,
}

impl Default for KeyFetchSettings {
    /// 2 s to connect, 5 s in all, 512 KiB, fresh between 5 minutes and a
    /// day, stale for at most a day more, an unknown `kid` refetches at
    /// most every 30 s, HTTPS only.
    fn default() -> Self {
        Self {
            connect_timeout_ms: 2_000,
            timeout_ms: 5_000,
            max_bytes: 512 * 1024,
            min_age_seconds: 300,
            max_age_seconds: 86_400,
            max_stale_seconds: 86_400,
            unknown_kid_interval_seconds: 30,
            allow_http_loopback: false,
        }
    }
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
