//! What can go wrong in the store.

use crate::Status;

/// A store operation that failed, named by what failed.
///
/// Callers fail closed on every variant; the state-specific ones
/// (`Expired`, `NotPending`, `Replay`, ...) let them give a precise answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The URL names no backend the store speaks.
    #[error("unsupported store url scheme {0:?}: use sqlite:// or postgres://")]
    UnsupportedUrl(String),
    /// No such record.
    #[error("{kind} {id} not found")]
    NotFound {
        /// What was looked for: `approval`, `signing key`.
        kind: &'static str,
        /// The id that was looked for.
        id: String,
    },
    /// The approval was pending but its time ran out; it is now `expired`.
    #[error("approval {id} has expired")]
    Expired {
        /// The approval's id.
        id: String,
    },
    /// A vote on an approval that is no longer pending.
    #[error("approval {id} is {status}, not pending")]
    NotPending {
        /// The approval's id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// A grant asked for an approval that is not approved.
    #[error("approval {id} is {status}, not approved")]
    NotApproved {
        /// The approval's id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// A revocation of an approval that is already final.
    #[error("approval {id} is {status} and cannot be revoked")]
    NotRevocable {
        /// The approval's id.
        id: String,
        /// Its status.
        status: Status,
    },
    /// The single-use token was already consumed.
    #[error("token {jti} was already used")]
    Replay {
        /// The token's `jti`.
        jti: String,
    },
    /// The requester has reached a quota ([`crate::Quota`]); nothing was
    /// stored.
    #[error("{message}")]
    QuotaReached {
        /// Which quota, and its figures, for a person.
        message: String,
        /// Seconds until the quota admits another approval, at the least.
        retry_after: i64,
    },
    /// A record with that id already exists, or a concurrent change won.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The caller passed something the store refuses to keep.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A stored value could not be read back (unknown status, bad JSON).
    #[error("corrupt stored data: {0}")]
    Corrupt(String),
    /// The operating system's random source failed.
    #[error("no randomness for ids: {0}")]
    Entropy(String),
    /// Applying the schema migrations failed.
    #[error("migration failed: {0}")]
    Migration(String),
    /// The database failed or could not be reached.
    #[error("database error: {0}")]
    Database(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Corrupt(err.to_string())
            }
            other => StoreError::Database(other.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(err: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(err.to_string())
    }
}

/// Whether `err` is a unique-constraint violation (a duplicate key).
pub(crate) fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}
