//! Completing a decision with what only the service knows: a single-use
//! action token is consumed (a second use is a replay), the token of a
//! revoked approval is refused, and an active window grant turns
//! approval-required into allow. Every field read here is a field of the
//! component's decision; a store failure denies.

use greenlight_store::{Status, StoreError};
use greenlight_types::{Allowance, Decision, DenialCode, Verdict};

use super::AppState;
use super::auth::voter;
use super::live::Version;
use super::state::seconds;

fn deny(code: DenialCode, message: String, hash: &str) -> Decision {
    Decision::deny(code, message, hash)
}

fn store_failure(e: StoreError, hash: &str) -> Decision {
    tracing::error!(error = %e, "store failure while deciding; denying");
    deny(
        DenialCode::EngineUnavailable,
        "the approval store is unavailable".to_owned(),
        hash,
    )
}

/// The decision once the store has had its say.
pub(super) async fn act(st: &AppState, v: &Version, decision: Decision) -> Decision {
    let now = st.now();
    let hash = decision.policy_hash.clone();
    match &decision.verdict {
        Verdict::Allow(allow) => {
            if let Some(id) = &allow.approval_id {
                match st.store.get_approval(id).await {
                    Ok(Some(a)) if a.status == Status::Revoked => {
                        return deny(
                            DenialCode::ActionTokenReplayed,
                            format!("approval `{id}` was revoked"),
                            &hash,
                        );
                    }
                    Ok(_) => {}
                    Err(e) => return store_failure(e, &hash),
                }
            }
            if let Some(single) = &allow.consume {
                // Remember the token id until it can no longer be accepted:
                // its expiry plus the verifier's leeway.
                let keep_until = seconds(
                    single
                        .expires_at
                        .saturating_add(v.action_tokens.leeway_seconds),
                );
                match st
                    .store
                    .consume_token(
                        &single.token_id,
                        keep_until,
                        allow.approval_id.as_deref(),
                        &allow.principal.subject,
                        now,
                    )
                    .await
                {
                    Ok(()) => {}
                    Err(StoreError::Replay { .. }) => {
                        return deny(
                            DenialCode::ActionTokenReplayed,
                            format!("action token `{}` was already used", single.token_id),
                            &hash,
                        );
                    }
                    Err(e) => return store_failure(e, &hash),
                }
            }
            decision
        }
        Verdict::ApprovalRequired(ch) if ch.needs_service() => {
            match st
                .store
                .find_active_grant(&voter(&ch.requester), &ch.action.digest, now)
                .await
            {
                Ok(Some(grant)) => Decision {
                    verdict: Verdict::Allow(Allowance::new(
                        ch.requester.clone(),
                        ch.action.clone(),
                        Some(grant.approval_id),
                        None,
                    )),
                    reasons: decision.reasons.clone(),
                    policy_hash: hash,
                },
                Ok(None) => decision,
                Err(e) => store_failure(e, &hash),
            }
        }
        _ => decision,
    }
}
