//! The `greenlight` command as a person runs it: real binary, real files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// 2026-01-01T00:00:00Z.
const NOW: &str = "1767225600";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn greenlight(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(args)
        .current_dir(root())
        // Share compiled artifacts between tests, away from the user's cache.
        .env(
            "GREENLIGHT_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwasm"),
        )
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn dev_token(scope: &str) -> String {
    let o = greenlight(&[
        "dev-token",
        "--bundle",
        "examples/bundle",
        "--sub",
        "alice",
        "--scope",
        scope,
        "--now",
        NOW,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o).trim().to_owned()
}

fn check(request: &str, token: &str, engine: &str) -> serde_json::Value {
    let o = greenlight(&[
        "check",
        "--bundle",
        "examples/bundle",
        "--request",
        request,
        "--token",
        token,
        "--now",
        NOW,
        "--engine",
        engine,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).expect("check prints JSON")
}

/// The README's story: 500 needs two finance approvals, 50 is allowed, and
/// the component and the native core print the same decision.
#[test]
fn check_gives_approval_required_for_500_and_allow_for_50_in_both_engines() {
    let token = dev_token("payments:read payments:refund");
    let big = check("examples/requests/refund-500.json", &token, "wasm");
    assert_eq!(big["verdict"]["kind"], "approval-required");
    assert_eq!(
        big["verdict"]["obligation"]["approvers"],
        serde_json::json!(["group:finance"])
    );
    assert_eq!(big["verdict"]["obligation"]["quorum"], 2);
    assert_eq!(
        big["verdict"]["action"]["digest"],
        "37yCphGUEolWZQHCog7QpuCi5VA8GMxvuXmGzRBmyYc"
    );
    assert_eq!(big["reasons"], serde_json::json!(["refund-large"]));
    assert_eq!(
        big,
        check("examples/requests/refund-500.json", &token, "native")
    );

    let small = check("examples/requests/refund-50.json", &token, "wasm");
    assert_eq!(small["verdict"]["kind"], "allow");
    assert_eq!(small["verdict"]["principal"]["subject"], "alice");
    assert_eq!(small["reasons"], serde_json::json!(["refund-small"]));
    assert_eq!(
        small,
        check("examples/requests/refund-50.json", &token, "native")
    );
}

/// A development token expires: checked an hour and two minutes later it is denied.
#[test]
fn a_dev_token_past_its_ttl_is_denied() {
    let token = dev_token("payments:refund");
    let o = greenlight(&[
        "check",
        "--bundle",
        "examples/bundle",
        "--request",
        "examples/requests/refund-50.json",
        "--token",
        &token,
        "--now",
        "1767229320",
    ]);
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON");
    assert_eq!(
        d["verdict"],
        serde_json::json!({ "kind": "deny", "code": "token-expired", "message": "the token expired at 1767229200" })
    );
}

/// The demo bundle validates; the command says so and exits 0.
#[test]
fn bundle_validate_accepts_the_demo_bundle() {
    let o = greenlight(&["bundle", "validate", "examples/bundle"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "bundle `examples/bundle` is valid (policy hash cee629d384481bd8f5b52370832ea897bed868950245c74918f2fae758ee9932)\n"
    );
}

/// A broken bundle: every problem listed with file:line:column and kind; exit 1.
#[test]
fn bundle_validate_lists_every_problem_and_exits_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("greenlight.toml"),
        "[[issuers]]\nissuer = \"https://idp\"\naudience = \"a\"\nalgorithms = [\"none\"]\njwks_uri = \"https://idp/jwks\"\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("policy.cedar"),
        "permit(principal, action, resource)\n",
    )
    .expect("write");
    let o = greenlight(&["bundle", "validate", dir.path().to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stdout(&o),
        format!(
            "bundle `{}` has 2 problem(s):\n  greenlight.toml:4:15: issuer `https://idp` allows `none`, which is not supported (use EdDSA, ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512 or HS256) [invalid-config]\n  policy.cedar:1:36: unexpected end of input [invalid-policy]\n",
            dir.path().display()
        )
    );
}

/// dev-token refuses a bundle that ships no development key.
#[test]
fn dev_token_refuses_a_bundle_without_a_dev_key() {
    let o = greenlight(&[
        "dev-token",
        "--bundle",
        "tests/bundles/tokens",
        "--sub",
        "x",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "greenlight: bundle `tests/bundles/tokens` has no `[dev]` signing key: development tokens are only for bundles that ship one\n"
    );
}

/// A request file with an unknown field is refused with the reason.
#[test]
fn check_refuses_a_malformed_request_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let req = dir.path().join("req.json");
    std::fs::write(&req, r#"{"method": "GET", "path": "/x", "body": {}}"#).expect("write");
    let o = greenlight(&[
        "check",
        "--bundle",
        "examples/bundle",
        "--request",
        req.to_str().expect("utf-8"),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        format!(
            "greenlight: request {} is not valid: unknown field `body`, expected one of `method`, `path`, `query`, `headers`, `params`, `entities` at line 1 column 38\n",
            req.display()
        )
    );
}

/// `component path` names the built component, and `component export`
/// writes the embedded one, byte for byte the same.
#[test]
fn component_path_and_export_give_the_same_component() {
    let o = greenlight(&["component", "path"]);
    assert_eq!(o.status.code(), Some(0));
    let path = stdout(&o).trim().to_owned();
    let built = std::fs::read(&path).expect("the printed path exists");
    assert_eq!(
        &built[..8],
        b"\0asm\x0d\0\x01\0",
        "a component, not a core module"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("greenlight.wasm");
    let o = greenlight(&["component", "export", out.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).expect("written"), built);
}

/// `serve` refuses a bundle with a `[dev]` signing key (whose private half
/// is public in this repository) unless told `--dev`, and says why before
/// opening any store or port.
#[test]
fn serve_refuses_a_development_bundle_without_dev() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("gl.db").display());
    let o = greenlight(&[
        "serve",
        "--bundle",
        "examples/bundle",
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    assert_eq!(
        stderr(&o),
        "greenlight: cannot load bundle examples/bundle: the bundle has a `[dev]` signing key: anyone holding it mints tokens the bundle accepts. It is for trying things; serve it with --dev, or remove `[dev]`\n"
    );
    assert!(
        !dir.path().join("gl.db").exists(),
        "no store is created for a refused bundle"
    );
}
