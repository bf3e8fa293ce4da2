//! AuthZEN access requests in the store, on both backends: idempotency
//! keys (the first record stands), callbacks told once in the transaction
//! that decides the task (approved, denied, expired by the sweep or on a
//! new ask, cancelled), a cancellation that never revokes an approval
//! already given, and bulk tasks over several approvals (their key, their
//! items, their callback told once the aggregate is terminal).

#[macro_use]
mod common;

use common::{T0, TTL, TestDb, new_approval, who};
use greenlight_store::bundles::{Bundle, BundleItem, BundleOpened};
use greenlight_store::{
    AccessRequestKey, Decision, GrantMode, NewTaskCallback, Quota, Status, StoreError,
};
use serde_json::{Value, json};

backend_tests! {
    the_first_idempotency_key_stands_and_is_purged_after_its_time,
    a_callback_is_told_once_when_its_task_is_decided,
    a_callback_is_told_of_expiry_and_cancellation,
    a_callback_on_a_decided_task_is_not_stored,
    a_cancellation_never_revokes_an_approved_task,
    an_unused_approval_is_found_by_its_requester_until_claimed,
    a_bulk_task_stands_with_its_key_and_is_purged_after_its_time,
    a_bulk_task_refuses_items_that_are_not_its_requesters,
    a_bulk_callback_is_told_once_when_the_last_item_ends,
}

fn key(caller: &str, key: &str, hash: &str, approval: &str, keep_until: i64) -> AccessRequestKey {
    AccessRequestKey {
        caller: caller.to_owned(),
        idempotency_key: key.to_owned(),
        body_hash: hash.to_owned(),
        approval_id: approval.to_owned(),
        bundle_id: None,
        created_at: T0,
        keep_until,
    }
}

fn callback(hook: &str, state: Option<Value>, events: &[&str]) -> NewTaskCallback {
    NewTaskCallback {
        hook: hook.repeat(64),
        state: state.map(|s| s.to_string()),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
        status_endpoint: "https://pdp.example.com/access/v1/requests/x".to_owned(),
    }
}

/// The callback deliveries due at `now`, delivered: (hook, event, body).
async fn told(db: &TestDb, now: i64) -> Vec<(String, String, Value)> {
    let claimed = db
        .store
        .claim_due_deliveries(now, now + 30, 50)
        .await
        .expect("claim");
    let mut due = Vec::with_capacity(claimed.len());
    for d in claimed {
        db.store
            .delivery_succeeded(&d.id, now)
            .await
            .expect("delivered");
        due.push((
            d.hook,
            d.event,
            serde_json::from_str::<Value>(&d.body).expect("json body"),
        ));
    }
    due.sort_by(|a, b| a.0.cmp(&b.0));
    due
}

async fn pending(db: &TestDb, requester: &str, digest: &str) -> String {
    db.store
        .create_or_get_pending(new_approval(requester, digest, 1, GrantMode::Once), T0)
        .await
        .expect("created")
        .0
        .id
}

async fn the_first_idempotency_key_stands_and_is_purged_after_its_time(db: &mut TestDb) {
    let a = pending(db, "alice", "d-1").await;
    let b = pending(db, "alice", "d-2").await;
    assert_eq!(db.store.find_access_request("alice", "k").await, Ok(None));
    let first = key("alice", "k", "h1", &a, T0 + 100);
    assert_eq!(
        db.store.record_access_request(&first).await,
        Ok(first.clone())
    );
    // A second record under the same caller and key: the first stands.
    let second = key("alice", "k", "h2", &b, T0 + 100);
    assert_eq!(
        db.store.record_access_request(&second).await,
        Ok(first.clone())
    );
    assert_eq!(
        db.store.find_access_request("alice", "k").await,
        Ok(Some(first.clone()))
    );
    // Keys are the caller's own.
    assert_eq!(db.store.find_access_request("mallory", "k").await, Ok(None));
    let theirs = key("mallory", "k", "h3", &b, T0 + 200);
    assert_eq!(
        db.store.record_access_request(&theirs).await,
        Ok(theirs.clone())
    );
    assert_eq!(db.store.purge_access_requests(T0 + 100).await, Ok(0));
    assert_eq!(db.store.purge_access_requests(T0 + 101).await, Ok(1));
    assert_eq!(db.store.find_access_request("alice", "k").await, Ok(None));
    assert_eq!(
        db.store.find_access_request("mallory", "k").await,
        Ok(Some(theirs))
    );
}

