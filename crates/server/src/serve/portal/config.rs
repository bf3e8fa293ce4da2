//! `[portal]` in the server's settings: the OpenID Connect client the
//! portal signs people in with.
//!
//! ```toml
//! [portal]
//! client_id = "greenlight-portal"            # registered at the provider
//! client_secret_env = "GREENLIGHT_PORTAL_SECRET"  # or client_secret_file; none: a public client (PKCE only)
//! # issuer = "https://idp.example.com"       # one of the bundle's issuers; default the first
//! # scopes = "openid profile"                # default "openid"
//! # session_ttl = 3600                       # seconds a sign-in lasts (from the provider's sign-in)
//! # auditor_role = "greenlight-auditor"      # reads every approval and the history
//! ```

use std::path::PathBuf;

use anyhow::Context;
use serde::Deserialize;

/// How long a sign-in lasts unless `session_ttl` says: an hour, so that a
/// person who leaves a group (or a tenant) at the provider stops deciding
/// for it soon after; they sign in again for longer work.
pub const DEFAULT_SESSION_TTL: u64 = 3600;

/// The portal's OpenID Connect client.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSettings {
    /// The client id the provider knows the portal by: the audience of
    /// its ID tokens.
    pub client_id: String,
    /// The issuer people sign in with; one of the bundle's issuers (the
    /// first unless set), so ID tokens are checked by the same rules and
    /// keys as its access tokens.
    pub issuer: Option<String>,
    /// The environment variable holding the client secret.
    pub client_secret_env: Option<String>,
    /// Or a file holding it (trailing whitespace ignored).
    pub client_secret_file: Option<PathBuf>,
    /// The scopes asked for, space-separated; must include `openid`.
    pub scopes: Option<String>,
    /// Seconds a sign-in lasts. Default [`DEFAULT_SESSION_TTL`].
    pub session_ttl: Option<u64>,
    /// The role (from the bundle's `roles_claim`) whose holders read every
    /// approval and the whole history; none unless set.
    pub auditor_role: Option<String>,
}

impl PortalSettings {
    /// The client secret, if the portal is a confidential client.
    pub fn client_secret(&self) -> anyhow::Result<Option<String>> {
        match (&self.client_secret_env, &self.client_secret_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "portal sets both client_secret_env and client_secret_file; choose one"
            ),
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(v)),
                _ => anyhow::bail!(
                    "portal.client_secret_env names `{var}`, which is not set or empty"
                ),
            },
            (None, Some(path)) => {
                let v = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "portal.client_secret_file {} cannot be read",
                        path.display()
                    )
                })?;
                let v = v.trim_end();
                if v.is_empty() {
                    anyhow::bail!("portal.client_secret_file {} is empty", path.display());
                }
                Ok(Some(v.to_owned()))
            }
            (None, None) => Ok(None),
        }
    }

    /// The scopes asked for.
    pub fn scopes(&self) -> &str {
        self.scopes.as_deref().unwrap_or("openid")
    }

    /// Seconds a sign-in lasts.
    pub fn session_ttl(&self) -> u64 {
        self.session_ttl.unwrap_or(DEFAULT_SESSION_TTL)
    }

    /// Refuses settings that cannot work, naming what is wrong.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.client_id.is_empty() {
            anyhow::bail!("portal.client_id may not be empty");
        }
        if !self.scopes().split(' ').any(|s| s == "openid") {
            anyhow::bail!(
                "portal.scopes `{}` must include `openid`: the portal signs people in with OpenID Connect",
                self.scopes()
            );
        }
        if self.auditor_role.as_deref() == Some("") {
            anyhow::bail!("portal.auditor_role may not be empty");
        }
        if self.session_ttl == Some(0) {
            anyhow::bail!("portal.session_ttl must be at least 1 second");
        }
        self.client_secret()?;
        Ok(())
    }
}
