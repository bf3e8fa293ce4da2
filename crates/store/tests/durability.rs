//! The audit log, signing keys, and state surviving a restart.

#[macro_use]
mod common;

use common::{T0, TestDb, event_names, new_approval, who};
use greenlight_store::{
    Decision, GrantMode, NewAuditEvent, SYSTEM_ACTOR, SigningKey, Status, Store, StoreError, events,
};
use serde_json::json;

backend_tests! {
    every_change_of_an_approval_is_audited_in_order,
    appended_audit_events_are_read_back_in_pages,
    the_database_refuses_to_change_or_delete_audit_events,
    state_survives_closing_and_reopening_the_store,
    signing_keys_list_newest_first_and_retired_keys_publish_until_their_deadline,
    inserting_a_signing_key_twice_is_a_conflict,
    a_revoked_key_is_withdrawn_at_once_and_audited,
    only_one_key_succeeds_a_key_even_when_inserted_at_once,
}

/// The whole refund story leaves one audit event per change, in the order
/// the changes happened, each with its actor and time.
async fn every_change_of_an_approval_is_audited_in_order(db: &mut TestDb) {
    let store = &db.store;
    let (approval, _) = store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Once), T0)
        .await
        .expect("ask");
    store
        .vote(
            &approval.id,
            &who("carol"),
            Decision::Approve,
            Some("ok"),
            T0 + 1,
        )
        .await
        .expect("carol approves");
    store
        .vote(&approval.id, &who("carol"), Decision::Approve, None, T0 + 2)
        .await
        .expect("carol approves again (no change)");
    store
        .vote(&approval.id, &who("dave"), Decision::Approve, None, T0 + 3)
        .await
        .expect("dave approves");
    assert_eq!(
        store.claim_delivery(&approval.id, "jti-1", T0 + 4).await,
        Ok(true)
    );
    store
        .consume_token("jti-1", T0 + 64, Some(&approval.id), "alice", T0 + 5)
        .await
        .expect("the token is used");

    let audit = store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    let trail: Vec<_> = audit
        .iter()
        .map(|event| (event.event.as_str(), event.actor.as_str(), event.at))
        .collect();
    assert_eq!(
        trail,
        vec![
            (events::APPROVAL_CREATED, "alice", T0),
            (events::APPROVAL_VOTE, "carol", T0 + 1),
            (events::APPROVAL_VOTE, "dave", T0 + 3),
            (events::APPROVAL_APPROVED, "dave", T0 + 3),
            (events::TOKEN_MINTED, "alice", T0 + 4),
            (events::TOKEN_CONSUMED, "alice", T0 + 5),
        ]
    );
    assert!(audit.windows(2).all(|pair| pair[0].id < pair[1].id));
    assert!(
        audit
            .iter()
            .all(|event| event.approval_id.as_deref() == Some(approval.id.as_str()))
    );
    assert_eq!(audit[1].detail["decision"], "approve");
    assert_eq!(audit[1].detail["reason"], "ok");
    assert_eq!(audit[3].detail["approvers"], json!(["carol", "dave"]));
    assert_eq!(audit[3].detail["quorum"], 2);

    let everything = store.audit_since(0, 100).await.expect("audit is readable");
    assert_eq!(everything, audit);
}

/// Events appended by the caller get increasing ids and are read back in
/// order, a page at a time.
async fn appended_audit_events_are_read_back_in_pages(db: &mut TestDb) {
    let store = &db.store;
    let mut appended = Vec::new();
    for n in 0..5 {
        let event = store
            .append_audit(NewAuditEvent {
                at: T0 + n,
                actor: SYSTEM_ACTOR.to_owned(),
                event: "bundle.loaded".to_owned(),
                approval_id: None,
                detail: json!({ "n": n }),
            })
            .await
            .expect("the event is appended");
        appended.push(event);
    }
    assert!(appended.windows(2).all(|pair| pair[0].id < pair[1].id));

    let first = store.audit_since(0, 2).await.expect("first page");
    assert_eq!(first, appended[..2].to_vec());
    let second = store
        .audit_since(first[1].id, 2)
        .await
        .expect("second page");
    assert_eq!(second, appended[2..4].to_vec());
    let third = store
        .audit_since(second[1].id, 2)
        .await
        .expect("third page");
    assert_eq!(third, appended[4..].to_vec());
    let done = store
        .audit_since(third[0].id, 2)
        .await
        .expect("nothing more");
    assert!(done.is_empty());
}

