//! The webhook outbox: stored before attempted, claimed once per attempt,
//! retried or given up on, on both backends.

#[macro_use]
mod common;

use common::{T0, TestDb, new_approval};
use greenlight_store::{GrantMode, NewWebhookDelivery, Quota};

backend_tests! {
    a_delivery_is_claimed_once_then_retried_then_delivered,
    concurrent_claims_take_each_delivery_once,
    a_delivery_given_up_on_is_never_claimed_again,
    a_new_approval_commits_with_its_announcements_and_only_a_new_one,
}

fn delivery(id: &str) -> NewWebhookDelivery {
    NewWebhookDelivery {
        id: id.to_owned(),
        hook: "h".repeat(64),
        event: "approval.requested".to_owned(),
        body: format!("{{\"id\":\"{id}\"}}"),
    }
}

/// Due at once, claimed once (the lease hides it), retried when its retry
/// time comes, then delivered and gone.
async fn a_delivery_is_claimed_once_then_retried_then_delivered(db: &mut TestDb) {
    db.store
        .enqueue_deliveries(&[delivery("d1")], T0)
        .await
        .expect("stored");
    assert_eq!(db.store.pending_deliveries().await, Ok(1));
    let first = db
        .store
        .claim_due_deliveries(T0, T0 + 30, 10)
        .await
        .expect("claim");
    assert_eq!(
        first
            .iter()
            .map(|d| (d.id.as_str(), d.attempt))
            .collect::<Vec<_>>(),
        vec![("d1", 1)]
    );
    assert_eq!(first[0].body, "{\"id\":\"d1\"}");
    assert_eq!(
        db.store.claim_due_deliveries(T0 + 1, T0 + 31, 10).await,
        Ok(vec![]),
        "leased"
    );
    db.store
        .delivery_failed("d1", T0 + 1, Some(T0 + 2), "status 500")
        .await
        .expect("recorded");
    assert_eq!(
        db.store.claim_due_deliveries(T0 + 1, T0 + 31, 10).await,
        Ok(vec![])
    );
    let second = db
        .store
        .claim_due_deliveries(T0 + 2, T0 + 32, 10)
        .await
        .expect("claim");
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    db.store
        .delivery_succeeded("d1", T0 + 2)
        .await
        .expect("recorded");
    assert_eq!(db.store.pending_deliveries().await, Ok(0));
    assert_eq!(
        db.store.claim_due_deliveries(T0 + 99, T0 + 129, 10).await,
        Ok(vec![])
    );
}

/// Eight workers claim at once: each delivery goes to exactly one.
async fn concurrent_claims_take_each_delivery_once(db: &mut TestDb) {
    let all: Vec<NewWebhookDelivery> = (0..5).map(|n| delivery(&format!("d{n}"))).collect();
    db.store.enqueue_deliveries(&all, T0).await.expect("stored");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        tasks.spawn(async move {
            store
                .claim_due_deliveries(T0, T0 + 30, 10)
                .await
                .expect("claim")
        });
    }
    let mut ids: Vec<String> = tasks
        .join_all()
        .await
        .into_iter()
        .flatten()
        .map(|d| d.id)
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["d0", "d1", "d2", "d3", "d4"]);
}

/// Given up on: no longer pending, never claimed again.
async fn a_delivery_given_up_on_is_never_claimed_again(db: &mut TestDb) {
    db.store
        .enqueue_deliveries(&[delivery("d1")], T0)
        .await
        .expect("stored");
    db.store
        .claim_due_deliveries(T0, T0 + 30, 10)
        .await
        .expect("claim");
    db.store
        .delivery_failed("d1", T0, None, "connection refused")
        .await
        .expect("recorded");
    assert_eq!(db.store.pending_deliveries().await, Ok(0));
    assert_eq!(
        db.store.claim_due_deliveries(T0 + 999, T0 + 1029, 10).await,
        Ok(vec![])
    );
}

/// Announcements are stored with the approval that creates them, built
/// from the stored approval; asking again for the pending one announces
/// nothing.
async fn a_new_approval_commits_with_its_announcements_and_only_a_new_one(db: &mut TestDb) {
    let announce = |a: &greenlight_store::Approval| vec![delivery(&format!("for-{}", a.id))];
    let (approval, created) = db
        .store
        .create_or_get_pending_announced(
            new_approval("alice", "digest-1", 1, GrantMode::Once),
            T0,
            Quota::UNLIMITED,
            &announce,
        )
        .await
        .expect("created");
    assert!(created);
    let due = db
        .store
        .claim_due_deliveries(T0, T0 + 30, 10)
        .await
        .expect("claim");
    assert_eq!(
        due.iter().map(|d| d.id.clone()).collect::<Vec<_>>(),
        vec![format!("for-{}", approval.id)]
    );
    let (again, created) = db
        .store
        .create_or_get_pending_announced(
            new_approval("alice", "digest-1", 1, GrantMode::Once),
            T0 + 1,
            Quota::UNLIMITED,
            &announce,
        )
        .await
        .expect("found");
    assert!(!created);
    assert_eq!(again.id, approval.id);
    assert_eq!(
        db.store.pending_deliveries().await,
        Ok(1),
        "no second announcement"
    );
}
