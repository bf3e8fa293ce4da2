//! A warm decision in a loop, natively, for a profiler: the demo bundle's
//! refund of 500 (approval required) and refund of 50 (allow), their
//! tokens from conformance vectors 002 and 001, each decided `N` times
//! after a first decision has cached the token.
//!
//! ```sh
//! cargo build --release -p greenlight-core --example warm_loop
//! valgrind --tool=callgrind --callgrind-out-file=warm.out \
//!   target/release/examples/warm_loop 2000
//! callgrind_annotate --inclusive=yes warm.out | head -60
//! ```

use std::path::Path;

use greenlight_core::{Engine, HttpRequest};
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
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
    let dir = root().join("examples/bundle");
    let files: Vec<(String, String)> = [
        "greenlight.toml",
        "policy.cedar",
        "schema.cedarschema",
        "idp.jwks.json",
    ]
    .iter()
    .map(|f| {
        let text = std::fs::read_to_string(dir.join(f)).expect("bundle file");
        ((*f).to_owned(), text)
    })
    .collect();
    let engine = Engine::load(&files).expect("demo bundle");
    let cases = [
        vector("002-demo-refund-500-needs-finance.json"),
        vector("001-demo-refund-50-allowed.json"),
    ];
    let mut kinds = Vec::new();
    for (request, now) in &cases {
        // The first decision verifies and caches the token.
        kinds.push(
            format!("{:?}", engine.evaluate_http(request, *now).verdict)
                .chars()
                .take(20)
                .collect::<String>(),
        );
    }
    for _ in 0..n {
        for (request, now) in &cases {
            std::hint::black_box(engine.evaluate_http(std::hint::black_box(request), *now));
        }
    }
    let stats = engine.stats();
    println!(
        "{n} x 2 warm decisions ({}); {} signature checks",
        kinds.join(" / "),
        stats.signature_checks
    );
}
