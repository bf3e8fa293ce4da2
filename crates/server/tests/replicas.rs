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
