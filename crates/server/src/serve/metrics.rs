//! Prometheus metrics at `GET /metrics` (OpenMetrics text): decisions by
//! verdict and code, approval outcomes, webhook deliveries, fetches and
//! ages of issuers' keys, and latency histograms per route.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use greenlight_types::{Decision, EngineStats, Verdict};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::AppState;

/// Latency buckets: 100 µs doubling to about 1.6 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    /// `check` or `authzen`.
    api: &'static str,
    /// `allow`, `deny` or `approval-required`.
    verdict: &'static str,
    /// The denial code, or empty.
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyFetchLabels {
    /// An issuer of the bundle (a fixed set).
    issuer: String,
    /// `ok` or `failed`.
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IssuerLabels {
    issuer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    policy_hash: String,
    component_hash: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    method: String,
    route: String,
}

/// The service's metrics and the registry that renders them.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    approvals: Family<OutcomeLabels, Counter>,
    webhooks: Family<OutcomeLabels, Counter>,
    requests: Family<RouteLabels, Counter>,
    latency: Family<LatencyLabels, Histogram, fn() -> Histogram>,
    token_checks: Counter,
    signature_checks: Counter,
    key_fetches: Family<KeyFetchLabels, Counter>,
    key_age: Family<IssuerLabels, Gauge>,
    swaps: Family<OutcomeLabels, Counter>,
    version: Family<VersionLabels, Gauge>,
    /// The engine's counts at the last scrape, to add only what is new.
    seen: std::sync::Mutex<EngineStats>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "greenlight_decisions",
            "Decisions answered, by API, verdict and denial code",
            decisions.clone(),
        );
        let approvals = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "greenlight_approvals",
            "Approval events: requested, approved, denied, expired, revoked, token_delivered",
            approvals.clone(),
        );
        let webhooks = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "greenlight_webhook_deliveries",
            "Webhook attempts: delivered, retried, failed (gave up)",
            webhooks.clone(),
        );
        let requests = Family::<RouteLabels, Counter>::default();
        registry.register(
            "greenlight_http_requests",
            "HTTP requests by method, route and status",
            requests.clone(),
        );
        let latency: Family<LatencyLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "greenlight_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route",
            latency.clone(),
        );
        let token_checks = Counter::default();
        registry.register(
            "greenlight_token_checks",
            "Tokens the policy module checked (each decision, authentication or inspection checks one)",
            token_checks.clone(),
        );
        let signature_checks = Counter::default();
        registry.register(
            "greenlight_signature_checks",
            "Token checks that took a signature verification (the rest came from the module's cache)",
            signature_checks.clone(),
        );
        let key_fetches = Family::<KeyFetchLabels, Counter>::default();
        registry.register(
            "greenlight_key_fetches",
            "Fetches of issuers' keys from their providers, by issuer and outcome",
            key_fetches.clone(),
        );
        let key_age = Family::<IssuerLabels, Gauge>::default();
        registry.register(
            "greenlight_key_age_seconds",
            "Age of each fetched issuer's keys in the engine; -1 when it has none",
            key_age.clone(),
        );
        let swaps = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "greenlight_policy_swaps",
            "Attempts to load a new bundle or component: swapped, unchanged, refused",
            swaps.clone(),
        );
        let version = Family::<VersionLabels, Gauge>::default();
        registry.register(
            "greenlight_policy_version",
            "The bundle and component deciding now (value 1)",
            version.clone(),
        );
        Self {
            registry,
            swaps,
            version,
            decisions,
            key_fetches,
            key_age,
            approvals,
            webhooks,
            requests,
            latency,
            token_checks,
            signature_checks,
            seen: std::sync::Mutex::new(EngineStats::default()),
        }
    }

    /// Counts a decision answered by `api`.
    pub fn decision(&self, api: &'static str, d: &Decision) {
        let (verdict, code) = match &d.verdict {
            Verdict::Allow(_) => ("allow", ""),
            Verdict::Deny(den) => ("deny", den.code.as_str()),
            Verdict::ApprovalRequired(_) => ("approval-required", ""),
            Verdict::StepUpRequired(_) => ("step-up-required", ""),
        };
        self.decisions
            .get_or_create(&DecisionLabels { api, verdict, code })
            .inc();
    }

    /// Counts `n` approval events of one kind.
    pub fn approvals(&self, outcome: &'static str, n: u64) {
        self.approvals
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n);
    }

    /// Counts one webhook attempt's outcome.
    pub fn webhook(&self, outcome: &'static str) {
        self.webhooks
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts one fetch of an issuer's keys.
    pub fn key_fetch(&self, issuer: &str, outcome: &'static str) {
        self.key_fetches
            .get_or_create(&KeyFetchLabels {
                issuer: issuer.to_owned(),
                outcome,
            })
            .inc();
    }

    /// Sets each fetched issuer's key age (`None`: no keys, shown as -1).
    pub fn key_ages(&self, ages: Vec<(String, Option<u64>)>) {
        for (issuer, age) in ages {
            let value = age.map_or(-1, |a| i64::try_from(a).unwrap_or(i64::MAX));
            self.key_age
                .get_or_create(&IssuerLabels { issuer })
                .set(value);
        }
    }

    /// Counts an attempt to swap the policy: `swapped`, `unchanged` or
    /// `refused`.
    pub fn swap(&self, outcome: &'static str) {
        self.swaps.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Names the version deciding now, in place of `old` (when there was
    /// one), and starts the engine's counts over: a new version's
    /// instances count from zero.
    pub fn version(&self, old: Option<(&str, &str)>, policy_hash: &str, component_hash: &str) {
        if let Some((p, c)) = old {
            self.version.remove(&VersionLabels {
                policy_hash: p.to_owned(),
                component_hash: c.to_owned(),
            });
            *self.seen.lock().unwrap_or_else(|p| p.into_inner()) = EngineStats::default();
        }
        self.version
            .get_or_create(&VersionLabels {
                policy_hash: policy_hash.to_owned(),
                component_hash: component_hash.to_owned(),
            })
            .set(1);
    }

    /// Brings the token counters up to the engine's own counts (which
    /// only grow, but for an instance lost to a trap: then nothing is added).
    pub fn engine(&self, now: EngineStats) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        self.token_checks
            .inc_by(now.token_checks.saturating_sub(seen.token_checks));
        self.signature_checks
            .inc_by(now.signature_checks.saturating_sub(seen.signature_checks));
        seen.token_checks = seen.token_checks.max(now.token_checks);
        seen.signature_checks = seen.signature_checks.max(now.signature_checks);
    }

    /// The OpenMetrics text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Route layer: counts each request and times it, labelled by the route
/// pattern (never the raw path, whose ids would explode the label set).
pub async fn track(State(st): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    // A fixed set: any other method (a client may send anything) is one label.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "other",
    }
    .to_owned();
    let started = Instant::now();
    let response = next.run(req).await;
    st.metrics
        .latency
        .get_or_create(&LatencyLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    st.metrics
        .requests
        .get_or_create(&RouteLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}

/// `GET /metrics`.
pub async fn metrics(State(st): State<Arc<AppState>>) -> Response {
    let v = st.version();
    st.metrics.engine(v.policy.stats());
    st.metrics.key_ages(v.key_sources.ages());
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        st.metrics.render(),
    )
        .into_response()
}
