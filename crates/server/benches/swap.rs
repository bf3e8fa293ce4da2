//! What a live swap costs, and what it costs the decisions made meanwhile:
//!
//! - `swap/bundle`: a bundle loaded into the compiled component and its
//!   tests run (what `reload` does for a bundle change, keys aside);
//! - `swap/component_precompiled`: a component whose compiled artifact is
//!   in the cache (a module swapped back in, or after a restart);
//! - `swap/component_cold`: a component compiled from scratch;
//! - `during_swap/{idle,swapping}`: one warm decision (a refund of 500,
//!   approval required), alone and while another thread swaps bundles
//!   without pause.
//!
//! Run with `cargo bench -p greenlight --bench swap`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use greenlight::dev::{DevTokenRequest, dev_token};
use greenlight_core::HttpRequest;
use greenlight_host::{Engine, Limits};

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600;

fn bundle_dir() -> std::path::PathBuf {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/bundle"
    ))
    .to_owned()
}

fn swap(c: &mut Criterion) {
    let dir = bundle_dir();
    let files = greenlight_host::read_bundle_dir(&dir).expect("bundle");
    let tests = greenlight::policytest::read_files(&dir).expect("tests");
    let wasm = greenlight_component::GREENLIGHT_WASM;
    let cache = tempfile::tempdir().expect("cache dir");
    let engine =
        Engine::with_options(wasm, Limits::default(), Some(cache.path())).expect("component");
    let mut g = c.benchmark_group("swap");
    g.bench_function("bundle", |b| {
        b.iter(|| {
            let policy = engine.load_bundle(files.clone()).expect("bundle");
            let outcomes = policy.run_tests(&tests, NOW).expect("tests");
            assert!(outcomes.iter().all(|o| o.failure.is_none()));
            policy
        });
    });
    g.bench_function("component_precompiled", |b| {
        b.iter(|| {
            Engine::with_options(wasm, Limits::default(), Some(cache.path())).expect("component")
        });
    });
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.bench_function("component_cold", |b| {
        b.iter(|| Engine::with_options(wasm, Limits::default(), None).expect("component"));
    });
    g.finish();
}

fn during_swap(c: &mut Criterion) {
    let dir = bundle_dir();
    let files = greenlight_host::read_bundle_dir(&dir).expect("bundle");
    let tests = greenlight::policytest::read_files(&dir).expect("tests");
    let engine = Engine::load(greenlight_component::GREENLIGHT_WASM).expect("component");
    let policy = engine.load_bundle(files.clone()).expect("bundle");
    let token = dev_token(
        &dir,
        &DevTokenRequest {
            subject: "alice".to_owned(),
            scope: Some("payments:refund".to_owned()),
            client_id: None,
            claims: Vec::new(),
            ttl: 3600,
            now: NOW,
        },
    )
    .expect("token");
    let request = HttpRequest {
        method: "POST".to_owned(),
        path: "/payments/pay_123/refund".to_owned(),
        query: String::new(),
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        params: Some(r#"{"amount":500,"currency":"EUR"}"#.to_owned()),
        entities: None,
    };
    let decide = || {
        let d = policy.evaluate_http(&request, NOW);
        assert!(matches!(
            d.verdict,
            greenlight_core::Verdict::ApprovalRequired(_)
        ));
        d
    };
    let mut g = c.benchmark_group("during_swap");
    g.bench_function("idle", |b| b.iter(decide));
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, engine, files, tests) =
            (stop.clone(), engine.clone(), files.clone(), tests.clone());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let next = engine.load_bundle(files.clone()).expect("bundle");
                next.run_tests(&tests, NOW).expect("tests");
                swaps += 1;
            }
            swaps
        })
    };
    g.bench_function("swapping", |b| b.iter(decide));
    stop.store(true, Ordering::SeqCst);
    let swaps = swapper.join().expect("swapper");
    eprintln!("during_swap/swapping: {swaps} bundle swaps ran meanwhile");
    g.finish();
}

criterion_group!(benches, swap, during_swap);
criterion_main!(benches);
