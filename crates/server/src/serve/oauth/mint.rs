//! Minting action tokens: RFC 9068 access tokens signed with Greenlight's
//! own key, carrying the one action they allow.

use greenlight_types::Principal;
use serde_json::{Value, json};

use super::super::state::seconds;
use super::super::{ApiError, AppState};
use super::ACCESS_TOKEN_TYPE;

/// What an action token says.
pub(super) struct Mint {
    /// RFC 9396 `authorization_details` of the one action.
    pub authorization_details: Value,
    /// `act_digest`.
    pub digest: String,
    /// `grant`: `window` when true, else `once`.
    pub window: bool,
    /// Seconds it lives at most (cut to `signing.retain_for`).
    pub lifetime: u64,
    /// The approval that produced it, if any.
    pub approval_id: Option<String>,
    /// Who approved.
    pub approvers: Vec<String>,
}

/// A signed action token and what the token endpoint answers about it.
pub(super) struct Minted {
    token: String,
    /// `jti`.
    pub jti: String,
    /// `act_digest`.
    pub digest: String,
    /// `exp`.
    pub exp: i64,
    expires_in: i64,
    authorization_details: Value,
}

impl Minted {
    /// The token endpoint's answer.
    pub fn response(&self) -> Value {
        json!({
            "access_token": self.token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "issued_token_type": ACCESS_TOKEN_TYPE,
            "authorization_details": self.authorization_details,
        })
    }
}

/// Signs an action token for `who` (RFC 9068 claims plus Greenlight's,
/// under the claim names the bundle reads principals with). Its life is
/// cut to `signing.retain_for`, so no token outlives the publication of
/// its key.
pub(super) fn mint(st: &AppState, who: &Principal, m: Mint) -> Result<Minted, ApiError> {
    let v = st.version();
    let cfg = &v.action_tokens;
    let names = &v.info().claims;
    let now = st.now();
    let lifetime = m.lifetime.min(st.settings.signing.retain_for());
    let exp = now.saturating_add(seconds(lifetime));
    let jti = greenlight_store::new_id()?;
    let mut claims = json!({
        "iss": cfg.issuer,
        "aud": cfg.audience,
        "sub": who.subject,
        // RFC 9493: the person is (issuer, subject); Greenlight only signs.
        "sub_id": { "format": "iss_sub", "iss": who.issuer, "sub": who.subject },
        "client_id": who.client_id,
        "iat": now,
        "exp": exp,
        "jti": jti,
        names.scope.clone(): who.scopes.join(" "),
        names.groups.clone(): who.groups,
        names.roles.clone(): who.roles,
        names.tenant.clone(): who.tenant,
        "authorization_details": m.authorization_details,
        "act_digest": m.digest,
        "grant": if m.window { "window" } else { "once" },
        "approvers": m.approvers,
    });
    if let Some(id) = &m.approval_id {
        claims["approval_id"] = json!(id);
    }
    // The person's mapped attributes, so that policy sees the same person
    // when the token is used as when they asked.
    if !who.attributes.is_empty() {
        claims[greenlight_core::claims::ACTION_TOKEN_CLAIM] = who
            .attributes
            .iter()
            .map(|(name, value)| (name.clone(), value.to_claim()))
            .collect::<serde_json::Map<_, _>>()
            .into();
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
