//! Approvals and votes: one pending approval per action, quorum over
//! distinct approvers, deny and expiry end it, polling, listing.

#[macro_use]
mod common;

use common::{T0, TTL, TestDb, event_names, new_approval, who};
use greenlight_store::{Decision, GrantMode, Quota, Status, StoreError, Voter, events};

backend_tests! {
    eight_concurrent_creates_for_one_action_make_one_pending_approval,
    another_requester_or_digest_gets_its_own_approval,
    a_lapsed_pending_approval_is_expired_and_replaced_by_a_new_one,
    a_caller_supplied_id_is_kept_and_reusing_it_is_a_conflict,
    an_approval_with_quorum_zero_is_invalid,
    quorum_of_two_needs_two_distinct_approvers,
    four_concurrent_approvers_reach_a_quorum_of_four_once,
    a_deny_ends_the_approval_and_a_later_vote_is_not_pending,
    an_approver_who_approved_then_denies_ends_the_approval,
    a_vote_after_expiry_is_expired_and_the_approval_becomes_expired,
    a_vote_on_an_unknown_approval_is_not_found,
    record_poll_returns_the_previous_poll_time,
    expire_due_expires_only_lapsed_pending_approvals,
    list_approvals_filters_by_status_newest_first,
    identities_are_issuer_and_subject_and_clients_ask_apart,
    listing_pages_past_an_approval_reach_every_one,
    a_requesters_quota_caps_pending_and_new_approvals,
    concurrent_asks_never_exceed_the_pending_quota,
}

/// Paging with `after` walks every approval exactly once, newest first,
/// also through approvals created in the same second; an unknown cursor is
/// `NotFound`.
async fn listing_pages_past_an_approval_reach_every_one(db: &mut TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for n in 0..7 {
        // Pairs share a second: the order within it is the insertion order.
        let now = T0 + n / 2;
        let mut new = new_approval("alice", &format!("d{n}"), 1, GrantMode::Once);
        new.expires_at = now + TTL;
        ids.push(
            store
                .create_or_get_pending(new, now)
                .await
                .expect("ask")
                .0
                .id,
        );
    }
    ids.reverse();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_approvals(Some(Status::Pending), after.as_deref(), 3)
            .await
            .expect("a page");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|a| a.id.clone());
        seen.extend(page.into_iter().map(|a| a.id));
    }
    assert_eq!(seen, ids);
    assert_eq!(
        store.list_approvals(None, Some("no-such"), 3).await,
        Err(StoreError::NotFound {
            kind: "approval",
            id: "no-such".to_owned()
        })
    );
}

/// Opens `digest` for `requester` through `client` at `now` within `quota`.
async fn ask(
    db: &TestDb,
    requester: &str,
    client: &str,
    digest: &str,
    now: i64,
    quota: Quota,
) -> Result<(String, bool), StoreError> {
    let mut new = new_approval(requester, digest, 1, GrantMode::Once);
    new.client_id = client.to_owned();
    new.expires_at = now + TTL;
    db.store
        .create_or_get_pending_announced(new, now, quota, &|_| Vec::new())
        .await
        .map(|(a, created)| (a.id, created))
}

