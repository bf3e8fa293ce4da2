//! The append-only audit log: one insert function, three readers.

use serde_json::Value;
use sqlx::FromRow;
use sqlx::types::Json;

use super::{Conn, Pool, begin_write, limit_i64};
use crate::{AuditEvent, NewAuditEvent, StoreError};

/// An `audit_events` row as stored.
#[derive(FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    event: String,
    approval_id: Option<String>,
    detail: Json<Value>,
}

impl From<AuditRow> for AuditEvent {
    fn from(row: AuditRow) -> Self {
        AuditEvent {
            id: row.id,
            at: row.at,
            actor: row.actor,
            event: row.event,
            approval_id: row.approval_id,
            detail: row.detail.0,
        }
    }
}

/// Appends one event inside the caller's transaction; returns its id.
pub(super) async fn insert_audit(
    conn: &mut Conn,
    at: i64,
    actor: &str,
    event: &str,
    approval_id: Option<&str>,
    detail: Value,
) -> Result<i64, StoreError> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO audit_events (at, actor, event, approval_id, detail) \
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(at)
    .bind(actor)
    .bind(event)
    .bind(approval_id)
    .bind(Json(detail))
    .fetch_one(conn)
    .await?;
    Ok(id)
}

pub(crate) async fn append_audit(
    pool: &Pool,
    new: NewAuditEvent,
) -> Result<AuditEvent, StoreError> {
    let mut tx = begin_write(pool).await?;
    let id = insert_audit(
        &mut tx,
        new.at,
        &new.actor,
        &new.event,
        new.approval_id.as_deref(),
        new.detail.clone(),
    )
    .await?;
    tx.commit().await?;
    Ok(AuditEvent {
        id,
        at: new.at,
        actor: new.actor,
        event: new.event,
        approval_id: new.approval_id,
        detail: new.detail,
    })
}

pub(crate) async fn audit_for(
    pool: &Pool,
    approval_id: &str,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT id, at, actor, event, approval_id, detail FROM audit_events \
         WHERE approval_id = $1 ORDER BY id",
    )
    .bind(approval_id)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}

pub(crate) async fn audit_since(
    pool: &Pool,
    after_id: i64,
    limit: u32,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows: Vec<AuditRow> = sqlx::query_as(
        "SELECT id, at, actor, event, approval_id, detail FROM audit_events \
         WHERE id > $1 ORDER BY id LIMIT $2",
    )
    .bind(after_id)
    .bind(limit_i64(limit))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(AuditEvent::from).collect())
}
