//! Approve and deny from Slack: the interactive buttons of Greenlight's
//! Slack messages post to `POST /slack/interactions`.
//!
//! A callback counts only when it is Slack's: `X-Slack-Signature` is
//! `v0=` and the HMAC-SHA256, under the app's signing secret, of
//! `v0:{X-Slack-Request-Timestamp}:{raw body}`, compared in constant time;
//! a timestamp more than five minutes away from now is a replay. The Slack
//! user who pressed the button is mapped to an identity by configuration
//! (`[[slack.users]]`: the person's issuer and subject, and the groups,
//! tenant and roles that count for them), and the vote then takes exactly
//! the portal's path: the same approvers, the same 404 for an approval
//! that is not theirs, the action digest the message showed, a required
//! reason (from the message's reason input, which Slack sends with the
//! press). The requester never confirms their own action from Slack: that
//! takes a fresh sign-in.
//!
//! ```toml
//! [slack]
//! signing_secret_env = "SLACK_SIGNING_SECRET"   # or signing_secret_file
//! # issuer = "https://idp.example.com"          # the users' issuer; default the bundle's first
//! # team_id = "T0001"                           # only this workspace's callbacks count
//!
//! [[slack.users]]
//! slack_user = "U024BE7LH"
//! subject = "ann"
//! groups = ["finance"]
//! # tenant = "acme"
//! # roles = []
//! ```

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use greenlight_store::Decision;
use greenlight_types::{Credential, Principal};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;

use super::approvals::{cast, is_approver, load};
use super::{ApiError, AppState};

/// How far a callback's timestamp may be from now, in seconds (Slack's
/// own advice).
pub const TOLERANCE: i64 = 300;

/// `[slack]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    /// The environment variable holding the Slack app's signing secret.
    pub signing_secret_env: Option<String>,
    /// Or a file holding it (trailing whitespace ignored).
    pub signing_secret_file: Option<PathBuf>,
    /// The issuer the users are people of; the bundle's first unless set.
    /// It must be one of the bundle's issuers (checked at start), so a
    /// person is never two identities, one per door.
    pub issuer: Option<String>,
    /// The Slack workspace (`T…`) whose callbacks count; any workspace
    /// the app is installed in unless set.
    pub team_id: Option<String>,
    /// Who each Slack user is.
    #[serde(default)]
    pub users: Vec<SlackUser>,
}

/// One Slack user and the person they are.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackUser {
    /// Slack's user id (`U…`), as callbacks name the presser.
    pub slack_user: String,
    /// The person's subject at the issuer.
    pub subject: String,
    /// The groups that count for them.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Their tenant, for tenant-scoped groups.
    #[serde(default)]
    pub tenant: String,
    /// Their roles.
    #[serde(default)]
    pub roles: Vec<String>,
}

impl SlackSettings {
    /// The signing secret.
    pub fn secret(&self) -> anyhow::Result<Vec<u8>> {
        match (&self.signing_secret_env, &self.signing_secret_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "slack sets both signing_secret_env and signing_secret_file; choose one"
            ),
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(v.into_bytes()),
                _ => anyhow::bail!(
                    "slack.signing_secret_env names `{var}`, which is not set or empty"
                ),
            },
            (None, Some(path)) => {
                let v = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "slack.signing_secret_file {} cannot be read",
                        path.display()
                    )
                })?;
                let v = v.trim_end();
                if v.is_empty() {
                    anyhow::bail!("slack.signing_secret_file {} is empty", path.display());
                }
                Ok(v.as_bytes().to_vec())
            }
            (None, None) => anyhow::bail!(
                "slack needs the app's signing secret: signing_secret_env or signing_secret_file"
            ),
        }
    }

    /// Refuses an issuer the bundle does not trust.
    pub fn check_issuer(&self, info: &greenlight_types::BundleInfo) -> anyhow::Result<()> {
        match &self.issuer {
            Some(i) if !info.issuers.iter().any(|b| &b.issuer == i) => {
                anyhow::bail!("slack.issuer `{i}` is not one of the bundle's issuers")
            }
            _ => Ok(()),
        }
    }

    /// Refuses settings that cannot work, naming what is wrong.
    pub fn check(&self) -> anyhow::Result<()> {
        self.secret()?;
        let mut seen = HashSet::new();
        for (i, u) in self.users.iter().enumerate() {
            if u.slack_user.is_empty() || u.subject.is_empty() {
                anyhow::bail!("slack.users[{i}]: slack_user and subject may not be empty");
            }
            if !seen.insert(&u.slack_user) {
                anyhow::bail!(
                    "slack.users[{i}]: Slack user `{}` is mapped twice",
                    u.slack_user
                );
            }
        }
        Ok(())
    }
}

/// Slack's settings with the signing secret read once, at start.
#[derive(Debug)]
pub struct Slack {
    /// `[slack]`.
    pub settings: SlackSettings,
    secret: Vec<u8>,
}

impl Slack {
    /// Reads the secret and checks the issuer against the bundle.
    pub fn new(
        settings: &SlackSettings,
        info: &greenlight_types::BundleInfo,
    ) -> anyhow::Result<Self> {
        settings.check()?;
        settings.check_issuer(info)?;
        Ok(Self {
            settings: settings.clone(),
            secret: settings.secret()?,
        })
    }
}