/// Two pending at once and three new per minute, per (issuer, subject)
/// across clients: asking again for a pending action is free, another
/// requester has their own quota, a decision frees a pending place, and
/// the rate counts until its period has passed.
async fn a_requesters_quota_caps_pending_and_new_approvals(db: &mut TestDb) {
    let quota = Quota {
        max_pending: 2,
        max_new: 3,
        per_seconds: 60,
    };
    let app = "payments-app";
    let (first, _) = ask(db, "alice", app, "d1", T0, quota).await.expect("d1");
    ask(db, "alice", app, "d2", T0 + 1, quota)
        .await
        .expect("d2");
    let full = StoreError::QuotaReached {
        message: "`alice` has 2 approvals pending, the most allowed at once: wait for one \
                  to be decided or to expire"
            .to_owned(),
        retry_after: TTL - 2,
    };
    assert_eq!(
        ask(db, "alice", app, "d3", T0 + 2, quota).await,
        Err(full.clone())
    );
    // Another client of alice's is alice too.
    assert_eq!(
        ask(db, "alice", "other-app", "d3", T0 + 2, quota).await,
        Err(full)
    );
    // Asking again for what is pending returns it.
    assert_eq!(
        ask(db, "alice", app, "d1", T0 + 2, quota).await,
        Ok((first.clone(), false))
    );
    // Bob, and another issuer's alice, are not alice.
    ask(db, "bob", app, "d1", T0 + 2, quota).await.expect("bob");
    let mut elsewhere = new_approval("alice", "d1", 1, GrantMode::Once);
    elsewhere.requester_issuer = "https://other-idp.example.com".to_owned();
    db.store
        .create_or_get_pending_announced(elsewhere, T0 + 2, quota, &|_| Vec::new())
        .await
        .expect("the other issuer's alice");

    db.store
        .vote(&first, &who("carol"), Decision::Deny, None, T0 + 3)
        .await
        .expect("denied");
    ask(db, "alice", app, "d3", T0 + 4, quota)
        .await
        .expect("d3");
    db.store
        .vote(
            &ask(db, "alice", app, "d3", T0 + 4, quota)
                .await
                .expect("d3")
                .0,
            &who("carol"),
            Decision::Deny,
            None,
            T0 + 5,
        )
        .await
        .expect("denied");
    // One place is free, but three were opened in the last minute.
    assert_eq!(
        ask(db, "alice", app, "d4", T0 + 6, quota).await,
        Err(StoreError::QuotaReached {
            message: "`alice` opened 3 approvals in the last 60 seconds, the most allowed: \
                      try again later"
                .to_owned(),
            retry_after: 54,
        })
    );
    ask(db, "alice", app, "d4", T0 + 60, quota)
        .await
        .expect("d4 a minute after d1");
    let all = db
        .store
        .list_approvals(None, None, 100)
        .await
        .expect("list");
    assert_eq!(all.len(), 6, "nothing refused was stored");
}

/// Ten concurrent asks for ten actions with room for three: exactly three
/// are opened, on every backend.
async fn concurrent_asks_never_exceed_the_pending_quota(db: &mut TestDb) {
    let quota = Quota {
        max_pending: 3,
        max_new: 100,
        per_seconds: 60,
    };
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..10 {
        let store = db.store.clone();
        tasks.spawn(async move {
            let mut new = new_approval("alice", &format!("d{n}"), 1, GrantMode::Once);
            new.client_id = format!("app-{n}");
            store
                .create_or_get_pending_announced(new, T0, quota, &|_| Vec::new())
                .await
        });
    }
    let mut opened = 0;
    let mut refused = 0;
    while let Some(result) = tasks.join_next().await {
        match result.expect("joins") {
            Ok((_, true)) => opened += 1,
            Err(StoreError::QuotaReached { .. }) => refused += 1,
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!((opened, refused), (3, 7));
}

/// Another issuer's `alice`, and alice through another client, each get
/// their own pending approval of the same action; the same subject at two
/// issuers votes as two approvers, and each vote records its issuer and
/// client.
async fn identities_are_issuer_and_subject_and_clients_ask_apart(db: &mut TestDb) {
    let store = &db.store;
    let (first, created) = store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Once), T0)
        .await
        .expect("alice asks");
    assert!(created);
    let mut other_issuer = new_approval("alice", "digest-1", 2, GrantMode::Once);
    other_issuer.requester_issuer = "https://other-idp.example.com".to_owned();
    let mut other_client = new_approval("alice", "digest-1", 2, GrantMode::Once);
    other_client.client_id = "another-app".to_owned();
    for new in [other_issuer, other_client] {
        let (approval, created) = store
            .create_or_get_pending(new.clone(), T0)
            .await
            .expect("asks");
        assert!(created, "{new:?} shares {}", first.id);
        assert_ne!(approval.id, first.id);
        assert_eq!(
            (approval.requester_issuer, approval.client_id),
            (new.requester_issuer, new.client_id)
        );
    }

    let carol_elsewhere = Voter {
        issuer: "https://other-idp.example.com".to_owned(),
        client_id: "their-app".to_owned(),
        ..who("carol")
    };
    let one = store
        .vote(&first.id, &who("carol"), Decision::Approve, None, T0 + 1)
        .await
        .expect("carol votes");
    assert_eq!(
        (one.approve_count, one.approval.status),
        (1, Status::Pending)
    );
    let two = store
        .vote(&first.id, &carol_elsewhere, Decision::Approve, None, T0 + 2)
        .await
        .expect("the other carol votes");
    assert_eq!(
        (two.approve_count, two.approval.status),
        (2, Status::Approved)
    );
    let votes = store.votes(&first.id).await.expect("votes");
    assert_eq!(
        votes
            .iter()
            .map(|v| (
                v.approver_issuer.as_str(),
                v.approver.as_str(),
                v.approver_client.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![
            (common::ISSUER, "carol", "approvals-app"),
            ("https://other-idp.example.com", "carol", "their-app"),
        ]
    );
    let audit = store.audit_for(&first.id).await.expect("audit");
    let vote_event = audit
        .iter()
        .find(|e| e.event == events::APPROVAL_VOTE)
        .expect("a vote event");
    assert_eq!(
        (
            &vote_event.actor,
            &vote_event.detail["issuer"],
            &vote_event.detail["client_id"]
        ),
        (
            &"carol".to_owned(),
            &serde_json::json!(common::ISSUER),
            &serde_json::json!("approvals-app")
        )
    );
}

/// Eight concurrent asks for the same action by the same requester create
/// exactly one pending approval, and all eight callers get it.
async fn eight_concurrent_creates_for_one_action_make_one_pending_approval(db: &mut TestDb) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        tasks.spawn(async move {
            store
                .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
                .await
        });
    }
    let results: Vec<_> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|result| result.expect("every concurrent create succeeds"))
        .collect();

    let created = results.iter().filter(|(_, created)| *created).count();
    assert_eq!(created, 1);
    let id = &results[0].0.id;
    assert!(results.iter().all(|(approval, _)| &approval.id == id));
    let pending = db
        .store
        .list_approvals(Some(Status::Pending), None, 100)
        .await
        .expect("listing works");
    assert_eq!(pending.len(), 1);
    assert_eq!(&pending[0].id, id);
    let audit = db.store.audit_for(id).await.expect("audit is readable");
    assert_eq!(event_names(&audit), vec![events::APPROVAL_CREATED]);
}