async fn a_callback_is_told_once_when_its_task_is_decided(db: &mut TestDb) {
    let id = pending(db, "alice", "d-1").await;
    let state = json!({ "thread": "t-1" });
    assert_eq!(
        db.store
            .add_task_callback(&id, &callback("a", Some(state.clone()), &[]), T0)
            .await,
        Ok(true)
    );
    // The same callback again (a resubmission) is stored once; one that
    // wants other statuses only is not told of an approval.
    assert_eq!(
        db.store
            .add_task_callback(&id, &callback("a", Some(state.clone()), &[]), T0)
            .await,
        Ok(true)
    );
    assert_eq!(
        db.store
            .add_task_callback(&id, &callback("b", None, &["denied"]), T0)
            .await,
        Ok(true)
    );
    assert_eq!(
        db.store
            .add_task_callback(&id, &callback("c", None, &["approved"]), T0)
            .await,
        Ok(true)
    );
    assert_eq!(told(db, T0).await, vec![], "nothing while pending");
    let outcome = db
        .store
        .vote(&id, &who("bob"), Decision::Approve, None, T0 + 5)
        .await
        .expect("vote");
    assert_eq!(outcome.approval.status, Status::Approved);
    let task = |status: &str| {
        json!({ "id": id, "status": status,
                "status_endpoint": "https://pdp.example.com/access/v1/requests/x" })
    };
    assert_eq!(
        told(db, T0 + 5).await,
        vec![
            (
                "a".repeat(64),
                "access_request.approved".to_owned(),
                json!({ "state": state, "task": task("approved") })
            ),
            (
                "c".repeat(64),
                "access_request.approved".to_owned(),
                json!({ "task": task("approved") })
            ),
        ]
    );
}

async fn a_callback_is_told_of_expiry_and_cancellation(db: &mut TestDb) {
    // Expired by the sweep.
    let swept = pending(db, "alice", "d-1").await;
    db.store
        .add_task_callback(&swept, &callback("a", None, &[]), T0)
        .await
        .expect("stored");
    assert_eq!(db.store.expire_due(T0 + TTL).await, Ok(1));
    let got = told(db, T0 + TTL).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].1.as_str(), &got[0].2["task"]["status"]),
        ("access_request.expired", &json!("expired"))
    );
    // Expired when the same action is asked for again after its time.
    let lapsed = pending(db, "bob", "d-2").await;
    db.store
        .add_task_callback(&lapsed, &callback("b", None, &["expired"]), T0)
        .await
        .expect("stored");
    let mut again = new_approval("bob", "d-2", 1, GrantMode::Once);
    again.expires_at = T0 + 2 * TTL;
    let (fresh, created) = db
        .store
        .create_or_get_pending_announced(again, T0 + TTL + 1, Quota::UNLIMITED, &|_| Vec::new())
        .await
        .expect("created");
    assert!(created && fresh.id != lapsed);
    let got = told(db, T0 + TTL + 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2["task"]["id"], lapsed.as_str());
    assert_eq!(got[0].2["task"]["status"], "expired");
    // Cancelled by the requester's side.
    let withdrawn = pending(db, "carol", "d-3").await;
    db.store
        .add_task_callback(&withdrawn, &callback("c", None, &[]), T0)
        .await
        .expect("stored");
    db.store
        .cancel_pending_announced(
            &withdrawn,
            &who("carol"),
            Some("not needed"),
            T0 + 2,
            &|_| Vec::new(),
        )
        .await
        .expect("cancelled");
    let got = told(db, T0 + 2).await;
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].1.as_str(), &got[0].2["task"]["status"]),
        ("access_request.cancelled", &json!("cancelled"))
    );
}

