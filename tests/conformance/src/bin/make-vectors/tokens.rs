//! Access-token failure classes, each with its own code.

use super::*;

/// Adds this group's vectors, in order.
pub fn add(ctx: &Ctx, v: &mut Vectors) {
    let idp = &ctx.idp;
    let attacker = &ctx.attacker;
    let token = ctx.token.clone();
    let good = ctx.good.clone();
    let alice = ctx.alice.clone();
    v.add(
        "token-missing",
        "a request without a bearer token is denied",
        DEMO,
        http("GET", "/payments/pay_123", None, None),
        deny("token-missing", "no bearer token was presented"),
        vec![],
    );
    let mut basic = http("GET", "/payments/pay_123", None, None);
    basic["http"]["headers"] = json!([["Authorization", "Basic YWxpY2U6c2VjcmV0"]]);
    v.add(
        "token-basic-scheme",
        "a non-bearer authorization scheme carries no token",
        DEMO,
        basic,
        deny(
            "token-missing",
            "authorization scheme `Basic` is not `Bearer`",
        ),
        vec![],
    );
    let expired = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "iat": NOW - 7200, "exp": NOW - 61 })),
    );
    v.add(
        "token-expired",
        "a token past exp plus the 60 s leeway is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&expired), None),
        deny(
            "token-expired",
            &format!("the token expired at {}", NOW - 61),
        ),
        vec![],
    );
    let leeway = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "iat": NOW - 7200, "exp": NOW - 30 })),
    );
    v.add(
        "token-expired-within-leeway",
        "a token expired 30 s ago is within the 60 s leeway",
        DEMO,
        http("GET", "/payments/pay_123", Some(&leeway), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_123", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );
    let nbf = idp.sign("at+jwt", &demo_claims(json!({ "nbf": NOW + 600 })));
    v.add(
        "token-not-yet-valid",
        "a token whose nbf is beyond the leeway is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&nbf), None),
        deny(
            "token-not-yet-valid",
            &format!("the token is not valid before {}", NOW + 600),
        ),
        vec![],
    );
    let iat = idp.sign("at+jwt", &demo_claims(json!({ "iat": NOW + 600 })));
    v.add(
        "token-issued-in-future",
        "a token issued beyond the leeway in the future is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&iat), None),
        deny(
            "token-issued-in-future",
            &format!("the token was issued in the future, at {}", NOW + 600),
        ),
        vec![],
    );
    let aud = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "aud": "https://other.example.com" })),
    );
    v.add(
        "token-wrong-audience",
        "a token for another audience is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&aud), None),
        deny(
            "token-wrong-audience",
            "the audience does not include `https://api.example.com`",
        ),
        vec![],
    );
    let aud_list = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "aud": ["https://other.example.com", "https://api.example.com"] })),
    );
    v.add(
        "token-audience-list",
        "an audience list that names the API is accepted",
        DEMO,
        http("GET", "/payments/pay_123", Some(&aud_list), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_123", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );
    let iss = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "iss": "https://evil.example.com" })),
    );
    v.add(
        "token-unknown-issuer",
        "a token from an issuer the bundle does not trust is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&iss), None),
        deny(
            "token-unknown-issuer",
            "issuer `https://evil.example.com` is not trusted",
        ),
        vec![],
    );
    let no_exp = idp.sign("at+jwt", &demo_claims(json!({ "exp": null })));
    v.add(
        "token-missing-exp",
        "exp is required",
        DEMO,
        http("GET", "/payments/pay_123", Some(&no_exp), None),
        deny(
            "token-missing-claim",
            "claim `exp` is missing or not of the right type",
        ),
        vec![],
    );
    let no_sub = idp.sign("at+jwt", &demo_claims(json!({ "sub": null })));
    v.add(
        "token-missing-sub",
        "sub is required",
        DEMO,
        http("GET", "/payments/pay_123", Some(&no_sub), None),
        deny(
            "token-missing-claim",
            "claim `sub` is missing or not of the right type",
        ),
        vec![],
    );
    let typ = idp.sign("JWT", &token);
    v.add(
        "token-wrong-type",
        "an issuer that requires RFC 9068 at+jwt refuses typ JWT",
        DEMO,
        http("GET", "/payments/pay_123", Some(&typ), None),
        deny(
            "token-wrong-type",
            "type `JWT` is not the required `at+jwt`",
        ),
        vec![],
    );
    let media_type = idp.sign("application/at+jwt", &token);
    v.add(
        "token-type-media-type",
        "typ may be given as the full media type application/at+jwt",
        DEMO,
        http("GET", "/payments/pay_123", Some(&media_type), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_123", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );
    let tampered = {
        let parts: Vec<&str> = good.split('.').collect();
        let payload = b64(demo_claims(json!({ "scope": "payments:refund admin" }))
            .to_string()
            .as_bytes());
        format!("{}.{}.{}", parts[0], payload, parts[2])
    };
    v.add(
        "token-bad-signature",
        "a token whose payload was changed after signing is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&tampered), None),
        deny("token-bad-signature", "the signature does not verify"),
        vec![],
    );
    let kid = idp.sign_with(json!({ "typ": "at+jwt", "kid": "rotated-away" }), &token);
    v.add(
        "token-unknown-kid",
        "a kid that is not in the issuer's key set is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&kid), None),
        deny("token-unknown-key", "no key with kid `rotated-away`"),
        vec![],
    );
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(token.to_string().as_bytes())
    );
    v.add(
        "token-alg-none",
        "alg none is refused",
        DEMO,
        http("GET", "/payments/pay_123", Some(&none), None),
        deny(
            "token-unsupported-algorithm",
            "algorithm `none` is not supported",
        ),
        vec![],
    );
    let es512 = format!(
        "{}.{}.AAAA",
        b64(br#"{"alg":"ES512","typ":"at+jwt","kid":"idp-dev-1"}"#),
        b64(token.to_string().as_bytes())
    );
    v.add(
        "token-alg-es512-unsupported",
        "ES512 is not among the supported algorithms",
        DEMO,
        http("GET", "/payments/pay_123", Some(&es512), None),
        deny(
            "token-unsupported-algorithm",
            "algorithm `ES512` is not supported",
        ),
        vec![],
    );
    let hs_on_demo = Signer {
        key: EncodingKey::from_secret(b"guessable"),
        alg: Algorithm::HS256,
        kid: Some("idp-dev-1"),
    }
    .sign("at+jwt", &token);
    v.add(
        "token-alg-not-allowed",
        "an HS256 token for an issuer that signs with public keys is refused before any key is tried",
        DEMO,
        http("GET", "/payments/pay_123", Some(&hs_on_demo), None),
        deny(
            "token-algorithm-not-allowed",
            "issuer `https://idp.example.com` does not sign with `HS256`",
        ),
        vec![],
    );
    let huge = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "padding": "x".repeat(9000) })),
    );
    v.add(
        "token-too-large",
        "a token over 8 KiB is refused before it is decoded",
        DEMO,
        http("GET", "/payments/pay_123", Some(&huge), None),
        deny(
            "token-too-large",
            &format!(
                "the token has {} bytes, more than the 8192 accepted",
                huge.len()
            ),
        ),
        vec![],
    );
    v.add(
        "token-two-parts",
        "a token with two parts is not a JWS",
        DEMO,
        http(
            "GET",
            "/payments/pay_123",
            Some("eyJhbGciOiJFZERTQSJ9.e30"),
            None,
        ),
        deny(
            "token-malformed",
            "a JWS compact token has 3 dot-separated parts, this one has 2",
        ),
        vec![],
    );
    v.add(
        "token-jwe",
        "an encrypted token (five parts) is refused",
        DEMO,
        http(
            "GET",
            "/payments/pay_123",
            Some("eyJhbGciOiJSU0EtT0FFUCJ9.a.b.c.d"),
            None,
        ),
        deny("token-malformed", "encrypted tokens (JWE) are not accepted"),
        vec![],
    );
    v.add(
        "token-header-not-json",
        "a header that is not JSON is malformed",
        DEMO,
        http(
            "GET",
            "/payments/pay_123",
            Some(&format!("{}.e30.AAAA", b64(b"not json"))),
            None,
        ),
        deny("token-malformed", "the header is not a JSON object"),
        vec![],
    );
    let crit = idp.sign_with(
        json!({ "typ": "at+jwt", "crit": ["exp-policy"], "exp-policy": 1 }),
        &token,
    );
    v.add(
        "token-unknown-crit",
        "a critical header extension Greenlight does not understand is refused",
        DEMO,
        http("GET", "/payments/pay_123", Some(&crit), None),
        deny(
            "token-unknown-critical-header",
            "critical header parameter `exp-policy` is not understood",
        ),
        vec![],
    );
    let embedded = attacker.sign_with(
        json!({ "typ": "at+jwt", "jwk": attacker.jwk(Some(Algorithm::EdDSA)), "jku": "https://evil.example.com/jwks" }),
        &token,
    );
    v.add(
        "token-embedded-jwk-ignored",
        "keys in jwk/jku headers are never trusted: the configured key is used and the forgery fails",
        DEMO,
        http("GET", "/payments/pay_123", Some(&embedded), None),
        deny("token-bad-signature", "the signature does not verify"),
        vec![],
    );
}
