//! SQLite, the embedded default: one file, no other process.
//!
//! Writers take the database's write lock when their transaction begins
//! (`BEGIN IMMEDIATE`), so read-then-write transactions never interleave and
//! never fail halfway on a lock upgrade; readers keep reading alongside (WAL).

use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::StoreError;

/// The database the shared SQL in `sql/` is compiled for here.
type Db = sqlx::Sqlite;

/// Starts a transaction that will write: takes the write lock up front.
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Tells other processes the signing keys changed: nothing to tell on
/// SQLite, whose one server notices at its next sweep.
const NOTIFY_KEYS: Option<&str> = None;

/// Serialises the quota check of one requester: `BEGIN IMMEDIATE` already
/// excludes every other writer.
const LOCK_REQUESTER: Option<&str> = None;

/// Serialises telling bundles' callbacks: `BEGIN IMMEDIATE` already
/// excludes every other writer.
const LOCK_BUNDLE_CALLBACKS: Option<&str> = None;

/// Reads an approval that the transaction is about to change. SQLite has no
/// row locks; the `BEGIN IMMEDIATE` transaction already excludes other
/// writers.
const SELECT_APPROVAL_FOR_UPDATE: &str = concat!(
    "SELECT ",
    approval_columns!(),
    " FROM approvals WHERE id = $1"
);

/// Connections in the pool. Writes are serialised by SQLite anyway; a few
/// extra connections let reads (polls, listings) proceed beside a write.
const MAX_CONNECTIONS: u32 = 8;

/// How long a writer waits for another's transaction before failing. Every
/// transaction here is a handful of statements, so this only trips when
/// something is wedged.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[path = "sql/mod.rs"]
#[expect(clippy::duplicate_mod, reason = "compiled once per backend on purpose")]
pub(crate) mod sql;

/// Opens (creating if missing) the database and applies migrations.
/// Creates the database file readable and writable by its owner only
/// (`0600`) when it does not exist yet: it holds approvals, the audit log
/// and Greenlight's signing keys. SQLite gives its `-wal` and `-shm` files
/// the same permissions. An existing file is left as its owner set it.
fn private_file(path: &std::path::Path) -> Result<(), StoreError> {
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Invalid(format!(
            "cannot create the SQLite file {}: {e}",
            path.display()
        ))),
    }
}

pub(crate) async fn connect(url: &str) -> Result<SqlitePool, StoreError> {
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = if in_memory {
        // An in-memory database lives as long as a connection to it: keep
        // exactly one, forever.
        SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?
    } else {
        private_file(options.get_filename())?;
        // WAL lets readers proceed during a write; FULL makes a commit
        // durable (synced) before it returns, as the store promises.
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await?
    };
    sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
    Ok(pool)
}
