//! `greenlight serve`: the approval service over HTTP (axum on tokio).
//!
//! Decisions come from `greenlight.wasm` through `greenlight-host`; the
//! service adds what needs state: consuming single-use action tokens,
//! remembering window grants, the CIBA approval workflow, and minting
//! action tokens with its own key. The caller binds the listener (tests
//! bind port 0) and says when to shut down.

mod approval_use;
mod approvals;
mod arap;
mod auth;
mod authzen;
mod check;
mod enforce;
mod error;
pub mod forward;
mod housekeeping;
mod keys;
pub mod keysource;
pub mod live;
pub mod mcp;
pub mod metrics;
pub mod notify;
mod oauth;
pub mod portal;
pub mod seal;
pub mod settings;
pub mod shown;
pub mod slack;
mod state;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use greenlight_store::Store;
use greenlight_types::bundle::ACTION_ISSUER_NAME;
use tokio::net::TcpListener;

pub use error::ApiError;
pub use housekeeping::{refresh_keys, sweep};
pub use keys::Signer;
pub use settings::Settings;
pub use state::{AppState, Clock};

/// How long a graceful shutdown waits for webhook attempts in flight.
pub const WEBHOOK_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The largest request body accepted, in bytes: decisions and approval
/// requests are small JSON or form documents.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What `greenlight serve` needs to start.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// The bundle folder, or the URL of a signed bundle archive (`https://…`;
    /// see `live::remote`).
    pub bundle: PathBuf,
    /// A custom policy module (`--component`); `None` is the shipped
    /// `greenlight.wasm`.
    pub component: Option<PathBuf>,
    /// The store URL: `sqlite://greenlight.db` or `postgres://...`.
    pub store: String,
    /// The base URL clients reach this server at, for metadata and challenges.
    /// Defaults to `http://` and the listening address.
    pub public_url: Option<String>,
    /// The server's own settings (`--config`): webhooks, key rotation,
    /// housekeeping.
    pub settings: Settings,
    /// Whether a development bundle (with a `[dev]` signing key) may be
    /// served (`--dev`). Defaults to refusing one.
    pub development: bool,
}

/// Loads the bundle into the component, opens the store (running
/// migrations), loads or creates the signing key, and hands the engine the
/// public keys for action tokens.
pub async fn prepare(
    config: &ServeConfig,
    addr: SocketAddr,
    clock: Clock,
) -> anyhow::Result<Arc<AppState>> {
    let metrics = Arc::new(metrics::Metrics::new());
    let bundle = match config.bundle.to_str() {
        Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
            live::BundleSource::Remote(Arc::new(live::remote::Remote::new(
                url,
                &config.settings.remote_bundle,
            )?))
        }
        _ => live::BundleSource::Dir(config.bundle.clone()),
    };
    let sources = live::Sources {
        bundle,
        component: config.component.clone(),
        development: config.development,
    };
    // The bundle first: one the server will not serve opens no store. Its
    // action-token keys follow once the store is open.
    let live = live::Live::start(
        sources,
        &live::Setup {
            action_jwks: None,
            clock: &clock,
            metrics: &metrics,
            portal_issuer: None,
            slack: config.settings.slack.as_ref(),
        },
    )
    .await
    .with_context(|| format!("cannot load bundle {}", config.bundle.display()))?;
    let version = live.current();
    let store = Store::connect(&config.store)
        .await
        .with_context(|| "cannot open the store")?;
    let seal = config.settings.signing.seal()?;
    if !seal.is_sealing() {
        tracing::warn!(
            "signing keys are stored unsealed: set [signing] key_encryption_key_env or key_encryption_key_file"
        );
    }
    let signer =
        Signer::load_or_create(&store, clock.at(), config.settings.key_grace(), &seal).await?;
    version
        .policy
        .set_keys(ACTION_ISSUER_NAME, &signer.jwks().to_string())?;
    config.settings.check()?;
    let admin_token = match &config.settings.admin {
        Some(a) => Some(a.token_digest()?),
        None => None,
    };
    let callbacks: Vec<settings::Webhook> = config
        .settings
        .access_requests
        .callbacks
        .iter()
        .map(settings::CallbackReceiver::webhook)
        .collect();
    let notifier = notify::Notifier::new(
        &config.settings.webhooks,
        &callbacks,
        metrics.clone(),
        store.clone(),
        clock.clone(),
        config.settings.slack.is_some(),
    )?;
    let public_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let slack = match &config.settings.slack {
        Some(s) => Some(slack::Slack::new(s, version.info())?),
        None => None,
    };
    let portal = match &config.settings.portal {
        Some(p) => Some(Arc::new(portal::Portal::new(
            p,
            version.info(),
            &public_url,
        )?)),
        None => None,
    };
    let mcp = match &config.settings.mcp {
        Some(m) => Some(Arc::new(mcp::Gateway::new(m, &public_url)?)),
        None => None,
    };
    Ok(Arc::new(AppState {
        mcp,
        live,
        admin_token,
        store,
        signer: RwLock::new(Arc::new(signer)),
        seal,
        metrics,
        notifier,
        settings: config.settings.clone(),
        public_url,
        portal,
        slack,
        clock,
    }))
}

