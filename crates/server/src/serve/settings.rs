//! The server's own settings (`greenlight serve --config FILE`): what is
//! about running this service rather than about policy, so it stays out of
//! the bundle (whose hash names the policy version): webhooks and their
//! secrets, signing-key rotation, housekeeping intervals.
//!
//! ```toml
//! [[webhooks]]
//! url = "https://hooks.example.com/greenlight"
//! secret_env = "GREENLIGHT_WEBHOOK_SECRET"   # HMAC-SHA256 key, from the environment
//! # secret_file = "/run/secrets/webhook"     # or from a file
//! format = "greenlight"                       # or "slack"
//!
//! [signing]
//! rotate_after = 2592000   # seconds a key signs before a new one replaces it
//! retain_for = 86400       # seconds a retired key stays published (the longest token life)
//! key_encryption_key_env = "GREENLIGHT_KEK"  # seals signing keys in the store (base64 of 32 bytes)
//! # key_encryption_key_file = "/run/secrets/kek"
//!
//! [housekeeping]
//! interval = 30            # seconds between expiry sweeps and key refreshes
//!
//! [approvals]
//! collect_within = 300     # seconds after approval the client may collect its token
//! max_pending = 20         # approvals one requester (issuer, subject) may have pending
//! max_new = 100            # approvals one requester may open per `new_per` seconds
//! new_per = 3600
//!
//! [[authzen.trusted_clients]]         # PEPs that may vouch for subjects by id
//! issuer = "https://idp.example.com"  # a client is its issuer's: (issuer, client_id)
//! client_id = "api-gateway"
//! # subject = "..."                  # its tokens' subject, if not the client_id
//!
//! [portal]                            # people sign in and decide (see `portal::config`)
//! client_id = "greenlight-portal"
//! client_secret_env = "GREENLIGHT_PORTAL_SECRET"
//!
//! [reload]
//! interval = 2             # seconds between looks at the bundle folder; 0: off
//!
//! [admin]                             # POST /v1/admin/reload (see `live::admin`)
//! token_env = "GREENLIGHT_ADMIN_TOKEN"
//!
//! [remote_bundle]                     # --bundle https://… (see `live::remote`)
//! trusted_keys = "/etc/greenlight/bundle-signers.jwks.json"
//! poll_interval = 30
//!
//! [slack]                             # approve and deny from Slack (see `slack`)
//! signing_secret_env = "SLACK_SIGNING_SECRET"
//! [[slack.users]]
//! slack_user = "U024BE7LH"
//! subject = "ann"
//! groups = ["finance"]
//! ```

use std::path::Path;

use anyhow::Context;
use serde::Deserialize;

/// Everything `--config` may set; every part is optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Where new approvals are announced.
    #[serde(default)]
    pub webhooks: Vec<Webhook>,
    /// Signing-key rotation.
    #[serde(default)]
    pub signing: Signing,
    /// Background sweeps.
    #[serde(default)]
    pub housekeeping: Housekeeping,
    /// The AuthZEN API.
    #[serde(default)]
    pub authzen: AuthZen,
    /// Collecting approved actions.
    #[serde(default)]
    pub approvals: Approvals,
    /// AuthZEN Access Request and Approval: requestable denials, the
    /// access-request endpoint, and the callbacks PEPs may ask for.
    #[serde(default)]
    pub access_requests: AccessRequests,
    /// The approval portal people sign in to; off unless set.
    pub portal: Option<super::portal::PortalSettings>,
    /// Slack's interactive buttons (approve, deny) on webhook messages;
    /// off unless set.
    pub slack: Option<super::slack::SlackSettings>,
    /// Watching the bundle folder for a new version.
    #[serde(default)]
    pub reload: super::live::watch::ReloadSettings,
    /// The admin API (reload, which version decides); off unless set.
    pub admin: Option<super::live::admin::AdminSettings>,
    /// How a bundle URL (`--bundle https://…`) is fetched and trusted.
    #[serde(default)]
    pub remote_bundle: super::live::remote::RemoteSettings,
    /// The MCP gateway in front of an MCP server; off unless set.
    pub mcp: Option<super::mcp::McpSettings>,
}

/// How long an approval's yes lasts before its token is collected.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approvals {
    /// Seconds after an approval is decided within which the client must
    /// collect its action token; later, the poll says `expired_token`. A
    /// yes is for acting now, not whenever suits the requester. Defaults
    /// to 300.
    pub collect_within: Option<u64>,
    /// Approvals one requester (issuer and subject, across all their
    /// clients) may have pending at once; more asks get `429` until one is
    /// decided or expires, so nobody floods the approvers. Defaults to 20.
    pub max_pending: Option<u32>,
    /// Approvals one requester may open per `new_per` seconds. Defaults
    /// to 100.
    pub max_new: Option<u32>,
    /// The period `max_new` counts over, in seconds. Defaults to 3600.
    pub new_per: Option<u64>,
}

