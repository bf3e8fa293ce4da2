//! Approvals and votes: opening, voting, polling, delivery, revocation,
//! expiry.

use serde_json::{Value, json};
use sqlx::FromRow;
use sqlx::types::Json;

use super::audit::insert_audit;
use super::{
    Conn, LOCK_REQUESTER, Pool, SELECT_APPROVAL_FOR_UPDATE, begin_write, count_u32, limit_i64,
};
use crate::error::is_unique_violation;
use crate::{
    Approval, Decision, NewApproval, Obligation, Quota, SYSTEM_ACTOR, Status, StoreError, Vote,
    VoteOutcome, Voter, events, new_id,
};

/// How often `create_or_get_pending` retries when the pending approval that
/// beat its insert is decided before it can read it. Each retry needs a
/// decision landing in a window of microseconds; three never run out in
/// practice.
const CREATE_ATTEMPTS: usize = 3;

/// Reads one approval by id.
const SELECT_APPROVAL: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE id = $1"
);

/// Reads the pending approval of a requester (issuer, subject), client and
/// action digest.
const SELECT_PENDING: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE requester_issuer = $1 AND requester = $2 AND client_id = $3 \
     AND action_digest = $4 AND status = 'pending'"
);

/// An `approvals` row as stored.
#[derive(FromRow)]
pub(super) struct ApprovalRow {
    id: String,
    status: String,
    requester: String,
    requester_issuer: String,
    client_id: String,
    action_digest: String,
    action: String,
    authorization_details: Json<Value>,
    obligation: Json<Obligation>,
    binding_message: Option<String>,
    reason: Option<String>,
    policy_hash: String,
    created_at: i64,
    expires_at: i64,
    decided_at: Option<i64>,
    poll_interval_seconds: i64,
    last_polled_at: Option<i64>,
    delivered_at: Option<i64>,
    delivered_jti: Option<String>,
    requester_tenant: Option<String>,
    requester_actor: Option<String>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;

    fn try_from(row: ApprovalRow) -> Result<Self, Self::Error> {
        Ok(Approval {
            id: row.id,
            status: row.status.parse()?,
            requester: row.requester,
            requester_issuer: row.requester_issuer,
            client_id: row.client_id,
            action_digest: row.action_digest,
            action: row.action,
            authorization_details: row.authorization_details.0,
            obligation: row.obligation.0,
            binding_message: row.binding_message,
            reason: row.reason,
            policy_hash: row.policy_hash,
            created_at: row.created_at,
            expires_at: row.expires_at,
            decided_at: row.decided_at,
            poll_interval_seconds: row.poll_interval_seconds,
            last_polled_at: row.last_polled_at,
            delivered_at: row.delivered_at,
            delivered_jti: row.delivered_jti,
            requester_tenant: row.requester_tenant,
            requester_actor: row.requester_actor,
        })
    }
}

/// Reads the approval `id` inside a transaction and, on PostgreSQL, locks
/// its row until commit. `NotFound` if there is none.
pub(super) async fn lock_approval(conn: &mut Conn, id: &str) -> Result<Approval, StoreError> {
    let row: Option<ApprovalRow> = sqlx::query_as(SELECT_APPROVAL_FOR_UPDATE)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(not_found(id)),
    }
}

/// Reads the approval `id` inside a transaction, after changing it.
pub(super) async fn reread(conn: &mut Conn, id: &str) -> Result<Approval, StoreError> {
    let row: Option<ApprovalRow> = sqlx::query_as(SELECT_APPROVAL)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.ok_or_else(|| not_found(id))?.try_into()
}

fn not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        kind: "approval",
        id: id.to_owned(),
    }
}

/// Marks a pending approval `expired` at `now`, with its audit event.
async fn mark_expired(conn: &mut Conn, approval: &Approval, now: i64) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE approvals SET status = 'expired', decided_at = $2 \
         WHERE id = $1 AND status = 'pending'",
    )
    .bind(&approval.id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    audit_expired(conn, &approval.id, approval.expires_at, now).await?;
    let expired = Approval {
        status: Status::Expired,
        ..approval.clone()
    };
    super::requests::insert_callback_deliveries(conn, &expired, now).await
}

