//! A bundle loaded in the policy module: the calls a host makes, each on a
//! pooled instance, each failure a denial.

use std::sync::Arc;

use greenlight_types::gateway::Response;
use greenlight_types::{
    AccessRequest, ActionToken, BundleInfo, Credential, Decision, Denial, DenialCode, EngineStats,
    HttpRequest, Principal, TestOutcome,
};
use serde_json::json;
use wasmtime::Store;
use wasmtime::component::ResourceAny;

use crate::pool::{Failure, HostState, KeyChange, Pool};
use crate::{HostError, bindings, convert};

/// A bundle loaded in the policy module, answering requests. Cheap to
/// clone; clones share the instance pool.
#[derive(Clone)]
pub struct Policy {
    pool: Arc<Pool>,
    /// What the module said about the bundle when it was loaded.
    info: Arc<BundleInfo>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("policy_hash", &self.info.policy_hash)
            .finish_non_exhaustive()
    }
}

/// The answer when the module cannot give one: a `503` that never lets a
/// request through, with the code of what failed.
fn unavailable(code: DenialCode, message: &str) -> Response {
    Response {
        status: 503,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("cache-control".to_owned(), "no-store".to_owned()),
        ],
        body: json!({
            "error": "temporarily_unavailable",
            "error_description": message,
            "code": code.as_str(),
        }),
    }
}

impl Policy {
    /// Loads `files` into a first instance and asks the module about them.
    pub(crate) fn load(pool: Pool) -> Result<Self, HostError> {
        let mut slot = pool.new_slot()?;
        let budget = pool.inner().limits.call_budget;
        let info = slot
            .call(budget, |b, s, p| {
                b.greenlight_approval_engine().policy().call_describe(s, p)
            })
            .map_err(|f| HostError::Instance(f.message))?;
        let info = convert::bundle_info(info).map_err(|why| {
            HostError::Instance(format!(
                "the policy module described the bundle wrongly: {why}"
            ))
        })?;
        pool.put_back(slot);
        Ok(Self {
            pool: Arc::new(pool),
            info: Arc::new(info),
        })
    }

    /// The hash of the component deciding (see [`crate::Engine::component_hash`]).
    pub fn component_hash(&self) -> &str {
        &self.pool.inner().hash
    }

    /// The bundle's hash, as reported in every decision.
    pub fn policy_hash(&self) -> &str {
        &self.info.policy_hash
    }

    /// What the module said about the bundle: issuers (with the `jwks_uri`
    /// a host fetches keys from), action-token and approval settings, claim
    /// names. A host reads these instead of parsing `greenlight.toml`.
    pub fn info(&self) -> &BundleInfo {
        &self.info
    }

    /// Replaces one issuer's keys (`greenlight` for action tokens) in every
    /// instance, present and future. The old keys keep serving when the
    /// new set is refused.
    pub fn set_keys(&self, issuer: &str, jwks: &str) -> Result<(), HostError> {
        self.pool
            .change_keys(issuer, &KeyChange::Set(jwks.to_owned()))
    }

    /// Removes one issuer's keys in every instance, present and future:
    /// its tokens are denied with `token-unknown-key` saying `reason`.
    pub fn withdraw_keys(&self, issuer: &str, reason: &str) -> Result<(), HostError> {
        self.pool
            .change_keys(issuer, &KeyChange::Withdraw(reason.to_owned()))
    }

    /// How many tokens the module checked for this bundle, and how many of
    /// those took a signature verification.
    pub fn stats(&self) -> EngineStats {
        self.pool.stats()
    }

