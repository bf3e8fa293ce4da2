//! Greenlight's signing keys.

use serde_json::{Value, json};
use sqlx::FromRow;
use sqlx::types::Json;

use super::audit::insert_audit;
use super::{Conn, NOTIFY_KEYS, Pool, begin_write};
use crate::error::is_unique_violation;
use crate::{SYSTEM_ACTOR, SigningKey, StoreError, events};

/// The columns read for a key, in `SigningKey` field order (a macro so
/// statements stay `&'static str`).
macro_rules! key_columns {
    () => {
        "kid, algorithm, private_key_pem, public_jwk, created_at, retired_at, publish_until, succeeds"
    };
}

/// A `signing_keys` row as stored.
#[derive(FromRow)]
struct KeyRow {
    kid: String,
    algorithm: String,
    private_key_pem: String,
    public_jwk: Json<Value>,
    created_at: i64,
    retired_at: Option<i64>,
    publish_until: Option<i64>,
    succeeds: Option<String>,
}

impl From<KeyRow> for SigningKey {
    fn from(row: KeyRow) -> Self {
        SigningKey {
            kid: row.kid,
            algorithm: row.algorithm,
            private_key_pem: row.private_key_pem,
            public_jwk: row.public_jwk.0,
            created_at: row.created_at,
            retired_at: row.retired_at,
            publish_until: row.publish_until,
            succeeds: row.succeeds,
        }
    }
}

pub(crate) async fn insert_signing_key(pool: &Pool, key: &SigningKey) -> Result<(), StoreError> {
    let mut tx = begin_write(pool).await?;
    let inserted = sqlx::query(concat!(
        "INSERT INTO signing_keys (",
        key_columns!(),
        ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    ))
    .bind(&key.kid)
    .bind(&key.algorithm)
    .bind(&key.private_key_pem)
    .bind(Json(&key.public_jwk))
    .bind(key.created_at)
    .bind(key.retired_at)
    .bind(key.publish_until)
    .bind(key.succeeds.as_deref())
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(err) if is_unique_violation(&err) => {
            return Err(StoreError::Conflict(match &key.succeeds {
                Some(p) => format!(
                    "signing key {} exists, or another key succeeds `{p}`",
                    key.kid
                ),
                None => format!("signing key {} exists", key.kid),
            }));
        }
        other => other?,
    };
    insert_audit(
        &mut tx,
        key.created_at,
        SYSTEM_ACTOR,
        events::KEY_CREATED,
        None,
        json!({ "kid": key.kid, "algorithm": key.algorithm }),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(crate) async fn signing_keys(pool: &Pool) -> Result<Vec<SigningKey>, StoreError> {
    let rows: Vec<KeyRow> = sqlx::query_as(concat!(
        "SELECT ",
        key_columns!(),
        " FROM signing_keys ORDER BY created_at DESC, kid DESC"
    ))
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(SigningKey::from).collect())
}

/// Marks a key retired at `now` (kept if it already was) and published
/// until `publish_until` (`None`: no longer), in `tx`.
async fn end_key(
    tx: &mut Conn,
    kid: &str,
    now: i64,
    publish_until: Option<i64>,
) -> Result<KeyRow, StoreError> {
    let row: Option<KeyRow> = sqlx::query_as(concat!(
        "UPDATE signing_keys SET retired_at = COALESCE(retired_at, $2), publish_until = $3 \
         WHERE kid = $1 RETURNING ",
        key_columns!()
    ))
    .bind(kid)
    .bind(now)
    .bind(publish_until)
    .fetch_optional(&mut *tx)
    .await?;
    row.ok_or_else(|| StoreError::NotFound {
        kind: "signing key",
        id: kid.to_owned(),
    })
}

pub(crate) async fn retire_signing_key(
    pool: &Pool,
    kid: &str,
    now: i64,
    publish_until: Option<i64>,
) -> Result<SigningKey, StoreError> {
    let mut tx = begin_write(pool).await?;
    let row = end_key(&mut tx, kid, now, publish_until).await?;
    insert_audit(
        &mut tx,
        now,
        SYSTEM_ACTOR,
        events::KEY_RETIRED,
        None,
        json!({ "kid": kid, "publish_until": publish_until }),
    )
    .await?;
    tx.commit().await?;
    Ok(row.into())
}

/// Withdraws a key at once: it stops signing and stops being published
/// now, and every replica is told (on PostgreSQL) to reload its keys.
pub(crate) async fn revoke_signing_key(
    pool: &Pool,
    kid: &str,
    now: i64,
) -> Result<SigningKey, StoreError> {
    let mut tx = begin_write(pool).await?;
    let row = end_key(&mut tx, kid, now, None).await?;
    insert_audit(
        &mut tx,
        now,
        SYSTEM_ACTOR,
        events::KEY_REVOKED,
        None,
        json!({ "kid": kid }),
    )
    .await?;
    if let Some(notify) = NOTIFY_KEYS {
        sqlx::query(notify).bind(kid).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(row.into())
}
