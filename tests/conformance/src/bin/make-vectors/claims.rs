//! Claims mapped to typed principal attributes, delegation seen by policy,
//! and step-up (RFC 9470), on the claims bundle.

use super::*;

/// The claims bundle's folder.
const CLAIMS: &str = "tests/bundles/claims";
const ISS: &str = "https://idp.claims.test";

/// Adds this group's vectors, at the end (they are all `extra`).
pub fn add(ctx: &Ctx, v: &mut Vectors) {
    let ed = &ctx.ed;
    let claims = |over: Value| {
        merge(
            json!({
                "iss": ISS, "aud": "https://api.test", "sub": "carol", "azp": "books",
                "iat": NOW - 60, "exp": NOW + 600, "scope": "reports",
                "https://example.com/department": "finance",
                "realm_access": { "roles": ["reader", "auditor", "reader"] },
            }),
            over,
        )
    };
    // The principal those claims name: the built-in attributes by their
    // definition, the mapped ones written out by hand.
    let who = |c: &Value, attributes: Value| {
        let mut p = principal(c);
        // Sorted by name, as a decision lists them.
        let sorted: std::collections::BTreeMap<String, Value> = attributes
            .as_object()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        p["attributes"] = json!(sorted);
        p
    };
    let base = json!({
        "department": { "string": "finance" },
        "email_verified": { "bool": false },
        "level": { "long": 0 },
        "realm_roles": { "set": ["auditor", "reader"] },
    });
    let read = |t: &str| http("GET", "/reports/r-1", Some(t), None);
    let refund = |t: &str, amount: i64| {
        http(
            "POST",
            "/payments/p-1/refund",
            Some(t),
            Some(json!({ "amount": amount })),
        )
    };
    let refund_action = |amount: i64| {
        action(
            "payment.refund",
            "Payment",
            "p-1",
            json!({ "amount": amount }),
        )
    };

    let c = claims(json!({}));
    v.extra.push(Vector {
        name: "claims-nested-and-namespaced-allow",
        description: "a namespaced claim (by its exact name) and a nested one (by path) become typed attributes; defaults fill the rest",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: allow(
            who(&c, base.clone()),
            action("report.read", "Report", "r-1", json!({})),
            Value::Null,
            None,
        ),
        reasons: vec!["report-read"],
    });
    let c = claims(json!({ "https://example.com/department": "sales" }));
    v.extra.push(Vector {
        name: "claims-namespaced-other-value",
        description: "another department: no permit",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: deny(
            "policy-no-permit",
            "no policy permits `report.read` on `Report::r-1`",
        ),
        reasons: vec![],
    });
    let c = claims(json!({ "https://example.com/department": null }));
    v.extra.push(Vector {
        name: "claims-required-missing",
        description: "a required claim absent: token-missing-claim naming the claim and the attribute",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: deny(
            "token-missing-claim",
            "claim `https://example.com/department` (attribute `department`) is required and missing",
        ),
        reasons: vec![],
    });
    let c = claims(json!({ "https://example.com/department": 7 }));
    v.extra.push(Vector {
        name: "claims-wrong-type",
        description: "a mapped claim of the wrong type: token-missing-claim naming the claim and the types",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: deny(
            "token-missing-claim",
            "claim `https://example.com/department` (attribute `department`) is not a String: it is a whole number",
        ),
        reasons: vec![],
    });
    let c = claims(json!({ "realm_access": { "roles": ["reader", 1] } }));
    v.extra.push(Vector {
        name: "claims-nested-set-element-wrong-type",
        description: "a Set<String> with a number in it is refused, not filtered",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: deny(
            "token-missing-claim",
            "claim `realm_access.roles` (attribute `realm_roles`) is not a Set<String>: an element is not a string",
        ),
        reasons: vec![],
    });
    let close = |t: &str| http("POST", "/accounts/a-1/close", Some(t), None);
    let c = claims(json!({
        "https://example.com/profile": { "level": 3 },
        "email_verified": true,
        "auth_time": NOW - 600,
    }));
    v.extra.push(Vector {
        name: "claims-long-bool-datetime-allow",
        description: "a Long behind a JSON pointer, a Bool, and auth_time as a Cedar datetime",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: close(&ed.sign("JWT", &c)),
        verdict: allow(
            who(
                &c,
                json!({
                    "department": { "string": "finance" },
                    "email_verified": { "bool": true },
                    "level": { "long": 3 },
                    "realm_roles": { "set": ["auditor", "reader"] },
                    "signed_in": { "datetime": NOW - 600 },
                }),
            ),
            action("account.close", "Account", "a-1", json!({})),
            Value::Null,
            None,
        ),
        reasons: vec!["account-close"],
    });
    // 2025-11-30T23:59:59Z: the second before the policy's datetime.
    let c = claims(json!({
        "https://example.com/profile": { "level": 3 },
        "email_verified": true,
        "auth_time": 1_764_547_199,
    }));
    v.extra.push(Vector {
        name: "claims-datetime-before-policy",
        description: "a datetime one second before the policy's bound: no permit",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: close(&ed.sign("JWT", &c)),
        verdict: deny(
            "policy-no-permit",
            "no policy permits `account.close` on `Account::a-1`",
        ),
        reasons: vec![],
    });
    let c = claims(json!({ "https://example.com/profile": { "level": 3.5 } }));
    v.extra.push(Vector {
        name: "claims-long-with-fraction",
        description: "a Long that is not whole is the wrong type",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: close(&ed.sign("JWT", &c)),
        verdict: deny(
            "token-missing-claim",
            "claim `/https:~1~1example.com~1profile/level` (attribute `level`) is not a Long: it is a number with a fraction",
        ),
        reasons: vec![],
    });

    // Step-up.
    let step_up = |message: &str| {
        json!({ "kind": "step-up-required", "acr_values": ["urn:example:mfa"], "max_age": 300,
                "message": message })
    };
    let c = claims(json!({}));
    v.extra.push(Vector {
        name: "step-up-no-acr",
        description: "a refund with a token that names no sign-in class: RFC 9470 step-up, not approval",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 50),
        verdict: step_up(
            "`payment.refund` on `Payment::p-1` needs a new sign-in: the token names no sign-in class (`acr`); one of `urn:example:mfa` is needed",
        ),
        reasons: vec!["refund"],
    });
    let c = claims(json!({ "acr": "urn:example:pwd", "auth_time": NOW - 10 }));
    v.extra.push(Vector {
        name: "step-up-acr-too-weak",
        description: "a password sign-in where multi-factor is required",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 50),
        verdict: step_up(
            "`payment.refund` on `Payment::p-1` needs a new sign-in: the sign-in's class `urn:example:pwd` is not one of `urn:example:mfa`",
        ),
        reasons: vec!["refund"],
    });
    let c = claims(json!({ "acr": "urn:example:mfa", "auth_time": NOW - 301 }));
    v.extra.push(Vector {
        name: "step-up-sign-in-too-old",
        description: "the right class, but 301 seconds ago where 300 is the most",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 50),
        verdict: step_up(
            "`payment.refund` on `Payment::p-1` needs a new sign-in: the sign-in was 301 seconds ago, more than the 300 allowed",
        ),
        reasons: vec!["refund"],
    });
    let c = claims(json!({ "acr": "urn:example:mfa" }));
    v.extra.push(Vector {
        name: "step-up-no-auth-time",
        description: "the right class, but the token does not say when",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 50),
        verdict: step_up(
            "`payment.refund` on `Payment::p-1` needs a new sign-in: the token does not say when the person signed in (`auth_time`); a sign-in within 300 seconds is needed",
        ),
        reasons: vec!["refund"],
    });
    let c = claims(json!({ "acr": "urn:example:mfa", "auth_time": NOW - 300 }));
    let mut stepped = base.clone();
    stepped["acr"] = json!({ "string": "urn:example:mfa" });
    stepped["signed_in"] = json!({ "datetime": NOW - 300 });
    v.extra.push(Vector {
        name: "step-up-met-allow",
        description: "a multi-factor sign-in exactly 300 seconds ago: allowed",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 50),
        verdict: allow(
            who(&c, stepped.clone()),
            refund_action(50),
            Value::Null,
            None,
        ),
        reasons: vec!["refund"],
    });
    let c = claims(json!({ "acr": "urn:example:pwd", "auth_time": NOW - 10 }));
    v.extra.push(Vector {
        name: "step-up-before-approval",
        description: "a large refund with a weak sign-in: step-up first, approvers are not asked",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 5000),
        verdict: json!({ "kind": "step-up-required", "acr_values": ["urn:example:mfa"],
            "max_age": null,
            "message": "`payment.refund` on `Payment::p-1` needs a new sign-in: the sign-in's class `urn:example:pwd` is not one of `urn:example:mfa`" }),
        reasons: vec!["refund-large"],
    });
    let c = claims(json!({ "acr": "urn:example:mfa", "auth_time": NOW - 3600 }));
    let mut large = base.clone();
    large["acr"] = json!({ "string": "urn:example:mfa" });
    large["signed_in"] = json!({ "datetime": NOW - 3600 });
    v.extra.push(Vector {
        name: "step-up-met-then-approval",
        description: "a large refund with a multi-factor sign-in: approval required (no age limit on this permit)",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 5000),
        verdict: challenge(
            "https://api.test",
            who(&c, large.clone()),
            refund_action(5000),
            json!({
                "approvers": ["group:finance"], "quorum": 1, "ttl_seconds": 900, "grant": "once",
                "window_seconds": 0, "reason_required": false, "message": "" }),
        ),
        reasons: vec!["refund-large"],
    });

    // Delegation.
    let c = claims(json!({ "act": { "sub": "agent-1", "act": { "sub": "planner" } } }));
    let mut acting = base.clone();
    acting["actor"] = json!({ "string": "agent-1" });
    v.extra.push(Vector {
        name: "delegation-agent-reads",
        description: "an agent acting for carol (RFC 8693 act) reads as carol, and policy sees the actor",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: allow(
            who(&c, acting),
            action("report.read", "Report", "r-1", json!({})),
            Value::Null,
            None,
        ),
        reasons: vec!["report-read"],
    });
    let c = claims(json!({
        "act": { "sub": "agent-1" }, "acr": "urn:example:mfa", "auth_time": NOW - 10,
    }));
    v.extra.push(Vector {
        name: "delegation-agent-refund-forbidden",
        description: "an agent acting for carol may not refund, even with carol's strong sign-in",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&ed.sign("JWT", &c), 50),
        verdict: deny(
            "policy-forbidden",
            "`payment.refund` on `Payment::p-1` is forbidden by policy `no-agent-refunds`",
        ),
        reasons: vec!["no-agent-refunds"],
    });

    // Action tokens carry the attributes the person had when asking.
    let gl = &ctx.gl;
    let action_claims = |over: Value| {
        merge(
            json!({
                "iss": "https://greenlight.test", "aud": "https://api.test", "sub": "carol",
                "client_id": "books", "iat": NOW - 10, "exp": NOW + 120, "jti": "at-c1",
                "scope": "reports", "act_digest": refund_action(5000)["digest"],
                "grant": "once", "approval_id": "apr-c1",
                "sub_id": { "format": "iss_sub", "iss": ISS, "sub": "carol" },
                "principal_attributes": {
                    "department": "finance", "realm_roles": ["auditor", "reader"],
                    "level": 0, "email_verified": false, "acr": "urn:example:mfa",
                    "signed_in": NOW - 3600,
                },
            }),
            over,
        )
    };
    let a = action_claims(json!({}));
    v.extra.push(Vector {
        name: "claims-action-token-carries-attributes",
        description: "the action token approved for carol's large refund: her attributes from principal_attributes, no step-up asked again",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&gl.sign(actions::ACTION_TYP, &a), 5000),
        verdict: allow(
            who(&a, large),
            refund_action(5000),
            json!({ "token_id": "at-c1", "expires_at": NOW + 120 }),
            Some("apr-c1"),
        ),
        reasons: vec!["refund-large"],
    });
    let a = action_claims(json!({ "principal_attributes": { "level": 0 } }));
    v.extra.push(Vector {
        name: "claims-action-token-without-attributes",
        description: "an action token without the required attribute names where it should have been",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: refund(&gl.sign(actions::ACTION_TYP, &a), 5000),
        verdict: deny(
            "token-missing-claim",
            "claim `principal_attributes.department` (attribute `department`) is required and missing",
        ),
        reasons: vec![],
    });

    // Attributes come from the issuers each one trusts.
    let partner = claims(json!({ "iss": "https://partner.claims.test" }));
    v.extra.push(Vector {
        name: "claims-attribute-from-untrusted-issuer",
        description: "a partner's token says finance: the department is read from the first issuer only, and it is required",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &partner)),
        verdict: deny(
            "token-missing-claim",
            "attribute `department` is required, and `https://partner.claims.test` is not one of the issuers it is read from",
        ),
        reasons: vec![],
    });
    let roles: Vec<String> = (0..65).map(|i| format!("role-{i:02}")).collect();
    let c = claims(json!({ "realm_access": { "roles": roles } }));
    v.extra.push(Vector {
        name: "claims-set-too-large",
        description: "a Set<String> claim with 65 entries is refused, not cut",
        bundle: CLAIMS,
        keys: Vec::new(),
        request: read(&ed.sign("JWT", &c)),
        verdict: deny(
            "token-missing-claim",
            "claim `realm_access.roles` (attribute `realm_roles`) has 65 entries, more than the 64 a Set<String> attribute holds",
        ),
        reasons: vec![],
    });

    // A fetched key set keeps its usable keys when one is of a kind
    // Greenlight does not verify with (a P-521 key beside the EdDSA one).
    let c = test_claims("https://uri.example", json!({}));
    v.extra.push(Vector {
        name: "keys-fetched-set-with-an-unusable-key",
        description: "set-keys with a P-521 key beside the signing key: the unusable key is left out, the other still verifies",
        bundle: TOK,
        keys: vec![("https://uri.example", "tests/keys/fetched-mixed.jwks.json")],
        request: http("GET", "/things/t-1", Some(&ed.sign("at+jwt", &c)), None),
        verdict: allow(
            principal(&c),
            action("thing.read", "Thing", "t-1", json!({})),
            Value::Null,
            None,
        ),
        reasons: vec!["thing-read"],
    });
}