/// The one-pending rule is per requester and digest: a different requester,
/// or a different action, gets a separate approval.
async fn another_requester_or_digest_gets_its_own_approval(db: &mut TestDb) {
    let (first, created) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("alice asks");
    assert!(created);
    assert_eq!(first.status, Status::Pending);
    assert_eq!(first.requester, "alice");
    assert_eq!(first.created_at, T0);
    assert_eq!(first.expires_at, T0 + TTL);
    assert_eq!(first.id.len(), 32);

    let (again, created) = db
        .store
        .create_or_get_pending(
            new_approval("alice", "digest-1", 1, GrantMode::Once),
            T0 + 10,
        )
        .await
        .expect("alice asks again");
    assert!(!created);
    assert_eq!(again, first);

    let (bob, created) = db
        .store
        .create_or_get_pending(new_approval("bob", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("bob asks");
    assert!(created);
    assert_ne!(bob.id, first.id);

    let (other, created) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-2", 1, GrantMode::Once), T0)
        .await
        .expect("alice asks for another action");
    assert!(created);
    assert_ne!(other.id, first.id);
}

/// Asking again once the pending approval has lapsed marks the old one
/// `expired` (audited) and opens a new one.
async fn a_lapsed_pending_approval_is_expired_and_replaced_by_a_new_one(db: &mut TestDb) {
    let (old, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("first ask");
    let mut later = new_approval("alice", "digest-1", 1, GrantMode::Once);
    later.expires_at = T0 + 2 * TTL;
    let (new, created) = db
        .store
        .create_or_get_pending(later, T0 + TTL)
        .await
        .expect("asking at the expiry instant");
    assert!(created);
    assert_ne!(new.id, old.id);

    let old = db
        .store
        .get_approval(&old.id)
        .await
        .expect("read works")
        .expect("the old approval is kept");
    assert_eq!(old.status, Status::Expired);
    assert_eq!(old.decided_at, Some(T0 + TTL));
    let audit = db
        .store
        .audit_for(&old.id)
        .await
        .expect("audit is readable");
    assert_eq!(
        event_names(&audit),
        vec![events::APPROVAL_CREATED, events::APPROVAL_EXPIRED]
    );
}

/// A caller-supplied id is used as given; a second approval with the same id
/// is refused as a conflict.
async fn a_caller_supplied_id_is_kept_and_reusing_it_is_a_conflict(db: &mut TestDb) {
    let mut first = new_approval("alice", "digest-1", 1, GrantMode::Once);
    first.id = Some("req-1".to_owned());
    let (approval, created) = db
        .store
        .create_or_get_pending(first, T0)
        .await
        .expect("first ask");
    assert!(created);
    assert_eq!(approval.id, "req-1");

    let mut second = new_approval("bob", "digest-2", 1, GrantMode::Once);
    second.id = Some("req-1".to_owned());
    let err = db
        .store
        .create_or_get_pending(second, T0)
        .await
        .expect_err("the id is taken");
    assert_eq!(
        err,
        StoreError::Conflict("approval id req-1 is taken".to_owned())
    );
}

/// An obligation that needs nobody is refused rather than stored.
async fn an_approval_with_quorum_zero_is_invalid(db: &mut TestDb) {
    let err = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 0, GrantMode::Once), T0)
        .await
        .expect_err("quorum 0 is refused");
    assert_eq!(err, StoreError::Invalid("the quorum is 0".to_owned()));
    let all = db
        .store
        .list_approvals(None, None, 10)
        .await
        .expect("listing works");
    assert!(all.is_empty());
}

/// With quorum 2 the same approver approving twice counts once and the
/// approval stays pending; a second, distinct approver approves it.
async fn quorum_of_two_needs_two_distinct_approvers(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Once), T0)
        .await
        .expect("ask");

    let first = db
        .store
        .vote(
            &approval.id,
            &who("carol"),
            Decision::Approve,
            Some("looks right"),
            T0 + 1,
        )
        .await
        .expect("carol approves");
    assert_eq!(first.approve_count, 1);
    assert!(first.recorded);
    assert_eq!(first.approval.status, Status::Pending);

    let repeat = db
        .store
        .vote(&approval.id, &who("carol"), Decision::Approve, None, T0 + 2)
        .await
        .expect("carol approves again");
    assert_eq!(repeat.approve_count, 1);
    assert!(!repeat.recorded);
    assert_eq!(repeat.approval.status, Status::Pending);
    assert_eq!(repeat.approval.decided_at, None);

    let second = db
        .store
        .vote(&approval.id, &who("dave"), Decision::Approve, None, T0 + 3)
        .await
        .expect("dave approves");
    assert_eq!(second.approve_count, 2);
    assert!(second.recorded);
    assert_eq!(second.approval.status, Status::Approved);
    assert_eq!(second.approval.decided_at, Some(T0 + 3));

    let votes = db
        .store
        .votes(&approval.id)
        .await
        .expect("votes are readable");
    let voters: Vec<_> = votes
        .iter()
        .map(|vote| {
            (
                vote.approver.as_str(),
                vote.decision,
                vote.reason.as_deref(),
                vote.at,
            )
        })
        .collect();
    assert_eq!(
        voters,
        vec![
            ("carol", Decision::Approve, Some("looks right"), T0 + 1),
            ("dave", Decision::Approve, None, T0 + 3),
        ]
    );
}

