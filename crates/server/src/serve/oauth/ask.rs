//! Asking for approval of one action, the step CIBA's `bc-authorize` and
//! token exchange share: the action named in `authorization_details` is
//! decided again with the caller's own token (a gateway's verdict is never
//! trusted), and the decision's typed fields say who asks and what.

use greenlight_store::{Approval, NewApproval};
use greenlight_types::{AccessRequest, Allowance, Verdict};
use serde_json::{Value, json};

use super::super::auth::{token_actor, voter};
use super::super::state::seconds;
use super::super::{ApiError, AppState};

/// A 400 `invalid_authorization_details`.
pub(super) fn details_error(description: impl Into<String>) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "invalid_authorization_details",
        description,
    )
}

/// The action an `authorization_details` document names, as the client
/// sent it (decided again before anything is believed).
struct Asked {
    action: String,
    resource_type: String,
    resource_id: String,
    params: Value,
    digest: Option<String>,
}

impl Asked {
    /// The access request that decides this action for `token`'s bearer.
    fn request(self, token: &str) -> AccessRequest {
        AccessRequest {
            token: token.to_owned(),
            action: self.action,
            resource_type: self.resource_type,
            resource_id: self.resource_id,
            resource_properties: None,
            context: Some(self.params.to_string()),
            entities: None,
        }
    }
}

fn parse_details(text: &str) -> Result<Asked, ApiError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| details_error(format!("authorization_details is not JSON: {e}")))?;
    details_of(&v)
}

fn details_of(v: &Value) -> Result<Asked, ApiError> {
    let entries = v
        .as_array()
        .ok_or_else(|| details_error("authorization_details must be a JSON array"))?;
    let [entry] = entries.as_slice() else {
        return Err(details_error(format!(
            "authorization_details must name exactly one action, it names {}",
            entries.len()
        )));
    };
    if entry["type"] != greenlight_types::AUTHORIZATION_DETAILS_TYPE {
        return Err(details_error(format!(
            "authorization_details type must be `{}`",
            greenlight_types::AUTHORIZATION_DETAILS_TYPE
        )));
    }
    let text = |v: &Value, what: &str| {
        v.as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| details_error(format!("authorization_details needs {what}")))
    };
    let actions = entry["actions"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let [action] = actions else {
        return Err(details_error(
            "authorization_details needs exactly one entry in `actions`",
        ));
    };
    let params = entry.get("params").cloned().unwrap_or_else(|| json!({}));
    if !params.is_object() {
        return Err(details_error(
            "authorization_details `params` must be an object",
        ));
    }
    Ok(Asked {
        action: text(action, "an action name")?,
        resource_type: text(&entry["resource"]["type"], "`resource.type`")?,
        resource_id: text(&entry["resource"]["id"], "`resource.id`")?,
        params,
        digest: entry["action_digest"].as_str().map(str::to_owned),
    })
}

/// What asking led to.
pub(super) enum Opened {
    /// Policy allows the action outright: no approval is needed.
    Allowed(Box<Allowance>),
    /// An approval is pending (new, or the one already open).
    Pending(Box<Approval>),
}

/// What the client sends with an asked-for action.
pub(super) struct Ask<'a> {
    /// The caller's base access token.
    pub token: &'a str,
    /// RFC 9396 `authorization_details`, as text.
    pub details: &'a str,
    /// Shown to approvers.
    pub binding_message: Option<String>,
    /// Why the requester wants to act.
    pub reason: Option<String>,
    /// Seconds the requester is willing to wait; never beyond the policy's TTL.
    pub requested_expiry: Option<u64>,
}

