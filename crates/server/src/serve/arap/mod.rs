//! OpenID AuthZEN Access Request and Approval Profile (ARAP), Draft 1
//! (openid/authzen `profiles/authzen-access-request-approval/`): a denial
//! that an approval would lift becomes requestable, a PEP submits it as an
//! access request and gets a task to poll (or a callback), and once
//! approved it evaluates again with the approval echoed in
//! `context.approval`.
//!
//! Underneath it is the approval CIBA and token exchange ask for: a
//! submission opens (or joins) the one pending approval for the same
//! requester, client and action digest, the task *is* that approval (its id
//! is the task id and the approval id), and its use is claimed once in the
//! store, whichever protocol claims it first.
//!
//! - `POST /access/v1/requests`: the submission. The denial binding is
//!   verified ([`binding::verify`]) and the submission decided again with
//!   its own subject; it binds only when that decision asks for the same
//!   approval (same requester, same digest). `Idempotency-Key` returns the
//!   same task for an equivalent body (RFC 8785 canonical form) and
//!   `duplicate_request` for another under the same key.
//! - `GET /access/v1/requests/{id}`: the task, with `Retry-After` while
//!   pending and, once approved, the result to re-evaluate with.
//! - `POST` or `DELETE /access/v1/requests/{id}/cancel`: the requester's
//!   side withdraws a pending request.
//!
//! Who may touch a task: the requester through the client that asked
//! (their token in `Authorization: Bearer`), or the trusted PEP that
//! vouched for them (its own token, the same client). A task id alone is
//! nothing: anyone else is told the task is unknown.
//!
//! Status mapping: Greenlight's `revoked` (an approver withdrew it, or the
//! requester cancelled it) shows as `cancelled`, even after approval:
//! a withdrawn approval must not read as usable. `failed` is never
//! reported: a store error is a `500` and changes nothing, and an approval
//! ends only by a decision, its time, or its withdrawal. Bulk submissions
//! (`items`, [`bulk`]) are a task over several approvals, `partial` when
//! their outcomes differ.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use greenlight_store::{AccessRequestKey, Approval, NewTaskCallback};
use greenlight_types::{Challenge, Principal, Verdict};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::authzen::{self, ActionSpec, Entity, Evaluation, Pep, Subject};
use super::live::Version;
use super::oauth::ask::{Note, open_or_join};
use super::{ApiError, AppState};

pub mod binding;
mod bulk;
mod problem;
pub mod reevaluate;
mod task;

pub use problem::Problem;
pub use task::{cancel, status};
use task::{status_endpoint, submitted, task_response};

/// The capability a PDP supporting this profile lists in its metadata.
pub const CAPABILITY: &str = "urn:openid:authzen:capability:access-request";

/// Problem type: the submitted denial is not requestable.
pub const PROBLEM_NOT_REQUESTABLE: &str = "urn:openid:authzen:access-request:error:not_requestable";
/// Problem type: the requestable denial has expired.
pub const PROBLEM_EXPIRED_DENIAL: &str = "urn:openid:authzen:access-request:error:expired_denial";
/// Problem type: the submission cannot be bound to the denial.
pub const PROBLEM_INVALID_BINDING: &str =
    "urn:openid:authzen:access-request:error:invalid_denial_binding";
/// Problem type: an `Idempotency-Key` reused with another body.
pub const PROBLEM_DUPLICATE: &str = "urn:openid:authzen:access-request:error:duplicate_request";
/// Problem type: the task is unknown, or not the caller's.
pub const PROBLEM_UNKNOWN_TASK: &str = "urn:openid:authzen:access-request:error:unknown_task";
/// Problem type: the task's handle has expired.
pub const PROBLEM_TASK_EXPIRED: &str = "urn:openid:authzen:access-request:error:task_expired";
/// Problem type: the operation does not fit the task's status.
pub const PROBLEM_TASK_STATE: &str = "urn:openid:authzen:access-request:error:invalid_task_state";

/// The longest `Idempotency-Key` kept.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Seconds an idempotency key is kept after its task's expiry (ARAP: at
/// least 24 hours after the task is terminal).
const KEEP_KEYS_FOR: i64 = 86_400;