/// Four distinct approvers voting at the same moment on a quorum of four
/// are all counted: the approval ends `approved`, exactly one vote reports
/// the full count, and `approval.approved` is audited once.
async fn four_concurrent_approvers_reach_a_quorum_of_four_once(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 4, GrantMode::Once), T0)
        .await
        .expect("ask");
    let mut tasks = tokio::task::JoinSet::new();
    for approver in ["carol", "dave", "erin", "frank"] {
        let store = db.store.clone();
        let id = approval.id.clone();
        tasks.spawn(async move {
            store
                .vote(&id, &who(approver), Decision::Approve, None, T0 + 1)
                .await
                .expect("every approver's vote is taken")
        });
    }
    let mut counts: Vec<u32> = tasks
        .join_all()
        .await
        .into_iter()
        .map(|outcome| outcome.approve_count)
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, vec![1, 2, 3, 4]);

    let stored = db
        .store
        .get_approval(&approval.id)
        .await
        .expect("read works")
        .expect("the approval exists");
    assert_eq!(stored.status, Status::Approved);
    let audit = db
        .store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    let names = event_names(&audit);
    assert_eq!(
        names
            .iter()
            .filter(|name| **name == events::APPROVAL_VOTE)
            .count(),
        4
    );
    assert_eq!(names.last().copied(), Some(events::APPROVAL_APPROVED));
    assert_eq!(
        audit
            .last()
            .map(|event| event.detail["approvers"].as_array().map(Vec::len)),
        Some(Some(4))
    );
}

