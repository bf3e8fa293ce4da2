//! Live policy: the version that decides now, and swapping in a new one
//! while the service serves.
//!
//! A version is a component (`greenlight.wasm` or a custom module) with a
//! bundle loaded in it, the keys its issuers use, and their fetch state.
//! A swap ([`reload`]) is triggered by a change in the bundle folder or
//! the component file ([`watch`]), `SIGHUP`, or `POST /v1/admin/reload`
//! ([`admin`]). It happens off the request path, one at a time:
//!
//! 1. the component is compiled (or the current one reused when its bytes
//!    did not change); one that does not export `greenlight:approval/approver`
//!    is refused;
//! 2. the bundle is read and loaded in it; a bundle that does not load, a
//!    development bundle without `--dev`, one without `[action_tokens]`,
//!    or one that drops the issuer the portal or Slack signs people in
//!    with is refused;
//! 3. the bundle's own tests ([`crate::policytest`]) run against it; one
//!    failure refuses it;
//! 4. the new version gets Greenlight's action-token keys and, for every
//!    issuer whose keys come from the same place, the keys the old version
//!    holds (others are fetched);
//! 5. it replaces the old one in one step.
//!
//! A request reads the version once, when it starts, and finishes on it.
//! Every decision the service answers names its bundle hash and component
//! hash; every swap and every refusal is logged, counted
//! (`greenlight_policy_swaps`), and written to the audit log
//! (`policy.swapped`, `policy.refused`). A refused swap leaves the old
//! version serving.

pub mod admin;
pub mod remote;
pub mod sources;
pub mod watch;

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use anyhow::{Context, anyhow, bail};
use greenlight_host::{Engine, HostError, Policy};
use greenlight_store::{NewAuditEvent, SYSTEM_ACTOR};
use greenlight_types::BundleInfo;
use greenlight_types::bundle::{ACTION_ISSUER_NAME, ActionTokenSettings};
use serde::Serialize;
use serde_json::json;

use super::AppState;
use super::keysource::{KeySink, KeySources};
use super::metrics::Metrics;
use super::state::Clock;
use crate::policytest;
pub use sources::{BundleSource, Sources};
use sources::{Read, ReadError};

/// One version of what decides: a component with a bundle loaded in it.
pub struct Version {
    /// The bundle in the component.
    pub policy: Arc<Policy>,
    /// The issuers whose keys are fetched, and their state.
    pub key_sources: Arc<KeySources>,
    /// The bundle's action-token settings (known to be present).
    pub action_tokens: ActionTokenSettings,
    /// The compiled component, reused when only the bundle changes.
    engine: Engine,
    /// What the sources held (see [`Sources::fingerprint`]), so a watcher
    /// sees what changed.
    pub(crate) fingerprint: [u8; 32],
}

impl Version {
    /// What the component said about the bundle.
    pub fn info(&self) -> &BundleInfo {
        self.policy.info()
    }

    /// Hex SHA-256 of the bundle.
    pub fn policy_hash(&self) -> &str {
        self.policy.policy_hash()
    }

    /// Hex SHA-256 of the component.
    pub fn component_hash(&self) -> &str {
        self.engine.component_hash()
    }
}

impl std::fmt::Debug for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Version")
            .field("policy_hash", &self.policy_hash())
            .field("component_hash", &self.component_hash())
            .finish_non_exhaustive()
    }
}

/// How an attempt to swap ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A new version decides now.
    Swapped,
    /// Nothing changed: the version deciding stays.
    Unchanged,
    /// The new version was refused; the old one keeps deciding.
    Refused,
    /// The sources could not be read (a missing file, a bundle URL that
    /// does not answer); the version deciding stays.
    Unavailable,
}

/// What an attempt to swap did, as the admin API and the log say it.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// How it ended.
    pub outcome: Outcome,
    /// What started it: `start`, `watch` (the folder), `poll` (the bundle
    /// URL), `sighup` or `admin`.
    pub trigger: String,
    /// When, in Unix seconds.
    pub at: u64,
    /// The bundle hash deciding after the attempt.
    pub policy_hash: String,
    /// The component hash deciding after the attempt.
    pub component_hash: String,
    /// Why it was refused; the tests' summary when they ran.
    pub detail: String,
    /// How long the attempt took, in milliseconds.
    pub took_ms: u64,
}