/// The task statuses a callback may ask to be told about (`failed` is
/// accepted but never told: no task here ends that way).
const CALLBACK_EVENTS: [&str; 6] = [
    "approved",
    "denied",
    "expired",
    "cancelled",
    "failed",
    "partial",
];

/// The PDP's identifier: its public URL, as the metadata names it.
pub fn pdp(st: &AppState) -> String {
    st.public_url.trim_end_matches('/').to_owned()
}

/// The access request endpoint.
pub fn endpoint(st: &AppState) -> String {
    st.url("/access/v1/requests")
}

/// Unix seconds as an RFC 3339 UTC timestamp.
pub fn rfc3339(at: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(at)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// The submission's `callback`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Callback {
    endpoint: String,
    state: Option<Value>,
    events: Option<Vec<String>>,
}

/// An access request submission (ARAP §"Access Request Submission").
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submission {
    subject: Option<Entity>,
    resource: Option<Entity>,
    action: Option<ActionSpec>,
    /// A bulk submission's items ([`bulk`]).
    items: Option<Vec<bulk::Item>>,
    context: Option<Map<String, Value>>,
    denial: Option<binding::Denial>,
    /// Interpreted by the service: Greenlight's approvals last what the
    /// policy says, so `requested_until` and `emergency` change nothing.
    requested_access: Option<Map<String, Value>>,
    callback: Option<Callback>,
    /// The PEP and the actor it submits for; `client.actor` must be the
    /// actor the caller's credential names.
    client: Option<Map<String, Value>>,
}

/// Checks `client.actor` against the credential (ARAP §"Delegation"): the
/// actor the subject's token names (`act.sub`), or the vouching PEP
/// itself. A chain beyond the immediate actor cannot be verified and is
/// refused; so is any actor the credential does not name.
fn check_actor(client: Option<&Map<String, Value>>, actor: Option<&str>) -> Result<(), Problem> {
    let Some(claimed) = client.and_then(|c| c.get("actor")) else {
        return Ok(());
    };
    if claimed.get("act").is_some() {
        return Err(ApiError::invalid_request(
            "`client.actor.act`: a delegation chain beyond the immediate actor cannot be verified here",
        )
        .into());
    }
    match (claimed["id"].as_str(), actor) {
        (Some(id), Some(named)) if id == named => Ok(()),
        (id, named) => Err(ApiError::invalid_request(format!(
            "`client.actor.id` {} is not the actor the credential names ({})",
            id.map_or_else(|| "is missing and".to_owned(), |i| format!("`{i}`")),
            named.map_or_else(|| "none".to_owned(), |n| format!("`{n}`"))
        ))
        .into()),
    }
}

/// The `Idempotency-Key` header (a structured-field string, quoted, or
/// bare as ARAP's examples show it).
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::invalid_request("`Idempotency-Key` is not text"))?
        .trim();
    let key = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::invalid_request(format!(
            "`Idempotency-Key` must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        ))
        .into());
    }
    Ok(Some(key.to_owned()))
}

/// The callback a submission asks for, checked against the receivers
/// registered for the submitting client; nothing is stored yet.
fn callback_of(
    st: &AppState,
    caller: &Principal,
    cb: Option<Callback>,
) -> Result<Option<NewTaskCallback>, Problem> {
    let Some(cb) = cb else { return Ok(None) };
    let registered = st.settings.access_requests.callbacks.iter().find(|r| {
        r.url == cb.endpoint && r.issuer == caller.issuer && r.client_id == caller.client_id
    });
    if registered.is_none() {
        return Err(ApiError::invalid_request(format!(
            "callback endpoint `{}` is not registered for client `{}` of `{}` (access_requests.callbacks)",
            cb.endpoint, caller.client_id, caller.issuer
        ))
        .into());
    }
    let events = cb.events.unwrap_or_default();
    if let Some(e) = events
        .iter()
        .find(|e| !CALLBACK_EVENTS.contains(&e.as_str()))
    {
        return Err(ApiError::invalid_request(format!(
            "callback event `{e}` is not one of {}",
            CALLBACK_EVENTS.join(", ")
        ))
        .into());
    }
    let hook = super::notify::hook_id(&cb.endpoint);
    Ok(Some(NewTaskCallback {
        hook,
        state: cb.state.map(|s| s.to_string()),
        events,
        status_endpoint: String::new(),
    }))
}