/// One deny ends the approval as `denied`; a vote after that is refused
/// with `NotPending`.
async fn a_deny_ends_the_approval_and_a_later_vote_is_not_pending(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Once), T0)
        .await
        .expect("ask");
    let denied = db
        .store
        .vote(
            &approval.id,
            &who("carol"),
            Decision::Deny,
            Some("not our customer"),
            T0 + 5,
        )
        .await
        .expect("carol denies");
    assert_eq!(denied.approval.status, Status::Denied);
    assert_eq!(denied.approval.decided_at, Some(T0 + 5));
    assert_eq!(denied.approve_count, 0);

    let err = db
        .store
        .vote(&approval.id, &who("dave"), Decision::Approve, None, T0 + 6)
        .await
        .expect_err("the approval is decided");
    assert_eq!(
        err,
        StoreError::NotPending {
            id: approval.id.clone(),
            status: Status::Denied
        }
    );
    let audit = db
        .store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    assert_eq!(
        event_names(&audit),
        vec![
            events::APPROVAL_CREATED,
            events::APPROVAL_VOTE,
            events::APPROVAL_DENIED
        ]
    );
}

/// An approver who approved and then denies, before quorum, changes their
/// vote to deny, which ends the approval.
async fn an_approver_who_approved_then_denies_ends_the_approval(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 2, GrantMode::Once), T0)
        .await
        .expect("ask");
    db.store
        .vote(&approval.id, &who("carol"), Decision::Approve, None, T0 + 1)
        .await
        .expect("carol approves");
    let outcome = db
        .store
        .vote(
            &approval.id,
            &who("carol"),
            Decision::Deny,
            Some("changed my mind"),
            T0 + 2,
        )
        .await
        .expect("carol denies");
    assert_eq!(outcome.approval.status, Status::Denied);
    assert_eq!(outcome.approve_count, 0);
    assert!(outcome.recorded);

    let votes = db
        .store
        .votes(&approval.id)
        .await
        .expect("votes are readable");
    assert_eq!(votes.len(), 1);
    assert_eq!(votes[0].decision, Decision::Deny);
    assert_eq!(votes[0].reason.as_deref(), Some("changed my mind"));
    assert_eq!(votes[0].at, T0 + 2);
}

/// A vote at or after `expires_at` fails with `Expired` and leaves the
/// approval recorded as `expired`; voting again still says `Expired`.
async fn a_vote_after_expiry_is_expired_and_the_approval_becomes_expired(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let expired = StoreError::Expired {
        id: approval.id.clone(),
    };
    let err = db
        .store
        .vote(
            &approval.id,
            &who("carol"),
            Decision::Approve,
            None,
            T0 + TTL,
        )
        .await
        .expect_err("too late");
    assert_eq!(err, expired);

    let stored = db
        .store
        .get_approval(&approval.id)
        .await
        .expect("read works")
        .expect("the approval exists");
    assert_eq!(stored.status, Status::Expired);
    assert_eq!(stored.decided_at, Some(T0 + TTL));
    assert!(
        db.store
            .votes(&approval.id)
            .await
            .expect("votes are readable")
            .is_empty()
    );

    let again = db
        .store
        .vote(
            &approval.id,
            &who("carol"),
            Decision::Approve,
            None,
            T0 + TTL + 1,
        )
        .await
        .expect_err("still too late");
    assert_eq!(again, expired);
    let audit = db
        .store
        .audit_for(&approval.id)
        .await
        .expect("audit is readable");
    assert_eq!(
        event_names(&audit),
        vec![events::APPROVAL_CREATED, events::APPROVAL_EXPIRED]
    );
}

/// Voting on an id that does not exist is `NotFound`.
async fn a_vote_on_an_unknown_approval_is_not_found(db: &mut TestDb) {
    let err = db
        .store
        .vote("nope", &who("carol"), Decision::Approve, None, T0)
        .await
        .expect_err("no such approval");
    assert_eq!(
        err,
        StoreError::NotFound {
            kind: "approval",
            id: "nope".to_owned()
        }
    );
}

