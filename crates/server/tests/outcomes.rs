//! `greenlight serve` over real HTTP: every outcome of an approval is told
//! to the webhooks, so the requester's side learns it without polling: a
//! denial, an approval, a revocation, and an expiry the sweep finds.

use common::server::*;
use greenlight::serve::settings::{Webhook, WebhookFormat};
use serde_json::{Value, json};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outcome_is_told_to_the_webhooks() {
    let (hooks, seen) = common::recorder().await;
    let srv = Server::start_with(Settings {
        webhooks: vec![Webhook {
            url: format!("http://{hooks}/events"),
            secret_env: None,
            secret_file: None,
            format: WebhookFormat::Greenlight,
            attempts: Some(1),
            timeout: Some(5),
        }],
        ..Settings::default()
    })
    .await;
    let alice = token("alice", "payments:refund", &[]);
    let (bob, carol) = (
        approver("bob", &["finance"]),
        approver("carol", &["finance"]),
    );
    let denied = srv.ask(&alice, &refund_details(500)).await;
    let revoked = srv.ask(&alice, &refund_details(600)).await;
    let lapsed = srv.ask(&alice, &refund_details(700)).await;
    let vote = |id: &str, who: &str, what: &str| {
        let path = format!("/v1/approvals/{id}/{what}");
        let who = who.to_owned();
        let srv = &srv;
        async move {
            let (status, v) = srv
                .json("POST", &path, Some(&who), json!({ "reason": "checked" }))
                .await;
            assert_eq!(status, 200, "{v}");
        }
    };
    vote(&denied, &bob, "deny").await;
    vote(&revoked, &bob, "approve").await;
    vote(&revoked, &carol, "approve").await;
    vote(&revoked, &bob, "revoke").await;
    // Every delivery so far is done before the test clock jumps (a jump
    // would make an attempt still in flight look abandoned).
    common::recorded(&seen, "/events", 6).await;
    for _ in 0..200 {
        if srv.state.store.pending_deliveries().await.expect("outbox") == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(
        srv.state.store.pending_deliveries().await.expect("outbox"),
        0
    );
    srv.advance(901);
    greenlight::serve::sweep(&srv.state).await.expect("sweeps");
    let events = common::recorded(&seen, "/events", 7).await;
    // Nothing more comes.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let events = if seen.lock().expect("lock").len() == events.len() {
        events
    } else {
        common::recorded(&seen, "/events", 8).await
    };
    let mut told: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            (
                text(&e["type"]),
                text(&e["approval"]["id"]),
                text(&e["approval"]["status"]),
            )
        })
        .collect();
    told.sort();
    let mut expected = vec![
        (
            "approval.requested".to_owned(),
            denied.clone(),
            "pending".to_owned(),
        ),
        (
            "approval.requested".to_owned(),
            revoked.clone(),
            "pending".to_owned(),
        ),
        (
            "approval.requested".to_owned(),
            lapsed.clone(),
            "pending".to_owned(),
        ),
        (
            "approval.denied".to_owned(),
            denied.clone(),
            "denied".to_owned(),
        ),
        (
            "approval.approved".to_owned(),
            revoked.clone(),
            "approved".to_owned(),
        ),
        (
            "approval.revoked".to_owned(),
            revoked.clone(),
            "revoked".to_owned(),
        ),
        (
            "approval.expired".to_owned(),
            lapsed.clone(),
            "expired".to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(told, expected, "each outcome once, nothing else");
    srv.stop().await;
}
