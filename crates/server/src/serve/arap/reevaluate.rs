//! Re-evaluation with an approval (ARAP §"Completion Semantics"): the
//! PEP evaluates the same request again with the task's `approval` in
//! `context.approval`, and the PDP decides with current policy.
//!
//! The approval lifts an approval-required answer only when all of these
//! hold, else the answer says why and what to do next (`next_action`):
//!
//! | check | refused as |
//! |---|---|
//! | its `state` is this server's, unexpired, for this PDP, naming `id` | `approval_unverifiable` (`none`), or `approval_expired` (`request`) once past `approved_until` |
//! | it was given to this requester through this client | `approval_unverifiable` (`none`) |
//! | it covers this exact action (the action digest) | `out_of_scope` (`request`) |
//! | the store still has it approved (not revoked) | `approval_expired` (`request`) |
//! | the action needs the same approval as then | `out_of_scope` (`request`) |
//! | it was not used yet (its one use is claimed in the store, shared with CIBA's collection) | `approval_expired` (`request`) |
//!
//! A window approval's first use opens its window grant, and later
//! requests in the window are allowed by the grant itself. A request that
//! policy now refuses is `policy_denied` (`none`); one that needs no
//! approval any more is simply allowed, and the approval is not used.

use greenlight_store::Status;
use greenlight_types::{Allowance, Decision, DenialCode, Verdict};
use serde_json::{Value, json};

use super::super::AppState;
use super::super::approval_use::{Claim, claim, use_until};
use super::super::auth::voter;
use super::super::authzen::answer;
use super::super::live::Version;
use super::binding::{self, Unusable};
use super::rfc3339;

/// A refused re-evaluation: the decision's AuthZEN answer with the
/// profile's `reason` code, `next_action` and a `message` for people. A
/// `request` without a fresh `access_request` (the denial is not
/// requestable) is `none`; a `none` carries no `access_request`.
fn refused(
    st: &AppState,
    v: &Version,
    d: &Decision,
    members: Option<Vec<String>>,
    reason: &str,
    next: &str,
    message: String,
) -> Value {
    st.metrics.decision("authzen", d);
    let mut a = answer(st, v, d, members);
    let Some(context) = a["context"].as_object_mut() else {
        return a;
    };
    let next = if next == "request" && !context.contains_key("access_request") {
        "none"
    } else {
        next
    };
    if next == "none" {
        context.remove("access_request");
    }
    context.insert("reason".into(), json!(reason));
    context.insert("next_action".into(), json!(next));
    context.insert("message".into(), json!(message));
    a
}

/// The answer to an evaluation that presented `presented` as
/// `context.approval`; `d` is its decision (the store already had its
/// say), `members` the context members it read.
pub async fn reevaluate(
    st: &AppState,
    v: &Version,
    d: Decision,
    presented: &Value,
    members: Option<Vec<String>>,
) -> Value {
    let ch = match &d.verdict {
        // Allowed without it: the approval is not needed, and not used.
        Verdict::Allow(_) => {
            st.metrics.decision("authzen", &d);
            return answer(st, v, &d, members);
        }
        Verdict::Deny(den) => {
            let message = den.to_string();
            return refused(st, v, &d, members, "policy_denied", "none", message);
        }
        Verdict::StepUpRequired(s) => {
            let message = format!("a fresh sign-in is required first: {}", s.message);
            return refused(st, v, &d, members, "policy_denied", "none", message);
        }
        Verdict::ApprovalRequired(ch) => ch.clone(),
    };
    let state = match binding::verify_state(st, presented) {
        Ok(s) => s,
        Err(Unusable::Unverifiable(why)) => {
            return refused(st, v, &d, members, "approval_unverifiable", "none", why);
        }
        Err(Unusable::Expired(why)) => {
            return refused(st, v, &d, members, "approval_expired", "request", why);
        }
    };
    let id = state.approval_id.clone();
    if state.requester != voter(&ch.requester) {
        let why = format!("approval `{id}` was given to another requester or client");
        return refused(st, v, &d, members, "approval_unverifiable", "none", why);
    }
    if state.digest != ch.action.digest {
        let why = format!(
            "approval `{id}` covers another action, resource or parameters than {}",
            ch.action
        );
        return refused(st, v, &d, members, "out_of_scope", "request", why);
    }
    let store_failed = |e: greenlight_store::StoreError| {
        tracing::error!(error = %e, "store failure while re-evaluating an approval; denying");
        let failed = Decision::deny(
            DenialCode::EngineUnavailable,
            "the approval store is unavailable",
            &d.policy_hash,
        );
        st.metrics.decision("authzen", &failed);
        answer(st, v, &failed, None)
    };
    let a = match st.store.get_approval(&id).await {
        Ok(Some(a)) => a,
        Ok(None) => {
            let why = format!("no approval `{id}`");
            return refused(st, v, &d, members, "approval_unverifiable", "none", why);
        }
        Err(e) => return store_failed(e),
    };
    let now = st.now();
    match a.status_at(now) {
        Status::Approved => {}
        Status::Revoked => {
            let why = format!("approval `{id}` was withdrawn");
            return refused(st, v, &d, members, "approval_expired", "request", why);
        }
        other => {
            let why = format!("approval `{id}` is {other}, not approved");
            return refused(st, v, &d, members, "approval_unverifiable", "none", why);
        }
    }
    let until = use_until(st, &a);
    let too_late = || format!("approval `{id}` could be used until {}", rfc3339(until));
    if now >= until {
        return refused(
            st,
            v,
            &d,
            members,
            "approval_expired",
            "request",
            too_late(),
        );
    }
    if a.obligation != ch.obligation {
        let why = format!(
            "{} now needs another approval than the one given",
            ch.action
        );
        return refused(st, v, &d, members, "out_of_scope", "request", why);
    }
    match claim(st, &a, "authzen").await {
        Ok(Claim::Used) => {}
        Ok(Claim::TooLate) => {
            return refused(
                st,
                v,
                &d,
                members,
                "approval_expired",
                "request",
                too_late(),
            );
        }
        Ok(Claim::AlreadyUsed) => {
            let why = format!("approval `{id}` was already used");
            return refused(st, v, &d, members, "approval_expired", "request", why);
        }
        Err(e) => return store_failed(e),
    }
    tracing::info!(approval = %id, "approval used at re-evaluation");
    let allowed = Decision {
        verdict: Verdict::Allow(Allowance::new(
            ch.requester.clone(),
            ch.action.clone(),
            Some(id.clone()),
            None,
        )),
        reasons: d.reasons.clone(),
        policy_hash: d.policy_hash.clone(),
    };
    st.metrics.decision("authzen", &allowed);
    let mut out = answer(st, v, &allowed, members);
    out["context"]["approval"] = json!({ "id": id, "approved_until": rfc3339(until) });
    out
}
