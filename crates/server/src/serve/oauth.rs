//! The OAuth side: CIBA poll mode (`/oauth/bc-authorize`, `/oauth/token`),
//! the JWKS and RFC 8414 metadata.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use greenlight_core::{AccessRequest, Verdict};
use greenlight_store::{NewApproval, Status, StoreError};
use serde::Deserialize;
use serde_json::{Value, json};

use super::api::{authenticate, bearer};
use super::{ApiError, AppState};

/// The CIBA grant type (OpenID CIBA Core §10.1).
pub const CIBA_GRANT: &str = "urn:openid:params:grant-type:ciba";
/// The token-exchange grant type (RFC 8693 §2.1).
pub const EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3: an OAuth 2.0 access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

fn token_error(code: &'static str, description: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, description)
}

fn details_error(description: impl Into<String>) -> ApiError {
    token_error("invalid_authorization_details", description)
}

/// `POST /oauth/bc-authorize` form fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BcAuthorize {
    /// RFC 9396 `authorization_details`: one `urn:greenlight:action` entry.
    authorization_details: String,
    /// Shown to approvers.
    binding_message: Option<String>,
    /// Why the requester wants to act.
    reason: Option<String>,
    /// Seconds the requester is willing to wait; never beyond the policy's TTL.
    requested_expiry: Option<u64>,
    /// Accepted and ignored: CIBA clients send `openid`.
    scope: Option<String>,
}

/// The action an `authorization_details` document names.
struct Asked {
    action: String,
    resource_type: String,
    resource_id: String,
    params: Value,
    digest: Option<String>,
}

