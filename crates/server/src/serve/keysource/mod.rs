//! Issuers' keys from their providers: the `jwks_uri` the bundle names, or
//! the one the provider's metadata names (OpenID Connect discovery, then
//! RFC 8414), fetched over HTTPS with the bundle's `[key_fetch]` limits,
//! cached as the provider's `Cache-Control`/`Expires` say (within the
//! configured minimum and maximum ages), refreshed in the background before
//! they expire, at once (rate-limited) when a token names a `kid` the set
//! lacks, and kept through failed fetches up to the configured staleness.
//! Keys reach the engine through `set-keys` only; an issuer that has none
//! (not fetched yet, or too stale) is withdrawn with the reason, so its
//! tokens are denied with a message that names the last fetch error.

pub mod fetch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use greenlight_types::bundle::{KeyFetchSettings, KeySource};
use greenlight_types::{BundleInfo, Decision, Denial, DenialCode, LoadError, Verdict};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::metrics::Metrics;
use super::state::Clock;
pub use fetch::Fetched;
use fetch::Fetcher;

/// Where one issuer's keys come from, resolved as far as it can be.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Origin {
    /// The JWKS at this URL.
    JwksUri(String),
    /// The metadata documents to try, in order.
    Discovery(Vec<String>),
}

/// What is known of one issuer's keys.
#[derive(Clone, Debug, Default)]
struct Status {
    /// The JWKS URL in use (from the bundle, or found by discovery).
    jwks_uri: Option<String>,
    /// When the keys in the engine were fetched (server clock).
    loaded_at: Option<u64>,
    /// Until when the provider said they are fresh.
    fresh_until: u64,
    /// When to fetch next.
    next_fetch: u64,
    /// The `kid`s of the keys in the engine.
    kids: Vec<String>,
    /// Why the last fetch failed, if it did.
    last_error: Option<String>,
    /// Failed fetches in a row (for the backoff).
    failures: u32,
    /// When a token's unknown `kid` last caused a fetch.
    last_unknown_kid_fetch: Option<u64>,
    /// Whether the keys were withdrawn for being too stale.
    withdrawn: bool,
    /// The reason given with the last withdrawal, until keys load.
    withdrawn_for: Option<String>,
    /// SHA-256 of the key set last handed to the engine.
    digest: Option<[u8; 32]>,
    /// The key set last handed to the engine, for a new version of the
    /// bundle to start with.
    jwks: Option<String>,
}

/// One issuer whose keys the server fetches.
struct Source {
    issuer: String,
    origin: Origin,
    status: Mutex<Status>,
    /// One fetch at a time per issuer.
    single_flight: tokio::sync::Mutex<()>,
}

