//! Window grants and revocation.

#[macro_use]
mod common;

use common::{T0, TestDb, event_names, holder, new_approval, who};
use greenlight_store::{Decision, GrantMode, Status, StoreError, Voter, events};

backend_tests! {
    a_window_grant_is_found_before_expiry_and_not_after,
    creating_a_grant_twice_returns_the_first,
    a_grant_needs_an_approved_window_approval,
    revoking_an_approval_revokes_its_grant,
    a_pending_approval_can_be_revoked_and_then_takes_no_votes,
    a_denied_approval_cannot_be_revoked,
}

/// A window grant covers its subject and digest while `now < expires_at`,
/// and nothing else.
async fn a_window_grant_is_found_before_expiry_and_not_after(db: &mut TestDb) {
    let approval = common::approved(db, "digest-1", GrantMode::Window).await;
    let grant = db
        .store
        .create_grant(&approval.id, T0 + 60, T0 + 2)
        .await
        .expect("the grant is created");
    assert_eq!(grant.approval_id, approval.id);
    assert_eq!(grant.subject, "alice");
    assert_eq!(grant.action_digest, "digest-1");
    assert_eq!(grant.created_at, T0 + 2);
    assert_eq!(grant.expires_at, T0 + 60);
    assert_eq!(grant.revoked_at, None);

    let store = &db.store;
    assert_eq!(
        store
            .find_active_grant(&holder("alice"), "digest-1", T0 + 59)
            .await,
        Ok(Some(grant.clone()))
    );
    assert_eq!(
        store
            .find_active_grant(&holder("alice"), "digest-1", T0 + 60)
            .await,
        Ok(None)
    );
    assert_eq!(
        store
            .find_active_grant(&holder("bob"), "digest-1", T0 + 30)
            .await,
        Ok(None)
    );
    assert_eq!(
        store
            .find_active_grant(&holder("alice"), "digest-2", T0 + 30)
            .await,
        Ok(None)
    );
    // Another client of alice's, and another issuer's alice, hold nothing.
    let other_client = Voter {
        client_id: "another-app".to_owned(),
        ..holder("alice")
    };
    let other_issuer = Voter {
        issuer: "https://other-idp.example.com".to_owned(),
        ..holder("alice")
    };
    for someone_else in [other_client, other_issuer] {
        assert_eq!(
            store
                .find_active_grant(&someone_else, "digest-1", T0 + 30)
                .await,
            Ok(None),
            "{someone_else:?}"
        );
    }
    assert_eq!(
        (grant.issuer.as_str(), grant.client_id.as_str()),
        (common::ISSUER, common::REQUESTING_CLIENT)
    );
    let audit = store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    assert_eq!(
        event_names(&audit).last().copied(),
        Some(events::GRANT_CREATED)
    );
}

/// One grant per approval: asking again returns the existing grant
/// unchanged.
async fn creating_a_grant_twice_returns_the_first(db: &mut TestDb) {
    let approval = common::approved(db, "digest-1", GrantMode::Window).await;
    let first = db
        .store
        .create_grant(&approval.id, T0 + 60, T0 + 2)
        .await
        .expect("the grant is created");
    let second = db
        .store
        .create_grant(&approval.id, T0 + 90, T0 + 3)
        .await
        .expect("the grant is returned");
    assert_eq!(second, first);
    assert_eq!(
        db.store.grant_for_approval(&approval.id).await,
        Ok(Some(first))
    );
}

