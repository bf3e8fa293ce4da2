//! Replicas on one PostgreSQL database: started at the same instant on an
//! empty database, they publish one JWKS, and a token minted by any of them
//! verifies on every other from the first request (no sweep in between).

use common::server::*;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};

mod common;

/// How many fresh databases the race is run on. The replicas once
/// generated different keys at first start in 2 runs of 4.
const ROUNDS: usize = 20;

/// A fresh schema of the test database, as a store URL, and a way to drop it.
async fn fresh_schema(round: usize) -> (String, String, String) {
    let server = std::env::var("GREENLIGHT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let schema = format!(
        "gl_replicas_{}_{round}",
        greenlight_store::new_id().expect("randomness")
    );
    let mut admin = PgConnection::connect(&server).await.unwrap_or_else(|e| {
        panic!("PostgreSQL at {server} is unreachable ({e}); these tests never skip")
    });
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .await
        .expect("schema");
    let separator = if server.contains('?') { '&' } else { '?' };
    let url = format!("{server}{separator}options[search_path]={schema}");
    (url, server, schema)
}

async fn drop_schema(server: &str, schema: &str) {
    let mut admin = PgConnection::connect(server).await.expect("admin");
    admin
        .execute(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .await
        .expect("drop");
}

/// Three replicas started at once on an empty database, twenty times: one
/// JWKS with one key, and every token minted by one replica is active at
/// every other and allowed by another's enforcement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_started_at_once_share_one_key_from_the_first_request() {
    let alice = token("alice", "payments:refund", &[]);
    for round in 0..ROUNDS {
        let (url, server, schema) = fresh_schema(round).await;
        let (a, b, c) = tokio::join!(
            Server::start_on(Settings::default(), &url),
            Server::start_on(Settings::default(), &url),
            Server::start_on(Settings::default(), &url),
        );
        let replicas = [&a, &b, &c];
        let mut published = Vec::new();
        for r in replicas {
            let (status, jwks) = r.call("GET", "/.well-known/jwks.json", None, None).await;
            assert_eq!(status, 200);
            published.push(jwks);
        }
        assert_eq!(
            published[0]["keys"].as_array().map(Vec::len),
            Some(1),
            "round {round}: one key, {}",
            published[0]
        );
        assert!(
            published.iter().all(|j| *j == published[0]),
            "round {round}: the replicas publish different keys: {published:?}"
        );
        for (i, minter) in replicas.iter().enumerate() {
            let at = minter.exchanged(50, &alice).await;
            for r in replicas {
                let (status, v) = r.form("/oauth/introspect", &alice, &[("token", &at)]).await;
                assert_eq!(
                    (status, v["active"].as_bool()),
                    (200, Some(true)),
                    "round {round}: a token minted by replica {i} is not active elsewhere: {v}"
                );
            }
            let other = replicas[(i + 1) % replicas.len()];
            let (_, d) = other.json("POST", "/v1/check", None, refund(50, &at)).await;
            assert_eq!(
                d["verdict"]["kind"],
                json!("allow"),
                "round {round}: replica {i}'s token at the next replica: {d}"
            );
        }
        drop((a, b, c));
        drop_schema(&server, &schema).await;
    }
}

/// `greenlight keys revoke` on a shared PostgreSQL store: both replicas
/// stop publishing the key and refuse the tokens it signed without waiting
/// for a sweep, and a new key signs at once on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_key_is_refused_by_every_replica_at_once() {
    let alice = token("alice", "payments:refund", &[]);
    let (url, server, schema) = fresh_schema(0).await;
    // No sweep during the test: only the announcement can reload the keys.
    let quiet =
        || -> Settings { toml::from_str("[housekeeping]\ninterval = 3600").expect("settings") };
    let (a, b) = tokio::join!(
        Server::start_on(quiet(), &url),
        Server::start_on(quiet(), &url),
    );
    let leaked = a.exchanged(50, &alice).await;
    let kid = kid_of(&leaked);
    let (_, d) = b.json("POST", "/v1/check", None, refund(50, &leaked)).await;
    assert_eq!(d["verdict"]["kind"], json!("allow"), "before: {d}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["keys", "revoke", "--store", &url, &kid])
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!(
            "revoked {kid}: no longer published or signing; servers on PostgreSQL drop it now, others at their next sweep\n"
        )
    );

    let published = |jwks: &serde_json::Value| {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .any(|k| k["kid"] == json!(kid))
    };
    for r in [&a, &b] {
        let mut tries = 0;
        loop {
            let (_, jwks) = r.call("GET", "/.well-known/jwks.json", None, None).await;
            if !published(&jwks) {
                assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(1), "{jwks}");
                break;
            }
            tries += 1;
            assert!(tries < 100, "still published after 10 s: {jwks}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    for r in [&a, &b] {
        let (_, d) = r.json("POST", "/v1/check", None, refund(50, &leaked)).await;
        assert_eq!(
            (
                &d["verdict"]["kind"],
                &d["verdict"]["code"],
                &d["verdict"]["message"]
            ),
            (
                &json!("deny"),
                &json!("token-unknown-key"),
                &json!(format!("no key with kid `{kid}`"))
            ),
            "{d}"
        );
        let (status, v) = r
            .form("/oauth/introspect", &alice, &[("token", &leaked)])
            .await;
        assert_eq!((status, &v), (200, &json!({ "active": false })));
    }
    // A new key signs on both, and each accepts the other's tokens.
    let fresh = a.exchanged(51, &alice).await;
    let new_kid = kid_of(&fresh);
    assert_ne!(new_kid, kid);
    assert_eq!(kid_of(&b.exchanged(52, &alice).await), new_kid);
    let (_, d) = b.json("POST", "/v1/check", None, refund(51, &fresh)).await;
    assert_eq!(d["verdict"]["kind"], json!("allow"), "after: {d}");

    // Revoking a key that does not exist says so.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["keys", "revoke", "--store", &url, "no-such-kid"])
        .output()
        .expect("runs");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).as_ref()
        ),
        (Some(2), "greenlight: signing key no-such-kid not found\n")
    );
    drop((a, b));
    drop_schema(&server, &schema).await;
}
