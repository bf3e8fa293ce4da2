//! Writes the conformance vectors in `tests/vectors/` and the key sets of
//! `tests/bundles/tokens/` (and `claims/`) from the private keys in `tests/keys/`.
//!
//! ```sh
//! cargo run -p greenlight-conformance --bin make-vectors
//! ```
//!
//! Tokens are signed here; every expected decision is written out by hand
//! below (verdict, code, message, reasons), never computed by the engine,
//! so the vectors check the engine rather than echo it. Only the bundle
//! hash, the action digests and the principals are computed, each from
//! its definition (the principal from the very claims this program
//! signed). The gateway answer (`response`) is
//! `greenlight_types::gateway::respond` of the written expectation: a pin
//! that every host's answer (through the component's `gateway.respond`) is
//! held to, and that a change of docs/gateway.md must update.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// 2026-01-01T00:00:00Z: the time every vector is decided at.
const NOW: u64 = 1_767_225_600;
/// The approval service the vectors' gateway answers name (docs/gateway.md).
const SERVICE: &str = "https://greenlight.example.com";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

mod actions;
mod authzen;
mod claims;
mod demo;
mod entities;
mod expect;
mod keys;
mod sign;
mod tokens;

use expect::*;
use sign::*;

/// The demo bundle's folder.
const DEMO: &str = "examples/bundle";
/// The token-conformance bundle's folder.
const TOK: &str = "tests/bundles/tokens";
/// The demo API's audience, the `locations` of its challenges.
const API: &str = "https://api.example.com";

/// The vectors in file order; `extra` ones are numbered after all others
/// (so adding one never renumbers the rest).
struct Vectors {
    list: Vec<Vector>,
    extra: Vec<Vector>,
}

impl Vectors {
    fn add(
        &mut self,
        name: &'static str,
        description: &'static str,
        bundle: &'static str,
        request: Value,
        verdict: Value,
        reasons: Vec<&'static str>,
    ) {
        self.list.push(Vector {
            name,
            description,
            bundle,
            keys: Vec::new(),
            request,
            verdict,
            reasons,
        });
    }
}

/// The signers and the demo's good token every group may use.
struct Ctx {
    idp: Signer,
    attacker: Signer,
    ed: Signer,
    ec256: Signer,
    ec384: Signer,
    rsa: Signer,
    gl: Signer,
    hs: Signer,
    /// The claims of the demo's good token.
    token: Value,
    /// The demo's good token (alice's).
    good: String,
    /// The principal `good` names.
    alice: Value,
}

fn main() {
    let (ed, ec256, ec384, rsa, gl, hs) = write_key_sets();
    let idp = Signer::ed("examples/bundle/dev/idp-dev.key.pem", "idp-dev-1");
    let token = demo_claims(json!({}));
    let good = idp.sign("at+jwt", &token);
    let ctx = Ctx {
        attacker: Signer::ed("tests/keys/attacker.pem", "idp-dev-1"),
        alice: principal(&token),
        idp,
        ed,
        ec256,
        ec384,
        rsa,
        gl,
        hs,
        token,
        good,
    };
    let mut v = Vectors {
        list: Vec::new(),
        extra: Vec::new(),
    };
    demo::add(&ctx, &mut v);
    tokens::add(&ctx, &mut v);
    keys::add(&ctx, &mut v);
    actions::add(&ctx, &mut v);
    authzen::add(&ctx, &mut v);
    claims::add(&ctx, &mut v);
    demo::add_ambiguous(&ctx, &mut v);
    entities::add(&ctx, &mut v);
    let Vectors { list, mut extra } = v;
    let mut v = list;
    v.append(&mut extra);
    let out = root().join("tests/vectors");
    std::fs::create_dir_all(&out).expect("mkdir");
    for old in std::fs::read_dir(&out).expect("read vectors") {
        let path = old.expect("entry").path();
        if path.extension().is_some_and(|e| e == "json") {
            std::fs::remove_file(path).expect("remove old vector");
        }
    }
    let mut hashes = std::collections::BTreeMap::new();
    for (i, vec) in v.iter().enumerate() {
        let hash = hashes.entry(vec.bundle).or_insert_with(|| {
            let files = greenlight_host::read_bundle_dir(&root().join(vec.bundle)).expect("bundle");
            let map = files
                .iter()
                .map(|(n, c)| (n.as_str(), c.as_str()))
                .collect();
            greenlight_core::bundle::bundle_hash(&map)
        });
        let expect = json!({ "verdict": vec.verdict, "reasons": vec.reasons, "policy_hash": hash });
        let decision: greenlight_types::Decision =
            serde_json::from_value(expect.clone()).expect("the expectation is a decision");
        let response = greenlight_types::gateway::respond(&decision, SERVICE);
        let doc = json!({
            "description": vec.description,
            "bundle": vec.bundle,
            "keys": vec.keys.iter().map(|(i, f)| json!({ "issuer": i, "jwks": f })).collect::<Vec<_>>(),
            "now": NOW,
            "request": vec.request,
            "expect": expect,
            "response": response,
        });
        let path = out.join(format!("{:03}-{}.json", i + 1, vec.name));
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&doc).expect("json") + "\n",
        )
        .expect("write");
    }
    println!("wrote {} vectors to {}", v.len(), out.display());
}