async fn audit_expired(
    conn: &mut Conn,
    id: &str,
    expires_at: i64,
    now: i64,
) -> Result<(), StoreError> {
    insert_audit(
        conn,
        now,
        SYSTEM_ACTOR,
        events::APPROVAL_EXPIRED,
        Some(id),
        json!({ "expires_at": expires_at }),
    )
    .await?;
    Ok(())
}

/// Refuses a new approval the store should not keep.
fn validate(new: &NewApproval, now: i64) -> Result<(), StoreError> {
    let problem = if new.id.as_deref().is_some_and(str::is_empty) {
        "the approval id is empty"
    } else if new.requester.is_empty() {
        "the requester is empty"
    } else if new.requester_issuer.is_empty() {
        "the requester's issuer is empty"
    } else if new.action_digest.is_empty() {
        "the action digest is empty"
    } else if new.obligation.quorum == 0 {
        "the quorum is 0"
    } else if new.expires_at <= now {
        "the approval would expire before it is created"
    } else if new.poll_interval_seconds < 1 {
        "the poll interval is under one second"
    } else {
        return Ok(());
    };
    Err(StoreError::Invalid(problem.to_owned()))
}

/// Refuses a new approval the requester's `quota` does not admit, within
/// the transaction that will insert it, after taking the requester's lock.
async fn check_quota(
    tx: &mut Conn,
    new: &NewApproval,
    now: i64,
    quota: Quota,
) -> Result<(), StoreError> {
    if let Some(lock) = LOCK_REQUESTER {
        sqlx::query(lock)
            .bind(format!("{} {}", new.requester_issuer, new.requester))
            .execute(&mut *tx)
            .await?;
    }
    let (pending, soonest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(expires_at) FROM approvals \
         WHERE requester_issuer = $1 AND requester = $2 AND status = 'pending' \
         AND expires_at > $3",
    )
    .bind(&new.requester_issuer)
    .bind(&new.requester)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    if pending >= i64::from(quota.max_pending) {
        return Err(StoreError::QuotaReached {
            message: format!(
                "`{}` has {pending} approvals pending, the most allowed at once: wait for \
                 one to be decided or to expire",
                new.requester
            ),
            retry_after: soonest.map_or(1, |t| (t - now).max(1)),
        });
    }
    let since = now.saturating_sub(quota.per_seconds);
    let (opened, oldest): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(created_at) FROM approvals \
         WHERE requester_issuer = $1 AND requester = $2 AND created_at > $3",
    )
    .bind(&new.requester_issuer)
    .bind(&new.requester)
    .bind(since)
    .fetch_one(&mut *tx)
    .await?;
    if opened >= i64::from(quota.max_new) {
        return Err(StoreError::QuotaReached {
            message: format!(
                "`{}` opened {opened} approvals in the last {} seconds, the most allowed: \
                 try again later",
                new.requester, quota.per_seconds
            ),
            retry_after: oldest.map_or(1, |t| (t + quota.per_seconds - now).max(1)),
        });
    }
    Ok(())
}

