#![expect(
    unsafe_code,
    reason = "wit-bindgen generates the canonical-ABI glue with unsafe code; this crate writes none"
)]
//! A hostile policy module for the host's safety tests. It exports the same
//! `greenlight:approval/approver` world as `greenlight.wasm`, and on
//! `evaluate-http` it misbehaves according to the request path:
//!
//! - `/loop`: spins forever (the host's time budget must stop it);
//! - `/alloc`: allocates until memory runs out (the memory cap must stop it);
//! - `/trap`: executes `unreachable` (a trap);
//! - anything else: an allow for subject `hostile`, so a test can show the
//!   host serves again after each failure.
//!
//! Its `decide-json` does the same for an `http` call with those paths,
//! answers the allow naming the call's kind in `reasons` (and a vouched
//! subject as the principal) otherwise, and for these paths answers text
//! a host must refuse, so that its reading of the answer is tested too:
//! `/not-json`, `/not-a-decision` (JSON of another shape), `/deep` (params
//! nested 100,000 deep), `/nan` (`NaN`), `/huge-number` (`1e400`),
//! `/surrogate` (a lone surrogate escaped), `/big-params` (70,000 bytes of
//! params), `/huge-decision` (params of 1 MiB: a decision text longer than
//! any host reads), `/long-name` (an unknown member named by 40,000 emoji,
//! which a host's reason must not quote past 64 KiB) and `/twice`
//! (`verdict` named twice, a deny first).
//!
//! Its `gateway.respond` answers every decision with a pass-through (status
//! 0), so a test can show a host refuses to let a deny through on a
//! module's word.
#![expect(
    missing_docs,
    reason = "wit-bindgen generates the exported items; the WIT documents each of them"
)]

wit_bindgen::generate!({
    world: "approver",
    path: "../../../wit",
});

use exports::greenlight::approval::engine::{Guest as EngineGuest, GuestPolicy, Policy};
use exports::greenlight::approval::gateway::{Guest as GatewayGuest, HttpAnswer};
use exports::greenlight::approval::jose::Guest as JoseGuest;
use exports::greenlight::approval::types as wit;
use serde_json::{Value, json};

struct Component;

struct Hostile;

impl EngineGuest for Component {
    type Policy = Hostile;
}

fn allow() -> wit::Decision {
    wit::Decision {
        verdict: wit::Verdict::Allow(wit::Allowance {
            principal: wit::Principal {
                entity_type: "User".to_owned(),
                subject: "hostile".to_owned(),
                client_id: String::new(),
                scopes: Vec::new(),
                groups: Vec::new(),
                roles: Vec::new(),
                tenant: String::new(),
                issuer: "hostile".to_owned(),
                attributes: Vec::new(),
            },
            action: wit::Action {
                name: "hostile".to_owned(),
                resource_type: "Hostile".to_owned(),
                resource_id: "hostile".to_owned(),
                params: "{}".to_owned(),
                // The true digest of this action: the host checks it.
                digest: "erF0EfDnttDOVv9WNrqnsf34DPlnUOKXRSZuQUe9npY".to_owned(),
            },
            approval_id: None,
            consume: None,
            forward_headers: Vec::new(),
        }),
        reasons: Vec::new(),
        policy_hash: "hostile".to_owned(),
    }
}

/// [`allow`] as `decide-json` writes it.
const ALLOW_JSON: &str = concat!(
    r#"{"verdict":{"kind":"allow","principal":{"entity_type":"User","subject":"hostile","#,
    r#""client_id":"","scopes":[],"groups":[],"roles":[],"tenant":"","issuer":"hostile"},"#,
    r#""action":{"name":"hostile","resource_type":"Hostile","resource_id":"hostile","params":{},"#,
    r#""digest":"erF0EfDnttDOVv9WNrqnsf34DPlnUOKXRSZuQUe9npY"},"approval_id":null,"consume":null,"#,
    r#""forward_headers":[]},"reasons":[],"policy_hash":"hostile"}"#
);

/// Spins forever for `/loop`, allocates without bound for `/alloc`,
/// traps for `/trap`; returns for any other path.
fn misbehave(path: &str) {
    match path {
        "/loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "/alloc" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![1u8; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "/trap" => panic!("hostile module traps on purpose"),
        _ => {}
    }
}

impl GuestPolicy for Hostile {
    fn load(_files: Vec<(String, String)>) -> Result<Policy, wit::LoadError> {
        Ok(Policy::new(Hostile))
    }

    fn set_keys(&self, _issuer: String, _jwks: String) -> Result<(), wit::LoadError> {
        Ok(())
    }

    fn withdraw_keys(&self, _issuer: String, _reason: String) -> Result<(), wit::LoadError> {
        Ok(())
    }

    fn evaluate_http(&self, request: wit::HttpRequest, _now: u64) -> wit::Decision {
        misbehave(&request.path);
        allow()
    }

    fn evaluate(&self, _request: wit::AccessRequest, _now: u64) -> wit::Decision {
        allow()
    }

