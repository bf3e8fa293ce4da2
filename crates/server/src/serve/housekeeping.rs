//! Housekeeping, every `housekeeping.interval` seconds on every replica:
//! expiries, the replay ledger, and the signing keys' life.

use std::sync::Arc;

use greenlight_types::bundle::ACTION_ISSUER_NAME;

use super::AppState;
use super::keys::Signer;
use super::state::seconds;

/// How long past its expiry a consumed token id is still kept: the most
/// two replicas' clocks are expected to disagree by (five minutes, far
/// beyond NTP's error, short enough to keep the ledger small).
pub const LEDGER_SKEW_MARGIN: i64 = 300;

/// Runs [`sweep`] every `housekeeping.interval` seconds.
pub(super) async fn every_interval(st: Arc<AppState>) {
    let every = std::time::Duration::from_secs(st.settings.sweep_interval());
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sweep(&st).await {
            tracing::error!(error = %e, "housekeeping failed; retrying at the next sweep");
        }
    }
}

/// Reloads the signing keys the moment another process announces a change
/// (`greenlight keys revoke` on PostgreSQL), so a withdrawn key is refused
/// by every replica at once rather than at its next sweep. Returns at once
/// on a store that announces nothing (SQLite).
pub(super) async fn watch_keys(st: Arc<AppState>) {
    loop {
        let mut changes = match st.store.key_changes().await {
            Ok(Some(changes)) => changes,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for key changes; retrying in 5 s");
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                continue;
            }
        };
        loop {
            match changes.next().await {
                Ok(kid) => {
                    tracing::info!(%kid, "signing keys changed elsewhere; reloading");
                    if let Err(e) = refresh_keys(&st).await {
                        tracing::error!(error = %e, "reloading the signing keys failed");
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "the key-change listener failed; listening again");
                    break;
                }
            }
        }
    }
}

/// One housekeeping pass: marks approvals past their expiry as expired
/// (audited), forgets consumed tokens that can no longer be presented,
/// portal sign-ins and sessions that ended and access requests'
/// idempotency keys past their retention, adds
/// the next signing key when the newest is older than
/// `signing.rotate_after`, picks up keys another replica (or `greenlight
/// keys rotate`) created, signs with a new key once it has been published
/// for the grace period, and retires the keys it supersedes.
pub async fn sweep(st: &AppState) -> anyhow::Result<()> {
    let now = st.now();
    let tell =
        |lapsed: &greenlight_store::Approval| super::approvals::outcome_deliveries(st, lapsed, now);
    let expired = st.store.expire_due_announced(now, &tell).await?;
    if expired > 0 {
        st.notifier.wake();
        tracing::info!(expired, "approvals expired");
        st.metrics.approvals("expired", expired);
    }
    // Forget a consumed token only well after it expired, so a replica
    // whose clock runs behind never accepts it again.
    st.store
        .purge_ledger(now.saturating_sub(LEDGER_SKEW_MARGIN))
        .await?;
    // Sign-ins never finished and sessions past their end.
    st.store.purge_portal(now).await?;
    // Access requests' idempotency keys past their retention.
    st.store.purge_access_requests(now).await?;
    if let Some(after) = st.settings.signing.rotate_after
        && Signer::newest_since(&st.store)
            .await?
            .is_some_and(|since| now - since >= seconds(after))
    {
        Signer::rotate(&st.store, now, &st.seal).await?;
    }
    refresh_keys(st).await?;
    // A replica still signing with a superseded key does so for at most one
    // more sweep (the grace is two), so `retain_for` plus the grace covers
    // every token the old key signed.
    let retain = seconds(st.settings.signing.retain_for());
    let until = now
        .saturating_add(retain)
        .saturating_add(st.settings.key_grace());
    st.signer().retire_superseded(&st.store, now, until).await?;
    Ok(())
}

/// Reloads the signing keys from the store; when they changed, signs with
/// the newest and hands the engine the new JWKS.
pub async fn refresh_keys(st: &AppState) -> anyhow::Result<()> {
    // No swap and no other refresh meanwhile: the version deciding gets the
    // newest keys, and a swap after this starts from the new signer.
    let _held = st.live.hold().await;
    let fresh =
        Signer::load_or_create(&st.store, st.now(), st.settings.key_grace(), &st.seal).await?;
    let current = st.signer();
    if fresh.kid() == current.kid() && fresh.jwks() == current.jwks() {
        return Ok(());
    }
    st.version()
        .policy
        .set_keys(ACTION_ISSUER_NAME, &fresh.jwks().to_string())?;
    tracing::info!(kid = %fresh.kid(), "signing keys refreshed");
    *st.signer
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
    Ok(())
}
