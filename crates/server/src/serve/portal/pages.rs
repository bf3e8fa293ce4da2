//! What a signed-in person sees and does: the approvals waiting for them,
//! one approval in full, their vote, and the code page through which a
//! requester reaches their own action.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use greenlight_store::{Approval, Decision, Status};
use greenlight_types::{Approver, Credential};
use serde::Deserialize;
use serde_json::Value;

use super::history::{is_auditor, token_line, took_part};
use super::session::{Live, live, posting};
use super::views::{self, Chrome, ConfirmPage, DetailPage, ListPage, Row, VoteRow, when};
use super::{PageError, Portal, portal};
use crate::serve::AppState;
use crate::serve::approvals::{cast, decidable, is_approver, is_requester, load, may_vote};
use crate::serve::shown::shown;

/// The most approvals the list shows at once.
const LIST_SHOWN: u32 = 100;

/// The signed-in person, or the way to sign in (then back to `here`).
pub(super) async fn signed_in(
    st: &AppState,
    portal: &Portal,
    headers: &HeaderMap,
    here: &str,
) -> Result<Result<Live, Response>, PageError> {
    Ok(match live(st, portal, headers).await? {
        Some(l) => Ok(l),
        None => Err(Redirect::to(&format!(
            "/portal/login?return_to={}",
            url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
        ))
        .into_response()),
    })
}

pub(super) fn chrome(l: &Live) -> Chrome {
    Chrome {
        user: Some(l.who.principal.subject.clone()),
        csrf: l.csrf.clone(),
    }
}

/// Whether `who` may see `a` in the portal: they are one of its approvers
/// (by group, tenant-scoped group, name, or as the requester confirming
/// their own action). Everyone else is told it does not exist.
fn visible(st: &AppState, a: &Approval, who: &Credential) -> bool {
    who.approver && is_approver(st, a, &who.principal).is_ok()
}

/// Whether `who` is the requester confirming their own action.
fn own(a: &Approval, who: &Credential) -> bool {
    is_requester(a, &who.principal) && a.obligation.approvers.contains(&Approver::Subject)
}

/// `not_found` for an approval the store does not have; any other failure
/// (the store unreachable) stays the error it is.
fn missing_or(e: crate::serve::ApiError, not_found: fn() -> PageError) -> PageError {
    if e.status == StatusCode::NOT_FOUND {
        not_found()
    } else {
        e.into()
    }
}

/// The one answer for an approval that does not exist or is not the
/// person's: it never repeats the id from the URL (a link could put any
/// words there).
fn not_found() -> PageError {
    PageError::not_found("no such approval waits for you")
}

/// The first RFC 9396 authorization detail of an approval: what it binds.
fn detail_of(a: &Approval) -> &Value {
    match &a.authorization_details {
        Value::Array(list) => list.first().unwrap_or(&Value::Null),
        other => other,
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key).and_then(Value::as_str).unwrap_or("").to_owned()
}

fn resource(a: &Approval) -> (String, String) {
    let r = detail_of(a).get("resource").cloned().unwrap_or(Value::Null);
    (text(&r, "type"), text(&r, "id"))
}

/// Distinct approvals still needed, given the votes so far.
fn needed(a: &Approval, votes: &[greenlight_store::Vote]) -> u32 {
    let approved = votes
        .iter()
        .filter(|v| v.decision == Decision::Approve)
        .count();
    a.obligation
        .quorum
        .saturating_sub(u32::try_from(approved).unwrap_or(u32::MAX))
}

