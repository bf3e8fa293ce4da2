//! The webhook outbox: deliveries are stored before they are attempted, so
//! a restart resumes them, and each attempt is claimed by one replica.

use sqlx::FromRow;

use super::{Conn, Pool, begin_write};
use crate::{NewWebhookDelivery, StoreError, WebhookDelivery};

pub(crate) async fn enqueue_deliveries(
    pool: &Pool,
    deliveries: &[NewWebhookDelivery],
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = begin_write(pool).await?;
    insert_deliveries(&mut tx, deliveries, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Stores deliveries, due at `now`, in the caller's transaction.
pub(super) async fn insert_deliveries(
    conn: &mut Conn,
    deliveries: &[NewWebhookDelivery],
    now: i64,
) -> Result<(), StoreError> {
    for d in deliveries {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, hook, event, body, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(&d.id)
        .bind(&d.hook)
        .bind(&d.event)
        .bind(&d.body)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// A `webhook_deliveries` row as the worker needs it.
#[derive(FromRow)]
struct DeliveryRow {
    id: String,
    hook: String,
    event: String,
    body: String,
    attempts: i64,
}

pub(crate) async fn claim_due_deliveries(
    pool: &Pool,
    now: i64,
    lease_until: i64,
    limit: u32,
) -> Result<Vec<WebhookDelivery>, StoreError> {
    let due: Vec<DeliveryRow> = sqlx::query_as(
        "SELECT id, hook, event, body, attempts FROM webhook_deliveries \
         WHERE next_attempt_at <= $1 AND delivered_at IS NULL AND given_up_at IS NULL \
         ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(now)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    let mut claimed = Vec::with_capacity(due.len());
    for row in due {
        // The condition decides between replicas: one of them moves the
        // attempt time past now, the others then match nothing.
        let won = sqlx::query(
            "UPDATE webhook_deliveries SET next_attempt_at = $2, attempts = attempts + 1 \
             WHERE id = $1 AND next_attempt_at <= $3 AND delivered_at IS NULL AND given_up_at IS NULL",
        )
        .bind(&row.id)
        .bind(lease_until)
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected()
            == 1;
        if won {
            claimed.push(WebhookDelivery {
                id: row.id,
                hook: row.hook,
                event: row.event,
                body: row.body,
                attempt: u32::try_from(row.attempts + 1).unwrap_or(u32::MAX),
            });
        }
    }
    Ok(claimed)
}

pub(crate) async fn delivery_succeeded(pool: &Pool, id: &str, now: i64) -> Result<(), StoreError> {
    sqlx::query("UPDATE webhook_deliveries SET delivered_at = $2, last_error = NULL WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

pub(crate) async fn delivery_failed(
    pool: &Pool,
    id: &str,
    now: i64,
    retry_at: Option<i64>,
    error: &str,
) -> Result<(), StoreError> {
    match retry_at {
        Some(at) => {
            sqlx::query(
                "UPDATE webhook_deliveries SET next_attempt_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(at)
            .bind(error)
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE webhook_deliveries SET given_up_at = $2, last_error = $3 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(error)
            .execute(pool)
            .await?
        }
    };
    Ok(())
}

pub(crate) async fn pending_deliveries(pool: &Pool) -> Result<u64, StoreError> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE delivered_at IS NULL AND given_up_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}
