//! A tool call that needs approval.
//!
//! The gateway asks for it on the caller's behalf (the same approval CIBA
//! and AuthZEN access requests open: one per requester, client and action
//! digest) and answers with what the negotiated protocol revision offers,
//! pointing the user at the approval's page (the portal's when it is
//! configured):
//!
//! - 2026-07-28 (multi round-trip requests): an input-required result with
//!   a URL-mode elicitation and a `requestState` Greenlight signs (the
//!   approval, the requester and client, the action digest, the tool). The
//!   client retries with it echoed; while the approval is pending a retry
//!   waits up to `[mcp] wait` seconds for the decision, then answers with
//!   the state alone ("still waiting");
//! - 2025-11-25: the `-32042` URL-elicitation-required error; the client
//!   retries the same call once the user has been there.
//!
//! An approved call is forwarded once: its use is claimed in the store
//! first (shared with CIBA's collection and AuthZEN re-evaluation), so a
//! replayed retry finds it used and must be approved again, unless the
//! policy grants a window (then the grant allows it, as any request). A
//! retry with other arguments is another action: the state is refused
//! for it. A retry without a state finds the caller's approved, unused
//! approval of the same action within `approvals.collect_within`.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::response::Response;
use greenlight_store::{Approval, Status};
use greenlight_types::Challenge;
use serde_json::{Value, json};

use super::super::AppState;
use super::super::approval_use::Claim;
use super::super::arap::binding::{requester_claims, requester_from_claims, requester_of};
use super::super::auth::{token_actor, voter};
use super::super::oauth::ask::{Note, open_for};
use super::super::state::seconds;
use super::{
    Gateway, MODERN_REVISION, URL_ELICITATION_REQUIRED, forward_json, rpc_error, rpc_result,
    tool_error,
};

/// `typ` of the `requestState` the gateway signs.
pub const STATE_TYP: &str = "greenlight-mcp-request-state+jwt";

/// The key of the gateway's elicitation in `inputRequests` and
/// `inputResponses`.
pub const INPUT_KEY: &str = "io.greenlight/approval";

/// How often a waiting retry reads the approval again.
const WAIT_STEP: Duration = Duration::from_millis(250);

/// Which answer the caller's protocol revision takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Revision {
    /// 2026-07-28: multi round-trip requests.
    Modern,
    /// Earlier revisions (2025-11-25): URL elicitation by error.
    Handshake,
}

/// The revision a request speaks: the `MCP-Protocol-Version` header, or
/// the per-request `_meta` of 2026-07-28.
pub fn revision(headers: &HeaderMap, message: &Value) -> Revision {
    let header = headers
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok());
    let meta = message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"].as_str();
    if header == Some(MODERN_REVISION) || meta == Some(MODERN_REVISION) {
        Revision::Modern
    } else {
        Revision::Handshake
    }
}

/// Removes the gateway's own round-trip members from a call before it is
/// forwarded: its `requestState` (only one Greenlight signed) and its
/// entry of `inputResponses`.
pub fn strip(message: &mut Value) {
    let Some(params) = message.get_mut("params").and_then(Value::as_object_mut) else {
        return;
    };
    let ours = params
        .get("requestState")
        .and_then(Value::as_str)
        .and_then(|s| greenlight_core::jws::parse(s).ok())
        .is_some_and(|j| j.typ.as_deref() == Some(STATE_TYP));
    if ours {
        params.remove("requestState");
    }
    if let Some(Value::Object(responses)) = params.get_mut("inputResponses") {
        responses.remove(INPUT_KEY);
        if responses.is_empty() {
            params.remove("inputResponses");
        }
    }
}

/// A tool call that needs approval, as it came.
pub struct Call<'a> {
    /// The request's headers (forwarded when the call goes on).
    pub headers: &'a HeaderMap,
    /// The caller's token.
    pub token: &'a str,
    /// The tool.
    pub name: &'a str,
    /// The JSON-RPC message.
    pub message: Value,
    /// The caller's protocol revision.
    pub revision: Revision,
    /// The decision's policy hash.
    pub policy_hash: String,
    /// Whether the client takes URL-mode elicitation: `Some(false)` when
    /// it said it does not (it then gets the link in a tool error).
    pub url_elicitation: Option<bool>,
}

/// Whether the client of a call takes URL-mode elicitation, as far as it
/// said: 2026-07-28 says it on every request (`_meta`'s client
/// capabilities), 2025-11-25 at `initialize` (the session's). `None` when
/// it said nothing the gateway saw.
pub fn takes_url_elicitation(session: Option<&super::Session>, message: &Value) -> Option<bool> {
    let caps = &message["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"];
    if caps.is_object() {
        return Some(caps["elicitation"]["url"].is_object());
    }
    session.map(|s| s.url_elicitation)
}

/// What the state a retry carries says.
struct State {
    approval_id: String,
    digest: String,
    requester: greenlight_store::Voter,
}

