//! Bulk access requests (ARAP `items`): several (resource, action) items
//! in one submission and one task.
//!
//! This PDP binds every evaluation on its own (a batch evaluation's
//! denials each carry their own binding token), so every item echoes the
//! `denial` of its own evaluation; a top-level `denial` cannot cover a
//! bundle and is not relied on. Each item is bound and decided again like
//! a single submission and opens (or joins) its own approval; the task is
//! a bundle over those approvals ([`greenlight_store::bundles`]). Its
//! status is the profile's aggregate (`pending` while any item is, the
//! items' one terminal status, or `partial`); each item shows its own
//! status and, once approved, its own result to re-evaluate that item
//! with. Cancelling the task withdraws its pending items only. A
//! submission refused part-way withdraws the approvals it opened, so a
//! refusal leaves nothing behind.

use axum::http::StatusCode;
use axum::response::Response;
use greenlight_store::bundles::{Bundle, BundleItem, BundleOpened, MAX_ITEMS, aggregate};
use greenlight_store::{Approval, Status, StoreError, Voter};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::super::approval_use::use_until;
use super::super::authzen::{ActionSpec, Entity};
use super::super::live::Version;
use super::super::{ApiError, AppState};
use super::task::{status_endpoint, submitted, with_headers};
use super::{
    Callback, KEEP_KEYS_FOR, PROBLEM_INVALID_BINDING, PROBLEM_TASK_EXPIRED, PROBLEM_TASK_STATE,
    Problem, Submitter, ask, audit_submission, binding, callback_of, open, replay as replay_single,
    rfc3339,
};

/// One item of a bulk submission.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    resource: Option<Entity>,
    action: Option<ActionSpec>,
    /// Merged over the top-level `requested_access`; like it, noted and
    /// not acted on.
    #[expect(
        dead_code,
        reason = "accepted as the profile defines it; approvals last what the policy says"
    )]
    requested_access: Option<Map<String, Value>>,
    denial: Option<binding::Denial>,
}

/// A bulk submission, after the submitter is known and no earlier
/// submission under its idempotency key was found.
pub(super) async fn submit(
    st: &AppState,
    v: &Version,
    by: &Submitter,
    items: Vec<Item>,
    raw: &[Value],
    context: &Map<String, Value>,
    callback: Option<Callback>,
) -> Result<Response, Problem> {
    if items.is_empty() || items.len() > MAX_ITEMS || raw.len() != items.len() {
        return Err(ApiError::invalid_request(format!(
            "`items` holds 1 to {MAX_ITEMS} items, not {}",
            items.len()
        ))
        .into());
    }
    // Each item may open an approval: more than the requester may have
    // pending at once would open some and then be refused.
    let quota = st.settings.approvals.quota();
    if items.len() > usize::try_from(quota.max_pending).unwrap_or(usize::MAX) {
        return Err(ApiError::invalid_request(format!(
            "`items` asks for {} approvals; a requester may have at most {} pending (approvals.max_pending)",
            items.len(),
            quota.max_pending
        ))
        .into());
    }
    let mut asked = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(denial) = item.denial.as_ref() else {
            return Err(Problem::new(
                PROBLEM_INVALID_BINDING,
                400,
                format!(
                    "`items[{i}]` has no `denial`: this PDP binds each evaluation on its own, so each item echoes the denial of its own evaluation"
                ),
            ));
        };
        let one = ask(
            st,
            v,
            by,
            item.action.clone(),
            item.resource.clone(),
            context,
            denial,
        )
        .await
        .map_err(|p| p.at(&format!("`items[{i}]`")))?;
        if let Some(j) = asked
            .iter()
            .position(|a: &super::Asked| a.challenge.action.digest == one.challenge.action.digest)
        {
            return Err(ApiError::invalid_request(format!(
                "`items[{j}]` and `items[{i}]` are the same action: ask for it once"
            ))
            .into());
        }
        asked.push(one);
    }
    let mut callback = callback_of(st, &by.caller, callback)?;
    // Opened item by item; a refusal part-way (a quota reached, an action
    // already approved for a window) withdraws the approvals this
    // submission opened, so a refused submission leaves none behind.
    let mut approvals = Vec::with_capacity(asked.len());
    let mut opened = Vec::new();
    for (i, one) in asked.iter().enumerate() {
        match open(st, v, by, one).await {
            Ok((a, created)) => {
                if created {
                    opened.push(a.id.clone());
                }
                approvals.push(a);
            }
            Err(p) => {
                withdraw(st, by, &opened).await;
                return Err(p.at(&format!("`items[{i}]`")));
            }
        }
    }
    let now = st.now();
    let id = greenlight_store::new_id().map_err(ApiError::from)?;
    // Kept while any item can still be decided or used, and a day more.
    let collect = super::super::state::seconds(st.settings.approvals.collect_within());
    let keep_until = approvals
        .iter()
        .map(|a| a.expires_at.saturating_add(collect))
        .max()
        .unwrap_or(now)
        .max(now)
        .saturating_add(KEEP_KEYS_FOR);
    let first = &approvals[0];
    let bundle = Bundle {
        id: id.clone(),
        requester_issuer: first.requester_issuer.clone(),
        requester: first.requester.clone(),
        client_id: first.client_id.clone(),
        created_at: now,
        keep_until,
        // Echoed as submitted.
        items: approvals
            .iter()
            .zip(raw)
            .map(|(a, item)| BundleItem {
                approval_id: a.id.clone(),
                resource: item["resource"].to_string(),
                action: item["action"].to_string(),
            })
            .collect(),
    };
    if let Some(cb) = callback.as_mut() {
        cb.status_endpoint = status_endpoint(st, &id);
    }
    let record = by.key_record(&first.id, Some(&id), now, keep_until);
    match st
        .store
        .open_bundle(&bundle, record.as_ref(), callback.as_ref(), now)
        .await
    {
        Ok(BundleOpened::Created { .. }) => {}
        // A concurrent submission under the same key came first (with
        // the same body, over the same approvals, joined).
        Ok(BundleOpened::KeyTaken(stands)) => {
            return replay_single(st, &stands, &by.body_hash).await;
        }
        Err(e) => {
            withdraw(st, by, &opened).await;
            return Err(e.into());
        }
    }
    audit_submission(
        st,
        by,
        &id,
        json!({
            "bulk": true,
            "items": approvals.iter().zip(&asked).map(|(a, one)| json!({
                "approval_id": a.id,
                "evaluation_id": one.evaluation_id,
            })).collect::<Vec<_>>(),
            "callback": callback.as_ref().map(|c| &c.hook),
        }),
    )
    .await;
    // Each item's approval tells which task it is part of.
    for (a, one) in approvals.iter().zip(&asked) {
        audit_submission(
            st,
            by,
            &a.id,
            json!({ "task": id, "evaluation_id": one.evaluation_id }),
        )
        .await;
    }
    tracing::info!(task = %id, items = approvals.len(), "bulk access request submitted");
    // Read again: an item decided while the task was stored shows so.
    replay(st, &id).await
}