/// `v0=` and the hex HMAC-SHA256 of `v0:{timestamp}:{body}`: the
/// signature Slack sends.
pub fn signature(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v0={hex}")
}

/// Refuses a callback that is not Slack's, or not now.
fn verify(secret: &[u8], headers: &HeaderMap, body: &[u8], now: i64) -> Result<(), ApiError> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ApiError::invalid_token(format!("the callback has no `{name}`")))
    };
    let timestamp = header("x-slack-request-timestamp")?;
    let sent = header("x-slack-signature")?;
    let at: i64 = timestamp
        .parse()
        .map_err(|_| ApiError::invalid_token("`x-slack-request-timestamp` is not a number"))?;
    if now.abs_diff(at) > TOLERANCE.unsigned_abs() {
        return Err(ApiError::invalid_token(format!(
            "the callback was signed at {at}, more than {TOLERANCE} seconds from now: a replay or a wrong clock"
        )));
    }
    let expected = signature(secret, timestamp, body);
    let same = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), sent.as_bytes());
    if !bool::from(same) {
        return Err(ApiError::invalid_token(
            "the callback's signature is not Slack's for this app",
        ));
    }
    Ok(())
}

/// The person a Slack user is, as a credential meant for approving,
/// without a sign-in time (so never a confirmation of one's own action).
fn credential(
    st: &AppState,
    settings: &SlackSettings,
    slack_user: &str,
) -> Result<Credential, ApiError> {
    let user = settings
        .users
        .iter()
        .find(|u| u.slack_user == slack_user)
        .ok_or_else(|| {
            ApiError::forbidden(format!(
                "Slack user `{slack_user}` is not mapped to anyone: add them to [[slack.users]]"
            ))
        })?;
    let v = st.version();
    let info = v.info();
    let issuer = settings
        .issuer
        .clone()
        .or_else(|| info.issuers.first().map(|i| i.issuer.clone()))
        .unwrap_or_default();
    Ok(Credential {
        principal: Principal {
            entity_type: info.claims.entity_type.clone(),
            subject: user.subject.clone(),
            client_id: "slack".to_owned(),
            scopes: Vec::new(),
            groups: user.groups.clone(),
            roles: user.roles.clone(),
            tenant: user.tenant.clone(),
            issuer,
            attributes: std::collections::BTreeMap::new(),
        },
        expires_at: u64::MAX,
        auth_time: None,
        approver: true,
    })
}

/// `POST /slack/interactions`: a button pressed in a Greenlight message.
pub async fn interactions(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let Some(slack) = &st.slack else {
        return Err(ApiError::not_found("Slack interactions are not configured"));
    };
    let settings = &slack.settings;
    verify(&slack.secret, &headers, &body, st.now())?;
    let payload = url::form_urlencoded::parse(&body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or_else(|| ApiError::invalid_request("the callback has no `payload`"))?;
    let payload: Value = serde_json::from_str(&payload).map_err(|e| {
        ApiError::invalid_request(format!("the callback's payload is not JSON: {e}"))
    })?;
    let action = &payload["actions"][0];
    let decision = match action["action_id"].as_str() {
        Some(crate::serve::notify::ACTION_APPROVE) => Decision::Approve,
        Some(crate::serve::notify::ACTION_DENY) => Decision::Deny,
        // The link button opens the portal; Slack tells us it was pressed.
        Some(crate::serve::notify::ACTION_OPEN) => return Ok(Json(json!({ "ok": true }))),
        other => {
            return Err(ApiError::invalid_request(format!(
                "action `{}` is not one of Greenlight's buttons",
                other.unwrap_or("")
            )));
        }
    };
    if let Some(team) = &settings.team_id
        && payload["team"]["id"].as_str() != Some(team.as_str())
    {
        return Err(ApiError::forbidden(format!(
            "the callback comes from another Slack workspace than `{team}`"
        )));
    }
    let slack_user = payload["user"]["id"].as_str().unwrap_or("");
    let who = credential(&st, settings, slack_user)?;
    let (id, digest) = action["value"]
        .as_str()
        .and_then(|v| v.split_once(':'))
        .ok_or_else(|| ApiError::invalid_request("the button names no approval and digest"))?;
    let not_found = || ApiError::not_found(format!("no approval `{id}` waits for you"));
    let a = load(&st, id).await.map_err(|e| {
        if e.status == StatusCode::NOT_FOUND {
            not_found()
        } else {
            e
        }
    })?;
    if is_approver(&st, &a, &who.principal).is_err() {
        return Err(not_found());
    }
    if digest != a.action_digest {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "invalid_request",
            format!(
                "this vote is for action digest `{digest}`, but approval `{id}` is for `{}`",
                a.action_digest
            ),
        ));
    }
    let reason = payload["state"]["values"][crate::serve::notify::REASON]
        [crate::serve::notify::REASON]["value"]
        .as_str()
        .map(str::to_owned);
    let done = cast(&st, &a, &who, decision, reason).await.map_err(|e| {
        match crate::serve::portal::approval_link(&st, id) {
            Some(page) if e.status == StatusCode::BAD_REQUEST => ApiError {
                description: format!("{}: decide it in the portal, {page}", e.description),
                ..e
            },
            _ => e,
        }
    })?;
    Ok(Json(json!({
        "ok": true,
        "approval": id,
        "status": done.approval.status_at(st.now()),
        "approve_count": done.approve_count,
        "recorded": done.recorded,
    })))
}
