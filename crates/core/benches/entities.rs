//! What entity data costs a decision, natively: one vouched subject's
//! `can_update_todo` on the AuthZEN interop Todo bundle (an editor by
//! role, their own todo: allowed), with the data holding the four roles
//! and 5, 1,000 or 9,996 users (10,000 entities: the most a bundle may
//! hold). A decision carries only the data it can reach (the principal's
//! and the resource's ancestors, what their attributes and the policies
//! name), so the time should not grow with the data; the 5-user case is
//! the baseline to read the others against.
//!
//! Run with `cargo bench -p greenlight-core --bench entities`.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use greenlight_core::{AccessRequest, Engine, Principal, Verdict};
use serde_json::{Value, json};

const NOW: u64 = 1_767_225_600;

fn bundle(users: usize) -> Engine {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/authzen-interop/todo"
    );
    let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).expect("bundle file");
    let mut data: Vec<Value> = [
        ("viewer", vec![]),
        ("editor", vec!["viewer"]),
        ("admin", vec!["editor"]),
        ("evil_genius", vec!["editor"]),
    ]
    .into_iter()
    .map(|(r, ps)| {
        json!({ "uid": { "type": "Role", "id": r },
                "parents": ps.iter().map(|p| json!({ "type": "Role", "id": p })).collect::<Vec<_>>() })
    })
    .collect();
    data.extend((0..users).map(|i| {
        json!({ "uid": { "type": "user", "id": format!("u{i}") },
                "attrs": { "email": format!("u{i}@example.com") },
                "parents": [{ "type": "Role", "id": "editor" }] })
    }));
    Engine::load(&[
        ("greenlight.toml".to_owned(), read("greenlight.toml")),
        ("policy.cedar".to_owned(), read("policy.cedar")),
        ("idp.jwks.json".to_owned(), read("idp.jwks.json")),
        ("entities.json".to_owned(), Value::Array(data).to_string()),
    ])
    .expect("bundle")
}

fn decide(c: &mut Criterion) {
    let who = Principal {
        entity_type: "user".to_owned(),
        subject: "u1".to_owned(),
        client_id: "todo-backend".to_owned(),
        issuer: "https://idp.example.com".to_owned(),
        ..Principal::default()
    };
    let request = AccessRequest {
        action: "can_update_todo".to_owned(),
        resource_type: "todo".to_owned(),
        resource_id: "t-1".to_owned(),
        resource_properties: Some(r#"{"ownerID":"u1@example.com"}"#.to_owned()),
        ..AccessRequest::default()
    };
    let mut g = c.benchmark_group("entity_data");
    for users in [5, 1_000, 9_996] {
        let engine = bundle(users);
        let d = engine.evaluate_as(&who, &request, NOW);
        assert!(matches!(d.verdict, Verdict::Allow(_)), "{d:?}");
        g.bench_with_input(BenchmarkId::from_parameter(users), &users, |b, _| {
            b.iter(|| engine.evaluate_as(&who, &request, NOW));
        });
    }
    g.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);
