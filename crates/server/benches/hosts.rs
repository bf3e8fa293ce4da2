//! Per-decision latency of `greenlight.wasm` from the Rust host, measured
//! the way `bindings/python/bench.py` and `bindings/js/bench.mjs` measure it
//! from Python and Node, so `scripts/bench-hosts` can put the three side by
//! side: every vector of `tests/vectors`, decided N times after a warm-up on
//! one policy per vector (the verified-token cache answers the signature
//! part), mean and median per decision. Not a test.
//!
//! ```sh
//! cargo bench -p greenlight --bench hosts [-- ITERATIONS]
//! ```

#![expect(
    clippy::unwrap_used,
    reason = "a benchmark binary: a broken vector should stop it"
)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use greenlight_core::{AccessRequest, HttpRequest};
use serde_json::Value;

/// The cases BENCHMARKS.md reports: case name -> vector file stem.
const CASES: [(&str, &str); 3] = [
    ("refund-500-eddsa", "002-demo-refund-500-needs-finance"),
    ("read-es256", "044-keys-es256-allowed"),
    ("read-rs256", "046-keys-rs256-allowed"),
];
const WARMUP: usize = 30;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mean(s: &[f64]) -> f64 {
    s.iter().sum::<f64>() / s.len() as f64
}

fn median(s: &[f64]) -> f64 {
    let mut v = s.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test` does not, and then one
    // decision per vector shows the benchmark still runs. The first number
    // given, if any, is the count.
    let benching = std::env::args().any(|a| a == "--bench");
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(if benching { 300 } else { 1 });
    let warmup = if benching { WARMUP } else { 0 };
    let engine = greenlight_host::Engine::load(greenlight_component::GREENLIGHT_WASM).unwrap();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root().join("tests/vectors"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let mut all = Vec::new();
    let mut by_stem = std::collections::BTreeMap::new();
    for path in &paths {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let files =
            greenlight_host::read_bundle_dir(&root().join(v["bundle"].as_str().unwrap())).unwrap();
        let policy = engine.load_bundle(files).unwrap();
        for k in v["keys"].as_array().unwrap() {
            let jwks = std::fs::read_to_string(root().join(k["jwks"].as_str().unwrap())).unwrap();
            policy
                .set_keys(k["issuer"].as_str().unwrap(), &jwks)
                .unwrap();
        }
        let now = v["now"].as_u64().unwrap();
        let decide: Box<dyn Fn()> = if let Some(r) = v["request"].get("http") {
            let r: HttpRequest = serde_json::from_value(r.clone()).unwrap();
            Box::new(move || {
                std::hint::black_box(policy.evaluate_http(&r, now));
            })
        } else if let Some(r) = v["request"].get("vouched") {
            let subject: greenlight_core::Principal =
                serde_json::from_value(r["subject"].clone()).unwrap();
            let r: AccessRequest = serde_json::from_value(r["access"].clone()).unwrap();
            Box::new(move || {
                std::hint::black_box(policy.evaluate_as(&subject, &r, now));
            })
        } else {
            let r: AccessRequest = serde_json::from_value(v["request"]["access"].clone()).unwrap();
            Box::new(move || {
                std::hint::black_box(policy.evaluate(&r, now));
            })
        };
        for _ in 0..warmup {
            decide();
        }
        let samples: Vec<f64> = (0..iterations)
            .map(|_| {
                let t = Instant::now();
                decide();
                t.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        all.extend_from_slice(&samples);
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        by_stem.insert(stem, samples);
    }
    if !benching {
        println!(
            "a smoke run under `cargo test` (one cold decision per vector); use `cargo bench`"
        );
        return;
    }
    println!("wasmtime (Rust host), {iterations} warm decisions per vector\n");
    println!("| case | mean | median |");
    println!("|---|---|---|");
    for (case, stem) in CASES {
        let s = &by_stem[stem];
        println!(
            "| {case} (warm) | {:.1} µs | {:.1} µs |",
            mean(s),
            median(s)
        );
    }
    println!(
        "| all {} vectors (warm) | {:.1} µs | {:.1} µs |",
        paths.len(),
        mean(&all),
        median(&all)
    );
}
