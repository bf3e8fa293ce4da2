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
mod oauth;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
}

/// Shared by every request.
pub struct AppState {
    /// The loaded bundle in the component.
    pub policy: greenlight_host::Policy,
    /// The parsed `greenlight.toml` (action-token issuer, approval defaults).
    pub config: Config,
    /// Approvals, grants, the replay ledger, keys, audit.
    pub store: Store,
    /// Greenlight's signing key.
    pub signer: Signer,
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
    let signer = Signer::load_or_create(&store, clock()).await?;
    policy.set_keys(
        greenlight_core::bundle::ACTION_ISSUER_NAME,
        &signer.jwks().to_string(),
    )?;
    Ok(Arc::new(AppState {
        policy,
        config: bundle_config,
        store,
        signer,
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
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