/// The log is append-only in the database itself: an UPDATE or DELETE on
/// `audit_events`, even outside the store, is refused.
async fn the_database_refuses_to_change_or_delete_audit_events(db: &mut TestDb) {
    db.store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let update = db
        .raw_execute("UPDATE audit_events SET actor = 'mallory'")
        .await
        .expect_err("updates are refused");
    assert!(update.contains("audit_events is append-only"), "{update}");
    let delete = db
        .raw_execute("DELETE FROM audit_events")
        .await
        .expect_err("deletes are refused");
    assert!(delete.contains("audit_events is append-only"), "{delete}");
    let audit = db
        .store
        .audit_since(0, 10)
        .await
        .expect("audit is readable");
    assert_eq!(event_names(&audit), vec![events::APPROVAL_CREATED]);
    assert_eq!(audit[0].actor, "alice");
}

/// After closing the store and opening the same database again (a
/// restart), approvals, votes, the ledger and the audit log are all there:
/// an approval decided before the restart still delivers its token exactly
/// once, and a token used before it is still a replay.
async fn state_survives_closing_and_reopening_the_store(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let approved = db
        .store
        .vote(&approval.id, &who("carol"), Decision::Approve, None, T0 + 1)
        .await
        .expect("carol approves")
        .approval;
    db.store
        .consume_token("jti-old", T0 + 60, None, "alice", T0 + 2)
        .await
        .expect("an earlier token is used");

    db.reopen().await;

    let store = &db.store;
    assert_eq!(store.get_approval(&approval.id).await, Ok(Some(approved)));
    assert_eq!(
        store.votes(&approval.id).await.map(|votes| votes.len()),
        Ok(1)
    );
    assert_eq!(
        store.claim_delivery(&approval.id, "jti-1", T0 + 3).await,
        Ok(true)
    );
    assert_eq!(
        store.claim_delivery(&approval.id, "jti-2", T0 + 4).await,
        Ok(false)
    );
    assert_eq!(
        store
            .consume_token("jti-old", T0 + 60, None, "alice", T0 + 5)
            .await,
        Err(StoreError::Replay {
            jti: "jti-old".to_owned()
        })
    );
    let (again, created) = store
        .create_or_get_pending(
            new_approval("alice", "digest-1", 1, GrantMode::Once),
            T0 + 6,
        )
        .await
        .expect("asking again after the decision");
    assert!(created);
    assert_ne!(again.id, approval.id);
    assert_eq!(again.status, Status::Pending);
    let audit = store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    assert_eq!(
        event_names(&audit),
        vec![
            events::APPROVAL_CREATED,
            events::APPROVAL_VOTE,
            events::APPROVAL_APPROVED,
            events::TOKEN_MINTED,
        ]
    );
}

/// A signing key created at `at`, active.
fn key(kid: &str, at: i64) -> SigningKey {
    SigningKey {
        kid: kid.to_owned(),
        algorithm: "EdDSA".to_owned(),
        private_key_pem: format!("-----BEGIN PRIVATE KEY-----\n{kid}\n-----END PRIVATE KEY-----\n"),
        public_jwk: json!({ "kty": "OKP", "crv": "Ed25519", "x": kid, "kid": kid }),
        created_at: at,
        retired_at: None,
        publish_until: None,
        succeeds: None,
    }
}