/// The gateway's state in `message`, verified: `None` when the call
/// carries none of Greenlight's, `Err` when one does not verify.
fn our_state(st: &AppState, gw: &Gateway, message: &Value) -> Option<Result<State, String>> {
    let text = message["params"]["requestState"].as_str()?;
    let jws = greenlight_core::jws::parse(text).ok()?;
    if jws.typ.as_deref() != Some(STATE_TYP) {
        return None;
    }
    let check = || {
        let claims = st.signer().verify_as(STATE_TYP, text)?;
        if claims["iss"] != super::super::arap::pdp(st).as_str()
            || claims["aud"] != gw.resource.as_str()
        {
            return Err("it was issued by or for another gateway".to_owned());
        }
        if st.now() >= claims["exp"].as_i64().unwrap_or(0) {
            return Err("it has expired".to_owned());
        }
        let requester =
            requester_from_claims(&claims["requester"]).ok_or("it names no requester")?;
        Ok(State {
            approval_id: claims["approval_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            digest: claims["act_digest"].as_str().unwrap_or_default().to_owned(),
            requester,
        })
    };
    Some(check())
}

/// Signs the state for a pending `approval` of tool `name`.
fn sign_state(st: &AppState, gw: &Gateway, a: &Approval, name: &str) -> Result<String, String> {
    let collect = seconds(st.settings.approvals.collect_within());
    let claims = json!({
        "iss": super::super::arap::pdp(st),
        "aud": gw.resource,
        "iat": st.now(),
        "exp": a.expires_at.saturating_add(collect),
        "approval_id": a.id,
        "act_digest": a.action_digest,
        "requester": requester_claims(&requester_of(a)),
        "tool": name,
    });
    st.signer()
        .sign_as(STATE_TYP, &claims)
        .map_err(|e| e.to_string())
}

/// Where the user follows the approval: the portal's page for it, or the
/// approvals API.
fn approval_url(st: &AppState, id: &str) -> String {
    super::super::portal::approval_link(st, id)
        .unwrap_or_else(|| st.url(&format!("/v1/approvals/{id}")))
}

/// Answers a call that needs the approval `ch` names.
pub async fn required(st: &AppState, gw: &Gateway, call: Call<'_>, ch: &Challenge) -> Response {
    let id = call.message["id"].clone();
    let requester = voter(&ch.requester);
    if let Some(state) = our_state(st, gw, &call.message) {
        let state = match state {
            Ok(s) => s,
            Err(why) => {
                return tool_error(
                    &id,
                    call.revision,
                    &format!(
                        "Greenlight refused this call: its approval state cannot be used ({why})"
                    ),
                );
            }
        };
        if state.requester != requester {
            return tool_error(
                &id,
                call.revision,
                "Greenlight refused this call: its approval state was given to another requester or client",
            );
        }
        if state.digest != ch.action.digest {
            return tool_error(
                &id,
                call.revision,
                "Greenlight refused this call: its approval state is for another call (other arguments); call again without it to ask for approval of this one",
            );
        }
        let declined = call.message["params"]["inputResponses"][INPUT_KEY]["action"]
            .as_str()
            .is_some_and(|a| a == "decline" || a == "cancel");
        return retried(st, gw, call, ch, &state.approval_id, declined).await;
    }
    // No state: the caller's approved, unused approval of this action, if
    // any (a 2025-11-25 retry, or a new round after approval).
    let since = st
        .now()
        .saturating_sub(seconds(st.settings.approvals.collect_within()));
    match st
        .store
        .find_unused_approval(&requester, &ch.action.digest, since)
        .await
    {
        Ok(Some(a)) if a.obligation == ch.obligation => return use_once(st, gw, call, &a).await,
        Ok(_) => {}
        Err(e) => return unavailable(&id, call.revision, &e),
    }
    let approval = match open_for(
        st,
        &st.version(),
        ch,
        call.policy_hash.clone(),
        token_actor(call.token),
        Note {
            binding_message: Some(format!("MCP tool call `{}`", call.name)),
            reason: None,
            requested_expiry: None,
        },
    )
    .await
    {
        Ok(a) => a,
        Err(e) => {
            return tool_error(
                &id,
                call.revision,
                &format!(
                    "Greenlight could not ask for approval of this call: {}",
                    e.description
                ),
            );
        }
    };
    ask(st, gw, &call, &approval)
}

/// The answer that sends the user to `approval`'s page.
fn ask(st: &AppState, gw: &Gateway, call: &Call<'_>, approval: &Approval) -> Response {
    let id = call.message["id"].clone();
    let url = approval_url(st, &approval.id);
    let why = if approval.obligation.message.is_empty() {
        format!("{} needs approval", approval.action)
    } else {
        approval.obligation.message.clone()
    };
    let message = format!(
        "{why}. Approval `{}` is asked of {}: follow it at the link; the call goes through once it is approved.",
        approval.id,
        approval
            .obligation
            .approvers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    if call.url_elicitation == Some(false) {
        // A client that cannot show a link as an elicitation is not sent
        // one (MCP: only to clients that declared it): the link goes in a
        // tool error, and the same call again, once approved, goes through.
        return tool_error(
            &id,
            call.revision,
            &format!("{message} Open {url}, then make the same call again."),
        );
    }
    match call.revision {
        Revision::Modern => {
            let state = match sign_state(st, gw, approval, call.name) {
                Ok(s) => s,
                Err(e) => return unavailable(&id, call.revision, &e),
            };
            rpc_result(
                &id,
                json!({
                    "resultType": "input_required",
                    "inputRequests": { INPUT_KEY: {
                        "method": "elicitation/create",
                        "params": { "mode": "url", "message": message, "url": url },
                    } },
                    "requestState": state,
                }),
            )
        }
        Revision::Handshake => rpc_error(
            &id,
            URL_ELICITATION_REQUIRED,
            &format!("This tool call needs approval: {url}"),
            Some(json!({ "elicitations": [{
                "mode": "url",
                "elicitationId": approval.id,
                "url": url,
                "message": message,
            }] })),
        ),
    }
}

/// A retry carrying the state of approval `approval_id`.
async fn retried(
    st: &AppState,
    gw: &Gateway,
    call: Call<'_>,
    ch: &Challenge,
    approval_id: &str,
    declined: bool,
) -> Response {
    let id = call.message["id"].clone();
    // A bounded number of retries wait at once; beyond, one answers now.
    let permit = if declined {
        None
    } else {
        gw.waiters.try_acquire().ok()
    };
    let wait = if permit.is_some() { gw.wait() } else { 0 };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let a = loop {
        let a = match st.store.get_approval(approval_id).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return tool_error(
                    &id,
                    call.revision,
                    "Greenlight refused this call: its approval is unknown",
                );
            }
            Err(e) => return unavailable(&id, call.revision, &e),
        };
        if a.status_at(st.now()) != Status::Pending || tokio::time::Instant::now() >= deadline {
            break a;
        }
        tokio::time::sleep(WAIT_STEP).await;
    };
    drop(permit);
    if declined {
        // The user said no: the call is not made, whatever the approvers
        // did meanwhile, and the request is withdrawn (approved or not), so
        // the same call again cannot find it.
        let status = a.status_at(st.now());
        if status == Status::Pending || (status == Status::Approved && a.delivered_at.is_none()) {
            let tell =
                |done: &Approval| super::super::approvals::outcome_deliveries(st, done, st.now());
            if let Err(e) = st
                .store
                .revoke_approval_announced(
                    &a.id,
                    &voter(&ch.requester),
                    Some("declined in the MCP client"),
                    st.now(),
                    &tell,
                )
                .await
            {
                tracing::warn!(error = %e, approval = %a.id, "cannot cancel a declined approval");
            }
            st.notifier.wake();
        }
        return tool_error(
            &id,
            call.revision,
            "You declined to ask for approval: the call was not made",
        );
    }
    match a.status_at(st.now()) {
        // Still waiting: the state alone says so, and the client retries.
        Status::Pending => match sign_state(st, gw, &a, call.name) {
            Ok(state) => rpc_result(
                &id,
                json!({ "resultType": "input_required", "requestState": state }),
            ),
            Err(e) => unavailable(&id, call.revision, &e),
        },
        Status::Approved if a.obligation != ch.obligation => tool_error(
            &id,
            call.revision,
            "Greenlight refused this call: it now needs another approval than the one given; call again without the state",
        ),
        Status::Approved => use_once(st, gw, call, &a).await,
        Status::Denied => tool_error(
            &id,
            call.revision,
            "Greenlight refused this call: an approver denied it",
        ),
        Status::Expired => tool_error(
            &id,
            call.revision,
            "Greenlight refused this call: nobody approved it in time",
        ),
        Status::Revoked => tool_error(
            &id,
            call.revision,
            "Greenlight refused this call: its approval was withdrawn",
        ),
    }
}

