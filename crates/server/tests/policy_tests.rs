//! Policy tests (`tests/*.toml` in a bundle): `greenlight test` as a person
//! runs it, the runner's checks one by one, and the test keys, which must
//! never open anything outside a test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use greenlight_host::Engine;

const NOW: u64 = 1_767_225_600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn greenlight(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(args)
        .current_dir(dir)
        .env(
            "GREENLIGHT_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwasm"),
        )
        .output()
        .expect("the binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in [
        "greenlight.toml",
        "policy.cedar",
        "schema.cedarschema",
        "idp.jwks.json",
    ] {
        std::fs::copy(
            root().join("examples/bundle").join(name),
            dir.path().join(name),
        )
        .expect("copy");
    }
    std::fs::create_dir(dir.path().join("tests")).expect("mkdir");
    std::fs::copy(
        root().join("examples/bundle/tests/demo.toml"),
        dir.path().join("tests/demo.toml"),
    )
    .expect("copy");
    dir
}

fn demo_hash() -> String {
    let v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/vectors/001-demo-refund-50-allowed.json"))
            .expect("vector"),
    )
    .expect("json");
    v["expect"]["policy_hash"]
        .as_str()
        .expect("hash")
        .to_owned()
}

#[test]
fn the_demo_bundles_tests_pass() {
    let o = greenlight(&["test", "examples/bundle"], &root());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12, "{out}");
    assert!(
        lines[..10]
            .iter()
            .all(|l| l.starts_with("ok     demo.toml: ")),
        "{out}"
    );
    assert_eq!(
        lines[11],
        format!("10 passed, 0 failed (policy hash {})", demo_hash())
    );
}

/// A policy change its tests do not expect fails them, naming each
/// failing test, what was expected, what came, and which policies decided.
#[test]
fn a_failing_test_names_the_decision_and_its_policies_and_exits_1() {
    let dir = demo_copy();
    let policy = std::fs::read_to_string(dir.path().join("policy.cedar")).expect("read");
    std::fs::write(
        dir.path().join("policy.cedar"),
        policy.replace(
            "unless { principal.tenant == resource.tenant };",
            "unless { true };",
        ),
    )
    .expect("write");
    let o = greenlight(&["test", "."], dir.path());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.contains(
            "FAILED demo.toml: another tenant's admin is refused\n       expected deny, expected \
             reasons [tenant-isolation]; got approval-required: approvers \
             group:tenant-owner@tenant, quorum 1, grant once, ttl 3600 (determined by \
             tenant-data-delete)\n"
        ),
        "{out}"
    );
    assert!(out.contains("\n9 passed, 1 failed (policy hash "), "{out}");
}

/// What cannot be a test is refused before anything runs, naming the file
/// and the test.
#[test]
fn a_malformed_test_file_is_refused_saying_where() {
    let cases = [
        (
            "[[tests]]\nname = \"both\"\nhttp = { method = \"GET\", path = \"/payments/p\" }\n\
             evaluation = { action = \"payment.read\", resource = { type = \"Payment\", id = \"p\" } }\n\
             expect = { verdict = \"allow\" }\n",
            "greenlight: tests/bad.toml: test `both` needs exactly one of `http` and `evaluation`\n",
        ),
        (
            "[[tests]]\nname = \"typo\"\nhttp = { method = \"GET\", path = \"/payments/p\" }\n\
             expect = { verdict = \"alow\" }\n",
            "greenlight: tests/bad.toml: test `typo`: verdict `alow` is not one of allow, deny, \
             approval-required, step-up-required\n",
        ),
        (
            "[[tests]]\nname = \"asks less\"\nhttp = { method = \"GET\", path = \"/payments/p\" }\n\
             expect = { verdict = \"allow\", code = \"policy-forbidden\" }\n",
            "greenlight: tests/bad.toml: test `asks less`: `code` says nothing about the verdict `allow`\n",
        ),
        (
            "[[tests]]\nname = \"unknown field\"\nhttp = { method = \"GET\", path = \"/p\" }\n\
             expect = { verdict = \"allow\", quorom = 2 }\n",
            "greenlight: tests/bad.toml is not a test file: TOML parse error at line 4, column 31\n",
        ),
    ];
    for (file, want) in cases {
        let dir = demo_copy();
        std::fs::write(dir.path().join("tests/bad.toml"), file).expect("write");
        let o = greenlight(&["test", "."], dir.path());
        assert_eq!(o.status.code(), Some(2));
        let err = text(&o.stderr);
        assert!(err.starts_with(want), "{err}\nwanted: {want}");
    }
    let dir = demo_copy();
    std::fs::remove_dir_all(dir.path().join("tests")).expect("rm");
    let o = greenlight(&["test", "."], dir.path());
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "greenlight: bundle . has no tests: put them in ./tests/*.toml\n"
    );
}