/// Authenticates the submitter, and who acts for the requester: the
/// subject's own token (with the agent its `act` names, if any), or the
/// trusted PEP vouching for a subject, which must be allowed to submit
/// access requests (`may_request`) and is recorded as the actor.
async fn submitter(
    st: &AppState,
    pep: &mut Pep<'_>,
    subject: &Subject,
) -> Result<(Principal, Option<String>), Problem> {
    match subject {
        Subject::Token(token) => Ok((
            super::auth::authenticate_token(st, token).await?.principal,
            super::auth::token_actor(token),
        )),
        Subject::Vouched(_) => {
            let by = pep.trusted(st).await?.clone();
            if !authzen::trusted_pep(st, &by)?.may_request {
                return Err(ApiError::forbidden(format!(
                    "client `{}` may vouch for subjects but not submit access requests for them (`may_request` in `[[authzen.trusted_clients]]`)",
                    by.client_id
                ))
                .into());
            }
            let actor = by.subject.clone();
            Ok((by, Some(actor)))
        }
    }
}

/// Who submits an access request, and under which key.
struct Submitter {
    /// The authenticated caller: the requester, or the PEP vouching for
    /// them.
    caller: Principal,
    /// Who acts for the requester: the agent their token names, or the
    /// vouching PEP.
    actor: Option<String>,
    /// The requester, as the evaluation named them.
    subject: Subject,
    /// The `Idempotency-Key`, if any, and the body's canonical hash.
    key: Option<String>,
    body_hash: String,
}

impl Submitter {
    /// The caller's identity, as idempotency keys are scoped.
    fn caller_key(&self) -> String {
        super::auth::identity_key(&self.caller)
    }

    /// The idempotency record of a submission that opened `approval_id`
    /// (and, in bulk, `bundle_id`) at `now`, kept until `keep_until`.
    fn key_record(
        &self,
        approval_id: &str,
        bundle_id: Option<&str>,
        now: i64,
        keep_until: i64,
    ) -> Option<AccessRequestKey> {
        Some(AccessRequestKey {
            caller: self.caller_key(),
            idempotency_key: self.key.clone()?,
            body_hash: self.body_hash.clone(),
            approval_id: approval_id.to_owned(),
            bundle_id: bundle_id.map(str::to_owned),
            created_at: now,
            keep_until,
        })
    }
}

/// A submitted (resource, action), bound to its denial and decided again:
/// the approval it asks for.
struct Asked {
    challenge: Challenge,
    policy_hash: String,
    evaluation_id: String,
    /// The submission's `business_justification`, shown to approvers.
    justification: Option<String>,
}

