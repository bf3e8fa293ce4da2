//! The records the store keeps, as plain Rust values.
//!
//! Times are Unix seconds (`i64`), always supplied by the caller. JSON
//! fields are [`serde_json::Value`]s stored as `JSONB` on PostgreSQL and as
//! text on SQLite.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use greenlight_types::Obligation;

use crate::StoreError;

/// The actor recorded for changes nobody asked for (expiry, housekeeping).
pub const SYSTEM_ACTOR: &str = "system";

/// Where an approval is in its life.
///
/// `pending` is the only state that changes by voting; `approved` may still
/// become `revoked`; `denied`, `expired` and `revoked` are final.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for approvers; the client polls.
    Pending,
    /// Quorum reached; the client may collect its action token.
    Approved,
    /// An approver said no.
    Denied,
    /// Nobody decided before `expires_at`.
    Expired,
    /// Withdrawn after the fact (with any window grant it produced).
    Revoked,
}

impl Status {
    /// Every status, in life order.
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Approved,
        Status::Denied,
        Status::Expired,
        Status::Revoked,
    ];

    /// The lowercase name stored in the database and used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Approved => "approved",
            Status::Denied => "denied",
            Status::Expired => "expired",
            Status::Revoked => "revoked",
        }
    }

    /// The AuthZEN ARAP task status this approval status shows as: the
    /// same name, except that a withdrawn approval (revoked by an
    /// approver, or cancelled by the requester before anyone decided) is
    /// `cancelled`, whether or not it had been approved first.
    pub fn task_status(self) -> &'static str {
        match self {
            Status::Revoked => "cancelled",
            other => other.as_str(),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown approval status {s:?}")))
    }
}

/// An approver's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Counts towards the quorum.
    Approve,
    /// Ends the approval as `denied`.
    Deny,
}

impl Decision {
    /// The lowercase name stored in the database and used in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Decision {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "approve" => Ok(Decision::Approve),
            "deny" => Ok(Decision::Deny),
            other => Err(StoreError::Corrupt(format!(
                "unknown vote decision {other:?}"
            ))),
        }
    }
}

/// A request to perform one specific action, waiting for (or past) a
/// decision. Its `id` is the CIBA `auth_req_id`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Random 128-bit id, 32 lowercase hex digits (or the caller's own id).
    pub id: String,
    /// Where the approval is in its life.
    pub status: Status,
    /// The subject (`sub`) of the base token that asked.
    pub requester: String,
    /// The issuer of that token: the requester is (`requester_issuer`,
    /// `requester`). `''` for approvals from before it was recorded.
    pub requester_issuer: String,
    /// The OAuth client that asked on the requester's behalf.
    pub client_id: String,
    /// SHA-256 digest of the canonical action (`act_digest`); the same
    /// requester and digest have at most one pending approval.
    pub action_digest: String,
    /// The action's name, e.g. `refund`.
    pub action: String,
    /// The RFC 9396 `authorization_details` the approval is for.
    pub authorization_details: Value,
    /// What the policy demanded.
    pub obligation: Obligation,
    /// The CIBA `binding_message` shown to approvers, if any.
    pub binding_message: Option<String>,
    /// Why the requester wants to act, if they said.
    pub reason: Option<String>,
    /// Hash of the policy bundle that demanded the approval.
    pub policy_hash: String,
    /// When it was asked for.
    pub created_at: i64,
    /// When a pending approval stops being decidable; it is live while
    /// `now < expires_at`.
    pub expires_at: i64,
    /// When it left `pending` (approved, denied, expired or revoked).
    pub decided_at: Option<i64>,
    /// The minimum seconds between the client's token polls (CIBA
    /// `interval`).
    pub poll_interval_seconds: i64,
    /// When the client last polled for its token.
    pub last_polled_at: Option<i64>,
    /// When the action token was handed out; set exactly once.
    pub delivered_at: Option<i64>,
    /// The `jti` of the action token that was handed out.
    pub delivered_jti: Option<String>,
    /// The requester's tenant claim, for `group:NAME@tenant` approvers.
    pub requester_tenant: Option<String>,
    /// Who acts for the requester when an agent does: the `sub` of the
    /// token's RFC 8693 `act` claim.
    pub requester_actor: Option<String>,
}

