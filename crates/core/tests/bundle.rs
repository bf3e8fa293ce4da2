//! Bundle loading: a bad bundle is refused with every problem, each with
//! its file, line, column and a message a person can act on.

use greenlight_core::{Engine, LoadError, Problem, ProblemKind};

fn files(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, c)| ((*n).to_owned(), (*c).to_owned()))
        .collect()
}

fn problems(pairs: &[(&str, &str)]) -> Vec<Problem> {
    match Engine::load(&files(pairs)) {
        Err(LoadError::InvalidBundle(p)) => p,
        Err(other) => panic!("expected InvalidBundle, got {other:?}"),
        Ok(_) => panic!("the bundle loaded"),
    }
}

fn p(kind: ProblemKind, file: &str, at: Option<(u32, u32)>, message: &str) -> Problem {
    Problem {
        kind,
        file: file.to_owned(),
        line: at.map(|a| a.0),
        column: at.map(|a| a.1),
        message: message.to_owned(),
    }
}

const JWKS: &str = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsT4","kid":"k1","alg":"EdDSA"}]}"#;

const CONFIG: &str = r#"[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
jwks = "idp.jwks.json"
"#;

/// An empty file list names both required files.
#[test]
fn an_empty_bundle_names_both_required_files() {
    assert_eq!(
        problems(&[]),
        vec![
            p(
                ProblemKind::MissingFile,
                "greenlight.toml",
                None,
                "every bundle needs `greenlight.toml`"
            ),
            p(
                ProblemKind::MissingFile,
                "policy.cedar",
                None,
                "every bundle needs `policy.cedar`"
            ),
        ]
    );
}

/// A typo in a key is located by line and column.
#[test]
fn an_unknown_config_key_is_located() {
    let cfg = "[[issuers]]\nissuer = \"x\"\naudiense = \"y\"\n";
    let got = problems(&[("greenlight.toml", cfg), ("policy.cedar", "")]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, ProblemKind::InvalidConfig);
    assert_eq!((got[0].line, got[0].column), (Some(3), Some(1)));
    assert!(
        got[0]
            .message
            .starts_with("unknown field `audiense`, expected one of"),
        "{}",
        got[0].message
    );
}

/// Several independent problems are all reported in one pass.
#[test]
fn every_problem_of_a_bad_bundle_is_reported() {
    let cfg = r#"[[issuers]]
issuer = "https://idp.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA", "ES512"]
jwks = "missing.jwks.json"

[[routes]]
method = "POST"
path = "/payments/{payment_id}/refund"
action = "payment.refund"
resource = { type = "Payment", id = "{paymentid}" }
params.amount = { from = "body.amount", type = "decimal" }
"#;
    let got = problems(&[
        ("greenlight.toml", cfg),
        ("policy.cedar", "permit(principal, action, resource);"),
    ]);
    assert_eq!(
        got,
        vec![
            p(
                ProblemKind::InvalidConfig,
                "greenlight.toml",
                Some((4, 24)),
                "issuer `https://idp.example.com` allows `ES512`, which is not supported (use EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512 or HS256)"
            ),
            p(
                ProblemKind::MissingFile,
                "missing.jwks.json",
                None,
                "key set `missing.jwks.json` is named in greenlight.toml but not in the bundle"
            ),
            p(
                ProblemKind::InvalidConfig,
                "greenlight.toml",
                Some((9, 8)),
                "route `POST /payments/{payment_id}/refund`: resource id uses `{paymentid}`, which is not a parameter of path `/payments/{payment_id}/refund`"
            ),
            p(
                ProblemKind::InvalidConfig,
                "greenlight.toml",
                Some((9, 8)),
                "route `POST /payments/{payment_id}/refund`: parameter `amount`: type `decimal` is not one of `string`, `long`, `bool`, `list`"
            ),
        ]
    );
}

/// Cedar syntax errors carry the policy file's line and column.
#[test]
fn a_policy_syntax_error_is_located() {
    let got = problems(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        (
            "policy.cedar",
            "permit(principal, action, resource);\n\npermit(principal, action, resource) when { context.x > };\n",
        ),
    ]);
    assert_eq!(
        got,
        vec![p(
            ProblemKind::InvalidPolicy,
            "policy.cedar",
            Some((3, 56)),
            "unexpected token `}`"
        )]
    );
}

