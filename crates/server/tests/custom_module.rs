//! The example custom module (examples/night-refunds): the shipped module
//! plus a rule in code, which Cedar cannot say: no refund above 1000 from
//! 22:00 to 06:00 Berlin time, CET or CEST by the EU's rule. It decides
//! through `greenlight serve --component`, and swaps in and out under load
//! with every answer the one its named module gives.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::server::*;
use greenlight::serve::live::admin::AdminSettings;
use serde_json::Value;

mod common;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";

fn night_refunds() -> Vec<u8> {
    std::fs::read(greenlight_component::NIGHT_REFUNDS_WASM_PATH).expect("the example module")
}

/// A server on the demo bundle deciding with the module at `module`,
/// with the admin API on.
async fn serve(store: &tempfile::TempDir, module: &Path) -> Server {
    let token = store.path().join("admin-token");
    std::fs::write(&token, ADMIN).expect("token");
    let settings = Settings {
        admin: Some(AdminSettings {
            token_env: None,
            token_file: Some(token),
        }),
        ..Settings::default()
    };
    let url = format!("sqlite://{}", store.path().join("greenlight.db").display());
    Server::start_module(
        settings,
        &url,
        &root().join("examples/bundle"),
        Some(module),
    )
    .await
}

/// The verdict in short: its kind, and a deny's code and message.
fn verdict(d: &Value) -> String {
    let v = &d["verdict"];
    match v["kind"].as_str() {
        Some("deny") => format!(
            "deny {}: {} ({})",
            v["code"].as_str().unwrap_or(""),
            v["message"].as_str().unwrap_or(""),
            d["reasons"]
        ),
        other => format!("{} ({})", other.unwrap_or("?"), d["reasons"]),
    }
}

const APPROVAL: &str = "approval-required ([\"refund-large\"])";

