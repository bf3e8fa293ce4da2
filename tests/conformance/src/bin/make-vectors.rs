//! Writes the conformance vectors in `tests/vectors/` and the key sets of
//! `tests/bundles/tokens/` from the private keys in `tests/keys/`.
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

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: Option<&'static str>,
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(root().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

impl Signer {
    fn ed(path: &str, kid: &'static str) -> Self {
        Self {
            key: EncodingKey::from_ed_pem(&pem(path)).expect("ed key"),
            alg: Algorithm::EdDSA,
            kid: Some(kid),
        }
    }

    fn ec(path: &str, alg: Algorithm, kid: &'static str) -> Self {
        Self {
            key: EncodingKey::from_ec_pem(&pem(path)).expect("ec key"),
            alg,
            kid: Some(kid),
        }
    }

    fn rsa(alg: Algorithm, kid: &'static str) -> Self {
        Self {
            key: EncodingKey::from_rsa_pem(&pem("tests/keys/rsa2048.pem")).expect("rsa key"),
            alg,
            kid: Some(kid),
        }
    }

    fn jwk(&self, alg: Option<Algorithm>) -> Value {
        let jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("jwk");
        let mut v = serde_json::to_value(jwk).expect("jwk json");
        let obj = v.as_object_mut().expect("object");
        obj.remove("alg");
        if let Some(a) = alg {
            obj.insert("alg".into(), serde_json::to_value(a).expect("alg"));
        }
        if let Some(kid) = self.kid {
            obj.insert("kid".into(), json!(kid));
        }
        v
    }

    /// Signs with header fields `typ` and extra ones merged over alg/kid.
    fn sign_with(&self, header: Value, claims: &Value) -> String {
        let mut h = Map::new();
        h.insert("alg".into(), serde_json::to_value(self.alg).expect("alg"));
        if let Some(kid) = self.kid {
            h.insert("kid".into(), json!(kid));
        }
        for (k, v) in header.as_object().cloned().unwrap_or_default() {
            if v.is_null() {
                h.remove(&k);
            } else {
                h.insert(k, v);
            }
        }
        let input = format!(
            "{}.{}",
            b64(Value::Object(h).to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).expect("sign");
        format!("{input}.{sig}")
    }

    fn sign(&self, typ: &str, claims: &Value) -> String {
        self.sign_with(json!({ "typ": typ }), claims)
    }
}

fn merge(base: Value, over: Value) -> Value {
    let mut b = base.as_object().cloned().unwrap_or_default();
    for (k, v) in over.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            b.remove(&k);
        } else {
            b.insert(k, v);
        }
    }
    Value::Object(b)
}

fn demo_claims(over: Value) -> Value {
    merge(
        json!({
            "iss": "https://idp.example.com",
            "aud": "https://api.example.com",
            "sub": "alice",
            "client_id": "shop-backend",
            "iat": NOW - 60,
            "exp": NOW + 3600,
            "jti": "demo-1",
            "scope": "payments:read payments:refund files:write",
        }),
        over,
    )
}

fn test_claims(iss: &str, over: Value) -> Value {
    merge(
        json!({
            "iss": iss,
            "aud": "https://api.test",
            "sub": "bob",
            "iat": NOW - 60,
            "exp": NOW + 600,
            "scope": "things:read things:write",
        }),
        over,
    )
}

fn digest(action: &str, rtype: &str, rid: &str, params: Value) -> String {
    let canonical = json!({
        "action": action,
        "resource": { "type": rtype, "id": rid },
        "params": params,
    });
    b64(&Sha256::digest(
        serde_json_canonicalizer::to_vec(&canonical).expect("jcs"),
    ))
}

struct Vector {
    name: &'static str,
    description: &'static str,
    bundle: &'static str,
    keys: Vec<(&'static str, &'static str)>,
    request: Value,
    verdict: Value,
    reasons: Vec<&'static str>,
}

fn http(method: &str, path: &str, token: Option<&str>, params: Option<Value>) -> Value {
    http_q(method, path, "", token, params)
}

fn http_q(
    method: &str,
    path: &str,
    query: &str,
    token: Option<&str>,
    params: Option<Value>,
) -> Value {
    let headers: Vec<Value> = token
        .map(|t| vec![json!(["authorization", format!("Bearer {t}")])])
        .unwrap_or_default();
    json!({ "http": {
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "params": params.map(|p| if p.is_string() { p } else { Value::String(p.to_string()) }),
    }})
}

