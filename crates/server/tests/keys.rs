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
