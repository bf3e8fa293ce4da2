//! Key families and key binding, on the tokens bundle.

use super::*;

/// Adds this group's vectors, in order.
pub fn add(ctx: &Ctx, v: &mut Vectors) {
    let ed = &ctx.ed;
    let ec256 = &ctx.ec256;
    let ec384 = &ctx.ec384;
    let rsa = &ctx.rsa;
    let hs = &ctx.hs;
    let read = |t: &str| http("GET", "/things/t-1", Some(t), None);
    let ok = |iss: &str| {
        allow(
            principal(&test_claims(iss, json!({}))),
            action("thing.read", "Thing", "t-1", json!({})),
            Value::Null,
            None,
        )
    };
    v.add(
        "keys-eddsa-allowed",
        "EdDSA (Ed25519) with at+jwt",
        TOK,
        read(&ed.sign("at+jwt", &test_claims("https://ed.example", json!({})))),
        ok("https://ed.example"),
        vec!["thing-read"],
    );
    v.add(
        "keys-es256-allowed",
        "ES256 with a P-256 key",
        TOK,
        read(&ec256.sign("JWT", &test_claims("https://ec.example", json!({})))),
        ok("https://ec.example"),
        vec!["thing-read"],
    );
    v.add(
        "keys-es384-allowed",
        "ES384 with a P-384 key",
        TOK,
        read(&ec384.sign("JWT", &test_claims("https://ec.example", json!({})))),
        ok("https://ec.example"),
        vec!["thing-read"],
    );
    for (name, desc, alg) in [
        (
            "keys-rs256-allowed",
            "RS256 with a 2048-bit key",
            Algorithm::RS256,
        ),
        (
            "keys-rs384-allowed",
            "RS384 with a 2048-bit key",
            Algorithm::RS384,
        ),
        (
            "keys-rs512-allowed",
            "RS512 with a 2048-bit key",
            Algorithm::RS512,
        ),
        (
            "keys-ps256-allowed",
            "PS256 with a 2048-bit key",
            Algorithm::PS256,
        ),
        (
            "keys-ps384-allowed",
            "PS384 with a 2048-bit key",
            Algorithm::PS384,
        ),
        (
            "keys-ps512-allowed",
            "PS512 with a 2048-bit key",
            Algorithm::PS512,
        ),
    ] {
        let s = Signer::rsa(alg, "rsa-1");
        v.add(
            name,
            desc,
            TOK,
            read(&s.sign("JWT", &test_claims("https://rsa.example", json!({})))),
            ok("https://rsa.example"),
            vec!["thing-read"],
        );
    }
    v.add(
        "keys-hs256-shared-secret",
        "HS256 works where the bundle configures a shared secret",
        TOK,
        read(&hs.sign("JWT", &test_claims("https://hs.example", json!({})))),
        ok("https://hs.example"),
        vec!["thing-read"],
    );
    let ps_on_bound = Signer::rsa(Algorithm::PS256, "rsa-bound")
        .sign("JWT", &test_claims("https://rsa.example", json!({})));
    v.add(
        "keys-bound-algorithm-mismatch",
        "a key bound to RS256 is not used for PS256 (RFC 8725 3.1)",
        TOK,
        read(&ps_on_bound),
        deny(
            "token-key-mismatch",
            "key `rsa-bound` is bound to `RS256`, not `PS256`",
        ),
        vec![],
    );
    let es256_on_384 = Signer::ec("tests/keys/p256.pem", Algorithm::ES256, "ec384-1")
        .sign("JWT", &test_claims("https://ec.example", json!({})));
    v.add(
        "keys-curve-mismatch",
        "an ES256 token naming the P-384 key is refused",
        TOK,
        read(&es256_on_384),
        deny(
            "token-key-mismatch",
            "key `ec384-1` is bound to `ES384`, not `ES256`",
        ),
        vec![],
    );
    v.add(
        "keys-rsa-zero-leeway",
        "an issuer with leeway 0 refuses a token one second past exp",
        TOK,
        read(&rsa.sign(
            "JWT",
            &test_claims("https://rsa.example", json!({ "exp": NOW })),
        )),
        deny("token-expired", &format!("the token expired at {NOW}")),
        vec![],
    );
    v.add(
        "keys-not-fetched-yet",
        "an issuer whose jwks_uri the host has not fetched has no keys: deny",
        TOK,
        read(&ed.sign("at+jwt", &test_claims("https://uri.example", json!({})))),
        deny_for(
            "token-unknown-key",
            "no keys are loaded for issuer `https://uri.example`",
            "https://uri.example",
        ),
        vec![],
    );

    v.extra.push(Vector {
        name: "keys-set-by-host",
        description: "once the host supplies the jwks_uri issuer's keys (set-keys), its tokens verify",
        bundle: TOK,
        keys: vec![("https://uri.example", "tests/bundles/tokens/ed.jwks.json")],
        request: read(&ed.sign("at+jwt", &test_claims("https://uri.example", json!({})))),
        verdict: ok("https://uri.example"),
        reasons: vec!["thing-read"],
    });
}