/// The principal a verified token with these claims names, by the rules of
/// README "How a decision is made": `sub`; `client_id`, else `azp`; the
/// `scope` string split on spaces; the `groups` and `roles` arrays; the
/// `tenant` string; `iss`. Both bundles use the default claim names and
/// the entity type `User`.
fn principal(claims: &Value) -> Value {
    let list = |name: &str| claims.get(name).cloned().unwrap_or_else(|| json!([]));
    let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("");
    let client = claims
        .get("client_id")
        .or_else(|| claims.get("azp"))
        .and_then(Value::as_str)
        .unwrap_or("");
    json!({
        "entity_type": "User",
        "subject": text("sub"),
        "client_id": client,
        "scopes": text("scope").split_whitespace().collect::<Vec<_>>(),
        "groups": list("groups"),
        "roles": list("roles"),
        "tenant": text("tenant"),
        "issuer": text("iss"),
    })
}

/// One action as a decision names it, with its digest.
fn action(name: &str, rtype: &str, rid: &str, params: Value) -> Value {
    json!({
        "name": name,
        "resource_type": rtype,
        "resource_id": rid,
        "params": params.clone(),
        "digest": digest(name, rtype, rid, params),
    })
}

fn allow(who: Value, act: Value, consume: Value, approval: Option<&str>) -> Value {
    let mut headers = vec![
        json!(["x-greenlight-subject", who["subject"]]),
        json!(["x-greenlight-action", act["name"]]),
    ];
    if let Some(a) = approval {
        headers.push(json!(["x-greenlight-approval", a]));
    }
    json!({ "kind": "allow", "principal": who, "action": act, "approval_id": approval,
            "consume": consume, "forward_headers": headers })
}

fn deny(code: &str, message: &str) -> Value {
    json!({ "kind": "deny", "code": code, "message": message })
}

fn challenge(location: &str, who: Value, act: Value, obligation: Value) -> Value {
    json!({
        "kind": "approval-required",
        "requester": who,
        "authorization_details": [{
            "type": "urn:greenlight:action",
            "locations": [location],
            "actions": [act["name"]],
            "identifier": format!("{}::{}", act["resource_type"].as_str().unwrap_or(""),
                                  act["resource_id"].as_str().unwrap_or("")),
            "resource": { "type": act["resource_type"], "id": act["resource_id"] },
            "params": act["params"],
            "action_digest": act["digest"],
        }],
        "action": act,
        "obligation": obligation,
    })
}

fn refund_obligation() -> Value {
    json!({
        "approvers": ["group:finance"], "quorum": 2, "ttl_seconds": 900, "grant": "once",
        "window_seconds": 0, "reason_required": true,
        "message": "Refund above 100: two finance approvals needed",
    })
}

fn write_key_sets() -> (Signer, Signer, Signer, Signer, Signer, Signer) {
    let dir = root().join("tests/bundles/tokens");
    let ed = Signer::ed("tests/keys/ed.pem", "ed-1");
    let ec256 = Signer::ec("tests/keys/p256.pem", Algorithm::ES256, "ec256-1");
    let ec384 = Signer::ec("tests/keys/p384.pem", Algorithm::ES384, "ec384-1");
    let rsa = Signer::rsa(Algorithm::RS256, "rsa-1");
    let gl = Signer::ed("tests/keys/greenlight.pem", "gl-1");
    let hs = Signer {
        key: EncodingKey::from_secret(b"greenlight-conformance-shared-secret-32b"),
        alg: Algorithm::HS256,
        kid: Some("hs-1"),
    };
    let write = |name: &str, keys: Vec<Value>| {
        let text = serde_json::to_string_pretty(&json!({ "keys": keys })).expect("json") + "\n";
        std::fs::write(dir.join(name), text).expect("write jwks");
    };
    write("ed.jwks.json", vec![ed.jwk(Some(Algorithm::EdDSA))]);
    write(
        "ec.jwks.json",
        vec![
            ec256.jwk(Some(Algorithm::ES256)),
            ec384.jwk(Some(Algorithm::ES384)),
        ],
    );
    // rsa-1 carries no `alg`, so it serves every RSA algorithm the issuer
    // allows; rsa-bound is the same key bound to RS256 only.
    let mut bound = rsa.jwk(Some(Algorithm::RS256));
    bound["kid"] = json!("rsa-bound");
    write("rsa.jwks.json", vec![rsa.jwk(None), bound]);
    write(
        "hs.jwks.json",
        vec![json!({ "kty": "oct", "kid": "hs-1", "alg": "HS256",
                     "k": b64(b"greenlight-conformance-shared-secret-32b") })],
    );
    write("greenlight.jwks.json", vec![gl.jwk(Some(Algorithm::EdDSA))]);
    (ed, ec256, ec384, rsa, gl, hs)
}