/// Decides the asked-for action with the caller's own token (one
/// verification), then opens an approval or returns the one already
/// pending for the same requester and action. A new approval is announced
/// to the webhooks, its deliveries committed with it.
pub(super) async fn open_approval(st: &AppState, ask: Ask<'_>) -> Result<Opened, ApiError> {
    let asked = parse_details(ask.details)?;
    let digest = asked.digest.clone();
    let request = asked.request(ask.token);
    let v = st.version();
    let decision = st.decide(&v, |p, now| p.evaluate(&request, now)).await;
    let policy_hash = decision.policy_hash;
    let challenge = match decision.verdict {
        Verdict::ApprovalRequired(ch) => ch,
        // An action token decides too, but it is spent on its one action:
        // it never asks for an approval or is exchanged for another token
        // (that would turn one use into as many as asked for, and outlive
        // the approval's revocation).
        Verdict::Allow(a) if a.consume.is_some() || a.approval_id.is_some() => {
            return Err(ApiError::invalid_request(
                "an action token cannot ask for an approval or another token: ask with your access token",
            ));
        }
        Verdict::Allow(a) => {
            if digest.as_ref().is_some_and(|d| *d != a.action.digest) {
                return Err(details_error(
                    "action_digest does not match the action, resource and params given",
                ));
            }
            return Ok(Opened::Allowed(Box::new(a)));
        }
        Verdict::Deny(d) => return Err(ApiError::from_denial(&d)),
        // Only the sign-in is short: no approver is asked for that.
        Verdict::StepUpRequired(s) => return Err(ApiError::step_up(&s)),
    };
    if digest
        .as_ref()
        .is_some_and(|d| *d != challenge.action.digest)
    {
        return Err(details_error(
            "action_digest does not match the action, resource and params given",
        ));
    }
    let approval = open_for(
        st,
        &v,
        &challenge,
        policy_hash,
        token_actor(ask.token),
        Note {
            binding_message: ask.binding_message,
            reason: ask.reason,
            requested_expiry: ask.requested_expiry,
        },
    )
    .await?;
    Ok(Opened::Pending(Box::new(approval)))
}

/// What the requester tells the approvers with an ask.
pub(in crate::serve) struct Note {
    /// Shown to approvers.
    pub binding_message: Option<String>,
    /// Why the requester wants to act.
    pub reason: Option<String>,
    /// Seconds the requester is willing to wait; never beyond the policy's TTL.
    pub requested_expiry: Option<u64>,
}

/// Opens an approval for the action `challenge` (a decision the server
/// made itself) names, or returns the one already pending for the same
/// requester, client and action, whichever protocol asked for it: CIBA,
/// token exchange and AuthZEN access requests share it, so one approval
/// is asked for and counted once. A new approval is announced to the
/// webhooks, its deliveries committed with it.
pub(in crate::serve) async fn open_for(
    st: &AppState,
    v: &super::super::live::Version,
    challenge: &greenlight_types::Challenge,
    policy_hash: String,
    actor: Option<String>,
    note: Note,
) -> Result<Approval, ApiError> {
    Ok(open_or_join(st, v, challenge, policy_hash, actor, note)
        .await?
        .0)
}

