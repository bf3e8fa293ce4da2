//! Access-token and action-token verification: issuer, algorithm allow-list,
//! key, signature, `typ`, audience and time claims, all against the `now`
//! the host passes in (the engine never reads a clock).

use serde_json::{Map, Value};

use crate::claims::{self, Mapping};
use crate::config::PrincipalConfig;
use crate::policy::PrincipalEntity;
use greenlight_types::bundle::KeySource;
use greenlight_types::{Denial, DenialCode, GrantMode, Principal};

use crate::jws::{self, Alg, KeySet};

/// The rules for one issuer's tokens.
#[derive(Clone, Debug)]
pub struct Issuer {
    /// The exact `iss`.
    pub issuer: String,
    /// The audience `aud` must contain.
    pub audience: String,
    /// Allowed algorithms.
    pub algorithms: Vec<Alg>,
    /// Verification keys; empty until the host supplies them.
    pub keys: KeySet,
    /// Where the keys come from.
    pub source: KeySource,
    /// Why the host has no keys for it, when it said (`withdraw-keys`).
    pub keys_note: Option<String>,
    /// The required `typ`, if any.
    pub require_typ: Option<String>,
    /// Clock leeway in seconds.
    pub leeway: u64,
    /// The groups its tokens may assert; `None` for any.
    pub groups: Option<Vec<String>>,
    /// Its clients whose tokens are meant for approving.
    pub approver_clients: Vec<String>,
    /// The scope that makes one of its tokens meant for approving.
    pub approval_scope: Option<String>,
    /// The claim naming the person (`sub` unless configured).
    pub subject_claim: String,
    /// The claims naming the client, the first present wins
    /// (`client_id`, `azp` unless configured).
    pub client_claims: Vec<String>,
}

impl Issuer {
    /// Whether a token of this issuer for `client_id` with `scopes` is one
    /// meant for approving.
    pub fn approves(&self, client_id: &str, scopes: &[String]) -> bool {
        (!client_id.is_empty() && self.approver_clients.iter().any(|c| c == client_id))
            || self
                .approval_scope
                .as_ref()
                .is_some_and(|s| scopes.iter().any(|x| x == s))
    }
}

/// What kind of token was verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A base access token from a configured issuer.
    Access,
    /// Greenlight's own action token.
    Action(ActionClaims),
}

/// The claims only action tokens carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionClaims {
    /// `act_digest`: the digest of the one action the token allows.
    pub digest: String,
    /// `grant`: single use or window.
    pub grant: GrantMode,
    /// `jti`.
    pub token_id: String,
    /// The approval that produced it, when the claim is present.
    pub approval_id: Option<String>,
    /// `approvers`: who approved; empty when absent.
    pub approvers: Vec<String>,
    /// `authorization_details` (RFC 9396); `null` when absent.
    pub authorization_details: Value,
}

/// A token whose signature, issuer and audience have been checked. Time
/// claims are checked separately on every use, cached or not.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Access or action token.
    pub kind: TokenKind,
    /// The principal built from its claims.
    pub principal: Principal,
    /// `exp`.
    pub exp: u64,
    /// `nbf`, if any.
    pub nbf: Option<u64>,
    /// `iat`, if any.
    pub iat: Option<u64>,
    /// The leeway of its issuer.
    pub leeway: u64,
    /// The audience it was checked against (for `authorization_details`).
    pub audience: String,
    /// `auth_time`: when the person last signed in, if the token says.
    pub auth_time: Option<u64>,
    /// `acr`: the class of that sign-in, if the token says.
    pub acr: Option<String>,
    /// Whether it is an access token meant for approving (from one of its
    /// issuer's approver clients, or with its approval scope).
    pub approver: bool,
    /// The principal's Cedar entity, once a decision has built it: the
    /// token cache's copies of this token share it.
    pub principal_entity: PrincipalEntity,
}

