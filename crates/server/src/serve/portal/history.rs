//! What was decided: approvals that left `pending`, with their votes and
//! reasons, the action token handed out and its use. Readable by the people
//! who took part (the requester and those who voted) and by the auditor
//! role; exportable as JSON lines.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use greenlight_store::{Approval, Vote, events};
use greenlight_types::Credential;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::{chrome, signed_in};
use super::session::Live;
use super::views::{self, HistoryPage, HistoryRow, when};
use super::{PageError, portal};
use crate::serve::AppState;
use crate::serve::approvals::{approval_json, is_requester};

/// Approvals the history page shows at once.
const PAGE: usize = 50;

/// Approvals one export holds; `Link: rel="next"` continues.
const EXPORT: usize = 200;

/// Whether `who` holds the auditor role the portal names, if any.
pub(super) fn is_auditor(st: &AppState, who: &Credential) -> bool {
    st.portal
        .as_ref()
        .and_then(|p| p.settings.auditor_role.as_deref())
        .is_some_and(|role| who.principal.roles.iter().any(|r| r == role))
}

/// Whether `who` took part in `a`: asked for it, or voted on it.
pub(super) fn took_part(a: &Approval, votes: &[Vote], who: &Credential) -> bool {
    is_requester(a, &who.principal)
        || votes.iter().any(|v| {
            v.approver_issuer == who.principal.issuer && v.approver == who.principal.subject
        })
}

/// `?after=ID`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct After {
    after: Option<String>,
}

/// Decided approvals `who` may read, newest first, after `after`: at most
/// `limit`, with their votes; and the `after` of the next page. The store
/// picks them (one query); an `after` that names no approval is an empty
/// page, so the answer never tells whether an id exists.
async fn readable(
    st: &AppState,
    who: &Credential,
    after: Option<String>,
    limit: usize,
) -> Result<(Vec<Read>, Option<String>), PageError> {
    let participant = (!is_auditor(st, who)).then_some((
        who.principal.issuer.as_str(),
        who.principal.subject.as_str(),
    ));
    let page = match st
        .store
        .list_decided(
            participant,
            after.as_deref(),
            u32::try_from(limit).unwrap_or(u32::MAX),
            st.now(),
        )
        .await
    {
        Err(greenlight_store::StoreError::NotFound { .. }) => Vec::new(),
        page => page?,
    };
    let next = (page.len() == limit)
        .then(|| page.last().map(|a| a.id.clone()))
        .flatten();
    let mut found = Vec::with_capacity(page.len());
    for a in page {
        let votes = st.store.votes(&a.id).await?;
        found.push((a, votes));
    }
    Ok((found, next))
}

/// A decided approval and its votes.
type Read = (Approval, Vec<Vote>);

/// The signed-in reader and up to `limit` approvals they may read after
/// `?after=`, with the next page's `after`; or the way to sign in.
async fn page(
    st: &AppState,
    headers: &HeaderMap,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
    limit: usize,
) -> Result<Result<(Live, Vec<Read>, Option<String>), Response>, PageError> {
    let portal = portal(st)?;
    let Query(q) = query.map_err(|e| PageError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let l = match signed_in(st, portal, headers, "/portal/history").await? {
        Ok(l) => l,
        Err(to_sign_in) => return Ok(Err(to_sign_in)),
    };
    let (found, next) = readable(st, &l.who, q.after, limit).await?;
    Ok(Ok((l, found, next)))
}

/// When the action token of `a` was used, from the audit log (which,
/// unlike the replay ledger, is never purged).
async fn consumed_at(st: &AppState, a: &Approval) -> Result<Option<i64>, PageError> {
    let Some(jti) = &a.delivered_jti else {
        return Ok(None);
    };
    Ok(st
        .store
        .audit_for(&a.id)
        .await?
        .iter()
        .find(|e| e.event == events::TOKEN_CONSUMED && e.detail["jti"].as_str() == Some(jti))
        .map(|e| e.at))
}

/// `GET /portal/history`: decided approvals the signed-in person took part
/// in (all of them for an auditor), newest first.
pub(super) async fn history(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let (l, found, next) = match page(&st, &headers, query, PAGE).await? {
        Ok(page) => page,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let now = st.now();
    let rows = found
        .into_iter()
        .map(|(a, votes)| HistoryRow {
            status: a.status_at(now).to_string(),
            action: a.action.clone(),
            requester: a.requester.clone(),
            votes: votes
                .iter()
                .map(|v| format!("{} {}", v.approver, v.decision.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
            decided: a.decided_at.map(when).unwrap_or_default(),
            token: a.delivered_jti.clone().unwrap_or_default(),
            id: a.id,
        })
        .collect();
    Ok(views::render(
        StatusCode::OK,
        &HistoryPage {
            chrome: chrome(&l),
            auditor: is_auditor(&st, &l.who),
            rows,
            next: next.unwrap_or_default(),
        },
    ))
}

/// `GET /portal/history.jsonl`: the same approvals as JSON lines, each
/// with its votes, the action token handed out and when it was used; at
/// most [`EXPORT`] per answer, the rest after a `Link: <…>; rel="next"`.
pub(super) async fn export(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<After>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let (_, found, next) = match page(&st, &headers, query, EXPORT).await? {
        Ok(page) => page,
        Err(to_sign_in) => return Ok(to_sign_in),
    };
    let now = st.now();
    let mut out = String::new();
    for (a, votes) in found {
        let mut v = approval_json(&a, now);
        v["votes"] = serde_json::to_value(&votes).unwrap_or(Value::Null);
        v["token"] = json!({
            "jti": a.delivered_jti,
            "delivered_at": a.delivered_at,
            "consumed_at": consumed_at(&st, &a).await?,
        });
        out.push_str(&v.to_string());
        out.push('\n');
    }
    let mut response = (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"greenlight-history.jsonl\"",
            ),
        ],
        out,
    )
        .into_response();
    if let Some(next) = next
        && let Ok(link) = HeaderValue::from_str(&format!(
            "</portal/history.jsonl?after={next}>; rel=\"next\""
        ))
    {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// The action token of a decided approval as the detail page shows it:
/// its id, when it was handed out, when it was used.
pub(super) async fn token_line(st: &AppState, a: &Approval) -> Result<String, PageError> {
    let Some(jti) = &a.delivered_jti else {
        return Ok(String::new());
    };
    let delivered = a.delivered_at.map(when).unwrap_or_default();
    Ok(match consumed_at(st, a).await? {
        Some(at) => format!("{jti}, handed out {delivered}, used {}", when(at)),
        None => format!("{jti}, handed out {delivered}, not used"),
    })
}
