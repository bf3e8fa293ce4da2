//! Announcing new approvals to webhooks, in the background.
//!
//! Each new approval is POSTed as JSON to every configured webhook. A
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
//! already processed; the id is signed, so a replay cannot change it). A failed attempt (a connection error, a timeout or a non-2xx
//! status) is retried with exponential backoff; the request that created the
//! approval never waits for any of it.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::metrics::Metrics;
use super::settings::{Webhook, WebhookFormat};

/// The event a new approval produces.
pub const EVENT_REQUESTED: &str = "approval.requested";

/// The delay before the first retry; each further retry waits twice as long.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One receiver, with its key read from the environment at start.
#[derive(Clone)]
struct Hook {
    config: Webhook,
    key: Option<Vec<u8>>,
    /// Scheme, host and port only: what logs may show. A Slack webhook's
    /// path is its secret.
    target: String,
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
    /// A notifier for `webhooks`, reading each `secret_env` now.
    pub fn new(webhooks: &[Webhook], metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let hooks = webhooks
            .iter()
            .map(|w| {
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
                Ok(Hook {
                    config: w.clone(),
                    key,
                    target: target_of(&w.url),
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
        })
    }

    /// Deliveries still being attempted (retries included).
    pub fn in_flight(&self) -> usize {
        self.in_flight
            .count
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits up to `limit` for the deliveries in flight to finish (a
    /// graceful shutdown calls it); returns how many were still going.
    /// Those are lost: deliveries live in memory, not in the store.
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

    /// Announces a new approval (`approval` is its JSON, `links` where to
    /// see and decide it) to every webhook, each in a task of its own.
    pub fn approval_requested(&self, approval: &Value, links: &Value, now: i64) {
        for hook in self.hooks.iter() {
            let body = match hook.config.format {
                WebhookFormat::Greenlight => greenlight_body(approval, links, now),
                WebhookFormat::Slack => slack_body(approval, links),
            };
            let delivery = match greenlight_store::new_id() {
                Ok(id) => id,
                Err(e) => {
                    tracing::error!(error = %e, "no id for a webhook delivery; not sent");
                    self.metrics.webhook("failed");
                    continue;
                }
            };
            self.in_flight
                .count
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let flying = Flying(self.in_flight.clone());
            let task = Delivery {
                client: self.client.clone(),
                hook: hook.clone(),
                body: body.to_string().into_bytes(),
                delivery,
                metrics: self.metrics.clone(),
            };
            tokio::spawn(async move {
                let _flying = flying;
                task.run().await;
            });
        }
    }
}

/// One event on its way to one webhook.
struct Delivery {
    client: reqwest::Client,
    hook: Hook,
    body: Vec<u8>,
    delivery: String,
    metrics: Arc<Metrics>,
}

impl Delivery {
    async fn run(self) {
        let attempts = self.hook.config.attempts.unwrap_or(5);
        let timeout = Duration::from_secs(self.hook.config.timeout.unwrap_or(10));
        let mut backoff = FIRST_BACKOFF;
        for attempt in 1..=attempts {
            match self.attempt(timeout).await {
                Ok(()) => {
                    tracing::info!(to = %self.hook.target, delivery = %self.delivery, attempt, "webhook delivered");
                    self.metrics.webhook("delivered");
                    return;
                }
                Err(why) if attempt < attempts => {
                    tracing::warn!(to = %self.hook.target, delivery = %self.delivery, attempt, %why, "webhook failed; retrying");
                    self.metrics.webhook("retried");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                Err(why) => {
                    tracing::error!(to = %self.hook.target, delivery = %self.delivery, attempt, %why, "webhook failed; giving up");
                    self.metrics.webhook("failed");
                }
            }
        }
    }

    async fn attempt(&self, timeout: Duration) -> Result<(), String> {
        let mut req = self
            .client
            .post(&self.hook.config.url)
            .timeout(timeout)
            .header("content-type", "application/json")
            .header("greenlight-event", EVENT_REQUESTED)
            .header("greenlight-delivery", &self.delivery);
        if let Some(key) = &self.hook.key {
            // Signed at each attempt, so the timestamp is fresh.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
                .unwrap_or(0);
            req = req.header(
                "greenlight-signature",
                signature(key, &self.delivery, now, &self.body),
            );
        }
        let res = req
            .body(self.body.clone())
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

fn greenlight_body(approval: &Value, links: &Value, now: i64) -> Value {
    json!({
        "type": EVENT_REQUESTED,
        "created_at": now,
        "approval": approval,
        "links": links,
    })
}

/// A Slack incoming-webhook message: a `text` fallback and blocks.
fn slack_body(approval: &Value, links: &Value) -> Value {
    let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
    let action = text(&approval["action"]);
    let resource = approval["authorization_details"][0]["identifier"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let requester = text(&approval["requester"]);
    let message = text(&approval["obligation"]["message"]);
    let mut lines = vec![format!("*{requester}* asks to `{action}` on `{resource}`")];
    if !message.is_empty() {
        lines.push(message);
    }
    for (label, key) in [("Reason", "reason"), ("Binding message", "binding_message")] {
        if let Some(v) = approval[key].as_str().filter(|v| !v.is_empty()) {
            lines.push(format!("{label}: {v}"));
        }
    }
    lines.push(format!(
        "Params: `{}`",
        approval["authorization_details"][0]["params"]
    ));
    json!({
        "text": format!("Approval requested: {requester} asks to {action} on {resource}"),
        "blocks": [
            { "type": "section", "text": { "type": "mrkdwn", "text": lines.join("\n") } },
            { "type": "context", "elements": [ { "type": "mrkdwn", "text": format!(
                "Approval `{}` · approvers {} · quorum {} · decide with `POST {}` or `POST {}`",
                text(&approval["id"]),
                approval["obligation"]["approvers"],
                approval["obligation"]["quorum"],
                text(&links["approve"]),
                text(&links["deny"]),
            ) } ] },
        ],
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
