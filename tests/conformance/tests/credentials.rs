//! Who a token names, and whether it may vote, decided alike natively and
//! in the component: groups count only from an issuer authoritative for
//! them; a token is meant for approving only when its own issuer says so
//! (one of its approver clients, or its approval scope); `auth_time` is
//! read as a NumericDate.

use std::path::{Path, PathBuf};

use greenlight_types::{Credential, DenialCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
const NOW: u64 = 1_767_225_600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tokens bundle, with `ed.example` naming an approver client and
/// `ec.example` an approval scope and the one group it may assert.
fn files() -> Vec<(String, String)> {
    let mut files =
        greenlight_host::read_bundle_dir(&root().join("tests/bundles/tokens")).expect("bundle");
    for (name, text) in &mut files {
        if name == "greenlight.toml" {
            *text = text
                .replace(
                    "jwks = \"ed.jwks.json\"\n",
                    "jwks = \"ed.jwks.json\"\napprover_clients = [\"approvals\"]\n",
                )
                .replace(
                    "jwks = \"ec.jwks.json\"\n",
                    "jwks = \"ec.jwks.json\"\napproval_scope = \"greenlight:approve\"\ngroups = [\"admins\"]\n",
                );
        }
    }
    files
}

fn sign(key: &str, alg: Algorithm, kid: &str, typ: &str, claims: &Value) -> String {
    let pem = std::fs::read(root().join(key)).expect("key");
    let key = match alg {
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("a key");
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    header.typ = Some(typ.to_owned());
    jsonwebtoken::encode(&header, claims, &key).expect("signs")
}

fn claims(iss: &str, over: Value) -> Value {
    let mut c = json!({ "iss": iss, "aud": "https://api.test", "sub": "bob",
                        "iat": NOW - 60, "exp": NOW + 600 });
    for (k, v) in over.as_object().cloned().unwrap_or_default() {
        c[k] = v;
    }
    c
}

fn ed(over: Value) -> String {
    sign(
        "tests/keys/ed.pem",
        Algorithm::EdDSA,
        "ed-1",
        "at+jwt",
        &claims("https://ed.example", over),
    )
}

fn ec(over: Value) -> String {
    sign(
        "tests/keys/p256.pem",
        Algorithm::ES256,
        "ec256-1",
        "JWT",
        &claims("https://ec.example", over),
    )
}

fn rsa(over: Value) -> String {
    sign(
        "tests/keys/rsa2048.pem",
        Algorithm::RS256,
        "rsa-1",
        "JWT",
        &claims("https://rsa.example", over),
    )
}

/// The bundle natively and in the component.
fn engines() -> (greenlight_core::Engine, greenlight_host::Policy) {
    let native = greenlight_core::Engine::load(&files()).expect("native bundle");
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("credentials-cwasm");
    let engine = greenlight_host::Engine::with_options(
        greenlight_component::GREENLIGHT_WASM,
        greenlight_host::Limits::default(),
        Some(&cache),
    )
    .expect("component");
    let policy = engine
        .load_bundle(files())
        .expect("bundle in the component");
    (native, policy)
}

/// The credential natively and in the component, which must agree.
fn authenticate(token: &str) -> Result<Credential, greenlight_types::Denial> {
    let (native, policy) = engines();
    let a = native.authenticate(token, NOW);
    let b = policy.authenticate(token, NOW);
    assert_eq!(a, b, "the engines disagree");
    a
}

#[test]
fn only_a_token_its_own_issuer_marks_for_approving_may_vote() {
    let approver = |t: &str| authenticate(t).expect("verifies").approver;
    // ed.example: its client `approvals` only.
    assert!(approver(&ed(json!({ "client_id": "approvals" }))));
    assert!(!approver(&ed(json!({ "client_id": "shop" }))));
    assert!(!approver(&ed(json!({ "scope": "greenlight:approve" }))));
    // ec.example: its approval scope only; a client of the same name as
    // ed.example's approver client is another issuer's client.
    assert!(approver(&ec(
        json!({ "scope": "openid greenlight:approve" })
    )));
    assert!(!approver(&ec(json!({ "client_id": "approvals" }))));
    // rsa.example names neither: the scope another issuer uses means
    // nothing in its tokens.
    assert!(!approver(&rsa(
        json!({ "scope": "greenlight:approve", "client_id": "approvals" })
    )));
}

#[test]
fn groups_count_only_from_an_issuer_authoritative_for_them() {
    let groups = |t: &str| authenticate(t).expect("verifies").principal.groups;
    let claimed = json!({ "groups": ["admins", "root"] });
    assert_eq!(
        groups(&ed(claimed.clone())),
        ["admins", "root"],
        "the first issuer: any"
    );
    assert_eq!(
        groups(&ec(claimed.clone())),
        ["admins"],
        "only the listed group"
    );
    assert_eq!(
        groups(&rsa(claimed)),
        Vec::<String>::new(),
        "another issuer: none"
    );
}

#[test]
fn auth_time_is_read_as_a_numeric_date() {
    let c = authenticate(&ed(json!({ "auth_time": NOW - 30 }))).expect("verifies");
    assert_eq!((c.auth_time, c.expires_at), (Some(NOW - 30), NOW + 600));
    assert_eq!(
        authenticate(&ed(json!({}))).expect("verifies").auth_time,
        None
    );
    assert_eq!(
        authenticate(&ed(json!({ "auth_time": "recently" }))),
        Err(greenlight_types::Denial::new(
            DenialCode::TokenMissingClaim,
            "claim `auth_time` is missing or not of the right type"
        ))
    );
}

/// The credential an ID token gives the relying party `portal` that sent
/// the nonce `n-1`, natively and in the component, which must agree.
fn sign_in(token: &str, nonce: &str) -> Result<Credential, greenlight_types::Denial> {
    let (native, policy) = engines();
    let a = native.authenticate_id_token(token, "portal", nonce, NOW);
    let b = policy.authenticate_id_token(token, "portal", nonce, NOW);
    assert_eq!(a, b, "the engines disagree");
    a
}

/// An ID token of `ed.example` for the relying party `portal`.
fn id_token(typ: &str, over: Value) -> String {
    let mut c = claims(
        "https://ed.example",
        json!({ "aud": "portal", "nonce": "n-1", "auth_time": NOW - 20 }),
    );
    for (k, v) in over.as_object().cloned().unwrap_or_default() {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(&k);
        } else {
            c[k] = v;
        }
    }
    sign("tests/keys/ed.pem", Algorithm::EdDSA, "ed-1", typ, &c)
}

fn refused(code: DenialCode, message: &str) -> Result<Credential, greenlight_types::Denial> {
    Err(greenlight_types::Denial::new(code, message))
}

#[test]
fn an_id_token_signs_its_person_in_to_the_relying_party() {
    let c = sign_in(
        &id_token("JWT", json!({ "groups": ["admins"], "tenant": "acme" })),
        "n-1",
    )
    .expect("signs in");
    assert_eq!(
        (
            c.principal.issuer.as_str(),
            c.principal.subject.as_str(),
            c.principal.client_id.as_str()
        ),
        ("https://ed.example", "bob", "portal")
    );
    assert_eq!(c.principal.groups, ["admins"]);
    assert_eq!(c.principal.tenant, "acme");
    assert_eq!(
        (c.auth_time, c.expires_at, c.approver),
        (Some(NOW - 20), NOW + 600, true),
        "a sign-in is the person's own act"
    );
    // Several audiences: `azp` must name the relying party.
    let c = sign_in(
        &id_token(
            "JWT",
            json!({ "aud": ["portal", "other"], "azp": "portal" }),
        ),
        "n-1",
    )
    .expect("signs in");
    assert_eq!(c.principal.client_id, "portal");
    // A header without `typ` is an ID token too.
    let claims = claims(
        "https://ed.example",
        json!({ "aud": "portal", "nonce": "n-1" }),
    );
    let pem = std::fs::read(root().join("tests/keys/ed.pem")).expect("key");
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("ed-1".to_owned());
    header.typ = None;
    let untyped = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_pem(&pem).expect("key"),
    )
    .expect("signs");
    assert_eq!(sign_in(&untyped, "n-1").expect("signs in").auth_time, None);
}

