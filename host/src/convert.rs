//! Between wasmtime's generated WIT types and the plain types of
//! `greenlight-types`. The guest is untrusted too: everything it returns is
//! checked for size and shape here, before the host acts on it.

use std::collections::BTreeMap;

use greenlight_types::bundle::{
    ActionTokenSettings, ApprovalSettings, BundleInfo, ClaimNames, IssuerInfo, KeyFetchSettings,
    KeySource,
};
use greenlight_types::gateway::Response;
use greenlight_types::{
    AccessRequest, Action, ActionToken, Allowance, Approver, AttributeValue, Challenge, Credential,
    Decision, Denial, DenialCode, EngineStats, GrantMode, HttpRequest, LoadError, Obligation,
    Principal, Problem, ProblemKind, SingleUse, StepUp, TestOutcome, Verdict,
};
use serde_json::{Map, Value};

use crate::bindings::exports::greenlight::approval::gateway::HttpAnswer;
use crate::bindings::exports::greenlight::approval::types as wit;

/// The largest value the host accepts from a guest for any one string.
pub(crate) const MAX_GUEST_STRING: usize = 64 * 1024;
/// The most list entries (reasons, headers, approvers, issuers) accepted
/// from a guest.
pub(crate) const MAX_GUEST_LIST: usize = 64;
/// The longest header value accepted from a guest.
const MAX_HEADER_VALUE: usize = 8192;

/// Every WIT code has its core case of the same name, and back.
macro_rules! denial_codes {
    ($($case:ident),* $(,)?) => {
        pub(crate) fn denial_code(code: wit::DenialCode) -> DenialCode {
            match code { $(wit::DenialCode::$case => DenialCode::$case,)* }
        }

        fn denial_code_out(code: DenialCode) -> wit::DenialCode {
            match code { $(DenialCode::$case => wit::DenialCode::$case,)* }
        }
    };
}

denial_codes!(
    RequestInvalid,
    RouteNotFound,
    TokenMissing,
    TokenTooLarge,
    TokenMalformed,
    TokenUnsupportedAlgorithm,
    TokenAlgorithmNotAllowed,
    TokenUnknownIssuer,
    TokenUnknownKey,
    TokenKeyMismatch,
    TokenBadSignature,
    TokenWrongType,
    TokenUnknownCriticalHeader,
    TokenWrongAudience,
    TokenExpired,
    TokenNotYetValid,
    TokenIssuedInFuture,
    TokenMissingClaim,
    TokenInvalidClaim,
    PolicyForbidden,
    PolicyNoPermit,
    ActionTokenDigestMismatch,
    ActionTokenInvalid,
    ActionTokenReplayed,
    EngineTrap,
    EngineTimeout,
    EngineMemoryExceeded,
    EngineInvalidOutput,
    EngineUnavailable,
);

/// A string no longer than the guest may return.
fn text(s: String, what: &str) -> Result<String, String> {
    if s.len() > MAX_GUEST_STRING {
        return Err(format!("{what} has {} bytes", s.len()));
    }
    Ok(s)
}

/// A list no longer than the guest may return, each entry checked.
fn list<T, U>(
    l: Vec<T>,
    what: &str,
    each: impl FnMut(T) -> Result<U, String>,
) -> Result<Vec<U>, String> {
    if l.len() > MAX_GUEST_LIST {
        return Err(format!("{what} has {} entries", l.len()));
    }
    l.into_iter().map(each).collect()
}

fn texts(l: Vec<String>, what: &str) -> Result<Vec<String>, String> {
    list(l, what, |s| text(s, what))
}