/// Keys come back newest first with their private keys intact; a retired
/// key stops signing but stays published until its deadline.
async fn signing_keys_list_newest_first_and_retired_keys_publish_until_their_deadline(
    db: &mut TestDb,
) {
    let store = &db.store;
    store
        .insert_signing_key(&key("k1", T0))
        .await
        .expect("k1 is stored");
    store
        .insert_signing_key(&key("k2", T0 + 100))
        .await
        .expect("k2 is stored");

    let keys = store.signing_keys().await.expect("keys are readable");
    assert_eq!(keys, vec![key("k2", T0 + 100), key("k1", T0)]);

    let retired = store
        .retire_signing_key("k1", T0 + 200, Some(T0 + 500))
        .await
        .expect("k1 is retired");
    assert_eq!(retired.retired_at, Some(T0 + 200));
    assert_eq!(retired.publish_until, Some(T0 + 500));
    assert!(!retired.is_active());
    assert!(retired.is_published(T0 + 499));
    assert!(!retired.is_published(T0 + 500));

    // Retiring again keeps the first retirement time.
    let again = store
        .retire_signing_key("k1", T0 + 300, None)
        .await
        .expect("k1 is retired again");
    assert_eq!(again.retired_at, Some(T0 + 200));
    assert_eq!(again.publish_until, None);
    assert!(!again.is_published(T0 + 301));

    assert_eq!(
        store.retire_signing_key("k9", T0, None).await,
        Err(StoreError::NotFound {
            kind: "signing key",
            id: "k9".to_owned()
        })
    );
    let audit = store.audit_since(0, 10).await.expect("audit is readable");
    assert_eq!(
        event_names(&audit),
        vec![
            events::KEY_CREATED,
            events::KEY_CREATED,
            events::KEY_RETIRED,
            events::KEY_RETIRED
        ]
    );
    assert!(
        audit
            .iter()
            .all(|event| !event.detail.to_string().contains("PRIVATE KEY"))
    );
}

/// A kid is stored once; a second key with the same kid is a conflict and
/// leaves the first untouched.
async fn inserting_a_signing_key_twice_is_a_conflict(db: &mut TestDb) {
    let store = &db.store;
    store
        .insert_signing_key(&key("k1", T0))
        .await
        .expect("k1 is stored");
    assert_eq!(
        store.insert_signing_key(&key("k1", T0 + 1)).await,
        Err(StoreError::Conflict("signing key k1 exists".to_owned()))
    );
    assert_eq!(store.signing_keys().await, Ok(vec![key("k1", T0)]));
}

/// Revoking withdraws a key now, active or retired and still published:
/// no longer signing, no longer published, audited; an unknown kid is
/// `NotFound` and audits nothing.
async fn a_revoked_key_is_withdrawn_at_once_and_audited(db: &mut TestDb) {
    let store = &db.store;
    for (kid, at) in [("k1", T0), ("k2", T0 + 100)] {
        store
            .insert_signing_key(&key(kid, at))
            .await
            .expect("stored");
    }
    store
        .retire_signing_key("k1", T0 + 200, Some(T0 + 900))
        .await
        .expect("k1 retired");
    let k1 = store.revoke_signing_key("k1", T0 + 300).await.expect("k1");
    let k2 = store.revoke_signing_key("k2", T0 + 300).await.expect("k2");
    assert_eq!(
        [
            (k1.retired_at, k1.publish_until),
            (k2.retired_at, k2.publish_until)
        ],
        [(Some(T0 + 200), None), (Some(T0 + 300), None)]
    );
    assert!(!k1.is_published(T0 + 300) && !k2.is_published(T0 + 300));
    assert_eq!(
        store.revoke_signing_key("k9", T0 + 300).await,
        Err(StoreError::NotFound {
            kind: "signing key",
            id: "k9".to_owned()
        })
    );
    let audit = store.audit_since(0, 10).await.expect("audit is readable");
    assert_eq!(
        event_names(&audit),
        vec![
            events::KEY_CREATED,
            events::KEY_CREATED,
            events::KEY_RETIRED,
            events::KEY_REVOKED,
            events::KEY_REVOKED
        ]
    );
    assert_eq!(audit[4].detail, json!({ "kid": "k2" }));
}

/// A URL naming neither backend is refused, showing only its scheme (the
/// rest may hold a password).
#[tokio::test]
async fn an_unsupported_url_is_refused_without_echoing_it() {
    let err = Store::connect("mysql://root:secret@localhost/db")
        .await
        .expect_err("mysql is not spoken");
    assert_eq!(err, StoreError::UnsupportedUrl("mysql".to_owned()));
    assert!(!err.to_string().contains("secret"));
}

/// `sqlite::memory:` gives a working throwaway store (one connection, so
/// the data is not lost between calls).
#[tokio::test]
async fn an_in_memory_sqlite_store_keeps_its_data_while_open() {
    let store = Store::connect("sqlite::memory:")
        .await
        .expect("the in-memory store opens");
    let (approval, _) = store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let stored = store.get_approval(&approval.id).await.expect("read works");
    assert_eq!(stored, Some(approval));
}

