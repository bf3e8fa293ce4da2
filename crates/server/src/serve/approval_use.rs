//! Using an approved approval, the same whichever door it is used through
//! (an AuthZEN re-evaluation, an MCP tool call): within
//! `approvals.collect_within` of the yes and never past a window's end,
//! its one use claimed in the store (shared with CIBA's collection of its
//! action token, so it counts once), and a window approval's grant opened
//! by that use.

use greenlight_store::{Approval, StoreError};
use greenlight_types::GrantMode;

use super::AppState;
use super::state::seconds;

/// The last moment an approved approval may be used (`approved_until`): a
/// yes is for acting now, as a CIBA collection is.
pub fn use_until(st: &AppState, a: &Approval) -> i64 {
    let mut lasts = st.settings.approvals.collect_within();
    if a.obligation.grant == GrantMode::Window {
        lasts = lasts.min(a.obligation.window_seconds);
    }
    decided(a).saturating_add(seconds(lasts))
}

/// The end of a window approval's grant: the window runs from the
/// approval, not from its first use.
pub fn window_until(a: &Approval) -> i64 {
    decided(a).saturating_add(seconds(a.obligation.window_seconds))
}

fn decided(a: &Approval) -> i64 {
    a.decided_at.unwrap_or(a.created_at)
}

/// What claiming an approval's use came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// It is this caller's to use, now.
    Used,
    /// Past [`use_until`].
    TooLate,
    /// Somebody used it already (a replay, or a CIBA collection).
    AlreadyUsed,
}

/// Claims the one use of approved `a` for `door` (`authzen`, `mcp`: the
/// audit's use id names it), opening its window grant when it has one.
pub async fn claim(st: &AppState, a: &Approval, door: &str) -> Result<Claim, StoreError> {
    let now = st.now();
    if now >= use_until(st, a) {
        return Ok(Claim::TooLate);
    }
    let use_id = format!("{door}:{}", greenlight_store::new_id()?);
    if !st.store.claim_delivery(&a.id, &use_id, now).await? {
        return Ok(Claim::AlreadyUsed);
    }
    if a.obligation.grant == GrantMode::Window {
        match st.store.create_grant(&a.id, window_until(a), now).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e),
        }
    }
    st.metrics.approvals("token_delivered", 1);
    Ok(Claim::Used)
}