impl Verified {
    /// Checks `exp`, `nbf` and `iat` against `now` with the issuer's leeway.
    pub fn check_time(&self, now: u64) -> Result<(), Denial> {
        let what = match self.kind {
            TokenKind::Access => "the token",
            TokenKind::Action(_) => "the action token",
        };
        if now >= self.exp.saturating_add(self.leeway) {
            return Err(Denial::new(
                DenialCode::TokenExpired,
                format!("{what} expired at {}", self.exp),
            ));
        }
        if let Some(nbf) = self.nbf
            && now.saturating_add(self.leeway) < nbf
        {
            return Err(Denial::new(
                DenialCode::TokenNotYetValid,
                format!("{what} is not valid before {nbf}"),
            ));
        }
        if let Some(iat) = self.iat
            && iat > now.saturating_add(self.leeway)
        {
            return Err(Denial::new(
                DenialCode::TokenIssuedInFuture,
                format!("{what} was issued in the future, at {iat}"),
            ));
        }
        Ok(())
    }
}

fn missing(claim: &str) -> Denial {
    Denial::new(
        DenialCode::TokenMissingClaim,
        format!("claim `{claim}` is missing or not of the right type"),
    )
}

/// The latest time a token may name: 9999-12-31T23:59:59Z. A larger
/// value is a mistake or an attack (`1e300`, `2^70`) that would otherwise
/// saturate to "never expires".
pub const MAX_NUMERIC_DATE: u64 = 253_402_300_799;

/// A NumericDate: whole seconds from 0 to [`MAX_NUMERIC_DATE`]. A string
/// or other type is a missing claim; a number outside that (a fraction, a
/// negative, a huge one) is refused as invalid.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, Denial> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(t) if t <= MAX_NUMERIC_DATE => Ok(Some(t)),
            _ => Err(Denial::new(
                DenialCode::TokenInvalidClaim,
                format!(
                    "claim `{name}` must be whole seconds from 0 to {MAX_NUMERIC_DATE}, not `{n}`"
                ),
            )),
        },
        Some(_) => Err(missing(name)),
    }
}

fn string_list(claims: &Map<String, Value>, name: &str, split_spaces: bool) -> Vec<String> {
    match claims.get(name) {
        Some(Value::String(s)) if split_spaces => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// The requester's issuer an action token names in `sub_id`, an RFC 9493
/// subject identifier of format `iss_sub` whose `sub` is the token's and
/// whose `iss` is one of the bundle's issuers.
fn requester_issuer_of<'a>(
    claims: &Map<String, Value>,
    subject: &str,
    issuers: &'a [Issuer],
) -> Result<&'a Issuer, Denial> {
    let invalid = |why: &str| {
        Denial::new(
            DenialCode::ActionTokenInvalid,
            format!("action tokens carry `sub_id` ({why})"),
        )
    };
    let id = claims
        .get("sub_id")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("an `iss_sub` subject identifier naming the requester"))?;
    if id.get("format").and_then(Value::as_str) != Some("iss_sub") {
        return Err(invalid("of format `iss_sub`"));
    }
    if id.get("sub").and_then(Value::as_str) != Some(subject) {
        return Err(invalid("whose `sub` is the token's"));
    }
    let iss = id.get("iss").and_then(Value::as_str).unwrap_or("");
    issuers
        .iter()
        .find(|i| i.issuer == iss)
        .ok_or_else(|| invalid(&format!("whose `iss` is a trusted issuer, not `{iss}`")))
}

/// A JWS whose signature was checked with the key of the issuer its `iss`
/// names, and its claims.
struct Signed<'a> {
    claims: Map<String, Value>,
    issuer: &'a Issuer,
    is_action: bool,
}

