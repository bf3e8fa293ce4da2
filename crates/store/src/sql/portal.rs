//! The portal's sessions and confirmation codes.

use serde_json::json;
use sqlx::FromRow;

use super::audit::insert_audit;
use super::{Pool, begin_write};
use crate::portal::PortalSession;
use crate::{StoreError, events};

pub(crate) async fn create_session(pool: &Pool, s: &PortalSession) -> Result<(), StoreError> {
    let mut tx = begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO portal_sessions \
         (id_hash, issuer, subject, credential, csrf, created_at, expires_at, ended_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)",
    )
    .bind(&s.id_hash)
    .bind(&s.issuer)
    .bind(&s.subject)
    .bind(s.credential.to_string())
    .bind(&s.csrf)
    .bind(s.created_at)
    .bind(s.expires_at)
    .execute(&mut *tx)
    .await?;
    insert_audit(
        &mut tx,
        s.created_at,
        &s.subject,
        events::PORTAL_SIGNED_IN,
        None,
        json!({ "issuer": s.issuer, "expires_at": s.expires_at }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A `portal_sessions` row as stored.
#[derive(FromRow)]
struct SessionRow {
    id_hash: String,
    issuer: String,
    subject: String,
    credential: String,
    csrf: String,
    created_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
}

pub(crate) async fn session(
    pool: &Pool,
    id_hash: &str,
) -> Result<Option<PortalSession>, StoreError> {
    let row: Option<SessionRow> = sqlx::query_as(
        "SELECT id_hash, issuer, subject, credential, csrf, created_at, expires_at, ended_at \
         FROM portal_sessions WHERE id_hash = $1",
    )
    .bind(id_hash)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(PortalSession {
            credential: serde_json::from_str(&r.credential)
                .map_err(|e| StoreError::Corrupt(format!("a portal session's credential: {e}")))?,
            id_hash: r.id_hash,
            issuer: r.issuer,
            subject: r.subject,
            csrf: r.csrf,
            created_at: r.created_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
        })
    })
    .transpose()
}

pub(crate) async fn end_session(pool: &Pool, id_hash: &str, now: i64) -> Result<bool, StoreError> {
    let mut tx = begin_write(pool).await?;
    let ended: Option<(String, String)> = sqlx::query_as(
        "UPDATE portal_sessions SET ended_at = $2 WHERE id_hash = $1 AND ended_at IS NULL \
         RETURNING issuer, subject",
    )
    .bind(id_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((issuer, subject)) = ended else {
        return Ok(false);
    };
    insert_audit(
        &mut tx,
        now,
        &subject,
        events::PORTAL_SIGNED_OUT,
        None,
        json!({ "issuer": issuer }),
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}

pub(crate) async fn confirmation_code(
    pool: &Pool,
    approval_id: &str,
    candidate: &str,
) -> Result<Option<String>, StoreError> {
    let mut tx = begin_write(pool).await?;
    sqlx::query(
        "INSERT INTO portal_codes (code, approval_id) VALUES ($1, $2) \
         ON CONFLICT DO NOTHING",
    )
    .bind(candidate)
    .bind(approval_id)
    .execute(&mut *tx)
    .await?;
    let code: Option<(String,)> =
        sqlx::query_as("SELECT code FROM portal_codes WHERE approval_id = $1")
            .bind(approval_id)
            .fetch_optional(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(code.map(|(c,)| c))
}

pub(crate) async fn approval_for_code(
    pool: &Pool,
    code: &str,
) -> Result<Option<String>, StoreError> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT approval_id FROM portal_codes WHERE code = $1")
            .bind(code)
            .fetch_optional(pool)
            .await?;
    Ok(row.map(|(id,)| id))
}

pub(crate) async fn purge_portal(pool: &Pool, now: i64) -> Result<u64, StoreError> {
    Ok(
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
    )
}