/// Verifies `denial` ([`binding::verify`]) and decides the submitted
/// `action` on `resource` again with the submission's own subject: only
/// the context members the denial bound are authorization input; the rest
/// are the submission's additions (a `business_justification` is shown to
/// the approvers). It binds only when that decision asks for the same
/// approval: the same requester and action digest.
async fn ask(
    st: &AppState,
    v: &Version,
    by: &Submitter,
    action: Option<ActionSpec>,
    resource: Option<Entity>,
    context: &Map<String, Value>,
    denial: &binding::Denial,
) -> Result<Asked, Problem> {
    let bound = binding::verify(st, denial)?;
    let (relevant, added): (Map<String, Value>, Map<String, Value>) = context
        .clone()
        .into_iter()
        .partition(|(k, _)| bound.members.iter().any(|m| m == k));
    let justification = added
        .get("business_justification")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let e = Evaluation::new(None, action, resource, Some(relevant));
    // Decided, not enforced: nothing is consumed here (an action token as
    // the subject is allowed, not spent), and an active window grant is
    // found when the approval is opened.
    let d = authzen::decide_one(st, v, &by.subject, &e)
        .await
        .map_err(ApiError::invalid_request)?;
    let challenge = match d.verdict {
        Verdict::ApprovalRequired(ch) => ch,
        Verdict::Allow(_) => {
            return Err(Problem::new(
                PROBLEM_NOT_REQUESTABLE,
                400,
                "the action is allowed now without approval: evaluate it again",
            ));
        }
        Verdict::Deny(den) => {
            let err = ApiError::from_denial(&den);
            return Err(if err.status == StatusCode::FORBIDDEN {
                Problem::new(
                    PROBLEM_NOT_REQUESTABLE,
                    400,
                    format!("the action is refused, not awaiting approval ({den})"),
                )
            } else {
                err.into()
            });
        }
        Verdict::StepUpRequired(s) => return Err(ApiError::step_up(&s).into()),
    };
    if super::auth::voter(&challenge.requester) != bound.requester {
        return Err(Problem::new(
            PROBLEM_INVALID_BINDING,
            400,
            format!(
                "the denial was given to `{}` through client `{}`, not to this subject",
                bound.requester.subject, bound.requester.client_id
            ),
        ));
    }
    if challenge.action.digest != bound.digest {
        return Err(Problem::new(
            PROBLEM_INVALID_BINDING,
            400,
            format!(
                "the submitted action, resource or context is not the one denied in `{}`",
                bound.evaluation_id
            ),
        ));
    }
    // A PEP vouching for a subject does not speak for the person: it
    // cannot ask them to confirm their own action.
    if matches!(by.subject, Subject::Vouched(_))
        && challenge
            .obligation
            .approvers
            .contains(&greenlight_types::Approver::Subject)
    {
        return Err(Problem::new(
            PROBLEM_NOT_REQUESTABLE,
            400,
            "this approval is the person's own confirmation: it must be asked for with their token, not by a PEP vouching for them",
        ));
    }
    Ok(Asked {
        challenge,
        policy_hash: d.policy_hash,
        evaluation_id: bound.evaluation_id,
        justification,
    })
}

/// Opens (or joins) the approval `asked` asks for; `true` when it is new.
async fn open(
    st: &AppState,
    v: &Version,
    by: &Submitter,
    asked: &Asked,
) -> Result<(Approval, bool), Problem> {
    Ok(open_or_join(
        st,
        v,
        &asked.challenge,
        asked.policy_hash.clone(),
        by.actor.clone(),
        Note {
            binding_message: None,
            reason: asked.justification.clone(),
            requested_expiry: None,
        },
    )
    .await?)
}

/// Audits a submission: the denials, the submission and the task, tied
/// together.
async fn audit_submission(st: &AppState, by: &Submitter, task: &str, detail: Value) {
    let mut detail = detail;
    detail["issuer"] = json!(by.caller.issuer);
    detail["client_id"] = json!(by.caller.client_id);
    detail["actor"] = json!(by.actor);
    if let Err(e) = st
        .store
        .append_audit(greenlight_store::NewAuditEvent {
            at: st.now(),
            actor: by.caller.subject.clone(),
            event: "access_request.submitted".to_owned(),
            approval_id: Some(task.to_owned()),
            detail,
        })
        .await
    {
        tracing::error!(error = %e, task, "cannot audit an access request");
    }
}

