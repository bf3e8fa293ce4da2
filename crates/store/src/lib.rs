//! Greenlight's state, over sqlx: approvals and their votes, window grants,
//! the ledger of consumed single-use tokens, Greenlight's signing keys and an
//! append-only audit log.
//!
//! One [`Store`] speaks to either backend, chosen by URL at
//! [`Store::connect`]:
//!
//! - `sqlite://path/to/greenlight.db` — the embedded default; the file is
//!   created if missing (`sqlite::memory:` works too, for throwaway use);
//! - `postgres://...` — shared by replicas, so a single-use token consumed on
//!   one replica is a replay on every other.
//!
//! Migrations (one set per backend, under `migrations/`) run at connect.
//!
//! Rules every operation keeps:
//!
//! - Times are Unix seconds passed in by the caller (`now`); the store never
//!   reads a clock, so the same calls give the same results.
//! - A change is committed before the function returns `Ok`, and the audit
//!   events describing it are committed in the same transaction.
//! - The store enforces state: one pending approval per requester (issuer, subject), client and action
//!   digest, quorum counted over distinct approvers, exactly-once token
//!   delivery, replay detection. It does not decide *who* may vote; the
//!   server checks that before calling [`Store::vote`].
//!
//! The SQL lives once in `src/sql/` and is compiled for each backend (see
//! `sqlite.rs` and `postgres.rs`); both databases accept `$1`-style
//! placeholders, and the few statements that must differ are constants in
//! those two files.

/// The column list every approval query reads, in `Approval` field order.
/// A macro, not a constant, so statements can be assembled with `concat!`
/// and stay `&'static str`, as sqlx requires.
macro_rules! approval_columns {
    () => {
        "id, status, requester, requester_issuer, client_id, action_digest, action, \
         authorization_details, obligation, binding_message, reason, policy_hash, \
         created_at, expires_at, decided_at, poll_interval_seconds, last_polled_at, \
         delivered_at, delivered_jti, requester_tenant, requester_actor"
    };
}

mod error;
mod model;
mod postgres;
mod sqlite;

pub use error::StoreError;
/// The policy's demand recorded with an approval, and its grant mode: the
/// decision's own types, stored as the decision's JSON.
pub use greenlight_types::{Approver, GrantMode, Obligation};
pub use model::{
    AccessRequestKey, Approval, AuditEvent, ConsumedToken, Decision, Grant, NewApproval,
    NewAuditEvent, NewTaskCallback, NewWebhookDelivery, Quota, SYSTEM_ACTOR, SigningKey, Status,
    Vote, VoteOutcome, Voter, WebhookDelivery, events,
};

/// Length of generated ids in bytes: 128 bits, too many to guess.
const ID_BYTES: usize = 16;

/// A fresh random id: 128 bits from the operating system, as 32 lowercase
/// hex digits. Used for approvals (the CIBA `auth_req_id`) and grants.
pub fn new_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; ID_BYTES];
    getrandom::fill(&mut bytes).map_err(|err| StoreError::Entropy(err.to_string()))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Announced signing-key changes (see [`Store::key_changes`]).
#[derive(Debug)]
pub struct KeyChanges {
    listener: sqlx::postgres::PgListener,
}

impl KeyChanges {
    /// Waits for the next change and returns the key id it names. The
    /// listener reconnects by itself after a dropped connection (changes
    /// in between are caught by the servers' sweep).
    pub async fn next(&mut self) -> Result<String, StoreError> {
        Ok(self.listener.recv().await?.payload().to_owned())
    }
}

/// Which database a [`Store`] is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An SQLite file (or memory).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The connection pool, one per backend.
#[derive(Clone, Debug)]
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Calls the same-named function of the shared SQL for the store's backend.
macro_rules! dispatch {
    ($store:expr, $function:ident($($arg:expr),* $(,)?)) => {
        match &$store.pool {
            Pool::Sqlite(pool) => sqlite::sql::$function(pool, $($arg),*).await,
            Pool::Postgres(pool) => postgres::sql::$function(pool, $($arg),*).await,
        }
    };
}

// After `dispatch!`, which they use.
pub mod bundles;
pub mod portal;