/// How long an approved action may wait to be collected when
/// `approvals.collect_within` is not set: five minutes, the order of a
/// client's polling loop around a person's decision.
pub const DEFAULT_COLLECT_WITHIN_SECONDS: u64 = 300;

/// The most approvals one requester may have pending when
/// `approvals.max_pending` is not set: more than a person works through at
/// once, few enough that one requester cannot bury everyone else's.
pub const DEFAULT_MAX_PENDING: u32 = 20;

/// The most approvals one requester may open per hour when
/// `approvals.max_new` is not set.
pub const DEFAULT_MAX_NEW: u32 = 100;

/// The period `approvals.max_new` counts over when `new_per` is not set.
pub const DEFAULT_NEW_PER_SECONDS: u64 = 3600;

impl Approvals {
    /// `collect_within`, or its default.
    pub fn collect_within(&self) -> u64 {
        self.collect_within
            .unwrap_or(DEFAULT_COLLECT_WITHIN_SECONDS)
    }

    /// The quota every requester asks within.
    pub fn quota(&self) -> greenlight_store::Quota {
        greenlight_store::Quota {
            max_pending: self.max_pending.unwrap_or(DEFAULT_MAX_PENDING),
            max_new: self.max_new.unwrap_or(DEFAULT_MAX_NEW),
            per_seconds: i64::try_from(self.new_per.unwrap_or(DEFAULT_NEW_PER_SECONDS))
                .unwrap_or(i64::MAX),
        }
    }
}

/// The AuthZEN API.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthZen {
    /// The policy enforcement points trusted to vouch for subjects, each
    /// a client of one issuer: such a PEP calls with its own access token
    /// (from that issuer, with `sub` equal to `client_id`, as the
    /// client-credentials grant issues) and may name a subject by id and
    /// properties instead of forwarding the subject's token. Empty: only
    /// tokens.
    #[serde(default)]
    pub trusted_clients: Vec<TrustedClient>,
}

/// AuthZEN Access Request and Approval (ARAP).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessRequests {
    /// Seconds a requestable denial may be submitted as an access request
    /// after the evaluation that gave it (`access_request.expires_at`, and
    /// its binding token's `exp`). Defaults to 600.
    pub denial_lifetime: Option<u64>,
    /// The callback endpoints PEPs may name in a submission, each
    /// registered for one client of one issuer (the caller that submits)
    /// with the key its notifications are signed with. A submission naming
    /// any other endpoint is refused: nothing a caller sends makes the
    /// server call an address the operator did not list.
    #[serde(default)]
    pub callbacks: Vec<CallbackReceiver>,
}

/// How long a requestable denial can be submitted when
/// `access_requests.denial_lifetime` is not set: ten minutes, time for an
/// agent to decide to ask.
pub const DEFAULT_DENIAL_LIFETIME_SECONDS: u64 = 600;

impl AccessRequests {
    /// Seconds a requestable denial can be submitted.
    pub fn denial_lifetime(&self) -> u64 {
        self.denial_lifetime
            .unwrap_or(DEFAULT_DENIAL_LIFETIME_SECONDS)
    }
}

/// A PEP's callback endpoint, registered for the client that may name it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallbackReceiver {
    /// The issuer of the submitting caller's tokens.
    pub issuer: String,
    /// The submitting caller's client at that issuer.
    pub client_id: String,
    /// The exact `callback.endpoint` the client may name.
    pub url: String,
    /// The environment variable holding the HMAC-SHA256 key the
    /// notifications are signed with (as webhooks are). A key is required:
    /// an unauthenticated callback must not be accepted (ARAP §"Callback
    /// Completion").
    pub secret_env: Option<String>,
    /// Or a file holding the key.
    pub secret_file: Option<std::path::PathBuf>,
    /// Attempts before giving up, the first included. Default 5.
    pub attempts: Option<u32>,
    /// Seconds to wait for one attempt. Default 10.
    pub timeout: Option<u64>,
}

impl CallbackReceiver {
    /// The receiver as the webhook outbox delivers to it.
    pub fn webhook(&self) -> Webhook {
        Webhook {
            url: self.url.clone(),
            secret_env: self.secret_env.clone(),
            secret_file: self.secret_file.clone(),
            format: WebhookFormat::Greenlight,
            attempts: self.attempts,
            timeout: self.timeout,
        }
    }
}