#[test]
fn groups_in_an_id_token_count_only_from_an_authoritative_issuer() {
    let token = sign(
        "tests/keys/p256.pem",
        Algorithm::ES256,
        "ec256-1",
        "JWT",
        &claims(
            "https://ec.example",
            json!({ "aud": "portal", "nonce": "n-1", "groups": ["admins", "finance"] }),
        ),
    );
    assert_eq!(
        sign_in(&token, "n-1").expect("signs in").principal.groups,
        ["admins"]
    );
}

#[test]
fn what_is_not_this_sign_in_s_id_token_is_refused() {
    // An access token is not an ID token, whatever its audience.
    assert_eq!(
        sign_in(&id_token("at+jwt", json!({})), "n-1"),
        refused(
            DenialCode::TokenWrongType,
            "an access token (`typ` `at+jwt`) is not an ID token"
        )
    );
    assert_eq!(
        sign_in(&id_token("application/AT+JWT", json!({})), "n-1"),
        refused(
            DenialCode::TokenWrongType,
            "an access token (`typ` `at+jwt`) is not an ID token"
        )
    );
    // Another relying party's ID token, or the API's access token.
    assert_eq!(
        sign_in(
            &id_token("JWT", json!({ "aud": "https://api.test" })),
            "n-1"
        ),
        refused(
            DenialCode::TokenWrongAudience,
            "the ID token's audience does not include `portal`"
        )
    );
    assert_eq!(
        sign_in(
            &id_token("JWT", json!({ "aud": ["other", "portal"], "azp": "other" })),
            "n-1"
        ),
        refused(
            DenialCode::TokenWrongAudience,
            "the ID token was issued to `other` (`azp`), not `portal`"
        )
    );
    assert_eq!(
        sign_in(
            &id_token("JWT", json!({ "aud": ["other", "portal"] })),
            "n-1"
        ),
        refused(
            DenialCode::TokenMissingClaim,
            "claim `azp` is missing or not of the right type"
        )
    );
    // Another sign-in's token (a replayed or injected one).
    assert_eq!(
        sign_in(&id_token("JWT", json!({})), "n-2"),
        refused(
            DenialCode::TokenInvalidClaim,
            "the ID token's `nonce` is not the one sent with this sign-in"
        )
    );
    assert_eq!(
        sign_in(&id_token("JWT", json!({ "nonce": null })), "n-1"),
        refused(
            DenialCode::TokenMissingClaim,
            "claim `nonce` is missing or not of the right type"
        )
    );
    assert_eq!(
        sign_in(&id_token("JWT", json!({ "iat": null })), "n-1"),
        refused(
            DenialCode::TokenMissingClaim,
            "claim `iat` is missing or not of the right type"
        )
    );
    assert_eq!(
        sign_in(&id_token("JWT", json!({ "exp": NOW - 3600 })), "n-1"),
        refused(
            DenialCode::TokenExpired,
            &format!("the token expired at {}", NOW - 3600)
        )
    );
    assert_eq!(
        sign_in(
            &id_token("JWT", json!({ "iss": "https://evil.example" })),
            "n-1"
        ),
        refused(
            DenialCode::TokenUnknownIssuer,
            "issuer `https://evil.example` is not trusted"
        )
    );
    assert_eq!(
        sign_in(&id_token("JWT", json!({})), ""),
        refused(
            DenialCode::RequestInvalid,
            "an ID token is checked for a relying party's `client_id` and `nonce`; both must be given"
        )
    );
}
