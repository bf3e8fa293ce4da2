//! The two artifacts Greenlight signs for AuthZEN ARAP, each a compact
//! JWS under the server's own key with a `typ` of its own (so neither
//! passes for an action token, nor one for the other):
//!
//! - the **binding token** of a requestable denial: which requester
//!   (issuer, subject, client) was refused which exact action (the action
//!   digest over action, resource and parameters), until when. The access
//!   request endpoint verifies it and decides the submission again, so a
//!   submission binds only when the server itself reaches the same
//!   approval-required answer for the same requester and action;
//! - the **approval state** of an approved task: the approval, its
//!   requester and action digest, and `approved_until` as its `exp`. The
//!   PDP verifies it at re-evaluation and still reads the approval's
//!   current status in the store (revoked, already used).

use greenlight_store::{Approval, Voter};
use greenlight_types::Challenge;
use serde_json::{Map, Value, json};

use super::super::AppState;
use super::super::auth::voter;
use super::{PROBLEM_EXPIRED_DENIAL, PROBLEM_INVALID_BINDING, Problem, endpoint, pdp, rfc3339};

/// `typ` of a requestable denial's binding token.
pub const BINDING_TYP: &str = "greenlight-access-request-binding+jwt";

/// `typ` of an approved task's `approval.state`.
pub const STATE_TYP: &str = "greenlight-approval-state+jwt";

/// Who asked (issuer, subject, client: the store's [`Voter`]), as signed
/// artifacts name them: `iss`, `sub`, `client_id`.
pub fn requester_claims(who: &Voter) -> Value {
    json!({ "iss": who.issuer, "sub": who.subject, "client_id": who.client_id })
}

/// Read back from [`requester_claims`].
pub fn requester_from_claims(v: &Value) -> Option<Voter> {
    Some(Voter {
        issuer: v["iss"].as_str()?.to_owned(),
        subject: v["sub"].as_str()?.to_owned(),
        client_id: v["client_id"].as_str()?.to_owned(),
    })
}

/// The requester of a stored approval.
pub fn requester_of(a: &Approval) -> Voter {
    Voter {
        issuer: a.requester_issuer.clone(),
        subject: a.requester.clone(),
        client_id: a.client_id.clone(),
    }
}

/// The decision-context members that make an approval-required answer
/// requestable (ARAP §"Requestable Denial Context"): `evaluation_id`,
/// `evaluated_at`, `reason` and `access_request` with its binding token.
/// `members` are the context members the decision read (all of them are
/// the action's parameters, so all are authorization-relevant). `None`
/// when the challenge cannot be asked for (its token names no client) or
/// the token cannot be signed: the denial is then not requestable.
pub fn requestable(
    st: &AppState,
    ch: &Challenge,
    members: Vec<String>,
) -> Option<Map<String, Value>> {
    if ch.requester.client_id.is_empty() {
        return None;
    }
    let now = st.now();
    let lifetime = super::super::state::seconds(st.settings.access_requests.denial_lifetime());
    let expires = now.saturating_add(lifetime);
    let evaluation_id = format!("eval_{}", greenlight_store::new_id().ok()?);
    let claims = json!({
        "iss": pdp(st),
        "aud": endpoint(st),
        "iat": now,
        "exp": expires,
        "jti": evaluation_id,
        "evaluation_id": evaluation_id,
        "denial_expires_at": rfc3339(expires),
        "binding_context_members": members,
        "act_digest": ch.action.digest,
        "requester": requester_claims(&voter(&ch.requester)),
        "action": { "name": ch.action.name },
        "resource": { "type": ch.action.resource_type, "id": ch.action.resource_id },
    });
    let token = match st.signer().sign_as(BINDING_TYP, &claims) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "cannot sign a binding token; the denial is not requestable");
            return None;
        }
    };
    let message = if ch.obligation.message.is_empty() {
        format!("{} needs approval", ch.action)
    } else {
        ch.obligation.message.clone()
    };
    let mut out = Map::new();
    out.insert("evaluation_id".into(), json!(evaluation_id));
    out.insert("evaluated_at".into(), json!(rfc3339(now)));
    out.insert("reason".into(), json!("approval_required"));
    out.insert(
        "access_request".into(),
        json!({
            "endpoint": endpoint(st),
            "expires_at": rfc3339(expires),
            "binding_token": token,
            "display": { "title": "Approval required", "description": message },
        }),
    );
    Some(out)
}

/// What a verified binding token binds.
#[derive(Debug)]
pub struct Binding {
    /// The denied evaluation.
    pub evaluation_id: String,
    /// The action digest that was refused.
    pub digest: String,
    /// Who was refused.
    pub requester: Voter,
    /// The context members that are authorization-relevant.
    pub members: Vec<String>,
}

/// The submission's `denial` object.
#[derive(Debug, Default, serde::Deserialize)]
pub struct Denial {
    /// `context.evaluation_id` of the denial, echoed.
    pub evaluation_id: Option<String>,
    /// `context.evaluated_at`, echoed (informational).
    pub evaluated_at: Option<String>,
    /// `context.access_request.expires_at`, echoed.
    pub expires_at: Option<String>,
    /// `context.reason`, echoed (informational).
    pub reason: Option<String>,
    /// `context.access_request.binding_token`, echoed byte for byte.
    pub binding_token: Option<String>,
    /// `context.access_request.template`, echoed (Greenlight sets none).
    pub template: Option<String>,
}