/// Parses `token`, finds the issuer its `iss` names (Greenlight's own when
/// `action_issuer` is given and named), checks the algorithm allow-list,
/// the header's `typ` with `check_typ`, and the signature with that
/// issuer's keys.
fn signed<'a>(
    token: &str,
    issuers: &'a [Issuer],
    action_issuer: Option<&'a Issuer>,
    check_typ: impl Fn(&Issuer, Option<&str>) -> Result<(), Denial>,
) -> Result<Signed<'a>, Denial> {
    let parsed = jws::parse(token)?;
    let claims: Map<String, Value> =
        crate::strict::object(&parsed.payload).map_err(|e| match e {
            crate::strict::StrictError::Duplicate(name) => Denial::new(
                DenialCode::TokenInvalidClaim,
                format!("claim `{name}` is given twice"),
            ),
            crate::strict::StrictError::Malformed => Denial::new(
                DenialCode::TokenMalformed,
                "the payload is not a JSON object",
            ),
        })?;
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("iss"))?;
    let (issuer, is_action) = match action_issuer.filter(|a| a.issuer == iss) {
        Some(a) => (a, true),
        None => (
            issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| {
                Denial::new(
                    DenialCode::TokenUnknownIssuer,
                    format!("issuer `{iss}` is not trusted"),
                )
            })?,
            false,
        ),
    };
    if !issuer.algorithms.contains(&parsed.alg) {
        return Err(Denial::new(
            DenialCode::TokenAlgorithmNotAllowed,
            format!("issuer `{iss}` does not sign with `{}`", parsed.alg.name()),
        ));
    }
    check_typ(issuer, parsed.typ.as_deref())?;
    let fetched = issuer.source != KeySource::Bundle;
    let refresh = |d: Denial| {
        if fetched && d.code == DenialCode::TokenUnknownKey {
            d.for_issuer(iss)
        } else {
            d
        }
    };
    if issuer.keys.is_empty() {
        let message = match &issuer.keys_note {
            Some(note) => format!("no keys are loaded for issuer `{iss}`: {note}"),
            None => format!("no keys are loaded for issuer `{iss}`"),
        };
        return Err(refresh(Denial::new(DenialCode::TokenUnknownKey, message)));
    }
    parsed.verify(&issuer.keys).map_err(refresh)?;
    Ok(Signed {
        claims,
        issuer,
        is_action,
    })
}

/// Whether `typ` is `required` or its full media type (`application/…`),
/// compared without regard to case (RFC 9068 §4, RFC 8725 §3.11).
fn typ_is(typ: Option<&str>, required: &str) -> bool {
    typ.is_some_and(|t| {
        let t = t.to_ascii_lowercase();
        let required = required.to_ascii_lowercase();
        t == required || t == format!("application/{required}")
    })
}

/// Verifies a token against the configured issuers and, when its `iss` is
/// Greenlight's, against the action-token rules.
pub fn verify(
    token: &str,
    issuers: &[Issuer],
    action_issuer: Option<&Issuer>,
    principal_cfg: &PrincipalConfig,
    mappings: &[Mapping],
) -> Result<Verified, Denial> {
    let required_typ = |issuer: &Issuer, typ: Option<&str>| match &issuer.require_typ {
        Some(required) if !typ_is(typ, required) => Err(Denial::new(
            DenialCode::TokenWrongType,
            format!(
                "type `{}` is not the required `{required}`",
                typ.unwrap_or("")
            ),
        )),
        _ => Ok(()),
    };
    let Signed {
        claims,
        issuer,
        is_action,
    } = signed(token, issuers, action_issuer, required_typ)?;
    from_claims(&claims, issuer, is_action, issuers, principal_cfg, mappings)
}

/// What an access token with `claims` would be, were it signed by its
/// issuer: every rule [`verify`] applies but the header's and the
/// signature's. For policy tests only, which describe tokens by their
/// claims; no host may decide a request with it.
pub(crate) fn described(
    claims: &Map<String, Value>,
    issuers: &[Issuer],
    principal_cfg: &PrincipalConfig,
    mappings: &[Mapping],
) -> Result<Verified, Denial> {
    let iss = claims
        .get("iss")
        .and_then(Value::as_str)
        .ok_or_else(|| missing("iss"))?;
    let issuer = issuers.iter().find(|i| i.issuer == iss).ok_or_else(|| {
        Denial::new(
            DenialCode::TokenUnknownIssuer,
            format!("issuer `{iss}` is not trusted"),
        )
    })?;
    from_claims(claims, issuer, false, issuers, principal_cfg, mappings)
}