/// Greenlight's state. Cheap to clone: clones share one connection pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects to the database the URL names (`sqlite://...`,
    /// `sqlite::memory:`, `postgres://...` or `postgresql://...`), creating
    /// an SQLite file if missing, and applies pending migrations.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let pool = if url.starts_with("sqlite:") {
            Pool::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Pool::Postgres(postgres::connect(url).await?)
        } else {
            // Only the scheme: the rest may hold a password.
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(StoreError::UnsupportedUrl(scheme.to_owned()));
        };
        let store = Store { pool };
        tracing::info!(backend = ?store.backend(), "store connected and migrated");
        Ok(store)
    }

    /// Which database this store is on.
    pub fn backend(&self) -> Backend {
        match self.pool {
            Pool::Sqlite(_) => Backend::Sqlite,
            Pool::Postgres(_) => Backend::Postgres,
        }
    }

    /// Closes every connection, waiting for those in use to be returned.
    /// Clones of this store stop working too.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }

    // ----- approvals -----

    /// Opens a pending approval, or returns the one already pending for the
    /// same requester and action digest; the flag is true when it was
    /// created. Concurrent calls for the same action yield one approval.
    ///
    /// A pending one that has expired by `now` is first marked `expired`
    /// (audited) and a new one is opened. Audits `approval.created`.
    /// Errors: `Invalid` (empty requester or digest, quorum 0, `expires_at`
    /// not after `now`, poll interval under 1), `Conflict` (the caller's
    /// own id is taken).
    pub async fn create_or_get_pending(
        &self,
        new: NewApproval,
        now: i64,
    ) -> Result<(Approval, bool), StoreError> {
        dispatch!(
            self,
            create_or_get_pending(new, now, Quota::UNLIMITED, &|_| Vec::new())
        )
    }

    /// [`Store::create_or_get_pending`] within the requester's `quota`,
    /// storing the webhook deliveries `announce` builds from a newly
    /// created approval in the same transaction: an approval is never
    /// committed unannounced, nor an announcement of one that was not. Not
    /// called for an existing one. The quota is checked and the approval
    /// inserted under one lock per requester, so concurrent asks on any
    /// replica never exceed it. Errors as `create_or_get_pending`, and
    /// `QuotaReached` (nothing stored).
    pub async fn create_or_get_pending_announced(
        &self,
        new: NewApproval,
        now: i64,
        quota: Quota,
        announce: &(dyn Fn(&Approval) -> Vec<NewWebhookDelivery> + Sync),
    ) -> Result<(Approval, bool), StoreError> {
        dispatch!(self, create_or_get_pending(new, now, quota, announce))
    }

    /// The newest approval `by` (as requester: issuer, subject, client)
    /// was given for the action `digest`, decided at or after
    /// `decided_since`, whose use nobody has claimed yet
    /// ([`Store::claim_delivery`] claims it). An MCP client retrying a
    /// call after its approval finds it so.
    pub async fn find_unused_approval(
        &self,
        by: &Voter,
        digest: &str,
        decided_since: i64,
    ) -> Result<Option<Approval>, StoreError> {
        dispatch!(self, find_unused_approval(by, digest, decided_since))
    }

    /// The approval with this id, if any. Its `status` is as stored: use
    /// [`Approval::status_at`] to see a lapsed `pending` as `expired`.
    pub async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        dispatch!(self, get_approval(id))
    }

    /// Up to `limit` approvals, newest first, only those with `status` if
    /// given; with `after`, those listed after that approval (the next
    /// page). Errors: `NotFound` (no approval `after`).
    pub async fn list_approvals(
        &self,
        status: Option<Status>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Approval>, StoreError> {
        dispatch!(self, list_approvals(status, after, limit))
    }

    /// Up to `limit` decided approvals (not pending, or pending past their
    /// expiry at `now`), newest first, after the approval `after`; with a
    /// `participant` (issuer, subject), only those they asked for or voted
    /// on. The filter runs in the database, so a page costs one query
    /// however few of the approvals are theirs. Errors: `NotFound` (no
    /// approval `after`).
    pub async fn list_decided(
        &self,
        participant: Option<(&str, &str)>,
        after: Option<&str>,
        limit: u32,
        now: i64,
    ) -> Result<Vec<Approval>, StoreError> {
        dispatch!(self, list_decided(participant, after, limit, now))
    }

    /// Records `approver`'s vote and applies it, in one transaction.
    ///
    /// - A `deny` ends the approval as `denied`.
    /// - An `approve` counts once per approver; when distinct approvers
    ///   reach the obligation's quorum the approval becomes `approved`.
    /// - The same approver approving again changes nothing (`recorded` is
    ///   false, no audit event).
    /// - An approver who approved and then denies (while it is still
    ///   pending) changes their vote to `deny`, which ends the approval:
    ///   anyone entitled to approve may stop it before quorum.
    ///
    /// Audits `approval.vote`, then `approval.approved` or `approval.denied`
    /// when the vote decided it; the vote records the voter's issuer,
    /// subject and client. Errors: `Invalid` (empty subject or issuer);
    /// `NotFound`; `Expired` (pending but past `expires_at`: it is marked
    /// `expired` and that is committed; also for one already `expired`);
    /// `NotPending` (approved, denied or revoked).
    pub async fn vote(
        &self,
        approval_id: &str,
        voter: &Voter,
        decision: Decision,
        reason: Option<&str>,
        now: i64,
    ) -> Result<VoteOutcome, StoreError> {
        dispatch!(
            self,
            vote(approval_id, voter, decision, reason, now, &|_| Vec::new())
        )
    }

    /// [`Store::vote`], storing the webhook deliveries `announce` builds
    /// from the approval when this vote decided it (approved or denied),
    /// in the same transaction: a decision is never committed untold, nor
    /// told when it was not committed.
    pub async fn vote_announced(
        &self,
        approval_id: &str,
        voter: &Voter,
        decision: Decision,
        reason: Option<&str>,
        now: i64,
        announce: &(dyn Fn(&Approval) -> Vec<NewWebhookDelivery> + Sync),
    ) -> Result<VoteOutcome, StoreError> {
        dispatch!(
            self,
            vote(approval_id, voter, decision, reason, now, announce)
        )
    }

    /// The votes on an approval, in the order they were cast.
    pub async fn votes(&self, approval_id: &str) -> Result<Vec<Vote>, StoreError> {
        dispatch!(self, votes(approval_id))
    }

    /// Notes that the client polled for its token at `now` and returns when
    /// it polled before (`None` the first time), so the caller can answer
    /// `slow_down`. Atomic: two concurrent polls see each other.
    /// Errors: `NotFound`.
    pub async fn record_poll(
        &self,
        approval_id: &str,
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        dispatch!(self, record_poll(approval_id, now))
    }

    /// Claims the right to hand out the action token `jti` for an approved
    /// approval. True for exactly one caller, ever, across replicas; false
    /// if the approval is missing, not `approved`, or already delivered.
    /// Audits `token.minted` when it returns true.
    pub async fn claim_delivery(
        &self,
        approval_id: &str,
        jti: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, claim_delivery(approval_id, jti, now))
    }

    /// Revokes an approval that is `pending` or `approved`, and revokes its
    /// window grant, in one transaction. Audits `approval.revoked` (with
    /// `reason`) and `grant.revoked`. Returns the revoked approval.
    /// Errors: `NotFound`; `Expired` (pending past `expires_at`: marked
    /// `expired` instead); `NotRevocable` (denied, expired, revoked).
    pub async fn revoke_approval(
        &self,
        id: &str,
        by: &Voter,
        reason: Option<&str>,
        now: i64,
    ) -> Result<Approval, StoreError> {
        dispatch!(
            self,
            revoke_approval(id, by, reason, now, false, &|_| Vec::new())
        )
    }

    /// [`Store::revoke_approval`], storing the webhook deliveries
    /// `announce` builds from the revoked approval in the same
    /// transaction.
    pub async fn revoke_approval_announced(
        &self,
        id: &str,
        by: &Voter,
        reason: Option<&str>,
        now: i64,
        announce: &(dyn Fn(&Approval) -> Vec<NewWebhookDelivery> + Sync),
    ) -> Result<Approval, StoreError> {
        dispatch!(self, revoke_approval(id, by, reason, now, false, announce))
    }

    /// [`Store::revoke_approval_announced`] only while the approval is
    /// pending: the requester's side withdrawing its request (an AuthZEN
    /// access request's cancellation). Decided under the approval's lock,
    /// so a vote that approves it first wins and this one is
    /// `NotRevocable` with `approved`. Errors as `revoke_approval`.
    pub async fn cancel_pending_announced(
        &self,
        id: &str,
        by: &Voter,
        reason: Option<&str>,
        now: i64,
        announce: &(dyn Fn(&Approval) -> Vec<NewWebhookDelivery> + Sync),
    ) -> Result<Approval, StoreError> {
        dispatch!(self, revoke_approval(id, by, reason, now, true, announce))
    }

    /// Marks every pending approval whose `expires_at` has come (`<= now`)
    /// as `expired`, auditing each; returns how many.
    pub async fn expire_due(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, expire_due(now, &|_| Vec::new()))
    }

    /// [`Store::expire_due`], storing the webhook deliveries `announce`
    /// builds from each expired approval in the same transaction.
    pub async fn expire_due_announced(
        &self,
        now: i64,
        announce: &(dyn Fn(&Approval) -> Vec<NewWebhookDelivery> + Sync),
    ) -> Result<u64, StoreError> {
        dispatch!(self, expire_due(now, announce))
    }

    // ----- window grants -----

    /// Creates the window grant of an approved `window` approval, for its
    /// requester and action digest, valid until `expires_at`. One grant per
    /// approval: if it exists already it is returned unchanged. Audits
    /// `grant.created`. Errors: `NotFound`; `NotApproved`; `Invalid` (the
    /// obligation grants `once`, or `expires_at` is not after `now`).
    pub async fn create_grant(
        &self,
        approval_id: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<Grant, StoreError> {
        dispatch!(self, create_grant(approval_id, expires_at, now))
    }

    /// An unrevoked grant letting `holder` (issuer, subject, and the client
    /// that asked) repeat the action with `digest` at `now` (`now <
    /// expires_at`), the longest-lived if several.
    pub async fn find_active_grant(
        &self,
        holder: &Voter,
        digest: &str,
        now: i64,
    ) -> Result<Option<Grant>, StoreError> {
        dispatch!(self, find_active_grant(holder, digest, now))
    }

    /// The grant an approval produced, if any, revoked or not.
    pub async fn grant_for_approval(&self, approval_id: &str) -> Result<Option<Grant>, StoreError> {
        dispatch!(self, grant_for_approval(approval_id))
    }

    // ----- consumed-token ledger -----

    /// Records the single-use token `jti` as used. The first call succeeds;
    /// every later one, from any task or replica, is `Replay`, until the
    /// entry is purged. `expires_at` is the token's `exp` plus the
    /// verifier's clock leeway: the entry must outlive every moment the
    /// token could still be accepted. Audits `token.consumed` with `actor`
    /// and `approval_id`.
    pub async fn consume_token(
        &self,
        jti: &str,
        expires_at: i64,
        approval_id: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(
            self,
            consume_token(jti, expires_at, approval_id, actor, now)
        )
    }

    /// The ledger entry for `jti`, if it was used and not yet purged (for
    /// introspection, which reports a used one-time token as inactive).
    pub async fn consumed_token(&self, jti: &str) -> Result<Option<ConsumedToken>, StoreError> {
        dispatch!(self, consumed_token(jti))
    }

    /// Forgets used tokens whose `expires_at < now`; returns how many.
    pub async fn purge_ledger(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, purge_ledger(now))
    }

    // ----- access requests (AuthZEN ARAP) -----

    /// The submission recorded under `caller`'s `idempotency_key`, if it
    /// is still kept.
    pub async fn find_access_request(
        &self,
        caller: &str,
        idempotency_key: &str,
    ) -> Result<Option<AccessRequestKey>, StoreError> {
        dispatch!(self, find_access_request(caller, idempotency_key))
    }

    /// Records a submission's idempotency key; returns the record that
    /// stands: this one, or the one a concurrent submission under the same
    /// caller and key recorded first (the caller compares its body hash).
    pub async fn record_access_request(
        &self,
        key: &AccessRequestKey,
    ) -> Result<AccessRequestKey, StoreError> {
        dispatch!(self, record_access_request(key))
    }

    /// Asks to be told when the approval `approval_id` reaches a terminal
    /// status. Returns false, storing nothing, when it is no longer
    /// pending at `now` (the caller reads its status instead). Errors:
    /// `NotFound`.
    pub async fn add_task_callback(
        &self,
        approval_id: &str,
        callback: &NewTaskCallback,
        now: i64,
    ) -> Result<bool, StoreError> {
        dispatch!(self, add_task_callback(approval_id, callback, now))
    }

    /// Forgets idempotency keys and bulk tasks whose `keep_until < now`;
    /// returns how many.
    pub async fn purge_access_requests(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, purge_access_requests(now))
    }

    // ----- webhook outbox -----

    /// Stores deliveries to attempt, due at `now`.
    pub async fn enqueue_deliveries(
        &self,
        deliveries: &[NewWebhookDelivery],
        now: i64,
    ) -> Result<(), StoreError> {
        dispatch!(self, enqueue_deliveries(deliveries, now))
    }

    /// Claims up to `limit` deliveries due at `now` for one attempt each,
    /// moving their next attempt to `lease_until` (so a replica that dies
    /// mid-attempt leaves them to be retried then). Of concurrent callers,
    /// one claims each delivery.
    pub async fn claim_due_deliveries(
        &self,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>, StoreError> {
        dispatch!(self, claim_due_deliveries(now, lease_until, limit))
    }

    /// Records a delivered attempt.
    pub async fn delivery_succeeded(&self, id: &str, now: i64) -> Result<(), StoreError> {
        dispatch!(self, delivery_succeeded(id, now))
    }

    /// Records a failed attempt: retried at `retry_at`, or given up on.
    pub async fn delivery_failed(
        &self,
        id: &str,
        now: i64,
        retry_at: Option<i64>,
        error: &str,
    ) -> Result<(), StoreError> {
        dispatch!(self, delivery_failed(id, now, retry_at, error))
    }

    /// Deliveries neither delivered nor given up on.
    pub async fn pending_deliveries(&self) -> Result<u64, StoreError> {
        dispatch!(self, pending_deliveries())
    }

    // ----- signing keys -----

    /// Stores a signing key. Audits `key.created` (kid and algorithm only).
    /// Errors: `Conflict` if the kid exists, or another key already
    /// succeeds the same key (`SigningKey::succeeds`): a concurrent first
    /// start or rotation won, and its key is the one to use.
    pub async fn insert_signing_key(&self, key: &SigningKey) -> Result<(), StoreError> {
        dispatch!(self, insert_signing_key(key))
    }

    /// Every signing key, newest first; the first active one signs.
    pub async fn signing_keys(&self) -> Result<Vec<SigningKey>, StoreError> {
        dispatch!(self, signing_keys())
    }

    /// Stops a key signing at `now` and keeps publishing its public key
    /// until `publish_until` (`None`: stop publishing now). Retiring again
    /// keeps the first `retired_at` and updates `publish_until`. Audits
    /// `key.retired`. Errors: `NotFound`.
    pub async fn retire_signing_key(
        &self,
        kid: &str,
        now: i64,
        publish_until: Option<i64>,
    ) -> Result<SigningKey, StoreError> {
        dispatch!(self, retire_signing_key(kid, now, publish_until))
    }

    /// Withdraws a key at once, as after a leak: it stops signing and
    /// stops being published now, so every token it signed is refused as
    /// soon as a server reloads its keys. On PostgreSQL every replica is
    /// told at commit ([`Store::key_changes`]). Audits `key.revoked`.
    /// Errors: `NotFound`.
    pub async fn revoke_signing_key(&self, kid: &str, now: i64) -> Result<SigningKey, StoreError> {
        dispatch!(self, revoke_signing_key(kid, now))
    }

    /// Signing-key changes other processes announce, for a server to
    /// reload its keys at once: on PostgreSQL a listener on the store's
    /// channel; `None` on SQLite (one server, which notices at its sweep).
    pub async fn key_changes(&self) -> Result<Option<KeyChanges>, StoreError> {
        match &self.pool {
            Pool::Sqlite(_) => Ok(None),
            Pool::Postgres(pool) => {
                let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
                listener.listen(postgres::KEYS_CHANNEL).await?;
                Ok(Some(KeyChanges { listener }))
            }
        }
    }

    // ----- audit log -----

    /// Appends an event to the audit log and returns it with its id. The
    /// log has no update or delete; the database refuses them too.
    pub async fn append_audit(&self, event: NewAuditEvent) -> Result<AuditEvent, StoreError> {
        dispatch!(self, append_audit(event))
    }

    /// Every audit event about one approval, oldest first.
    pub async fn audit_for(&self, approval_id: &str) -> Result<Vec<AuditEvent>, StoreError> {
        dispatch!(self, audit_for(approval_id))
    }

    /// Up to `limit` audit events with an id above `after_id`, oldest
    /// first; pass the last id seen to read on.
    ///
    /// On PostgreSQL ids are taken when a transaction inserts, not when it
    /// commits, so a reader tailing the log may see a higher id before a
    /// concurrent lower one commits; re-read a short distance back when
    /// that matters.
    pub async fn audit_since(
        &self,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        dispatch!(self, audit_since(after_id, limit))
    }
}

#[cfg(test)]
mod tests {
    /// Ids are 32 lowercase hex digits and do not repeat.
    #[test]
    fn new_ids_are_128_bit_hex_and_distinct() {
        let first = super::new_id().expect("randomness");
        let second = super::new_id().expect("randomness");
        assert_eq!(first.len(), 32);
        assert!(
            first
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'))
        );
        assert_ne!(first, second);
    }
}
