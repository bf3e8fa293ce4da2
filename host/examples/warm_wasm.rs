//! A warm decision in a loop through `greenlight.wasm` in wasmtime, for a
//! profiler: the twin of `crates/core/examples/warm_loop.rs` (the demo
//! bundle's refund of 500 and refund of 50, tokens from conformance vectors
//! 002 and 001, each decided `N` times after a first decision cached the
//! token). callgrind names the host's own functions (lowering the request,
//! lifting and checking the decision); the module's compiled code shows as
//! addresses without symbols, which together are the guest's share.
//!
//! ```sh
//! cargo build --release -p greenlight-host --example warm_wasm
//! valgrind --tool=callgrind --callgrind-out-file=wasm.out \
//!   $CARGO_TARGET_DIR/release/examples/warm_wasm 2000
//! callgrind_annotate --inclusive=yes wasm.out | head -80
//! ```

use std::path::Path;

use greenlight_types::HttpRequest;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A vector's HTTP request and time.
fn vector(name: &str) -> (HttpRequest, u64) {
    let text = std::fs::read_to_string(root().join("tests/vectors").join(name)).expect("vector");
    let v: Value = serde_json::from_str(&text).expect("json");
    let request: HttpRequest =
        serde_json::from_value(v["request"]["http"].clone()).expect("an HTTP request");
    (request, v["now"].as_u64().expect("now"))
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let engine =
        greenlight_host::Engine::load(greenlight_component::GREENLIGHT_WASM).expect("component");
    let files = greenlight_host::read_bundle_dir(&root().join("examples/bundle")).expect("bundle");
    let policy = engine.load_bundle(files).expect("demo bundle");
    let cases = [
        vector("002-demo-refund-500-needs-finance.json"),
        vector("001-demo-refund-50-allowed.json"),
    ];
    for (request, now) in &cases {
        // The first decision verifies and caches the token.
        policy.evaluate_http(request, *now);
    }
    for _ in 0..n {
        for (request, now) in &cases {
            std::hint::black_box(policy.evaluate_http(std::hint::black_box(request), *now));
        }
    }
    println!("{n} x 2 warm decisions in wasmtime");
}