pub(crate) async fn create_or_get_pending(
    pool: &Pool,
    new: NewApproval,
    now: i64,
    quota: Quota,
    announce: &(dyn Fn(&Approval) -> Vec<crate::NewWebhookDelivery> + Sync),
) -> Result<(Approval, bool), StoreError> {
    validate(&new, now)?;
    let id = match &new.id {
        Some(id) => id.clone(),
        None => new_id()?,
    };
    for _ in 0..CREATE_ATTEMPTS {
        let mut tx = begin_write(pool).await?;

        // A lapsed pending approval gives way to a new one.
        let lapsed: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE approvals SET status = 'expired', decided_at = $5 \
             WHERE requester_issuer = $1 AND requester = $2 AND client_id = $3 \
             AND action_digest = $4 AND status = 'pending' \
             AND expires_at <= $5 RETURNING id, expires_at",
        )
        .bind(&new.requester_issuer)
        .bind(&new.requester)
        .bind(&new.client_id)
        .bind(&new.action_digest)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (lapsed_id, expires_at) in &lapsed {
            audit_expired(&mut tx, lapsed_id, *expires_at, now).await?;
            let expired = reread(&mut tx, lapsed_id).await?;
            super::requests::insert_callback_deliveries(&mut tx, &expired, now).await?;
        }

        // Asking again for what is already pending returns it, quota or not.
        if let Some(existing) = pending_now(&mut tx, &new, now).await? {
            tx.commit().await?;
            return Ok((existing, false));
        }
        check_quota(&mut tx, &new, now, quota).await?;

        // The partial unique index admits one pending row per requester,
        // client and digest; a concurrent insert of the same action waits
        // for ours (or we for it) and then does nothing.
        let inserted = sqlx::query(
            "INSERT INTO approvals (id, status, requester, client_id, action_digest, action, \
             authorization_details, obligation, binding_message, reason, policy_hash, \
             created_at, expires_at, poll_interval_seconds, requester_tenant, requester_issuer, \
             requester_actor) \
             VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
             ON CONFLICT (requester_issuer, requester, client_id, action_digest) \
             WHERE status = 'pending' DO NOTHING",
        )
        .bind(&id)
        .bind(&new.requester)
        .bind(&new.client_id)
        .bind(&new.action_digest)
        .bind(&new.action)
        .bind(Json(&new.authorization_details))
        .bind(Json(&new.obligation))
        .bind(new.binding_message.as_deref())
        .bind(new.reason.as_deref())
        .bind(&new.policy_hash)
        .bind(now)
        .bind(new.expires_at)
        .bind(new.poll_interval_seconds)
        .bind(new.requester_tenant.as_deref())
        .bind(&new.requester_issuer)
        .bind(new.requester_actor.as_deref())
        .execute(&mut *tx)
        .await;
        let inserted = match inserted {
            Ok(result) => result.rows_affected() == 1,
            Err(err) if is_unique_violation(&err) => {
                return Err(StoreError::Conflict(format!("approval id {id} is taken")));
            }
            Err(err) => return Err(err.into()),
        };

        if inserted {
            insert_audit(
                &mut tx,
                now,
                &new.requester,
                events::APPROVAL_CREATED,
                Some(&id),
                json!({
                    "issuer": new.requester_issuer,
                    "client_id": new.client_id,
                    "action": new.action,
                    "action_digest": new.action_digest,
                    "reason": new.reason,
                    "policy_hash": new.policy_hash,
                    "expires_at": new.expires_at,
                }),
            )
            .await?;
            let approval = reread(&mut tx, &id).await?;
            // Its announcements commit with it, or neither does.
            super::outbox::insert_deliveries(&mut tx, &announce(&approval), now).await?;
            tx.commit().await?;
            return Ok((approval, true));
        }

        if let Some(existing) = pending_now(&mut tx, &new, now).await? {
            tx.commit().await?;
            return Ok((existing, false));
        }
        // The pending approval we collided with was decided before we could
        // read it: start over (the transaction rolls back on drop).
    }
    Err(StoreError::Conflict(
        "the pending approval kept changing; try again".to_owned(),
    ))
}

/// The approval pending for `new`'s requester, client and action that is
/// still pending at `now`. Another replica's clock may have created one
/// whose expiry has already passed by ours: that one is not returned, and
/// the caller goes round to replace it.
async fn pending_now(
    tx: &mut Conn,
    new: &NewApproval,
    now: i64,
) -> Result<Option<Approval>, StoreError> {
    let existing: Option<ApprovalRow> = sqlx::query_as(SELECT_PENDING)
        .bind(&new.requester_issuer)
        .bind(&new.requester)
        .bind(&new.client_id)
        .bind(&new.action_digest)
        .fetch_optional(&mut *tx)
        .await?;
    let existing = existing.map(Approval::try_from).transpose()?;
    Ok(existing.filter(|a| a.status_at(now) == Status::Pending))
}

pub(crate) async fn find_unused_approval(
    pool: &Pool,
    by: &Voter,
    digest: &str,
    decided_since: i64,
) -> Result<Option<Approval>, StoreError> {
    let row: Option<ApprovalRow> = sqlx::query_as(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals WHERE requester_issuer = $1 AND requester = $2 AND client_id = $3 \
         AND action_digest = $4 AND status = 'approved' AND delivered_at IS NULL \
         AND decided_at >= $5 ORDER BY decided_at DESC, id LIMIT 1"
    ))
    .bind(&by.issuer)
    .bind(&by.subject)
    .bind(&by.client_id)
    .bind(digest)
    .bind(decided_since)
    .fetch_optional(pool)
    .await?;
    row.map(Approval::try_from).transpose()
}

