//! The host with the real `greenlight.wasm`: artifact cache, concurrency,
//! bundle errors and key updates behave as the native core does.

use std::path::Path;

use greenlight_core::call::Call;
use greenlight_core::{DenialCode, HttpRequest, LoadError, Verdict};
use greenlight_types::bundle::{KeyFetchSettings, KeySource};

use greenlight_host::{Engine, HostError, Limits};

fn demo_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bundle");
    greenlight_host::read_bundle_dir(&dir).expect("demo bundle")
}

/// The artifacts in `dir` (each has its digest beside it).
fn cwasm_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|r| {
            r.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// An engine whose compiled artifact is shared by the tests of this file.
fn engine() -> Engine {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("host-tests-cwasm");
    Engine::with_options(
        greenlight_component::GREENLIGHT_WASM,
        Limits::default(),
        Some(&cache),
    )
    .expect("compiles")
}

fn unknown_route() -> HttpRequest {
    HttpRequest {
        method: "GET".into(),
        path: "/nowhere".into(),
        headers: vec![("authorization".into(), "Bearer a.b.c".into())],
        ..HttpRequest::default()
    }
}

/// The first load compiles and writes one artifact; the second maps it and
/// writes nothing; a corrupted artifact is ignored and replaced.
#[test]
fn the_compiled_artifact_is_cached_reused_and_replaced_when_corrupt() {
    let cache = tempfile::tempdir().expect("tempdir");
    let wasm = greenlight_component::GREENLIGHT_WASM;
    let first =
        Engine::with_options(wasm, Limits::default(), Some(cache.path())).expect("compiles");
    let files = cwasm_files(cache.path());
    assert_eq!(files.len(), 1, "one artifact: {files:?}");
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.ends_with(".cwasm") && name.len() == 64 + 1 + 16 + 6,
        "{name}"
    );
    let written = std::fs::metadata(&files[0])
        .expect("meta")
        .modified()
        .expect("mtime");

    let second = Engine::with_options(wasm, Limits::default(), Some(cache.path())).expect("maps");
    assert_eq!(cwasm_files(cache.path()), files);
    assert_eq!(
        std::fs::metadata(&files[0])
            .expect("meta")
            .modified()
            .expect("mtime"),
        written
    );
    let a = first
        .load_bundle(demo_files())
        .expect("bundle")
        .evaluate_http(&unknown_route(), 0);
    let b = second
        .load_bundle(demo_files())
        .expect("bundle")
        .evaluate_http(&unknown_route(), 0);
    assert_eq!(a, b);

    // Replace the file the way the host does (a rename), never in place: the
    // first two engines still have the old one memory-mapped.
    let tmp = cache.path().join("corrupt.tmp");
    std::fs::write(&tmp, b"not an artifact").expect("write");
    std::fs::rename(&tmp, &files[0]).expect("corrupt it");
    let third =
        Engine::with_options(wasm, Limits::default(), Some(cache.path())).expect("recompiles");
    assert_eq!(
        third
            .load_bundle(demo_files())
            .expect("bundle")
            .evaluate_http(&unknown_route(), 0),
        a
    );
    assert_ne!(
        std::fs::read(&files[0]).expect("read"),
        b"not an artifact",
        "replaced"
    );
}

/// Threads share one policy; every answer is the same.
#[test]
fn a_policy_serves_concurrent_callers_with_the_same_answer() {
    let engine = engine();
    let policy = engine.load_bundle(demo_files()).expect("bundle");
    let expected = policy.evaluate_http(&unknown_route(), 0);
    assert_eq!(
        expected.verdict,
        Verdict::Deny(greenlight_core::Denial {
            code: DenialCode::TokenMalformed,
            message: "the header is not base64url".into(),
            issuer: None,
        })
    );
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(policy.evaluate_http(&unknown_route(), 0), expected);
                }
            });
        }
    });
}

