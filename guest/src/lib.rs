#![allow(
    unsafe_code,
    reason = "wit-bindgen generates the canonical-ABI glue with unsafe code; this crate writes none"
)]
#![allow(
    missing_docs,
    reason = "wit-bindgen generates the exported items; the WIT documents each of them"
)]
//! `greenlight.wasm`: wit-bindgen glue that exports `greenlight-core` as the
//! `greenlight:approval/approver` world. No logic lives here; every
//! function converts its arguments, calls the core, and converts back.

use std::cell::RefCell;

use greenlight_core as core;

wit_bindgen::generate!({
    world: "approver",
    path: "../wit",
});

use exports::greenlight::approval::engine::{Guest as EngineGuest, GuestPolicy, Policy};
use exports::greenlight::approval::jose::Guest as JoseGuest;
use exports::greenlight::approval::types as wit;

struct Component;

/// One loaded bundle. `RefCell` because `set-keys` replaces keys through a
/// shared handle; a component instance is single-threaded.
struct PolicyImpl(RefCell<core::Engine>);

impl EngineGuest for Component {
    type Policy = PolicyImpl;
}

impl GuestPolicy for PolicyImpl {
    fn load(files: Vec<(String, String)>) -> Result<Policy, wit::LoadError> {
        core::Engine::load(&files)
            .map(|e| Policy::new(PolicyImpl(RefCell::new(e))))
            .map_err(load_error)
    }

    fn set_keys(&self, issuer: String, jwks: String) -> Result<(), wit::LoadError> {
        self.0
            .borrow_mut()
            .set_keys(&issuer, &jwks)
            .map_err(load_error)
    }

    fn evaluate_http(&self, request: wit::HttpRequest, now: u64) -> wit::Decision {
        let request = core::HttpRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            params: request.params,
        };
        decision(self.0.borrow().evaluate_http(&request, now))
    }

    fn evaluate(&self, request: wit::AccessRequest, now: u64) -> wit::Decision {
        let request = access_request(request);
        decision(self.0.borrow().evaluate(&request, now))
    }

    fn evaluate_as(
        &self,
        subject: wit::Principal,
        request: wit::AccessRequest,
        now: u64,
    ) -> wit::Decision {
        let subject = core::policy::Principal {
            entity_type: subject.entity_type,
            subject: subject.subject,
            client_id: subject.client_id,
            scopes: subject.scopes,
            groups: subject.groups,
            roles: subject.roles,
            tenant: subject.tenant,
            issuer: subject.issuer,
        };
        let request = access_request(request);
        decision(self.0.borrow().evaluate_as(&subject, &request, now))
    }

    fn authenticate(&self, token: String, now: u64) -> Result<wit::Principal, wit::Denial> {
        self.0
            .borrow()
            .authenticate(&token, now)
            .map(|p| wit::Principal {
                entity_type: p.entity_type,
                subject: p.subject,
                client_id: p.client_id,
                scopes: p.scopes,
                groups: p.groups,
                roles: p.roles,
                tenant: p.tenant,
                issuer: p.issuer,
            })
            .map_err(|d| wit::Denial {
                code: denial_code(d.code),
                message: d.message,
            })
    }

    fn policy_hash(&self) -> String {
        self.0.borrow().policy_hash().to_owned()
    }
}

impl JoseGuest for Component {
    fn verify_compact(token: String, jwk: String) -> Result<Vec<u8>, wit::JwsError> {
        core::jws::verify_compact(&token, &jwk).map_err(|d| wit::JwsError {
            code: denial_code(d.code),
            message: d.message,
        })
    }
}

/// The core form of an AuthZEN-shaped request.
fn access_request(request: wit::AccessRequest) -> core::AccessRequest {
    core::AccessRequest {
        token: request.token,
        action: request.action,
        resource_type: request.resource_type,
        resource_id: request.resource_id,
        resource_properties: request.resource_properties,
        context: request.context,
    }
}

fn load_error(e: core::LoadError) -> wit::LoadError {
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

fn denial_code(code: core::DenialCode) -> wit::DenialCode {
    use core::DenialCode as C;
    use wit::DenialCode as W;
    match code {
        C::RequestInvalid => W::RequestInvalid,
        C::RouteNotFound => W::RouteNotFound,
        C::TokenMissing => W::TokenMissing,
        C::TokenTooLarge => W::TokenTooLarge,
        C::TokenMalformed => W::TokenMalformed,
        C::TokenUnsupportedAlgorithm => W::TokenUnsupportedAlgorithm,
        C::TokenAlgorithmNotAllowed => W::TokenAlgorithmNotAllowed,
        C::TokenUnknownIssuer => W::TokenUnknownIssuer,
        C::TokenUnknownKey => W::TokenUnknownKey,
        C::TokenKeyMismatch => W::TokenKeyMismatch,
        C::TokenBadSignature => W::TokenBadSignature,
        C::TokenWrongType => W::TokenWrongType,
        C::TokenUnknownCriticalHeader => W::TokenUnknownCriticalHeader,
        C::TokenWrongAudience => W::TokenWrongAudience,
        C::TokenExpired => W::TokenExpired,
        C::TokenNotYetValid => W::TokenNotYetValid,
        C::TokenIssuedInFuture => W::TokenIssuedInFuture,
        C::TokenMissingClaim => W::TokenMissingClaim,
        C::PolicyForbidden => W::PolicyForbidden,
        C::PolicyNoPermit => W::PolicyNoPermit,
        C::ActionTokenDigestMismatch => W::ActionTokenDigestMismatch,
        C::ActionTokenInvalid => W::ActionTokenInvalid,
        C::ActionTokenReplayed => W::ActionTokenReplayed,
        C::EngineTrap => W::EngineTrap,
        C::EngineTimeout => W::EngineTimeout,
        C::EngineMemoryExceeded => W::EngineMemoryExceeded,
        C::EngineInvalidOutput => W::EngineInvalidOutput,
        C::EngineUnavailable => W::EngineUnavailable,
    }
}

fn decision(d: core::Decision) -> wit::Decision {
    let verdict = match d.verdict {
        core::Verdict::Allow(a) => wit::Verdict::Allow(wit::Allowance {
            subject: a.subject,
            consume: a.consume.map(|c| wit::SingleUse {
                token_id: c.token_id,
                expires_at: c.expires_at,
            }),
            forward_headers: a.forward_headers,
        }),
        core::Verdict::Deny(den) => wit::Verdict::Deny(wit::Denial {
            code: denial_code(den.code),
            message: den.message,
        }),
        core::Verdict::ApprovalRequired(c) => wit::Verdict::ApprovalRequired(wit::Challenge {
            authorization_details: c.authorization_details.to_string(),
            action_digest: c.action_digest,
            obligation: wit::Obligation {
                approvers: c.obligation.approvers,
                quorum: c.obligation.quorum,
                ttl_seconds: c.obligation.ttl_seconds,
                grant: match c.obligation.grant {
                    core::GrantMode::Once => wit::GrantMode::Once,
                    core::GrantMode::Window => wit::GrantMode::Window,
                },
                window_seconds: c.obligation.window_seconds,
                reason_required: c.obligation.reason_required,
                message: c.obligation.message,
            },
        }),
    };
    wit::Decision {
        verdict,
        reasons: d.reasons,
        policy_hash: d.policy_hash,
    }
}

export!(Component);
