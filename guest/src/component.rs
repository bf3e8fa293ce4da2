//! The world's exports over `greenlight-core`: every function converts its
//! arguments, calls the core, and converts back (`convert.rs`); each
//! decision, the policy tests' included, passes through `rule::review`,
//! which the shipped module leaves as it is and a custom module built from
//! these files (examples/night-refunds) fills with a rule of its own.

use std::cell::RefCell;

use greenlight_core as core;

use crate::{convert, rule};

use crate::exports::greenlight::approval::engine::{Guest as EngineGuest, GuestPolicy, Policy};
use crate::exports::greenlight::approval::gateway::{Guest as GatewayGuest, HttpAnswer};
use crate::exports::greenlight::approval::jose::Guest as JoseGuest;
use crate::exports::greenlight::approval::types as wit;

/// The component: `greenlight-core` behind the world's exports, each
/// decision passed through [`rule::review`].
pub struct Component;

/// One loaded bundle. `RefCell` because `set-keys` replaces keys through a
/// shared handle; a component instance is single-threaded.
pub struct PolicyImpl(RefCell<core::Engine>);

impl EngineGuest for Component {
    type Policy = PolicyImpl;
}

impl GuestPolicy for PolicyImpl {
    fn load(files: Vec<(String, String)>) -> Result<Policy, wit::LoadError> {
        core::signature::use_native(convert::host_verify);
        core::Engine::load(&files)
            .map(|e| Policy::new(PolicyImpl(RefCell::new(e))))
            .map_err(convert::load_error)
    }

    fn set_keys(&self, issuer: String, jwks: String) -> Result<(), wit::LoadError> {
        self.0
            .borrow_mut()
            .set_keys(&issuer, &jwks)
            .map_err(convert::load_error)
    }

    fn withdraw_keys(&self, issuer: String, reason: String) -> Result<(), wit::LoadError> {
        self.0
            .borrow_mut()
            .withdraw_keys(&issuer, &reason)
            .map_err(convert::load_error)
    }

    fn evaluate_http(&self, request: wit::HttpRequest, now: u64) -> wit::Decision {
        let request = core::HttpRequest {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            params: request.params,
            entities: request.entities,
        };
        convert::decision(rule::review(
            self.0.borrow().evaluate_http(&request, now),
            now,
        ))
    }

    fn evaluate(&self, request: wit::AccessRequest, now: u64) -> wit::Decision {
        let request = convert::access_request(request);
        convert::decision(rule::review(self.0.borrow().evaluate(&request, now), now))
    }

    fn evaluate_as(
        &self,
        subject: wit::Principal,
        request: wit::AccessRequest,
        now: u64,
    ) -> wit::Decision {
        let engine = self.0.borrow();
        let subject = match convert::principal_in(subject) {
            Ok(s) => s,
            Err(e) => {
                return convert::decision(core::Decision::deny(
                    core::DenialCode::RequestInvalid,
                    format!("the vouched subject: {e}"),
                    engine.policy_hash(),
                ));
            }
        };
        let request = convert::access_request(request);
        convert::decision(rule::review(
            engine.evaluate_as(&subject, &request, now),
            now,
        ))
    }

    fn decide_json(&self, request: String, now: u64) -> String {
        let engine = self.0.borrow();
        let decision = match core::call::Call::read(&request) {
            Ok(call) => rule::review(engine.decide_call(&call, now), now),
            Err(message) => core::Decision::deny(
                core::DenialCode::RequestInvalid,
                message,
                engine.policy_hash(),
            ),
        };
        convert::decision_json(&decision)
    }

    fn authenticate(&self, token: String, now: u64) -> Result<wit::Credential, wit::Denial> {
        self.0
            .borrow()
            .authenticate(&token, now)
            .map(|c| wit::Credential {
                principal: convert::principal(c.principal),
                expires_at: c.expires_at,
                auth_time: c.auth_time,
                approver: c.approver,
            })
            .map_err(convert::denial)
    }

    fn authenticate_id_token(
        &self,
        token: String,
        client_id: String,
        nonce: String,
        now: u64,
    ) -> Result<wit::Credential, wit::Denial> {
        self.0
            .borrow()
            .authenticate_id_token(&token, &client_id, &nonce, now)
            .map(|c| wit::Credential {
                principal: convert::principal(c.principal),
                expires_at: c.expires_at,
                auth_time: c.auth_time,
                approver: c.approver,
            })
            .map_err(convert::denial)
    }

    fn inspect(&self, token: String, now: u64) -> Result<wit::ActionToken, wit::Denial> {
        self.0
            .borrow()
            .inspect(&token, now)
            .map(convert::action_token)
            .map_err(convert::denial)
    }

    fn describe(&self) -> wit::BundleInfo {
        convert::bundle_info(self.0.borrow().describe())
    }

    fn run_tests(
        &self,
        files: Vec<(String, String)>,
        now: u64,
    ) -> Result<Vec<wit::TestOutcome>, String> {
        let outcomes = self
            .0
            .borrow()
            .run_tests_reviewed(&files, now, &rule::review)?;
        Ok(outcomes
            .into_iter()
            .map(|o| wit::TestOutcome {
                name: o.name,
                failure: o.failure,
            })
            .collect())
    }

    fn stats(&self) -> wit::EngineStats {
        let s = self.0.borrow().stats();
        wit::EngineStats {
            token_checks: s.token_checks,
            signature_checks: s.signature_checks,
        }
    }
}

impl JoseGuest for Component {
    fn verify_compact(token: String, jwk: String) -> Result<Vec<u8>, wit::JwsError> {
        core::signature::use_native(convert::host_verify);
        core::jws::verify_compact(&token, &jwk).map_err(|d| wit::JwsError {
            code: convert::denial_code(d.code),
            message: d.message,
        })
    }
}

impl GatewayGuest for Component {
    fn respond(decision: wit::Decision, service_url: String) -> HttpAnswer {
        let decision = convert::decision_in(decision).unwrap_or_else(|why| {
            core::Decision::deny(
                core::DenialCode::EngineInvalidOutput,
                format!("the decision to answer is malformed: {why}"),
                "",
            )
        });
        let answer = core::gateway::respond(&decision, &service_url);
        HttpAnswer {
            status: answer.status,
            headers: answer.headers,
            body: (!answer.body.is_null()).then(|| answer.body.to_string()),
        }
    }
}