impl Approval {
    /// The status as of `now`: a `pending` approval past `expires_at` is
    /// `expired` even before [`crate::Store::expire_due`] has recorded it.
    pub fn status_at(&self, now: i64) -> Status {
        if self.status == Status::Pending && now >= self.expires_at {
            Status::Expired
        } else {
            self.status
        }
    }
}

/// What [`crate::Store::create_or_get_pending`] needs to open an approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApproval {
    /// The id to use; `None` makes the store generate one with
    /// [`crate::new_id`].
    pub id: Option<String>,
    /// The subject (`sub`) of the base token that asks.
    pub requester: String,
    /// The issuer of that token.
    pub requester_issuer: String,
    /// The OAuth client that asks.
    pub client_id: String,
    /// The action digest (`act_digest`).
    pub action_digest: String,
    /// The action's name.
    pub action: String,
    /// The RFC 9396 `authorization_details`.
    pub authorization_details: Value,
    /// What the policy demands; `quorum` must be at least 1.
    pub obligation: Obligation,
    /// The CIBA `binding_message`, if any.
    pub binding_message: Option<String>,
    /// The requester's reason, if any.
    pub reason: Option<String>,
    /// Hash of the policy bundle that demanded the approval.
    pub policy_hash: String,
    /// When the approval stops being decidable; must be after `now`.
    pub expires_at: i64,
    /// The CIBA polling `interval`, in seconds; at least 1.
    pub poll_interval_seconds: i64,
    /// The requester's tenant claim, if the token has one.
    pub requester_tenant: Option<String>,
    /// Who acts for the requester (RFC 8693 `act`), if an agent does.
    pub requester_actor: Option<String>,
}

/// How many approvals one requester (issuer, subject), across all their
/// clients, may have pending at once and may open per period. Asking again
/// for an action already pending never counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Pending approvals at once.
    pub max_pending: u32,
    /// New approvals per `per_seconds`.
    pub max_new: u32,
    /// The period `max_new` counts over, in seconds.
    pub per_seconds: i64,
}

impl Quota {
    /// No limit at all (the store's tests, tools).
    pub const UNLIMITED: Quota = Quota {
        max_pending: u32::MAX,
        max_new: u32::MAX,
        per_seconds: 1,
    };
}

/// Who casts a vote or revokes: a person's identity (issuer, subject) and
/// the client their token was issued to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    /// The token's issuer.
    pub issuer: String,
    /// The token's subject.
    pub subject: String,
    /// The client the token was issued to.
    pub client_id: String,
}

/// One approver's recorded answer. Each approver has at most one vote per
/// approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The approval voted on.
    pub approval_id: String,
    /// The approver's subject.
    pub approver: String,
    /// The approver's issuer: the approver is (`approver_issuer`,
    /// `approver`).
    pub approver_issuer: String,
    /// The client the vote came through.
    pub approver_client: String,
    /// Approve or deny.
    pub decision: Decision,
    /// The approver's reason, if given.
    pub reason: Option<String>,
    /// When the vote was recorded (or last changed, for an approve turned
    /// into a deny).
    pub at: i64,
}

/// The result of [`crate::Store::vote`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoteOutcome {
    /// The approval after the vote.
    pub approval: Approval,
    /// Distinct approvers who have approved, this vote included.
    pub approve_count: u32,
    /// False when the vote changed nothing (the approver had already voted
    /// the same way).
    pub recorded: bool,
}

/// A window grant: the subject may repeat the action with this digest until
/// `expires_at`, unless revoked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Random 128-bit id, 32 lowercase hex digits.
    pub id: String,
    /// The approval that produced it; one grant per approval.
    pub approval_id: String,
    /// Who may repeat the action (the approval's requester).
    pub subject: String,
    /// The requester's issuer.
    pub issuer: String,
    /// The client that asked: the only one that may repeat the action.
    pub client_id: String,
    /// The action digest it covers (the approval's).
    pub action_digest: String,
    /// When it was created.
    pub created_at: i64,
    /// When it stops covering the action; active while `now < expires_at`.
    pub expires_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A webhook delivery to store before it is attempted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewWebhookDelivery {
    /// The delivery id (`greenlight-delivery`), the same on every attempt.
    pub id: String,
    /// Hex SHA-256 of the receiver's URL, to find it in the settings.
    pub hook: String,
    /// The event name, e.g. `approval.requested`.
    pub event: String,
    /// The exact body to send.
    pub body: String,
}