    fn decide_json(&self, request: String, _now: u64) -> String {
        // The call it was given: its kind named in `reasons`, a vouched
        // subject's name as the principal's, so a test sees what arrived.
        let call: Value = serde_json::from_str(&request).unwrap_or_default();
        let (kind, body) = call
            .as_object()
            .and_then(|o| o.iter().next())
            .map(|(k, v)| (k.clone(), v.clone()))
            .unwrap_or_default();
        let path = body["path"].as_str().unwrap_or_default().to_owned();
        misbehave(&path);
        let mut answer: Value = serde_json::from_str(ALLOW_JSON).unwrap_or_default();
        answer["reasons"] = json!([kind]);
        if kind == "vouched" {
            answer["verdict"]["principal"]["subject"] = body["subject"]["subject"].clone();
        }
        let text = answer.to_string();
        let params = |with: &str| text.replace(r#""params":{}"#, &format!(r#""params":{with}"#));
        match path.as_str() {
            "/not-json" => "allow".to_owned(),
            "/not-a-decision" => {
                r#"{"verdict":{"kind":"allow"},"reasons":[],"policy_hash":"hostile"}"#.to_owned()
            }
            "/deep" => params(&format!(
                r#"{{"a":{}{}}}"#,
                "[".repeat(100_000),
                "]".repeat(100_000)
            )),
            "/nan" => params(r#"{"amount":NaN}"#),
            "/huge-number" => params(r#"{"amount":1e400}"#),
            "/surrogate" => params(r#"{"note":"\ud800"}"#),
            "/big-params" => params(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(70_000))),
            "/huge-decision" => params(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(1 << 20))),
            "/long-name" => {
                text.replacen('{', &format!(r#"{{"{}":1,"#, "\u{1F600}".repeat(40_000)), 1)
            }
            "/twice" => text.replacen(
                r#"{"verdict":"#,
                r#"{"verdict":{"kind":"deny","code":"policy-forbidden","message":"no"},"verdict":"#,
                1,
            ),
            _ => text,
        }
    }

    /// Claims every test passed, ten thousand and one times over (more
    /// outcomes than a host accepts), or runs forever for `loop.toml`.
    fn run_tests(
        &self,
        files: Vec<(String, String)>,
        _now: u64,
    ) -> Result<Vec<wit::TestOutcome>, String> {
        if files.iter().any(|(name, _)| name == "loop.toml") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Ok(vec![
            wit::TestOutcome {
                name: "hostile".to_owned(),
                failure: None,
            };
            10_001
        ])
    }

    fn evaluate_as(
        &self,
        _subject: wit::Principal,
        _request: wit::AccessRequest,
        _now: u64,
    ) -> wit::Decision {
        allow()
    }

    fn authenticate(&self, _token: String, _now: u64) -> Result<wit::Credential, wit::Denial> {
        Err(wit::Denial {
            code: wit::DenialCode::TokenBadSignature,
            message: "hostile".to_owned(),
            issuer: None,
        })
    }

    fn authenticate_id_token(
        &self,
        _token: String,
        _client_id: String,
        _nonce: String,
        _now: u64,
    ) -> Result<wit::Credential, wit::Denial> {
        Err(wit::Denial {
            code: wit::DenialCode::TokenBadSignature,
            message: "hostile".to_owned(),
            issuer: None,
        })
    }

    fn inspect(&self, _token: String, _now: u64) -> Result<wit::ActionToken, wit::Denial> {
        Err(wit::Denial {
            code: wit::DenialCode::TokenBadSignature,
            message: "hostile".to_owned(),
            issuer: None,
        })
    }

    fn describe(&self) -> wit::BundleInfo {
        wit::BundleInfo {
            policy_hash: "hostile".to_owned(),
            claims: wit::ClaimNames {
                entity_type: "User".to_owned(),
                scope: "scope".to_owned(),
                groups: "groups".to_owned(),
                roles: "roles".to_owned(),
                tenant: "tenant".to_owned(),
            },
            issuers: Vec::new(),
            action_tokens: None,
            approvals: wit::ApprovalSettings {
                default_ttl_seconds: 900,
                poll_interval_seconds: 5,
                confirm_max_age_seconds: 300,
            },
            development: false,
            key_fetch: wit::KeyFetchSettings {
                connect_timeout_ms: 2_000,
                timeout_ms: 5_000,
                max_bytes: 524_288,
                min_age_seconds: 300,
                max_age_seconds: 86_400,
                max_stale_seconds: 86_400,
                unknown_kid_interval_seconds: 30,
                allow_http_loopback: false,
            },
        }
    }

    fn stats(&self) -> wit::EngineStats {
        wit::EngineStats {
            token_checks: 0,
            signature_checks: 0,
        }
    }
}

impl GatewayGuest for Component {
    fn respond(_decision: wit::Decision, _service_url: String) -> HttpAnswer {
        HttpAnswer {
            status: 0,
            headers: Vec::new(),
            body: None,
        }
    }
}

impl JoseGuest for Component {
    fn verify_compact(_token: String, _jwk: String) -> Result<Vec<u8>, wit::JwsError> {
        Err(wit::JwsError {
            code: wit::DenialCode::TokenBadSignature,
            message: "hostile".to_owned(),
        })
    }
}

export!(Component);