    /// Runs the bundle's policy tests (the WIT `run-tests`): `files` are the
    /// `(file name, contents)` of its `tests/*.toml`. A file that is not a
    /// test file, or a module that fails, is an `Err` saying why. Tests run
    /// within the load budget, not a request's.
    pub fn run_tests(
        &self,
        files: &[(String, String)],
        now: u64,
    ) -> Result<Vec<TestOutcome>, String> {
        let answer = self
            .with_slot_budget(self.pool.inner().limits.load_budget, |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_run_tests(s, p, files, now)
            })
            .map_err(|f| f.message)?;
        convert::test_outcomes(answer?)
            .map_err(|why| format!("the policy module answered the tests wrongly: {why}"))
    }

    /// Runs one call on a pooled instance. A failure to get an instance is
    /// `engine-unavailable`; a failed call discards the instance.
    fn with_slot<R>(
        &self,
        f: impl FnOnce(&bindings::Approver, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        self.with_slot_budget(self.pool.inner().limits.call_budget, f)
    }

    /// [`Self::with_slot`] with a budget of its own.
    fn with_slot_budget<R>(
        &self,
        budget: std::time::Duration,
        f: impl FnOnce(&bindings::Approver, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<R>,
    ) -> Result<R, Failure> {
        let mut slot = self.pool.take().map_err(|e| Failure {
            code: DenialCode::EngineUnavailable,
            message: format!("no policy instance is available: {e}"),
        })?;
        match slot.call(budget, f) {
            Ok(r) => {
                self.pool.put_back(slot);
                Ok(r)
            }
            // The instance may be corrupt (a trapped instance cannot be
            // entered again): drop it and let the next call make a new one.
            Err(f) => {
                tracing::warn!(code = %f.code, message = %f.message, "policy module failed; instance discarded");
                Err(f)
            }
        }
    }

    /// Calls the module with `f` and reads its answer with `read` (which
    /// checks it); a failure of either is a deny.
    fn decide<T>(
        &self,
        f: impl FnOnce(&bindings::Approver, &mut Store<HostState>, ResourceAny) -> wasmtime::Result<T>,
        read: impl FnOnce(T) -> Result<Decision, String>,
    ) -> Decision {
        match self.with_slot(f) {
            Ok(d) => read(d).unwrap_or_else(|why| {
                // The reason may quote the module (serde names an unknown
                // field in full): cut to what any host accepts as a string.
                let mut message = format!("the policy module returned a malformed decision: {why}");
                message.truncate(message.floor_char_boundary(convert::MAX_GUEST_STRING));
                Decision::deny(DenialCode::EngineInvalidOutput, message, self.policy_hash())
            }),
            Err(f) => Decision::deny(f.code, f.message, self.policy_hash()),
        }
    }

    /// Decides an HTTP request at `now` (Unix seconds). Never fails: a
    /// trap, an overrun or malformed output is a deny.
    pub fn evaluate_http(&self, request: &HttpRequest, now: u64) -> Decision {
        let req = convert::http_request(request);
        self.decide(
            |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_evaluate_http(s, p, &req, now)
            },
            convert::decision,
        )
    }

    /// Decides one request given as JSON text (the WIT `decide-json`):
    /// `{"http": …}`, `{"access": …}` or `{"vouched": {"subject": …,
    /// "access": …}}`, as `tests/vectors` writes requests. The module's
    /// answer is read as JSON and checked as every decision is. For hosts
    /// that hold requests as JSON; the typed calls above cost less here.
    /// Never fails: text that is not such a request is a deny
    /// `request-invalid`, a trap, an overrun or malformed output a deny.
    pub fn decide_json(&self, request: &str, now: u64) -> Decision {
        self.decide(
            |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_decide_json(s, p, request, now)
            },
            |text| convert::decision_json(&text),
        )
    }

    /// Decides an AuthZEN-shaped request at `now` (Unix seconds).
    pub fn evaluate(&self, request: &AccessRequest, now: u64) -> Decision {
        let req = convert::access_request(request);
        self.decide(
            |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_evaluate(s, p, &req, now)
            },
            convert::decision,
        )
    }

    /// Decides an AuthZEN-shaped request for a subject this host vouches
    /// for (the WIT `evaluate-as`). Only for subjects forwarded by a
    /// policy enforcement point the caller has authenticated and trusts:
    /// the component cannot tell a vouched subject from a claimed one.
    pub fn evaluate_as(&self, subject: &Principal, request: &AccessRequest, now: u64) -> Decision {
        let who = convert::principal_out(subject);
        let req = convert::access_request(request);
        self.decide(
            |b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_evaluate_as(s, p, &who, &req, now)
            },
            convert::decision,
        )
    }

    /// Verifies an access token at `now` and returns who it names, when it
    /// expires, when the person signed in and whether it is meant for
    /// approving (the WIT `authenticate`); action tokens are refused. A
    /// failing module is a denial too.
    pub fn authenticate(&self, token: &str, now: u64) -> Result<Credential, Denial> {
        let answer = self
            .with_slot(|b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_authenticate(s, p, token, now)
            })
            .map_err(|f| Denial::new(f.code, f.message))?;
        match answer {
            Ok(c) => convert::credential(c).map_err(|why| {
                Denial::new(
                    DenialCode::EngineInvalidOutput,
                    format!("the policy module returned a malformed credential: {why}"),
                )
            }),
            Err(d) => Err(convert::denial_with_issuer(d, &self.info().issuers)),
        }
    }

    /// Verifies an OpenID Connect ID token at `now` for the relying party
    /// `client_id` that sent `nonce` (the WIT `authenticate-id-token`):
    /// who signed in, with the same issuers, keys and claim mapping as
    /// access tokens. A failing module is a denial too.
    pub fn authenticate_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
        now: u64,
    ) -> Result<Credential, Denial> {
        let answer = self
            .with_slot(|b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_authenticate_id_token(s, p, token, client_id, nonce, now)
            })
            .map_err(|f| Denial::new(f.code, f.message))?;
        match answer {
            Ok(c) => convert::credential(c).map_err(|why| {
                Denial::new(
                    DenialCode::EngineInvalidOutput,
                    format!("the policy module returned a malformed credential: {why}"),
                )
            }),
            Err(d) => Err(convert::denial_with_issuer(d, &self.info().issuers)),
        }
    }

    /// Verifies a Greenlight action token at `now` with exactly the rules
    /// of enforcement and returns its claims (the WIT `inspect`); access
    /// tokens are refused. What only the host knows (a consumed token, a
    /// revoked approval) is for the caller to add.
    pub fn inspect(&self, token: &str, now: u64) -> Result<ActionToken, Denial> {
        let answer = self
            .with_slot(|b, s, p| {
                b.greenlight_approval_engine()
                    .policy()
                    .call_inspect(s, p, token, now)
            })
            .map_err(|f| Denial::new(f.code, f.message))?;
        match answer {
            Ok(t) => convert::action_token(t).map_err(|why| {
                Denial::new(
                    DenialCode::EngineInvalidOutput,
                    format!("the policy module returned a malformed action token: {why}"),
                )
            }),
            Err(d) => Err(convert::denial_with_issuer(d, &self.info().issuers)),
        }
    }

    /// The HTTP answer a gateway gives for `decision` (docs/gateway.md),
    /// with the approval service at `service_url` named in challenges, from
    /// the module's `gateway.respond`. A module that fails, or answers a
    /// deny with a pass-through, gets a `503`: never a pass-through.
    pub fn respond(&self, decision: &Decision, service_url: &str) -> Response {
        let wit_decision = convert::decision_out(decision);
        let answer = self.with_slot(|b, s, _| {
            b.greenlight_approval_gateway()
                .call_respond(s, &wit_decision, service_url)
        });
        match answer {
            Ok(a) => convert::answer(a, decision).unwrap_or_else(|why| {
                tracing::warn!(%why, "the policy module answered a decision wrongly");
                unavailable(
                    DenialCode::EngineInvalidOutput,
                    &format!("the policy module answered wrongly: {why}"),
                )
            }),
            Err(f) => unavailable(f.code, &f.message),
        }
    }

    /// The pool, for the crate's tests.
    #[cfg(test)]
    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }
}
