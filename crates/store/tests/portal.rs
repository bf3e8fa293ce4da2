//! The portal's state: sessions end by signing out or by time; a
//! confirmation code names one approval.

#[macro_use]
mod common;

use common::{ISSUER, T0, TTL, TestDb, new_approval, who};
use greenlight_store::portal::PortalSession;
use greenlight_store::{Decision, GrantMode, StoreError};
use serde_json::json;

backend_tests! {
    a_session_ends_when_signed_out_and_by_time,
    an_approval_keeps_its_first_confirmation_code,
    the_history_of_a_participant_is_picked_by_the_database,
}

async fn a_session_ends_when_signed_out_and_by_time(db: &mut TestDb) {
    let session = PortalSession {
        id_hash: "h1".to_owned(),
        issuer: "https://idp.example.com".to_owned(),
        subject: "ann".to_owned(),
        credential: json!({ "principal": { "subject": "ann" } }),
        csrf: "c".to_owned(),
        created_at: T0,
        expires_at: T0 + 100,
        ended_at: None,
    };
    db.store.create_session(&session).await.expect("stored");
    let read = db.store.session("h1").await.expect("read").expect("found");
    assert_eq!(read, session);
    assert!(read.is_live(T0 + 99) && !read.is_live(T0 + 100));
    assert!(db.store.end_session("h1", T0 + 10).await.expect("ended"));
    assert!(
        !db.store.end_session("h1", T0 + 11).await.expect("answers"),
        "once"
    );
    let ended = db.store.session("h1").await.expect("read").expect("kept");
    assert_eq!(ended.ended_at, Some(T0 + 10));
    assert!(!ended.is_live(T0 + 10));
    let events = db.store.audit_since(0, 100).await.expect("audit");
    let names: Vec<_> = events.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(names, ["portal.signed_in", "portal.signed_out"]);
    assert_eq!(db.store.purge_portal(T0 + 100).await.expect("purged"), 1);
    assert_eq!(db.store.session("h1").await.expect("read"), None);
}

async fn an_approval_keeps_its_first_confirmation_code(db: &mut TestDb) {
    let (a, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "d1", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let (b, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "d2", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let code = |id: &str, candidate: &str| {
        let store = db.store.clone();
        let (id, candidate) = (id.to_owned(), candidate.to_owned());
        async move {
            store
                .confirmation_code(&id, &candidate)
                .await
                .expect("answers")
        }
    };
    assert_eq!(code(&a.id, "BCDFGHJK").await.as_deref(), Some("BCDFGHJK"));
    assert_eq!(
        code(&a.id, "LMNPQRST").await.as_deref(),
        Some("BCDFGHJK"),
        "the first stays"
    );
    assert_eq!(
        code(&b.id, "BCDFGHJK").await,
        None,
        "another approval's code"
    );
    assert_eq!(code(&b.id, "LMNPQRST").await.as_deref(), Some("LMNPQRST"));
    let found = db
        .store
        .approval_for_code("BCDFGHJK")
        .await
        .expect("answers");
    assert_eq!(found.as_deref(), Some(a.id.as_str()));
    assert_eq!(
        db.store
            .approval_for_code("ZZZZZZZZ")
            .await
            .expect("answers"),
        None
    );
}

/// Decided means not pending, or pending past its expiry; a participant
/// is the requester or a voter, by issuer and subject.
async fn the_history_of_a_participant_is_picked_by_the_database(db: &mut TestDb) {
    let store = &db.store;
    let ask = |requester: &str, digest: &str, expires_at: i64| {
        let store = store.clone();
        let mut new = new_approval(requester, digest, 1, GrantMode::Once);
        new.expires_at = expires_at;
        async move {
            store
                .create_or_get_pending(new, T0)
                .await
                .expect("ask")
                .0
                .id
        }
    };
    let decided = ask("alice", "d1", T0 + TTL).await;
    let pending = ask("bob", "d2", T0 + 2 * TTL).await;
    let lapsed = ask("carol", "d3", T0 + TTL).await;
    store
        .vote(&decided, &who("ann"), Decision::Approve, Some("ok"), T0 + 1)
        .await
        .expect("votes");
    let ids =
        |list: Vec<greenlight_store::Approval>| list.into_iter().map(|a| a.id).collect::<Vec<_>>();
    let now = T0 + TTL;
    assert_eq!(
        ids(store.list_decided(None, None, 10, now).await.expect("all")),
        [lapsed.clone(), decided.clone()]
    );
    assert_eq!(
        ids(store
            .list_decided(None, None, 10, now - 1)
            .await
            .expect("all")),
        vec![decided.clone()],
        "not lapsed yet"
    );
    for (person, expected) in [
        ("ann", vec![decided.clone()]),
        ("alice", vec![decided.clone()]),
        ("carol", vec![lapsed.clone()]),
        ("bob", vec![]),
        ("dave", vec![]),
    ] {
        assert_eq!(
            ids(store
                .list_decided(Some((ISSUER, person)), None, 10, now)
                .await
                .expect("theirs")),
            expected,
            "{person}"
        );
    }
    assert!(
        ids(store
            .list_decided(Some(("https://other.example", "ann")), None, 10, now)
            .await
            .expect("none"))
        .is_empty(),
        "another issuer's ann took no part"
    );
    assert_eq!(
        ids(store
            .list_decided(None, Some(&lapsed), 10, now)
            .await
            .expect("page")),
        vec![decided.clone()]
    );
    assert_eq!(
        ids(store.list_decided(None, None, 1, now).await.expect("page")),
        vec![lapsed.clone()]
    );
    assert!(matches!(
        store.list_decided(None, Some("nope"), 10, now).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!ids(store.list_decided(None, None, 10, now).await.expect("all")).contains(&pending));
}