pub(crate) async fn get_approval(pool: &Pool, id: &str) -> Result<Option<Approval>, StoreError> {
    let row: Option<ApprovalRow> = sqlx::query_as(SELECT_APPROVAL)
        .bind(id)
        .fetch_optional(pool)
        .await?;
    row.map(Approval::try_from).transpose()
}

/// Where a newest-first page starts: just past the approval `after`
/// (its `created_at` and `seq`). `NotFound` when there is no such approval.
async fn cursor(pool: &Pool, after: Option<&str>) -> Result<Option<(i64, i64)>, StoreError> {
    let Some(id) = after else {
        return Ok(None);
    };
    sqlx::query_as("SELECT created_at, seq FROM approvals WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?
        .map(Some)
        .ok_or_else(|| StoreError::NotFound {
            kind: "approval",
            id: id.to_owned(),
        })
}

pub(crate) async fn list_approvals(
    pool: &Pool,
    status: Option<Status>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Approval>, StoreError> {
    let from = cursor(pool, after).await?;
    let rows: Vec<ApprovalRow> = sqlx::query_as(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals WHERE ($1 IS NULL OR status = $1) \
         AND ($3 IS NULL OR created_at < $3 OR (created_at = $3 AND seq < $4)) \
         ORDER BY created_at DESC, seq DESC LIMIT $2"
    ))
    .bind(status.map(Status::as_str))
    .bind(limit_i64(limit))
    .bind(from.map(|f| f.0))
    .bind(from.map(|f| f.1))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Approval::try_from).collect()
}

pub(crate) async fn list_decided(
    pool: &Pool,
    participant: Option<(&str, &str)>,
    after: Option<&str>,
    limit: u32,
    now: i64,
) -> Result<Vec<Approval>, StoreError> {
    let from = cursor(pool, after).await?;
    let rows: Vec<ApprovalRow> = sqlx::query_as(concat!(
        "SELECT ",
        approval_columns!(),
        " FROM approvals a WHERE (status <> 'pending' OR expires_at <= $4) \
         AND ($5 IS NULL OR (requester_issuer = $5 AND requester = $6) \
              OR EXISTS (SELECT 1 FROM votes v WHERE v.approval_id = a.id \
                         AND v.approver_issuer = $5 AND v.approver = $6)) \
         AND ($2 IS NULL OR created_at < $2 OR (created_at = $2 AND seq < $3)) \
         ORDER BY created_at DESC, seq DESC LIMIT $1"
    ))
    .bind(limit_i64(limit))
    .bind(from.map(|f| f.0))
    .bind(from.map(|f| f.1))
    .bind(now)
    .bind(participant.map(|p| p.0))
    .bind(participant.map(|p| p.1))
    .fetch_all(pool)
    .await?;
    rows.into_iter().map(Approval::try_from).collect()
}

/// Distinct approvers who approved, in the order they did.
async fn approvers(conn: &mut Conn, approval_id: &str) -> Result<Vec<String>, StoreError> {
    let approvers: Vec<String> = sqlx::query_scalar(
        "SELECT approver FROM votes WHERE approval_id = $1 AND decision = 'approve' \
         ORDER BY at, approver_issuer, approver",
    )
    .bind(approval_id)
    .fetch_all(conn)
    .await?;
    Ok(approvers)
}

