//! Between the WIT types (wit-bindgen's) and the core's plain types, both
//! ways: out for everything the component returns, in for what a host
//! hands back (a vouched subject, a decision to answer).

use greenlight_core as core;
use greenlight_types::bundle::{BundleInfo, ClaimNames, KeySource};
use serde_json::{Map, Value};

use crate::exports::greenlight::approval::types as wit;

/// The core's signature checks, through the host's `crypto` import.
pub fn host_verify(
    alg: core::jws::Alg,
    key: &core::signature::PublicKey,
    message: &[u8],
    signature: &[u8],
) -> core::signature::Check {
    use crate::greenlight::approval::crypto;
    let key = match key {
        core::signature::PublicKey::Rsa { n, e } => crypto::PublicKey::Rsa(crypto::RsaKey {
            n: n.clone(),
            e: e.clone(),
        }),
        core::signature::PublicKey::Ec(point) => crypto::PublicKey::Ec(point.clone()),
        core::signature::PublicKey::Ed25519(x) => crypto::PublicKey::Ed25519(x.clone()),
    };
    match crypto::verify_signature(alg.name(), &key, message, signature) {
        crypto::Check::Valid => core::signature::Check::Valid,
        crypto::Check::Invalid => core::signature::Check::Invalid,
        crypto::Check::NotAvailable => core::signature::Check::NotAvailable,
    }
}

pub fn access_request(request: wit::AccessRequest) -> core::AccessRequest {
    core::AccessRequest {
        token: request.token,
        action: request.action,
        resource_type: request.resource_type,
        resource_id: request.resource_id,
        resource_properties: request.resource_properties,
        context: request.context,
        entities: request.entities,
    }
}

pub fn load_error(e: core::LoadError) -> wit::LoadError {
    match e {
        core::LoadError::InvalidBundle(problems) => wit::LoadError::InvalidBundle(
            problems
                .into_iter()
                .map(|p| wit::Problem {
                    kind: match p.kind {
                        core::ProblemKind::MissingFile => wit::ProblemKind::MissingFile,
                        core::ProblemKind::InvalidConfig => wit::ProblemKind::InvalidConfig,
                        core::ProblemKind::InvalidPolicy => wit::ProblemKind::InvalidPolicy,
                        core::ProblemKind::InvalidSchema => wit::ProblemKind::InvalidSchema,
                        core::ProblemKind::InvalidKeys => wit::ProblemKind::InvalidKeys,
                        core::ProblemKind::InvalidEntities => wit::ProblemKind::InvalidEntities,
                    },
                    file: p.file,
                    line: p.line,
                    column: p.column,
                    message: p.message,
                })
                .collect(),
        ),
        core::LoadError::Other(s) => wit::LoadError::Other(s),
    }
}

