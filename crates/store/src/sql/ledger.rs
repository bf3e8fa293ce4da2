//! The consumed-token ledger: a single-use token's `jti` goes in once.

use serde_json::json;
use sqlx::FromRow;

use super::audit::insert_audit;
use super::{Pool, begin_write};
use crate::{ConsumedToken, StoreError, events};

pub(crate) async fn consume_token(
    pool: &Pool,
    jti: &str,
    expires_at: i64,
    approval_id: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(), StoreError> {
    let mut tx = begin_write(pool).await?;
    // The primary key decides: of concurrent inserts (any task, any
    // replica) exactly one affects a row.
    let inserted = sqlx::query(
        "INSERT INTO consumed_tokens (jti, expires_at, consumed_at) VALUES ($1, $2, $3) \
         ON CONFLICT (jti) DO NOTHING",
    )
    .bind(jti)
    .bind(expires_at)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(StoreError::Replay {
            jti: jti.to_owned(),
        });
    }
    insert_audit(
        &mut tx,
        now,
        actor,
        events::TOKEN_CONSUMED,
        approval_id,
        json!({ "jti": jti, "expires_at": expires_at }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A `consumed_tokens` row as stored.
#[derive(FromRow)]
struct ConsumedRow {
    jti: String,
    expires_at: i64,
    consumed_at: i64,
}

pub(crate) async fn consumed_token(
    pool: &Pool,
    jti: &str,
) -> Result<Option<ConsumedToken>, StoreError> {
    let row: Option<ConsumedRow> =
        sqlx::query_as("SELECT jti, expires_at, consumed_at FROM consumed_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|row| ConsumedToken {
        jti: row.jti,
        expires_at: row.expires_at,
        consumed_at: row.consumed_at,
    }))
}

pub(crate) async fn purge_ledger(pool: &Pool, now: i64) -> Result<u64, StoreError> {
    let purged = sqlx::query("DELETE FROM consumed_tokens WHERE expires_at < $1")
        .bind(now)
        .execute(pool)
        .await?
        .rows_affected();
    Ok(purged)
}