impl Source {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The issuers whose keys the server fetches, and how.
pub struct KeySources {
    sources: Vec<Source>,
    /// Key changes in the engine, for [`Self::changes`].
    changes: AtomicU64,
    settings: KeyFetchSettings,
    fetcher: Fetcher,
    clock: Clock,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for KeySources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySources")
            .field(
                "issuers",
                &self.sources.iter().map(|s| &s.issuer).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What a key source does with the engine: hand it keys, or withdraw them.
pub trait KeySink: Send + Sync {
    /// Replaces `issuer`'s keys with `jwks`; an `Err` says why they were
    /// refused (the old keys stay).
    fn set_keys(&self, issuer: &str, jwks: &str) -> Result<(), String>;
    /// Removes `issuer`'s keys, so its tokens are denied saying `reason`.
    fn withdraw_keys(&self, issuer: &str, reason: &str) -> Result<(), String>;
}

impl KeySink for greenlight_host::Policy {
    fn set_keys(&self, issuer: &str, jwks: &str) -> Result<(), String> {
        greenlight_host::Policy::set_keys(self, issuer, jwks).map_err(|e| refusal(&e))
    }

    fn withdraw_keys(&self, issuer: &str, reason: &str) -> Result<(), String> {
        greenlight_host::Policy::withdraw_keys(self, issuer, reason).map_err(|e| refusal(&e))
    }
}

/// Why the engine refused a key change, in its own words.
fn refusal(e: &greenlight_host::HostError) -> String {
    match e {
        greenlight_host::HostError::Bundle(LoadError::InvalidBundle(problems)) => problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        greenlight_host::HostError::Bundle(LoadError::Other(message)) => message.clone(),
        other => other.to_string(),
    }
}

impl KeySources {
    /// The bundle's issuers whose keys are fetched; refuses a URL that is
    /// neither HTTPS nor (when the bundle allows it) plain HTTP to loopback.
    pub fn new(info: &BundleInfo, clock: Clock, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let settings = info.key_fetch.clone();
        let mut sources = Vec::new();
        for i in &info.issuers {
            let origin = match &i.keys {
                KeySource::Bundle => continue,
                KeySource::JwksUri(u) => {
                    fetch::check_url(u, &settings)
                        .map_err(|e| anyhow::anyhow!("issuer `{}`: jwks_uri {e}", i.issuer))?;
                    Origin::JwksUri(u.clone())
                }
                KeySource::Discovery(urls) => {
                    for u in urls {
                        fetch::check_url(u, &settings).map_err(|e| {
                            anyhow::anyhow!("issuer `{}`: its metadata URL {e}", i.issuer)
                        })?;
                    }
                    Origin::Discovery(urls.clone())
                }
            };
            let jwks_uri = match &origin {
                Origin::JwksUri(u) => Some(u.clone()),
                Origin::Discovery(_) => None,
            };
            sources.push(Source {
                issuer: i.issuer.clone(),
                origin,
                status: Mutex::new(Status {
                    jwks_uri,
                    ..Status::default()
                }),
                single_flight: tokio::sync::Mutex::new(()),
            });
        }
        Ok(Self {
            changes: AtomicU64::new(0),
            fetcher: Fetcher::new(&settings)?,
            sources,
            settings,
            clock,
            metrics,
        })
    }

    /// Whether any issuer's keys are fetched.
    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    fn source(&self, issuer: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.issuer == issuer)
    }

    /// Fetches every issuer's keys once (at start: the server then begins
    /// with keys where the providers answered, and fails closed, saying
    /// why, where they did not).
    pub async fn fetch_all(&self, sink: &dyn KeySink) {
        for s in &self.sources {
            self.refresh(s, sink, "start").await;
        }
    }

    /// Starts a new version of the bundle with the keys `old` (the
    /// version it replaces) holds for every issuer whose keys come from
    /// the same place, so a swap neither refetches them nor loses them
    /// while a provider is down; then fetches the keys of the others.
    pub async fn adopt(&self, old: &KeySources, sink: &dyn KeySink) {
        for s in &self.sources {
            let Some(o) = old.source(&s.issuer).filter(|o| o.origin == s.origin) else {
                self.refresh(s, sink, "new bundle").await;
                continue;
            };
            let st = o.status().clone();
            let handed = match (&st.jwks, st.withdrawn_for.as_deref()) {
                (Some(jwks), _) if !st.withdrawn => sink.set_keys(&s.issuer, jwks),
                (_, Some(reason)) => sink.withdraw_keys(&s.issuer, reason),
                _ => Err("no keys yet".to_owned()),
            };
            match handed {
                Ok(()) => *s.status() = st,
                Err(_) => {
                    self.refresh(s, sink, "new bundle").await;
                }
            }
        }
    }

    /// How many times any issuer's keys changed in the engine: a caller
    /// reads it before deciding, so that a change made meanwhile (by a
    /// fetch another request started) is seen.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::SeqCst)
    }

    /// Fetches `source`'s keys now (one fetch at a time per issuer) and
    /// hands them to the engine. Returns whether the engine's keys changed.
    async fn refresh(&self, source: &Source, sink: &dyn KeySink, why: &'static str) -> bool {
        let _one = source.single_flight.lock().await;
        self.fetch_now(source, sink, why).await
    }