/// Malformed approval annotations are refused, each at its annotation.
#[test]
fn malformed_obligation_annotations_are_refused() {
    let policy = r#"@id("a")
@approvers("finance")
permit (principal, action, resource);

@id("b")
@approvers("group:finance")
@quorum("zero")
permit (principal, action, resource);

@id("c")
@approvers("group:finance")
@grant("forever")
permit (principal, action, resource);

@id("d")
@approvers("group:x")
forbid (principal, action, resource);

@id("e")
@approvers("subject")
@quorum("2")
permit (principal, action, resource);

@id("f")
@approvers("group:ops@example.com, group:@tenant")
permit (principal, action, resource);
"#;
    let got = problems(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", policy),
    ]);
    assert_eq!(
        got,
        vec![
            p(
                ProblemKind::InvalidPolicy,
                "policy.cedar",
                Some((2, 1)),
                "policy `a`: approver `finance` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`"
            ),
            p(
                ProblemKind::InvalidPolicy,
                "policy.cedar",
                Some((7, 1)),
                "policy `b`: `@quorum(\"zero\")` should be a whole number from 1 to 32"
            ),
            p(
                ProblemKind::InvalidPolicy,
                "policy.cedar",
                Some((12, 1)),
                "policy `c`: `@grant(\"forever\")` should be `once` or `window:SECONDS`"
            ),
            p(
                ProblemKind::InvalidPolicy,
                "policy.cedar",
                Some((16, 1)),
                "policy `d` is a forbid: approval annotations only belong on permits"
            ),
            p(
                ProblemKind::InvalidPolicy,
                "policy.cedar",
                Some((21, 1)),
                "policy `e`: only the subject approves here, so the quorum can only be 1"
            ),
            p(
                ProblemKind::InvalidPolicy,
                "policy.cedar",
                Some((25, 1)),
                "policy `f`: approver `group:@tenant` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`"
            ),
        ]
    );
}

/// A policy that violates the schema is refused as a schema problem.
#[test]
fn a_policy_that_violates_the_schema_is_refused() {
    let schema =
        "entity User; entity Doc; action read appliesTo { principal: User, resource: Doc };";
    let policy = "@id(\"x\")\npermit (principal, action == Action::\"read\", resource) when { resource.owner == \"a\" };";
    let got = problems(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", policy),
        ("schema.cedarschema", schema),
    ]);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].file, "policy.cedar");
    assert_eq!(got[0].kind, ProblemKind::InvalidSchema);
    assert_eq!(got[0].line, Some(2));
    assert!(
        got[0].message.contains("attribute `owner`"),
        "the message names the attribute: {}",
        got[0].message
    );
}

/// A private key placed in a bundle is refused: the engine needs public keys only.
#[test]
fn a_private_key_in_the_bundle_is_refused() {
    let got = problems(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", ""),
        (
            "leak.json",
            "-----BEGIN PRIVATE KEY-----\nMC4C\n-----END PRIVATE KEY-----\n",
        ),
    ]);
    assert_eq!(
        got,
        vec![p(
            ProblemKind::InvalidKeys,
            "leak.json",
            Some((1, 12)),
            "private keys must not be part of a bundle: the engine only needs public keys"
        )]
    );
}

/// A malformed key set is located by line and column.
#[test]
fn a_malformed_key_set_is_located() {
    let got = problems(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", "{\"keys\": [\n  {\"kty\": \"OKP\",}\n]}"),
        ("policy.cedar", ""),
    ]);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].kind, ProblemKind::InvalidKeys);
    assert_eq!(got[0].file, "idp.jwks.json");
    assert_eq!((got[0].line, got[0].column), (Some(2), Some(17)));
    assert_eq!(
        got[0].message,
        "not valid JSON: trailing comma at line 2 column 17"
    );
}

/// A refused key set leaves the old keys in place.
#[test]
fn a_refused_key_set_keeps_the_old_keys() {
    let mut engine = Engine::load(&files(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", ""),
    ]))
    .expect("valid bundle");
    let err = engine
        .set_keys("https://idp.example.com", "{\"keys\": []}")
        .expect_err("an empty set is refused");
    assert_eq!(
        err,
        LoadError::InvalidBundle(vec![p(
            ProblemKind::InvalidKeys,
            "jwks of `https://idp.example.com`",
            None,
            "the key set has no signing keys"
        )])
    );
    assert_eq!(
        engine.set_keys("https://nobody.example", JWKS),
        Err(LoadError::Other(
            "the bundle has no issuer `https://nobody.example`".to_owned()
        ))
    );
    assert!(
        !engine.bundle().issuers[0].keys.is_empty(),
        "the old keys are still there"
    );
}

