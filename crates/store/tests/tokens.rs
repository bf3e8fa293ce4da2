//! Action tokens: delivered exactly once, consumed exactly once.

#[macro_use]
mod common;

use common::{T0, TestDb, event_names, new_approval, who};
use greenlight_store::{ConsumedToken, Decision, GrantMode, StoreError, events};

backend_tests! {
    claim_delivery_succeeds_exactly_once_under_concurrency,
    claim_delivery_of_an_unapproved_or_unknown_approval_is_refused,
    second_consume_of_a_jti_is_a_replay,
    eight_concurrent_consumes_of_one_jti_give_exactly_one_ok,
    purge_forgets_only_ledger_entries_past_their_expiry,
}

/// Eight pollers racing for the token of one approved approval: exactly one
/// may hand it out, the approval remembers which `jti`, and one
/// `token.minted` is audited.
async fn claim_delivery_succeeds_exactly_once_under_concurrency(db: &mut TestDb) {
    let approval = common::approved(db, "digest-1", GrantMode::Once).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..8 {
        let store = db.store.clone();
        let id = approval.id.clone();
        tasks.spawn(async move {
            let jti = format!("jti-{n}");
            let claimed = store.claim_delivery(&id, &jti, T0 + 2).await;
            (jti, claimed.expect("every claim gets an answer"))
        });
    }
    let winners: Vec<String> = tasks
        .join_all()
        .await
        .into_iter()
        .filter_map(|(jti, claimed)| claimed.then_some(jti))
        .collect();
    assert_eq!(winners.len(), 1);

    let stored = db
        .store
        .get_approval(&approval.id)
        .await
        .expect("read works")
        .expect("the approval exists");
    assert_eq!(stored.delivered_at, Some(T0 + 2));
    assert_eq!(stored.delivered_jti.as_ref(), Some(&winners[0]));
    assert_eq!(
        db.store.claim_delivery(&approval.id, "late", T0 + 3).await,
        Ok(false)
    );

    let audit = db
        .store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    let minted: Vec<_> = audit
        .iter()
        .filter(|event| event.event == events::TOKEN_MINTED)
        .collect();
    assert_eq!(minted.len(), 1);
    assert_eq!(minted[0].actor, "alice");
    assert_eq!(minted[0].detail["jti"], winners[0].as_str());
}

/// No token for a pending, denied or unknown approval.
async fn claim_delivery_of_an_unapproved_or_unknown_approval_is_refused(db: &mut TestDb) {
    let (pending, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Once), T0)
        .await
        .expect("ask");
    assert_eq!(
        db.store.claim_delivery(&pending.id, "jti-1", T0 + 1).await,
        Ok(false)
    );
    db.store
        .vote(&pending.id, &who("carol"), Decision::Deny, None, T0 + 2)
        .await
        .expect("carol denies");
    assert_eq!(
        db.store.claim_delivery(&pending.id, "jti-1", T0 + 3).await,
        Ok(false)
    );
    assert_eq!(
        db.store.claim_delivery("nope", "jti-1", T0 + 3).await,
        Ok(false)
    );
    let stored = db
        .store
        .get_approval(&pending.id)
        .await
        .expect("read works")
        .expect("the approval exists");
    assert_eq!(stored.delivered_at, None);
    assert_eq!(stored.delivered_jti, None);
}

/// The first use of a single-use token is recorded (and audited); the
/// second is a replay.
async fn second_consume_of_a_jti_is_a_replay(db: &mut TestDb) {
    let approval = common::approved(db, "digest-1", GrantMode::Once).await;
    let store = &db.store;
    assert_eq!(
        store
            .consume_token("jti-1", T0 + 60, Some(&approval.id), "alice", T0 + 5)
            .await,
        Ok(())
    );
    assert_eq!(
        store
            .consume_token("jti-1", T0 + 60, Some(&approval.id), "alice", T0 + 6)
            .await,
        Err(StoreError::Replay {
            jti: "jti-1".to_owned()
        })
    );
    assert_eq!(
        store.consumed_token("jti-1").await,
        Ok(Some(ConsumedToken {
            jti: "jti-1".to_owned(),
            expires_at: T0 + 60,
            consumed_at: T0 + 5,
        }))
    );
    assert_eq!(store.consumed_token("jti-2").await, Ok(None));

    let audit = store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    let consumed: Vec<_> = audit
        .iter()
        .filter(|event| event.event == events::TOKEN_CONSUMED)
        .collect();
    assert_eq!(consumed.len(), 1);
    assert_eq!(consumed[0].at, T0 + 5);
    assert_eq!(consumed[0].actor, "alice");
    assert_eq!(consumed[0].detail["jti"], "jti-1");
}

/// Eight tasks using one token at once: exactly one succeeds, seven are
/// replays, and one `token.consumed` is audited.
async fn eight_concurrent_consumes_of_one_jti_give_exactly_one_ok(db: &mut TestDb) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        tasks.spawn(async move {
            store
                .consume_token("jti-race", T0 + 60, None, "alice", T0)
                .await
        });
    }
    let results = tasks.join_all().await;
    let ok = results.iter().filter(|result| result.is_ok()).count();
    let replays = results
        .iter()
        .filter(|result| {
            **result
                == Err(StoreError::Replay {
                    jti: "jti-race".to_owned(),
                })
        })
        .count();
    assert_eq!((ok, replays), (1, 7));

    let audit = db
        .store
        .audit_since(0, 100)
        .await
        .expect("audit is readable");
    assert_eq!(event_names(&audit), vec![events::TOKEN_CONSUMED]);
}

/// Purging forgets used tokens whose expiry has passed and keeps the rest,
/// which stay replays.
async fn purge_forgets_only_ledger_entries_past_their_expiry(db: &mut TestDb) {
    let store = &db.store;
    for (jti, expires_at) in [("old", T0 + 10), ("edge", T0 + 50), ("new", T0 + 100)] {
        store
            .consume_token(jti, expires_at, None, "alice", T0)
            .await
            .expect("first use");
    }
    assert_eq!(store.purge_ledger(T0 + 50).await, Ok(1));
    assert_eq!(store.consumed_token("old").await, Ok(None));
    assert!(
        store
            .consumed_token("edge")
            .await
            .expect("read works")
            .is_some()
    );
    assert_eq!(
        store
            .consume_token("new", T0 + 100, None, "alice", T0 + 51)
            .await,
        Err(StoreError::Replay {
            jti: "new".to_owned()
        })
    );
    assert_eq!(store.purge_ledger(T0 + 101).await, Ok(2));
}