/// Cuts a string to what the host keeps of a guest's text.
pub(crate) fn truncate(mut s: String) -> String {
    if s.len() > MAX_GUEST_STRING {
        let mut cut = MAX_GUEST_STRING;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// A header name is a token (RFC 9110 §5.6.2); a value has no CR, LF or NUL.
fn header((name, value): (String, String)) -> Result<(String, String), String> {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token
        || value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0)
        || value.len() > MAX_HEADER_VALUE
    {
        return Err(format!(
            "header `{}` is not a valid HTTP header",
            name.escape_debug()
        ));
    }
    Ok((name, value))
}

fn json(s: String, what: &str) -> Result<Value, String> {
    serde_json::from_str(&text(s, what)?).map_err(|e| format!("{what} is not JSON: {e}"))
}

pub(crate) fn load_error(e: wit::LoadError) -> LoadError {
    match e {
        wit::LoadError::InvalidBundle(problems) => LoadError::InvalidBundle(
            problems
                .into_iter()
                .take(1024)
                .map(|p| Problem {
                    kind: match p.kind {
                        wit::ProblemKind::MissingFile => ProblemKind::MissingFile,
                        wit::ProblemKind::InvalidConfig => ProblemKind::InvalidConfig,
                        wit::ProblemKind::InvalidPolicy => ProblemKind::InvalidPolicy,
                        wit::ProblemKind::InvalidSchema => ProblemKind::InvalidSchema,
                        wit::ProblemKind::InvalidKeys => ProblemKind::InvalidKeys,
                        wit::ProblemKind::InvalidEntities => ProblemKind::InvalidEntities,
                    },
                    file: truncate(p.file),
                    line: p.line,
                    column: p.column,
                    message: truncate(p.message),
                })
                .collect(),
        ),
        wit::LoadError::Other(s) => LoadError::Other(truncate(s)),
    }
}

/// A denial the guest returned from `jose`.
pub(crate) fn denial(code: wit::DenialCode, message: String) -> Denial {
    Denial::new(denial_code(code), truncate(message))
}

/// A denial the guest returned from `authenticate` or `inspect`, with the
/// issuer whose keys to refresh (a name the bundle has, or it is dropped).
pub(crate) fn denial_with_issuer(d: wit::Denial, issuers: &[IssuerInfo]) -> Denial {
    let mut out = denial(d.code, d.message);
    out.issuer = d
        .issuer
        .filter(|i| issuers.iter().any(|known| known.issuer == *i));
    out
}

pub(crate) fn principal(p: wit::Principal) -> Result<Principal, String> {
    Ok(Principal {
        entity_type: text(p.entity_type, "the entity type")?,
        subject: text(p.subject, "the subject")?,
        client_id: text(p.client_id, "the client id")?,
        scopes: texts(p.scopes, "scopes")?,
        groups: texts(p.groups, "groups")?,
        roles: texts(p.roles, "roles")?,
        tenant: text(p.tenant, "the tenant")?,
        issuer: text(p.issuer, "the issuer")?,
        attributes: attributes(p.attributes)?,
    })
}

/// A principal's mapped attributes, each name once.
fn attributes(l: Vec<wit::Attribute>) -> Result<BTreeMap<String, AttributeValue>, String> {
    let mut out = BTreeMap::new();
    for (name, value) in list(l, "attributes", |a| {
        let value = match a.value {
            wit::AttributeValue::String(s) => AttributeValue::String(text(s, "an attribute")?),
            wit::AttributeValue::Long(n) => AttributeValue::Long(n),
            wit::AttributeValue::Bool(b) => AttributeValue::Bool(b),
            wit::AttributeValue::Set(v) => AttributeValue::Set(texts(v, "an attribute")?),
            wit::AttributeValue::Datetime(t) => AttributeValue::Datetime(t),
        };
        Ok((text(a.name, "an attribute name")?, value))
    })? {
        if out.insert(name.clone(), value).is_some() {
            return Err(format!("attribute `{name}` is given twice"));
        }
    }
    Ok(out)
}

fn attributes_out(a: &BTreeMap<String, AttributeValue>) -> Vec<wit::Attribute> {
    a.iter()
        .map(|(name, value)| wit::Attribute {
            name: name.clone(),
            value: match value {
                AttributeValue::String(s) => wit::AttributeValue::String(s.clone()),
                AttributeValue::Long(n) => wit::AttributeValue::Long(*n),
                AttributeValue::Bool(b) => wit::AttributeValue::Bool(*b),
                AttributeValue::Set(v) => wit::AttributeValue::Set(v.clone()),
                AttributeValue::Datetime(t) => wit::AttributeValue::Datetime(*t),
            },
        })
        .collect()
}

pub(crate) fn credential(c: wit::Credential) -> Result<Credential, String> {
    let principal = principal(c.principal)?;
    if principal.subject.is_empty() || principal.issuer.is_empty() {
        return Err("a credential without a subject or issuer".to_owned());
    }
    Ok(Credential {
        principal,
        expires_at: c.expires_at,
        auth_time: c.auth_time,
        approver: c.approver,
    })
}

pub(crate) fn principal_out(p: &Principal) -> wit::Principal {
    wit::Principal {
        entity_type: p.entity_type.clone(),
        subject: p.subject.clone(),
        client_id: p.client_id.clone(),
        scopes: p.scopes.clone(),
        groups: p.groups.clone(),
        roles: p.roles.clone(),
        tenant: p.tenant.clone(),
        issuer: p.issuer.clone(),
        attributes: attributes_out(&p.attributes),
    }
}

fn grant(g: wit::GrantMode) -> GrantMode {
    match g {
        wit::GrantMode::Once => GrantMode::Once,
        wit::GrantMode::Window => GrantMode::Window,
    }
}

fn grant_out(g: GrantMode) -> wit::GrantMode {
    match g {
        GrantMode::Once => wit::GrantMode::Once,
        GrantMode::Window => wit::GrantMode::Window,
    }
}

fn approver(a: wit::Approver) -> Result<Approver, String> {
    let named = |n: String| {
        if n.is_empty() {
            Err("an approver without a name".to_owned())
        } else {
            text(n, "an approver")
        }
    };
    Ok(match a {
        // Written out, `group:NAME@tenant` would read back as the
        // tenant-scoped group NAME: such a name is refused, not reinterpreted.
        wit::Approver::Group(g) if g.ends_with("@tenant") => {
            return Err(format!(
                "a group named `{g}` would read back as a tenant-scoped group"
            ));
        }
        wit::Approver::Group(g) => Approver::Group(named(g)?),
        wit::Approver::TenantGroup(g) => Approver::TenantGroup(named(g)?),
        wit::Approver::User(u) => Approver::User(named(u)?),
        wit::Approver::Subject => Approver::Subject,
    })
}

fn approver_out(a: &Approver) -> wit::Approver {
    match a {
        Approver::Group(g) => wit::Approver::Group(g.clone()),
        Approver::TenantGroup(g) => wit::Approver::TenantGroup(g.clone()),
        Approver::User(u) => wit::Approver::User(u.clone()),
        Approver::Subject => wit::Approver::Subject,
    }
}

/// An action from the guest: its params a JSON object, its digest the
/// digest of what it names (a module cannot pass one action off as another).
fn action(a: wit::Action) -> Result<Action, String> {
    let params: Map<String, Value> = match json(a.params, "the action's params")? {
        Value::Object(m) => m,
        _ => return Err("the action's params are not a JSON object".to_owned()),
    };
    let action = Action {
        name: text(a.name, "the action")?,
        resource_type: text(a.resource_type, "the resource type")?,
        resource_id: text(a.resource_id, "the resource id")?,
        params,
        digest: text(a.digest, "the action digest")?,
    };
    if action.name.is_empty() || !action.digest_matches() {
        return Err(format!(
            "action {action} does not match its digest `{}`",
            action.digest
        ));
    }
    Ok(action)
}

fn action_out(a: &Action) -> wit::Action {
    wit::Action {
        name: a.name.clone(),
        resource_type: a.resource_type.clone(),
        resource_id: a.resource_id.clone(),
        params: a.params_json(),
        digest: a.digest.clone(),
    }
}

/// The largest quorum a host accepts (the core refuses more at load).
const MAX_QUORUM: u32 = 32;

fn obligation(o: wit::Obligation) -> Result<Obligation, String> {
    let approvers = list(o.approvers, "approvers", approver)?;
    if approvers.is_empty() || o.quorum == 0 {
        return Err("an obligation without approvers or quorum".to_owned());
    }
    if o.quorum > MAX_QUORUM {
        return Err(format!("an obligation with a quorum of {}", o.quorum));
    }
    if o.ttl_seconds == 0 {
        return Err("an obligation that expires at once".to_owned());
    }
    let window = matches!(o.grant, wit::GrantMode::Window);
    if window == (o.window_seconds == 0) {
        return Err(format!(
            "a {} grant with a window of {} seconds",
            if window { "window" } else { "once" },
            o.window_seconds
        ));
    }
    Ok(Obligation {
        approvers,
        quorum: o.quorum,
        ttl_seconds: o.ttl_seconds,
        grant: grant(o.grant),
        window_seconds: o.window_seconds,
        reason_required: o.reason_required,
        message: text(o.message, "the obligation message")?,
    })
}

fn obligation_out(o: &Obligation) -> wit::Obligation {
    wit::Obligation {
        approvers: o.approvers.iter().map(approver_out).collect(),
        quorum: o.quorum,
        ttl_seconds: o.ttl_seconds,
        grant: grant_out(o.grant),
        window_seconds: o.window_seconds,
        reason_required: o.reason_required,
        message: o.message.clone(),
    }
}

/// Converts and validates a guest's decision.
pub(crate) fn decision(d: wit::Decision) -> Result<Decision, String> {
    let reasons = texts(d.reasons, "reasons")?;
    let policy_hash = text(d.policy_hash, "the policy hash")?;
    let verdict = match d.verdict {
        wit::Verdict::Allow(a) => {
            let principal = principal(a.principal)?;
            if principal.subject.is_empty() {
                return Err("an allow without a subject".to_owned());
            }
            let consume = match a.consume {
                Some(c) if c.token_id.is_empty() => {
                    return Err("a single-use token without an id".to_owned());
                }
                Some(c) => Some(SingleUse {
                    token_id: text(c.token_id, "the token id")?,
                    expires_at: c.expires_at,
                }),
                None => None,
            };
            let approval_id = a
                .approval_id
                .map(|id| text(id, "the approval id"))
                .transpose()?;
            Verdict::Allow(Allowance {
                principal,
                action: action(a.action)?,
                approval_id,
                consume,
                forward_headers: list(a.forward_headers, "forward headers", header)?,
            })
        }
        wit::Verdict::Deny(den) => Verdict::Deny(Denial {
            code: denial_code(den.code),
            message: text(den.message, "the denial message")?,
            issuer: den
                .issuer
                .map(|i| text(i, "the denial's issuer"))
                .transpose()?,
        }),
        wit::Verdict::ApprovalRequired(c) => {
            let details = json(c.authorization_details, "authorization_details")?;
            if !details.is_array() {
                return Err("authorization_details is not an array".to_owned());
            }
            Verdict::ApprovalRequired(Challenge {
                requester: principal(c.requester)?,
                action: action(c.action)?,
                authorization_details: details,
                obligation: obligation(c.obligation)?,
            })
        }
        wit::Verdict::StepUpRequired(s) => Verdict::StepUpRequired(StepUp {
            acr_values: texts(s.acr_values, "acr values")?,
            max_age: s.max_age,
            message: text(s.message, "the step-up message")?,
        }),
    };
    Ok(Decision {
        verdict,
        reasons,
        policy_hash,
    })
}

/// The longest decision text read from a module (`decide-json`): far above
/// any decision the core writes (a token of at most 8 KiB, params of at most
/// 64 KiB, twice), far below what would strain a host to parse; the Python
/// and Node hosts read no more either.
pub(crate) const MAX_DECISION_JSON: usize = 1 << 20;

/// A decision a module wrote as JSON text (`decide-json`): read as the
/// types say, then held to every check of a typed answer ([`decision`]).
pub(crate) fn decision_json(text: &str) -> Result<Decision, String> {
    if text.len() > MAX_DECISION_JSON {
        return Err(format!(
            "the decision is longer than {MAX_DECISION_JSON} bytes"
        ));
    }
    let d: Decision =
        serde_json::from_str(text).map_err(|e| format!("not a decision as JSON: {e}"))?;
    decision(decision_out(&d))
}

/// A decision in its WIT form, to hand to the guest's `respond`.
pub(crate) fn decision_out(d: &Decision) -> wit::Decision {
    let verdict = match &d.verdict {
        Verdict::Allow(a) => wit::Verdict::Allow(wit::Allowance {
            principal: principal_out(&a.principal),
            action: action_out(&a.action),
            approval_id: a.approval_id.clone(),
            consume: a.consume.as_ref().map(|c| wit::SingleUse {
                token_id: c.token_id.clone(),
                expires_at: c.expires_at,
            }),
            forward_headers: a.forward_headers.clone(),
        }),
        Verdict::Deny(den) => wit::Verdict::Deny(wit::Denial {
            code: denial_code_out(den.code),
            message: den.message.clone(),
            issuer: den.issuer.clone(),
        }),
        Verdict::ApprovalRequired(c) => wit::Verdict::ApprovalRequired(wit::Challenge {
            requester: principal_out(&c.requester),
            action: action_out(&c.action),
            authorization_details: c.authorization_details.to_string(),
            obligation: obligation_out(&c.obligation),
        }),
        Verdict::StepUpRequired(s) => wit::Verdict::StepUpRequired(wit::StepUp {
            acr_values: s.acr_values.clone(),
            max_age: s.max_age,
            message: s.message.clone(),
        }),
    };
    wit::Decision {
        verdict,
        reasons: d.reasons.clone(),
        policy_hash: d.policy_hash.clone(),
    }
}

/// A guest's HTTP answer for `decision`: well-formed headers, a JSON body,
/// and a status that fits the verdict. A pass-through (status 0) is
/// accepted for an allow only, and an allow is never answered by the
/// gateway itself: a module's answer cannot let a deny through.
pub(crate) fn answer(a: HttpAnswer, decision: &Decision) -> Result<Response, String> {
    let allow = matches!(decision.verdict, Verdict::Allow(_));
    let body = match a.body {
        Some(b) => json(b, "the answer's body")?,
        None => Value::Null,
    };
    let fits = if allow {
        a.status == 0 && body.is_null()
    } else {
        (400..=599).contains(&a.status) && body.is_object()
    };
    if !fits {
        return Err(format!(
            "status {} with {} body does not answer {}",
            a.status,
            if body.is_null() { "no" } else { "a" },
            match &decision.verdict {
                Verdict::Allow(_) => "an allow".to_owned(),
                Verdict::Deny(d) => format!("a deny `{}`", d.code),
                Verdict::ApprovalRequired(_) => "an approval-required".to_owned(),
                Verdict::StepUpRequired(_) => "a step-up-required".to_owned(),
            }
        ));
    }
    Ok(Response {
        status: a.status,
        headers: list(a.headers, "the answer's headers", header)?,
        body,
    })
}

pub(crate) fn action_token(t: wit::ActionToken) -> Result<ActionToken, String> {
    let token_id = text(t.token_id, "the token id")?;
    if token_id.is_empty() {
        return Err("an action token without an id".to_owned());
    }
    Ok(ActionToken {
        principal: principal(t.principal)?,
        audience: text(t.audience, "the audience")?,
        token_id,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        digest: text(t.digest, "the action digest")?,
        grant: grant(t.grant),
        approval_id: t
            .approval_id
            .map(|id| text(id, "the approval id"))
            .transpose()?,
        approvers: texts(t.approvers, "approvers")?,
        authorization_details: json(t.authorization_details, "authorization_details")?,
    })
}

pub(crate) fn bundle_info(b: wit::BundleInfo) -> Result<BundleInfo, String> {
    let c = b.claims;
    Ok(BundleInfo {
        policy_hash: text(b.policy_hash, "the policy hash")?,
        claims: ClaimNames {
            entity_type: text(c.entity_type, "the entity type")?,
            scope: text(c.scope, "the scope claim")?,
            groups: text(c.groups, "the groups claim")?,
            roles: text(c.roles, "the roles claim")?,
            tenant: text(c.tenant, "the tenant claim")?,
        },
        issuers: list(b.issuers, "issuers", |i| {
            Ok(IssuerInfo {
                issuer: text(i.issuer, "an issuer")?,
                audience: text(i.audience, "an audience")?,
                keys: match i.keys {
                    wit::KeySource::Bundle => KeySource::Bundle,
                    wit::KeySource::JwksUri(u) => KeySource::JwksUri(text(u, "a jwks_uri")?),
                    wit::KeySource::Discovery(urls) => {
                        KeySource::Discovery(texts(urls, "metadata URLs")?)
                    }
                },
                algorithms: texts(i.algorithms, "algorithms")?,
                required_typ: i
                    .required_typ
                    .map(|t| text(t, "a required typ"))
                    .transpose()?,
            })
        })?,
        action_tokens: b
            .action_tokens
            .map(|a| -> Result<_, String> {
                Ok(ActionTokenSettings {
                    issuer: text(a.issuer, "the action-token issuer")?,
                    audience: text(a.audience, "the action-token audience")?,
                    ttl_seconds: a.ttl_seconds,
                    leeway_seconds: a.leeway_seconds,
                })
            })
            .transpose()?,
        approvals: ApprovalSettings {
            default_ttl_seconds: b.approvals.default_ttl_seconds,
            poll_interval_seconds: b.approvals.poll_interval_seconds,
            confirm_max_age_seconds: b.approvals.confirm_max_age_seconds,
        },
        development: b.development,
        key_fetch: KeyFetchSettings {
            connect_timeout_ms: b.key_fetch.connect_timeout_ms,
            timeout_ms: b.key_fetch.timeout_ms,
            max_bytes: b.key_fetch.max_bytes,
            min_age_seconds: b.key_fetch.min_age_seconds,
            max_age_seconds: b.key_fetch.max_age_seconds,
            max_stale_seconds: b.key_fetch.max_stale_seconds,
            unknown_kid_interval_seconds: b.key_fetch.unknown_kid_interval_seconds,
            allow_http_loopback: b.key_fetch.allow_http_loopback,
        },
    })
}

pub(crate) fn stats(s: wit::EngineStats) -> EngineStats {
    EngineStats {
        token_checks: s.token_checks,
        signature_checks: s.signature_checks,
    }
}

pub(crate) fn http_request(r: &HttpRequest) -> wit::HttpRequest {
    wit::HttpRequest {
        method: r.method.clone(),
        path: r.path.clone(),
        query: r.query.clone(),
        headers: r.headers.clone(),
        params: r.params.clone(),
        entities: r.entities.clone(),
    }
}

pub(crate) fn access_request(r: &AccessRequest) -> wit::AccessRequest {
    wit::AccessRequest {
        token: r.token.clone(),
        action: r.action.clone(),
        resource_type: r.resource_type.clone(),
        resource_id: r.resource_id.clone(),
        resource_properties: r.resource_properties.clone(),
        context: r.context.clone(),
        entities: r.entities.clone(),
    }
}

/// The most policy-test outcomes a module may return: more tests than a
/// bundle would carry.
const MAX_TESTS: usize = 10_000;

/// Policy-test outcomes, checked.
pub(crate) fn test_outcomes(l: Vec<wit::TestOutcome>) -> Result<Vec<TestOutcome>, String> {
    if l.len() > MAX_TESTS {
        return Err(format!("{} test outcomes", l.len()));
    }
    l.into_iter()
        .map(|o| {
            Ok(TestOutcome {
                name: text(o.name, "a test's name")?,
                failure: o.failure.map(|f| text(f, "a test's failure")).transpose()?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obligation_of(quorum: u32, ttl: u64, grant: wit::GrantMode, window: u64) -> wit::Obligation {
        wit::Obligation {
            approvers: vec![wit::Approver::Subject],
            quorum,
            ttl_seconds: ttl,
            grant,
            window_seconds: window,
            reason_required: false,
            message: String::new(),
        }
    }

    /// A module's obligation that cannot work is refused, not stored.
    #[test]
    fn an_obligation_that_cannot_work_is_refused() {
        let once = wit::GrantMode::Once;
        let window = wit::GrantMode::Window;
        for (o, why) in [
            (
                obligation_of(33, 60, once, 0),
                "an obligation with a quorum of 33",
            ),
            (
                obligation_of(1, 0, once, 0),
                "an obligation that expires at once",
            ),
            (
                obligation_of(1, 60, window, 0),
                "a window grant with a window of 0 seconds",
            ),
            (
                obligation_of(1, 60, once, 30),
                "a once grant with a window of 30 seconds",
            ),
        ] {
            assert_eq!(obligation(o).map(|_| ()), Err(why.to_owned()));
        }
        assert!(obligation(obligation_of(32, 60, window, 30)).is_ok());
    }

    /// A module cannot name a plain group that reads back as another
    /// approver: `group("finance@tenant")` would be stored as
    /// `group:finance@tenant`, the tenant-scoped group `finance`.
    #[test]
    fn a_plain_group_named_like_a_tenant_group_is_refused() {
        assert_eq!(
            approver(wit::Approver::Group("finance@tenant".to_owned())),
            Err(
                "a group named `finance@tenant` would read back as a tenant-scoped group"
                    .to_owned()
            )
        );
        assert_eq!(
            approver(wit::Approver::Group("ops@example.com".to_owned())),
            Ok(Approver::Group("ops@example.com".to_owned()))
        );
        assert_eq!(
            approver(wit::Approver::User(String::new())),
            Err("an approver without a name".to_owned())
        );
    }
}
