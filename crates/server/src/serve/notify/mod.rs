//! Announcing new approvals, and their outcomes, to webhooks, in the
//! background.
//!
//! Each new approval (`approval.requested`) and each outcome
//! (`approval.approved`, `approval.denied`, `approval.revoked`, and
//! `approval.expired` when the sweep finds it) is POSTed as JSON to every
//! configured webhook. A
//! signed webhook carries
//!
//! ```text
//! greenlight-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<delivery>.<t>.<body>")>
//! greenlight-delivery: <id, the same on every retry of one event>
//! greenlight-event: approval.requested
//! ```
//!
//! so a receiver recomputes the HMAC over the delivery id, the timestamp
//! and the raw body, compares in constant time, rejects a timestamp outside
//! its tolerance (a replay), and drops a delivery id it has seen (a retry it
//! already processed; the id is signed, so a replay cannot change it).
//!
//! Deliveries are stored (the `webhook_deliveries` outbox) before they are
//! attempted, and a worker claims due ones: a failed attempt (a connection
//! error, a timeout or a non-2xx status) is retried with exponential backoff
//! (1 s, doubling, at most a minute), a restart resumes what was pending,
//! and with replicas each attempt is made by one of them. The request that
//! created the approval never waits for a receiver.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::metrics::Metrics;
use super::settings::{Webhook, WebhookFormat};

mod slack;
use slack::slack_body;
pub use slack::{ACTION_APPROVE, ACTION_DENY, ACTION_OPEN, REASON};

/// The event a new approval produces.
pub const EVENT_REQUESTED: &str = "approval.requested";

/// The event of an approval that reached its quorum.
pub const EVENT_APPROVED: &str = "approval.approved";

/// The event of an approval that was denied.
pub const EVENT_DENIED: &str = "approval.denied";

/// The event of an approval nobody decided in time (told by the sweep).
pub const EVENT_EXPIRED: &str = "approval.expired";

/// The event of an approval an approver withdrew.
pub const EVENT_REVOKED: &str = "approval.revoked";

/// Seconds before the first retry; each further retry waits twice as long.
const FIRST_BACKOFF: i64 = 1;
/// The longest wait between two attempts, in seconds.
const MAX_BACKOFF: i64 = 60;
/// How often the worker looks for due deliveries when nothing wakes it.
const POLL: Duration = Duration::from_secs(1);
/// Deliveries claimed at a time.
const BATCH: u32 = 32;

/// One receiver, with its key read from the environment at start.
#[derive(Clone)]
struct Hook {
    config: Webhook,
    /// Hex SHA-256 of the URL: how stored deliveries name it.
    id: String,
    key: Option<Vec<u8>>,
    /// Scheme, host and port only: what logs may show. A Slack webhook's
    /// path is its secret.
    target: String,
    /// An access request's callback receiver: told only about the tasks
    /// that asked for it, never sent announcements or outcomes.
    callback_only: bool,
}

/// `scheme://host[:port]` of a URL, never its path or query.
fn target_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => format!(
            "{}://{}{}",
            u.scheme(),
            u.host_str().unwrap_or(""),
            u.port().map(|p| format!(":{p}")).unwrap_or_default()
        ),
        Err(_) => "(unparsable url)".to_owned(),
    }
}

/// Sends events to the configured webhooks.
#[derive(Clone)]
pub struct Notifier {
    hooks: Arc<Vec<Hook>>,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    in_flight: Arc<InFlight>,
    store: greenlight_store::Store,
    clock: super::Clock,
    wake: Arc<tokio::sync::Notify>,
    /// Whether Slack messages carry approve and deny buttons (`[slack]`
    /// is configured to receive their callbacks).
    interactive: bool,
}

/// Deliveries still being attempted, so a graceful shutdown can wait.
#[derive(Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    done: tokio::sync::Notify,
}

/// Counts one delivery in flight until dropped (the task ended, however).
struct Flying(Arc<InFlight>);

impl Drop for Flying {
    fn drop(&mut self) {
        self.0
            .count
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.done.notify_waiters();
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("webhooks", &self.hooks.len())
            .finish_non_exhaustive()
    }
}

/// A receiver's id in the outbox: hex SHA-256 of its URL. Webhooks and
/// AuthZEN access-request callbacks name their receivers the same way.
pub fn hook_id(url: &str) -> String {
    crate::archive::sha256_hex(url.as_bytes())
}

