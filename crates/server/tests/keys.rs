//! `greenlight serve` over real HTTP: Greenlight's signing keys: published, discovered, rotated.

use common::server::*;
use serde_json::{Value, json};

mod common;

/// The keys action tokens are signed with are published, with RFC 8414 metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_and_metadata_are_published() {
    let srv = Server::start().await;
    let (status, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (
            keys[0]["kty"].as_str(),
            keys[0]["crv"].as_str(),
            keys[0]["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let (_, meta) = srv
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(meta["issuer"], "https://greenlight.example.com");
    assert_eq!(
        meta["token_endpoint"],
        format!("http://{}/oauth/token", srv.addr)
    );
    assert_eq!(meta["grant_types_supported"], json!([CIBA, EXCHANGE]));
    let (status, h) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")));
}

/// Rotation: `rotate_after` adds the next key at a sweep; it is published
/// before it signs (two sweeps), tokens the old key signed keep verifying
/// while it is published, and it is withdrawn afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_the_old_key_stays_published_until_its_tokens_expire() {
    let settings: Settings =
        toml::from_str("[signing]\nrotate_after = 3600\nretain_for = 600").expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let exchange = |details: String| {
        let (srv, alice) = (&srv, alice.clone());
        async move {
            let (status, t) = srv
                .token_endpoint(&[
                    ("grant_type", EXCHANGE),
                    ("subject_token", &alice),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("authorization_details", &details),
                ])
                .await;
            assert_eq!(status, 200, "{t}");
            t["access_token"].as_str().expect("token").to_owned()
        }
    };
    let old = exchange(refund_details(50)).await;
    let old_kid = kid_of(&old);

    let kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect()
    };

    // Not yet due: a sweep keeps the key; a token minted now has the old key.
    srv.advance(3599);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let late = exchange(refund_details(51)).await;
    assert_eq!(kid_of(&late), old_kid);

    // Due: the sweep adds the next key and publishes it, but the old key
    // still signs, so every replica can fetch the new one first.
    srv.advance(1);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    let published = kids(&jwks);
    assert_eq!(published.len(), 2, "{jwks}");
    assert_eq!(published[1], old_kid);
    let new_kid = published[0].clone();
    assert_eq!(kid_of(&exchange(refund_details(52)).await), old_kid);

    // Two sweeps later (grace 60 s) the new key signs; the old one is
    // retired but still published.
    srv.advance(60);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let new = exchange(refund_details(53)).await;
    assert_eq!(kid_of(&new), new_kid);
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(kids(&jwks), vec![new_kid.clone(), old_kid.clone()]);
    let keys = srv.state.store.signing_keys().await.expect("keys");
    let old = keys.iter().find(|k| k.kid == old_kid).expect("old key");
    assert_eq!(
        (old.retired_at, old.publish_until),
        (Some(T0 + 3660), Some(T0 + 3660 + 600 + 60))
    );

    // The token the old key signed just before still verifies and works.
    let (_, intro) = srv
        .form("/oauth/introspect", &alice, &[("token", &late)])
        .await;
    assert_eq!(intro["active"], true, "{intro}");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(51, &late)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(53, &new)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");

    // When its publication ends, the old key is withdrawn.
    srv.advance(659);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(kids(&jwks), vec![new_kid.clone(), old_kid.clone()]);
    srv.advance(1);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(kids(&jwks), vec![new_kid]);
}

/// Settings that seal signing keys under the key-encryption key in `file`.
fn sealed_settings(file: &std::path::Path) -> Settings {
    toml::from_str(&format!(
        "[signing]\nkey_encryption_key_file = \"{}\"",
        file.display()
    ))
    .expect("settings")
}