fn engine() -> Engine {
    Engine::load(greenlight_component::GREENLIGHT_WASM).expect("component")
}

fn policy(bundle: &str) -> greenlight_host::Policy {
    let files = greenlight_host::read_bundle_dir(&root().join(bundle)).expect("files");
    engine().load_bundle(files).expect("bundle")
}

/// The one test's failure, or `None` when it passed.
fn failure(policy: &greenlight_host::Policy, toml: &str, now: u64) -> Option<String> {
    let outcomes = policy
        .run_tests(&[("t.toml".to_owned(), toml.to_owned())], now)
        .expect("runs");
    assert_eq!(outcomes.len(), 1);
    assert_eq!(
        outcomes[0].name.split_once(": ").map(|(f, _)| f),
        Some("t.toml")
    );
    outcomes[0].failure.clone()
}

/// Every expectation is checked: a test passes only when each one holds,
/// and each one that does not is named.
#[test]
fn every_expectation_is_checked() {
    let demo = policy("examples/bundle");
    let refund = |expect: &str| {
        format!(
            "now = {NOW}\n[[tests]]\nname = \"r\"\nclaims = {{ sub = \"alice\", scope = \"payments:refund\" }}\n\
             http = {{ method = \"POST\", path = \"/payments/p/refund\", params = {{ amount = 500, currency = \"EUR\" }} }}\n\
             expect = {expect}\n"
        )
    };
    let got = "got approval-required: approvers group:finance, quorum 2, grant once, ttl 900 \
               (determined by refund-large)";
    for (expect, want) in [
        (
            r#"{ verdict = "approval-required", reasons = ["refund-large"], approvers = ["group:finance"], quorum = 2, grant = "once", ttl = 900 }"#,
            None,
        ),
        (
            r#"{ verdict = "allow" }"#,
            Some(format!("expected allow; {got}")),
        ),
        (
            r#"{ verdict = "approval-required", quorum = 1 }"#,
            Some(format!("expected quorum 1; {got}")),
        ),
        (
            r#"{ verdict = "approval-required", approvers = ["group:admins"] }"#,
            Some(format!("expected approvers group:admins; {got}")),
        ),
        (
            r#"{ verdict = "approval-required", grant = "window" }"#,
            Some(format!("expected grant window; {got}")),
        ),
        (
            r#"{ verdict = "approval-required", ttl = 60 }"#,
            Some(format!("expected ttl 60; {got}")),
        ),
        (
            r#"{ verdict = "approval-required", reasons = [] }"#,
            Some(format!("expected reasons []; {got}")),
        ),
        (
            r#"{ verdict = "deny", code = "policy-forbidden" }"#,
            Some(format!("expected deny; {got}")),
        ),
    ] {
        assert_eq!(failure(&demo, &refund(expect), 0), want, "{expect}");
    }
    // A deny's code and message.
    assert_eq!(
        failure(
            &demo,
            "[[tests]]\nname = \"n\"\nhttp = { method = \"GET\", path = \"/payments/p\" }\n\
             expect = { verdict = \"deny\", code = \"token-malformed\", message = \"x\" }\n",
            NOW,
        )
        .as_deref(),
        Some(
            "expected code token-malformed, expected message `x`; got deny token-missing: no \
             bearer token was presented (determined by no policy)"
        )
    );
}

