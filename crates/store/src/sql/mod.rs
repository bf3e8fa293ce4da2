//! The store's SQL, written once and compiled twice: this module is loaded
//! by both `sqlite.rs` and `postgres.rs`, each of which defines `Db` (the
//! sqlx database type) and the statements that differ between the two
//! (`BEGIN_WRITE`, `SELECT_APPROVAL_FOR_UPDATE`). Placeholders are `$1`,
//! `$2`, ..., which both databases accept.
//!
//! Every public function takes the pool, runs one operation and, when it
//! changes anything, commits one transaction holding the change and its
//! audit events.

use sqlx::Transaction;

use super::{
    BEGIN_WRITE, Db, LOCK_BUNDLE_CALLBACKS, LOCK_REQUESTER, NOTIFY_KEYS, SELECT_APPROVAL_FOR_UPDATE,
};
use crate::StoreError;

mod approvals;
mod audit;
mod bundles;
mod grants;
mod keys;
mod ledger;
mod outbox;
mod portal;
mod requests;

pub(crate) use approvals::{
    claim_delivery, create_or_get_pending, expire_due, find_unused_approval, get_approval,
    list_approvals, list_decided, record_poll, revoke_approval, vote, votes,
};
pub(crate) use audit::{append_audit, audit_for, audit_since};
pub(crate) use bundles::{get_bundle, open_bundle};
pub(crate) use grants::{create_grant, find_active_grant, grant_for_approval};
pub(crate) use keys::{insert_signing_key, retire_signing_key, revoke_signing_key, signing_keys};
pub(crate) use ledger::{consume_token, consumed_token, purge_ledger};
pub(crate) use outbox::{
    claim_due_deliveries, delivery_failed, delivery_succeeded, enqueue_deliveries,
    pending_deliveries,
};
pub(crate) use portal::{
    approval_for_code, confirmation_code, create_session, end_session, purge_portal, session,
};
pub(crate) use requests::{
    add_task_callback, find_access_request, purge_access_requests, record_access_request,
};

/// This backend's connection pool.
type Pool = sqlx::Pool<Db>;

/// One connection, as a transaction dereferences to.
type Conn = <Db as sqlx::Database>::Connection;

/// Begins a transaction that will write; dropping it without `commit` rolls
/// it back.
async fn begin_write(pool: &Pool) -> Result<Transaction<'static, Db>, StoreError> {
    Ok(pool.begin_with(BEGIN_WRITE).await?)
}

/// A count as the `u32` the API reports, saturating (never reached).
fn count_u32(count: usize) -> u32 {
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// A caller's limit as SQL wants it.
fn limit_i64(limit: u32) -> i64 {
    i64::from(limit)
}