/// One client of one issuer: a client id means nothing without its issuer.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustedClient {
    /// The issuer of the client's tokens (`iss`).
    pub issuer: String,
    /// The client's id at that issuer.
    pub client_id: String,
    /// The subject the client's own tokens carry: its `client_id` unless
    /// set (where the client-credentials grant names a service principal
    /// instead, as Entra's `oid`). Only a token with exactly this subject
    /// is the PEP speaking for itself, not a person's token issued to it.
    pub subject: Option<String>,
    /// Whether the PEP may also submit access requests (AuthZEN ARAP) for
    /// the subjects it vouches for, opening approvals people are asked
    /// to decide. Off unless set: vouching for a decision the PEP
    /// enforces itself is less than asking people in a subject's name.
    #[serde(default)]
    pub may_request: bool,
}

/// The body shape a webhook receives.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Greenlight's own JSON event (`type`, `approval`, links).
    #[default]
    Greenlight,
    /// A Slack incoming-webhook message (`text` and `blocks`).
    Slack,
}

/// One webhook receiver.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// `http://` or `https://` URL the event is POSTed to.
    pub url: String,
    /// The environment variable holding the HMAC-SHA256 key. Without a key
    /// the body is sent unsigned (Slack URLs carry their own secret).
    pub secret_env: Option<String>,
    /// Or a file holding the key (trailing whitespace ignored), e.g. a
    /// mounted secret.
    pub secret_file: Option<std::path::PathBuf>,
    /// The body shape.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Attempts before giving up, the first included. Default 5.
    pub attempts: Option<u32>,
    /// Seconds to wait for one attempt. Default 10.
    pub timeout: Option<u64>,
}

/// Signing-key rotation.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// Seconds the active key signs before the server rotates it; no
    /// automatic rotation when unset (`greenlight keys rotate` still works).
    pub rotate_after: Option<u64>,
    /// Seconds a retired key stays published. Every action token lives at
    /// most this long (a longer window is cut to it), so no token outlives
    /// its key. Default 86400.
    pub retain_for: Option<u64>,
    /// An environment variable holding the key-encryption key (base64 of
    /// 32 bytes) that seals signing keys in the store.
    pub key_encryption_key_env: Option<String>,
    /// A file holding the key-encryption key, instead of the environment.
    pub key_encryption_key_file: Option<std::path::PathBuf>,
}

impl Signing {
    /// How signing keys are sealed in the store: under the configured
    /// key-encryption key, or not at all.
    pub fn seal(&self) -> anyhow::Result<super::seal::Seal> {
        use super::seal::Seal;
        match (&self.key_encryption_key_env, &self.key_encryption_key_file) {
            (Some(_), Some(_)) => anyhow::bail!(
                "signing sets both key_encryption_key_env and key_encryption_key_file; choose one"
            ),
            (Some(var), None) => {
                let value = std::env::var(var).map_err(|_| {
                    anyhow::anyhow!(
                        "signing.key_encryption_key_env names `{var}`, which is not set"
                    )
                })?;
                Seal::from_base64(&value, &format!("`{var}`"))
            }
            (None, Some(path)) => {
                let value = std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "signing.key_encryption_key_file {} cannot be read",
                        path.display()
                    )
                })?;
                Seal::from_base64(&value, &path.display().to_string())
            }
            (None, None) => Ok(Seal::none()),
        }
    }

    /// Seconds a retired key stays published, and the longest token life.
    pub fn retain_for(&self) -> u64 {
        self.retain_for.unwrap_or(86_400)
    }
}

/// Background sweeps.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Housekeeping {
    /// Seconds between sweeps (expiring approvals, purging the ledger,
    /// refreshing keys from the store). Default 30.
    pub interval: Option<u64>,
}

impl Settings {
    /// Reads and checks a settings file.
    pub fn load(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let settings: Settings =
            toml::from_str(&text).with_context(|| format!("{} is not valid", path.display()))?;
        settings.check()?;
        Ok(settings)
    }