/// The succession index settles concurrent first starts and rotations: of
/// keys inserted at once that succeed the same key (`""`: the store's
/// first), exactly one is stored; the others are a conflict. Keys from
/// before succession was recorded (`None`) are not constrained.
async fn only_one_key_succeeds_a_key_even_when_inserted_at_once(db: &mut TestDb) {
    let store = &db.store;
    let candidates: Vec<SigningKey> = (0..4)
        .map(|i| SigningKey {
            succeeds: Some(String::new()),
            ..key(&format!("first-{i}"), T0)
        })
        .collect();
    let mut racing = tokio::task::JoinSet::new();
    for (i, k) in candidates.iter().cloned().enumerate() {
        let store = store.clone();
        racing.spawn(async move { (i, store.insert_signing_key(&k).await) });
    }
    let mut results: Vec<(usize, Result<(), StoreError>)> = racing.join_all().await;
    results.sort_by_key(|(i, _)| *i);
    let results: Vec<Result<(), StoreError>> = results.into_iter().map(|(_, r)| r).collect();
    let stored: Vec<&SigningKey> = candidates
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_ok())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(stored.len(), 1, "{results:?}");
    for (k, r) in candidates.iter().zip(&results) {
        if k.kid != stored[0].kid {
            assert_eq!(
                r,
                &Err(StoreError::Conflict(format!(
                    "signing key {} exists, or another key succeeds ``",
                    k.kid
                )))
            );
        }
    }
    let keys = store.signing_keys().await.expect("keys");
    assert_eq!(
        keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        vec![stored[0].kid.as_str()]
    );
    let next = SigningKey {
        succeeds: Some(stored[0].kid.clone()),
        ..key("second", T0 + 1)
    };
    store
        .insert_signing_key(&next)
        .await
        .expect("the successor");
    let rival = SigningKey {
        succeeds: Some(stored[0].kid.clone()),
        ..key("rival", T0 + 1)
    };
    assert!(matches!(
        store.insert_signing_key(&rival).await,
        Err(StoreError::Conflict(_))
    ));
    for kid in ["old-1", "old-2"] {
        store
            .insert_signing_key(&key(kid, T0 - 10))
            .await
            .expect("keys without succession are not constrained");
    }
}

/// A new SQLite store is readable by its owner only, and so are the files
/// SQLite keeps beside it: it holds approvals, the audit log and signing
/// keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_sqlite_file_is_private_to_its_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("greenlight.db");
    let store = greenlight_store::Store::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("the store opens");
    store
        .insert_signing_key(&key("k1", T0))
        .await
        .expect("a write, so the WAL exists");
    for name in ["greenlight.db", "greenlight.db-wal", "greenlight.db-shm"] {
        let mode = std::fs::metadata(dir.path().join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name} has mode {mode:o}");
    }
    store.close().await;
}

/// PostgreSQL over TLS, as the URL's `sslmode` says: `require` encrypts
/// the connection (the server sees it as SSL), and `verify-full` refuses a
/// server whose certificate no trusted authority signed (the test server's
/// is self-signed), rather than falling back to plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_honours_sslmode() {
    use sqlx::{Connection, PgConnection};
    let server = std::env::var("GREENLIGHT_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| common::DEFAULT_POSTGRES_URL.to_owned());
    let separator = if server.contains('?') { '&' } else { '?' };
    let name = format!("gl-tls-{}", greenlight_store::new_id().expect("id"));
    let store = greenlight_store::Store::connect(&format!(
        "{server}{separator}sslmode=require&application_name={name}"
    ))
    .await
    .expect("the store connects over TLS");
    let mut admin = PgConnection::connect(&server).await.expect("admin");
    let encrypted: Vec<bool> = sqlx::query_scalar(
        "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
         WHERE a.application_name = $1",
    )
    .bind(&name)
    .fetch_all(&mut admin)
    .await
    .expect("pg_stat_ssl");
    assert!(
        !encrypted.is_empty() && encrypted.iter().all(|e| *e),
        "the store's connections are not all encrypted: {encrypted:?}"
    );
    store.close().await;
    let refused =
        greenlight_store::Store::connect(&format!("{server}{separator}sslmode=verify-full"))
            .await
            .expect_err("an untrusted certificate is refused");
    assert!(
        refused.to_string().to_lowercase().contains("certificate"),
        "{refused}"
    );
}
