//! One vector file, two engines, one answer: every `tests/vectors/*.json`
//! is decided by the native core and by `greenlight.wasm` in wasmtime; the
//! native decision must equal the vector's expectation and the component's
//! decision JSON must be byte-identical to the native one, as must its
//! answer to the same request given as JSON text (`decide-json`); the gateway
//! answer the component gives for it (`gateway.respond`) must equal the
//! vector's `response`, as must the native mapping's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use greenlight_core::Engine as NativeEngine;
use greenlight_core::call::Call;
use greenlight_types::Decision;
use serde::Deserialize;

/// The fewest vectors the suite accepts; fewer means files went missing.
const MIN_VECTORS: usize = 40;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Vector {
    description: String,
    bundle: String,
    keys: Vec<KeyRef>,
    now: u64,
    request: Call,
    expect: Decision,
    /// The gateway's answer for `expect` (docs/gateway.md).
    response: greenlight_types::gateway::Response,
}

/// The approval service the vectors' gateway answers name.
const SERVICE: &str = "https://greenlight.example.com";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyRef {
    issuer: String,
    jwks: String,
}

/// The component, compiled once for this file's tests, its signature
/// checks through the host's native primitive (the WIT `crypto` import).
fn component() -> greenlight_host::Engine {
    component_with(true)
}