/// The HTTP routes.
pub fn router(state: Arc<AppState>) -> Router {
    let portal = if state.portal.is_some() {
        portal::routes(state.clone())
    } else {
        Router::new()
    };
    let mcp = match &state.settings.mcp {
        Some(m) => Router::new().route(m.path(), any(mcp::handle)).route(
            &format!("/.well-known/oauth-protected-resource{}", m.path()),
            get(mcp::metadata),
        ),
        None => Router::new(),
    };
    Router::new()
        .route("/healthz", get(check::healthz))
        .route("/v1/check", post(check::check))
        .route("/v1/forward-auth", any(forward::forward_auth))
        .route("/v1/forward-auth/nginx", any(forward::forward_auth_nginx))
        .route("/v1/ext-authz/{*path}", any(forward::ext_authz))
        .route("/access/v1/evaluation", post(authzen::evaluation))
        .route("/access/v1/evaluations", post(authzen::evaluations))
        .route("/access/v1/requests", post(arap::submit))
        .route("/access/v1/requests/{id}", get(arap::status))
        .route(
            "/access/v1/requests/{id}/cancel",
            post(arap::cancel).delete(arap::cancel),
        )
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/v1/approvals", get(approvals::list_approvals))
        .route("/v1/approvals/{id}", get(approvals::get_approval))
        .route("/v1/approvals/{id}/approve", post(approvals::approve))
        .route("/v1/approvals/{id}/deny", post(approvals::deny))
        .route("/v1/approvals/{id}/revoke", post(approvals::revoke))
        .route(
            "/oauth/bc-authorize",
            post(oauth::bc_authorize).layer(axum::middleware::map_response(no_store)),
        )
        .route(
            "/oauth/token",
            post(oauth::token).layer(axum::middleware::map_response(no_store)),
        )
        .route(
            "/oauth/introspect",
            post(oauth::introspect).layer(axum::middleware::map_response(no_store)),
        )
        .route("/.well-known/jwks.json", get(oauth::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(oauth::metadata),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/v1/admin/reload", post(live::admin::reload_now))
        .route("/v1/admin/policy", get(live::admin::policy))
        .route("/slack/interactions", post(slack::interactions))
        .merge(portal)
        .merge(mcp)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::track,
        ))
        .fallback(check::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Marks an OAuth answer as never to be cached (RFC 6749 §5.1): tokens and
/// what is said about them stay out of every cache.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    let headers = response.headers_mut();
    headers.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    headers.insert(
        axum::http::header::PRAGMA,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    response
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
    let v = state.version();
    tracing::info!(
        addr = %listener.local_addr()?,
        policy_hash = %v.policy_hash(),
        component_hash = %v.component_hash(),
        "serving"
    );
    drop(v);
    let sweeper = tokio::spawn(housekeeping::every_interval(state.clone()));
    let watcher = tokio::spawn(housekeeping::watch_keys(state.clone()));
    let deliverer = tokio::spawn(state.notifier.clone().work());
    state.live.run_key_worker();
    let hangup = live::watch::on_hangup(state.clone());
    let folder = match &state.live.sources().bundle {
        live::BundleSource::Dir(_) => state
            .settings
            .reload
            .interval()
            .map(|every| tokio::spawn(live::watch::watch(state.clone(), every))),
        live::BundleSource::Remote(_) => Some(tokio::spawn(live::watch::poll(
            state.clone(),
            state.settings.remote_bundle.poll_interval(),
        ))),
    };
    let served = axum::serve(listener, router(state.clone()))
        .with_graceful_shutdown(shutdown)
        .await;
    sweeper.abort();
    watcher.abort();
    deliverer.abort();
    state.live.stop_key_worker();
    for task in [hangup, folder].into_iter().flatten() {
        task.abort();
    }
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
