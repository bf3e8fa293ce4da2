//! `greenlight.toml`: the shape of a bundle's configuration.
//!
//! Every table refuses unknown keys, so a typo is a load error with its line
//! and column rather than a silently ignored setting.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The leeway applied to `exp`, `nbf` and `iat` when an issuer names none.
/// One minute absorbs ordinary clock skew between an IdP and a gateway.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 60;

/// How long a pending approval stays open when a policy gives no `@ttl`.
pub const DEFAULT_APPROVAL_TTL_SECONDS: u64 = 900;

/// The whole of `greenlight.toml`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The identity providers whose access tokens are accepted.
    #[serde(default)]
    pub issuers: Vec<IssuerConfig>,
    /// How Greenlight's own action tokens are recognised and verified.
    pub action_tokens: Option<ActionTokenConfig>,
    /// How a token's claims become the Cedar principal.
    #[serde(default)]
    pub principal: PrincipalConfig,
    /// Defaults for the approval workflow.
    #[serde(default)]
    pub approvals: ApprovalsConfig,
    /// HTTP routes and the actions they perform.
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// MCP tools and the actions their calls perform.
    #[serde(default)]
    pub tools: Vec<ToolConfig>,
    /// A development signing key for `greenlight dev-token`; never for production.
    pub dev: Option<DevConfig>,
    /// How hosts fetch the keys of issuers the bundle does not carry.
    #[serde(default)]
    pub key_fetch: greenlight_types::bundle::KeyFetchSettings,
}

/// One trusted issuer of access tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The exact `iss` value.
    pub issuer: String,
    /// The audience `aud` must name.
    pub audience: String,
    /// The algorithms this issuer signs with; anything else is refused.
    pub algorithms: Vec<String>,
    /// A JWKS file in the bundle.
    pub jwks: Option<String>,
    /// Where the host fetches the JWKS from. With neither `jwks` nor
    /// `jwks_uri`, the host finds it in the issuer's metadata (OpenID
    /// Connect discovery, then RFC 8414).
    pub jwks_uri: Option<String>,
    /// When set, the `typ` header must equal it (RFC 9068: `at+jwt`).
    pub require_typ: Option<String>,
    /// Clock leeway in seconds. Defaults to 60.
    pub leeway: Option<u64>,
    /// The groups this issuer's tokens may assert (`["*"]` for any); a
    /// group a token names outside this list is dropped, so a less trusted
    /// provider cannot make its users members of another's groups.
    /// Defaults to `["*"]` for the first issuer and `[]` for the others.
    pub groups: Option<Vec<String>>,
    /// The clients of this issuer whose tokens are meant for approving:
    /// only such a token (or one with `approval_scope`) may vote. Defaults
    /// to none.
    #[serde(default)]
    pub approver_clients: Vec<String>,
    /// A scope that makes a token of this issuer one meant for approving.
    /// Defaults to none.
    pub approval_scope: Option<String>,
    /// The claim that names the person: `sub` by default. A provider whose
    /// `sub` is pairwise (different for each client, as Microsoft Entra's
    /// access tokens) names the person stably in another claim (`oid`);
    /// without it, the approvals app would see a different person than
    /// the app that asked.
    pub subject_claim: Option<String>,
    /// The claim that names the client: `client_id`, else `azp`, by
    /// default (Entra's v1 tokens: `appid`).
    pub client_claim: Option<String>,
}

/// Greenlight's own action tokens.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionTokenConfig {
    /// The `iss` Greenlight puts in the tokens it mints.
    pub issuer: String,
    /// The `aud` of minted tokens.
    pub audience: String,
    /// Allowed algorithms. Defaults to `["EdDSA"]`.
    #[serde(default = "default_action_algorithms")]
    pub algorithms: Vec<String>,
    /// A JWKS file in the bundle; when absent the host supplies the keys
    /// with `set-keys("greenlight", …)`.
    pub jwks: Option<String>,
    /// The longest lifetime of a minted token, in seconds. Defaults to 300.
    #[serde(default = "default_action_ttl")]
    pub ttl: u64,
    /// Clock leeway in seconds. Defaults to 60.
    pub leeway: Option<u64>,
}

fn default_action_algorithms() -> Vec<String> {
    vec!["EdDSA".to_owned()]
}

fn default_action_ttl() -> u64 {
    300
}

/// Claim names that build the Cedar principal.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrincipalConfig {
    /// The principal's entity type. Defaults to `User`.
    pub entity_type: String,
    /// Space-separated string or array of scopes. Defaults to `scope`.
    pub scope_claim: String,
    /// Array of group names. Defaults to `groups`.
    pub groups_claim: String,
    /// Array of role names. Defaults to `roles`.
    pub roles_claim: String,
    /// The tenant the subject belongs to. Defaults to `tenant`.
    pub tenant_claim: String,
    /// More attributes, each from a claim, by attribute name
    /// (`[principal.attributes.NAME]`). Defaults to none.
    pub attributes: BTreeMap<String, AttributeConfig>,
}