/// Prepares a server on the store in `dir` with `settings`, as `serve`
/// would at start; the error when it refuses.
async fn prepared(dir: &std::path::Path, settings: Settings) -> Result<(), String> {
    let config = greenlight::serve::ServeConfig {
        bundle: root().join("examples/bundle"),
        store: format!("sqlite://{}", dir.join("greenlight.db").display()),
        public_url: None,
        settings,
        development: true,
        component: None,
    };
    greenlight::serve::prepare(
        &config,
        "127.0.0.1:0".parse().expect("addr"),
        greenlight::serve::Clock::new(|| u64::try_from(T0).unwrap_or(0)),
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// With a key-encryption key the signing key is sealed in the store: no
/// private key is readable there, the server signs, and a restart needs
/// the same key (another, or none, is refused by name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_at_rest_under_the_key_encryption_key() {
    let secrets = tempfile::tempdir().expect("tempdir");
    let kek = secrets.path().join("kek");
    std::fs::write(&kek, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n").expect("kek");
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    let srv = Server::start_on(sealed_settings(&kek), &store).await;
    let alice = token("alice", "payments:refund", &[]);
    let at = srv.exchanged(50, &alice).await;
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    let keys = srv.state.store.signing_keys().await.expect("keys");
    assert_eq!(keys.len(), 1);
    assert!(
        keys[0].private_key_pem.starts_with("greenlight-sealed:v1:")
            && !keys[0].private_key_pem.contains("PRIVATE KEY"),
        "stored in the clear"
    );
    for file in ["greenlight.db", "greenlight.db-wal"] {
        let raw = std::fs::read(dir.path().join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&raw).contains("BEGIN PRIVATE KEY"),
            "a private key is readable in {file}"
        );
    }
    let kid = keys[0].kid.clone();
    drop(srv);

    let other = secrets.path().join("other");
    std::fs::write(&other, "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=").expect("kek");
    assert_eq!(
        prepared(dir.path(), sealed_settings(&other)).await,
        Err(format!(
            "signing key `{kid}` cannot be opened with this key-encryption key"
        ))
    );
    assert_eq!(
        prepared(dir.path(), Settings::default()).await,
        Err(format!(
            "signing key `{kid}` is sealed with a key-encryption key: set [signing] key_encryption_key_env or key_encryption_key_file"
        ))
    );
    assert_eq!(prepared(dir.path(), sealed_settings(&kek)).await, Ok(()));
}

/// Runs the `greenlight` binary with `args`: exit code, stdout, stderr.
fn greenlight(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `greenlight keys revoke` on SQLite, as after a leak: at the server's
/// next sweep the key is no longer published, its tokens are refused, and
/// a new key signs; `keys list` shows it revoked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_withdrawn_at_the_next_sweep() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    let srv = Server::start_on(Settings::default(), &store).await;
    let alice = token("alice", "payments:refund", &[]);
    let leaked = srv.exchanged(50, &alice).await;
    let kid = kid_of(&leaked);

    let (code, out, err) = greenlight(&["keys", "revoke", "--store", &store, &kid]);
    assert_eq!((code, err.as_str()), (Some(0), ""), "{out}");
    assert_eq!(
        out,
        format!(
            "revoked {kid}: no longer published or signing; servers on PostgreSQL drop it now, others at their next sweep\n"
        )
    );
    greenlight::serve::sweep(&srv.state).await.expect("sweep");

    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(published.len(), 1, "{jwks}");
    assert_ne!(published[0], kid);
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(50, &leaked))
        .await;
    assert_eq!(
        (&d["verdict"]["code"], &d["verdict"]["message"]),
        (
            &json!("token-unknown-key"),
            &json!(format!("no key with kid `{kid}`"))
        ),
        "{d}"
    );
    let fresh = srv.exchanged(51, &alice).await;
    assert_eq!(kid_of(&fresh), published[0]);
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(51, &fresh))
        .await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");

    let (code, out, _) = greenlight(&["keys", "list", "--store", &store]);
    assert_eq!(code, Some(0));
    let mut states: Vec<(&str, &str)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0], f[2])
        })
        .collect();
    // Both were created in the same (test) second, so in either order.
    states.sort_unstable_by_key(|s| s.1);
    assert_eq!(
        states,
        vec![(published[0], "active"), (kid.as_str(), "revoked")]
    );

    // Revoking twice keeps it revoked; an unknown key is named (and a kid
    // may begin with `-`, as a base64url thumbprint can).
    assert_eq!(
        greenlight(&["keys", "revoke", "--store", &store, &kid]).0,
        Some(0)
    );
    assert_eq!(
        greenlight(&["keys", "revoke", "--store", &store, "-nope"]),
        (
            Some(2),
            String::new(),
            "greenlight: signing key -nope not found\n".to_owned()
        )
    );

    // The replacement revoked in the same second: a third key follows it
    // (the succession, not the creation time, says which key is last).
    let second = published[0].to_owned();
    let (code, _, err) = greenlight(&["keys", "revoke", "--store", &store, &second]);
    assert_eq!((code, err.as_str()), (Some(0), ""));
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let third = kid_of(&srv.exchanged(52, &alice).await);
    assert!(third != kid && third != second, "{third}");
    let keys = srv.state.store.signing_keys().await.expect("keys");
    let succeeds = keys
        .iter()
        .find(|k| k.kid == third)
        .and_then(|k| k.succeeds.clone());
    assert_eq!(succeeds, Some(second));
}