/// `GET /portal`: the pending approvals the signed-in person may decide,
/// newest first.
pub(super) async fn list(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let l = match signed_in(&st, portal, &headers, "/portal").await? {
        Ok(l) => l,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let (approvals, next) = decidable(&st, &l.who, Some(Status::Pending), None, LIST_SHOWN).await?;
    let mut rows = Vec::with_capacity(approvals.len());
    for a in approvals {
        let votes = st.store.votes(&a.id).await?;
        let (rtype, rid) = resource(&a);
        rows.push(Row {
            needed: format!("{} of {}", needed(&a, &votes), a.obligation.quorum),
            action: a.action.clone(),
            message: a.obligation.message.clone(),
            resource: shown(&format!("{rtype} {rid}")),
            requester: shown(&a.requester),
            actor: shown(a.requester_actor.as_deref().unwrap_or_default()),
            client: shown(&a.client_id),
            expires: when(a.expires_at),
            own: own(&a, &l.who),
            id: a.id,
        });
    }
    Ok(views::render(
        StatusCode::OK,
        &ListPage {
            chrome: chrome(&l),
            rows,
            more: next.is_some(),
        },
    ))
}

/// `GET /portal/approvals/{id}`: everything the approval binds, who asks,
/// the votes so far, and the form.
pub(super) async fn detail(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let here = format!("/portal/approvals/{id}");
    let l = match signed_in(&st, portal, &headers, &here).await? {
        Ok(l) => l,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let a = load(&st, &id).await.map_err(|e| missing_or(e, not_found))?;
    let votes = st.store.votes(&id).await?;
    let now = st.now();
    let pending = a.status_at(now) == Status::Pending;
    // Pending: those who may decide it. Decided: those who took part.
    // Always: an auditor, to read.
    let readable = if pending {
        visible(&st, &a, &l.who)
    } else {
        took_part(&a, &votes, &l.who)
    };
    if !readable && !is_auditor(&st, &l.who) {
        return Err(not_found());
    }
    let allowed = may_vote(&st, &a, &l.who, st.clock.now());
    // Confirming one's own action takes a sign-in just now: the page says
    // so and links to a new sign-in that comes back here (a link, not a
    // redirect: the person sees why, and no loop can start).
    let (notice, fresh_link) = match &allowed {
        Err(why) if pending && own(&a, &l.who) => (
            why.clone(),
            format!(
                "/portal/login?fresh=1&return_to={}",
                url::form_urlencoded::byte_serialize(here.as_bytes()).collect::<String>()
            ),
        ),
        _ => (String::new(), String::new()),
    };
    let token = token_line(&st, &a).await?;
    let d = detail_of(&a);
    let (resource_type, resource_id) = resource(&a);
    let params = d
        .get("params")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (shown(k), shown(&v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let page = DetailPage {
        chrome: chrome(&l),
        action: a.action.clone(),
        message: a.obligation.message.clone(),
        resource_type: shown(&resource_type),
        resource_id: shown(&resource_id),
        locations: d
            .get("locations")
            .and_then(Value::as_array)
            .map(|l| l.iter().filter_map(Value::as_str).map(shown).collect())
            .unwrap_or_default(),
        params,
        requester: shown(&a.requester),
        actor: shown(a.requester_actor.as_deref().unwrap_or_default()),
        requester_issuer: shown(&a.requester_issuer),
        client: shown(&a.client_id),
        tenant: shown(a.requester_tenant.as_deref().unwrap_or_default()),
        binding_message: shown(a.binding_message.as_deref().unwrap_or_default()),
        reason: shown(a.reason.as_deref().unwrap_or_default()),
        status: a.status_at(now).to_string(),
        created: when(a.created_at),
        expires: when(a.expires_at),
        grant: match a.obligation.grant {
            greenlight_types::GrantMode::Once => "once".to_owned(),
            greenlight_types::GrantMode::Window => {
                format!("for {} seconds", a.obligation.window_seconds)
            }
        },
        needed: needed(&a, &votes),
        quorum: a.obligation.quorum,
        digest: a.action_digest.clone(),
        can_vote: pending && allowed.is_ok(),
        reason_required: a.obligation.reason_required,
        own: own(&a, &l.who),
        notice,
        fresh_link,
        token,
        votes: votes
            .into_iter()
            .map(|v| VoteRow {
                who: shown(&v.approver),
                issuer: shown(&v.approver_issuer),
                client: shown(&v.approver_client),
                decision: v.decision.as_str().to_owned(),
                reason: shown(v.reason.as_deref().unwrap_or_default()),
                at: when(v.at),
            })
            .collect(),
        id: a.id,
    };
    Ok(views::render(StatusCode::OK, &page))
}

/// The vote form.
#[derive(Debug, Deserialize)]
pub(super) struct VoteForm {
    csrf: String,
    /// The action digest the page showed.
    digest: String,
    /// `approve` or `deny`.
    decision: String,
    #[serde(default)]
    reason: String,
}

/// `POST /portal/approvals/{id}`: a vote, for exactly the action the page
/// showed.
pub(super) async fn vote(
    State(st): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: Result<Form<VoteForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let Form(form) = form.map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let l = posting(&st, portal, &headers, &form.csrf).await?;
    let a = load(&st, &id).await.map_err(|e| missing_or(e, not_found))?;
    if !visible(&st, &a, &l.who) {
        return Err(not_found());
    }
    if form.digest != a.action_digest {
        return Err(PageError::new(
            StatusCode::CONFLICT,
            format!(
                "this vote is for action digest `{}`, but approval `{id}` is for `{}`: reload the page and check what you decide",
                form.digest, a.action_digest
            ),
        ));
    }
    let decision = match form.decision.as_str() {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        other => {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!("decision `{other}` is not `approve` or `deny`"),
            ));
        }
    };
    cast(&st, &a, &l.who, decision, Some(form.reason)).await?;
    Ok(Redirect::to(&format!("/portal/approvals/{id}")).into_response())
}

/// `?code=`.
#[derive(Debug, Deserialize)]
pub(super) struct CodeQuery {
    code: Option<String>,
}

/// The letters of confirmation codes: consonants only, so no word is
/// spelt and no letter is mistaken for a digit (RFC 8628 §6.1).
pub const CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";

/// A code as typed, in the form it is stored: upper case, without the
/// dash or spaces people put in.
pub fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// `GET /portal/confirm?code=`: the page a requester opens on any device
/// to reach their own action by the code the application showed them.
pub(super) async fn confirm(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<CodeQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let portal = portal(&st)?;
    let Query(q) = query.map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let here = match &q.code {
        Some(c) => format!(
            "/portal/confirm?code={}",
            url::form_urlencoded::byte_serialize(c.as_bytes()).collect::<String>()
        ),
        None => "/portal/confirm".to_owned(),
    };
    let l = match signed_in(&st, portal, &headers, &here).await? {
        Ok(l) => l,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let Some(code) = q.code.filter(|c| !c.trim().is_empty()) else {
        return Ok(views::render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: chrome(&l),
                code: String::new(),
                error: String::new(),
            },
        ));
    };
    let normalized = normalize_code(&code);
    let found = match st.store.approval_for_code(&normalized).await? {
        Some(id) => st.store.get_approval(&id).await?,
        None => None,
    };
    match found {
        // Only the person whose action it is gets past the code.
        Some(a) if own(&a, &l.who) => {
            Ok(Redirect::to(&format!("/portal/approvals/{}", a.id)).into_response())
        }
        _ => {
            // Only a well-formed code is repeated on the page: a link
            // could put any words in `?code=`.
            let well_formed =
                normalized.len() == 8 && normalized.bytes().all(|b| CODE_ALPHABET.contains(&b));
            let (code, error) = if well_formed {
                let shown = format!("{}-{}", &normalized[..4], &normalized[4..]);
                let error = format!("No action of yours waits for code {shown}.");
                (shown, error)
            } else {
                (
                    String::new(),
                    "That is not a code: codes are eight letters, like BCDF-GHJK.".to_owned(),
                )
            };
            Ok(views::render(
                StatusCode::NOT_FOUND,
                &ConfirmPage {
                    chrome: chrome(&l),
                    code,
                    error,
                },
            ))
        }
    }
}