/// The component with or without the host's native signature checks
/// (without, it checks every signature itself).
fn component_with(native_signatures: bool) -> greenlight_host::Engine {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-cwasm");
    greenlight_host::Engine::with_options(
        greenlight_component::GREENLIGHT_WASM,
        greenlight_host::Limits {
            native_signatures,
            ..greenlight_host::Limits::default()
        },
        Some(&cache),
    )
    .expect("component compiles")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every `*.json` file of a folder, parsed, sorted by file name.
fn read_json_dir<T: serde::de::DeserializeOwned>(dir: &Path) -> Vec<(String, T)> {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{} cannot be read: {e}", dir.display()));
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            let text = std::fs::read_to_string(&path).expect("readable file");
            let value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            out.push((
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned(),
                value,
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn keys(v: &Vector) -> Vec<(String, String)> {
    v.keys
        .iter()
        .map(|k| {
            let jwks = std::fs::read_to_string(root().join(&k.jwks)).expect("key set");
            (k.issuer.clone(), jwks)
        })
        .collect()
}

fn decide_native(v: &Vector, files: &[(String, String)]) -> Decision {
    let mut engine = NativeEngine::load(files).expect("bundle loads natively");
    for (issuer, jwks) in keys(v) {
        engine.set_keys(&issuer, &jwks).expect("keys load natively");
    }
    engine.decide_call(&v.request, v.now)
}

/// The component's first and cached decisions, its decision of
/// `request_text` (the vector's request as JSON text) on a fresh instance,
/// and its gateway answer.
fn decide_wasm(
    v: &Vector,
    request_text: &str,
    engine: &greenlight_host::Engine,
    files: &[(String, String)],
) -> (
    Decision,
    Decision,
    Decision,
    greenlight_types::gateway::Response,
) {
    let load = || {
        let policy = engine
            .load_bundle(files.to_vec())
            .expect("bundle loads in the component");
        for (issuer, jwks) in keys(v) {
            policy
                .set_keys(&issuer, &jwks)
                .expect("keys load in the component");
        }
        policy
    };
    let policy = load();
    let run = || match &v.request {
        Call::Http(r) => policy.evaluate_http(r, v.now),
        Call::Access(r) => policy.evaluate(r, v.now),
        Call::Vouched(w) => policy.evaluate_as(&w.subject, &w.access, v.now),
    };
    // The second run is answered from the instance's token cache.
    let first = run();
    let cached = run();
    let answer = policy.respond(&first, SERVICE);
    // The vector's own request text (`decide-json`), on an instance that
    // has seen no token yet.
    let json = load().decide_json(request_text, v.now);
    (first, cached, json, answer)
}

/// Every vector: native equals the expectation, the component equals native
/// byte for byte, and a cached second answer equals the first.
#[test]
fn every_vector_gives_the_expected_decision_in_both_engines() {
    let all: Vec<(String, Vector)> = read_json_dir(&root().join("tests/vectors"));
    assert!(
        all.len() >= MIN_VECTORS,
        "only {} vectors in tests/vectors",
        all.len()
    );
    let engine = component();
    let in_guest = component_with(false);
    let mut bundles: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut failures = Vec::new();
    for (name, v) in &all {
        let files = bundles
            .entry(v.bundle.clone())
            .or_insert_with(|| {
                greenlight_host::read_bundle_dir(&root().join(&v.bundle)).expect("bundle dir")
            })
            .clone();
        let native = decide_native(v, &files);
        // The vector's request as its file writes it (compact).
        let file: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("tests/vectors").join(name)).expect("vector"),
        )
        .expect("vector JSON");
        let request_text = file["request"].to_string();
        let (wasm, wasm_cached, wasm_json, wasm_answer) =
            decide_wasm(v, &request_text, &engine, &files);
        // The signatures checked by the module itself: the same decision.
        let (guest, _, guest_json, _) = decide_wasm(v, &request_text, &in_guest, &files);
        if guest_json.to_json() != guest.to_json() {
            failures.push(format!(
                "{name}: `decide-json` differs from the typed call, signatures in the module\n  typed {}\n  json  {}",
                guest.to_json(),
                guest_json.to_json()
            ));
        }
        if guest.to_json() != wasm.to_json() {
            failures.push(format!(
                "{name}: host-checked and module-checked signatures disagree\n  host   {}\n  module {}",
                wasm.to_json(),
                guest.to_json()
            ));
        }
        if native != v.expect {
            failures.push(format!(
                "{name} ({})\n  expected {}\n  native   {}",
                v.description,
                v.expect.to_json(),
                native.to_json()
            ));
        }
        let answer = greenlight_types::gateway::respond(&native, SERVICE);
        for (host, got) in [("native", &answer), ("component", &wasm_answer)] {
            if *got != v.response {
                failures.push(format!(
                    "{name}: the {host} gateway answer differs\n  expected {}\n  got      {}",
                    serde_json::to_string(&v.response).unwrap_or_default(),
                    serde_json::to_string(got).unwrap_or_default()
                ));
            }
        }
        if wasm.to_json() != native.to_json() {
            failures.push(format!(
                "{name}: component and core disagree\n  native {}\n  wasm   {}",
                native.to_json(),
                wasm.to_json()
            ));
        }
        if wasm_json.to_json() != wasm.to_json() {
            failures.push(format!(
                "{name}: `decide-json` differs from the typed call\n  typed {}\n  json  {}",
                wasm.to_json(),
                wasm_json.to_json()
            ));
        }
        if wasm_cached.to_json() != wasm.to_json() {
            failures.push(format!(
                "{name}: the cached answer differs\n  first  {}\n  cached {}",
                wasm.to_json(),
                wasm_cached.to_json()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors failed:\n{}",
        failures.len(),
        all.len(),
        failures.join("\n")
    );
    // The host's primitive answered for one component and never for the
    // other: both ways were really taken.
    assert!(
        engine.native_signature_checks() >= 40,
        "only {} native checks",
        engine.native_signature_checks()
    );
    assert_eq!(in_guest.native_signature_checks(), 0);
}

#[derive(Debug, Deserialize)]
struct JoseVector {
    jwk: serde_json::Value,
    alg: String,
    payload: String,
    token: String,
}

/// The published RFC 7515, 7520 and 8037 examples verify through the engine
/// (natively and in the component) where the algorithm is supported, a
/// flipped signature bit does not, ES512 gets a clear unsupported-algorithm
/// denial, and `alg: none` is refused.
#[test]
fn published_jose_vectors_verify_in_both_engines() {
    let engine = component();
    let in_guest = component_with(false);
    let all: Vec<(String, JoseVector)> = read_json_dir(&root().join("tests/jose"));
    assert_eq!(all.len(), 10, "the ten published vectors");
    for (name, v) in all {
        let jwk = v.jwk.to_string();
        let native = greenlight_core::jws::verify_compact(&v.token, &jwk);
        let wasm = engine.verify_compact(&v.token, &jwk);
        assert_eq!(native, wasm, "{name}: engines disagree");
        assert_eq!(
            in_guest.verify_compact(&v.token, &jwk),
            wasm,
            "{name}: host-checked and module-checked signatures disagree"
        );
        match v.alg.as_str() {
            "ES512" => {
                let d = native.expect_err("ES512 is refused");
                assert_eq!(
                    d.code,
                    greenlight_types::DenialCode::TokenUnsupportedAlgorithm,
                    "{name}"
                );
                assert_eq!(d.message, "algorithm `ES512` is not supported", "{name}");
            }
            "none" => {
                let d = native.expect_err("alg none is refused");
                assert_eq!(
                    d.code,
                    greenlight_types::DenialCode::TokenUnsupportedAlgorithm,
                    "{name}"
                );
                assert_eq!(d.message, "algorithm `none` is not supported", "{name}");
            }
            _ => {
                assert_eq!(
                    native.as_deref().map(String::from_utf8_lossy),
                    Ok(v.payload.as_str().into()),
                    "{name}: payload"
                );
                // Flip one bit of the signature's first byte.
                let (input, sig) = v.token.rsplit_once('.').expect("three parts");
                let mut bytes: Vec<char> = sig.chars().collect();
                bytes[0] = if bytes[0] == 'A' { 'B' } else { 'A' };
                let flipped = format!("{input}.{}", bytes.into_iter().collect::<String>());
                let d = greenlight_core::jws::verify_compact(&flipped, &jwk)
                    .expect_err("a flipped signature fails");
                assert_eq!(
                    d.code,
                    greenlight_types::DenialCode::TokenBadSignature,
                    "{name}"
                );
                assert_eq!(
                    engine.verify_compact(&flipped, &jwk),
                    Err(d.clone()),
                    "{name}: engines disagree on the flip"
                );
                assert_eq!(
                    in_guest.verify_compact(&flipped, &jwk),
                    Err(d),
                    "{name}: host-checked and module-checked signatures disagree on the flip"
                );
            }
        }
    }
    // RS256, ES256, PS384 and EdDSA, each once and flipped (HS256 stays in
    // the module; ES512 and `none` are refused before any check).
    assert_eq!(engine.native_signature_checks(), 10);
    assert_eq!(in_guest.native_signature_checks(), 0);
}