/// The claims rules of [`verify`], for a token whose signature (or, for
/// [`described`], whose description) names `issuer`.
fn from_claims(
    claims: &Map<String, Value>,
    issuer: &Issuer,
    is_action: bool,
    issuers: &[Issuer],
    principal_cfg: &PrincipalConfig,
    mappings: &[Mapping],
) -> Result<Verified, Denial> {
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => *a == issuer.audience,
        Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some(&issuer.audience)),
        None => return Err(missing("aud")),
        Some(_) => false,
    };
    if !aud_ok {
        return Err(Denial::new(
            DenialCode::TokenWrongAudience,
            format!("the audience does not include `{}`", issuer.audience),
        ));
    }
    let exp = numeric_date(claims, "exp")?.ok_or_else(|| missing("exp"))?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    let subject = claims
        .get(&issuer.subject_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(&issuer.subject_claim))?;

    // An action token names the issuer of the person it was minted for
    // (`sub_id`), who is its principal: not Greenlight, which signed it.
    let mut requester_issuer = None;
    let kind = if is_action {
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    Denial::new(
                        DenialCode::ActionTokenInvalid,
                        format!("action tokens carry `{name}`"),
                    )
                })
        };
        let grant = match text("grant")?.as_str() {
            "once" => GrantMode::Once,
            "window" => GrantMode::Window,
            other => {
                return Err(Denial::new(
                    DenialCode::ActionTokenInvalid,
                    format!("grant `{other}` is not `once` or `window`"),
                ));
            }
        };
        requester_issuer = Some(requester_issuer_of(claims, subject, issuers)?);
        TokenKind::Action(ActionClaims {
            digest: text("act_digest")?,
            grant,
            token_id: text("jti")?,
            approval_id: claims
                .get("approval_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            approvers: string_list(claims, "approvers", false),
            authorization_details: claims
                .get("authorization_details")
                .cloned()
                .unwrap_or(Value::Null),
        })
    } else {
        TokenKind::Access
    };
    let client_id = issuer
        .client_claims
        .iter()
        .find_map(|c| claims.get(c).and_then(Value::as_str))
        .unwrap_or("")
        .to_owned();
    let auth_time = numeric_date(claims, "auth_time")?;
    let acr = acr(claims)?;
    let principal = principal_of(
        claims,
        subject,
        client_id,
        requester_issuer.unwrap_or(issuer),
        principal_cfg,
        mappings,
        is_action,
    )?;
    let approver = !is_action && issuer.approves(&principal.client_id, &principal.scopes);
    Ok(Verified {
        kind,
        principal,
        exp,
        nbf,
        iat,
        leeway: issuer.leeway,
        audience: issuer.audience.clone(),
        auth_time,
        acr,
        approver,
        principal_entity: PrincipalEntity::default(),
    })
}

/// `acr`, when the token says.
fn acr(claims: &Map<String, Value>) -> Result<Option<String>, Denial> {
    match claims.get("acr") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(missing("acr")),
    }
}

/// The principal a verified token's claims name: the person of `person`
/// (the issuer they are a user of), through `client_id`, with the groups
/// that issuer is authoritative for and the mapped attributes.
fn principal_of(
    claims: &Map<String, Value>,
    subject: &str,
    client_id: String,
    person: &Issuer,
    principal_cfg: &PrincipalConfig,
    mappings: &[Mapping],
    is_action: bool,
) -> Result<Principal, Denial> {
    let attributes = claims::read(mappings, claims, is_action, &person.issuer)?;
    let mut groups = string_list(claims, &principal_cfg.groups_claim, false);
    // Only the groups the person's issuer is authoritative for count.
    if let Some(allowed) = &person.groups {
        groups.retain(|g| allowed.iter().any(|a| a == "*" || a == g));
    }
    Ok(Principal {
        entity_type: principal_cfg.entity_type.clone(),
        subject: subject.to_owned(),
        client_id,
        scopes: string_list(claims, &principal_cfg.scope_claim, true),
        groups,
        roles: string_list(claims, &principal_cfg.roles_claim, false),
        tenant: claims
            .get(&principal_cfg.tenant_claim)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        issuer: person.issuer.clone(),
        attributes,
    })
}