fn refused_at(clock: &str) -> String {
    format!(
        "deny policy-forbidden: `payment.refund` on `Payment::pay_123` is refused by rule \
         `night-refunds`: refunds above 1000 are not taken from 22:00 to 06:00 Berlin time \
         (it is {clock}) ([\"night-refunds\"])"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_module_refuses_large_refunds_at_night_in_berlin() {
    let store = tempfile::tempdir().expect("tempdir");
    let module = store.path().join("module.wasm");
    std::fs::write(&module, night_refunds()).expect("write");
    let srv = serve(&store, &module).await;
    // A token good all year.
    let alice = dev("alice", Some("payments:refund"), &[], 400 * 86_400);
    let decide = |amount: i64| {
        let (addr, alice) = (srv.addr, alice.clone());
        async move {
            let (status, d) = common::call(
                addr,
                "POST",
                "/v1/check",
                None,
                Some(("application/json", refund(amount, &alice).to_string())),
            )
            .await;
            assert_eq!(status, 200, "{d}");
            verdict(&d)
        }
    };
    // 2026-01-01 00:00 UTC is 01:00 in Berlin (CET): night. What the
    // Cedar policies decide is untouched below the limit and for denials.
    assert_eq!(decide(50).await, "allow ([\"refund-small\"])");
    assert_eq!(decide(1000).await, APPROVAL);
    assert_eq!(decide(1001).await, refused_at("01:00 CET"));
    assert_eq!(
        decide(20000).await,
        "deny policy-forbidden: `payment.refund` on `Payment::pay_123` is forbidden by policy \
         `refund-limit` ([\"refund-limit\"])"
    );
    let mut now = T0;
    let mut at = |t: i64| {
        srv.advance(t - now);
        now = t;
    };
    for (t, want) in [
        // 20:59 and 21:00 UTC: 21:59 and 22:00 CET.
        (1_767_301_140, APPROVAL.to_owned()),
        (1_767_301_200, refused_at("22:00 CET")),
        // Summer starts at 01:00 UTC on 2026-03-29: 00:59 UTC is 01:59
        // CET, 04:30 UTC is 06:30 CEST (it would be 05:30 in CET).
        (1_774_745_940, refused_at("01:59 CET")),
        (1_774_758_600, APPROVAL.to_owned()),
        // 19:59 and 20:00 UTC in July: 21:59 and 22:00 CEST.
        (1_782_935_940, APPROVAL.to_owned()),
        (1_782_936_000, refused_at("22:00 CEST")),
        // Summer ends at 01:00 UTC on 2026-10-25: 04:30 UTC the day
        // before is 06:30 CEST, on the day 05:30 CET.
        (1_792_816_200, APPROVAL.to_owned()),
        (1_792_902_600, refused_at("05:30 CET")),
    ] {
        at(t);
        assert_eq!(decide(5000).await, want, "at {t}");
    }
}

/// Under load, the example module is swapped in and out 20 times with the
/// shipped one: every answer is a 200, and its verdict is the one the
/// module it names gives (a refund of 5000 at night: approval-required
/// from the shipped module, refused by the example).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_module_swaps_in_and_out_under_load() {
    let store = tempfile::tempdir().expect("tempdir");
    let module = store.path().join("module.wasm");
    let shipped = greenlight_component::GREENLIGHT_WASM.to_vec();
    let custom = night_refunds();
    std::fs::write(&module, &shipped).expect("write");
    let srv = serve(&store, &module).await;
    let hash = |b: &[u8]| greenlight::archive::sha256_hex(b);
    let expected: Arc<BTreeMap<String, String>> = Arc::new(BTreeMap::from([
        (hash(&shipped), APPROVAL.to_owned()),
        (hash(&custom), refused_at("01:00 CET")),
    ]));
    let alice = token("alice", "payments:refund", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (addr, alice, stop, expected) =
            (srv.addr, alice.clone(), stop.clone(), expected.clone());
        clients.push(tokio::spawn(async move {
            let mut seen: BTreeMap<String, u64> = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                let (status, d) = common::call(
                    addr,
                    "POST",
                    "/v1/check",
                    None,
                    Some(("application/json", refund(5000, &alice).to_string())),
                )
                .await;
                assert_eq!(status, 200, "{d}");
                let component = d["component_hash"].as_str().expect("a hash").to_owned();
                let want = expected
                    .get(&component)
                    .unwrap_or_else(|| panic!("an answer from unknown module {component}"));
                assert_eq!(&verdict(&d), want, "module {component}");
                *seen.entry(component).or_default() += 1;
            }
            seen
        }));
    }
    for i in 0..20 {
        let bytes = if i % 2 == 0 { &custom } else { &shipped };
        std::fs::write(&module, bytes).expect("write");
        let (status, a) = srv
            .call("POST", "/v1/admin/reload", Some(ADMIN), None)
            .await;
        assert_eq!(
            (status, a["outcome"].as_str()),
            (200, Some("swapped")),
            "{a}"
        );
        assert_eq!(a["component_hash"], hash(bytes));
        // The demo's own tests pass in both modules: none refunds above
        // 1000 that the policies would let through.
        assert_eq!(a["detail"], "tests: 10 passed, 0 failed");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for c in clients {
        for (k, n) in c.await.expect("a client failed") {
            *total.entry(k).or_default() += n;
        }
    }
    assert_eq!(total.len(), 2, "both modules decided: {total:?}");
    assert!(total.values().all(|n| *n > 0), "{total:?}");
}

/// A bundle's tests see what the module answers: a test that expects the
/// rule's refusal passes in the example module and fails in the shipped
/// one, which asks for an approval instead.
#[test]
fn the_bundle_tests_run_through_the_modules_rule() {
    let files = greenlight_host::read_bundle_dir(&root().join("examples/bundle")).expect("bundle");
    let tests = vec![(
        "night.toml".to_owned(),
        "now = 1767225600\n[[tests]]\nname = \"a refund of 5000 at night\"\n\
         claims = { sub = \"alice\", scope = \"payments:refund\" }\n\
         http = { method = \"POST\", path = \"/payments/pay_123/refund\", params = { amount = 5000, currency = \"EUR\" } }\n\
         expect = { verdict = \"deny\", code = \"policy-forbidden\", reasons = [\"night-refunds\"] }\n"
            .to_owned(),
    )];
    let run = |module: &[u8]| {
        let engine = greenlight_host::Engine::load(module).expect("module");
        let policy = engine.load_bundle(files.clone()).expect("bundle");
        policy.run_tests(&tests, 0).expect("tests run")
    };
    let example = run(&night_refunds());
    assert_eq!(example.len(), 1);
    assert_eq!(example[0].failure, None);
    let shipped = run(greenlight_component::GREENLIGHT_WASM);
    assert_eq!(
        shipped[0].failure.as_deref(),
        Some(
            "expected deny, expected reasons [night-refunds]; got \
             approval-required: approvers group:finance, quorum 2, grant once, ttl 900 \
             (determined by refund-large)"
        )
    );
}