/// [`open_for`], saying whether the approval is new (`true`) or the one
/// already pending, joined.
pub(in crate::serve) async fn open_or_join(
    st: &AppState,
    v: &super::super::live::Version,
    challenge: &greenlight_types::Challenge,
    policy_hash: String,
    actor: Option<String>,
    note: Note,
) -> Result<(Approval, bool), ApiError> {
    let now = st.now();
    let who = &challenge.requester;
    let action = &challenge.action;
    // An approval, its token and its window belong to the client that
    // asked; with none named, every client of the person would share them
    // and the asking client could not be kept from voting.
    if who.client_id.is_empty() {
        return Err(ApiError::invalid_request(format!(
            "the token names no client (`client_id` or `azp`, or the issuer's `client_claim`): approvals are asked for by a client, which `{}`'s tokens must name",
            who.issuer
        )));
    }
    // Already approved for a window: no new approval, no announcement.
    if let Some(grant) = st
        .store
        .find_active_grant(&voter(who), &action.digest, now)
        .await?
    {
        return Err(ApiError::invalid_request(format!(
            "{action} is already approved (approval `{}`) until {}: act with your access token",
            grant.approval_id, grant.expires_at
        )));
    }
    let ttl = challenge.obligation.ttl_seconds.max(1);
    let wait = note.requested_expiry.map_or(ttl, |r| r.clamp(1, ttl));
    // A new approval's webhook deliveries commit with it.
    let announce = |a: &Approval| {
        let links = super::super::approvals::approval_links(st, &a.id);
        let v = serde_json::to_value(a).unwrap_or(Value::Null);
        st.notifier.announcements(&v, &links, now)
    };
    let (approval, created) = st
        .store
        .create_or_get_pending_announced(
            NewApproval {
                id: None,
                requester: who.subject.clone(),
                requester_issuer: who.issuer.clone(),
                client_id: who.client_id.clone(),
                action_digest: action.digest.clone(),
                action: action.name.clone(),
                authorization_details: challenge.authorization_details.clone(),
                obligation: challenge.obligation.clone(),
                binding_message: note.binding_message,
                reason: note.reason,
                policy_hash,
                expires_at: now.saturating_add(seconds(wait)),
                poll_interval_seconds: seconds(v.info().approvals.poll_interval_seconds.max(1)),
                requester_tenant: Some(who.tenant.clone()).filter(|t| !t.is_empty()),
                requester_actor: actor,
            },
            now,
            st.settings.approvals.quota(),
            &announce,
        )
        .await?;
    tracing::info!(auth_req_id = %approval.id, created, requester = %who.subject, action = %action.name, "approval requested");
    if created {
        st.metrics.approvals("requested", 1);
        st.notifier.wake();
    }
    Ok((approval, created))
}

/// Decides an approved action again with the token that collects it. The
/// action token is minted for that token's person, with its attributes,
/// so its decision must still be the approved one (the same action under
/// the same obligation): a token whose claims no longer lead there (other
/// attributes, another tenant, a weaker or older sign-in) collects
/// nothing, and its person must ask again.
pub(super) async fn still_approved(
    st: &AppState,
    token: &str,
    approval: &Approval,
) -> Result<(), ApiError> {
    let request = details_of(&approval.authorization_details)?.request(token);
    let v = st.version();
    let decision = st.decide(&v, |p, now| p.evaluate(&request, now)).await;
    let changed = |what: &str| {
        super::token_error(
            "invalid_grant",
            format!("{what}: this approval cannot be collected with this token; ask again"),
        )
    };
    match decision.verdict {
        Verdict::ApprovalRequired(ch)
            if ch.action.digest == approval.action_digest
                && ch.obligation == approval.obligation =>
        {
            Ok(())
        }
        Verdict::ApprovalRequired(_) => Err(changed(
            "the action now needs another approval than the one given",
        )),
        Verdict::StepUpRequired(s) => Err(ApiError::step_up(&s).at_token_endpoint()),
        Verdict::Deny(d) => Err(changed(&format!("the action is now refused ({d})"))),
        Verdict::Allow(_) => Err(changed("the action now needs no approval")),
    }
}

/// The CIBA answer for a pending approval.
pub(super) fn pending_json(approval: &Approval, now: i64) -> Value {
    json!({
        "auth_req_id": approval.id,
        "expires_in": (approval.expires_at - now).max(0),
        "interval": approval.poll_interval_seconds,
    })
}

/// The CIBA answer for a pending approval, with how the requester confirms
/// it in the portal when it is theirs to confirm.
pub(super) async fn pending_answer(
    st: &AppState,
    approval: &Approval,
    now: i64,
) -> Result<Value, ApiError> {
    let mut v = pending_json(approval, now);
    if let (Some(Value::Object(more)), Some(o)) = (
        super::super::portal::confirmation(st, approval).await?,
        v.as_object_mut(),
    ) {
        o.extend(more);
    }
    Ok(v)
}