fn main() {
    let (ed, ec256, ec384, rsa, gl, hs) = write_key_sets();
    let idp = Signer::ed("examples/bundle/dev/idp-dev.key.pem", "idp-dev-1");
    let attacker = Signer::ed("tests/keys/attacker.pem", "idp-dev-1");
    let token = demo_claims(json!({}));
    let good = idp.sign("at+jwt", &token);
    let alice = principal(&token);
    let refund = |amount: i64| json!({ "amount": amount, "currency": "EUR" });
    const DEMO: &str = "examples/bundle";
    const TOK: &str = "tests/bundles/tokens";
    let api = "https://api.example.com";
    let mut v: Vec<Vector> = Vec::new();
    let mut extra: Vec<Vector> = Vec::new();
    let mut add = |name, description, bundle, request, verdict, reasons: Vec<&'static str>| {
        v.push(Vector {
            name,
            description,
            bundle,
            keys: Vec::new(),
            request,
            verdict,
            reasons,
        });
    };

    // ---- the demo bundle's verdicts -------------------------------------
    add(
        "demo-refund-50-allowed",
        "a refund of 50 is within the client's own scope",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(50)),
        ),
        allow(
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(50)),
            Value::Null,
            None,
        ),
        vec!["refund-small"],
    );
    add(
        "demo-refund-500-needs-finance",
        "a refund of 500 needs two finance approvals, once",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(500)),
        ),
        challenge(
            api,
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(500)),
            refund_obligation(),
        ),
        vec!["refund-large"],
    );
    add(
        "demo-refund-over-limit-forbidden",
        "a refund above 10000 is forbidden even with approval",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(20000)),
        ),
        deny(
            "policy-forbidden",
            "`payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`",
        ),
        vec!["refund-limit"],
    );
    add(
        "demo-refund-negative-forbidden",
        "a negative refund is forbidden",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(-5)),
        ),
        deny(
            "policy-forbidden",
            "`payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`",
        ),
        vec!["refund-limit"],
    );
    let no_scope = idp.sign("at+jwt", &demo_claims(json!({ "scope": "payments:read" })));
    add(
        "demo-refund-without-scope-no-permit",
        "without payments:refund no policy permits a refund",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&no_scope),
            Some(refund(50)),
        ),
        deny(
            "policy-no-permit",
            "no policy permits `payment.refund` on `Payment::pay_123`",
        ),
        vec![],
    );
    add(
        "demo-refund-amount-string-invalid",
        "an amount sent as a string is refused, not coerced",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!({ "amount": "500", "currency": "EUR" })),
        ),
        deny(
            "request-invalid",
            "parameter `amount` must be an integer, got `\"500\"`",
        ),
        vec![],
    );
    add(
        "demo-refund-missing-currency-invalid",
        "a required parameter that is absent is refused",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!({ "amount": 50 })),
        ),
        deny("request-invalid", "parameter `currency` is required"),
        vec![],
    );
    add(
        "demo-refund-params-not-object-invalid",
        "request parameters must be a JSON object",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!("[1,2]")),
        ),
        deny(
            "request-invalid",
            "the request parameters must be a JSON object",
        ),
        vec![],
    );
    add(
        "demo-refund-params-not-json-invalid",
        "request parameters that are not JSON are refused",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!("{\"amount\": 5")),
        ),
        deny(
            "request-invalid",
            "the request parameters are not valid JSON: EOF while parsing an object at line 1 column 12",
        ),
        vec![],
    );
    add(
        "demo-payment-read-allowed",
        "reading a payment needs only payments:read",
        DEMO,
        http("GET", "/payments/pay_123", Some(&good), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_123", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );
    add(
        "demo-unknown-route-denied",
        "a path no route matches is denied (fail closed)",
        DEMO,
        http("GET", "/admin/users", Some(&good), None),
        deny("route-not-found", "no route for `GET /admin/users`"),
        vec![],
    );
    add(
        "demo-wrong-method-denied",
        "a known path with another method matches no route",
        DEMO,
        http("DELETE", "/payments/pay_123", Some(&good), None),
        deny("route-not-found", "no route for `DELETE /payments/pay_123`"),
        vec![],
    );
    add(
        "demo-file-write-needs-user-confirmation",
        "writing the user's own file needs that user's confirmation, for a window",
        DEMO,
        http(
            "PUT",
            "/users/alice/files/report.txt/content",
            Some(&good),
            None,
        ),
        challenge(
            api,
            alice.clone(),
            action(
                "file.write",
                "File",
                "report.txt",
                json!({ "owner": "alice" }),
            ),
            json!({
            "approvers": ["subject"], "quorum": 1, "ttl_seconds": 300, "grant": "window",
            "window_seconds": 300, "reason_required": false,
            "message": "Allow this app to write the file you selected?" }),
        ),
        vec!["file-write-confirm"],
    );
    add(
        "demo-file-write-other-user-forbidden",
        "a client may not write another user's file",
        DEMO,
        http(
            "PUT",
            "/users/mallory/files/report.txt/content",
            Some(&good),
            None,
        ),
        deny(
            "policy-forbidden",
            "`file.write` on `File::report.txt` is forbidden by policy `file-owner-only`",
        ),
        vec!["file-owner-only"],
    );
    let admin_claims = demo_claims(
        json!({ "sub": "dana", "roles": ["tenant-admin"], "tenant": "acme", "scope": null }),
    );
    let admin = idp.sign("at+jwt", &admin_claims);
    add(
        "demo-tenant-delete-needs-owner",
        "a tenant admin deleting a user's data needs the tenant owner",
        DEMO,
        http(
            "DELETE",
            "/tenants/acme/users/u-42/data",
            Some(&admin),
            None,
        ),
        challenge(
            api,
            principal(&admin_claims),
            action(
                "user-data.delete",
                "TenantUser",
                "acme/u-42",
                json!({ "tenant": "acme" }),
            ),
            json!({
            "approvers": ["group:tenant-owner@tenant"], "quorum": 1, "ttl_seconds": 3600, "grant": "once",
            "window_seconds": 0, "reason_required": true,
            "message": "A tenant admin asks to delete a user's data" }),
        ),
        vec!["tenant-data-delete"],
    );
    add(
        "demo-tenant-delete-cross-tenant-forbidden",
        "an admin of one tenant cannot touch another tenant",
        DEMO,
        http(
            "DELETE",
            "/tenants/globex/users/u-42/data",
            Some(&admin),
            None,
        ),
        deny(
            "policy-forbidden",
            "`user-data.delete` on `TenantUser::globex/u-42` is forbidden by policy `tenant-isolation`",
        ),
        vec!["tenant-isolation"],
    );
    let member = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "sub": "erin", "tenant": "acme", "scope": null })),
    );
    add(
        "demo-tenant-delete-non-admin-no-permit",
        "a tenant member without the admin role gets no permit",
        DEMO,
        http(
            "DELETE",
            "/tenants/acme/users/u-42/data",
            Some(&member),
            None,
        ),
        deny(
            "policy-no-permit",
            "no policy permits `user-data.delete` on `TenantUser::acme/u-42`",
        ),
        vec![],
    );
    add(
        "demo-percent-encoded-path",
        "path parameters are percent-decoded before they name the resource",
        DEMO,
        http("GET", "/payments/pay%5F9", Some(&good), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_9", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );

    // ---- access-token failure classes ------------------------------------
    add(
        "token-missing",
        "a request without a bearer token is denied",
        DEMO,
        http("GET", "/payments/pay_123", None, None),
        deny("token-missing", "no bearer token was presented"),
        vec![],
    );
    let mut basic = http("GET", "/payments/pay_123", None, None);
    basic["http"]["headers"] = json!([["Authorization", "Basic YWxpY2U6c2VjcmV0"]]);
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
        "token-bad-signature",
        "a token whose payload was changed after signing is denied",
        DEMO,
        http("GET", "/payments/pay_123", Some(&tampered), None),
        deny("token-bad-signature", "the signature does not verify"),
        vec![],
    );
    let kid = idp.sign_with(json!({ "typ": "at+jwt", "kid": "rotated-away" }), &token);
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
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
    add(
        "token-embedded-jwk-ignored",
        "keys in jwk/jku headers are never trusted: the configured key is used and the forgery fails",
        DEMO,
        http("GET", "/payments/pay_123", Some(&embedded), None),
        deny("token-bad-signature", "the signature does not verify"),
        vec![],
    );

    // ---- key families and key binding (tokens bundle) --------------------
    let read = |t: &str| http("GET", "/things/t-1", Some(t), None);
    let ok = |iss: &str| {
        allow(
            principal(&test_claims(iss, json!({}))),
            action("thing.read", "Thing", "t-1", json!({})),
            Value::Null,
            None,
        )
    };
    add(
        "keys-eddsa-allowed",
        "EdDSA (Ed25519) with at+jwt",
        TOK,
        read(&ed.sign("at+jwt", &test_claims("https://ed.example", json!({})))),
        ok("https://ed.example"),
        vec!["thing-read"],
    );
    add(
        "keys-es256-allowed",
        "ES256 with a P-256 key",
        TOK,
        read(&ec256.sign("JWT", &test_claims("https://ec.example", json!({})))),
        ok("https://ec.example"),
        vec!["thing-read"],
    );
    add(
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
        add(
            name,
            desc,
            TOK,
            read(&s.sign("JWT", &test_claims("https://rsa.example", json!({})))),
            ok("https://rsa.example"),
            vec!["thing-read"],
        );
    }
    add(
        "keys-hs256-shared-secret",
        "HS256 works where the bundle configures a shared secret",
        TOK,
        read(&hs.sign("JWT", &test_claims("https://hs.example", json!({})))),
        ok("https://hs.example"),
        vec!["thing-read"],
    );
    let ps_on_bound = Signer::rsa(Algorithm::PS256, "rsa-bound")
        .sign("JWT", &test_claims("https://rsa.example", json!({})));
    add(
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
    add(
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
    add(
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
    add(
        "keys-not-fetched-yet",
        "an issuer whose jwks_uri the host has not fetched has no keys: deny",
        TOK,
        read(&ed.sign("at+jwt", &test_claims("https://uri.example", json!({})))),
        deny(
            "token-unknown-key",
            "no keys are loaded for issuer `https://uri.example`",
        ),
        vec![],
    );

    extra.push(Vector {
        name: "keys-set-by-host",
        description: "once the host supplies the jwks_uri issuer's keys (set-keys), its tokens verify",
        bundle: TOK,
        keys: vec![("https://uri.example", "tests/bundles/tokens/ed.jwks.json")],
        request: read(&ed.sign("at+jwt", &test_claims("https://uri.example", json!({})))),
        verdict: ok("https://uri.example"),
        reasons: vec!["thing-read"],
    });

    // ---- action tokens -----------------------------------------------------
    let del_digest = digest("thing.delete", "Thing", "t-1", json!({}));
    let action_claims = |over: Value| {
        merge(
            json!({
                "iss": "https://greenlight.test", "aud": "https://api.test", "sub": "bob",
                "client_id": "cli", "iat": NOW - 10, "exp": NOW + 120, "jti": "at-1",
                "scope": "things:write", "act_digest": del_digest, "grant": "once",
                "approval_id": "apr-1",
            }),
            over,
        )
    };
    let del = |t: &str| http("POST", "/things/t-1/delete", Some(t), None);
    let access_claims = test_claims("https://ed.example", json!({}));
    let access = ed.sign("at+jwt", &access_claims);
    add(
        "action-required-for-delete",
        "deleting a thing needs an admin's approval",
        TOK,
        del(&access),
        challenge(
            "https://api.test",
            principal(&access_claims),
            action("thing.delete", "Thing", "t-1", json!({})),
            json!({
            "approvers": ["group:admins"], "quorum": 1, "ttl_seconds": 900, "grant": "once",
            "window_seconds": 0, "reason_required": false, "message": "" }),
        ),
        vec!["thing-delete"],
    );
    let once = gl.sign("at+jwt", &action_claims(json!({})));
    add(
        "action-once-allowed-with-consume",
        "a valid once action token allows and tells the host to consume its jti",
        TOK,
        del(&once),
        allow(
            principal(&action_claims(json!({}))),
            action("thing.delete", "Thing", "t-1", json!({})),
            json!({ "token_id": "at-1", "expires_at": NOW + 120 }),
            Some("apr-1"),
        ),
        vec!["thing-delete"],
    );
    add(
        "action-token-other-resource",
        "an action token used for another resource does not match its digest",
        TOK,
        http("POST", "/things/t-2/delete", Some(&once), None),
        deny(
            "action-token-digest-mismatch",
            "the action token was issued for another action than `thing.delete` on `Thing::t-2`",
        ),
        vec![],
    );
    add(
        "action-token-other-params",
        "an action token used with other parameters does not match its digest",
        TOK,
        http_q(
            "POST",
            "/things/t-1/delete",
            "reason=cleanup",
            Some(&once),
            None,
        ),
        deny(
            "action-token-digest-mismatch",
            "the action token was issued for another action than `thing.delete` on `Thing::t-1`",
        ),
        vec![],
    );
    let old = gl.sign(
        "at+jwt",
        &action_claims(json!({ "iat": NOW - 900, "exp": NOW - 300 })),
    );
    add(
        "action-token-expired",
        "an expired action token is denied",
        TOK,
        del(&old),
        deny(
            "token-expired",
            &format!("the action token expired at {}", NOW - 300),
        ),
        vec![],
    );
    let foreign = gl.sign(
        "at+jwt",
        &action_claims(json!({ "iss": "https://greenlight.evil" })),
    );
    add(
        "action-token-wrong-issuer",
        "an action token from another Greenlight is not trusted",
        TOK,
        del(&foreign),
        deny(
            "token-unknown-issuer",
            "issuer `https://greenlight.evil` is not trusted",
        ),
        vec![],
    );
    let forged = attacker.sign_with(
        json!({ "typ": "at+jwt", "kid": "gl-1" }),
        &action_claims(json!({})),
    );
    add(
        "action-token-forged",
        "an action token signed by another key is denied",
        TOK,
        del(&forged),
        deny("token-bad-signature", "the signature does not verify"),
        vec![],
    );
    let no_digest = gl.sign("at+jwt", &action_claims(json!({ "act_digest": null })));
    add(
        "action-token-without-digest",
        "an action token without act_digest is invalid",
        TOK,
        del(&no_digest),
        deny("action-token-invalid", "action tokens carry `act_digest`"),
        vec![],
    );
    let share_params = json!({ "with": "carol" });
    let share_digest = digest("thing.share", "Thing", "t-1", share_params.clone());
    add(
        "action-window-required",
        "sharing needs the owner's approval, granted for a window",
        TOK,
        http(
            "POST",
            "/things/t-1/share",
            Some(&access),
            Some(share_params.clone()),
        ),
        challenge(
            "https://api.test",
            principal(&access_claims),
            action("thing.share", "Thing", "t-1", share_params.clone()),
            json!({
            "approvers": ["user:owner"], "quorum": 1, "ttl_seconds": 900, "grant": "window",
            "window_seconds": 600, "reason_required": false, "message": "" }),
        ),
        vec!["thing-share"],
    );
    let window = gl.sign(
        "at+jwt",
        &action_claims(json!({ "act_digest": share_digest, "grant": "window", "jti": "at-2" })),
    );
    add(
        "action-window-allowed-without-consume",
        "a window action token allows without consuming",
        TOK,
        http(
            "POST",
            "/things/t-1/share",
            Some(&window),
            Some(share_params.clone()),
        ),
        allow(
            principal(&action_claims(json!({}))),
            action("thing.share", "Thing", "t-1", share_params.clone()),
            Value::Null,
            Some("apr-1"),
        ),
        vec!["thing-share"],
    );

    // ---- AuthZEN-shaped requests ---------------------------------------------
    let access_req = |amount: i64| {
        json!({ "access": {
            "token": good, "action": "payment.refund", "resource_type": "Payment",
            "resource_id": "pay_123", "resource_properties": null,
            "context": refund(amount).to_string(),
        }})
    };
    add(
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
    add(
        "authzen-refund-500-needs-finance",
        "the AuthZEN shape gives the same challenge as the HTTP route",
        DEMO,
        access_req(500),
        challenge(
            api,
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(500)),
            refund_obligation(),
        ),
        vec!["refund-large"],
    );
    add(
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
    add(
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
    add(
        "vouched-refund-500-needs-finance",
        "a vouched subject gets the same challenge",
        DEMO,
        vouched(json!(["payments:refund"]), "", 500),
        challenge(
            api,
            vouched_who.clone(),
            action("payment.refund", "Payment", "pay_123", refund(500)),
            refund_obligation(),
        ),
        vec!["refund-large"],
    );
    add(
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
    add(
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

    // ---- write ----------------------------------------------------------------
    v.extend(extra);
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