fn parse_details(text: &str) -> Result<Asked, ApiError> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| details_error(format!("authorization_details is not JSON: {e}")))?;
    let entries = v
        .as_array()
        .ok_or_else(|| details_error("authorization_details must be a JSON array"))?;
    let [entry] = entries.as_slice() else {
        return Err(details_error(format!(
            "authorization_details must name exactly one action, it names {}",
            entries.len()
        )));
    };
    if entry["type"] != greenlight_core::digest::AUTHORIZATION_DETAILS_TYPE {
        return Err(details_error(format!(
            "authorization_details type must be `{}`",
            greenlight_core::digest::AUTHORIZATION_DETAILS_TYPE
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

/// What evaluating an asked-for action led to.
enum Opened {
    /// Policy allows it outright: no approval is needed.
    Allowed {
        /// Who asks.
        who: greenlight_host::Principal,
        /// The decision's challenge-free details.
        authorization_details: Value,
        /// The action digest.
        digest: String,
    },
    /// An approval is pending (new or the one already open).
    Pending(greenlight_store::Approval),
}

/// What the client sends with an asked-for action.
struct Ask<'a> {
    token: &'a str,
    details: &'a str,
    binding_message: Option<String>,
    reason: Option<String>,
    requested_expiry: Option<u64>,
}

/// Re-evaluates an asked-for action with the caller's own token (a
/// gateway's verdict is never trusted), then opens an approval or returns the
/// one already pending for the same requester and action. A new approval is
/// announced to the webhooks in the background.
async fn open_approval(st: &AppState, ask: Ask<'_>) -> Result<Opened, ApiError> {
    let asked = parse_details(ask.details)?;
    let now = st.now();
    let now_u = u64::try_from(now).unwrap_or(0);
    let decision = st.policy.evaluate(
        &AccessRequest {
            token: ask.token.to_owned(),
            action: asked.action.clone(),
            resource_type: asked.resource_type.clone(),
            resource_id: asked.resource_id.clone(),
            resource_properties: None,
            context: Some(asked.params.to_string()),
        },
        now_u,
    );
    let challenge = match decision.verdict {
        Verdict::ApprovalRequired(ch) => ch,
        Verdict::Allow(_) => {
            let who = st
                .policy
                .authenticate(ask.token, now_u)
                .map_err(|d| ApiError::invalid_token(format!("{}: {}", d.code, d.message)))?;
            let target = greenlight_core::digest::Action {
                action: asked.action.clone(),
                resource_type: asked.resource_type.clone(),
                resource_id: asked.resource_id.clone(),
                params: asked.params.as_object().cloned().unwrap_or_default(),
            };
            let digest = target.digest();
            let audience = st
                .config
                .action_tokens
                .as_ref()
                .map(|a| a.audience.clone())
                .unwrap_or_default();
            return Ok(Opened::Allowed {
                who,
                authorization_details: target.authorization_details(&audience, &digest),
                digest,
            });
        }
        Verdict::Deny(d) if d.code.as_str().starts_with("token-") => {
            return Err(ApiError::invalid_token(format!(
                "{}: {}",
                d.code, d.message
            )));
        }
        Verdict::Deny(d) => return Err(ApiError::forbidden(format!("{}: {}", d.code, d.message))),
    };
    if let Some(digest) = &asked.digest
        && *digest != challenge.action_digest
    {
        return Err(details_error(
            "action_digest does not match the action, resource and params given",
        ));
    }
    let who = st
        .policy
        .authenticate(ask.token, now_u)
        .map_err(|d| ApiError::invalid_token(format!("{}: {}", d.code, d.message)))?;
    // Already approved for a window: no new approval, no announcement.
    if let Some(grant) = st
        .store
        .find_active_grant(&who.subject, &challenge.action_digest, now)
        .await?
    {
        return Err(ApiError::invalid_request(format!(
            "`{}` on `{}::{}` is already approved (approval `{}`) until {}: act with your access token",
            asked.action,
            asked.resource_type,
            asked.resource_id,
            grant.approval_id,
            grant.expires_at
        )));
    }
    let ttl = challenge.obligation.ttl_seconds;
    let wait = ask.requested_expiry.map_or(ttl, |r| r.clamp(1, ttl));
    let obligation = serde_json::to_value(&challenge.obligation)
        .and_then(serde_json::from_value)
        .map_err(ApiError::internal)?;
    // A new approval's webhook deliveries commit with it.
    let announce = |a: &greenlight_store::Approval| {
        let base = format!("/v1/approvals/{}", a.id);
        let links = json!({
            "approval": st.url(&base),
            "approve": st.url(&format!("{base}/approve")),
            "deny": st.url(&format!("{base}/deny")),
        });
        let v = serde_json::to_value(a).unwrap_or(Value::Null);
        st.notifier.announcements(&v, &links, now)
    };
    let (approval, created) = st
        .store
        .create_or_get_pending_announced(
            NewApproval {
                id: None,
                requester: who.subject.clone(),
                client_id: who.client_id.clone(),
                action_digest: challenge.action_digest.clone(),
                action: asked.action.clone(),
                authorization_details: challenge.authorization_details.clone(),
                obligation,
                binding_message: ask.binding_message,
                reason: ask.reason,
                policy_hash: decision.policy_hash.clone(),
                expires_at: now + i64::try_from(wait).unwrap_or(i64::MAX / 2),
                poll_interval_seconds: i64::try_from(st.config.approvals.poll_interval.max(1))
                    .unwrap_or(5),
                requester_tenant: Some(who.tenant.clone()).filter(|t| !t.is_empty()),
            },
            now,
            &announce,
        )
        .await?;
    tracing::info!(auth_req_id = %approval.id, created, requester = %who.subject, action = %asked.action, "approval requested");
    if created {
        st.metrics.approvals("requested", 1);
        st.notifier.wake();
    }
    Ok(Opened::Pending(approval))
}

/// The CIBA answer for a pending approval.
fn pending_json(approval: &greenlight_store::Approval, now: i64) -> Value {
    json!({
        "auth_req_id": approval.id,
        "expires_in": (approval.expires_at - now).max(0),
        "interval": approval.poll_interval_seconds,
    })
}

/// `POST /oauth/bc-authorize`: asks for approval of one action (CIBA poll
/// mode, the base access token as the client's credential).
pub async fn bc_authorize(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<BcAuthorize>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    let token = bearer(&headers)?;
    let Form(form) = form.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let _ = form.scope;
    let opened = open_approval(
        &st,
        Ask {
            token: &token,
            details: &form.authorization_details,
            binding_message: form.binding_message,
            reason: form.reason,
            requested_expiry: form.requested_expiry,
        },
    )
    .await?;
    match opened {
        Opened::Pending(approval) => Ok(Json(pending_json(&approval, st.now()))),
        Opened::Allowed { .. } => {
            let asked = parse_details(&form.authorization_details)?;
            Err(ApiError::invalid_request(format!(
                "`{}` on `{}::{}` is allowed without approval",
                asked.action, asked.resource_type, asked.resource_id
            )))
        }
    }
}

/// `POST /oauth/token` form fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// `urn:openid:params:grant-type:ciba` or
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    grant_type: String,
    /// CIBA: the approval to collect.
    auth_req_id: Option<String>,
    /// Token exchange: the base access token.
    subject_token: Option<String>,
    /// Token exchange: must be `urn:ietf:params:oauth:token-type:access_token`.
    subject_token_type: Option<String>,
    /// Token exchange: when given, `urn:ietf:params:oauth:token-type:access_token`.
    requested_token_type: Option<String>,
    /// Token exchange: the one action, as RFC 9396 `authorization_details`.
    authorization_details: Option<String>,
    /// Token exchange: shown to approvers when approval is needed.
    binding_message: Option<String>,
    /// Token exchange: why the requester wants to act.
    reason: Option<String>,
    /// Token exchange: seconds the requester is willing to wait.
    requested_expiry: Option<u64>,
    /// Accepted and ignored.
    scope: Option<String>,
}

/// `POST /oauth/token`: CIBA polling, which delivers the action token of an
/// approval exactly once, or RFC 8693 token exchange.
pub async fn token(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    let Form(form) = form.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let _ = &form.scope;
    match form.grant_type.as_str() {
        CIBA_GRANT => ciba_poll(&st, &headers, form).await,
        EXCHANGE_GRANT => exchange(&st, form).await,
        other => Err(token_error(
            "unsupported_grant_type",
            format!("grant type `{other}` is not supported"),
        )),
    }
}

/// RFC 8693 token exchange: the base access token as `subject_token` and the
/// action as `authorization_details`. An action policy allows outright gets
/// its action token at once (`grant: once`, no approval); one that needs
/// approval opens (or finds) the same pending approval as `bc-authorize` and
/// answers `authorization_pending` with its `auth_req_id`, to be polled with
/// the CIBA grant.
async fn exchange(st: &AppState, form: TokenRequest) -> Result<Json<Value>, ApiError> {
    let token = form
        .subject_token
        .ok_or_else(|| ApiError::invalid_request("subject_token is required"))?;
    match form.subject_token_type.as_deref() {
        Some(ACCESS_TOKEN_TYPE) => {}
        Some(other) => {
            return Err(ApiError::invalid_request(format!(
                "subject_token_type `{other}` is not supported; use `{ACCESS_TOKEN_TYPE}`"
            )));
        }
        None => return Err(ApiError::invalid_request("subject_token_type is required")),
    }
    if let Some(t) = form.requested_token_type.as_deref()
        && t != ACCESS_TOKEN_TYPE
    {
        return Err(ApiError::invalid_request(format!(
            "requested_token_type `{t}` is not supported; use `{ACCESS_TOKEN_TYPE}`"
        )));
    }
    let details = form
        .authorization_details
        .ok_or_else(|| details_error("authorization_details is required"))?;
    let opened = open_approval(
        st,
        Ask {
            token: &token,
            details: &details,
            binding_message: form.binding_message,
            reason: form.reason,
            requested_expiry: form.requested_expiry,
        },
    )
    .await
    .map_err(ApiError::at_token_endpoint)?;
    let now = st.now();
    match opened {
        Opened::Pending(approval) => {
            Err(token_error(
                "authorization_pending",
                format!(
                    "this action needs approval; poll the token endpoint with grant_type={CIBA_GRANT} and this auth_req_id"
                ),
            )
            .with_extra(pending_json(&approval, now)))
        }
        Opened::Allowed {
            who,
            authorization_details,
            digest,
        } => {
            let cfg = st
                .config
                .action_tokens
                .as_ref()
                .ok_or_else(|| ApiError::internal("no [action_tokens] section"))?;
            // An action token never outlives the token it was exchanged for.
            let left = token_exp(&token)
                .map(|exp| u64::try_from(exp - now).unwrap_or(0))
                .ok_or_else(|| ApiError::invalid_request("subject_token has no `exp`"))?;
            let minted = mint(
                st,
                &who,
                Mint {
                    authorization_details,
                    digest,
                    window: false,
                    lifetime: cfg.ttl.min(left),
                    approval_id: None,
                    approvers: Vec::new(),
                },
            )?;
            st.store
                .append_audit(greenlight_store::NewAuditEvent {
                    at: now,
                    actor: who.subject.clone(),
                    event: greenlight_store::events::TOKEN_MINTED.to_owned(),
                    approval_id: None,
                    detail: json!({ "jti": minted.jti, "act_digest": minted.digest, "exp": minted.exp,
                                    "grant": "once", "via": "token-exchange" }),
                })
                .await?;
            Ok(Json(minted.response()))
        }
    }
}

/// The `exp` of a compact JWT the engine has already verified (its payload
/// is only decoded here, never trusted unverified).
fn token_exp(token: &str) -> Option<i64> {
    let jws = greenlight_core::jws::parse(token).ok()?;
    serde_json::from_slice::<Value>(&jws.payload).ok()?["exp"].as_i64()
}

/// What an action token says.
struct Mint {
    authorization_details: Value,
    digest: String,
    window: bool,
    lifetime: u64,
    approval_id: Option<String>,
    approvers: Vec<String>,
}

/// A signed action token and what the token endpoint answers about it.
struct Minted {
    token: String,
    jti: String,
    digest: String,
    exp: i64,
    expires_in: i64,
    authorization_details: Value,
}

impl Minted {
    fn response(&self) -> Value {
        json!({
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "authorization_details": self.authorization_details,
        })
    }
}

/// Signs an action token for `who` (RFC 9068 claims plus Greenlight's). Its
/// life is cut to `signing.retain_for`, so no token outlives the
/// publication of its key.
fn mint(st: &AppState, who: &greenlight_host::Principal, m: Mint) -> Result<Minted, ApiError> {
    let cfg = st
        .config
        .action_tokens
        .as_ref()
        .ok_or_else(|| ApiError::internal("no [action_tokens] section"))?;
    let now = st.now();
    let lifetime = m.lifetime.min(st.settings.signing.retain_for());
    let exp = now + i64::try_from(lifetime).unwrap_or(i64::MAX / 2);
    let jti = greenlight_store::new_id()?;
    let mut claims = json!({
        "iss": cfg.issuer,
        "aud": cfg.audience,
        "sub": who.subject,
        "client_id": who.client_id,
        "iat": now,
        "exp": exp,
        "jti": jti,
        "scope": who.scopes.join(" "),
        st.config.principal.groups_claim.clone(): who.groups,
        st.config.principal.roles_claim.clone(): who.roles,
        st.config.principal.tenant_claim.clone(): who.tenant,
        "authorization_details": m.authorization_details,
        "act_digest": m.digest,
        "grant": if m.window { "window" } else { "once" },
        "approvers": m.approvers,
    });
    if let Some(id) = &m.approval_id {
        claims["approval_id"] = json!(id);
    }
    let token = st.signer().sign(&claims).map_err(ApiError::internal)?;
    Ok(Minted {
        token,
        jti,
        digest: m.digest,
        exp,
        expires_in: exp - now,
        authorization_details: m.authorization_details,
    })
}

/// CIBA polling: `authorization_pending`, `slow_down`, `access_denied`,
/// `expired_token`, or the action token, delivered once.
async fn ciba_poll(
    st: &AppState,
    headers: &HeaderMap,
    form: TokenRequest,
) -> Result<Json<Value>, ApiError> {
    let who = authenticate(st, headers)?;
    let id = form
        .auth_req_id
        .ok_or_else(|| ApiError::invalid_request("auth_req_id is required"))?;
    let approval = st
        .store
        .get_approval(&id)
        .await?
        .filter(|a| a.requester == who.subject && a.client_id == who.client_id)
        .ok_or_else(|| {
            token_error(
                "invalid_grant",
                format!("auth_req_id `{id}` is not known to this client"),
            )
        })?;
    let now = st.now();
    let previous = st.store.record_poll(&id, now).await?;
    match approval.status_at(now) {
        Status::Pending => {
            return Err(match previous {
                Some(p) if now - p < approval.poll_interval_seconds => token_error(
                    "slow_down",
                    format!(
                        "poll at most every {} seconds",
                        approval.poll_interval_seconds
                    ),
                ),
                _ => token_error(
                    "authorization_pending",
                    "the approvers have not decided yet",
                ),
            });
        }
        Status::Denied => {
            return Err(token_error(
                "access_denied",
                "an approver denied the request",
            ));
        }
        Status::Revoked => return Err(token_error("access_denied", "the approval was revoked")),
        Status::Expired => {
            return Err(token_error(
                "expired_token",
                "nobody decided before the approval expired",
            ));
        }
        Status::Approved => {}
    }
    if approval.delivered_at.is_some() {
        return Err(token_error(
            "invalid_grant",
            format!("the action token for `{id}` was already delivered"),
        ));
    }
    let cfg = st
        .config
        .action_tokens
        .as_ref()
        .ok_or_else(|| ApiError::internal("no [action_tokens] section"))?;
    let window = approval.obligation.grant == greenlight_store::GrantMode::Window;
    let lifetime = if window {
        // The grant outlives any one base token: the client may refresh it.
        approval.obligation.window_seconds
    } else {
        // A one-time token ends no later than the token that collected it.
        let left = bearer(headers)
            .ok()
            .and_then(|t| token_exp(&t))
            .map_or(0, |exp| u64::try_from(exp - now).unwrap_or(0));
        cfg.ttl.min(approval.obligation.ttl_seconds).min(left)
    };
    let approvers: Vec<String> = st
        .store
        .votes(&id)
        .await?
        .into_iter()
        .filter(|v| v.decision == greenlight_store::Decision::Approve)
        .map(|v| v.approver)
        .collect();
    let minted = mint(
        st,
        &who,
        Mint {
            authorization_details: approval.authorization_details.clone(),
            digest: approval.action_digest.clone(),
            window,
            lifetime,
            approval_id: Some(id.clone()),
            approvers,
        },
    )?;
    if !st.store.claim_delivery(&id, &minted.jti, now).await? {
        return Err(token_error(
            "invalid_grant",
            format!("the action token for `{id}` was already delivered"),
        ));
    }
    st.metrics.approvals("token_delivered", 1);
    if window {
        match st.store.create_grant(&id, minted.exp, now).await {
            Ok(_) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Json(minted.response()))
}

/// `POST /oauth/introspect` form fields (RFC 7662 §2.1).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Introspect {
    /// The token to describe.
    token: String,
    /// Accepted and ignored: only action tokens are described.
    token_type_hint: Option<String>,
}

/// `POST /oauth/introspect` (RFC 7662): describes an action token this server
/// issued. A consumed single-use token, a token of a revoked approval, an
/// expired token and any token this server did not sign are inactive. The
/// caller authenticates with an access token of one of the bundle's issuers.
pub async fn introspect(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<Introspect>, FormRejection>,
) -> Result<Json<Value>, ApiError> {
    authenticate(&st, &headers)?;
    let Form(form) = form.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let _ = form.token_type_hint;
    let inactive = Json(json!({ "active": false }));
    let Some(cfg) = st.config.action_tokens.as_ref() else {
        return Ok(inactive);
    };
    let now = st.now();
    let Some(claims) = st
        .signer()
        .verify(&form.token, &cfg.issuer, &cfg.audience, now)
    else {
        return Ok(inactive);
    };
    let jti = claims["jti"].as_str().unwrap_or_default();
    if claims["grant"] == "once" && st.store.consumed_token(jti).await?.is_some() {
        return Ok(inactive);
    }
    if let Some(id) = claims["approval_id"].as_str()
        && st
            .store
            .get_approval(id)
            .await?
            .is_some_and(|a| a.status == Status::Revoked)
    {
        return Ok(inactive);
    }
    let mut out = json!({ "active": true, "token_type": "Bearer" });
    for name in [
        "iss",
        "sub",
        "aud",
        "client_id",
        "scope",
        "iat",
        "exp",
        "jti",
        "authorization_details",
        "act_digest",
        "grant",
        "approval_id",
        "approvers",
    ] {
        if let Some(v) = claims.get(name) {
            out[name] = v.clone();
        }
    }
    Ok(Json(out))
}

/// `GET /.well-known/jwks.json`: the keys action tokens are signed with.
pub async fn jwks(State(st): State<Arc<AppState>>) -> Json<Value> {
    Json(st.signer().jwks().clone())
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn metadata(State(st): State<Arc<AppState>>) -> Json<Value> {
    let issuer = st
        .config
        .action_tokens
        .as_ref()
        .map(|a| a.issuer.clone())
        .unwrap_or_default();
    Json(json!({
        "issuer": issuer,
        "token_endpoint": st.url("/oauth/token"),
        "backchannel_authentication_endpoint": st.url("/oauth/bc-authorize"),
        "jwks_uri": st.url("/.well-known/jwks.json"),
        "grant_types_supported": [CIBA_GRANT, EXCHANGE_GRANT],
        "backchannel_token_delivery_modes_supported": ["poll"],
        "authorization_details_types_supported": [greenlight_core::digest::AUTHORIZATION_DETAILS_TYPE],
        "introspection_endpoint": st.url("/oauth/introspect"),
        "token_endpoint_auth_methods_supported": ["bearer"],
    }))
}
