//! The portal's sign-ins, sessions and confirmation codes.

use serde_json::json;
use sqlx::FromRow;

use super::audit::insert_audit;
use super::{Pool, begin_write};
use crate::portal::{PortalLogin, PortalSession};
use crate::{StoreError, events};

pub(crate) async fn begin_login(pool: &Pool, login: &PortalLogin) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO portal_logins (state_hash, nonce, verifier, return_to, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&login.state_hash)
    .bind(&login.nonce)
    .bind(&login.verifier)
    .bind(&login.return_to)
    .bind(login.created_at)
    .bind(login.expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

/// A `portal_logins` row as stored.
#[derive(FromRow)]
struct LoginRow {
    state_hash: String,
    nonce: String,
    verifier: String,
    return_to: String,
    created_at: i64,
    expires_at: i64,
}

pub(crate) async fn take_login(
    pool: &Pool,
    state_hash: &str,
    now: i64,
) -> Result<Option<PortalLogin>, StoreError> {
    // Deleting is what makes a `state` good once: of two callbacks with the
    // same state, one gets the row.
    let row: Option<LoginRow> = sqlx::query_as(
        "DELETE FROM portal_logins WHERE state_hash = $1 \
         RETURNING state_hash, nonce, verifier, return_to, created_at, expires_at",
    )
    .bind(state_hash)
    .fetch_optional(pool)
    .await?;
    Ok(row.filter(|r| r.expires_at > now).map(|r| PortalLogin {
        state_hash: r.state_hash,
        nonce: r.nonce,
        verifier: r.verifier,
        return_to: r.return_to,
        created_at: r.created_at,
        expires_at: r.expires_at,
    }))
}

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
    let mut tx = begin_write(pool).await?;
    let logins = sqlx::query("DELETE FROM portal_logins WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let sessions = sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    Ok(logins + sessions)
}