/// A webhook delivery claimed for one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookDelivery {
    /// The delivery id.
    pub id: String,
    /// Hex SHA-256 of the receiver's URL.
    pub hook: String,
    /// The event name.
    pub event: String,
    /// The exact body to send.
    pub body: String,
    /// Which attempt this is, from 1.
    pub attempt: u32,
}

/// A used single-use token id, remembered until its token expires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumedToken {
    /// The token's `jti`.
    pub jti: String,
    /// The token's `exp`; after it the entry may be purged.
    pub expires_at: i64,
    /// When it was used.
    pub consumed_at: i64,
}

/// One of Greenlight's own signing keys for action tokens.
///
/// `Debug` and `Serialize` leave out the private key, so it cannot leak into
/// logs or API answers by accident.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SigningKey {
    /// Key id, the JWT header `kid`.
    pub kid: String,
    /// JWS algorithm, e.g. `EdDSA`.
    pub algorithm: String,
    /// The private key as PKCS#8 PEM text.
    #[serde(skip_serializing)]
    pub private_key_pem: String,
    /// The public key as a JWK, as published at `/.well-known/jwks.json`.
    pub public_jwk: Value,
    /// When it was created.
    pub created_at: i64,
    /// When it stopped signing, if it has.
    pub retired_at: Option<i64>,
    /// Until when a retired key is still published, so tokens it signed
    /// keep verifying until they expire; `None` with `retired_at` set means
    /// no longer published.
    pub publish_until: Option<i64>,
    /// The key it succeeds: `""` for the first key of a store, the newest
    /// key's id for the next one. No two keys succeed the same key, so
    /// concurrent first starts and rotations create exactly one key.
    /// `None` for keys from before succession was recorded.
    pub succeeds: Option<String>,
}

impl SigningKey {
    /// Whether it may sign new tokens.
    pub fn is_active(&self) -> bool {
        self.retired_at.is_none()
    }

    /// Whether its public key belongs in the JWKS at `now`.
    pub fn is_published(&self, now: i64) -> bool {
        self.is_active() || self.publish_until.is_some_and(|until| now < until)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("private_key_pem", &"<redacted>")
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .field("publish_until", &self.publish_until)
            .field("succeeds", &self.succeeds)
            .finish()
    }
}

/// One line of the append-only audit log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Increasing id; the log's order.
    pub id: i64,
    /// When it happened.
    pub at: i64,
    /// Who caused it: a subject, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// What happened, e.g. `approval.created`; see [`events`](crate::events).
    pub event: String,
    /// The approval concerned, if any.
    pub approval_id: Option<String>,
    /// Event-specific details (reasons, token ids, counts).
    pub detail: Value,
}

/// An audit event to append with [`crate::Store::append_audit`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    /// When it happened.
    pub at: i64,
    /// Who caused it: a subject, or [`SYSTEM_ACTOR`].
    pub actor: String,
    /// What happened.
    pub event: String,
    /// The approval concerned, if any.
    pub approval_id: Option<String>,
    /// Event-specific details.
    pub detail: Value,
}

/// The audit event names the store writes itself.
pub mod events {
    /// A pending approval was opened.
    pub const APPROVAL_CREATED: &str = "approval.created";
    /// An approver voted (approve or deny).
    pub const APPROVAL_VOTE: &str = "approval.vote";
    /// Quorum was reached.
    pub const APPROVAL_APPROVED: &str = "approval.approved";
    /// An approver denied.
    pub const APPROVAL_DENIED: &str = "approval.denied";
    /// Nobody decided in time.
    pub const APPROVAL_EXPIRED: &str = "approval.expired";
    /// The approval was withdrawn.
    pub const APPROVAL_REVOKED: &str = "approval.revoked";
    /// The action token was handed to the client.
    pub const TOKEN_MINTED: &str = "token.minted";
    /// A single-use action token was used.
    pub const TOKEN_CONSUMED: &str = "token.consumed";
    /// A window grant was created.
    pub const GRANT_CREATED: &str = "grant.created";
    /// A window grant was revoked with its approval.
    pub const GRANT_REVOKED: &str = "grant.revoked";
    /// A signing key was stored.
    pub const KEY_CREATED: &str = "key.created";
    /// A signing key stopped signing.
    pub const KEY_RETIRED: &str = "key.retired";
    /// A signing key was withdrawn at once (`greenlight keys revoke`).
    pub const KEY_REVOKED: &str = "key.revoked";
    /// A person signed in to the portal.
    pub const PORTAL_SIGNED_IN: &str = "portal.signed_in";
    /// A person signed out of the portal.
    pub const PORTAL_SIGNED_OUT: &str = "portal.signed_out";
}