/// A key whose coordinates are not the curve's length, or that carries its
/// private part, is refused when it is loaded (the first found by fuzzing: a short Ed25519 `x` panicked the verifier
/// at the first token, fuzz/regressions/bundle/ed25519-short-x).
#[test]
fn a_key_of_the_wrong_length_or_with_its_private_part_is_refused_at_load() {
    let mut engine = Engine::load(&files(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", ""),
    ]))
    .expect("valid bundle");
    let cases = [
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsQ"}]}"#,
            "key 0: the key's `x` is 31 bytes, not 32",
        ),
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsT4=="}]}"#,
            "key 0: the key's `x` is not base64url",
        ),
        (
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}"#,
            "key 0: the key's `x` is 3 bytes, not 32",
        ),
        (
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsT4","d":"AAAA"}]}"#,
            "key 0: a key set holds public keys only, and this key has the private member `d`",
        ),
    ];
    for (jwks, message) in cases {
        assert_eq!(
            engine.set_keys("https://idp.example.com", jwks),
            Err(LoadError::InvalidBundle(vec![p(
                ProblemKind::InvalidKeys,
                "jwks of `https://idp.example.com`",
                None,
                message
            )])),
            "{jwks}"
        );
    }
}

/// A provider that publishes a key of a kind Greenlight does not verify
/// with (P-521, an encryption algorithm) beside its signing key keeps
/// its signing key usable; a set with no usable key is still refused.
#[test]
fn a_fetched_key_that_cannot_be_used_is_left_out_not_the_whole_set() {
    let mut engine = Engine::load(&files(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", ""),
    ]))
    .expect("valid bundle");
    let p521 = r#"{"kty":"EC","crv":"P-521","kid":"p521","x":"AQ","y":"AQ"}"#;
    let oaep = r#"{"kty":"RSA","kid":"enc","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"}"#;
    let ed = r#"{"kty":"OKP","crv":"Ed25519","x":"I2AjEqUYOqUP6_eOvTM6THsPlfCVJVszMQh_05UWsT4","kid":"k2","alg":"EdDSA"}"#;
    engine
        .set_keys(
            "https://idp.example.com",
            &format!(r#"{{"keys":[{p521},{oaep},{ed}]}}"#),
        )
        .expect("the usable key is kept");
    let only_unusable = engine
        .set_keys(
            "https://idp.example.com",
            &format!(r#"{{"keys":[{p521},{oaep}]}}"#),
        )
        .expect_err("no usable key");
    let LoadError::InvalidBundle(problems) = only_unusable else {
        panic!("expected InvalidBundle, got {only_unusable:?}");
    };
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].message, "key 0: curve `P521` is not supported");
    // At load, a bundle's own key set is held to every key.
    let strict = Engine::load(&files(&[
        ("greenlight.toml", CONFIG),
        ("idp.jwks.json", &format!(r#"{{"keys":[{p521},{ed}]}}"#)),
        ("policy.cedar", ""),
    ]));
    let Err(LoadError::InvalidBundle(p)) = strict else {
        panic!("expected InvalidBundle, got {strict:?}");
    };
    assert_eq!(p[0].message, "key 0: curve `P521` is not supported");
}

/// When several approval policies match, the strictest obligation applies,
/// whatever the policies' ids: others' approval over the requester's own
/// confirmation (even with a shorter TTL), the one-time grant over the
/// window, then the larger quorum, then the shorter TTL.
#[test]
fn the_strictest_matching_obligation_applies() {
    let policy = r#"
@id("a-lenient") @approvers("group:ops") @quorum("1") @ttl("3600") @grant("window:600")
permit (principal, action == Action::"thing.delete", resource);
@id("a-self") @approvers("subject") @ttl("60") @grant("once")
permit (principal, action == Action::"thing.delete", resource);
@id("b-strict") @approvers("group:admins") @quorum("2") @ttl("600") @grant("once")
permit (principal, action == Action::"thing.delete", resource);
@id("c-stricter-quorum") @approvers("group:admins") @quorum("3") @ttl("900") @grant("once")
permit (principal, action == Action::"thing.delete", resource);
"#;
    let config = format!(
        "{CONFIG}\n[[routes]]\nmethod = \"POST\"\npath = \"/things/{{id}}/delete\"\naction = \"thing.delete\"\nresource = {{ type = \"Thing\", id = \"{{id}}\" }}\n"
    );
    let engine = Engine::load(&files(&[
        ("greenlight.toml", config.as_str()),
        ("policy.cedar", policy),
        ("idp.jwks.json", JWKS),
    ]))
    .expect("the bundle loads");
    let principal = greenlight_core::Principal {
        entity_type: "User".into(),
        subject: "bob".into(),
        issuer: "https://idp.example.com".into(),
        ..greenlight_core::Principal::default()
    };
    let d = engine.evaluate_as(
        &principal,
        &greenlight_core::AccessRequest {
            action: "thing.delete".into(),
            resource_type: "Thing".into(),
            resource_id: "t-1".into(),
            ..greenlight_core::AccessRequest::default()
        },
        0,
    );
    match d.verdict {
        greenlight_core::Verdict::ApprovalRequired(c) => {
            assert_eq!(
                (
                    c.obligation.quorum,
                    c.obligation.ttl_seconds,
                    c.obligation.grant
                ),
                (3, 900, greenlight_core::GrantMode::Once)
            );
            assert_eq!(
                c.obligation.approvers,
                vec![greenlight_core::Approver::Group("admins".into())]
            );
        }
        other => panic!("expected approval-required, got {other:?}"),
    }
    assert_eq!(
        d.reasons,
        ["a-lenient", "a-self", "b-strict", "c-stricter-quorum"]
    );
}

/// A vouched subject's groups count only as far as its issuer is
/// authoritative for them: the first issuer for any, another for none
/// unless listed, an issuer the bundle does not know for none.
#[test]
fn vouched_groups_count_only_from_an_authoritative_issuer() {
    let config = format!(
        "{CONFIG}\n[[issuers]]\nissuer = \"https://partner.example.com\"\naudience = \"https://api.example.com\"\nalgorithms = [\"EdDSA\"]\njwks = \"idp.jwks.json\"\ngroups = [\"ops\"]\n\n[[routes]]\nmethod = \"POST\"\npath = \"/things/{{id}}/delete\"\naction = \"thing.delete\"\nresource = {{ type = \"Thing\", id = \"{{id}}\" }}\n"
    );
    let policy = r#"@id("delete") @approvers("group:admins")
permit (principal, action == Action::"thing.delete", resource);"#;
    let engine = Engine::load(&files(&[
        ("greenlight.toml", config.as_str()),
        ("policy.cedar", policy),
        ("idp.jwks.json", JWKS),
    ]))
    .expect("the bundle loads");
    let groups_seen = |issuer: &str| {
        let who = greenlight_core::Principal {
            entity_type: "User".into(),
            subject: "bob".into(),
            issuer: issuer.into(),
            groups: vec!["admins".into(), "ops".into()],
            ..greenlight_core::Principal::default()
        };
        let d = engine.evaluate_as(
            &who,
            &greenlight_core::AccessRequest {
                action: "thing.delete".into(),
                resource_type: "Thing".into(),
                resource_id: "t-1".into(),
                ..greenlight_core::AccessRequest::default()
            },
            0,
        );
        match d.verdict {
            greenlight_core::Verdict::ApprovalRequired(c) => c.requester.groups,
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(groups_seen("https://idp.example.com"), ["admins", "ops"]);
    assert_eq!(groups_seen("https://partner.example.com"), ["ops"]);
    assert_eq!(
        groups_seen("https://unknown.example.com"),
        Vec::<String>::new()
    );
}

/// An issuer's claim names and approval scope may be left out, never
/// empty: an empty `subject_claim` would name nobody, an empty
/// `client_claim` no client.
#[test]
fn empty_claim_names_are_refused() {
    let cfg = format!("{CONFIG}approval_scope = \"\"\nsubject_claim = \"\"\nclient_claim = \"\"\n");
    let got = problems(&[
        ("greenlight.toml", &cfg),
        ("idp.jwks.json", JWKS),
        ("policy.cedar", "permit(principal, action, resource);"),
    ]);
    let messages: Vec<&str> = got.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "issuer `https://idp.example.com` has an empty `approval_scope`",
            "issuer `https://idp.example.com` has an empty `subject_claim`",
            "issuer `https://idp.example.com` has an empty `client_claim`",
        ]
    );
}

/// Keys fetched from a provider come over HTTPS (plain HTTP only to
/// loopback, when `[key_fetch]` allows it), never as a published shared
/// secret, within limits a host can honour; an issuer named alone is
/// found by discovery, at the two well-known places in order.
#[test]
fn fetched_keys_come_over_https_within_sane_limits() {
    let issuer =
        |body: &str| format!("[[issuers]]\naudience = \"https://api.example.com\"\n{body}\n");
    let messages = |config: &str| -> Vec<String> {
        problems(&[("greenlight.toml", config), ("policy.cedar", "")])
            .into_iter()
            .map(|p| p.message)
            .collect()
    };
    assert_eq!(
        messages(&issuer(
            "issuer = \"https://idp.example.com\"\nalgorithms = [\"EdDSA\"]\njwks_uri = \"http://keys.example.com/jwks\""
        )),
        [
            "issuer `https://idp.example.com`: its keys are fetched from its jwks_uri `http://keys.example.com/jwks`, which is not an HTTPS URL"
        ]
    );
    assert_eq!(
        messages(&issuer(
            "issuer = \"http://127.0.0.1:8080\"\nalgorithms = [\"EdDSA\"]"
        )),
        [
            "issuer `http://127.0.0.1:8080`: its keys are fetched from its issuer `http://127.0.0.1:8080`, which is plain HTTP (allowed to loopback only with `[key_fetch] allow_http_loopback = true`)"
        ]
    );
    // What looks like loopback before an `@` is user information.
    assert_eq!(
        messages(&format!(
            "{}[key_fetch]\nallow_http_loopback = true\n",
            issuer(
                "issuer = \"https://idp.example.com\"\nalgorithms = [\"EdDSA\"]\njwks_uri = \"http://127.0.0.1:80@evil.example/jwks\""
            )
        )),
        [
            "issuer `https://idp.example.com`: its keys are fetched from its jwks_uri `http://127.0.0.1:80@evil.example/jwks`, which is not an HTTPS URL"
        ]
    );
    assert_eq!(
        messages(&issuer(
            "issuer = \"https://idp.example.com\"\nalgorithms = [\"HS256\"]"
        )),
        [
            "issuer `https://idp.example.com` allows HS256, so its keys (a shared secret) must be in the bundle: a published secret is no secret"
        ]
    );
    assert_eq!(
        messages(&format!(
            "{}[key_fetch]\nmax_bytes = 0\nmin_age_seconds = 7200\nmax_age_seconds = 3600\nunknown_kid_interval_seconds = 0\n",
            issuer("issuer = \"https://idp.example.com\"\nalgorithms = [\"EdDSA\"]")
        )),
        [
            "`[key_fetch] max_bytes` must be more than 0",
            "`[key_fetch] unknown_kid_interval_seconds` must be more than 0",
            "`[key_fetch] min_age_seconds` (7200) is more than `max_age_seconds` (3600)",
        ]
    );
    // `greenlight` names the action tokens' keys (`set-keys`): no access-
    // token issuer may take that name, or its fetched keys would verify
    // action tokens.
    assert_eq!(
        messages(&issuer(
            "issuer = \"greenlight\"\nalgorithms = [\"EdDSA\"]\njwks_uri = \"https://evil.example/jwks\""
        )),
        ["issuer `greenlight` is the name reserved for Greenlight's own action tokens"]
    );
    let loopback = format!(
        "{}[key_fetch]\nallow_http_loopback = true\n",
        issuer("issuer = \"http://127.0.0.1:8080/realms/a\"\nalgorithms = [\"EdDSA\"]")
    );
    let engine = Engine::load(&files(&[
        ("greenlight.toml", &loopback),
        ("policy.cedar", ""),
    ]))
    .expect("loopback HTTP allowed");
    let info = engine.describe();
    assert_eq!(
        info.issuers[0].keys,
        greenlight_types::bundle::KeySource::Discovery(vec![
            "http://127.0.0.1:8080/realms/a/.well-known/openid-configuration".to_owned(),
            "http://127.0.0.1:8080/.well-known/oauth-authorization-server/realms/a".to_owned(),
        ])
    );
    assert!(info.key_fetch.allow_http_loopback);
    assert_eq!(
        info.key_fetch.min_age_seconds, 300,
        "defaults fill the rest"
    );
}