pub(crate) async fn vote(
    pool: &Pool,
    approval_id: &str,
    voter: &Voter,
    decision: Decision,
    reason: Option<&str>,
    now: i64,
    announce: &(dyn Fn(&Approval) -> Vec<crate::NewWebhookDelivery> + Sync),
) -> Result<VoteOutcome, StoreError> {
    if voter.subject.is_empty() || voter.issuer.is_empty() {
        return Err(StoreError::Invalid(
            "the approver's subject or issuer is empty".to_owned(),
        ));
    }
    let approver = voter.subject.as_str();
    let mut tx = begin_write(pool).await?;
    let approval = lock_approval(&mut tx, approval_id).await?;
    match approval.status_at(now) {
        Status::Pending => {}
        Status::Expired => {
            if approval.status == Status::Pending {
                // Record the expiry even though the vote fails.
                mark_expired(&mut tx, &approval, now).await?;
                tx.commit().await?;
            }
            return Err(StoreError::Expired {
                id: approval_id.to_owned(),
            });
        }
        status => {
            return Err(StoreError::NotPending {
                id: approval_id.to_owned(),
                status,
            });
        }
    }

    let previous: Option<String> = sqlx::query_scalar(
        "SELECT decision FROM votes \
         WHERE approval_id = $1 AND approver_issuer = $2 AND approver = $3",
    )
    .bind(approval_id)
    .bind(&voter.issuer)
    .bind(approver)
    .fetch_optional(&mut *tx)
    .await?;
    let previous = previous.map(|text| text.parse::<Decision>()).transpose()?;

    if previous == Some(decision) {
        // Approving twice counts once; nothing changes, nothing to audit.
        let approve_count = count_u32(approvers(&mut tx, approval_id).await?.len());
        tx.commit().await?;
        return Ok(VoteOutcome {
            approval,
            approve_count,
            recorded: false,
        });
    }
    // A first vote, or (only an approve can precede a deny while the
    // approval is pending) a changed one: one statement either way.
    sqlx::query(
        "INSERT INTO votes (approval_id, approver, decision, reason, at, approver_issuer, \
         approver_client) VALUES ($1, $2, $3, $4, $5, $6, $7) \
         ON CONFLICT (approval_id, approver_issuer, approver) DO UPDATE \
         SET decision = excluded.decision, reason = excluded.reason, at = excluded.at, \
         approver_client = excluded.approver_client",
    )
    .bind(approval_id)
    .bind(approver)
    .bind(decision.as_str())
    .bind(reason)
    .bind(now)
    .bind(&voter.issuer)
    .bind(&voter.client_id)
    .execute(&mut *tx)
    .await?;
    insert_audit(
        &mut tx,
        now,
        approver,
        events::APPROVAL_VOTE,
        Some(approval_id),
        json!({
            "decision": decision,
            "reason": reason,
            "changed_from": previous,
            "issuer": voter.issuer,
            "client_id": voter.client_id,
        }),
    )
    .await?;

    let approved_by = approvers(&mut tx, approval_id).await?;
    let approve_count = count_u32(approved_by.len());
    let outcome = match decision {
        Decision::Deny => Some((
            Status::Denied,
            events::APPROVAL_DENIED,
            json!({ "reason": reason }),
        )),
        Decision::Approve if approve_count >= approval.obligation.quorum => Some((
            Status::Approved,
            events::APPROVAL_APPROVED,
            json!({ "approvers": approved_by, "quorum": approval.obligation.quorum }),
        )),
        Decision::Approve => None,
    };
    let decided = outcome.is_some();
    if let Some((status, event, detail)) = outcome {
        sqlx::query("UPDATE approvals SET status = $2, decided_at = $3 WHERE id = $1")
            .bind(approval_id)
            .bind(status.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        insert_audit(&mut tx, now, approver, event, Some(approval_id), detail).await?;
    }

    let approval = reread(&mut tx, approval_id).await?;
    if decided {
        // The outcome's announcements commit with it, or neither does.
        super::outbox::insert_deliveries(&mut tx, &announce(&approval), now).await?;
        super::requests::insert_callback_deliveries(&mut tx, &approval, now).await?;
    }
    tx.commit().await?;
    Ok(VoteOutcome {
        approval,
        approve_count,
        recorded: true,
    })
}

/// A `votes` row as stored.
#[derive(FromRow)]
struct VoteRow {
    approval_id: String,
    approver: String,
    approver_issuer: String,
    approver_client: String,
    decision: String,
    reason: Option<String>,
    at: i64,
}

pub(crate) async fn votes(pool: &Pool, approval_id: &str) -> Result<Vec<Vote>, StoreError> {
    let rows: Vec<VoteRow> = sqlx::query_as(
        "SELECT approval_id, approver, approver_issuer, approver_client, decision, reason, at \
         FROM votes WHERE approval_id = $1 ORDER BY at, approver_issuer, approver",
    )
    .bind(approval_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(Vote {
                approval_id: row.approval_id,
                approver: row.approver,
                approver_issuer: row.approver_issuer,
                approver_client: row.approver_client,
                decision: row.decision.parse()?,
                reason: row.reason,
                at: row.at,
            })
        })
        .collect()
}