/// Every core code has its WIT case of the same name, and back.
macro_rules! denial_codes {
    ($($case:ident),* $(,)?) => {
        pub fn denial_code(code: core::DenialCode) -> wit::DenialCode {
            match code { $(core::DenialCode::$case => wit::DenialCode::$case,)* }
        }

        fn denial_code_in(code: wit::DenialCode) -> core::DenialCode {
            match code { $(wit::DenialCode::$case => core::DenialCode::$case,)* }
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

pub fn denial(d: core::Denial) -> wit::Denial {
    wit::Denial {
        code: denial_code(d.code),
        message: d.message,
        issuer: d.issuer,
    }
}

pub fn principal(p: core::Principal) -> wit::Principal {
    wit::Principal {
        entity_type: p.entity_type,
        subject: p.subject,
        client_id: p.client_id,
        scopes: p.scopes,
        groups: p.groups,
        roles: p.roles,
        tenant: p.tenant,
        issuer: p.issuer,
        attributes: p
            .attributes
            .into_iter()
            .map(|(name, value)| wit::Attribute {
                name,
                value: match value {
                    core::AttributeValue::String(s) => wit::AttributeValue::String(s),
                    core::AttributeValue::Long(n) => wit::AttributeValue::Long(n),
                    core::AttributeValue::Bool(b) => wit::AttributeValue::Bool(b),
                    core::AttributeValue::Set(v) => wit::AttributeValue::Set(v),
                    core::AttributeValue::Datetime(t) => wit::AttributeValue::Datetime(t),
                },
            })
            .collect(),
    }
}

/// A principal a host hands in; an attribute named twice is refused.
pub fn principal_in(p: wit::Principal) -> Result<core::Principal, String> {
    let mut attributes = std::collections::BTreeMap::new();
    for a in p.attributes {
        let value = match a.value {
            wit::AttributeValue::String(s) => core::AttributeValue::String(s),
            wit::AttributeValue::Long(n) => core::AttributeValue::Long(n),
            wit::AttributeValue::Bool(b) => core::AttributeValue::Bool(b),
            wit::AttributeValue::Set(v) => core::AttributeValue::Set(v),
            wit::AttributeValue::Datetime(t) => core::AttributeValue::Datetime(t),
        };
        if attributes.insert(a.name.clone(), value).is_some() {
            return Err(format!("attribute `{}` is given twice", a.name));
        }
    }
    Ok(core::Principal {
        entity_type: p.entity_type,
        subject: p.subject,
        client_id: p.client_id,
        scopes: p.scopes,
        groups: p.groups,
        roles: p.roles,
        tenant: p.tenant,
        issuer: p.issuer,
        attributes,
    })
}

fn grant(g: core::GrantMode) -> wit::GrantMode {
    match g {
        core::GrantMode::Once => wit::GrantMode::Once,
        core::GrantMode::Window => wit::GrantMode::Window,
    }
}

fn grant_in(g: wit::GrantMode) -> core::GrantMode {
    match g {
        wit::GrantMode::Once => core::GrantMode::Once,
        wit::GrantMode::Window => core::GrantMode::Window,
    }
}

fn approver(a: core::Approver) -> wit::Approver {
    match a {
        core::Approver::Group(g) => wit::Approver::Group(g),
        core::Approver::TenantGroup(g) => wit::Approver::TenantGroup(g),
        core::Approver::User(u) => wit::Approver::User(u),
        core::Approver::Subject => wit::Approver::Subject,
    }
}

fn approver_in(a: wit::Approver) -> core::Approver {
    match a {
        wit::Approver::Group(g) => core::Approver::Group(g),
        wit::Approver::TenantGroup(g) => core::Approver::TenantGroup(g),
        wit::Approver::User(u) => core::Approver::User(u),
        wit::Approver::Subject => core::Approver::Subject,
    }
}

fn action(a: core::Action) -> wit::Action {
    wit::Action {
        params: a.params_json(),
        name: a.name,
        resource_type: a.resource_type,
        resource_id: a.resource_id,
        digest: a.digest,
    }
}

fn action_in(a: wit::Action) -> Result<core::Action, String> {
    let params: Map<String, Value> = serde_json::from_str(&a.params)
        .map_err(|e| format!("the action's params are not a JSON object: {e}"))?;
    Ok(core::Action {
        name: a.name,
        resource_type: a.resource_type,
        resource_id: a.resource_id,
        params,
        digest: a.digest,
    })
}

fn obligation(o: core::Obligation) -> wit::Obligation {
    wit::Obligation {
        approvers: o.approvers.into_iter().map(approver).collect(),
        quorum: o.quorum,
        ttl_seconds: o.ttl_seconds,
        grant: grant(o.grant),
        window_seconds: o.window_seconds,
        reason_required: o.reason_required,
        message: o.message,
    }
}

fn obligation_in(o: wit::Obligation) -> core::Obligation {
    core::Obligation {
        approvers: o.approvers.into_iter().map(approver_in).collect(),
        quorum: o.quorum,
        ttl_seconds: o.ttl_seconds,
        grant: grant_in(o.grant),
        window_seconds: o.window_seconds,
        reason_required: o.reason_required,
        message: o.message,
    }
}

pub fn decision(d: core::Decision) -> wit::Decision {
    let verdict = match d.verdict {
        core::Verdict::Allow(a) => wit::Verdict::Allow(wit::Allowance {
            principal: principal(a.principal),
            action: action(a.action),
            approval_id: a.approval_id,
            consume: a.consume.map(|c| wit::SingleUse {
                token_id: c.token_id,
                expires_at: c.expires_at,
            }),
            forward_headers: a.forward_headers,
        }),
        core::Verdict::Deny(den) => wit::Verdict::Deny(denial(den)),
        core::Verdict::ApprovalRequired(c) => wit::Verdict::ApprovalRequired(wit::Challenge {
            requester: principal(c.requester),
            action: action(c.action),
            authorization_details: c.authorization_details.to_string(),
            obligation: obligation(c.obligation),
        }),
        core::Verdict::StepUpRequired(s) => wit::Verdict::StepUpRequired(wit::StepUp {
            acr_values: s.acr_values,
            max_age: s.max_age,
            message: s.message,
        }),
    };
    wit::Decision {
        verdict,
        reasons: d.reasons,
        policy_hash: d.policy_hash,
    }
}

/// A decision as JSON text, as the conformance vectors' `expect` writes it
/// (`decide-json`). Writing these plain types cannot fail (every map is
/// keyed by strings); if it ever did, the module traps, which every host
/// turns into a deny.
pub fn decision_json(d: &core::Decision) -> String {
    match serde_json::to_string(d) {
        Ok(text) => text,
        Err(e) => panic!("a decision that cannot be written as JSON: {e}"),
    }
}

/// A decision a host hands back (to be answered); the JSON it carries must
/// parse.
pub fn decision_in(d: wit::Decision) -> Result<core::Decision, String> {
    let verdict = match d.verdict {
        wit::Verdict::Allow(a) => core::Verdict::Allow(core::Allowance {
            principal: principal_in(a.principal)?,
            action: action_in(a.action)?,
            approval_id: a.approval_id,
            consume: a.consume.map(|c| core::SingleUse {
                token_id: c.token_id,
                expires_at: c.expires_at,
            }),
            forward_headers: a.forward_headers,
        }),
        wit::Verdict::Deny(den) => core::Verdict::Deny(core::Denial {
            code: denial_code_in(den.code),
            message: den.message,
            issuer: den.issuer,
        }),
        wit::Verdict::ApprovalRequired(c) => core::Verdict::ApprovalRequired(core::Challenge {
            requester: principal_in(c.requester)?,
            action: action_in(c.action)?,
            authorization_details: serde_json::from_str(&c.authorization_details)
                .map_err(|e| format!("the authorization details are not JSON: {e}"))?,
            obligation: obligation_in(c.obligation),
        }),
        wit::Verdict::StepUpRequired(s) => core::Verdict::StepUpRequired(core::StepUp {
            acr_values: s.acr_values,
            max_age: s.max_age,
            message: s.message,
        }),
    };
    Ok(core::Decision {
        verdict,
        reasons: d.reasons,
        policy_hash: d.policy_hash,
    })
}

pub fn action_token(t: greenlight_types::ActionToken) -> wit::ActionToken {
    wit::ActionToken {
        principal: principal(t.principal),
        audience: t.audience,
        token_id: t.token_id,
        issued_at: t.issued_at,
        expires_at: t.expires_at,
        digest: t.digest,
        grant: grant(t.grant),
        approval_id: t.approval_id,
        approvers: t.approvers,
        authorization_details: t.authorization_details.to_string(),
    }
}

pub fn bundle_info(b: BundleInfo) -> wit::BundleInfo {
    let ClaimNames {
        entity_type,
        scope,
        groups,
        roles,
        tenant,
    } = b.claims;
    wit::BundleInfo {
        policy_hash: b.policy_hash,
        claims: wit::ClaimNames {
            entity_type,
            scope,
            groups,
            roles,
            tenant,
        },
        issuers: b
            .issuers
            .into_iter()
            .map(|i| wit::IssuerInfo {
                issuer: i.issuer,
                audience: i.audience,
                keys: match i.keys {
                    KeySource::Bundle => wit::KeySource::Bundle,
                    KeySource::JwksUri(u) => wit::KeySource::JwksUri(u),
                    KeySource::Discovery(urls) => wit::KeySource::Discovery(urls),
                },
                algorithms: i.algorithms,
                required_typ: i.required_typ,
            })
            .collect(),
        action_tokens: b.action_tokens.map(|a| wit::ActionTokenSettings {
            issuer: a.issuer,
            audience: a.audience,
            ttl_seconds: a.ttl_seconds,
            leeway_seconds: a.leeway_seconds,
        }),
        approvals: wit::ApprovalSettings {
            default_ttl_seconds: b.approvals.default_ttl_seconds,
            poll_interval_seconds: b.approvals.poll_interval_seconds,
            confirm_max_age_seconds: b.approvals.confirm_max_age_seconds,
        },
        development: b.development,
        key_fetch: wit::KeyFetchSettings {
            connect_timeout_ms: b.key_fetch.connect_timeout_ms,
            timeout_ms: b.key_fetch.timeout_ms,
            max_bytes: b.key_fetch.max_bytes,
            min_age_seconds: b.key_fetch.min_age_seconds,
            max_age_seconds: b.key_fetch.max_age_seconds,
            max_stale_seconds: b.key_fetch.max_stale_seconds,
            unknown_kid_interval_seconds: b.key_fetch.unknown_kid_interval_seconds,
            allow_http_loopback: b.key_fetch.allow_http_loopback,
        },
    }
}