/// One principal attribute read from a claim.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttributeConfig {
    /// The exact name of a top-level claim, dots and slashes included
    /// (`https://example.com/department`).
    pub claim: Option<String>,
    /// A path into nested claims: a JSON pointer (`/realm_access/roles`)
    /// or dot-separated names (`realm_access.roles`).
    pub path: Option<String>,
    /// `String`, `Long`, `Bool`, `Set<String>` or `datetime` (from whole
    /// seconds, such as `auth_time`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether a token without the claim is refused
    /// (`token-missing-claim`). Defaults to `false`.
    #[serde(default)]
    pub required: bool,
    /// The value when the claim is absent; without one, the attribute is
    /// absent too (Cedar: `principal has NAME`).
    pub default: Option<toml::Value>,
    /// The issuers whose tokens this claim is read from (`["*"]` for
    /// every one). Defaults to the first issuer only, as groups: a less
    /// trusted provider cannot say who is in finance. Another issuer's
    /// token gets the default, or no attribute (and is refused when it is
    /// required).
    pub issuers: Option<Vec<String>>,
}

impl Default for PrincipalConfig {
    fn default() -> Self {
        Self {
            entity_type: "User".to_owned(),
            scope_claim: "scope".to_owned(),
            groups_claim: "groups".to_owned(),
            roles_claim: "roles".to_owned(),
            tenant_claim: "tenant".to_owned(),
            attributes: BTreeMap::new(),
        }
    }
}

/// Defaults of the approval workflow.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalsConfig {
    /// The TTL of a pending approval when a policy has no `@ttl`. Defaults to 900.
    pub default_ttl: u64,
    /// The CIBA polling interval clients are told, in seconds. Defaults to 5.
    pub poll_interval: u64,
    /// How recent the sign-in (`auth_time`) behind a token must be, in
    /// seconds, for its subject to confirm their own action
    /// (`@approvers("subject")`). Defaults to 300.
    pub confirm_max_age: u64,
}

/// How recent a sign-in must be for a person to confirm their own action
/// when a bundle names no `confirm_max_age`: five minutes, long enough to
/// read the request, short enough that a token an app kept for hours does
/// not count as the person being there.
pub const DEFAULT_CONFIRM_MAX_AGE_SECONDS: u64 = 300;

impl Default for ApprovalsConfig {
    fn default() -> Self {
        Self {
            default_ttl: DEFAULT_APPROVAL_TTL_SECONDS,
            poll_interval: 5,
            confirm_max_age: DEFAULT_CONFIRM_MAX_AGE_SECONDS,
        }
    }
}

/// One HTTP route.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The path template, e.g. `/payments/{payment_id}/refund`.
    pub path: String,
    /// The Cedar action id, e.g. `payment.refund`.
    pub action: String,
    /// The resource the action is on.
    pub resource: ResourceConfig,
    /// Named parameters, each read from the path, query, body or a header.
    #[serde(default)]
    pub params: BTreeMap<String, ParamConfig>,
    /// The parameters that bind an approval to this action (enter the
    /// action digest). Defaults to every parameter.
    pub bind: Option<Vec<String>>,
    /// Whether a path variable may contain `/` written as `%2F`. A
    /// framework that decodes before routing would read such a path as
    /// more segments than Greenlight matched, so it is refused unless the
    /// route says its ids may hold slashes. Defaults to `false`.
    #[serde(default)]
    pub encoded_slashes: bool,
}

/// One MCP tool: a `tools/call` of it performs an action on a resource,
/// its arguments read as the action's parameters. It is decided as the
/// request `{method: "tools/call", path: "/NAME", params: ARGUMENTS}`,
/// which no HTTP request can be (an HTTP method has no `/`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolConfig {
    /// The tool's name, as `tools/list` gives it (MCP: 1 to 128 of
    /// `A-Z a-z 0-9 _ - .`).
    pub name: String,
    /// The Cedar action id, e.g. `payment.refund`.
    pub action: String,
    /// The resource the action is on; its id is a template over the
    /// call's top-level arguments, e.g. `{payment_id}` (each a non-empty
    /// string or an integer).
    pub resource: ResourceConfig,
    /// Named parameters, each read from the call's arguments
    /// (`arguments.NAME`, or a dotted path into an object argument).
    #[serde(default)]
    pub params: BTreeMap<String, ParamConfig>,
    /// The parameters that bind an approval to this call (enter the
    /// action digest). Defaults to every parameter.
    pub bind: Option<Vec<String>>,
}

/// The resource of a route.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceConfig {
    /// The Cedar entity type, e.g. `Payment`.
    #[serde(rename = "type")]
    pub entity_type: String,
    /// The id, a template over path parameters (a tool's: over its
    /// top-level arguments), e.g. `{payment_id}`.
    pub id: String,
    /// Resource attributes: attribute name -> parameter name.
    #[serde(default)]
    pub attrs: BTreeMap<String, String>,
}

/// Where a parameter comes from and what it must be.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamConfig {
    /// `path.NAME`, `query.NAME`, `body.a.b` or `header.NAME`; for a
    /// tool, `arguments.NAME` (or `arguments.a.b`).
    pub from: String,
    /// `string`, `long`, `bool`, or `list` (every value of a repeated query
    /// parameter or header, or a JSON array of strings, as a set of
    /// strings). A scalar given twice is refused. Defaults to `string`.
    #[serde(rename = "type", default = "default_param_type")]
    pub kind: String,
    /// Whether a request without it is refused. Defaults to `true`.
    #[serde(default = "default_true")]
    pub required: bool,
}

fn default_param_type() -> String {
    "string".to_owned()
}

fn default_true() -> bool {
    true
}

/// A development signing key, read by the CLI only (never by the engine).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevConfig {
    /// The issuer it signs for; must be one of `issuers`.
    pub issuer: String,
    /// A PKCS#8 PEM Ed25519 private key, relative to the bundle folder.
    pub signing_key: String,
    /// The `kid` of the matching public key in the issuer's JWKS.
    pub key_id: String,
}