/// Each poll returns the time of the one before (none the first time), so
/// the server can tell a client to slow down.
async fn record_poll_returns_the_previous_poll_time(db: &mut TestDb) {
    let (approval, _) = db
        .store
        .create_or_get_pending(new_approval("alice", "digest-1", 1, GrantMode::Once), T0)
        .await
        .expect("ask");
    let store = &db.store;
    assert_eq!(store.record_poll(&approval.id, T0 + 5).await, Ok(None));
    assert_eq!(
        store.record_poll(&approval.id, T0 + 7).await,
        Ok(Some(T0 + 5))
    );
    assert_eq!(
        store.record_poll(&approval.id, T0 + 12).await,
        Ok(Some(T0 + 7))
    );
    let stored = store
        .get_approval(&approval.id)
        .await
        .expect("read works")
        .expect("the approval exists");
    assert_eq!(stored.last_polled_at, Some(T0 + 12));
    assert_eq!(
        store.record_poll("nope", T0).await,
        Err(StoreError::NotFound {
            kind: "approval",
            id: "nope".to_owned()
        })
    );
}

/// `expire_due` marks exactly the pending approvals whose time has come,
/// auditing each, and leaves live and decided ones alone.
async fn expire_due_expires_only_lapsed_pending_approvals(db: &mut TestDb) {
    let store = &db.store;
    let mut short = new_approval("alice", "digest-short", 1, GrantMode::Once);
    short.expires_at = T0 + 10;
    let (short, _) = store
        .create_or_get_pending(short, T0)
        .await
        .expect("ask short");
    let (long, _) = store
        .create_or_get_pending(new_approval("alice", "digest-long", 1, GrantMode::Once), T0)
        .await
        .expect("ask long");
    let mut decided = new_approval("bob", "digest-decided", 1, GrantMode::Once);
    decided.expires_at = T0 + 10;
    let (decided, _) = store
        .create_or_get_pending(decided, T0)
        .await
        .expect("ask decided");
    store
        .vote(&decided.id, &who("carol"), Decision::Approve, None, T0 + 1)
        .await
        .expect("carol approves");

    assert_eq!(store.expire_due(T0 + 9).await, Ok(0));
    assert_eq!(store.expire_due(T0 + 10).await, Ok(1));
    assert_eq!(store.expire_due(T0 + 11).await, Ok(0));

    let status = |id: String| async move {
        store
            .get_approval(&id)
            .await
            .expect("read works")
            .expect("the approval exists")
            .status
    };
    assert_eq!(status(short.id.clone()).await, Status::Expired);
    assert_eq!(status(long.id.clone()).await, Status::Pending);
    assert_eq!(status(decided.id.clone()).await, Status::Approved);
    let audit = store.audit_for(&short.id).await.expect("audit is readable");
    assert_eq!(
        audit.last().map(|event| event.event.as_str()),
        Some(events::APPROVAL_EXPIRED)
    );
    assert_eq!(audit.last().map(|event| event.at), Some(T0 + 10));
}

/// Listing returns the newest approvals first, filtered by status and cut
/// at the limit.
async fn list_approvals_filters_by_status_newest_first(db: &mut TestDb) {
    let store = &db.store;
    let mut ids = Vec::new();
    for (n, digest) in ["d1", "d2", "d3"].into_iter().enumerate() {
        let now = T0 + n as i64;
        let mut new = new_approval("alice", digest, 1, GrantMode::Once);
        new.expires_at = now + TTL;
        let (approval, _) = store.create_or_get_pending(new, now).await.expect("ask");
        ids.push(approval.id);
    }
    store
        .vote(&ids[1], &who("carol"), Decision::Deny, None, T0 + 5)
        .await
        .expect("carol denies d2");

    let listed = |status, limit| async move {
        store
            .list_approvals(status, None, limit)
            .await
            .expect("listing works")
            .into_iter()
            .map(|approval| approval.id)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        listed(None, 10).await,
        vec![ids[2].clone(), ids[1].clone(), ids[0].clone()]
    );
    assert_eq!(listed(None, 2).await, vec![ids[2].clone(), ids[1].clone()]);
    assert_eq!(
        listed(Some(Status::Pending), 10).await,
        vec![ids[2].clone(), ids[0].clone()]
    );
    assert_eq!(listed(Some(Status::Denied), 10).await, vec![ids[1].clone()]);
    assert_eq!(
        listed(Some(Status::Approved), 10).await,
        Vec::<String>::new()
    );
}
