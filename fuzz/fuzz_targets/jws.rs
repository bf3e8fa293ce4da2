//! The JWS/JWT layer: compact parsing, strict JSON, and token verification.
//!
//! Input: arbitrary bytes, read three ways: as a strict JSON object
//! (`greenlight_core::strict::object`), as a compact JWS
//! (`greenlight_core::jws::parse`), and as a bearer token checked by an
//! engine holding the token-conformance bundle (tests/bundles/tokens: an
//! issuer per key family, a shared secret, Greenlight's action tokens) at
//! the vectors' `now`.
//!
//! Invariants (each from the code's documentation and RFC 7515/7519):
//! - strict JSON: it accepts exactly the JSON objects serde_json reads in
//!   which no object names a member twice, and reads them as serde_json
//!   does; a refusal for a duplicate names a member that is given twice
//!   (checked against a reader that keeps every member, sharing no code
//!   with the strict one);
//! - parsing: a token it accepts is at most `MAX_TOKEN_BYTES`, has three
//!   dot-separated parts and a non-empty signature; the header is a strict
//!   JSON object whose `alg` names the parsed algorithm, with no `crit`,
//!   and `kid`/`typ` as parsed; the payload is the segment's decoding; and
//!   both segments are the only base64url spelling of their bytes (no
//!   padding, no stray trailing bits), so a signed token has no second form;
//! - verification: an access token the engine accepts (`authenticate`) or
//!   an action token (`inspect`) has a strict JSON payload whose `sub` and
//!   `exp` the result repeats, whose `iss` is the principal's issuer (for
//!   an action token: Greenlight's), is unexpired at `now` within the
//!   largest leeway, and checking it again (now from the engine's cache of
//!   verified tokens) gives the same answer.

#![no_main]

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use greenlight_core::Engine;
use greenlight_core::jws::{self, Alg, MAX_TOKEN_BYTES};
use greenlight_core::strict::{self, StrictError};
use greenlight_fuzz::{NOW, Raw, tokens_bundle};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

static ENGINE: LazyLock<Engine> =
    LazyLock::new(|| Engine::load(&tokens_bundle()).expect("the tokens bundle loads"));

/// The largest clock leeway of the bundle's issuers.
static MAX_LEEWAY: LazyLock<u64> = LazyLock::new(|| {
    let bundle = ENGINE.bundle();
    bundle
        .issuers
        .iter()
        .chain(&bundle.action_issuer)
        .map(|i| i.leeway)
        .max()
        .unwrap_or(0)
});

/// Checks the strict reader against the member-keeping one.
fn check_strict(bytes: &[u8]) -> Option<Map<String, Value>> {
    let strict = strict::object(bytes);
    let raw = Raw::parse(bytes);
    match (&raw, &strict) {
        (Some(Raw::Object(_)), _) => {
            let dups = raw.as_ref().map(Raw::duplicates).unwrap_or_default();
            if dups.is_empty() {
                let value: Value = serde_json::from_slice(bytes).expect("serde_json reads it");
                match &strict {
                    Ok(m) => assert_eq!(
                        &Value::Object(m.clone()),
                        &value,
                        "strict JSON read another value than serde_json"
                    ),
                    Err(e) => panic!("strict JSON refused a valid object: {e:?}"),
                }
            } else {
                match &strict {
                    Err(StrictError::Duplicate(name)) => assert!(
                        dups.contains(name),
                        "strict JSON names `{name}` as given twice; the twice-given are {dups:?}"
                    ),
                    other => panic!("a member named twice ({dups:?}) was not refused: {other:?}"),
                }
            }
        }
        // Not JSON, or not an object: refused (as a duplicate when one
        // comes before the error).
        (_, Ok(m)) => panic!("strict JSON accepted what is not a JSON object: {m:?}"),
        (_, Err(_)) => {}
    }
    strict.ok()
}

fn check_parse(token: &str) {
    let Ok(parsed) = jws::parse(token) else {
        return;
    };
    assert!(token.len() <= MAX_TOKEN_BYTES, "an oversized token parsed");
    let parts: Vec<&str> = token.split('.').collect();
    let [header_b64, payload_b64, signature] = parts[..] else {
        panic!("a token of {} parts parsed", parts.len());
    };
    assert!(!signature.is_empty(), "a token without a signature parsed");

    let header_bytes = URL_SAFE_NO_PAD
        .decode(header_b64)
        .expect("the header of a parsed token is base64url");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&header_bytes),
        header_b64,
        "the header has a second base64url spelling"
    );
    let header = check_strict(&header_bytes).expect("the header of a parsed token is strict JSON");
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .expect("a parsed token names its alg");
    assert_eq!(Alg::parse(alg), Some(parsed.alg), "alg read as another");
    assert_eq!(parsed.alg.name(), alg, "alg read as another");
    assert!(
        !header.contains_key("crit"),
        "a token with crit parsed: no extension is understood"
    );
    assert_eq!(
        parsed.kid.as_deref(),
        header.get("kid").and_then(Value::as_str),
        "kid read as another"
    );
    assert_eq!(
        parsed.typ.as_deref(),
        header.get("typ").and_then(Value::as_str),
        "typ read as another"
    );

    let payload = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .expect("the payload of a parsed token is base64url");
    assert_eq!(parsed.payload, payload, "the payload is not its segment");
    assert_eq!(
        URL_SAFE_NO_PAD.encode(&payload),
        payload_b64,
        "the payload has a second base64url spelling"
    );
    check_strict(&payload);
}

/// The claims of a token the engine accepted, checked against its answer.
fn accepted_claims(token: &str, iss: &str, sub: &str, exp: u64) {
    let parsed = jws::parse(token).expect("an accepted token parses");
    let claims = strict::object(&parsed.payload).expect("an accepted token's claims are strict");
    assert_eq!(claims.get("iss").and_then(Value::as_str), Some(iss));
    assert_eq!(claims.get("sub").and_then(Value::as_str), Some(sub));
    assert_eq!(claims.get("exp").and_then(Value::as_u64), Some(exp));
    assert!(NOW < exp + *MAX_LEEWAY, "an expired token was accepted");
}

fn check_engine(token: &str) {
    let first = ENGINE.authenticate(token, NOW);
    if let Ok(cred) = &first {
        accepted_claims(
            token,
            &cred.principal.issuer,
            &cred.principal.subject,
            cred.expires_at,
        );
    }
    assert_eq!(
        first,
        ENGINE.authenticate(token, NOW),
        "authenticating twice gave two answers"
    );

    let first = ENGINE.inspect(token, NOW);
    if let Ok(action) = &first {
        // Signed by Greenlight's issuer; the principal is the requester,
        // whose issuer the token names apart.
        let greenlight = ENGINE
            .describe()
            .action_tokens
            .expect("an action token was accepted, so the bundle takes them");
        accepted_claims(
            token,
            &greenlight.issuer,
            &action.principal.subject,
            action.expires_at,
        );
        assert!(!action.digest.is_empty() && !action.token_id.is_empty());
    }
    assert_eq!(
        first,
        ENGINE.inspect(token, NOW),
        "inspecting twice gave two answers"
    );
}

fuzz_target!(|data: &[u8]| {
    check_strict(data);
    let token = String::from_utf8_lossy(data);
    check_parse(&token);
    check_engine(&token);
});
