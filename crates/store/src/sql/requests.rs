//! AuthZEN Access Request and Approval: idempotency keys of submissions,
//! and the callbacks a PEP asked for on a task, told in the transaction
//! that decides the task.

use serde_json::{Value, json};
use sqlx::FromRow;

use super::{Conn, Pool, begin_write};
use crate::{AccessRequestKey, Approval, NewTaskCallback, NewWebhookDelivery, Status, StoreError};

/// An `access_requests` row as stored.
#[derive(FromRow)]
struct KeyRow {
    caller: String,
    idempotency_key: String,
    body_hash: String,
    approval_id: String,
    bundle_id: Option<String>,
    created_at: i64,
    keep_until: i64,
}

impl From<KeyRow> for AccessRequestKey {
    fn from(r: KeyRow) -> Self {
        Self {
            caller: r.caller,
            idempotency_key: r.idempotency_key,
            body_hash: r.body_hash,
            approval_id: r.approval_id,
            bundle_id: r.bundle_id,
            created_at: r.created_at,
            keep_until: r.keep_until,
        }
    }
}

async fn read_key(
    conn: &mut Conn,
    caller: &str,
    idempotency_key: &str,
) -> Result<Option<AccessRequestKey>, StoreError> {
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT caller, idempotency_key, body_hash, approval_id, bundle_id, created_at, keep_until \
         FROM access_requests WHERE caller = $1 AND idempotency_key = $2",
    )
    .bind(caller)
    .bind(idempotency_key)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(Into::into))
}

pub(crate) async fn find_access_request(
    pool: &Pool,
    caller: &str,
    idempotency_key: &str,
) -> Result<Option<AccessRequestKey>, StoreError> {
    let mut conn = pool.acquire().await?;
    read_key(&mut conn, caller, idempotency_key).await
}

pub(crate) async fn record_access_request(
    pool: &Pool,
    key: &AccessRequestKey,
) -> Result<AccessRequestKey, StoreError> {
    let mut tx = begin_write(pool).await?;
    let stands = insert_key(&mut tx, key).await?;
    tx.commit().await?;
    Ok(stands)
}

/// Records `key` in the caller's transaction unless the caller already
/// recorded the same key: the primary key decides between concurrent
/// submissions under one key, the first one stands, and this returns it.
pub(super) async fn insert_key(
    conn: &mut Conn,
    key: &AccessRequestKey,
) -> Result<AccessRequestKey, StoreError> {
    sqlx::query(
        "INSERT INTO access_requests \
         (caller, idempotency_key, body_hash, approval_id, bundle_id, created_at, keep_until) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (caller, idempotency_key) DO NOTHING",
    )
    .bind(&key.caller)
    .bind(&key.idempotency_key)
    .bind(&key.body_hash)
    .bind(&key.approval_id)
    .bind(&key.bundle_id)
    .bind(key.created_at)
    .bind(key.keep_until)
    .execute(&mut *conn)
    .await?;
    read_key(conn, &key.caller, &key.idempotency_key)
        .await?
        .ok_or_else(|| StoreError::Corrupt("an access request key vanished".to_owned()))
}

pub(crate) async fn add_task_callback(
    pool: &Pool,
    approval_id: &str,
    callback: &NewTaskCallback,
    now: i64,
) -> Result<bool, StoreError> {
    let mut tx = begin_write(pool).await?;
    // Locked, so a vote deciding the approval either sees this callback
    // or has already decided (and this one is not stored).
    let approval = super::approvals::lock_approval(&mut tx, approval_id).await?;
    if approval.status_at(now) != Status::Pending {
        return Ok(false);
    }
    // The same callback asked for again (a resubmission joining the task)
    // is told once.
    let same: Option<String> = sqlx::query_scalar(
        "SELECT id FROM task_callbacks WHERE approval_id = $1 AND hook = $2 \
         AND state IS NOT DISTINCT FROM $3 AND events = $4",
    )
    .bind(approval_id)
    .bind(&callback.hook)
    .bind(&callback.state)
    .bind(Value::from(callback.events.clone()).to_string())
    .fetch_optional(&mut *tx)
    .await?;
    if same.is_some() {
        return Ok(true);
    }
    sqlx::query(
        "INSERT INTO task_callbacks (id, approval_id, hook, state, events, status_endpoint, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(crate::new_id()?)
    .bind(approval_id)
    .bind(&callback.hook)
    .bind(&callback.state)
    .bind(Value::from(callback.events.clone()).to_string())
    .bind(&callback.status_endpoint)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn purge_access_requests(pool: &Pool, now: i64) -> Result<u64, StoreError> {
    let mut tx = begin_write(pool).await?;
    let mut purged = sqlx::query("DELETE FROM access_requests WHERE keep_until < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    purged += super::bundles::purge(&mut tx, now).await?;
    tx.commit().await?;
    Ok(purged)
}

/// A `task_callbacks` (or `bundle_callbacks`) row as stored.
#[derive(FromRow)]
pub(super) struct CallbackRow {
    pub(super) hook: String,
    pub(super) state: Option<String>,
    pub(super) events: String,
    pub(super) status_endpoint: String,
}

/// Stores, in the caller's transaction, the callback deliveries telling
/// that `approval` reached its terminal status: one per callback asked
/// for on it that wants this status. Nothing while it is pending.
pub(super) async fn insert_callback_deliveries(
    conn: &mut Conn,
    approval: &Approval,
    now: i64,
) -> Result<(), StoreError> {
    if approval.status == Status::Pending {
        return Ok(());
    }
    let status = approval.status.task_status();
    let rows: Vec<CallbackRow> = sqlx::query_as(
        "SELECT hook, state, events, status_endpoint FROM task_callbacks \
         WHERE approval_id = $1 ORDER BY created_at, id",
    )
    .bind(&approval.id)
    .fetch_all(&mut *conn)
    .await?;
    let mut deliveries = Vec::with_capacity(rows.len());
    for row in rows {
        if let Some(d) = callback_delivery(&row, &approval.id, status)? {
            deliveries.push(d);
        }
    }
    super::outbox::insert_deliveries(conn, &deliveries, now).await?;
    super::bundles::tell(conn, &approval.id, now).await
}

/// The delivery telling the callback `row` that the task `task_id` is now
/// `status`; `None` when it did not ask for that status.
pub(super) fn callback_delivery(
    row: &CallbackRow,
    task_id: &str,
    status: &str,
) -> Result<Option<NewWebhookDelivery>, StoreError> {
    let events: Vec<String> = serde_json::from_str(&row.events)
        .map_err(|e| StoreError::Corrupt(format!("task callback events: {e}")))?;
    if !events.is_empty() && !events.iter().any(|e| e == status) {
        return Ok(None);
    }
    let mut body = json!({
        "task": { "id": task_id, "status": status, "status_endpoint": row.status_endpoint },
    });
    if let Some(text) = row.state.as_deref() {
        body["state"] = serde_json::from_str::<Value>(text)
            .map_err(|e| StoreError::Corrupt(format!("task callback state: {e}")))?;
    }
    Ok(Some(NewWebhookDelivery {
        id: crate::new_id()?,
        hook: row.hook.clone(),
        event: format!("access_request.{status}"),
        body: body.to_string(),
    }))
}
