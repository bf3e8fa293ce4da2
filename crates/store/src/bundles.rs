//! Bulk access requests (AuthZEN ARAP `items`): one task over several
//! (resource, action) items, each item the approval a single submission of
//! it opens or joins. The task's status is the profile's aggregate of its
//! items' statuses ([`aggregate`]), computed whenever it is read; a
//! callback asked for on the task is told, in the transaction that decides
//! an item, when that aggregate becomes terminal.

use crate::{AccessRequestKey, NewTaskCallback, Pool, Status, Store, StoreError, postgres, sqlite};

/// The most items one bulk task holds.
pub const MAX_ITEMS: usize = 32;

/// The most bulk tasks one approval may be an item of: deciding it tells
/// each of them, so the work is bounded.
pub const MAX_BUNDLES_PER_APPROVAL: usize = 16;

/// One item of a bulk access request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleItem {
    /// The approval the item opened or joined.
    pub approval_id: String,
    /// The item's AuthZEN resource as submitted (JSON text), echoed in the
    /// task.
    pub resource: String,
    /// The item's AuthZEN action as submitted (JSON text).
    pub action: String,
}

/// A bulk access request's task: whose it is and its items, in the order
/// submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The task id: random, as an approval's.
    pub id: String,
    /// The requester's issuer: every item's approval has the same.
    pub requester_issuer: String,
    /// The requester's subject at that issuer.
    pub requester: String,
    /// The client that submitted it.
    pub client_id: String,
    /// When it was submitted.
    pub created_at: i64,
    /// When it may be forgotten (with its idempotency key and callbacks).
    pub keep_until: i64,
    /// Its items: one to [`MAX_ITEMS`], each a distinct approval.
    pub items: Vec<BundleItem>,
}

/// What [`Store::open_bundle`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BundleOpened {
    /// Stored; `callback_stored` says whether the callback asked for was
    /// kept (it is not when every item had already reached a terminal
    /// status: the answer tells it instead).
    Created {
        /// Whether the callback is kept.
        callback_stored: bool,
    },
    /// Another submission recorded the same idempotency key first:
    /// nothing of this one was stored, and the caller answers as that one.
    KeyTaken(AccessRequestKey),
}

/// The task status of a bulk task whose items have `statuses` (ARAP
/// §"Access Request Response"): `pending` while any item is; the items'
/// one terminal status when they share it; `partial` when two or more
/// distinct terminal statuses are present. Statuses as tasks show them
/// ([`Status::task_status`]). No items reads as `pending`; a stored
/// bundle always has some.
pub fn aggregate(statuses: impl IntoIterator<Item = Status>) -> &'static str {
    let mut seen: Option<&'static str> = None;
    let mut mixed = false;
    for status in statuses {
        if status == Status::Pending {
            return "pending";
        }
        let shown = status.task_status();
        match seen {
            None => seen = Some(shown),
            Some(first) if first != shown => mixed = true,
            Some(_) => {}
        }
    }
    match (seen, mixed) {
        (_, true) => "partial",
        (Some(one), false) => one,
        (None, false) => "pending",
    }
}

impl Store {
    /// Stores a bulk task over approvals already opened (or joined), with
    /// its idempotency key and callback, in one transaction. The items'
    /// approvals are locked while it is stored, so an item decided at the
    /// same moment either is seen decided here or sees the callback.
    /// Errors: `Invalid` (no items, too many, an approval named twice, or
    /// another requester's), `NotFound` (an approval that does not exist),
    /// `QuotaReached` (an approval already in [`MAX_BUNDLES_PER_APPROVAL`]
    /// bulk tasks).
    pub async fn open_bundle(
        &self,
        bundle: &Bundle,
        key: Option<&AccessRequestKey>,
        callback: Option<&NewTaskCallback>,
        now: i64,
    ) -> Result<BundleOpened, StoreError> {
        if bundle.items.is_empty() || bundle.items.len() > MAX_ITEMS {
            return Err(StoreError::Invalid(format!(
                "a bulk access request holds 1 to {MAX_ITEMS} items, not {}",
                bundle.items.len()
            )));
        }
        let mut ids: Vec<&str> = bundle
            .items
            .iter()
            .map(|i| i.approval_id.as_str())
            .collect();
        ids.sort_unstable();
        if let Some(twice) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(StoreError::Invalid(format!(
                "approval {} is named by two items of one bulk access request",
                twice[0]
            )));
        }
        dispatch!(self, open_bundle(bundle, key, callback, now))
    }

    /// The bulk task `id`, with its items in order, if it is kept.
    pub async fn get_bundle(&self, id: &str) -> Result<Option<Bundle>, StoreError> {
        dispatch!(self, get_bundle(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_aggregate_follows_the_profile() {
        use Status::*;
        assert_eq!(aggregate([Approved, Pending, Denied]), "pending");
        assert_eq!(aggregate([Approved, Approved]), "approved");
        assert_eq!(aggregate([Denied]), "denied");
        assert_eq!(aggregate([Approved, Denied]), "partial");
        assert_eq!(aggregate([Expired, Revoked, Expired]), "partial");
        assert_eq!(aggregate([Revoked, Revoked]), "cancelled");
        assert_eq!(aggregate([]), "pending");
    }
}