/// A bad bundle is refused through the component with exactly the problems
/// the native core reports.
#[test]
fn a_bad_bundle_is_refused_with_the_same_problems_as_natively() {
    let engine = engine();
    let mut files = demo_files();
    for (name, contents) in &mut files {
        if name == "policy.cedar" {
            contents.push_str(
                "\n@id(\"oops\") @approvers(\"nobody\") permit(principal, action, resource);\n",
            );
        }
    }
    let native = greenlight_core::Engine::load(&files).expect_err("refused natively");
    match engine.load_bundle(files) {
        Err(HostError::Bundle(wasm)) => assert_eq!(wasm, native),
        other => panic!("expected a bundle error, got {other:?}"),
    }
    match native {
        LoadError::InvalidBundle(p) => {
            assert_eq!(p.len(), 1);
            assert_eq!(
                p[0].message,
                "policy `oops`: approver `nobody` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// A refused key set changes nothing: the previous keys keep serving.
#[test]
fn a_refused_key_set_leaves_the_policy_serving() {
    let engine = engine();
    let policy = engine.load_bundle(demo_files()).expect("bundle");
    let before = policy.evaluate_http(&unknown_route(), 0);
    let err = policy
        .set_keys("https://idp.example.com", "{\"keys\": \"no\"}")
        .expect_err("refused");
    assert_eq!(
        err.to_string(),
        "the bundle has 1 problem(s): jwks of `https://idp.example.com`: a JWKS needs a `keys` array"
    );
    assert_eq!(policy.evaluate_http(&unknown_route(), 0), before);
}

/// The bearer token and time of one conformance vector.
fn vector_token(name: &str) -> (String, u64) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/vectors")
        .join(name);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("vector")).expect("json");
    let header = v["request"]["http"]["headers"][0][1]
        .as_str()
        .expect("authorization header");
    let token = header.strip_prefix("Bearer ").expect("bearer").to_owned();
    (token, v["now"].as_u64().expect("now"))
}

/// `authenticate` names the same credential as the native core (the
/// requesting app's token is not one meant for approving), refuses action
/// tokens, and denies malformed tokens with their code.
#[test]
fn authenticate_matches_the_core_and_refuses_action_tokens() {
    let policy = engine().load_bundle(demo_files()).expect("bundle");
    let native = greenlight_core::Engine::load(&demo_files()).expect("bundle");
    let (token, now) = vector_token("010-demo-payment-read-allowed.json");
    let credential = policy
        .authenticate(&token, now)
        .expect("a valid access token");
    assert_eq!(
        credential,
        native.authenticate(&token, now).expect("natively too")
    );
    assert_eq!(
        (
            credential.expires_at,
            credential.auth_time,
            credential.approver
        ),
        (now + 3600, None, false)
    );
    let principal = credential.principal;
    assert_eq!(principal.entity_type, "User");
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.client_id, "shop-backend");
    assert_eq!(
        principal.scopes,
        ["payments:read", "payments:refund", "files:write"]
    );
    assert_eq!(
        policy.authenticate(&token, now + 7200),
        Err(greenlight_core::Denial {
            code: DenialCode::TokenExpired,
            message: format!("the token expired at {}", now + 3600),
            issuer: None,
        })
    );
    assert_eq!(
        policy.authenticate("not-a-token", now).map_err(|d| d.code),
        Err(DenialCode::TokenMalformed)
    );

    let tokens = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles/tokens");
    let policy = engine()
        .load_bundle(greenlight_host::read_bundle_dir(&tokens).expect("bundle"))
        .expect("bundle");
    let (action_token, now) = vector_token("058-action-once-allowed-with-consume.json");
    assert_eq!(
        policy.authenticate(&action_token, now),
        Err(greenlight_core::Denial {
            code: DenialCode::ActionTokenInvalid,
            message: "an action token authorises one action; it does not authenticate a person"
                .into(),
            issuer: None,
        })
    );
}

fn tokens_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles/tokens");
    greenlight_host::read_bundle_dir(&dir).expect("tokens bundle")
}

