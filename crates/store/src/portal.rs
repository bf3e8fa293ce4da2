//! What the approval portal keeps: server-side sessions, and the short
//! codes a requester types to confirm their own action.
//!
//! A session's id is stored only as a digest the caller computes: the
//! database alone does not let anyone wear a session.

use serde_json::Value;

use crate::{Pool, Store, StoreError, postgres, sqlite};

/// A signed-in person's session.
#[derive(Clone, Debug, PartialEq)]
pub struct PortalSession {
    /// The digest of the session id the browser holds in its cookie.
    pub id_hash: String,
    /// The person's issuer.
    pub issuer: String,
    /// The person's subject at that issuer.
    pub subject: String,
    /// Who signed in, as the engine said (the credential's JSON).
    pub credential: Value,
    /// The token every form of this session must post back.
    pub csrf: String,
    /// When the person signed in, in Unix seconds.
    pub created_at: i64,
    /// When the session ends by itself.
    pub expires_at: i64,
    /// When the person signed out, if they did.
    pub ended_at: Option<i64>,
}

impl PortalSession {
    /// Whether the session may be used at `now`: not signed out, not
    /// expired.
    pub fn is_live(&self, now: i64) -> bool {
        self.ended_at.is_none() && now < self.expires_at
    }
}

impl Store {
    /// Stores a new session. Audits `portal.signed_in`.
    pub async fn create_session(&self, session: &PortalSession) -> Result<(), StoreError> {
        dispatch!(self, create_session(session))
    }

    /// The session whose id has this digest, live or not.
    pub async fn session(&self, id_hash: &str) -> Result<Option<PortalSession>, StoreError> {
        dispatch!(self, session(id_hash))
    }

    /// Ends a session at `now`; false when it had already ended or does not
    /// exist. Audits `portal.signed_out`.
    pub async fn end_session(&self, id_hash: &str, now: i64) -> Result<bool, StoreError> {
        dispatch!(self, end_session(id_hash, now))
    }

    /// The confirmation code of an approval: `candidate` when the approval
    /// has none yet, the one it has otherwise; `None` when `candidate` is
    /// another approval's (the caller tries another).
    pub async fn confirmation_code(
        &self,
        approval_id: &str,
        candidate: &str,
    ) -> Result<Option<String>, StoreError> {
        dispatch!(self, confirmation_code(approval_id, candidate))
    }

    /// The approval a confirmation code names, if any.
    pub async fn approval_for_code(&self, code: &str) -> Result<Option<String>, StoreError> {
        dispatch!(self, approval_for_code(code))
    }

    /// Forgets sessions that expired by `now`; returns how many.
    pub async fn purge_portal(&self, now: i64) -> Result<u64, StoreError> {
        dispatch!(self, purge_portal(now))
    }
}