/// A described token is held to every rule a signed one is but the
/// signature: expired, for another audience, without a subject, without
/// `exp`, or from an issuer the bundle does not trust, it is refused as a
/// real one would be.
#[test]
fn described_tokens_meet_the_issuers_rules() {
    let demo = policy("examples/bundle");
    let case = |claims: &str, extra: &str| {
        format!(
            "now = {NOW}\n[[tests]]\nname = \"c\"\n{extra}claims = {claims}\n\
             evaluation = {{ action = \"payment.read\", resource = {{ type = \"Payment\", id = \"p\" }} }}\n\
             expect = {{ verdict = \"allow\" }}\n"
        )
    };
    let fails = |claims: &str, extra: &str| failure(&demo, &case(claims, extra), 0);
    assert_eq!(fails(r#"{ sub = "a", scope = "payments:read" }"#, ""), None);
    for (claims, extra, code) in [
        (
            format!(
                r#"{{ sub = "a", scope = "payments:read", exp = {} }}"#,
                NOW - 3600
            ),
            "",
            "token-expired",
        ),
        (
            r#"{ sub = "a", scope = "payments:read", aud = "https://elsewhere.example" }"#
                .to_owned(),
            "",
            "token-wrong-audience",
        ),
        (
            r#"{ scope = "payments:read" }"#.to_owned(),
            "",
            "token-missing-claim",
        ),
        (
            r#"{ sub = "a", scope = "payments:read" }"#.to_owned(),
            "without = [\"exp\"]\n",
            "token-missing-claim",
        ),
        (
            r#"{ sub = "a", scope = "payments:read", iss = "https://other.example" }"#.to_owned(),
            "",
            "token-unknown-issuer",
        ),
        (
            r#"{ sub = "a", scope = "payments:read", iss = "https://greenlight.example.com" }"#
                .to_owned(),
            "",
            "token-unknown-issuer",
        ),
    ] {
        let why = fails(&claims, extra).unwrap_or_else(|| panic!("{claims} passed"));
        assert!(
            why.starts_with(&format!("expected allow; got deny {code}: ")),
            "{claims}: {why}"
        );
    }
    assert_eq!(
        fails(r#"{ sub = "a" }"#, "issuer = \"https://other.example\"\n").as_deref(),
        Some("the test cannot run: `https://other.example` is not one of the bundle's issuers")
    );
}

/// A described token maps claims as a signed one does: another issuer's
/// subject is `ISSUER#sub`, and groups count only from an issuer trusted
/// for them.
#[test]
fn described_tokens_map_claims_as_signed_ones() {
    let tokens = policy("tests/bundles/tokens");
    for issuer in [
        "https://ec.example",
        "https://rsa.example",
        "https://ed.example",
    ] {
        let toml = format!(
            "now = {NOW}\n[[tests]]\nname = \"t\"\nissuer = \"{issuer}\"\n\
             claims = {{ sub = \"bob\", scope = \"things:read\" }}\n\
             http = {{ method = \"GET\", path = \"/things/t-1\" }}\n\
             expect = {{ verdict = \"allow\", reasons = [\"thing-read\"] }}\n"
        );
        assert_eq!(failure(&tokens, &toml, 0), None, "{issuer}");
    }
    // `mallory-may-not-read` names the first issuer's mallory only.
    let mallory = |issuer: &str, verdict: &str| {
        format!(
            "now = {NOW}\n[[tests]]\nname = \"m\"\nissuer = \"{issuer}\"\n\
             claims = {{ sub = \"mallory\", scope = \"things:read\" }}\n\
             http = {{ method = \"GET\", path = \"/things/t-1\" }}\n\
             expect = {{ verdict = \"{verdict}\" }}\n"
        )
    };
    assert_eq!(
        failure(&tokens, &mallory("https://ed.example", "deny"), 0),
        None
    );
    assert_eq!(
        failure(&tokens, &mallory("https://ec.example", "allow"), 0),
        None
    );
}

/// A test that describes claims and also carries a token is refused: the
/// described token stands for the request's, never beside it.
#[test]
fn a_described_test_carries_no_token_of_its_own() {
    let demo = policy("examples/bundle");
    assert_eq!(
        failure(
            &demo,
            "[[tests]]\nname = \"both\"\nclaims = { sub = \"a\" }\n\
             http = { method = \"GET\", path = \"/payments/p\", headers = { Authorization = \"Bearer x\" } }\n\
             expect = { verdict = \"allow\" }\n",
            NOW,
        )
        .as_deref(),
        Some("the test cannot run: a test that describes `claims` sends no `authorization` header")
    );
}

/// A module's test outcomes are checked like all it returns: one that
/// answers with more outcomes than a host accepts, or runs past the
/// budget, fails the run instead of passing it.
#[test]
fn a_hostile_modules_test_answers_are_refused() {
    let bytes = std::fs::read(greenlight_component::HOSTILE_WASM_PATH).expect("hostile module");
    let hostile = Engine::load(&bytes).expect("hostile component");
    let policy = hostile.load_bundle(Vec::new()).expect("loads anything");
    assert_eq!(
        policy.run_tests(&[("t.toml".to_owned(), String::new())], NOW),
        Err("the policy module answered the tests wrongly: 10001 test outcomes".to_owned())
    );
    let looped = policy
        .run_tests(&[("loop.toml".to_owned(), String::new())], NOW)
        .expect_err("a runaway module fails the run");
    assert_eq!(looped, "the policy module ran past its time budget");
}

/// `greenlight explain` on one of the demo's tests: every policy with
/// its scope and conditions as written, and whose annotations the
/// approval asks for.
#[test]
fn explain_shows_each_policy_its_conditions_and_the_obligations_source() {
    let o = greenlight(
        &[
            "explain",
            "--bundle",
            "examples/bundle",
            "--test",
            "a refund of 500 needs two finance approvals, once",
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), EXPLAINED_REFUND_500);
}

/// A request file with a token, as `check` takes one: a forbid that is
/// satisfied determines the decision, and a satisfied permit beside it
/// does not; a request refused before the policies says so; a test name
/// that names nothing is an error.
#[test]
fn explain_takes_a_request_and_says_when_no_policy_was_evaluated() {
    let dir = tempfile::tempdir().expect("tempdir");
    let request = dir.path().join("refund.json");
    std::fs::write(
        &request,
        r#"{"method":"POST","path":"/payments/pay_123/refund","params":{"amount":20000,"currency":"EUR"}}"#,
    )
    .expect("write");
    let now = NOW.to_string();
    let token = greenlight(
        &[
            "dev-token",
            "--bundle",
            "examples/bundle",
            "--sub",
            "alice",
            "--scope",
            "payments:refund",
            "--now",
            &now,
        ],
        &root(),
    );
    let token = text(&token.stdout).trim().to_owned();
    let request = request.to_str().expect("utf-8");
    let o = greenlight(
        &[
            "explain",
            "--bundle",
            "examples/bundle",
            "--request",
            request,
            "--token",
            &token,
            "--now",
            &now,
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(
        out.starts_with(
            "request:  User::\"alice\" asks Action::\"payment.refund\" on Payment::\"pay_123\"\n\
             decision: deny policy-forbidden: `payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit` (by refund-limit)\n"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "\nforbid `refund-limit`: satisfied, determines the decision\n  scope: matches\n  \
             when { context.amount <= 0 || context.amount > 10000 }: true\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\npermit `refund-large`: satisfied, but does not determine the decision\n"),
        "{out}"
    );
    assert!(!out.contains("the approval asked for"), "{out}");

    let o = greenlight(
        &[
            "explain",
            "--bundle",
            "examples/bundle",
            "--request",
            request,
            "--now",
            &now,
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "decision: deny token-missing: no bearer token was presented\n\n\
         no policy was evaluated: the request was refused before them\n"
    );

    let o = greenlight(
        &[
            "explain",
            "--bundle",
            "examples/bundle",
            "--test",
            "no such test",
        ],
        &root(),
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        text(&o.stderr),
        "greenlight: no test is named `no such test`\n"
    );
}

/// The explanation of a refund of 500 by alice.
const EXPLAINED_REFUND_500: &str = r#"request:  User::"alice" asks Action::"payment.refund" on Payment::"pay_123"
decision: approval-required: 2 of group:finance, grant once, ttl 900 s (by refund-large)

forbid `file-owner-only`: not satisfied
  scope: does not match (principal, action or resource)

permit `file-write-confirm`: not satisfied
  @approvers("subject")
  @grant("window:300")
  @message("Allow this app to write the file you selected?")
  @ttl("300")
  scope: does not match (principal, action or resource)

permit `payment-read`: not satisfied
  scope: does not match (principal, action or resource)

permit `refund-large`: satisfied, determines the decision
  @approvers("group:finance")
  @grant("once")
  @message("Refund above 100: two finance approvals needed")
  @quorum("2")
  @reason("required")
  @ttl("900")
  scope: matches
  when { principal.scopes.contains("payments:refund") && context.amount > 100 }: true

forbid `refund-limit`: not satisfied
  scope: matches
  when { context.amount <= 0 || context.amount > 10000 }: false: FAILS

permit `refund-small`: not satisfied
  scope: matches
  when { principal.scopes.contains("payments:refund") && context.amount <= 100 }: false: FAILS

permit `tenant-data-delete`: not satisfied
  @approvers("group:tenant-owner@tenant")
  @grant("once")
  @message("A tenant admin asks to delete a user's data")
  @quorum("1")
  @reason("required")
  @ttl("3600")
  scope: does not match (principal, action or resource)

forbid `tenant-isolation`: not satisfied
  scope: does not match (principal, action or resource)

the approval asked for is `refund-large`'s: @approvers("group:finance") @grant("once") @message("Refund above 100: two finance approvals needed") @quorum("2") @reason("required") @ttl("900")
"#;
