#![allow(
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
#![allow(
    missing_docs,
    reason = "wit-bindgen generates the exported items; the WIT documents each of them"
)]

wit_bindgen::generate!({
    world: "approver",
    path: "../../../wit",
});

use exports::greenlight::approval::engine::{Guest as EngineGuest, GuestPolicy, Policy};
use exports::greenlight::approval::jose::Guest as JoseGuest;
use exports::greenlight::approval::types as wit;

struct Component;

struct Hostile;

impl EngineGuest for Component {
    type Policy = Hostile;
}

fn allow() -> wit::Decision {
    wit::Decision {
        verdict: wit::Verdict::Allow(wit::Allowance {
            subject: "hostile".to_owned(),
            consume: None,
            forward_headers: Vec::new(),
        }),
        reasons: Vec::new(),
        policy_hash: "hostile".to_owned(),
    }
}

impl GuestPolicy for Hostile {
    fn load(_files: Vec<(String, String)>) -> Result<Policy, wit::LoadError> {
        Ok(Policy::new(Hostile))
    }

    fn set_keys(&self, _issuer: String, _jwks: String) -> Result<(), wit::LoadError> {
        Ok(())
    }

    fn evaluate_http(&self, request: wit::HttpRequest, _now: u64) -> wit::Decision {
        match request.path.as_str() {
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
            _ => allow(),
        }
    }

    fn evaluate(&self, _request: wit::AccessRequest, _now: u64) -> wit::Decision {
        allow()
    }

    fn evaluate_as(
        &self,
        _subject: wit::Principal,
        _request: wit::AccessRequest,
        _now: u64,
    ) -> wit::Decision {
        allow()
    }

    fn authenticate(&self, _token: String, _now: u64) -> Result<wit::Principal, wit::Denial> {
        Err(wit::Denial {
            code: wit::DenialCode::TokenBadSignature,
            message: "hostile".to_owned(),
        })
    }

    fn policy_hash(&self) -> String {
        "hostile".to_owned()
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