/// No grant for a pending approval, nor for one whose obligation is a
/// single-use token, nor for an unknown one.
async fn a_grant_needs_an_approved_window_approval(db: &mut TestDb) {
    let (pending, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Window), T0)
        .await
        .expect("ask");
    assert_eq!(
        db.store.create_grant(&pending.id, T0 + 60, T0 + 2).await,
        Err(StoreError::NotApproved {
            id: pending.id.clone(),
            status: Status::Pending
        })
    );

    let (once, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-2", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    db.store
        .vote(&once.id, &who("carol"), Decision::Approve, None, T0 + 1)
        .await
        .expect("carol approves");
    assert_eq!(
        db.store.create_grant(&once.id, T0 + 60, T0 + 2).await,
        Err(StoreError::Invalid(format!(
            "approval {} grants a single-use token, not a window",
            once.id
        )))
    );
    assert_eq!(
        db.store.create_grant("nope", T0 + 60, T0 + 2).await,
        Err(StoreError::NotFound {
            kind: "approval",
            id: "nope".to_owned()
        })
    );
    assert_eq!(db.store.grant_for_approval(&pending.id).await, Ok(None));
    assert_eq!(db.store.grant_for_approval(&once.id).await, Ok(None));
}

/// Revoking an approved approval marks it `revoked`, revokes its grant so
/// the action is no longer covered, and audits both, in one step.
async fn revoking_an_approval_revokes_its_grant(db: &mut TestDb) {
    let approval = common::approved(db, "digest-1", GrantMode::Window).await;
    let grant = db
        .store
        .create_grant(&approval.id, T0 + 60, T0 + 2)
        .await
        .expect("the grant is created");

    let revoked = db
        .store
        .revoke_approval(
            &approval.id,
            &who("security-officer"),
            Some("fraud suspected"),
            T0 + 10,
        )
        .await
        .expect("the approval is revoked");
    assert_eq!(revoked.status, Status::Revoked);
    // The approval time is kept; the revocation time is in the audit log.
    assert_eq!(revoked.decided_at, Some(T0 + 1));

    let store = &db.store;
    assert_eq!(
        store
            .find_active_grant(&holder("alice"), "digest-1", T0 + 11)
            .await,
        Ok(None)
    );
    let stored = store
        .grant_for_approval(&approval.id)
        .await
        .expect("read works")
        .expect("the grant is kept");
    assert_eq!(stored.revoked_at, Some(T0 + 10));

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
            events::GRANT_CREATED,
            events::APPROVAL_REVOKED,
            events::GRANT_REVOKED,
        ]
    );
    let revocation = &audit[4];
    assert_eq!(revocation.actor, "security-officer");
    assert_eq!(revocation.at, T0 + 10);
    assert_eq!(revocation.detail["reason"], "fraud suspected");
    assert_eq!(revocation.detail["grants"][0], grant.id.as_str());

    assert_eq!(
        store
            .revoke_approval(&approval.id, &who("security-officer"), None, T0 + 11)
            .await,
        Err(StoreError::NotRevocable {
            id: approval.id.clone(),
            status: Status::Revoked
        })
    );
}

/// A pending approval can be withdrawn; votes after that are refused.
async fn a_pending_approval_can_be_revoked_and_then_takes_no_votes(db: &mut TestDb) {
    let (pending, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Window), T0)
        .await
        .expect("ask");
    let revoked = db
        .store
        .revoke_approval(&pending.id, &who("alice"), Some("no longer needed"), T0 + 5)
        .await
        .expect("the approval is revoked");
    assert_eq!(revoked.status, Status::Revoked);
    assert_eq!(revoked.decided_at, Some(T0 + 5));
    assert_eq!(
        db.store
            .vote(&pending.id, &who("carol"), Decision::Approve, None, T0 + 6)
            .await,
        Err(StoreError::NotPending {
            id: pending.id.clone(),
            status: Status::Revoked
        })
    );
}

/// A denied approval is final: revoking it is refused.
async fn a_denied_approval_cannot_be_revoked(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Window), T0)
        .await
        .expect("ask");
    db.store
        .vote(&approval.id, &who("carol"), Decision::Deny, None, T0 + 1)
        .await
        .expect("carol denies");
    assert_eq!(
        db.store
            .revoke_approval(&approval.id, &who("carol"), None, T0 + 2)
            .await,
        Err(StoreError::NotRevocable {
            id: approval.id.clone(),
            status: Status::Denied
        })
    );
}
