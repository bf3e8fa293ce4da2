//! What every request shares: the policy in the component, the store, the
//! signing key, metrics, webhooks, settings and the clock.

use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use greenlight_store::Store;
use greenlight_types::{Decision, Verdict};
use serde_json::{Value, json};

use super::keys::Signer;
use super::live::Version;
use super::settings::Settings;
use super::{metrics, notify};

/// A source of the current time in Unix seconds; tests substitute their own.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Clock").field(&self.now()).finish()
    }
}

impl Clock {
    /// A clock that reads `now` from a function.
    pub fn new(now: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        Self(Arc::new(now))
    }

    /// The wall clock.
    pub fn system() -> Self {
        Self::new(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        })
    }

    /// Now, in Unix seconds: what the engine is given.
    pub fn now(&self) -> u64 {
        (self.0)()
    }

    /// Now as the store counts time (a signed 64-bit column); saturates
    /// past the year 292 billion.
    pub fn at(&self) -> i64 {
        i64::try_from(self.now()).unwrap_or(i64::MAX)
    }
}

/// Seconds as the store counts them, saturating.
pub fn seconds(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Shared by every request.
pub struct AppState {
    /// The version deciding now (component, bundle, keys), swapped live.
    pub live: super::live::Live,
    /// The SHA-256 of the admin token, when the admin API is on.
    pub admin_token: Option<[u8; 32]>,
    /// Approvals, grants, the replay ledger, keys, audit.
    pub store: Store,
    /// Greenlight's signing key, replaced when keys rotate.
    pub signer: RwLock<Arc<Signer>>,
    /// How signing keys are sealed in the store.
    pub seal: super::seal::Seal,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Sends new approvals to webhooks.
    pub notifier: notify::Notifier,
    /// The server's own settings.
    pub settings: Settings,
    /// The base URL for metadata and challenges.
    pub public_url: String,
    /// The approval portal, when `[portal]` is configured.
    pub portal: Option<Arc<super::portal::Portal>>,
    /// Slack's buttons, when `[slack]` is configured.
    pub slack: Option<super::slack::Slack>,
    /// The MCP gateway, when `[mcp]` is configured.
    pub mcp: Option<Arc<super::mcp::Gateway>>,
    /// The time source.
    pub clock: Clock,
}

impl AppState {
    /// Now, in Unix seconds, as the store counts time.
    pub fn now(&self) -> i64 {
        self.clock.at()
    }

    /// The version deciding now: a request reads it once, when it starts,
    /// and finishes on it.
    pub fn version(&self) -> Arc<Version> {
        self.live.current()
    }

    /// The signing key in use now.
    pub fn signer(&self) -> Arc<Signer> {
        // A poisoned lock still holds a valid signer: writers only swap it.
        self.signer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Decides with `decide` (given now); when the answer is
    /// `token-unknown-key` for an issuer whose keys are fetched, fetches
    /// them (rate-limited) and, if they changed, decides once more.
    pub async fn decide(
        &self,
        v: &Version,
        decide: impl Fn(&greenlight_host::Policy, u64) -> Decision,
    ) -> Decision {
        let seen = v.key_sources.changes();
        let decision = decide(&v.policy, self.clock.now());
        match super::keysource::decision_refresh_issuer(&decision) {
            Some(issuer)
                if v.key_sources
                    .unknown_kid(issuer, seen, v.policy.as_ref())
                    .await =>
            {
                decide(&v.policy, self.clock.now())
            }
            _ => decision,
        }
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }

    /// A decision as the service's JSON answers show it: the decision's
    /// own JSON, the hash of the component that made it (`version`'s),
    /// and `ask` (where to ask) when approval is required.
    pub fn decision_json(&self, version: &Version, d: &Decision) -> Value {
        let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
        super::live::stamp(version, &mut v);
        if matches!(d.verdict, Verdict::ApprovalRequired(_)) {
            v["ask"] = json!({
                "backchannel_authentication_endpoint": self.url("/oauth/bc-authorize"),
                "token_endpoint": self.url("/oauth/token"),
            });
        }
        v
    }
}
