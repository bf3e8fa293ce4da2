//! PostgreSQL, shared by replicas.
//!
//! Transactions run at READ COMMITTED; a transaction that changes an
//! approval first locks its row (`SELECT ... FOR UPDATE`), so concurrent
//! votes, revocations and grants on one approval take turns, and the unique
//! indexes settle concurrent inserts (one pending approval, one use of a
//! token).

use sqlx::postgres::{PgPool, PgPoolOptions};

use crate::StoreError;

/// The database the shared SQL in `sql/` is compiled for here.
type Db = sqlx::Postgres;

/// Starts a transaction that will write, at READ COMMITTED whatever the
/// database's default: a statement after a lock sees what the lock's
/// previous holder committed (a pending approval's insert, a bundle's
/// other item decided), which the store's concurrency relies on.
const BEGIN_WRITE: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// Tells every replica the signing keys changed (delivered on commit).
const NOTIFY_KEYS: Option<&str> = Some("SELECT pg_notify('greenlight_keys', $1)");

/// Serialises the quota check of one requester (issuer and subject, in
/// `$1`) across replicas until the transaction ends.
const LOCK_REQUESTER: Option<&str> = Some("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))");

/// Serialises telling bundles' callbacks across replicas until the
/// transaction ends: two items of one bundle decided at once must not each
/// see the other still pending. One lock for all bundles, so a transaction
/// deciding items of several bundles cannot wait on another in a cycle.
const LOCK_BUNDLE_CALLBACKS: Option<&str> =
    Some("SELECT pg_advisory_xact_lock(hashtextextended('greenlight_bundle_callbacks', 0))");

/// The channel replicas listen on for signing-key changes.
pub(crate) const KEYS_CHANNEL: &str = "greenlight_keys";

/// Reads an approval that the transaction is about to change, locking its
/// row until commit.
const SELECT_APPROVAL_FOR_UPDATE: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE id = $1 FOR UPDATE"
);

/// Connections per replica. Each request holds one for a few statements;
/// ten serve a busy replica while keeping several replicas well under
/// PostgreSQL's default limit of 100.
const MAX_CONNECTIONS: u32 = 10;

#[path = "sql/mod.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per backend on purpose")]
pub(crate) mod sql;

/// Connects and applies migrations (serialised across replicas by sqlx's
/// advisory lock). Tables go in the first schema of the `search_path`, which
/// the URL may set with `?options[search_path]=NAME`.
pub(crate) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .connect(url)
        .await?;
    sqlx::migrate!("./migrations/postgres").run(&pool).await?;
    Ok(pool)
}
