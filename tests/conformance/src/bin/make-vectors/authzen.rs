//! AuthZEN-shaped requests, and subjects a trusted host vouches for.

use super::*;

/// Adds this group's vectors, in order.
pub fn add(ctx: &Ctx, v: &mut Vectors) {
    let good = ctx.good.clone();
    let alice = ctx.alice.clone();
    let access_req = |amount: i64| {
        json!({ "access": {
            "token": good, "action": "payment.refund", "resource_type": "Payment",
            "resource_id": "pay_123", "resource_properties": null,
            "context": refund(amount).to_string(),
        }})
    };
    v.add(
        "authzen-refund-50-allowed",
        "the AuthZEN shape gives the same allow as the HTTP route",
        DEMO,
        access_req(50),
        allow(
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(50)),
            Value::Null,
            None,
        ),
        vec!["refund-small"],
    );
    v.add(
        "authzen-refund-500-needs-finance",
        "the AuthZEN shape gives the same challenge as the HTTP route",
        DEMO,
        access_req(500),
        challenge(
            API,
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(500)),
            refund_obligation(),
        ),
        vec!["refund-large"],
    );
    v.add(
        "authzen-context-misfit-invalid",
        "a context that does not fit the schema is refused",
        DEMO,
        json!({ "access": { "token": good, "action": "payment.refund", "resource_type": "Payment",
            "resource_id": "pay_123", "resource_properties": null, "context": "{\"amount\": 5}" }}),
        deny(
            "request-invalid",
            "the request's context does not fit: while parsing context, expected the record to have an attribute `currency`, but it does not",
        ),
        vec![],
    );

    // ---- vouched subjects (WIT evaluate-as) ---------------------------------
    let vouched = |scopes: Value, token: &str, amount: i64| {
        json!({ "vouched": {
            "subject": { "entity_type": "Anything", "subject": "alice", "client_id": "api-gateway",
                "scopes": scopes, "groups": [], "roles": [], "tenant": "",
                "issuer": "https://idp.example.com" },
            "access": { "token": token, "action": "payment.refund", "resource_type": "Payment",
                "resource_id": "pay_123", "resource_properties": null,
                "context": refund(amount).to_string() },
        }})
    };
    // What the policies see of a vouched subject: its properties, with the
    // bundle's entity type in place of the one the host named.
    let vouched_who = json!({ "entity_type": "User", "subject": "alice",
        "client_id": "api-gateway", "scopes": ["payments:refund"], "groups": [], "roles": [],
        "tenant": "", "issuer": "https://idp.example.com" });
    v.add(
        "vouched-refund-50-allowed",
        "a subject a trusted host vouches for is decided like its token would be",
        DEMO,
        vouched(json!(["payments:refund"]), "", 50),
        allow(
            vouched_who.clone(),
            action("payment.refund", "Payment", "pay_123", refund(50)),
            Value::Null,
            None,
        ),
        vec!["refund-small"],
    );
    v.add(
        "vouched-refund-500-needs-finance",
        "a vouched subject gets the same challenge",
        DEMO,
        vouched(json!(["payments:refund"]), "", 500),
        challenge(
            API,
            vouched_who.clone(),
            action("payment.refund", "Payment", "pay_123", refund(500)),
            refund_obligation(),
        ),
        vec!["refund-large"],
    );
    v.add(
        "vouched-without-scope-no-permit",
        "the vouched properties are what the policies see",
        DEMO,
        vouched(json!([]), "", 50),
        deny(
            "policy-no-permit",
            "no policy permits `payment.refund` on `Payment::pay_123`",
        ),
        vec![],
    );
    v.add(
        "vouched-with-a-token-invalid",
        "a vouched request carrying a token is refused, never half-used",
        DEMO,
        vouched(json!(["payments:refund"]), good.as_str(), 50),
        deny(
            "request-invalid",
            "a request for a vouched subject carries no token",
        ),
        vec![],
    );

    // Numbered after every other vector, so none is renumbered.
    let beyond = "parameter `amount` is `9007199254740993`, beyond ±2^53: an approval cannot be bound to it exactly";
    for (name, description, request) in [
        (
            "demo-refund-beyond-2-53-invalid",
            "an amount beyond ±2^53 is refused: its digest could not tell it from its neighbour",
            http(
                "POST",
                "/payments/pay_123/refund",
                Some(&good),
                Some(json!({ "amount": 9_007_199_254_740_993_u64, "currency": "EUR" })),
            ),
        ),
        (
            "authzen-context-beyond-2-53-invalid",
            "the AuthZEN shape refuses an amount beyond ±2^53 the same way",
            json!({ "access": { "token": good, "action": "payment.refund",
                "resource_type": "Payment", "resource_id": "pay_123", "resource_properties": null,
                "context": json!({ "amount": 9_007_199_254_740_993_u64, "currency": "EUR" }).to_string() }}),
        ),
    ] {
        v.extra.push(Vector {
            name,
            description,
            bundle: DEMO,
            keys: Vec::new(),
            request,
            verdict: deny("request-invalid", beyond),
            reasons: Vec::new(),
        });
    }

    // Groups count only from an issuer authoritative for them: the tokens
    // bundle's first issuer (`ed.example`) for any, the others for none.
    let admins = json!({ "groups": ["admins"] });
    let delete_challenge = |who: Value| {
        challenge(
            "https://api.test",
            who,
            action("thing.delete", "Thing", "t-1", json!({})),
            json!({
            "approvers": ["group:admins"], "quorum": 1, "ttl_seconds": 900, "grant": "once",
            "window_seconds": 0, "reason_required": false, "message": "" }),
        )
    };
    let first = test_claims("https://ed.example", admins.clone());
    let other = test_claims("https://ec.example", admins);
    // Written by hand: the principal without the group the issuer may not assert.
    let mut other_who = principal(&other);
    other_who["groups"] = json!([]);
    for (name, description, request, verdict) in [
        (
            "keys-groups-from-the-first-issuer-count",
            "the first issuer is authoritative for every group: its token's groups are the principal's",
            http(
                "POST",
                "/things/t-1/delete",
                Some(&ctx.ed.sign("at+jwt", &first)),
                None,
            ),
            delete_challenge(principal(&first)),
        ),
        (
            "keys-groups-from-another-issuer-are-dropped",
            "another issuer names no groups unless configured: a token of it claiming `admins` is no member",
            http(
                "POST",
                "/things/t-1/delete",
                Some(&ctx.ec256.sign("JWT", &other)),
                None,
            ),
            delete_challenge(other_who),
        ),
    ] {
        v.extra.push(Vector {
            name,
            description,
            bundle: TOK,
            keys: Vec::new(),
            request,
            verdict,
            reasons: vec!["thing-delete"],
        });
    }

    // A member named twice is refused, never read as its last value; a time
    // claim is whole seconds within range (RFC 7519 §4 and §2).
    let idp = &ctx.idp;
    let read = |t: &str| http("GET", "/payments/pay_123", Some(t), None);
    let claims_text = ctx.token.to_string();
    let twice = format!("{},\"sub\":\"admin\"}}", claims_text.trim_end_matches('}'));
    let header = r#"{"alg":"EdDSA","kid":"idp-dev-1","typ":"at+jwt"}"#;
    let huge = demo_claims(json!({ "exp": 1e300 }));
    let fraction = demo_claims(json!({ "exp": NOW as f64 + 3600.5 }));
    for (name, description, token, verdict) in [
        (
            "token-claim-given-twice",
            "a claim named twice (`sub` alice, then admin) is refused, not read as `admin`",
            idp.sign_raw(header, &twice),
            deny("token-invalid-claim", "claim `sub` is given twice"),
        ),
        (
            "token-header-member-given-twice",
            "a header naming `alg` twice is malformed",
            idp.sign_raw(
                r#"{"alg":"none","alg":"EdDSA","kid":"idp-dev-1","typ":"at+jwt"}"#,
                &claims_text,
            ),
            deny("token-malformed", "the header names `alg` twice"),
        ),
        (
            "token-exp-out-of-range",
            "an `exp` of 1e300 is refused, not read as never expiring",
            idp.sign("at+jwt", &huge),
            deny(
                "token-invalid-claim",
                "claim `exp` must be whole seconds from 0 to 253402300799, not `1e+300`",
            ),
        ),
        (
            "token-exp-not-whole-seconds",
            "an `exp` that is not whole seconds is refused",
            idp.sign("at+jwt", &fraction),
            deny(
                "token-invalid-claim",
                "claim `exp` must be whole seconds from 0 to 253402300799, not `1767229200.5`",
            ),
        ),
    ] {
        v.extra.push(Vector {
            name,
            description,
            bundle: DEMO,
            keys: Vec::new(),
            request: read(&token),
            verdict,
            reasons: Vec::new(),
        });
    }

    // An action token is typed `greenlight-action+jwt`: the same claims
    // typed as an access token are refused (RFC 8725 §3.11).
    let as_access_token = ctx.gl.sign(
        "at+jwt",
        &json!({
            "iss": "https://greenlight.test", "aud": "https://api.test", "sub": "bob",
            "client_id": "cli", "iat": NOW - 10, "exp": NOW + 120, "jti": "at-9",
            "scope": "things:write", "grant": "once", "approval_id": "apr-1",
            "act_digest": digest("thing.delete", "Thing", "t-1", json!({})),
            "sub_id": { "format": "iss_sub", "iss": "https://ed.example", "sub": "bob" },
        }),
    );
    v.extra.push(Vector {
        name: "action-token-typed-as-an-access-token",
        description: "an action token typed at+jwt, not greenlight-action+jwt, is refused",
        bundle: TOK,
        keys: Vec::new(),
        request: http("POST", "/things/t-1/delete", Some(&as_access_token), None),
        verdict: deny(
            "token-wrong-type",
            "type `at+jwt` is not the required `greenlight-action+jwt`",
        ),
        reasons: Vec::new(),
    });

    // What the application reads must be what Greenlight decided on: an
    // encoded `/` in a path variable and a scalar given twice are refused.
    let access = ctx
        .ed
        .sign("at+jwt", &test_claims("https://ed.example", json!({})));
    for (name, description, bundle, request, message) in [
        (
            "demo-encoded-slash-in-a-path-variable-refused",
            "`%2F` in a path variable is refused: a framework decoding before routing reads another path",
            DEMO,
            http(
                "GET",
                "/payments/pay_1%2Fsecrets%2Fexport",
                Some(&good),
                None,
            ),
            "path variable `payment_id` holds an encoded `/` (%2F), which route `GET /payments/{payment_id}` does not allow",
        ),
        (
            "action-repeated-query-parameter-refused",
            "a query parameter given twice is refused: which value would the application act on?",
            TOK,
            http_q(
                "POST",
                "/things/t-1/delete",
                "reason=cleanup&reason=everything",
                Some(&access),
                None,
            ),
            "parameter `reason` is given 2 times in the query; the route reads one (declare `type = \"list\"` for several)",
        ),
    ] {
        v.extra.push(Vector {
            name,
            description,
            bundle,
            keys: Vec::new(),
            request,
            verdict: deny("request-invalid", message),
            reasons: Vec::new(),
        });
    }
    // An action token's person is (issuer, subject) as its `sub_id`
    // names them, never Greenlight, which only signed it.
    let delete_claims = |sub_id: Value| {
        json!({
            "iss": "https://greenlight.test", "aud": "https://api.test", "sub": "bob",
            "client_id": "cli", "iat": NOW - 10, "exp": NOW + 120, "jti": "at-7",
            "scope": "things:write", "grant": "once", "approval_id": "apr-1",
            "act_digest": digest("thing.delete", "Thing", "t-1", json!({})),
            "sub_id": sub_id,
        })
    };
    for (name, description, sub_id, why) in [
        (
            "action-token-without-sub-id",
            "an action token that does not name its person's issuer is refused",
            Value::Null,
            "an `iss_sub` subject identifier naming the requester",
        ),
        (
            "action-token-sub-id-wrong-format",
            "sub_id must be of format iss_sub",
            json!({ "format": "email", "email": "bob@example.com" }),
            "of format `iss_sub`",
        ),
        (
            "action-token-sub-id-other-subject",
            "sub_id must name the token's own subject",
            json!({ "format": "iss_sub", "iss": "https://ed.example", "sub": "mallory" }),
            "whose `sub` is the token's",
        ),
        (
            "action-token-sub-id-untrusted-issuer",
            "sub_id must name a trusted issuer: Greenlight's own is none",
            json!({ "format": "iss_sub", "iss": "https://greenlight.test", "sub": "bob" }),
            "whose `iss` is a trusted issuer, not `https://greenlight.test`",
        ),
    ] {
        v.extra.push(Vector {
            name,
            description,
            bundle: TOK,
            keys: Vec::new(),
            request: http(
                "POST",
                "/things/t-1/delete",
                Some(
                    &ctx.gl
                        .sign(super::actions::ACTION_TYP, &delete_claims(sub_id)),
                ),
                None,
            ),
            verdict: deny(
                "action-token-invalid",
                &format!("action tokens carry `sub_id` ({why})"),
            ),
            reasons: Vec::new(),
        });
    }
    let other = json!({ "format": "iss_sub", "iss": "https://ec.example", "sub": "bob" });
    let claims = delete_claims(other);
    v.extra.push(Vector {
        name: "action-token-principal-is-the-requester",
        description: "an action token minted for another trusted issuer's bob acts as that issuer's bob",
        bundle: TOK,
        keys: Vec::new(),
        request: http(
            "POST",
            "/things/t-1/delete",
            Some(&ctx.gl.sign(super::actions::ACTION_TYP, &claims)),
            None,
        ),
        verdict: allow(
            principal(&claims),
            action("thing.delete", "Thing", "t-1", json!({})),
            json!({ "token_id": "at-7", "expires_at": NOW + 120 }),
            Some("apr-1"),
        ),
        reasons: vec!["thing-delete"],
    });

    // In Cedar a subject of the first issuer is `User::"sub"`, any other
    // issuer's `User::"ISSUER#sub"`: a policy about the first issuer's
    // mallory never applies to another provider's mallory, and nobody
    // passes for another provider's user by spelling their sub that way.
    let read = |token: &str| http("GET", "/things/t-1", Some(token), None);
    let home = test_claims("https://ed.example", json!({ "sub": "mallory" }));
    let away = test_claims("https://ec.example", json!({ "sub": "mallory" }));
    let spelled = test_claims(
        "https://ed.example",
        json!({ "sub": "https://ec.example#mallory" }),
    );
    v.extra.push(Vector {
        name: "cedar-principal-of-the-first-issuer-by-sub",
        description: "the first issuer's mallory is User::\"mallory\", whom a policy forbids reading",
        bundle: TOK,
        keys: Vec::new(),
        request: read(&ctx.ed.sign("at+jwt", &home)),
        verdict: deny(
            "policy-forbidden",
            "`thing.read` on `Thing::t-1` is forbidden by policy `mallory-may-not-read`",
        ),
        reasons: vec!["mallory-may-not-read"],
    });
    v.extra.push(Vector {
        name: "cedar-principal-of-another-issuer-qualified",
        description: "another issuer's mallory is User::\"https://ec.example#mallory\": the policy about the first issuer's does not apply",
        bundle: TOK,
        keys: Vec::new(),
        request: read(&ctx.ec256.sign("JWT", &away)),
        verdict: allow(
            principal(&away),
            action("thing.read", "Thing", "t-1", json!({})),
            Value::Null,
            None,
        ),
        reasons: vec!["thing-read"],
    });
    v.extra.push(Vector {
        name: "cedar-principal-spelled-as-another-issuers-user",
        description: "a first-issuer subject spelled ISSUER#sub of another trusted issuer is refused",
        bundle: TOK,
        keys: Vec::new(),
        request: read(&ctx.ed.sign("at+jwt", &spelled)),
        verdict: deny(
            "token-invalid-claim",
            "subject `https://ec.example#mallory` would pass for a user of `https://ec.example`",
        ),
        reasons: Vec::new(),
    });
    // A provider with pairwise `sub`s names the person in `oid` and the
    // client in `appid`: the principal is built from those claims.
    let pairwise = |over: Value| {
        test_claims(
            "https://pairwise.example",
            merge(
                json!({ "sub": "pairwise-7f3a", "oid": "bob", "appid": "cli", "client_id": "not-this" }),
                over,
            ),
        )
    };
    let claims = pairwise(json!({}));
    v.extra.push(Vector {
        name: "claims-subject-and-client-from-configured-claims",
        description: "an issuer's subject_claim and client_claim name the person and client, not sub and client_id",
        bundle: TOK,
        keys: Vec::new(),
        request: read(&ctx.ed.sign("JWT", &claims)),
        verdict: allow(
            merge(
                principal(&claims),
                json!({ "subject": "bob", "client_id": "cli" }),
            ),
            action("thing.read", "Thing", "t-1", json!({})),
            Value::Null,
            None,
        ),
        reasons: vec!["thing-read"],
    });
    let without_oid = pairwise(json!({ "oid": null }));
    v.extra.push(Vector {
        name: "claims-configured-subject-claim-missing",
        description: "without its subject_claim a token names nobody, whatever its sub",
        bundle: TOK,
        keys: Vec::new(),
        request: read(&ctx.ed.sign("JWT", &without_oid)),
        verdict: deny(
            "token-missing-claim",
            "claim `oid` is missing or not of the right type",
        ),
        reasons: Vec::new(),
    });
    // The provider signs with a key published after the host fetched: the
    // denial names the issuer, so the host fetches its keys again. (A
    // bundle's own issuer names none: vector 033.)
    let read_thing = |t: &str| http("GET", "/things/t-1", Some(t), None);
    let rotated = Signer::ed("tests/keys/ed.pem", "ed-next");
    v.extra.push(Vector {
        name: "keys-fetched-unknown-kid",
        description: "a kid the fetched key set lacks: deny, naming the issuer whose keys to fetch again",
        bundle: TOK,
        keys: vec![("https://uri.example", "tests/bundles/tokens/ed.jwks.json")],
        request: read_thing(&rotated.sign("at+jwt", &test_claims("https://uri.example", json!({})))),
        verdict: deny_for(
            "token-unknown-key",
            "no key with kid `ed-next`",
            "https://uri.example",
        ),
        reasons: vec![],
    });
}