    /// [`Self::refresh`] with the issuer's fetch lock held by the caller.
    async fn fetch_now(&self, source: &Source, sink: &dyn KeySink, why: &'static str) -> bool {
        let now = self.clock.now();
        let jwks_uri = source.status().jwks_uri.clone();
        let result = match (jwks_uri, &source.origin) {
            (Some(uri), _) => self.fetcher.jwks(&uri).await.map(|f| (uri, f)),
            (None, Origin::Discovery(urls)) => {
                match self.fetcher.discover(&source.issuer, urls).await {
                    Ok(uri) => self.fetcher.jwks(&uri).await.map(|f| (uri, f)),
                    Err(e) => Err(e),
                }
            }
            (None, Origin::JwksUri(uri)) => self.fetcher.jwks(uri).await.map(|f| (uri.clone(), f)),
        };
        let result = result.and_then(|(uri, fetched)| {
            // The same set as the engine holds: nothing to hand over (a
            // change empties the engine's pool of instances).
            let digest: [u8; 32] = Sha256::digest(fetched.body.as_bytes()).into();
            let st = source.status();
            let same = st.digest == Some(digest) && !st.withdrawn;
            drop(st);
            if !same {
                sink.set_keys(&source.issuer, &fetched.body)
                    .map_err(|e| format!("the key set was refused: {e}"))?;
                let mut st = source.status();
                st.digest = Some(digest);
                st.jwks = Some(fetched.body.clone());
            }
            Ok((uri, fetched))
        });
        match result {
            Ok((uri, fetched)) => {
                let age = fetched
                    .max_age
                    .unwrap_or(self.settings.min_age_seconds)
                    .clamp(self.settings.min_age_seconds, self.settings.max_age_seconds);
                let mut st = source.status();
                let changed = st.kids != fetched.kids || st.withdrawn || st.loaded_at.is_none();
                tracing::info!(
                    issuer = %source.issuer, jwks_uri = %uri, kids = ?fetched.kids,
                    fresh_for = age, why, "fetched the issuer's keys"
                );
                st.jwks_uri = Some(uri);
                st.loaded_at = Some(now);
                st.fresh_until = now.saturating_add(age);
                // Before they expire: at three quarters of their life.
                st.next_fetch = now.saturating_add((age.saturating_mul(3) / 4).max(1));
                st.kids = fetched.kids;
                st.last_error = None;
                st.failures = 0;
                st.withdrawn = false;
                st.withdrawn_for = None;
                drop(st);
                if changed {
                    self.changes.fetch_add(1, Ordering::SeqCst);
                }
                self.metrics.key_fetch(&source.issuer, "ok");
                changed
            }
            Err(error) => {
                let error = tidy(&error);
                let mut st = source.status();
                tracing::warn!(issuer = %source.issuer, %error, why, "fetching the issuer's keys failed; the last good keys keep serving");
                st.failures = st.failures.saturating_add(1);
                // Retry with a backoff: 1 s doubling, at most the minimum age.
                let backoff =
                    (1u64 << st.failures.min(16)).min(self.settings.min_age_seconds.max(1));
                st.next_fetch = now.saturating_add(backoff);
                if matches!(source.origin, Origin::Discovery(_)) {
                    // The provider may have moved its keys: ask again.
                    st.jwks_uri = None;
                }
                st.last_error = Some(error.clone());
                let never_loaded = st.loaded_at.is_none();
                drop(st);
                self.metrics.key_fetch(&source.issuer, "failed");
                // Said once per reason: a withdrawal empties the engine's
                // pool of instances, which a repeated failure need not do.
                let reason = format!("fetching its keys failed: {error}");
                if never_loaded && source.status().withdrawn_for.as_deref() != Some(&reason) {
                    match sink.withdraw_keys(&source.issuer, &reason) {
                        Ok(()) => source.status().withdrawn_for = Some(reason),
                        Err(e) => {
                            tracing::error!(issuer = %source.issuer, error = %e, "cannot record why the issuer has no keys");
                        }
                    }
                }
                false
            }
        }
    }

    /// Withdraws the keys of issuers whose last good set is older than its
    /// freshness plus the allowed staleness, so their tokens fail closed.
    fn expire_stale(&self, sink: &dyn KeySink) {
        let now = self.clock.now();
        for s in &self.sources {
            // A fetch under way decides for itself; withdrawing under it
            // could undo the keys it is about to report loaded.
            let Ok(_one) = s.single_flight.try_lock() else {
                continue;
            };
            let mut st = s.status();
            let limit = st
                .fresh_until
                .saturating_add(self.settings.max_stale_seconds);
            if st.loaded_at.is_some() && !st.withdrawn && now > limit {
                let reason = format!(
                    "its keys are too stale: fetched {} s ago, fresh for {} s, and no fetch has worked since ({})",
                    now.saturating_sub(st.loaded_at.unwrap_or(now)),
                    st.fresh_until.saturating_sub(st.loaded_at.unwrap_or(now)),
                    st.last_error.as_deref().unwrap_or("no error recorded")
                );
                tracing::error!(issuer = %s.issuer, %reason, "withdrawing the issuer's keys");
                match sink.withdraw_keys(&s.issuer, &reason) {
                    Ok(()) => {
                        st.withdrawn = true;
                        st.withdrawn_for = Some(reason);
                        st.kids.clear();
                    }
                    Err(e) => {
                        tracing::error!(issuer = %s.issuer, error = %e, "cannot withdraw the issuer's keys");
                    }
                }
            }
        }
    }