/// `inspect` gives the claims enforcement checked, the same as the native
/// core; it refuses what enforcement refuses (an expired token, past the
/// leeway) with the same code, and refuses access tokens.
#[test]
fn inspect_gives_the_claims_enforcement_checked() {
    let policy = engine().load_bundle(tokens_files()).expect("bundle");
    let native = greenlight_core::Engine::load(&tokens_files()).expect("bundle");
    let (token, now) = vector_token("058-action-once-allowed-with-consume.json");
    let claims = policy.inspect(&token, now).expect("a valid action token");
    assert_eq!(claims, native.inspect(&token, now).expect("natively too"));
    assert_eq!(
        (
            claims.principal.subject.as_str(),
            claims.principal.client_id.as_str(),
            claims.principal.issuer.as_str(),
            claims.token_id.as_str(),
            claims.expires_at,
            claims.grant,
            claims.approval_id.as_deref(),
        ),
        (
            "bob",
            "cli",
            // The person's issuer, from `sub_id`: Greenlight only signed.
            "https://ed.example",
            "at-1",
            now + 120,
            greenlight_types::GrantMode::Once,
            Some("apr-1")
        )
    );
    // Within the leeway after `exp` both still accept; past it both refuse.
    assert!(policy.inspect(&token, now + 120 + 59).is_ok());
    let expired = greenlight_core::Denial::new(
        DenialCode::TokenExpired,
        format!("the action token expired at {}", now + 120),
    );
    assert_eq!(policy.inspect(&token, now + 120 + 60), Err(expired));
    let (access, now) = vector_token("043-keys-eddsa-allowed.json");
    assert_eq!(
        policy.inspect(&access, now),
        Err(greenlight_core::Denial::new(
            DenialCode::ActionTokenInvalid,
            "an access token is not an action token"
        ))
    );
}

/// `describe` tells a host what it would otherwise parse `greenlight.toml`
/// for, exactly as the native core reads the bundle.
#[test]
fn describe_names_what_the_bundle_configures() {
    let policy = engine().load_bundle(demo_files()).expect("bundle");
    let native = greenlight_core::Engine::load(&demo_files()).expect("bundle");
    let info = policy.info();
    assert_eq!(*info, native.describe());
    assert_eq!(info.policy_hash, policy.policy_hash());
    let settings = info.action_tokens.as_ref().expect("[action_tokens]");
    assert_eq!(
        (
            settings.issuer.as_str(),
            settings.audience.as_str(),
            settings.ttl_seconds,
            settings.leeway_seconds
        ),
        (
            "https://greenlight.example.com",
            "https://api.example.com",
            300,
            60
        )
    );
    assert_eq!(info.issuers.len(), 1);
    assert_eq!(info.issuers[0].issuer, "https://idp.example.com");
    assert_eq!(info.issuers[0].keys, KeySource::Bundle);
    assert_eq!(info.key_fetch, KeyFetchSettings::default());
    assert_eq!(info.approvals.poll_interval_seconds, 5);
    assert_eq!(info.claims.groups, "groups");
    assert!(info.development, "the demo bundle has a [dev] key");
    let tokens = engine().load_bundle(tokens_files()).expect("bundle");
    let uri = tokens
        .info()
        .issuers
        .iter()
        .find(|i| i.issuer == "https://uri.example")
        .expect("the jwks_uri issuer");
    assert_eq!(
        uri.keys,
        KeySource::JwksUri("https://uri.example/.well-known/jwks.json".to_owned())
    );
    assert!(!tokens.info().development);
}

/// Every token check is counted, and only a cache miss is a signature
/// verification: the same token twice is two checks, one verification.
#[test]
fn stats_count_token_checks_and_signature_verifications() {
    let policy = engine().load_bundle(demo_files()).expect("bundle");
    let (token, now) = vector_token("010-demo-payment-read-allowed.json");
    let before = policy.stats();
    let request = HttpRequest {
        method: "GET".into(),
        path: "/payments/pay_123".into(),
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        ..HttpRequest::default()
    };
    for _ in 0..2 {
        assert!(matches!(
            policy.evaluate_http(&request, now).verdict,
            Verdict::Allow(_)
        ));
    }
    let after = policy.stats();
    assert_eq!(after.token_checks - before.token_checks, 2);
    assert_eq!(after.signature_checks - before.signature_checks, 1);
    // A key change drops the instances; their counts are kept.
    let jwks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/bundle/idp.jwks.json"),
    )
    .expect("jwks");
    policy
        .set_keys("https://idp.example.com", &jwks)
        .expect("keys");
    assert_eq!(policy.stats(), after);
}

