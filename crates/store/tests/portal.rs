//! The portal's state: a sign-in's `state` finishes one sign-in, once;
//! sessions end by signing out or by time; a confirmation code names one
//! approval.

#[macro_use]
mod common;

use common::{T0, TestDb, new_approval};
use greenlight_store::GrantMode;
use greenlight_store::portal::{PortalLogin, PortalSession};
use serde_json::json;

backend_tests! {
    a_sign_in_is_taken_once_and_never_after_it_expired,
    a_session_ends_when_signed_out_and_by_time,
    an_approval_keeps_its_first_confirmation_code,
}

fn login(state_hash: &str) -> PortalLogin {
    PortalLogin {
        state_hash: state_hash.to_owned(),
        nonce: "n".to_owned(),
        verifier: "v".to_owned(),
        return_to: "/portal".to_owned(),
        created_at: T0,
        expires_at: T0 + 600,
    }
}

/// Eight callbacks racing with one `state`: exactly one gets the sign-in;
/// one that comes after its expiry gets nothing.
async fn a_sign_in_is_taken_once_and_never_after_it_expired(db: &mut TestDb) {
    db.store.begin_login(&login("s1")).await.expect("stored");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        tasks.spawn(async move { store.take_login("s1", T0 + 5).await.expect("answers") });
    }
    let taken: Vec<_> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(taken, vec![login("s1")]);
    db.store.begin_login(&login("s2")).await.expect("stored");
    assert_eq!(
        db.store.take_login("s2", T0 + 600).await.expect("answers"),
        None
    );
    assert_eq!(
        db.store.take_login("s2", T0 + 1).await.expect("answers"),
        None,
        "gone"
    );
    assert_eq!(db.store.purge_portal(T0 + 601).await.expect("purged"), 0);
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
