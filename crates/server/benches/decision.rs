//! One decision through the native core and through greenlight.wasm in
//! wasmtime, on the same requests:
//!
//! - `cold`: every iteration presents a token the engine has not verified
//!   yet (tokens cycle through more than the verified-token cache holds), so
//!   the signature is checked from scratch;
//! - `warm`: the same token every time, answered from the cache (time
//!   claims re-checked, Cedar evaluated as always).
//!
//! In wasmtime the token's signature is checked by the host's native
//! primitive (the WIT `crypto` import, ring); `cold/wasm-in-module` checks
//! it inside the module instead, as a host without the import would.
//!
//! Run with `cargo bench -p greenlight --bench decision`; `scripts/bench-ratios`
//! prints the wasm/native ratios from criterion's estimates.

use std::path::Path;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use greenlight_core::HttpRequest;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600;

/// More distinct tokens than the engine caches, so `cold` never hits.
const COLD_TOKENS: usize = greenlight_core::engine::TOKEN_CACHE_CAPACITY * 2;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

struct Case {
    name: &'static str,
    bundle: &'static str,
    method: &'static str,
    path: &'static str,
    params: Option<&'static str>,
    tokens: Vec<String>,
}

fn tokens(
    key: &EncodingKey,
    alg: Algorithm,
    kid: &str,
    typ: &str,
    claims: serde_json::Value,
) -> Vec<String> {
    (0..COLD_TOKENS)
        .map(|i| {
            let mut header = Header::new(alg);
            header.kid = Some(kid.to_owned());
            header.typ = Some(typ.to_owned());
            let mut c = claims.clone();
            c["jti"] = json!(format!("bench-{i}"));
            jsonwebtoken::encode(&header, &c, key).expect("sign")
        })
        .collect()
}

fn pem(p: &str) -> Vec<u8> {
    std::fs::read(root().join(p)).expect("key file")
}

fn cases() -> Vec<Case> {
    let demo = json!({
        "iss": "https://idp.example.com", "aud": "https://api.example.com", "sub": "alice",
        "iat": NOW - 60, "exp": NOW + 3600, "scope": "payments:refund payments:read",
    });
    let test = |iss: &str| {
        json!({
            "iss": iss, "aud": "https://api.test", "sub": "bob",
            "iat": NOW - 60, "exp": NOW + 3600, "scope": "things:read",
        })
    };
    let ed = EncodingKey::from_ed_pem(&pem("examples/bundle/dev/idp-dev.key.pem")).expect("ed key");
    let ec = EncodingKey::from_ec_pem(&pem("tests/keys/p256.pem")).expect("ec key");
    let rsa = EncodingKey::from_rsa_pem(&pem("tests/keys/rsa2048.pem")).expect("rsa key");
    vec![
        Case {
            name: "refund-500-eddsa",
            bundle: "examples/bundle",
            method: "POST",
            path: "/payments/pay_123/refund",
            params: Some(r#"{"amount":500,"currency":"EUR"}"#),
            tokens: tokens(&ed, Algorithm::EdDSA, "idp-dev-1", "at+jwt", demo),
        },
        Case {
            name: "read-es256",
            bundle: "tests/bundles/tokens",
            method: "GET",
            path: "/things/t-1",
            params: None,
            tokens: tokens(
                &ec,
                Algorithm::ES256,
                "ec256-1",
                "JWT",
                test("https://ec.example"),
            ),
        },
        Case {
            name: "read-rs256",
            bundle: "tests/bundles/tokens",
            method: "GET",
            path: "/things/t-1",
            params: None,
            tokens: tokens(
                &rsa,
                Algorithm::RS256,
                "rsa-1",
                "JWT",
                test("https://rsa.example"),
            ),
        },
    ]
}

fn request(case: &Case, token: &str) -> HttpRequest {
    HttpRequest {
        method: case.method.to_owned(),
        path: case.path.to_owned(),
        query: String::new(),
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        params: case.params.map(str::to_owned),
        entities: None,
    }
}

fn bench(c: &mut Criterion) {
    let engine =
        greenlight_host::Engine::load(greenlight_component::GREENLIGHT_WASM).expect("component");
    // The same component checking every signature itself (no `crypto`
    // import answers): the cold path before native signatures.
    let in_module = greenlight_host::Engine::with_options(
        greenlight_component::GREENLIGHT_WASM,
        greenlight_host::Limits {
            native_signatures: false,
            ..greenlight_host::Limits::default()
        },
        greenlight_host::default_cache_dir().as_deref(),
    )
    .expect("component");
    for case in cases() {
        let files = greenlight_host::read_bundle_dir(&root().join(case.bundle)).expect("bundle");
        let native = greenlight_core::Engine::load(&files).expect("native bundle");
        let wasm = engine.load_bundle(files.clone()).expect("wasm bundle");
        let wasm_in_module = in_module.load_bundle(files).expect("wasm bundle");
        let requests: Vec<HttpRequest> = case.tokens.iter().map(|t| request(&case, t)).collect();
        // Both engines must agree before their speed means anything.
        assert_eq!(
            native.evaluate_http(&requests[0], NOW),
            wasm.evaluate_http(&requests[0], NOW)
        );
        assert_eq!(
            native.evaluate_http(&requests[1], NOW),
            wasm_in_module.evaluate_http(&requests[1], NOW)
        );

        let mut group = c.benchmark_group(case.name);
        let mut i = 0;
        group.bench_function(BenchmarkId::new("cold", "native"), |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                native.evaluate_http(&requests[i], NOW)
            })
        });
        group.bench_function(BenchmarkId::new("cold", "wasm"), |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                wasm.evaluate_http(&requests[i], NOW)
            })
        });
        group.bench_function(BenchmarkId::new("cold", "wasm-in-module"), |b| {
            b.iter(|| {
                i = (i + 1) % requests.len();
                wasm_in_module.evaluate_http(&requests[i], NOW)
            })
        });
        group.bench_function(BenchmarkId::new("warm", "native"), |b| {
            b.iter(|| native.evaluate_http(&requests[0], NOW))
        });
        group.bench_function(BenchmarkId::new("warm", "wasm"), |b| {
            b.iter(|| wasm.evaluate_http(&requests[0], NOW))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