#[cfg(test)]
mod tests {
    use greenlight_types::GrantMode;
    use serde_json::json;

    use super::*;

    /// Statuses and decisions read back what they write, and an unknown
    /// stored status is reported as corrupt data.
    #[test]
    fn stored_names_round_trip_and_unknown_ones_are_corrupt() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).expect("serialises"),
                json!(status.as_str())
            );
        }
        for decision in [Decision::Approve, Decision::Deny] {
            assert_eq!(decision.as_str().parse::<Decision>(), Ok(decision));
        }
        assert_eq!(
            "done".parse::<Status>(),
            Err(StoreError::Corrupt(
                "unknown approval status \"done\"".to_owned()
            ))
        );
    }

    /// The private key stays out of `Debug` output and JSON.
    #[test]
    fn a_signing_key_never_shows_its_private_key() {
        let key = SigningKey {
            kid: "k1".to_owned(),
            algorithm: "EdDSA".to_owned(),
            private_key_pem: "-----BEGIN PRIVATE KEY-----\nsecret\n".to_owned(),
            public_jwk: json!({ "kty": "OKP" }),
            created_at: 1,
            retired_at: None,
            publish_until: None,
            succeeds: Some(String::new()),
        };
        assert!(!format!("{key:?}").contains("secret"));
        let json = serde_json::to_value(&key).expect("serialises");
        assert_eq!(json.get("private_key_pem"), None);
        assert_eq!(json["kid"], "k1");
    }

    /// A pending approval reads as expired from its expiry instant on.
    #[test]
    fn status_at_sees_a_lapsed_pending_approval_as_expired() {
        let approval = Approval {
            id: "a".to_owned(),
            status: Status::Pending,
            requester: "alice".to_owned(),
            requester_issuer: "https://idp.example.com".to_owned(),
            client_id: "app".to_owned(),
            action_digest: "d".to_owned(),
            action: "refund".to_owned(),
            authorization_details: json!([]),
            obligation: Obligation {
                approvers: vec![],
                quorum: 1,
                ttl_seconds: 10,
                grant: GrantMode::Once,
                window_seconds: 0,
                reason_required: false,
                message: String::new(),
            },
            binding_message: None,
            reason: None,
            policy_hash: "h".to_owned(),
            created_at: 0,
            expires_at: 10,
            decided_at: None,
            poll_interval_seconds: 5,
            last_polled_at: None,
            delivered_at: None,
            delivered_jti: None,
            requester_tenant: None,
            requester_actor: None,
        };
        assert_eq!(approval.status_at(9), Status::Pending);
        assert_eq!(approval.status_at(10), Status::Expired);
        let denied = Approval {
            status: Status::Denied,
            ..approval
        };
        assert_eq!(denied.status_at(10), Status::Denied);
    }
}

/// An access request's `Idempotency-Key`, scoped to the caller that sent
/// it, and what it opened (AuthZEN ARAP §"Access Request Submission").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessRequestKey {
    /// Who sent it: the authenticated caller's identity, as the server
    /// spells it (issuer, subject and client).
    pub caller: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: String,
    /// Hex SHA-256 of the submission body in canonical form.
    pub body_hash: String,
    /// The task (approval) the submission opened or joined; for a bulk
    /// submission, its first item's.
    pub approval_id: String,
    /// The bulk submission's task ([`crate::bundles::Bundle`]), when the
    /// submission had `items`: then the task is this, not `approval_id`.
    pub bundle_id: Option<String>,
    /// When it was first recorded.
    pub created_at: i64,
    /// When the key may be forgotten.
    pub keep_until: i64,
}

/// A callback a PEP asked for on a task: told when the task reaches a
/// terminal status, through the webhook outbox to a receiver registered in
/// the settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTaskCallback {
    /// Hex SHA-256 of the receiver's URL, as the outbox names it.
    pub hook: String,
    /// The PEP's opaque `state` (JSON text), returned unmodified.
    pub state: Option<String>,
    /// The task statuses to tell (`approved`, `denied`, `expired`,
    /// `cancelled`); empty for all.
    pub events: Vec<String>,
    /// The task's status endpoint, which the callback names.
    pub status_endpoint: String,
}