    /// Refreshes keys as they come due and withdraws stale ones, checking
    /// the clock every second, until the task is aborted.
    pub async fn work(self: Arc<Self>, sink: Arc<dyn KeySink>) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = self.clock.now();
            for s in &self.sources {
                let due = s.status().next_fetch <= now;
                if due {
                    self.refresh(s, sink.as_ref(), "due").await;
                }
            }
            self.expire_stale(sink.as_ref());
        }
    }

    /// After a denial for a `kid` that `issuer`'s keys lack, the request
    /// decided when [`Self::changes`] was `seen`: returns whether it is
    /// worth deciding again. It is when keys changed since (another
    /// request's fetch, awaited if it is under way: a rotation's first
    /// requests all pass); otherwise the keys are fetched at once unless
    /// that was done less than `unknown_kid_interval` seconds ago (a flood
    /// of made-up `kid`s makes no flood of fetches), and it is when they
    /// changed.
    pub async fn unknown_kid(&self, issuer: &str, seen: u64, sink: &dyn KeySink) -> bool {
        let Some(source) = self.source(issuer) else {
            return false;
        };
        if self.changes() != seen {
            return true;
        }
        let _one = source.single_flight.lock().await;
        if self.changes() != seen {
            return true;
        }
        let now = self.clock.now();
        {
            let mut st = source.status();
            if let Some(last) = st.last_unknown_kid_fetch
                && now < last.saturating_add(self.settings.unknown_kid_interval_seconds)
            {
                return false;
            }
            st.last_unknown_kid_fetch = Some(now);
        }
        self.fetch_now(source, sink, "unknown kid").await
    }

    /// What `/healthz` says of each fetched issuer's keys.
    pub fn health(&self) -> Vec<Value> {
        let now = self.clock.now();
        self.sources
            .iter()
            .map(|s| {
                let st = s.status();
                let has_keys = st.loaded_at.is_some() && !st.withdrawn;
                json!({
                    "issuer": s.issuer,
                    "source": match s.origin { Origin::JwksUri(_) => "jwks_uri", Origin::Discovery(_) => "discovery" },
                    "jwks_uri": st.jwks_uri,
                    "keys": has_keys,
                    "kids": st.kids,
                    "age_seconds": st.loaded_at.map(|t| now.saturating_sub(t)),
                    "fresh_for_seconds": st.loaded_at.map(|_| st.fresh_until.saturating_sub(now)),
                    "last_error": st.last_error,
                })
            })
            .collect()
    }

    /// Whether every fetched issuer has keys in the engine now.
    pub fn all_loaded(&self) -> bool {
        self.sources.iter().all(|s| {
            let st = s.status();
            st.loaded_at.is_some() && !st.withdrawn
        })
    }

    /// Each fetched issuer and the age of its keys in seconds (`None`
    /// without keys), for the metrics.
    pub fn ages(&self) -> Vec<(String, Option<u64>)> {
        let now = self.clock.now();
        self.sources
            .iter()
            .map(|s| {
                let st = s.status();
                let age = (!st.withdrawn)
                    .then_some(st.loaded_at)
                    .flatten()
                    .map(|t| now.saturating_sub(t));
                (s.issuer.clone(), age)
            })
            .collect()
    }
}

/// The longest error text kept, logged and given as a reason.
const MAX_ERROR_CHARS: usize = 512;

/// An error as it is kept, logged, reported and put in denials: control
/// characters (from a provider's text) as spaces, at most
/// [`MAX_ERROR_CHARS`] characters.
fn tidy(error: &str) -> String {
    let mut out: String = error
        .chars()
        .take(MAX_ERROR_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if error.chars().nth(MAX_ERROR_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// The issuer whose keys a denial says to refresh: `token-unknown-key` for
/// an issuer whose keys are fetched.
pub fn refresh_issuer(denial: &Denial) -> Option<&str> {
    (denial.code == DenialCode::TokenUnknownKey)
        .then_some(denial.issuer.as_deref())
        .flatten()
}

/// The issuer a decision's denial says to refresh, as [`refresh_issuer`].
pub fn decision_refresh_issuer(decision: &Decision) -> Option<&str> {
    match &decision.verdict {
        Verdict::Deny(d) => refresh_issuer(d),
        _ => None,
    }
}
