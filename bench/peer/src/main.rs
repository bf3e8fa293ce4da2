//! The peer bench: one Cedar policy (`context.amount <= 100`), the same
//! signed access tokens (5,000 per algorithm: RS256, ES256, EdDSA), decided
//! one call at a time by Greenlight natively (`greenlight_core::Engine`),
//! Greenlight in wasmtime (`greenlight_host`, greenlight.wasm with the host's
//! native signature checks) and Cedarling 2.6.0 (native Rust, crates.io).
//!
//! - `cold`: each of the 5,000 tokens decided once by a freshly loaded engine
//!   (no token seen before; Greenlight's cache holds fewer than 5,000, so
//!   none of them is answered from it);
//! - `warm`: one token the engine has just decided, 5,000 times.
//!
//! Three runs, the engines' order rotated each run; every figure is the
//! median over a run's calls, reported as the median of the three runs and
//! their range. Every engine must allow 50 and refuse 500 for every
//! algorithm before anything is timed.
//!
//!     scripts/bench-peer            # or: cargo run --release --manifest-path bench/peer/Cargo.toml
//!
//! Options by environment: PEER_TOKENS (default 5000), PEER_RUNS (default
//! 3), GREENLIGHT_WASM (another build of the component).

mod cedarling_side;

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use greenlight_core::HttpRequest;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// The issuer every engine trusts.
pub const ISSUER: &str = "https://idp.example.com";
/// The audience the tokens name (Greenlight checks it; Cedarling cannot).
pub const AUDIENCE: &str = "https://api.example.com";

const GREENLIGHT_TOML: &str = r#"
[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["RS256", "ES256", "EdDSA"]
jwks = "idp.jwks.json"

[principal]
entity_type = "User"

[[routes]]
method = "POST"
path = "/ledgers/{ledger_id}/refund"
action = "refund"
resource = { type = "Ledger", id = "{ledger_id}" }
params.amount = { from = "body.amount", type = "long" }
"#;

const SCHEMA: &str = r#"entity User {
  sub: String, client_id: String, scopes: Set<String>, groups: Set<String>,
  roles: Set<String>, tenant: String, issuer: String,
};
entity Ledger;
action "refund" appliesTo { principal: User, resource: Ledger, context: { amount: Long } };
"#;

/// The one-line policy, as Greenlight's bundles name the action.
const POLICY: &str =
    "permit (principal, action == Action::\"refund\", resource) when { context.amount <= 100 };\n";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Alg {
    name: &'static str,
    alg: Algorithm,
    kid: &'static str,
    key: EncodingKey,
    tokens: Vec<String>,
}

/// The test keys of tests/keys, their public halves as tests/bundles/tokens
/// publishes them, in one key set.
fn keys() -> (Vec<Alg>, Value) {
    let pem = |p: &str| std::fs::read(root().join(p)).expect("key file");
    let jwk = |file: &str, kid: &str| -> Value {
        let set: Value = serde_json::from_str(
            &std::fs::read_to_string(root().join("tests/bundles/tokens").join(file))
                .expect("key set"),
        )
        .expect("JSON");
        set["keys"]
            .as_array()
            .and_then(|k| k.iter().find(|k| k["kid"] == kid))
            .cloned()
            .expect("kid in key set")
    };
    let algs = vec![
        Alg {
            name: "RS256",
            alg: Algorithm::RS256,
            kid: "rsa-1",
            key: EncodingKey::from_rsa_pem(&pem("tests/keys/rsa2048.pem")).expect("rsa"),
            tokens: vec![],
        },
        Alg {
            name: "ES256",
            alg: Algorithm::ES256,
            kid: "ec256-1",
            key: EncodingKey::from_ec_pem(&pem("tests/keys/p256.pem")).expect("ec"),
            tokens: vec![],
        },
        Alg {
            name: "EdDSA",
            alg: Algorithm::EdDSA,
            kid: "ed-1",
            key: EncodingKey::from_ed_pem(&pem("tests/keys/ed.pem")).expect("ed"),
            tokens: vec![],
        },
    ];
    // Cedarling takes a key only with its `alg` named.
    let mut rsa = jwk("rsa.jwks.json", "rsa-1");
    rsa["alg"] = json!("RS256");
    let set = json!({ "keys": [rsa, jwk("ec.jwks.json", "ec256-1"), jwk("ed.jwks.json", "ed-1")] });
    (algs, set)
}

