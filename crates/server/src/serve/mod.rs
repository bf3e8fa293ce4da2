//! `greenlight serve`: the approval service over HTTP (axum on tokio).
//!
//! Decisions come from `greenlight.wasm` through `greenlight-host`; the
//! service adds what needs state: consuming single-use action tokens,
//! remembering window grants, the CIBA approval workflow, and minting
//! action tokens with its own key. The caller binds the listener (tests
//! bind port 0) and says when to shut down.

mod api;
mod authzen;
mod error;
mod keys;
pub mod metrics;
pub mod notify;
mod oauth;
pub mod settings;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use greenlight_core::config::Config;
use greenlight_store::Store;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use keys::Signer;
pub use settings::Settings;

/// How long a graceful shutdown waits for webhook attempts in flight.
pub const WEBHOOK_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest request body accepted, in bytes: decisions and approval
/// requests are small JSON or form documents.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A source of the current time in Unix seconds; tests substitute their own.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The wall clock.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// What `greenlight serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The bundle folder.
    pub bundle: PathBuf,
    /// The store URL: `sqlite://greenlight.db` or `postgres://...`.
    pub store: String,
    /// The base URL clients reach this server at, for metadata and challenges.
    /// Defaults to `http://` and the listening address.
    pub public_url: Option<String>,
    /// The server's own settings (`--config`): webhooks, key rotation,
    /// housekeeping.
    pub settings: Settings,
}

/// Shared by every request.
pub struct AppState {
    /// The loaded bundle in the component.
    pub policy: greenlight_host::Policy,
    /// The parsed `greenlight.toml` (action-token issuer, approval defaults).
    pub config: Config,
    /// Approvals, grants, the replay ledger, keys, audit.
    pub store: Store,
    /// Greenlight's signing key, replaced when keys rotate.
    pub signer: RwLock<Arc<Signer>>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Sends new approvals to webhooks.
    pub notifier: notify::Notifier,
    /// The server's own settings.
    pub settings: Settings,
    /// The base URL for metadata and challenges.
    pub public_url: String,
    /// The time source.
    pub clock: Clock,
}

impl AppState {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The signing key in use now.
    pub fn signer(&self) -> Arc<Signer> {
        // A poisoned lock still holds a valid signer: writers only swap it.
        self.signer
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// An absolute URL on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }
}

/// Loads the bundle into the component, opens the store (running
/// migrations), loads or creates the signing key, and hands the engine the
/// public keys for action tokens.
pub async fn prepare(
    config: &ServeConfig,
    addr: SocketAddr,
    clock: Clock,
) -> anyhow::Result<Arc<AppState>> {
    let files = greenlight_host::read_bundle_dir(&config.bundle)
        .with_context(|| format!("cannot read bundle {}", config.bundle.display()))?;
    let cfg_text = files
        .iter()
        .find(|(n, _)| n == greenlight_core::bundle::CONFIG_FILE)
        .map(|(_, c)| c.clone())
        .unwrap_or_default();
    let engine = greenlight_host::Engine::load(greenlight_component::GREENLIGHT_WASM)?;
    let policy = engine.load_bundle(files)?;
    let bundle_config: Config = toml::from_str(&cfg_text)?;
    if bundle_config.action_tokens.is_none() {
        anyhow::bail!(
            "the bundle has no `[action_tokens]` section, so the server cannot mint action tokens"
        );
    }
    let store = Store::connect(&config.store)
        .await
        .with_context(|| "cannot open the store")?;
    let signer = Signer::load_or_create(&store, clock(), config.settings.key_grace()).await?;
    policy.set_keys(
        greenlight_core::bundle::ACTION_ISSUER_NAME,
        &signer.jwks().to_string(),
    )?;
    config.settings.check()?;
    let metrics = Arc::new(metrics::Metrics::new());
    let notifier = notify::Notifier::new(
        &config.settings.webhooks,
        metrics.clone(),
        store.clone(),
        clock.clone(),
    )?;
    Ok(Arc::new(AppState {
        policy,
        config: bundle_config,
        store,
        signer: RwLock::new(Arc::new(signer)),
        metrics,
        notifier,
        settings: config.settings.clone(),
        public_url: config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}")),
        clock,
    }))
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(api::healthz))
        .route("/v1/check", post(api::check))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/v1/approvals", get(api::list_approvals))
        .route("/v1/approvals/{id}", get(api::get_approval))
        .route("/v1/approvals/{id}/approve", post(api::approve))
        .route("/v1/approvals/{id}/deny", post(api::deny_approval))
        .route("/v1/approvals/{id}/revoke", post(api::revoke))
        .route("/oauth/bc-authorize", post(oauth::bc_authorize))
        .route("/oauth/token", post(oauth::token))
        .route("/oauth/introspect", post(oauth::introspect))
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(api::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Resolves on Ctrl-C or SIGTERM, so `greenlight serve` shuts down
/// gracefully under a terminal and under a supervisor alike.
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Serves until `shutdown` resolves, then finishes the requests in flight.
pub async fn run(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    tracing::info!(addr = %listener.local_addr()?, policy_hash = %state.policy.policy_hash(), "serving");
    let sweeper = tokio::spawn(housekeeping(state.clone()));
    let deliverer = tokio::spawn(state.notifier.clone().work());
    let served = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    deliverer.abort();
    // Let attempts in flight finish; what is left stays in the outbox.
    let left = state.notifier.drain(WEBHOOK_DRAIN).await;
    if left > 0 {
        tracing::warn!(
            left,
            "shutting down during webhook attempts; they are retried at the next start"
        );
    }
    served?;
    Ok(())
}

/// Runs [`sweep`] every `housekeeping.interval` seconds.
async fn housekeeping(st: Arc<AppState>) {
    let every = std::time::Duration::from_secs(st.settings.sweep_interval());
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sweep(&st).await {
            tracing::error!(error = %e, "housekeeping failed; retrying at the next sweep");
        }
    }
}