/// `POST /access/v1/requests`.
pub async fn submit(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Problem> {
    let mut value: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::invalid_request(format!("the body is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_request(
            "the body is not an access request: a JSON object is expected",
        )
        .into());
    }
    let sub: Submission = serde_json::from_value(value.clone()).map_err(|e| {
        ApiError::invalid_request(format!("the body is not an access request: {e}"))
    })?;
    if sub.items.is_some() && (sub.resource.is_some() || sub.action.is_some()) {
        return Err(ApiError::invalid_request(
            "`resource` and `action` must be omitted when `items` is present: each item names its own",
        )
        .into());
    }
    let key = idempotency_key(&headers)?;
    let v = st.version();
    let mut pep = Pep::new(&headers);
    let context = sub.context.clone().unwrap_or_default();
    let probe = Evaluation::new(sub.subject.clone(), None, None, None);
    let subject = authzen::subject_of(&st, &v, &mut pep, &probe).await?;
    let (caller, actor) = submitter(&st, &mut pep, &subject).await?;
    check_actor(sub.client.as_ref(), actor.as_deref())?;
    let caller_key = super::auth::identity_key(&caller);
    // The body as the key remembers it: canonical (RFC 8785), and a bearer
    // subject by who it is, so a retry with a refreshed token is the same
    // request.
    if matches!(subject, Subject::Token(_)) {
        value["subject"]["id"] = json!(caller_key);
    }
    let canonical = serde_json_canonicalizer::to_string(&value)
        .map_err(|e| ApiError::invalid_request(format!("the body cannot be canonicalized: {e}")))?;
    let body_hash = crate::archive::sha256_hex(canonical.as_bytes());
    if let Some(asked) = sub.requested_access.as_ref().filter(|r| !r.is_empty()) {
        tracing::debug!(
            ?asked,
            "requested_access is noted, not acted on: approvals last what the policy says"
        );
    }

    // A retry under the same key finds its task, however it has moved on.
    if let Some(key) = &key
        && let Some(seen) = st.store.find_access_request(&caller_key, key).await?
    {
        return replay(&st, &seen, &body_hash).await;
    }
    let by = Submitter {
        caller,
        actor,
        subject,
        key,
        body_hash,
    };
    if let Some(items) = sub.items {
        let raw = value["items"].as_array().cloned().unwrap_or_default();
        return bulk::submit(&st, &v, &by, items, &raw, &context, sub.callback).await;
    }

    let denial = sub.denial.ok_or_else(|| {
        Problem::new(
            PROBLEM_INVALID_BINDING,
            400,
            "`denial` is required: echo the requestable denial's binding",
        )
    })?;
    let asked = ask(&st, &v, &by, sub.action, sub.resource, &context, &denial).await?;
    let mut callback = callback_of(&st, &by.caller, sub.callback)?;
    let (mut approval, _) = open(&st, &v, &by, &asked).await?;
    let keep_until = approval
        .expires_at
        .max(st.now())
        .saturating_add(KEEP_KEYS_FOR);
    if let Some(record) = by.key_record(&approval.id, None, st.now(), keep_until) {
        let stands = st.store.record_access_request(&record).await?;
        if stands.approval_id != approval.id
            || stands.bundle_id.is_some()
            || stands.body_hash != by.body_hash
        {
            // A concurrent submission under the same key came first.
            return replay(&st, &stands, &by.body_hash).await;
        }
    }
    if let Some(cb) = callback.as_mut() {
        cb.status_endpoint = status_endpoint(&st, &approval.id);
        if !st
            .store
            .add_task_callback(&approval.id, cb, st.now())
            .await?
        {
            // Decided meanwhile: the answer below says so.
            approval = st
                .store
                .get_approval(&approval.id)
                .await?
                .unwrap_or(approval);
        }
    }
    audit_submission(
        &st,
        &by,
        &approval.id,
        json!({
            "evaluation_id": asked.evaluation_id,
            "callback": callback.as_ref().map(|c| &c.hook),
        }),
    )
    .await;
    tracing::info!(
        task = %approval.id,
        evaluation = %asked.evaluation_id,
        evaluated_at = ?denial.evaluated_at,
        reason = ?denial.reason,
        template = ?denial.template,
        "access request submitted"
    );
    let code = submitted(&st, std::slice::from_ref(&approval));
    task_response(&st, &approval, code)
}

/// The answer to a submission under an idempotency key already recorded:
/// the same task for the same body, `duplicate_request` for another.
async fn replay(
    st: &AppState,
    seen: &AccessRequestKey,
    body_hash: &str,
) -> Result<Response, Problem> {
    if seen.body_hash != body_hash {
        return Err(Problem::new(
            PROBLEM_DUPLICATE,
            409,
            "this Idempotency-Key was used with a different access request",
        ));
    }
    if let Some(bundle) = &seen.bundle_id {
        return bulk::replay(st, bundle).await;
    }
    let a = st
        .store
        .get_approval(&seen.approval_id)
        .await?
        .ok_or_else(|| ApiError::internal("an access request's approval is gone"))?;
    task_response(st, &a, submitted(st, std::slice::from_ref(&a)))
}
