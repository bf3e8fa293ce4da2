//! Bulk access requests: their tasks, items and callbacks, and telling
//! those callbacks when a decided item makes the aggregate terminal.

use serde_json::Value;
use sqlx::FromRow;

use super::requests::{CallbackRow, callback_delivery, insert_key};
use super::{Conn, LOCK_BUNDLE_CALLBACKS, Pool, begin_write};
use crate::bundles::{Bundle, BundleItem, BundleOpened, MAX_BUNDLES_PER_APPROVAL, aggregate};
use crate::{AccessRequestKey, NewTaskCallback, StoreError};

/// An `access_request_bundles` row as stored.
#[derive(FromRow)]
struct BundleRow {
    id: String,
    requester_issuer: String,
    requester: String,
    client_id: String,
    created_at: i64,
    keep_until: i64,
}

/// An `access_request_bundle_items` row as stored.
#[derive(FromRow)]
struct ItemRow {
    approval_id: String,
    resource: String,
    action: String,
}

impl From<ItemRow> for BundleItem {
    fn from(r: ItemRow) -> Self {
        Self {
            approval_id: r.approval_id,
            resource: r.resource,
            action: r.action,
        }
    }
}

/// The approval ids of the bundle `id`'s items, in order.
async fn item_approvals(conn: &mut Conn, id: &str) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT approval_id FROM access_request_bundle_items WHERE bundle_id = $1 ORDER BY ordinal",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?)
}

