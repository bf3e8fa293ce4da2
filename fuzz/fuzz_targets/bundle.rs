//! Bundle loading: `greenlight.toml`, `policy.cedar`, the Cedar schema and
//! key sets, from the demo bundle (examples/bundle) outwards.
//!
//! Input: either a bundle as JSON, `[[name, contents], ...]` (the seeds
//! are the repository's bundles), or else structured (`arbitrary`): for
//! each of the demo's files, keep it, replace it, splice text into it or
//! leave it out; optionally one more file; the files in the order given or
//! reversed.
//!
//! Invariants (each from `Bundle::load`'s documentation):
//! - loading never panics: every problem is an `Err`;
//! - an `Err(InvalidBundle)` lists at least one problem, and a problem's
//!   line is within its file when the bundle has that file once (an
//!   `Err(Other)` says something);
//! - a loaded bundle has `greenlight.toml` and `policy.cedar`, no file
//!   named twice and no private key; its hash is SHA-256 over the files
//!   sorted by name, each as a length-prefixed name and contents
//!   (recomputed here independently);
//! - the order of the files does not matter: the reversed list loads (or
//!   not) alike, to the same hash;
//! - a loaded bundle answers the demo's request of a refund of 500 without
//!   panicking, with its own hash.

#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use greenlight_core::{Engine, HttpRequest, LoadError};
use greenlight_fuzz::{NOW, demo_bundle, demo_tokens};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};

/// What becomes of one of the demo's files.
#[derive(Arbitrary, Debug)]
enum Edit {
    /// Kept as it is.
    Keep,
    /// Left out of the bundle.
    Drop,
    /// Replaced by this text.
    Replace(String),
    /// `cut` bytes from about `at` replaced by `insert`.
    Splice { at: u16, cut: u8, insert: String },
}

#[derive(Arbitrary, Debug)]
struct Input {
    config: Edit,
    policy: Edit,
    schema: Edit,
    jwks: Edit,
    /// One more file, e.g. another key set, or a name given twice.
    extra: Option<(String, String)>,
    reverse: bool,
}

fn floor_boundary(s: &str, at: usize) -> usize {
    let mut at = at.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(edit: &Edit, text: &str) -> Option<String> {
    match edit {
        Edit::Keep => Some(text.to_owned()),
        Edit::Drop => None,
        Edit::Replace(t) => Some(t.clone()),
        Edit::Splice { at, cut, insert } => {
            let start = floor_boundary(text, usize::from(*at) % (text.len() + 1));
            let end = floor_boundary(text, start + usize::from(*cut));
            Some(format!("{}{insert}{}", &text[..start], &text[end..]))
        }
    }
}

/// The documented bundle hash, written again from its description.
fn expected_hash(files: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h = Sha256::new();
    for (name, contents) in sorted {
        h.update((name.len() as u64).to_be_bytes());
        h.update(name.as_bytes());
        h.update((contents.len() as u64).to_be_bytes());
        h.update(contents.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn refund_of_500() -> HttpRequest {
    HttpRequest {
        method: "POST".to_owned(),
        path: "/payments/pay_123/refund".to_owned(),
        query: String::new(),
        headers: vec![(
            "authorization".to_owned(),
            format!("Bearer {}", demo_tokens()[0]),
        )],
        params: Some(r#"{"amount":500,"currency":"EUR"}"#.to_owned()),
        entities: None,
    }
}

impl Input {
    fn files(&self) -> Vec<(String, String)> {
        let edit_of = |name: &str| match name {
            "greenlight.toml" => &self.config,
            "policy.cedar" => &self.policy,
            "schema.cedarschema" => &self.schema,
            _ => &self.jwks,
        };
        let mut files: Vec<(String, String)> = demo_bundle()
            .iter()
            .filter_map(|(name, text)| apply(edit_of(name), text).map(|t| (name.clone(), t)))
            .collect();
        if let Some(extra) = &self.extra {
            files.push(extra.clone());
        }
        if self.reverse {
            files.reverse();
        }
        files
    }
}

fuzz_target!(|data: &[u8]| {
    let files = match serde_json::from_slice::<Vec<(String, String)>>(data) {
        Ok(files) => files,
        Err(_) => match Input::arbitrary_take_rest(Unstructured::new(data)) {
            Ok(input) => input.files(),
            Err(_) => return,
        },
    };

    let loaded = Engine::load(&files);
    match &loaded {
        Ok(engine) => {
            let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            assert!(names.contains(&"greenlight.toml") && names.contains(&"policy.cedar"));
            for (i, name) in names.iter().enumerate() {
                assert!(!names[..i].contains(name), "`{name}` given twice loaded");
            }
            assert!(
                !files.iter().any(|(_, c)| c.contains("PRIVATE KEY")),
                "a bundle with a private key loaded"
            );
            assert_eq!(engine.policy_hash(), expected_hash(&files));
            let _ = engine.describe();
            let decision = engine.evaluate_http(&refund_of_500(), NOW);
            assert_eq!(decision.policy_hash, engine.policy_hash());
        }
        Err(LoadError::InvalidBundle(problems)) => {
            assert!(!problems.is_empty(), "a bundle refused without a problem");
            for p in problems {
                let mut named = files.iter().filter(|(n, _)| *n == p.file);
                let (Some((_, text)), None) = (named.next(), named.next()) else {
                    continue;
                };
                if let Some(line) = p.line {
                    let lines = text.split('\n').count();
                    assert!(
                        line >= 1 && usize::try_from(line).is_ok_and(|l| l <= lines),
                        "problem at line {line} of `{}`, which has {lines}: {p}",
                        p.file
                    );
                }
            }
        }
        Err(LoadError::Other(message)) => {
            assert!(!message.is_empty(), "an error without a message")
        }
    }

    let reversed: Vec<(String, String)> = files.iter().rev().cloned().collect();
    match (&loaded, Engine::load(&reversed)) {
        (Ok(a), Ok(b)) => assert_eq!(a.policy_hash(), b.policy_hash()),
        (Err(_), Err(_)) => {}
        (a, b) => panic!(
            "file order changed whether the bundle loads: {:?} / {:?}",
            a.as_ref().err(),
            b.as_ref().err()
        ),
    }
});