/// Withdraws the approvals a refused bulk submission opened (not those it
/// joined: they are others' requests too).
async fn withdraw(st: &AppState, by: &Submitter, opened: &[String]) {
    let now = st.now();
    let tell = |done: &Approval| super::super::approvals::outcome_deliveries(st, done, now);
    for id in opened {
        if let Err(e) = st
            .store
            .cancel_pending_announced(
                id,
                &super::super::auth::voter(&by.caller),
                Some("the bulk access request it was opened for was refused"),
                now,
                &tell,
            )
            .await
        {
            tracing::warn!(error = %e, approval = %id, "cannot withdraw an approval a refused bulk access request opened");
        }
    }
    if !opened.is_empty() {
        st.notifier.wake();
    }
}

/// Withdraws the bulk task's pending items for `who` (its requester's
/// side); items already decided stay as they are. `invalid_task_state`
/// when no item is pending.
pub(super) async fn cancel(
    st: &AppState,
    bundle: &Bundle,
    approvals: &[Approval],
    who: &Voter,
    reason: Option<&str>,
) -> Result<Response, Problem> {
    let now = st.now();
    let already = |approvals: &[Approval]| {
        Problem::new(
            PROBLEM_TASK_STATE,
            409,
            format!(
                "task `{}` is already {}",
                bundle.id,
                aggregate(approvals.iter().map(|a| a.status_at(now)))
            ),
        )
    };
    let tell = |done: &Approval| super::super::approvals::outcome_deliveries(st, done, now);
    let mut cancelled = 0;
    if !approvals
        .iter()
        .any(|a| a.status_at(now) == Status::Pending)
    {
        return Err(already(approvals));
    }
    for a in approvals
        .iter()
        .filter(|a| a.status_at(now) == Status::Pending)
    {
        match st
            .store
            .cancel_pending_announced(&a.id, who, reason, now, &tell)
            .await
        {
            Ok(_) => cancelled += 1,
            // Decided or lapsed meanwhile: it keeps that status.
            Err(StoreError::Expired { .. } | StoreError::NotRevocable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    st.notifier.wake();
    let (bundle, approvals) = load(st, &bundle.id)
        .await?
        .ok_or_else(|| ApiError::internal("a bulk task is gone"))?;
    if cancelled == 0 {
        // Every pending item was decided or lapsed meanwhile.
        return Err(already(&approvals));
    }
    st.metrics.approvals("cancelled", cancelled);
    // What the cancellation did, even if no item's result can be used any
    // more.
    let body = answer(st, &bundle, &approvals, false)?;
    Ok(with_headers(
        st,
        &bundle.id,
        &approvals,
        StatusCode::OK,
        body,
    ))
}

/// The answer to a bulk submission's retry under its idempotency key.
pub(super) async fn replay(st: &AppState, id: &str) -> Result<Response, Problem> {
    let (bundle, approvals) = load(st, id)
        .await?
        .ok_or_else(|| ApiError::internal("an access request's task is gone"))?;
    response(st, &bundle, &approvals, submitted(st, &approvals))
}

/// The bulk task `id` and its items' approvals, in order, if it is kept.
pub(super) async fn load(
    st: &AppState,
    id: &str,
) -> Result<Option<(Bundle, Vec<Approval>)>, Problem> {
    let Some(bundle) = st.store.get_bundle(id).await? else {
        return Ok(None);
    };
    let mut approvals = Vec::with_capacity(bundle.items.len());
    for item in &bundle.items {
        approvals.push(
            st.store
                .get_approval(&item.approval_id)
                .await?
                .ok_or_else(|| ApiError::internal("a bulk task's approval is gone"))?,
        );
    }
    Ok(Some((bundle, approvals)))
}

/// The bulk task as of now: the aggregate status, each item's own status
/// and, for an approved item, its own result. `task_expired` once no item
/// is pending and every approved item's result is past its use.
fn answer(
    st: &AppState,
    bundle: &Bundle,
    approvals: &[Approval],
    expired_is_gone: bool,
) -> Result<Value, Problem> {
    let now = st.now();
    let statuses: Vec<Status> = approvals.iter().map(|a| a.status_at(now)).collect();
    let status = aggregate(statuses.iter().copied());
    let url = status_endpoint(st, &bundle.id);
    // The handle lasts while an item can be decided or its result used.
    let lasts = approvals
        .iter()
        .zip(&statuses)
        .filter_map(|(a, s)| match s {
            Status::Pending => Some(a.expires_at),
            Status::Approved => Some(use_until(st, a)),
            _ => None,
        })
        .max();
    let approved = statuses.contains(&Status::Approved);
    if expired_is_gone && approved && lasts.is_some_and(|until| now >= until) {
        return Err(Problem::new(
            PROBLEM_TASK_EXPIRED,
            410,
            format!(
                "task `{}` had approved items, to be used until {}",
                bundle.id,
                rfc3339(lasts.unwrap_or(now))
            ),
        ));
    }
    let mut items = Vec::with_capacity(approvals.len());
    for ((item, a), s) in bundle.items.iter().zip(approvals).zip(&statuses) {
        let mut one = json!({
            "resource": serde_json::from_str::<Value>(&item.resource).unwrap_or(Value::Null),
            "action": serde_json::from_str::<Value>(&item.action).unwrap_or(Value::Null),
            "status": s.task_status(),
        });
        if *s == Status::Approved {
            let until = use_until(st, a);
            let approval = binding::approval_result(st, a, until).map_err(ApiError::internal)?;
            one["result"] = json!({ "mode": "reevaluate", "approval": approval });
        }
        items.push(one);
    }
    let mut task = json!({
        "id": bundle.id,
        "status": status,
        "status_endpoint": url,
        "display": {
            "title": format!("Approval of {} actions", approvals.len()),
            "description": items
                .iter()
                .map(|i| format!(
                    "{} of {} {}",
                    i["action"]["name"].as_str().unwrap_or("?"),
                    i["resource"]["type"].as_str().unwrap_or("?"),
                    i["resource"]["id"].as_str().unwrap_or("?"),
                ))
                .collect::<Vec<_>>()
                .join("; "),
        },
        "items": items,
    });
    if let Some(until) = lasts {
        task["expires_at"] = json!(rfc3339(until));
    }
    if status == "pending" {
        task["links"] = json!({ "cancel": format!("{url}/cancel") });
    }
    Ok(json!({ "task": task }))
}

/// The bulk task's answer with `status`, `Location` and, while pending,
/// `Retry-After` (the shortest poll interval of its pending items).
pub(super) fn response(
    st: &AppState,
    bundle: &Bundle,
    approvals: &[Approval],
    status: StatusCode,
) -> Result<Response, Problem> {
    let body = answer(st, bundle, approvals, true)?;
    Ok(with_headers(st, &bundle.id, approvals, status, body))
}
