//! Window grants: an approved action the subject may repeat until the
//! window closes.

use serde_json::json;
use sqlx::FromRow;

use super::approvals::lock_approval;
use super::audit::insert_audit;
use super::{Pool, begin_write};
use crate::{Grant, GrantMode, SYSTEM_ACTOR, Status, StoreError, Voter, events, new_id};

/// The columns read for a grant, in `Grant` field order (a macro so
/// statements stay `&'static str`).
macro_rules! grant_columns {
    () => {
        "id, approval_id, subject, action_digest, created_at, expires_at, revoked_at, issuer, client_id"
    };
}

/// A `grants` row as stored.
#[derive(FromRow)]
struct GrantRow {
    id: String,
    approval_id: String,
    subject: String,
    action_digest: String,
    created_at: i64,
    expires_at: i64,
    revoked_at: Option<i64>,
    issuer: String,
    client_id: String,
}

impl From<GrantRow> for Grant {
    fn from(row: GrantRow) -> Self {
        Grant {
            id: row.id,
            approval_id: row.approval_id,
            subject: row.subject,
            issuer: row.issuer,
            client_id: row.client_id,
            action_digest: row.action_digest,
            created_at: row.created_at,
            expires_at: row.expires_at,
            revoked_at: row.revoked_at,
        }
    }
}

/// Reads the grant of an approval.
const SELECT_GRANT_FOR_APPROVAL: &str = concat!(
    "SELECT ",
    grant_columns!(),
    " FROM grants WHERE approval_id = $1"
);

pub(crate) async fn create_grant(
    pool: &Pool,
    approval_id: &str,
    expires_at: i64,
    now: i64,
) -> Result<Grant, StoreError> {
    let mut tx = begin_write(pool).await?;
    // Locked, so a concurrent revocation either precedes us (and we refuse)
    // or follows us (and revokes this grant too).
    let approval = lock_approval(&mut tx, approval_id).await?;
    if approval.status != Status::Approved {
        return Err(StoreError::NotApproved {
            id: approval_id.to_owned(),
            status: approval.status,
        });
    }
    if approval.obligation.grant != GrantMode::Window {
        return Err(StoreError::Invalid(format!(
            "approval {approval_id} grants a single-use token, not a window"
        )));
    }
    let existing: Option<GrantRow> = sqlx::query_as(SELECT_GRANT_FOR_APPROVAL)
        .bind(approval_id)
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(existing) = existing {
        return Ok(existing.into());
    }
    if expires_at <= now {
        return Err(StoreError::Invalid(
            "the grant would expire before it is created".to_owned(),
        ));
    }

    let grant = Grant {
        id: new_id()?,
        approval_id: approval_id.to_owned(),
        subject: approval.requester,
        issuer: approval.requester_issuer,
        client_id: approval.client_id,
        action_digest: approval.action_digest,
        created_at: now,
        expires_at,
        revoked_at: None,
    };
    sqlx::query(concat!(
        "INSERT INTO grants (",
        grant_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    ))
    .bind(&grant.id)
    .bind(&grant.approval_id)
    .bind(&grant.subject)
    .bind(&grant.action_digest)
    .bind(grant.created_at)
    .bind(grant.expires_at)
    .bind(grant.revoked_at)
    .bind(&grant.issuer)
    .bind(&grant.client_id)
    .execute(&mut *tx)
    .await?;
    insert_audit(
        &mut tx,
        now,
        SYSTEM_ACTOR,
        events::GRANT_CREATED,
        Some(approval_id),
        json!({
            "grant_id": grant.id,
            "subject": grant.subject,
            "issuer": grant.issuer,
            "client_id": grant.client_id,
            "action_digest": grant.action_digest,
            "expires_at": grant.expires_at,
        }),
    )
    .await?;
    tx.commit().await?;
    Ok(grant)
}

pub(crate) async fn find_active_grant(
    pool: &Pool,
    holder: &Voter,
    digest: &str,
    now: i64,
) -> Result<Option<Grant>, StoreError> {
    let row: Option<GrantRow> = sqlx::query_as(concat!(
        "SELECT ",
        grant_columns!(),
        " FROM grants WHERE issuer = $1 AND subject = $2 AND client_id = $3 \
         AND action_digest = $4 AND revoked_at IS NULL AND expires_at > $5 \
         ORDER BY expires_at DESC, id LIMIT 1"
    ))
    .bind(&holder.issuer)
    .bind(&holder.subject)
    .bind(&holder.client_id)
    .bind(digest)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Grant::from))
}

pub(crate) async fn grant_for_approval(
    pool: &Pool,
    approval_id: &str,
) -> Result<Option<Grant>, StoreError> {
    let row: Option<GrantRow> = sqlx::query_as(SELECT_GRANT_FOR_APPROVAL)
        .bind(approval_id)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Grant::from))
}