    /// Refuses settings that cannot work, naming what is wrong.
    pub fn check(&self) -> anyhow::Result<()> {
        self.signing.seal()?;
        if let Some(admin) = &self.admin {
            admin.token_digest()?;
        }
        if self.approvals.collect_within == Some(0) {
            anyhow::bail!("approvals.collect_within must be at least 1 second");
        }
        for t in &self.authzen.trusted_clients {
            if t.issuer.is_empty() || t.client_id.is_empty() || t.subject.as_deref() == Some("") {
                anyhow::bail!(
                    "authzen.trusted_clients: issuer, client_id and subject may not be empty (a client-less token would pass for the PEP)"
                );
            }
        }
        if self.approvals.max_pending == Some(0) || self.approvals.max_new == Some(0) {
            anyhow::bail!(
                "approvals.max_pending and max_new must be at least 1: 0 would refuse every approval"
            );
        }
        if self.approvals.new_per == Some(0) {
            anyhow::bail!("approvals.new_per must be at least 1 second");
        }
        if self.access_requests.denial_lifetime == Some(0) {
            anyhow::bail!("access_requests.denial_lifetime must be at least 1 second");
        }
        let callbacks = self.access_requests.callbacks.iter();
        for (i, c) in callbacks.clone().enumerate() {
            if c.issuer.is_empty() || c.client_id.is_empty() {
                anyhow::bail!(
                    "access_requests.callbacks[{i}]: issuer and client_id may not be empty"
                );
            }
            if c.secret_env.is_none() && c.secret_file.is_none() {
                anyhow::bail!(
                    "access_requests.callbacks[{i}] needs secret_env or secret_file: callbacks are always signed"
                );
            }
            let url = url::Url::parse(&c.url).map_err(|e| {
                anyhow::anyhow!(
                    "access_requests.callbacks[{i}].url `{}` is not a URL: {e}",
                    c.url
                )
            })?;
            let loopback = matches!(url.host(), Some(url::Host::Domain("localhost")))
                || matches!(url.host(), Some(url::Host::Ipv4(ip)) if ip.is_loopback())
                || matches!(url.host(), Some(url::Host::Ipv6(ip)) if ip.is_loopback());
            if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
                anyhow::bail!(
                    "access_requests.callbacks[{i}].url `{}` must be https (http only on loopback)",
                    c.url
                );
            }
            if self.webhooks.iter().any(|w| w.url == c.url)
                || callbacks.clone().take(i).any(|o| o.url == c.url)
            {
                anyhow::bail!(
                    "access_requests.callbacks[{i}].url `{}` is listed twice (as a webhook or another callback)",
                    c.url
                );
            }
        }
        let receivers: Vec<(String, Webhook)> = self
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, w)| (format!("webhooks[{i}]"), w.clone()))
            .chain(
                callbacks
                    .enumerate()
                    .map(|(i, c)| (format!("access_requests.callbacks[{i}]"), c.webhook())),
            )
            .collect();
        for (i, w) in &receivers {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                anyhow::bail!("{i}.url `{}` is not an http(s) URL", w.url);
            }
            if w.secret_env.is_some() && w.secret_file.is_some() {
                anyhow::bail!("{i} sets both secret_env and secret_file; choose one");
            }
            if let Some(path) = &w.secret_file {
                match std::fs::read_to_string(path) {
                    Ok(v) if !v.trim_end().is_empty() => {}
                    Ok(_) => anyhow::bail!("{i}.secret_file {} is empty", path.display()),
                    Err(e) => {
                        anyhow::bail!("{i}.secret_file {} cannot be read: {e}", path.display())
                    }
                }
            }
            if let Some(var) = &w.secret_env {
                match std::env::var(var) {
                    Ok(v) if !v.is_empty() => {}
                    _ => anyhow::bail!("{i}.secret_env names `{var}`, which is not set or empty"),
                }
            }
            if w.attempts == Some(0) {
                anyhow::bail!("{i}.attempts must be at least 1");
            }
        }
        if self.signing.retain_for == Some(0) {
            anyhow::bail!("signing.retain_for must be at least 1 second");
        }
        if self.signing.rotate_after == Some(0) {
            anyhow::bail!("signing.rotate_after must be at least 1 second");
        }
        if self.housekeeping.interval == Some(0) {
            anyhow::bail!("housekeeping.interval must be at least 1 second");
        }
        if let Some(portal) = &self.portal {
            portal.check()?;
        }
        if let Some(slack) = &self.slack {
            slack.check()?;
        }
        if let Some(mcp) = &self.mcp {
            mcp.check()?;
        }
        Ok(())
    }

    /// Seconds between sweeps.
    pub fn sweep_interval(&self) -> u64 {
        self.housekeeping.interval.unwrap_or(30)
    }

    /// Seconds a new signing key is published before it signs: two sweeps,
    /// so every replica (and every gateway that fetches the JWKS) has it
    /// before any token carries it.
    pub fn key_grace(&self) -> i64 {
        i64::try_from(self.sweep_interval().saturating_mul(2)).unwrap_or(i64::MAX)
    }
}
