//! Entity data: a bundle's `entities.json` and a host's entities for one
//! request, on the AuthZEN interop Todo bundle (tests/authzen-interop/todo).
//!
//! Input: JSON `{"data": TEXT, "entities": TEXT or null, "properties": TEXT
//! or null, "subject": ID, "resource": ID}` (the seeds), or else the raw
//! bytes split at the first two NUL bytes into the data, the host's
//! entities and the resource's properties (subject and resource fixed).
//!
//! Invariants (each from greenlight_core::policy::entities):
//! - loading never panics; a refusal lists at least one problem, each in
//!   `entities.json` with a line and column within it, when it has them;
//! - a loaded bundle decides any request without panicking, with its own
//!   hash, and the same way twice;
//! - the host's entities never give the principal: when they name the
//!   principal's uid (parseable, under the size bound) the decision is a
//!   deny `request-invalid` saying so;
//! - a request whose resource properties and host entities are empty
//!   decides as one without them.

#![no_main]

use greenlight_core::{AccessRequest, DenialCode, Engine, LoadError, Principal, Verdict};
use greenlight_fuzz::{NOW, TODO_ENTITIES, todo_bundle};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;

const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

#[derive(Deserialize)]
struct Seed {
    data: String,
    entities: Option<String>,
    properties: Option<String>,
    subject: String,
    resource: String,
}

fn input(bytes: &[u8]) -> Option<Seed> {
    if let Ok(seed) = serde_json::from_slice::<Seed>(bytes) {
        return Some(seed);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut parts = text.splitn(3, '\0');
    let data = parts.next()?.to_owned();
    let entities = parts.next().map(str::to_owned);
    let properties = parts.next().map(str::to_owned);
    Some(Seed {
        data: if data.is_empty() {
            TODO_ENTITIES.to_owned()
        } else {
            data
        },
        entities,
        properties,
        subject: MORTY.to_owned(),
        resource: "t-1".to_owned(),
    })
}

fn request(resource: &str, properties: Option<String>, entities: Option<String>) -> AccessRequest {
    AccessRequest {
        token: String::new(),
        action: "can_update_todo".to_owned(),
        resource_type: "todo".to_owned(),
        resource_id: resource.to_owned(),
        resource_properties: properties,
        context: None,
        entities,
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Some(seed) = input(bytes) else {
        return;
    };
    let mut files = todo_bundle();
    files.push(("entities.json".to_owned(), seed.data.clone()));
    let engine = match Engine::load(&files) {
        Ok(e) => e,
        Err(LoadError::InvalidBundle(problems)) => {
            assert!(!problems.is_empty(), "a refusal names a problem");
            let lines = seed.data.split('\n').count();
            for p in problems {
                assert_eq!(p.file, "entities.json", "{p}");
                if let Some(line) = p.line {
                    assert!(line >= 1 && line as usize <= lines, "{p}");
                }
                if let Some(column) = p.column {
                    assert!(column >= 1, "{p}");
                }
            }
            return;
        }
        Err(LoadError::Other(o)) => panic!("a bundle is refused with its problems, not: {o}"),
    };
    let who = Principal {
        entity_type: "user".to_owned(),
        subject: seed.subject.clone(),
        client_id: "todo-backend".to_owned(),
        issuer: "https://idp.example.com".to_owned(),
        ..Principal::default()
    };
    let req = request(
        &seed.resource,
        seed.properties.clone(),
        seed.entities.clone(),
    );
    let d = engine.evaluate_as(&who, &req, NOW);
    assert_eq!(d.policy_hash, engine.policy_hash());
    assert_eq!(d, engine.evaluate_as(&who, &req, NOW), "the same way twice");

    // The host naming the principal is refused.
    if let Some(text) = &seed.entities
        && text.len() <= 64 * 1024
        && let Ok(list) = serde_json::from_str::<Vec<serde_json::Value>>(text)
        && list
            .iter()
            .any(|e| e["uid"]["type"] == "user" && e["uid"]["id"] == seed.subject.as_str())
        && matches!(&d.verdict, Verdict::Allow(_) | Verdict::ApprovalRequired(_))
    {
        panic!("the host gave the principal and the request was not refused: {d:?}");
    }

    // Empty properties and an empty host list are as none.
    let bare = engine.evaluate_as(&who, &request(&seed.resource, None, None), NOW);
    let empty = engine.evaluate_as(
        &who,
        &request(&seed.resource, Some("{}".to_owned()), Some("[]".to_owned())),
        NOW,
    );
    assert_eq!(bare, empty);
    if let Verdict::Deny(den) = &d.verdict
        && den.code == DenialCode::RequestInvalid
    {
        assert!(!den.message.is_empty());
    }
});