fn mint(a: &Alg, i: usize, now: u64) -> String {
    let mut header = Header::new(a.alg);
    header.kid = Some(a.kid.to_owned());
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": format!("user-{i}"), "client_id": "client-1",
        "scope": "refund", "iat": now - 60, "exp": now + 86_400, "jti": format!("{}-{i}", a.kid),
    });
    jsonwebtoken::encode(&header, &claims, &a.key).expect("sign")
}

fn http(token: &str, amount: i64) -> HttpRequest {
    HttpRequest {
        method: "POST".to_owned(),
        path: "/ledgers/L1/refund".to_owned(),
        query: String::new(),
        headers: vec![("authorization".to_owned(), format!("Bearer {token}"))],
        params: Some(format!(r#"{{"amount":{amount}}}"#)),
        entities: None,
    }
}

/// The engines compared, each deciding (token, amount) to allowed or not.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    Cedarling,
    Wasm,
    Native,
}

const NAMES: [&str; 3] = ["Cedarling", "Greenlight in wasmtime", "Greenlight native"];

struct Engines {
    bundle: Vec<(String, String)>,
    component: greenlight_host::Engine,
    key_set: Value,
    scratch: PathBuf,
    rt: tokio::runtime::Runtime,
}

/// One freshly loaded engine (empty caches), ready to decide.
enum Loaded {
    Cedarling(Box<cedarling::Cedarling>),
    Wasm(greenlight_host::Policy),
    Native(Box<greenlight_core::Engine>),
}

impl Engines {
    fn load(&self, which: Which) -> Loaded {
        match which {
            Which::Cedarling => Loaded::Cedarling(Box::new(
                self.rt
                    .block_on(cedarling_side::engine(&self.key_set, &self.scratch)),
            )),
            Which::Wasm => Loaded::Wasm(
                self.component
                    .load_bundle(self.bundle.clone())
                    .expect("bundle loads in wasmtime"),
            ),
            Which::Native => Loaded::Native(Box::new(
                greenlight_core::Engine::load(&self.bundle).expect("bundle loads"),
            )),
        }
    }

    /// Decides; `None` when the engine refused the token itself.
    fn decide(&self, e: &Loaded, token: &str, amount: i64, now: u64) -> Option<bool> {
        match e {
            Loaded::Cedarling(c) => self
                .rt
                .block_on(cedarling_side::decide(
                    c,
                    cedarling_side::request(token, amount),
                ))
                .ok(),
            Loaded::Wasm(p) => verdict(&p.evaluate_http(&http(token, amount), now)),
            Loaded::Native(n) => verdict(&n.evaluate_http(&http(token, amount), now)),
        }
    }
}

fn verdict(d: &greenlight_core::Decision) -> Option<bool> {
    use greenlight_core::Verdict;
    match &d.verdict {
        Verdict::Allow(_) => Some(true),
        Verdict::Deny(deny) if deny.code == greenlight_core::DenialCode::PolicyNoPermit => {
            Some(false)
        }
        _ => None,
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Microseconds per call of `f` over `n` calls, each timed alone: the median.
fn time_each(n: usize, mut f: impl FnMut(usize) -> bool) -> f64 {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        let allowed = f(i);
        samples.push(t.elapsed().as_secs_f64() * 1e6);
        assert!(allowed, "a timed decision did not allow");
    }
    median(&mut samples)
}

/// The component: GREENLIGHT_WASM names another build of it (a guest
/// built with symbols, for a profiler, say); default the shipped one.
fn component() -> Vec<u8> {
    match std::env::var_os("GREENLIGHT_WASM") {
        Some(path) => std::fs::read(path).expect("GREENLIGHT_WASM names a component"),
        None => greenlight_component::GREENLIGHT_WASM.to_vec(),
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let tokens = env_usize("PEER_TOKENS", 5000);
    let runs = env_usize("PEER_RUNS", 3);
    assert!(
        tokens > greenlight_core::engine::TOKEN_CACHE_CAPACITY,
        "PEER_TOKENS must exceed Greenlight's token cache for cold decisions to be cold"
    );
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let (mut algs, key_set) = keys();
    for a in &mut algs {
        a.tokens = (0..=tokens).map(|i| mint(a, i, now)).collect();
    }
    let scratch = std::env::temp_dir().join(format!("greenlight-peer-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch folder");
    let bundle = vec![
        ("greenlight.toml".to_owned(), GREENLIGHT_TOML.to_owned()),
        ("idp.jwks.json".to_owned(), key_set.to_string()),
        ("schema.cedarschema".to_owned(), SCHEMA.to_owned()),
        ("policy.cedar".to_owned(), POLICY.to_owned()),
    ];
    let engines = Engines {
        bundle,
        component: greenlight_host::Engine::load(&component()).expect("greenlight.wasm compiles"),
        key_set,
        scratch: scratch.clone(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime"),
    };

    // Every engine decides alike before anything is timed: 50 allowed, 500
    // refused, each algorithm; a token signed by another key refused. The
    // last token of each algorithm is kept out of the timed ones.
    let all = [Which::Cedarling, Which::Wasm, Which::Native];
    let foreign = mint(
        // The EdDSA key's kid, signed with another Ed25519 key.
        &Alg {
            key: EncodingKey::from_ed_pem(
                &std::fs::read(root().join("tests/keys/attacker.pem")).expect("attacker key"),
            )
            .expect("attacker key is Ed25519"),
            tokens: vec![],
            ..algs[2]
        },
        0,
        now,
    );
    for which in all {
        let e = engines.load(which);
        for a in &algs {
            let probe = &a.tokens[tokens];
            assert_eq!(engines.decide(&e, probe, 50, now), Some(true), "{}", a.name);
            assert_eq!(
                engines.decide(&e, probe, 500, now),
                Some(false),
                "{}",
                a.name
            );
        }
        assert_eq!(
            engines.decide(&e, &foreign, 50, now),
            None,
            "a forged token"
        );
    }

    // results[alg][cold/warm][engine] = per-run medians
    let mut results = vec![
        [
            [Vec::new(), Vec::new(), Vec::new()],
            [Vec::new(), Vec::new(), Vec::new()]
        ];
        algs.len()
    ];
    for run in 0..runs {
        for (ai, a) in algs.iter().enumerate() {
            for k in 0..3 {
                let ei = (k + run) % 3;
                let e = engines.load(all[ei]);
                let cold = time_each(tokens, |i| {
                    engines.decide(&e, &a.tokens[i], 50, now) == Some(true)
                });
                // The token decided last, decided again (for Cedarling
                // within its cache's 5 s, as for Greenlight).
                let warm_token = &a.tokens[tokens - 1];
                let warm = time_each(tokens, |_| {
                    engines.decide(&e, warm_token, 50, now) == Some(true)
                });
                results[ai][0][ei].push(cold);
                results[ai][1][ei].push(warm);
            }
        }
        eprintln!("run {} of {runs} done", run + 1);
    }
    let _ = std::fs::remove_dir_all(&scratch);

    println!(
        "{tokens} tokens per algorithm, {runs} runs; µs per decision: median of the runs' medians [range]\n"
    );
    println!(
        "| per decision | {} | {} | {} | Cedarling ÷ wasmtime | Cedarling ÷ native |",
        NAMES[0], NAMES[1], NAMES[2]
    );
    println!("|---|---|---|---|---|---|");
    for (phase, label) in [(1, "warm"), (0, "cold")] {
        for (ai, a) in algs.iter().enumerate() {
            let mut cells = Vec::new();
            let mut medians = [0.0; 3];
            for ei in 0..3 {
                let mut v = results[ai][phase][ei].clone();
                let m = median(&mut v);
                medians[ei] = m;
                cells.push(format!("{m:.1} [{:.1}–{:.1}]", v[0], v[v.len() - 1]));
            }
            println!(
                "| {label} {} | {} | {} | {} | {:.2}× | {:.2}× |",
                a.name,
                cells[0],
                cells[1],
                cells[2],
                medians[0] / medians[1],
                medians[0] / medians[2]
            );
        }
    }
}