/// The version deciding now and how it changes.
pub struct Live {
    current: RwLock<Arc<Version>>,
    /// One swap at a time; key rotation takes it too, so the keys it
    /// hands over reach whichever version decides.
    swapping: tokio::sync::Mutex<()>,
    sources: Sources,
    last: Mutex<Option<Attempt>>,
    /// The fingerprint of the last version refused, and when, so a watcher
    /// or a poll refuses the same one once, not at every look (for
    /// [`REFUSED_FOR`]: a refusal that was passing, a clock-bound test or
    /// a failing instance, is tried again after it).
    refused: Mutex<Option<([u8; 32], std::time::Instant)>>,
    /// When a watcher or a poll last wrote a refusal to the audit log: at
    /// most one a minute, whatever the source keeps serving.
    quiet_audit: Mutex<Option<std::time::Instant>>,
    /// The task refreshing the current version's fetched keys.
    key_worker: Mutex<Option<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("current", &self.current())
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

/// What a version needs besides its sources.
pub struct Setup<'a> {
    /// Greenlight's action-token keys (a JWKS); at start they come once
    /// the store is open, after the bundle is known to be servable.
    pub action_jwks: Option<String>,
    /// The service clock.
    pub clock: &'a Clock,
    /// Where key fetches are counted.
    pub metrics: &'a Arc<Metrics>,
    /// The issuer the portal signs people in with, which every version
    /// must trust.
    pub portal_issuer: Option<&'a str>,
    /// Slack's settings, whose issuer every version must trust.
    pub slack: Option<&'a super::slack::SlackSettings>,
}

/// Builds a version from what `sources` hold, reusing `old`'s compiled
/// component when its bytes did not change and its fetched keys where the
/// issuer's key source did not. Blocking work (compiling, loading,
/// testing) runs off the async threads.
async fn build(
    sources: &Sources,
    read: Read,
    old: Option<&Version>,
    cx: &Setup<'_>,
) -> anyhow::Result<(Version, String)> {
    let reuse = old
        .filter(|o| o.engine.component_hash() == crate::archive::hex(&read.component_digest))
        .map(|o| o.engine.clone());
    let development = sources.development;
    let now = cx.clock.now();
    let Read {
        component,
        component_digest: _,
        files,
        tests,
        fingerprint,
    } = read;
    let (engine, policy, summary) = tokio::task::spawn_blocking(move || {
        let engine = match reuse {
            Some(e) => e,
            None => Engine::load(&component).map_err(|e| match e {
                HostError::Component(why) => anyhow!("the component cannot be used: {why}"),
                other => anyhow!(other),
            })?,
        };
        // The module's refusal says it all: no cause repeated after it.
        let policy = engine
            .load_bundle(files)
            .map_err(|e| anyhow!(e.to_string()))?;
        if policy.info().development && !development {
            bail!(
                "the bundle has a `[dev]` signing key: anyone holding it mints tokens the bundle \
                 accepts. It is for trying things; serve it with --dev, or remove `[dev]`"
            );
        }
        let summary = if tests.is_empty() {
            "the bundle has no tests".to_owned()
        } else {
            let outcomes = policytest::run(&policy, &tests, now)?;
            if outcomes.iter().any(|o| o.failure.is_some()) {
                bail!("its tests failed: {}", policytest::summary(&outcomes));
            }
            format!("tests: {}", policytest::summary(&outcomes))
        };
        anyhow::Ok((engine, policy, summary))
    })
    .await
    .context("loading the new version panicked")??;
    let info = policy.info();
    let Some(action_tokens) = info.action_tokens.clone() else {
        bail!(
            "the bundle has no `[action_tokens]` section, so the server cannot mint action tokens"
        );
    };
    if let Some(issuer) = cx.portal_issuer
        && !info.issuers.iter().any(|i| i.issuer == issuer)
    {
        bail!("the bundle no longer trusts `{issuer}`, whom the portal signs people in with");
    }
    if let Some(slack) = cx.slack {
        slack.check_issuer(info)?;
    }
    // The first issuer's subjects are Cedar's `User::"sub"`, and
    // `user:SUBJECT` approvers name them: pending approvals and grants
    // would change meaning under another first issuer.
    if let Some(o) = old {
        let first = |i: &BundleInfo| i.issuers.first().map(|x| x.issuer.clone());
        if first(o.info()) != first(info) {
            bail!(
                "the bundle's first issuer changed (from `{}` to `{}`): its subjects and `user:` \
                 approvers would mean others; restart to change it",
                first(o.info()).unwrap_or_default(),
                first(info).unwrap_or_default()
            );
        }
    }
    if let Some(jwks) = &cx.action_jwks {
        policy
            .set_keys(ACTION_ISSUER_NAME, jwks)
            .context("the action-token keys were refused")?;
    }
    let key_sources = Arc::new(KeySources::new(info, cx.clock.clone(), cx.metrics.clone())?);
    match old {
        Some(o) => key_sources.adopt(&o.key_sources, &policy).await,
        // At start, begin with the providers' keys where they answer;
        // where they do not, their tokens are denied, saying why, until a
        // later fetch works.
        None => key_sources.fetch_all(&policy).await,
    }
    Ok((
        Version {
            policy: Arc::new(policy),
            key_sources,
            action_tokens,
            engine,
            fingerprint,
        },
        summary,
    ))
}