/// Claims the one use of approved `a` and forwards the call; a use
/// already claimed (a replay) is refused, and the upstream never sees it.
async fn use_once(st: &AppState, gw: &Gateway, call: Call<'_>, a: &Approval) -> Response {
    let id = call.message["id"].clone();
    match super::super::approval_use::claim(st, a, "mcp").await {
        Ok(Claim::Used) => {}
        Ok(Claim::TooLate) => {
            return tool_error(
                &id,
                call.revision,
                "Greenlight refused this call: its approval was not used soon enough; call again to ask anew",
            );
        }
        Ok(Claim::AlreadyUsed) => {
            return tool_error(
                &id,
                call.revision,
                "Greenlight refused this call: its approval was already used; call again to ask for a new one",
            );
        }
        Err(e) => return unavailable(&id, call.revision, &e),
    }
    tracing::info!(approval = %a.id, tool = %call.name, "approved tool call forwarded");
    let mut message = call.message;
    strip(&mut message);
    forward_json(gw, call.headers, &message).await
}

/// A store or signing failure: refused, said plainly.
fn unavailable(id: &Value, revision: Revision, e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "the MCP gateway cannot complete an approval step; refusing");
    tool_error(
        id,
        revision,
        "Greenlight refused this call: the approval service is unavailable",
    )
}