/// `t=<timestamp>,v1=<hex HMAC-SHA256(key, "<delivery>.<timestamp>.<body>")>`.
pub fn signature(key: &[u8], delivery: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC accepts a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(delivery.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={timestamp},v1={hex}")
}

impl Notifier {
    /// A notifier for `webhooks` and access requests' `callbacks` (which
    /// receive only the deliveries the store makes for tasks that asked),
    /// reading each key now, with its outbox in `store` and `clock` for
    /// scheduling.
    pub fn new(
        webhooks: &[Webhook],
        callbacks: &[Webhook],
        metrics: Arc<Metrics>,
        store: greenlight_store::Store,
        clock: super::Clock,
        interactive: bool,
    ) -> anyhow::Result<Self> {
        let hooks = webhooks
            .iter()
            .map(|w| (w, false))
            .chain(callbacks.iter().map(|w| (w, true)))
            .map(|(w, callback_only)| {
                let key = match (&w.secret_env, &w.secret_file) {
                    (Some(var), _) => Some(
                        std::env::var(var)
                            .map_err(|_| anyhow::anyhow!("webhook secret `{var}` is not set"))?
                            .into_bytes(),
                    ),
                    (None, Some(path)) => Some(
                        std::fs::read_to_string(path)
                            .map_err(|e| anyhow::anyhow!("webhook secret {}: {e}", path.display()))?
                            .trim_end()
                            .as_bytes()
                            .to_vec(),
                    ),
                    (None, None) => None,
                };
                let id = hook_id(&w.url);
                Ok(Hook {
                    config: w.clone(),
                    id,
                    key,
                    target: target_of(&w.url),
                    callback_only,
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let client = reqwest::Client::builder()
            .user_agent(concat!("greenlight/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            hooks: Arc::new(hooks),
            client,
            metrics,
            in_flight: Arc::default(),
            store,
            clock,
            wake: Arc::default(),
            interactive,
        })
    }

    /// Deliveries still being attempted (retries included).
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .count
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits up to `limit` for the attempts in flight to finish (a graceful
    /// shutdown calls it); returns how many were still going. Those stay in
    /// the outbox and are attempted again after their lease.
    pub async fn drain(&self, limit: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let done = self.in_flight.done.notified();
            let left = self.in_flight();
            if left == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, done).await.is_err() {
                return self.in_flight();
            }
        }
    }

    /// The deliveries announcing a new approval (`approval` is its JSON,
    /// `links` where to see and decide it), one per webhook, for the store
    /// to commit with the approval.
    pub fn announcements(
        &self,
        approval: &Value,
        links: &Value,
        now: i64,
    ) -> Vec<greenlight_store::NewWebhookDelivery> {
        self.deliveries(EVENT_REQUESTED, |format| match format {
            WebhookFormat::Greenlight => greenlight_body(EVENT_REQUESTED, approval, links, now),
            WebhookFormat::Slack => slack_body(approval, links, self.interactive),
        })
    }

    /// The deliveries telling an outcome (`event` is [`EVENT_APPROVED`],
    /// [`EVENT_DENIED`], [`EVENT_EXPIRED`] or [`EVENT_REVOKED`]) to every
    /// webhook, so the requester's side learns
    /// the outcome without polling; for the store to commit with the vote
    /// that decided it.
    pub fn outcomes(
        &self,
        event: &'static str,
        approval: &Value,
        links: &Value,
        now: i64,
    ) -> Vec<greenlight_store::NewWebhookDelivery> {
        self.deliveries(event, |format| match format {
            WebhookFormat::Greenlight => greenlight_body(event, approval, links, now),
            WebhookFormat::Slack => slack::outcome_body(event, approval),
        })
    }

    /// One delivery of `event` per webhook, with the body its format takes.
    fn deliveries(
        &self,
        event: &str,
        body: impl Fn(WebhookFormat) -> Value,
    ) -> Vec<greenlight_store::NewWebhookDelivery> {
        let mut deliveries = Vec::with_capacity(self.hooks.len());
        for hook in self.hooks.iter().filter(|h| !h.callback_only) {
            match greenlight_store::new_id() {
                Ok(id) => deliveries.push(greenlight_store::NewWebhookDelivery {
                    id,
                    hook: hook.id.clone(),
                    event: event.to_owned(),
                    body: body(hook.config.format).to_string(),
                }),
                Err(e) => {
                    tracing::error!(error = %e, "no id for a webhook delivery; not sent");
                    self.metrics.webhook("failed");
                }
            }
        }
        deliveries
    }

    /// Tells the worker that deliveries were stored.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The delivery worker: claims due deliveries (when woken, or every
    /// second) and attempts each in a task of its own. Runs until aborted.
    pub async fn work(self) {
        if self.hooks.is_empty() {
            return;
        }
        let longest = self
            .hooks
            .iter()
            .map(|h| h.config.timeout.unwrap_or(10))
            .max()
            .unwrap_or(10);
        loop {
            let now = self.clock.at();
            // A replica that dies mid-attempt leaves the delivery to be
            // claimed again once the longest attempt could have ended.
            let lease = now + i64::try_from(longest).unwrap_or(60) + 5;
            match self.store.claim_due_deliveries(now, lease, BATCH).await {
                Ok(due) => {
                    for d in due {
                        self.in_flight
                            .count
                            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let flying = Flying(self.in_flight.clone());
                        let me = self.clone();
                        tokio::spawn(async move {
                            let _flying = flying;
                            me.deliver(d).await;
                        });
                    }
                }
                Err(e) => tracing::error!(error = %e, "cannot read the webhook outbox"),
            }
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One attempt of one stored delivery, and its outcome recorded.
    async fn deliver(&self, d: greenlight_store::WebhookDelivery) {
        let Some(hook) = self.hooks.iter().find(|h| h.id == d.hook) else {
            let now = self.clock.at();
            if let Err(e) = self
                .store
                .delivery_failed(&d.id, now, None, "the webhook is no longer configured")
                .await
            {
                tracing::error!(error = %e, delivery = %d.id, "cannot record a webhook attempt");
            }
            self.metrics.webhook("failed");
            return;
        };
        let attempts = hook.config.attempts.unwrap_or(5);
        let timeout = Duration::from_secs(hook.config.timeout.unwrap_or(10));
        let outcome = attempt(&self.client, hook, &d, timeout).await;
        let now = self.clock.at();
        let recorded = match &outcome {
            Ok(()) => {
                tracing::info!(to = %hook.target, delivery = %d.id, attempt = d.attempt, "webhook delivered");
                self.metrics.webhook("delivered");
                self.store.delivery_succeeded(&d.id, now).await
            }
            Err(why) if d.attempt < attempts => {
                let shift = d.attempt.saturating_sub(1).min(16);
                let wait = (FIRST_BACKOFF << shift).min(MAX_BACKOFF);
                tracing::warn!(to = %hook.target, delivery = %d.id, attempt = d.attempt, %why, wait, "webhook failed; retrying");
                self.metrics.webhook("retried");
                self.store
                    .delivery_failed(&d.id, now, Some(now + wait), why)
                    .await
            }
            Err(why) => {
                tracing::error!(to = %hook.target, delivery = %d.id, attempt = d.attempt, %why, "webhook failed; giving up");
                self.metrics.webhook("failed");
                self.store.delivery_failed(&d.id, now, None, why).await
            }
        };
        if let Err(e) = recorded {
            tracing::error!(error = %e, delivery = %d.id, "cannot record a webhook attempt; it is retried after its lease");
        }
    }
}

/// POSTs one stored delivery to its receiver, signed when it has a key.
async fn attempt(
    client: &reqwest::Client,
    hook: &Hook,
    d: &greenlight_store::WebhookDelivery,
    timeout: Duration,
) -> Result<(), String> {
    {
        let mut req = client
            .post(&hook.config.url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("greenlight-event", d.event.as_str())
            .header("greenlight-delivery", d.id.as_str());
        if let Some(key) = &hook.key {
            // Signed at each attempt, so the timestamp is fresh.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            req = req.header(
                "greenlight-signature",
                signature(key, &d.id, now, d.body.as_bytes()),
            );
        }
        let res = req
            .body(d.body.clone())
            .send()
            .await
            // reqwest's message would end with the URL, secret path and all.
            .map_err(|e| e.without_url().to_string())?;
        if res.status().is_success() {
            Ok(())
        } else {
            Err(format!("status {}", res.status()))
        }
    }
}

fn greenlight_body(event: &str, approval: &Value, links: &Value, now: i64) -> Value {
    json!({
        "type": event,
        "created_at": now,
        "approval": approval,
        "links": links,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature is HMAC-SHA256 over `"<delivery>.<t>.<body>"` (value
    /// computed independently with Python's `hmac`); id and time are covered.
    #[test]
    fn the_signature_covers_delivery_timestamp_and_body() {
        let body = b"what do ya want for nothing?";
        assert_eq!(
            signature(b"Jefe", "d-1", 0, body),
            "t=0,v1=bab9be6ed0515bed92d2390f0ac6729983a43526a1d27e027792ae8ee9fdb41d"
        );
        assert_ne!(
            signature(b"Jefe", "d-1", 1, body),
            signature(b"Jefe", "d-1", 0, body)
        );
        assert_ne!(
            signature(b"Jefe", "d-2", 0, body),
            signature(b"Jefe", "d-1", 0, body)
        );
    }

    /// Logs name the receiver by scheme, host and port, never the path a
    /// Slack webhook keeps its secret in.
    #[test]
    fn logs_never_show_a_webhook_path() {
        assert_eq!(
            target_of("https://hooks.slack.com/services/T0/B0/s3cr3t?x=1"),
            "https://hooks.slack.com"
        );
        assert_eq!(
            target_of("http://127.0.0.1:9000/hook"),
            "http://127.0.0.1:9000"
        );
        assert_eq!(target_of("not a url"), "(unparsable url)");
    }
}