pub(crate) async fn record_poll(
    pool: &Pool,
    approval_id: &str,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let mut tx = begin_write(pool).await?;
    let approval = lock_approval(&mut tx, approval_id).await?;
    sqlx::query("UPDATE approvals SET last_polled_at = $2 WHERE id = $1")
        .bind(approval_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(approval.last_polled_at)
}

pub(crate) async fn claim_delivery(
    pool: &Pool,
    approval_id: &str,
    jti: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = begin_write(pool).await?;
    // One statement decides: of concurrent claims, only the first finds
    // `delivered_at` still empty (PostgreSQL re-checks the condition after
    // waiting for the row).
    let claimed: Option<(String, String)> = sqlx::query_as(
        "UPDATE approvals SET delivered_at = $2, delivered_jti = $3 \
         WHERE id = $1 AND status = 'approved' AND delivered_at IS NULL \
         RETURNING requester, client_id",
    )
    .bind(approval_id)
    .bind(now)
    .bind(jti)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((requester, client_id)) = claimed else {
        return Ok(false);
    };
    insert_audit(
        &mut tx,
        now,
        &requester,
        events::TOKEN_MINTED,
        Some(approval_id),
        json!({ "jti": jti, "client_id": client_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn revoke_approval(
    pool: &Pool,
    id: &str,
    by: &Voter,
    reason: Option<&str>,
    now: i64,
    pending_only: bool,
    announce: &(dyn Fn(&Approval) -> Vec<crate::NewWebhookDelivery> + Sync),
) -> Result<Approval, StoreError> {
    let actor = by.subject.as_str();
    let mut tx = begin_write(pool).await?;
    let approval = lock_approval(&mut tx, id).await?;
    match approval.status_at(now) {
        Status::Pending => {}
        Status::Approved if !pending_only => {}
        Status::Expired => {
            if approval.status == Status::Pending {
                mark_expired(&mut tx, &approval, now).await?;
                tx.commit().await?;
            }
            return Err(StoreError::Expired { id: id.to_owned() });
        }
        status => {
            return Err(StoreError::NotRevocable {
                id: id.to_owned(),
                status,
            });
        }
    }

    // `decided_at` keeps the approval time of an approved one; the audit
    // log has the revocation time.
    sqlx::query(
        "UPDATE approvals SET status = 'revoked', decided_at = COALESCE(decided_at, $2) \
         WHERE id = $1",
    )
    .bind(id)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let mut grants: Vec<String> = sqlx::query_scalar(
        "UPDATE grants SET revoked_at = $2 WHERE approval_id = $1 AND revoked_at IS NULL \
         RETURNING id",
    )
    .bind(id)
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    grants.sort();
    insert_audit(
        &mut tx,
        now,
        actor,
        events::APPROVAL_REVOKED,
        Some(id),
        json!({ "reason": reason, "previous_status": approval.status, "grants": grants,
                "issuer": by.issuer, "client_id": by.client_id }),
    )
    .await?;
    for grant in &grants {
        insert_audit(
            &mut tx,
            now,
            actor,
            events::GRANT_REVOKED,
            Some(id),
            json!({ "grant_id": grant, "reason": reason }),
        )
        .await?;
    }
    let approval = reread(&mut tx, id).await?;
    super::outbox::insert_deliveries(&mut tx, &announce(&approval), now).await?;
    super::requests::insert_callback_deliveries(&mut tx, &approval, now).await?;
    tx.commit().await?;
    Ok(approval)
}

pub(crate) async fn expire_due(
    pool: &Pool,
    now: i64,
    announce: &(dyn Fn(&Approval) -> Vec<crate::NewWebhookDelivery> + Sync),
) -> Result<u64, StoreError> {
    let mut tx = begin_write(pool).await?;
    let mut lapsed: Vec<(String, i64)> = sqlx::query_as(
        "UPDATE approvals SET status = 'expired', decided_at = $1 \
         WHERE status = 'pending' AND expires_at <= $1 RETURNING id, expires_at",
    )
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    // Audit in a stable order, whatever order the database returned.
    lapsed.sort();
    for (id, expires_at) in &lapsed {
        audit_expired(&mut tx, id, *expires_at, now).await?;
        let approval = reread(&mut tx, id).await?;
        super::outbox::insert_deliveries(&mut tx, &announce(&approval), now).await?;
        super::requests::insert_callback_deliveries(&mut tx, &approval, now).await?;
    }
    tx.commit().await?;
    Ok(lapsed.len() as u64)
}