/// A denial for a key the fetched issuer lacks names the issuer (so a host
/// can fetch again), and a host that withdraws an issuer's keys has its
/// tokens denied saying why, in every instance, until it sets keys again.
#[test]
fn withdrawn_keys_deny_saying_why_and_name_the_issuer_to_refresh() {
    let policy = engine().load_bundle(tokens_files()).expect("bundle");
    let (token, now) = vector_token("074-keys-set-by-host.json");
    let request = HttpRequest {
        method: "GET".into(),
        path: "/things/t-1".into(),
        headers: vec![("authorization".into(), format!("Bearer {token}"))],
        ..HttpRequest::default()
    };
    let deny = |message: &str| {
        Verdict::Deny(greenlight_core::Denial {
            code: DenialCode::TokenUnknownKey,
            message: message.to_owned(),
            issuer: Some("https://uri.example".to_owned()),
        })
    };
    assert_eq!(
        policy.evaluate_http(&request, now).verdict,
        deny("no keys are loaded for issuer `https://uri.example`")
    );
    policy
        .withdraw_keys(
            "https://uri.example",
            "fetching its keys failed: GET https://uri.example/.well-known/jwks.json: status 500",
        )
        .expect("withdrawn");
    let why = deny(
        "no keys are loaded for issuer `https://uri.example`: fetching its keys failed: GET https://uri.example/.well-known/jwks.json: status 500",
    );
    // Several callers at once: instances made after the change replay it.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| assert_eq!(policy.evaluate_http(&request, now).verdict, why));
        }
    });
    let jwks = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundles/tokens/ed.jwks.json"),
    )
    .expect("jwks");
    policy
        .set_keys("https://uri.example", &jwks)
        .expect("keys set");
    assert!(matches!(
        policy.evaluate_http(&request, now).verdict,
        Verdict::Allow(_)
    ));
    // A set holding a private key is refused, and the good keys stay.
    let leaked = jwks.replacen("\"kty\"", "\"d\": \"AAAA\", \"kty\"", 1);
    assert!(matches!(
        policy.set_keys("https://uri.example", &leaked),
        Err(HostError::Bundle(LoadError::InvalidBundle(_)))
    ));
    assert!(matches!(
        policy.evaluate_http(&request, now).verdict,
        Verdict::Allow(_)
    ));
    assert_eq!(
        policy
            .withdraw_keys("https://nobody.example", "x")
            .err()
            .map(|e| e.to_string()),
        Some("the bundle has no issuer `https://nobody.example`".to_owned())
    );
}

/// `decide-json`: text that is not one call is refused `request-invalid`
/// by the module with why (the core's reading, `Call::read`), and a
/// vouched subject's attribute named twice is never read as either value;
/// named once, the call decides as the native core does.
#[test]
fn a_json_call_that_is_not_one_call_is_refused_with_why() {
    let policy = engine().load_bundle(demo_files()).expect("demo bundle");
    let access = r#""access": {"token": "", "action": "payment.refund", "resource_type": "Payment",
        "resource_id": "pay_123", "context": "{\"amount\":50,\"currency\":\"EUR\"}"}"#;
    let subject = |extra: &str| {
        format!(
            r#"{{"vouched": {{"subject": {{"entity_type": "User", "subject": "alice", {extra}
            "issuer": "https://idp.example.com"}}, {access}}}}}"#
        )
    };
    let cases = [
        (
            "{".to_owned(),
            "the request is not JSON: EOF while parsing an object at line 1 column 1",
        ),
        ("null".to_owned(), "the request is not a JSON object"),
        (
            r#"{"evaluate": {}}"#.to_owned(),
            "the request is not one `http`, `access` or `vouched` call: unknown variant `evaluate`, expected one of `http`, `access`, `vouched`",
        ),
        (
            subject(r#""subject": "admin","#),
            "the request names the member `subject` twice in one object",
        ),
    ];
    for (text, message) in cases {
        assert_eq!(Call::read(&text).expect_err(&text), message);
        let d = policy.decide_json(&text, 1_767_225_600);
        match &d.verdict {
            Verdict::Deny(den) => {
                assert_eq!(
                    (den.code, den.message.as_str()),
                    (DenialCode::RequestInvalid, message),
                    "{text}"
                );
            }
            other => panic!("{text}: expected a deny, got {other:?}"),
        }
        assert_eq!(d.policy_hash, policy.policy_hash());
    }
    // The same subject named once is decided, exactly as natively.
    let once = subject(r#""scopes": ["payments:refund"],"#);
    let native = greenlight_core::Engine::load(&demo_files()).expect("demo bundle");
    let d = policy.decide_json(&once, 1_767_225_600);
    assert_eq!(
        d,
        native.decide_call(&Call::read(&once).expect("a call"), 1_767_225_600)
    );
    assert!(
        matches!(&d.verdict, Verdict::Allow(a) if a.principal.subject == "alice"),
        "{d:?}"
    );
    assert_eq!(d.reasons, ["refund-small"]);
}