fn invalid(detail: impl Into<String>) -> Problem {
    Problem::new(PROBLEM_INVALID_BINDING, 400, detail)
}

/// Verifies a submission's denial binding (ARAP §"Binding Token
/// Integrity"): the token is this server's, for this endpoint, unexpired
/// (`expired_denial` past it), and the echoed `expires_at` and
/// `evaluation_id` are the ones it protects.
pub fn verify(st: &AppState, denial: &Denial) -> Result<Binding, Problem> {
    let Some(token) = denial.binding_token.as_deref() else {
        return Err(invalid(
            "`denial.binding_token` is required: this PDP binds every requestable denial with one; echo it unchanged",
        ));
    };
    let claims = st
        .signer()
        .verify_as(BINDING_TYP, token)
        .map_err(|why| invalid(format!("the binding token is not valid: {why}")))?;
    if claims["iss"] != pdp(st).as_str() || claims["aud"] != endpoint(st).as_str() {
        return Err(invalid(
            "the binding token was issued by another PDP or for another access request endpoint",
        ));
    }
    let Some(expected) = claims["denial_expires_at"].as_str() else {
        return Err(invalid("the binding token protects no denial expiry"));
    };
    match denial.expires_at.as_deref() {
        None => return Err(invalid("`denial.expires_at` is required")),
        Some(e) if e != expected => {
            return Err(invalid(format!(
                "`denial.expires_at` `{e}` is not the expiry the denial gave"
            )));
        }
        Some(_) => {}
    }
    let evaluation_id = claims["evaluation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if denial
        .evaluation_id
        .as_deref()
        .is_some_and(|e| e != evaluation_id)
    {
        return Err(invalid(
            "`denial.evaluation_id` is not the evaluation the binding token binds",
        ));
    }
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if st.now() >= exp {
        return Err(Problem::new(
            PROBLEM_EXPIRED_DENIAL,
            410,
            format!("the requestable denial expired at {expected}; evaluate again"),
        ));
    }
    let (Some(digest), Some(requester)) = (
        claims["act_digest"].as_str(),
        requester_from_claims(&claims["requester"]),
    ) else {
        return Err(invalid("the binding token names no action or requester"));
    };
    let members = claims["binding_context_members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect();
    Ok(Binding {
        evaluation_id,
        digest: digest.to_owned(),
        requester,
        members,
    })
}

/// The `approval` of an approved task's result (ARAP §"Completion
/// Semantics"): its id, when it was given, until when it may be used, and
/// the signed state the PDP verifies. `until` is `approved_until`.
pub fn approval_result(st: &AppState, a: &Approval, until: i64) -> Result<Value, String> {
    let now = st.now();
    let claims = json!({
        "iss": pdp(st),
        "aud": pdp(st),
        "iat": now,
        "exp": until,
        "approval_id": a.id,
        "task_id": a.id,
        "act_digest": a.action_digest,
        "requester": requester_claims(&requester_of(a)),
    });
    let state = st
        .signer()
        .sign_as(STATE_TYP, &claims)
        .map_err(|e| e.to_string())?;
    Ok(json!({
        "id": a.id,
        "approved_at": a.decided_at.map(rfc3339),
        "approved_until": rfc3339(until),
        "state": state,
    }))
}

/// What a verified approval state says.
#[derive(Debug)]
pub struct State {
    /// The approval.
    pub approval_id: String,
    /// The approved action's digest.
    pub digest: String,
    /// Who it was approved for.
    pub requester: Voter,
}

/// Why a presented approval does not apply.
#[derive(Debug)]
pub enum Unusable {
    /// It cannot be verified or its binding does not match
    /// (`approval_unverifiable`).
    Unverifiable(String),
    /// It was valid but is no longer (`approval_expired`).
    Expired(String),
}

/// Verifies a presented `context.approval`: an object whose `state` this
/// server signed for itself, unexpired, naming the same approval as `id`.
pub fn verify_state(st: &AppState, presented: &Value) -> Result<State, Unusable> {
    let bad = |why: &str| Unusable::Unverifiable(why.to_owned());
    let Some(id) = presented["id"].as_str() else {
        return Err(bad("`context.approval.id` is missing"));
    };
    let Some(state) = presented["state"].as_str() else {
        return Err(bad(
            "`context.approval.state` is missing: echo the approval object of the task's result unchanged",
        ));
    };
    let claims = st
        .signer()
        .verify_as(STATE_TYP, state)
        .map_err(|why| Unusable::Unverifiable(format!("the approval state is not valid: {why}")))?;
    if claims["iss"] != pdp(st).as_str() || claims["aud"] != pdp(st).as_str() {
        return Err(bad("the approval state was issued by or for another PDP"));
    }
    if claims["approval_id"] != id {
        return Err(bad(
            "`context.approval.id` is not the approval its state names",
        ));
    }
    let (Some(digest), Some(requester)) = (
        claims["act_digest"].as_str(),
        requester_from_claims(&claims["requester"]),
    ) else {
        return Err(bad("the approval state names no action or requester"));
    };
    let exp = claims["exp"].as_i64().unwrap_or(0);
    if st.now() >= exp {
        return Err(Unusable::Expired(format!(
            "approval `{id}` could be used until {}",
            rfc3339(exp)
        )));
    }
    Ok(State {
        approval_id: id.to_owned(),
        digest: digest.to_owned(),
        requester,
    })
}