async fn a_callback_on_a_decided_task_is_not_stored(db: &mut TestDb) {
    let id = pending(db, "alice", "d-1").await;
    db.store
        .vote(&id, &who("bob"), Decision::Deny, Some("no"), T0 + 1)
        .await
        .expect("vote");
    assert_eq!(
        db.store
            .add_task_callback(&id, &callback("a", None, &[]), T0 + 2)
            .await,
        Ok(false)
    );
    assert_eq!(told(db, T0 + 2).await, vec![]);
    assert!(matches!(
        db.store
            .add_task_callback(&"0".repeat(32), &callback("a", None, &[]), T0 + 2)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn a_cancellation_never_revokes_an_approved_task(db: &mut TestDb) {
    let id = pending(db, "alice", "d-1").await;
    db.store
        .vote(&id, &who("bob"), Decision::Approve, None, T0 + 1)
        .await
        .expect("vote");
    assert!(matches!(
        db.store
            .cancel_pending_announced(&id, &who("alice"), None, T0 + 2, &|_| Vec::new())
            .await,
        Err(StoreError::NotRevocable {
            status: Status::Approved,
            ..
        })
    ));
    let a = db
        .store
        .get_approval(&id)
        .await
        .expect("read")
        .expect("there");
    assert_eq!(a.status, Status::Approved);
}

/// The newest approved, unclaimed approval of a requester, client and
/// action; not another's, not a pending one, not one decided too long
/// ago, and not once its use is claimed.
async fn an_unused_approval_is_found_by_its_requester_until_claimed(db: &mut TestDb) {
    let requester = common::holder("alice");
    let id = pending(db, "alice", "d-1").await;
    assert_eq!(
        db.store.find_unused_approval(&requester, "d-1", T0).await,
        Ok(None),
        "pending"
    );
    db.store
        .vote(&id, &who("bob"), Decision::Approve, None, T0 + 10)
        .await
        .expect("vote");
    let found = db
        .store
        .find_unused_approval(&requester, "d-1", T0)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(found.id, id);
    assert_eq!(
        db.store.find_unused_approval(&requester, "d-2", T0).await,
        Ok(None),
        "another action"
    );
    assert_eq!(
        db.store
            .find_unused_approval(&common::holder("mallory"), "d-1", T0)
            .await,
        Ok(None),
        "another requester"
    );
    let mut other_client = requester.clone();
    other_client.client_id = "other-app".to_owned();
    assert_eq!(
        db.store
            .find_unused_approval(&other_client, "d-1", T0)
            .await,
        Ok(None),
        "another client"
    );
    assert_eq!(
        db.store
            .find_unused_approval(&requester, "d-1", T0 + 11)
            .await,
        Ok(None),
        "decided before the given time"
    );
    assert_eq!(
        db.store.claim_delivery(&id, "use-1", T0 + 12).await,
        Ok(true)
    );
    assert_eq!(
        db.store.find_unused_approval(&requester, "d-1", T0).await,
        Ok(None),
        "claimed"
    );
}

/// A bulk task `id` of alice's over `approvals`, kept until `keep_until`.
fn bundle(id: &str, approvals: &[&str], keep_until: i64) -> Bundle {
    Bundle {
        id: id.to_owned(),
        requester_issuer: common::ISSUER.to_owned(),
        requester: "alice".to_owned(),
        client_id: common::REQUESTING_CLIENT.to_owned(),
        created_at: T0,
        keep_until,
        items: approvals
            .iter()
            .enumerate()
            .map(|(i, a)| BundleItem {
                approval_id: (*a).to_owned(),
                resource: json!({ "type": "Payment", "id": format!("pay_{i}") }).to_string(),
                action: json!({ "name": "payment.refund" }).to_string(),
            })
            .collect(),
    }
}

async fn a_bulk_task_stands_with_its_key_and_is_purged_after_its_time(db: &mut TestDb) {
    let a = pending(db, "alice", "d-1").await;
    let b = pending(db, "alice", "d-2").await;
    let first = bundle("bun-1", &[&a, &b], T0 + 100);
    let mut k = key("alice", "k", "h1", &a, T0 + 100);
    k.bundle_id = Some("bun-1".to_owned());
    assert_eq!(
        db.store.open_bundle(&first, Some(&k), None, T0).await,
        Ok(BundleOpened::Created {
            callback_stored: false
        })
    );
    assert_eq!(db.store.get_bundle("bun-1").await, Ok(Some(first.clone())));
    assert_eq!(
        db.store.find_access_request("alice", "k").await,
        Ok(Some(k.clone()))
    );
    // A second bulk task under the same key: the first stands, and nothing
    // of the second is kept.
    let second = bundle("bun-2", &[&b, &a], T0 + 100);
    let mut k2 = key("alice", "k", "h2", &b, T0 + 100);
    k2.bundle_id = Some("bun-2".to_owned());
    assert_eq!(
        db.store.open_bundle(&second, Some(&k2), None, T0).await,
        Ok(BundleOpened::KeyTaken(k.clone()))
    );
    assert_eq!(db.store.get_bundle("bun-2").await, Ok(None));
    // A single submission under a bulk task's key reads the bulk task's.
    assert_eq!(
        db.store
            .record_access_request(&key("alice", "k", "h3", &a, T0 + 100))
            .await,
        Ok(k.clone())
    );
    // Without a key it stands on its own.
    let third = bundle("bun-3", &[&b], T0 + 200);
    assert_eq!(
        db.store.open_bundle(&third, None, None, T0).await,
        Ok(BundleOpened::Created {
            callback_stored: false
        })
    );
    assert_eq!(db.store.purge_access_requests(T0 + 100).await, Ok(0));
    // The bundle and its key.
    assert_eq!(db.store.purge_access_requests(T0 + 101).await, Ok(2));
    assert_eq!(db.store.get_bundle("bun-1").await, Ok(None));
    assert_eq!(db.store.find_access_request("alice", "k").await, Ok(None));
    assert_eq!(db.store.get_bundle("bun-3").await, Ok(Some(third)));
    // Its approvals are not the bundle's to forget.
    assert!(db.store.get_approval(&a).await.expect("read").is_some());
}

async fn a_bulk_task_refuses_items_that_are_not_its_requesters(db: &mut TestDb) {
    let a = pending(db, "alice", "d-1").await;
    let theirs = pending(db, "mallory", "d-1").await;
    let refused = |r: Result<BundleOpened, StoreError>| match r {
        Err(StoreError::Invalid(why)) => why,
        other => panic!("not refused: {other:?}"),
    };
    assert_eq!(
        refused(
            db.store
                .open_bundle(&bundle("x", &[], T0 + 100), None, None, T0)
                .await
        ),
        "a bulk access request holds 1 to 32 items, not 0"
    );
    assert_eq!(
        refused(
            db.store
                .open_bundle(&bundle("x", &[&a, &a], T0 + 100), None, None, T0)
                .await
        ),
        format!("approval {a} is named by two items of one bulk access request")
    );
    assert_eq!(
        refused(
            db.store
                .open_bundle(&bundle("x", &[&a, &theirs], T0 + 100), None, None, T0)
                .await
        ),
        format!("approval {theirs} is not the bulk access request's requester's")
    );
    let unknown = "0".repeat(32);
    assert!(matches!(
        db.store
            .open_bundle(&bundle("x", &[&a, &unknown], T0 + 100), None, None, T0)
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(db.store.get_bundle("x").await, Ok(None));

    // One approval in at most 16 bulk tasks: deciding it tells a bounded
    // number of them.
    for n in 0..16 {
        db.store
            .open_bundle(&bundle(&format!("b-{n}"), &[&a], T0 + 100), None, None, T0)
            .await
            .expect("opened");
    }
    match db
        .store
        .open_bundle(&bundle("b-16", &[&a], T0 + 100), None, None, T0 + 10)
        .await
    {
        Err(StoreError::QuotaReached {
            message,
            retry_after,
        }) => {
            assert_eq!(
                message,
                format!(
                    "approval {a} is already part of 16 bulk access requests: read one of them"
                )
            );
            assert_eq!(retry_after, TTL - 10);
        }
        other => panic!("not refused: {other:?}"),
    }
}

async fn a_bulk_callback_is_told_once_when_the_last_item_ends(db: &mut TestDb) {
    let endpoint = "https://pdp.example.com/access/v1/requests/x";
    let task = |id: &str, status: &str| json!({ "task": { "id": id, "status": status, "status_endpoint": endpoint } });
    // One item approved, the other denied: told `partial`, once, when the
    // second is decided.
    let a = pending(db, "alice", "d-1").await;
    let b = pending(db, "alice", "d-2").await;
    assert_eq!(
        db.store
            .open_bundle(
                &bundle("bun-1", &[&a, &b], T0 + 1000),
                None,
                Some(&callback("a", None, &[])),
                T0
            )
            .await,
        Ok(BundleOpened::Created {
            callback_stored: true
        })
    );
    db.store
        .vote(&a, &who("bob"), Decision::Approve, None, T0 + 5)
        .await
        .expect("vote");
    assert_eq!(told(db, T0 + 5).await, vec![], "one item is still pending");
    db.store
        .vote(&b, &who("bob"), Decision::Deny, Some("no"), T0 + 6)
        .await
        .expect("vote");
    assert_eq!(
        told(db, T0 + 6).await,
        vec![(
            "a".repeat(64),
            "access_request.partial".to_owned(),
            task("bun-1", "partial")
        )]
    );
    // Its approved item withdrawn later: still `partial`, not told again.
    db.store
        .revoke_approval(&a, &who("bob"), Some("oops"), T0 + 7)
        .await
        .expect("revoked");
    assert_eq!(told(db, T0 + 7).await, vec![]);

    // One item approved, the other lapsing unswept: told by the sweep.
    let c = pending(db, "alice", "d-3").await;
    let d = pending(db, "alice", "d-4").await;
    db.store
        .open_bundle(
            &bundle("bun-2", &[&c, &d], T0 + 1000),
            None,
            Some(&callback("b", Some(json!({ "n": 2 })), &["partial"])),
            T0,
        )
        .await
        .expect("opened");
    db.store
        .vote(&c, &who("bob"), Decision::Approve, None, T0 + 5)
        .await
        .expect("vote");
    assert_eq!(told(db, T0 + 5).await, vec![]);
    assert_eq!(db.store.expire_due(T0 + TTL).await, Ok(1));
    let mut partial = task("bun-2", "partial");
    partial["state"] = json!({ "n": 2 });
    assert_eq!(
        told(db, T0 + TTL).await,
        vec![("b".repeat(64), "access_request.partial".to_owned(), partial)]
    );

    // Every item approved: told `approved`; a callback that asked only for
    // `denied` is not told.
    let e = pending(db, "alice", "d-5").await;
    let f = pending(db, "alice", "d-6").await;
    db.store
        .open_bundle(
            &bundle("bun-3", &[&e, &f], T0 + 1000),
            None,
            Some(&callback("c", None, &[])),
            T0,
        )
        .await
        .expect("opened");
    db.store
        .open_bundle(
            &bundle("bun-4", &[&f], T0 + 1000),
            None,
            Some(&callback("d", None, &["denied"])),
            T0,
        )
        .await
        .expect("opened");
    for id in [&e, &f] {
        db.store
            .vote(id, &who("bob"), Decision::Approve, None, T0 + 8)
            .await
            .expect("vote");
    }
    assert_eq!(
        told(db, T0 + 8).await,
        vec![(
            "c".repeat(64),
            "access_request.approved".to_owned(),
            task("bun-3", "approved")
        )]
    );

    // A bulk task whose items are all decided keeps no callback.
    assert_eq!(
        db.store
            .open_bundle(
                &bundle("bun-5", &[&e], T0 + 1000),
                None,
                Some(&callback("e", None, &[])),
                T0 + 9
            )
            .await,
        Ok(BundleOpened::Created {
            callback_stored: false
        })
    );
}