pub(crate) async fn open_bundle(
    pool: &Pool,
    bundle: &Bundle,
    key: Option<&AccessRequestKey>,
    callback: Option<&NewTaskCallback>,
    now: i64,
) -> Result<BundleOpened, StoreError> {
    let mut tx = begin_write(pool).await?;
    // Locked in one order (by id), so two bundles over the same approvals
    // cannot wait on each other.
    let mut ids: Vec<&str> = bundle
        .items
        .iter()
        .map(|i| i.approval_id.as_str())
        .collect();
    ids.sort_unstable();
    let mut statuses = Vec::with_capacity(ids.len());
    for id in ids {
        let a = super::approvals::lock_approval(&mut tx, id).await?;
        if a.requester_issuer != bundle.requester_issuer
            || a.requester != bundle.requester
            || a.client_id != bundle.client_id
        {
            return Err(StoreError::Invalid(format!(
                "approval {id} is not the bulk access request's requester's"
            )));
        }
        // Bounded, so deciding one approval tells a bounded number of
        // bundles (joining a pending approval costs no quota).
        let holding: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM access_request_bundle_items WHERE approval_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if holding >= i64::try_from(MAX_BUNDLES_PER_APPROVAL).unwrap_or(i64::MAX) {
            return Err(StoreError::QuotaReached {
                message: format!(
                    "approval {id} is already part of {MAX_BUNDLES_PER_APPROVAL} bulk access requests: read one of them"
                ),
                retry_after: a.expires_at.saturating_sub(now).max(1),
            });
        }
        statuses.push(a.status_at(now));
    }
    sqlx::query(
        "INSERT INTO access_request_bundles \
         (id, requester_issuer, requester, client_id, created_at, keep_until) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&bundle.id)
    .bind(&bundle.requester_issuer)
    .bind(&bundle.requester)
    .bind(&bundle.client_id)
    .bind(bundle.created_at)
    .bind(bundle.keep_until)
    .execute(&mut *tx)
    .await?;
    for (ordinal, item) in bundle.items.iter().enumerate() {
        sqlx::query(
            "INSERT INTO access_request_bundle_items \
             (bundle_id, ordinal, approval_id, resource, action) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&bundle.id)
        .bind(i64::try_from(ordinal).unwrap_or(i64::MAX))
        .bind(&item.approval_id)
        .bind(&item.resource)
        .bind(&item.action)
        .execute(&mut *tx)
        .await?;
    }
    if let Some(key) = key {
        let key = AccessRequestKey {
            approval_id: bundle.items[0].approval_id.clone(),
            bundle_id: Some(bundle.id.clone()),
            ..key.clone()
        };
        let stands = insert_key(&mut tx, &key).await?;
        if stands.bundle_id.as_deref() != Some(bundle.id.as_str()) {
            drop(tx);
            return Ok(BundleOpened::KeyTaken(stands));
        }
    }
    let callback_stored = match callback {
        Some(cb) if aggregate(statuses) == "pending" => {
            sqlx::query(
                "INSERT INTO bundle_callbacks \
                 (id, bundle_id, hook, state, events, status_endpoint, told_status, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, NULL, $7)",
            )
            .bind(crate::new_id()?)
            .bind(&bundle.id)
            .bind(&cb.hook)
            .bind(&cb.state)
            .bind(Value::from(cb.events.clone()).to_string())
            .bind(&cb.status_endpoint)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            true
        }
        _ => false,
    };
    tx.commit().await?;
    Ok(BundleOpened::Created { callback_stored })
}

pub(crate) async fn get_bundle(pool: &Pool, id: &str) -> Result<Option<Bundle>, StoreError> {
    let mut conn = pool.acquire().await?;
    let row: Option<BundleRow> = sqlx::query_as(
        "SELECT id, requester_issuer, requester, client_id, created_at, keep_until \
         FROM access_request_bundles WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let items: Vec<ItemRow> = sqlx::query_as(
        "SELECT approval_id, resource, action FROM access_request_bundle_items \
         WHERE bundle_id = $1 ORDER BY ordinal",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(Bundle {
        id: row.id,
        requester_issuer: row.requester_issuer,
        requester: row.requester,
        client_id: row.client_id,
        created_at: row.created_at,
        keep_until: row.keep_until,
        items: items.into_iter().map(Into::into).collect(),
    }))
}

/// A `bundle_callbacks` row as stored, with what it was last told.
#[derive(FromRow)]
struct BundleCallbackRow {
    id: String,
    #[sqlx(flatten)]
    callback: CallbackRow,
    told_status: Option<String>,
}

/// In the transaction that just decided the approval `approval_id`: tells
/// the callbacks of every bundle holding it whose aggregate status is now
/// terminal and not what they were last told.
pub(super) async fn tell(conn: &mut Conn, approval_id: &str, now: i64) -> Result<(), StoreError> {
    let bundles: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT i.bundle_id FROM access_request_bundle_items i \
         JOIN bundle_callbacks c ON c.bundle_id = i.bundle_id \
         WHERE i.approval_id = $1 ORDER BY i.bundle_id",
    )
    .bind(approval_id)
    .fetch_all(&mut *conn)
    .await?;
    if bundles.is_empty() {
        return Ok(());
    }
    // The other items are read after this lock: of two items decided at
    // once, the second to get here sees the first decided.
    if let Some(lock) = LOCK_BUNDLE_CALLBACKS {
        sqlx::query(lock).execute(&mut *conn).await?;
    }
    for bundle in bundles {
        let mut statuses = Vec::new();
        for id in item_approvals(conn, &bundle).await? {
            statuses.push(super::approvals::reread(conn, &id).await?.status_at(now));
        }
        let status = aggregate(statuses);
        if status == "pending" {
            continue;
        }
        let rows: Vec<BundleCallbackRow> = sqlx::query_as(
            "SELECT id, hook, state, events, status_endpoint, told_status FROM bundle_callbacks \
             WHERE bundle_id = $1 ORDER BY created_at, id",
        )
        .bind(&bundle)
        .fetch_all(&mut *conn)
        .await?;
        let mut deliveries = Vec::new();
        for row in rows
            .iter()
            .filter(|r| r.told_status.as_deref() != Some(status))
        {
            if let Some(d) = callback_delivery(&row.callback, &bundle, status)? {
                deliveries.push(d);
            }
            sqlx::query("UPDATE bundle_callbacks SET told_status = $2 WHERE id = $1")
                .bind(&row.id)
                .bind(status)
                .execute(&mut *conn)
                .await?;
        }
        super::outbox::insert_deliveries(conn, &deliveries, now).await?;
    }
    Ok(())
}

/// Forgets bundles whose `keep_until < now`, with their items, callbacks
/// and idempotency keys; returns how many bundles.
pub(super) async fn purge(conn: &mut Conn, now: i64) -> Result<u64, StoreError> {
    for statement in [
        "DELETE FROM access_requests WHERE bundle_id IN \
         (SELECT id FROM access_request_bundles WHERE keep_until < $1)",
        "DELETE FROM bundle_callbacks WHERE bundle_id IN \
         (SELECT id FROM access_request_bundles WHERE keep_until < $1)",
        "DELETE FROM access_request_bundle_items WHERE bundle_id IN \
         (SELECT id FROM access_request_bundles WHERE keep_until < $1)",
    ] {
        sqlx::query(statement).bind(now).execute(&mut *conn).await?;
    }
    Ok(
        sqlx::query("DELETE FROM access_request_bundles WHERE keep_until < $1")
            .bind(now)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    )
}