/// One housekeeping pass: marks approvals past their expiry as expired
/// (audited), forgets consumed tokens that can no longer be presented, adds
/// the next signing key when the newest is older than
/// `signing.rotate_after`, picks up keys another replica (or `greenlight
/// keys rotate`) created, signs with a new key once it has been published
/// for the grace period, and retires the keys it supersedes.
pub async fn sweep(st: &AppState) -> anyhow::Result<()> {
    let now = st.now();
    let expired = st.store.expire_due(now).await?;
    if expired > 0 {
        tracing::info!(expired, "approvals expired");
        st.metrics.approvals("expired", expired);
    }
    st.store.purge_ledger(now).await?;
    if let Some(after) = st.settings.signing.rotate_after
        && Signer::newest_since(&st.store)
            .await?
            .is_some_and(|since| now - since >= i64::try_from(after).unwrap_or(i64::MAX))
    {
        Signer::rotate(&st.store, now).await?;
    }
    refresh_keys(st).await?;
    // A replica still signing with a superseded key does so for at most one
    // more sweep (the grace is two), so `retain_for` plus the grace covers
    // every token the old key signed.
    let retain = i64::try_from(st.settings.signing.retain_for()).unwrap_or(i64::MAX);
    let until = now
        .saturating_add(retain)
        .saturating_add(st.settings.key_grace());
    st.signer().retire_superseded(&st.store, now, until).await?;
    Ok(())
}

/// Reloads the signing keys from the store; when they changed, signs with
/// the newest and hands the engine the new JWKS.
pub async fn refresh_keys(st: &AppState) -> anyhow::Result<()> {
    let fresh = Signer::load_or_create(&st.store, st.now(), st.settings.key_grace()).await?;
    let current = st.signer();
    if fresh.kid() == current.kid() && fresh.jwks() == current.jwks() {
        return Ok(());
    }
    st.policy.set_keys(
        greenlight_core::bundle::ACTION_ISSUER_NAME,
        &fresh.jwks().to_string(),
    )?;
    tracing::info!(kid = %fresh.kid(), "signing keys refreshed");
    *st.signer
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
    Ok(())
}