impl Live {
    /// The first version, at start: anything wrong stops the server.
    pub async fn start(sources: Sources, cx: &Setup<'_>) -> anyhow::Result<Self> {
        let read = match sources.read().await {
            Ok(r) => r,
            Err(ReadError::Unavailable(e) | ReadError::Refused { error: e, .. }) => return Err(e),
        };
        let (version, summary) = build(&sources, read, None, cx).await?;
        tracing::info!(
            policy_hash = %version.policy_hash(),
            component_hash = %version.component_hash(),
            %summary,
            "policy loaded"
        );
        cx.metrics
            .version(None, version.policy_hash(), version.component_hash());
        Ok(Self {
            last: Mutex::new(Some(Attempt {
                outcome: Outcome::Swapped,
                trigger: "start".to_owned(),
                at: cx.clock.now(),
                policy_hash: version.policy_hash().to_owned(),
                component_hash: version.component_hash().to_owned(),
                detail: summary,
                took_ms: 0,
            })),
            current: RwLock::new(Arc::new(version)),
            swapping: tokio::sync::Mutex::new(()),
            sources,
            refused: Mutex::new(None),
            quiet_audit: Mutex::new(None),
            key_worker: Mutex::new(None),
        })
    }

    /// The version deciding now. A request reads it once and finishes on it.
    pub fn current(&self) -> Arc<Version> {
        // A poisoned lock still holds a whole version: writers only swap it.
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Where versions come from.
    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The last attempt to swap (the start counts as one).
    pub fn last_attempt(&self) -> Option<Attempt> {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Held while the version may not change (a key rotation handing its
    /// keys to the version deciding).
    pub async fn hold(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.swapping.lock().await
    }

    /// Starts refreshing the current version's fetched keys, stopping the
    /// task that refreshed the previous one's.
    pub fn run_key_worker(&self) {
        let v = self.current();
        let task = tokio::spawn(
            v.key_sources
                .clone()
                .work(v.policy.clone() as Arc<dyn KeySink>),
        );
        let old = self
            .key_worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace(task.abort_handle());
        if let Some(old) = old {
            old.abort();
        }
    }

    /// Stops refreshing keys (at shutdown).
    pub fn stop_key_worker(&self) {
        if let Some(old) = self
            .key_worker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            old.abort();
        }
    }
}

/// Reads the sources and, when they changed, swaps in a new version that
/// passes every check; otherwise leaves the current one deciding. Says
/// what happened in the log, the metrics, the audit log and the answer.
pub async fn reload(st: &AppState, trigger: &str) -> Attempt {
    reload_expecting(st, trigger, None).await
}

/// How long a watcher or a poll leaves a refused version alone.
pub const REFUSED_FOR: std::time::Duration = std::time::Duration::from_secs(300);

/// The longest `detail` an attempt records: what a refusal quotes from a
/// source (a signature's key id, a test's name) is cut to it.
pub const MAX_DETAIL: usize = 4096;

/// [`reload`], going ahead only when the sources still hold `expected`
/// (the fingerprint a watcher saw hold still), so a change that moved
/// again between two looks waits for the next one.
pub async fn reload_expecting(st: &AppState, trigger: &str, expected: Option<[u8; 32]>) -> Attempt {
    let started = std::time::Instant::now();
    let _one = st.live.swapping.lock().await;
    let old = st.live.current();
    // Watchers and polls look again and again: a version refused once is
    // not tried (or audited) again for a while, unless the sources change.
    let quiet = matches!(trigger, "watch" | "poll");
    let last_refused = st
        .live
        .refused
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .filter(|(_, at)| at.elapsed() < REFUSED_FOR)
        .map(|(f, _)| f);
    let result = match st.live.sources.read().await {
        Ok(read) if expected.is_some_and(|e| e != read.fingerprint) => Ok(None),
        Err(ReadError::Unavailable(e)) => Err((Outcome::Unavailable, None, e)),
        Err(ReadError::Refused { fingerprint, .. })
            if quiet && last_refused == Some(fingerprint) =>
        {
            Ok(None)
        }
        Err(ReadError::Refused { fingerprint, error }) => {
            Err((Outcome::Refused, Some(fingerprint), error))
        }
        Ok(read) if read.fingerprint == old.fingerprint => Ok(None),
        Ok(read) if quiet && last_refused == Some(read.fingerprint) => Ok(None),
        Ok(read) => {
            let fingerprint = read.fingerprint;
            let signer = st.signer();
            let cx = Setup {
                action_jwks: Some(signer.jwks().to_string()),
                clock: &st.clock,
                metrics: &st.metrics,
                portal_issuer: st.portal.as_ref().map(|p| p.issuer()),
                slack: st.settings.slack.as_ref(),
            };
            build(&st.live.sources, read, Some(&old), &cx)
                .await
                .map(Some)
                .map_err(|e| (Outcome::Refused, Some(fingerprint), e))
        }
    };
    let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let (outcome, now, detail) = match result {
        Ok(None) => (Outcome::Unchanged, old.clone(), String::new()),
        Ok(Some((version, summary))) => {
            let version = Arc::new(version);
            *st.live
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner) = version.clone();
            st.live.run_key_worker();
            (Outcome::Swapped, version, summary)
        }
        Err((outcome, fingerprint, e)) => {
            if let Some(f) = fingerprint {
                *st.live
                    .refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some((f, std::time::Instant::now()));
            }
            let mut detail = format!("{e:#}");
            if detail.len() > MAX_DETAIL {
                let mut cut = MAX_DETAIL;
                while !detail.is_char_boundary(cut) {
                    cut -= 1;
                }
                detail.truncate(cut);
                detail.push('…');
            }
            (outcome, old.clone(), detail)
        }
    };
    let attempt = Attempt {
        outcome,
        trigger: trigger.to_owned(),
        at: st.clock.now(),
        policy_hash: now.policy_hash().to_owned(),
        component_hash: now.component_hash().to_owned(),
        detail,
        took_ms,
    };
    // A look that found nothing new is not news.
    if !(quiet && attempt.outcome == Outcome::Unchanged) {
        record(st, &old, &attempt, quiet).await;
    }
    attempt
}

/// Logs, counts and audits an attempt.
async fn record(st: &AppState, old: &Version, a: &Attempt, quiet: bool) {
    let (label, event) = match a.outcome {
        Outcome::Swapped => ("swapped", Some("policy.swapped")),
        Outcome::Unchanged => ("unchanged", None),
        Outcome::Refused => ("refused", Some("policy.refused")),
        Outcome::Unavailable => ("unavailable", None),
    };
    st.metrics.swap(label);
    match a.outcome {
        Outcome::Swapped => {
            tracing::info!(
                trigger = %a.trigger, policy_hash = %a.policy_hash, component_hash = %a.component_hash,
                old_policy_hash = %old.policy_hash(), took_ms = a.took_ms, detail = %a.detail,
                "policy swapped"
            );
            st.metrics.version(
                Some((old.policy_hash(), old.component_hash())),
                &a.policy_hash,
                &a.component_hash,
            );
        }
        Outcome::Refused => tracing::warn!(
            trigger = %a.trigger, why = %a.detail, policy_hash = %a.policy_hash,
            "a new policy version was refused; the current one keeps deciding"
        ),
        Outcome::Unchanged => tracing::debug!(trigger = %a.trigger, "policy unchanged"),
        Outcome::Unavailable => tracing::warn!(
            trigger = %a.trigger, why = %a.detail,
            "the policy sources cannot be read now; the current version keeps deciding"
        ),
    }
    *st.live.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(a.clone());
    // A source that keeps serving new refused versions (a new signature at
    // every poll) is audited once a minute; each is still logged.
    let event = event.filter(|_| {
        if !(quiet && a.outcome == Outcome::Refused) {
            return true;
        }
        let mut last = st
            .live
            .quiet_audit
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60));
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    });
    if let Some(event) = event {
        let detail = json!({
            "trigger": a.trigger,
            "policy_hash": a.policy_hash,
            "component_hash": a.component_hash,
            "previous_policy_hash": old.policy_hash(),
            "previous_component_hash": old.component_hash(),
            "detail": a.detail,
        });
        if let Err(e) = st
            .store
            .append_audit(NewAuditEvent {
                at: st.now(),
                actor: SYSTEM_ACTOR.to_owned(),
                event: event.to_owned(),
                approval_id: None,
                detail,
            })
            .await
        {
            tracing::error!(error = %e, event, "cannot write the policy change to the audit log");
        }
    }
}

/// The decision as the service's answers show it: names the component
/// that decided as well as the bundle.
pub fn stamp(v: &Version, json: &mut serde_json::Value) {
    json["component_hash"] = serde_json::Value::from(v.component_hash());
}
