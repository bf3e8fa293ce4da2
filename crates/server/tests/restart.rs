//! The approval survives the server: the real `greenlight serve` binary is
//! killed (SIGKILL, no graceful shutdown) between the quorum vote and the
//! client's token poll, restarted on the same SQLite file, and the client
//! still gets its action token exactly once.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use greenlight::dev::{DevTokenRequest, dev_token};
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Starts `greenlight serve` on a free port and waits for its banner.
fn start(db: &Path) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["serve", "--dev", "--bundle"])
        .arg(root().join("examples/bundle"))
        .args(["--listen", "127.0.0.1:0", "--store"])
        .arg(format!("sqlite://{}", db.display()))
        .env(
            "GREENLIGHT_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("restart-cwasm"),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("banner");
    let addr = line
        .trim()
        .strip_prefix("greenlight serving on http://")
        .unwrap_or_else(|| panic!("unexpected banner {line:?}"))
        .parse()
        .expect("address");
    (child, addr)
}

/// A token on the wall clock, for the requesting app or (`client`) another.
fn token_through(client: Option<&str>, sub: &str, scope: &str, groups: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    dev_token(
        &root().join("examples/bundle"),
        &DevTokenRequest {
            subject: sub.to_owned(),
            scope: Some(scope.to_owned()),
            client_id: client.map(str::to_owned),
            claims: vec![("groups".to_owned(), json!(groups).to_string())],
            ttl: 3600,
            now,
        },
    )
    .expect("dev token")
}

fn token(sub: &str, scope: &str, groups: &[&str]) -> String {
    token_through(None, sub, scope, groups)
}

/// A token of the approvals app: one meant for approving.
fn approver(sub: &str, groups: &[&str]) -> String {
    token_through(Some("approvals-app"), sub, "", groups)
}

/// Kill after quorum, restart, poll: one token, then `invalid_grant`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_still_delivers_the_token_exactly_once_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("greenlight.db");
    let alice = token("alice", "payments:refund", &[]);
    let bob = approver("bob", &["finance"]);
    let carol = approver("carol", &["finance"]);

    let (mut server, addr) = start(&db);
    let check = json!({ "method": "POST", "path": "/payments/pay_9/refund",
        "headers": { "authorization": format!("Bearer {alice}") },
        "params": { "amount": 2500, "currency": "EUR" } });
    let (status, d) = common::call(
        addr,
        "POST",
        "/v1/check",
        None,
        Some(("application/json", check.to_string())),
    )
    .await;
    assert_eq!(
        (status, d["verdict"]["kind"].as_str()),
        (200, Some("approval-required"))
    );
    let details = d["verdict"]["authorization_details"].to_string();
    let (status, ask) = common::call(
        addr,
        "POST",
        "/oauth/bc-authorize",
        Some(&alice),
        Some((
            "application/x-www-form-urlencoded",
            common::form(&[("authorization_details", &details)]),
        )),
    )
    .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    for (who, why) in [(&bob, "checked"), (&carol, "double-checked")] {
        let (status, v) = common::call(
            addr,
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(who),
            Some(("application/json", json!({ "reason": why }).to_string())),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }

    let (_, jwks_before) = common::call(addr, "GET", "/.well-known/jwks.json", None, None).await;

    // SIGKILL: nothing after the vote's commit gets a chance to run.
    server.kill().expect("kill");
    server.wait().expect("reaped");

    let (mut server, addr) = start(&db);
    let poll = common::form(&[
        ("grant_type", "urn:openid:params:grant-type:ciba"),
        ("auth_req_id", &id),
    ]);
    let (status, t) = common::call(
        addr,
        "POST",
        "/oauth/token",
        Some(&alice),
        Some(("application/x-www-form-urlencoded", poll.clone())),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    let action_token = t["access_token"].as_str().expect("token").to_owned();
    let (status, e) = common::call(
        addr,
        "POST",
        "/oauth/token",
        Some(&alice),
        Some(("application/x-www-form-urlencoded", poll)),
    )
    .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(
        e["error_description"],
        format!("the action token for `{id}` was already delivered")
    );

    // The signing key was persisted, not regenerated: the same keys are
    // published, and the engine accepts the token minted with it.
    let (_, jwks_after) = common::call(addr, "GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(jwks_after, jwks_before);
    let act = json!({ "method": "POST", "path": "/payments/pay_9/refund",
        "headers": { "authorization": format!("Bearer {action_token}") },
        "params": { "amount": 2500, "currency": "EUR" } });
    let (_, d) = common::call(
        addr,
        "POST",
        "/v1/check",
        None,
        Some(("application/json", act.to_string())),
    )
    .await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    server.kill().expect("kill");
    server.wait().expect("reaped");
}