/// What a relying party expects of the ID token it asked for.
#[derive(Clone, Copy, Debug)]
pub struct SignIn<'a> {
    /// The relying party's `client_id`: the audience, and `azp` when
    /// there are several.
    pub client_id: &'a str,
    /// The `nonce` sent with the authentication request.
    pub nonce: &'a str,
}

/// Verifies an OpenID Connect ID token (OpenID Connect Core 1.0 §3.1.3.7)
/// from one of the bundle's issuers: the issuer's algorithms and keys, an
/// audience naming the relying party (and `azp` naming it when there are
/// several audiences, or whenever present), `exp` and `iat` present,
/// `nonce` equal to the one sent. An RFC 9068 access token (`typ`
/// `at+jwt`) is refused, so an access token never stands in for a
/// sign-in. The principal is built with the same claim mapping as an
/// access token's, for the relying party as its client; time claims are
/// checked by the caller ([`Verified::check_time`]).
pub fn verify_id_token(
    token: &str,
    issuers: &[Issuer],
    principal_cfg: &PrincipalConfig,
    mappings: &[Mapping],
    rp: SignIn<'_>,
) -> Result<Verified, Denial> {
    let not_access_token = |_: &Issuer, typ: Option<&str>| {
        if typ_is(typ, "at+jwt") {
            Err(Denial::new(
                DenialCode::TokenWrongType,
                "an access token (`typ` `at+jwt`) is not an ID token",
            ))
        } else {
            Ok(())
        }
    };
    let Signed { claims, issuer, .. } = signed(token, issuers, None, not_access_token)?;
    let audiences = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        None => return Err(missing("aud")),
        Some(_) => Vec::new(),
    };
    if !audiences.contains(&rp.client_id) {
        return Err(Denial::new(
            DenialCode::TokenWrongAudience,
            format!(
                "the ID token's audience does not include `{}`",
                rp.client_id
            ),
        ));
    }
    match claims.get("azp") {
        Some(Value::String(azp)) if azp == rp.client_id => {}
        Some(Value::String(azp)) => {
            return Err(Denial::new(
                DenialCode::TokenWrongAudience,
                format!(
                    "the ID token was issued to `{azp}` (`azp`), not `{}`",
                    rp.client_id
                ),
            ));
        }
        None if audiences.len() == 1 => {}
        None => return Err(missing("azp")),
        Some(_) => return Err(missing("azp")),
    }
    let exp = numeric_date(&claims, "exp")?.ok_or_else(|| missing("exp"))?;
    let iat = numeric_date(&claims, "iat")?.ok_or_else(|| missing("iat"))?;
    let nbf = numeric_date(&claims, "nbf")?;
    match claims.get("nonce").and_then(Value::as_str) {
        Some(n) if !rp.nonce.is_empty() && n == rp.nonce => {}
        Some(_) => {
            return Err(Denial::new(
                DenialCode::TokenInvalidClaim,
                "the ID token's `nonce` is not the one sent with this sign-in",
            ));
        }
        None => return Err(missing("nonce")),
    }
    let subject = claims
        .get(&issuer.subject_claim)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(&issuer.subject_claim))?;
    let principal = principal_of(
        &claims,
        subject,
        rp.client_id.to_owned(),
        issuer,
        principal_cfg,
        mappings,
        false,
    )?;
    Ok(Verified {
        kind: TokenKind::Access,
        principal,
        exp,
        nbf,
        iat: Some(iat),
        leeway: issuer.leeway,
        audience: rp.client_id.to_owned(),
        auth_time: numeric_date(&claims, "auth_time")?,
        acr: acr(&claims)?,
        // A sign-in to the portal is a person's own act: it is meant for
        // approving (who may vote on what is still checked per approval).
        approver: true,
        principal_entity: PrincipalEntity::default(),
    })
}
