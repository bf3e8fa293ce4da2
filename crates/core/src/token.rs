//! Access-token and action-token verification: issuer, algorithm allow-list,
//! key, signature, `typ`, audience and time claims, all against the `now`
//! the host passes in (the engine never reads a clock).

use serde_json::{Map, Value};

use crate::claims::{self, Mapping};
use crate::config::PrincipalConfig;
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

/// Verifies a token against the configured issuers and, when its `iss` is
/// Greenlight's, against the action-token rules.
pub fn verify(
    token: &str,
    issuers: &[Issuer],
    action_issuer: Option<&Issuer>,
    principal_cfg: &PrincipalConfig,
    mappings: &[Mapping],
) -> Result<Verified, Denial> {
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
    if let Some(required) = &issuer.require_typ {
        // RFC 9068 §4: `at+jwt`, or its full media type `application/at+jwt`.
        let ok = parsed.typ.as_deref().is_some_and(|t| {
            let t = t.to_ascii_lowercase();
            t == required.to_ascii_lowercase()
                || t == format!("application/{}", required.to_ascii_lowercase())
        });
        if !ok {
            return Err(Denial::new(
                DenialCode::TokenWrongType,
                format!(
                    "type `{}` is not the required `{required}`",
                    parsed.typ.as_deref().unwrap_or("")
                ),
            ));
        }
    }
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
    let exp = numeric_date(&claims, "exp")?.ok_or_else(|| missing("exp"))?;
    let nbf = numeric_date(&claims, "nbf")?;
    let iat = numeric_date(&claims, "iat")?;
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
        requester_issuer = Some(requester_issuer_of(&claims, subject, issuers)?);
        TokenKind::Action(ActionClaims {
            digest: text("act_digest")?,
            grant,
            token_id: text("jti")?,
            approval_id: claims
                .get("approval_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            approvers: string_list(&claims, "approvers", false),
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
    let auth_time = numeric_date(&claims, "auth_time")?;
    let acr = match claims.get("acr") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(missing("acr")),
    };
    let person_issuer = requester_issuer.map_or(iss, |i| i.issuer.as_str());
    let attributes = claims::read(mappings, &claims, is_action, person_issuer)?;
    let mut groups = string_list(&claims, &principal_cfg.groups_claim, false);
    // Only the groups the person's issuer is authoritative for count.
    if let Some(allowed) = &requester_issuer.unwrap_or(issuer).groups {
        groups.retain(|g| allowed.iter().any(|a| a == "*" || a == g));
    }
    let scopes = string_list(&claims, &principal_cfg.scope_claim, true);
    let approver = !is_action && issuer.approves(&client_id, &scopes);
    let principal = Principal {
        entity_type: principal_cfg.entity_type.clone(),
        subject: subject.to_owned(),
        client_id,
        scopes,
        groups,
        roles: string_list(&claims, &principal_cfg.roles_claim, false),
        tenant: claims
            .get(&principal_cfg.tenant_claim)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        issuer: person_issuer.to_owned(),
        attributes,
    };
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
    })
}
