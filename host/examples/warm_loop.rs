//! A warm decision in a loop, for a profiler: the demo bundle's refund of
//! 500 (approval required) and refund of 50 (allow), their tokens from
//! conformance vectors 002 and 001, each decided `N` times after a first
//! decision has cached the token, by the native core (`native`) or through
//! `greenlight.wasm` in wasmtime (`wasm`). In wasmtime, callgrind names the
//! host's own functions (lowering the request, lifting and checking the
//! decision); the module's compiled code shows as addresses without
//! symbols, which together are the guest's share.
//!
//! ```sh
//! cargo build --release -p greenlight-host --example warm_loop
//! valgrind --tool=callgrind --callgrind-out-file=warm.out \
//!   $CARGO_TARGET_DIR/release/examples/warm_loop native 2000
//! callgrind_annotate --inclusive=yes warm.out | head -80
//! ```
//!
//! `GREENLIGHT_WASM=PATH warm_loop wasm N` runs another build of the
//! component instead of the embedded one; `warm_loop native|wasm N allow`
//! (or `challenge`) decides that case alone.

use std::path::Path;

use greenlight_types::{Decision, HttpRequest};
use serde_json::Value;

/// One engine's decision of a request at a time.
type Decide = Box<dyn Fn(&HttpRequest, u64) -> Decision>;

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
    let mut args = std::env::args().skip(1);
    let engine = args.next().unwrap_or_default();
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    // `allow` or `challenge` decides that case alone; default: both.
    let only = args.next().unwrap_or_default();
    let files = greenlight_host::read_bundle_dir(&root().join("examples/bundle")).expect("bundle");
    let decide: Decide = match engine.as_str() {
        "native" => {
            let core = greenlight_core::Engine::load(&files).expect("demo bundle");
            Box::new(move |r, now| core.evaluate_http(r, now))
        }
        "wasm" => {
            // GREENLIGHT_WASM names another build of the component to
            // compare (another guest profile, say); default: the embedded one.
            let wasm = match std::env::var_os("GREENLIGHT_WASM") {
                Some(path) => std::fs::read(path).expect("GREENLIGHT_WASM names a component"),
                None => greenlight_component::GREENLIGHT_WASM.to_vec(),
            };
            let policy = greenlight_host::Engine::load(&wasm)
                .expect("component")
                .load_bundle(files)
                .expect("demo bundle");
            Box::new(move |r, now| policy.evaluate_http(r, now))
        }
        _ => {
            eprintln!("usage: warm_loop native|wasm [N [allow|challenge]]");
            std::process::exit(2);
        }
    };
    let cases: Vec<_> = [
        ("challenge", "002-demo-refund-500-needs-finance.json"),
        ("allow", "001-demo-refund-50-allowed.json"),
    ]
    .into_iter()
    .filter(|(case, _)| only.is_empty() || only == *case)
    .map(|(_, file)| vector(file))
    .collect();
    for (request, now) in &cases {
        // The first decision verifies and caches the token.
        decide(request, *now);
    }
    for _ in 0..n {
        for (request, now) in &cases {
            std::hint::black_box(decide(std::hint::black_box(request), *now));
        }
    }
    println!("{n} x {} warm decisions ({engine})", cases.len());
}
