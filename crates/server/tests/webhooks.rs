//! `greenlight serve` over real HTTP: Webhooks: signed, retried, never blocking, surviving restarts and
//! finishing at shutdown.

use std::sync::Arc;

use common::server::*;
use serde_json::Value;

mod common;

/// One webhook call as the receiver saw it.
#[derive(Clone, Debug)]
struct Received {
    path: String,
    headers: axum::http::HeaderMap,
    body: Vec<u8>,
}

/// A webhook receiver on port 0 (see [`receiver_on`]).
async fn receiver() -> (
    std::net::SocketAddr,
    Arc<std::sync::Mutex<Vec<Received>>>,
    Arc<tokio::sync::Notify>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    receiver_on(listener)
}

/// A webhook receiver: it records every call; the first call to `/hook`
/// waits for `release` and then fails with 500, later calls succeed.
fn receiver_on(
    listener: tokio::net::TcpListener,
) -> (
    std::net::SocketAddr,
    Arc<std::sync::Mutex<Vec<Received>>>,
    Arc<tokio::sync::Notify>,
) {
    let seen: Arc<std::sync::Mutex<Vec<Received>>> = Arc::default();
    let release = Arc::new(tokio::sync::Notify::new());
    let (s, r) = (seen.clone(), release.clone());
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (seen, release) = (s.clone(), r.clone());
            async move {
                let path = uri.path().to_owned();
                let first = {
                    let mut seen = seen.lock().expect("lock");
                    let first = path == "/hook" && !seen.iter().any(|c| c.path == "/hook");
                    seen.push(Received {
                        path: path.clone(),
                        headers,
                        body: body.to_vec(),
                    });
                    first
                };
                if first {
                    release.notified().await;
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    axum::http::StatusCode::NO_CONTENT
                }
            }
        },
    );
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen, release)
}

/// A new approval goes to each webhook in the background: the request that
/// created it returns while the receiver still holds the first attempt; the
/// failed attempt is retried with the same delivery id; the signature is
/// HMAC-SHA256 over `t.body` with the configured key; Slack gets its shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_signed_retried_and_never_block() {
    use hmac::Mac as _;
    let (hook, seen, release) = receiver().await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let key_file = secrets.path().join("webhook.key");
    std::fs::write(&key_file, "s3cret-key\n").expect("write key");
    let settings: Settings = toml::from_str(&format!(
        r#"
        [[webhooks]]
        url = "http://{hook}/hook"
        secret_file = "{}"
        [[webhooks]]
        url = "http://{hook}/slack"
        format = "slack"
        "#,
        key_file.display()
    ))
    .expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, ask) = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        srv.form(
            "/oauth/bc-authorize",
            &alice,
            &[
                ("authorization_details", &refund_details(500)),
                ("reason", "customer called"),
            ],
        ),
    )
    .await
    .expect("bc-authorize answers while the webhook is still held");
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    release.notify_one();

    // Wait for the retry (due 1 s later by the server's clock, which the
    // test moves) and the Slack call.
    let mut calls = Vec::new();
    for _ in 0..200 {
        calls = seen.lock().expect("lock").clone();
        if calls.iter().filter(|c| c.path == "/hook").count() >= 2
            && calls.iter().any(|c| c.path == "/slack")
        {
            break;
        }
        srv.advance(1);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let hooks: Vec<&Received> = calls.iter().filter(|c| c.path == "/hook").collect();
    assert_eq!(hooks.len(), 2, "one failure, one retry: {calls:?}");
    let header = |c: &Received, name: &str| {
        c.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    assert_eq!(
        header(hooks[0], "greenlight-delivery"),
        header(hooks[1], "greenlight-delivery")
    );
    assert_eq!(header(hooks[1], "greenlight-event"), "approval.requested");
    for c in &hooks {
        let sig = header(c, "greenlight-signature");
        let (t, v1) = sig
            .strip_prefix("t=")
            .and_then(|r| r.split_once(",v1="))
            .expect("t=..,v1=..");
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s3cret-key").expect("any key length");
        mac.update(header(c, "greenlight-delivery").as_bytes());
        mac.update(b".");
        mac.update(t.as_bytes());
        mac.update(b".");
        mac.update(&c.body);
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            v1, want,
            "the signature verifies with the key from the file"
        );
    }
    let event: Value = serde_json::from_slice(&hooks[1].body).expect("JSON event");
    assert_eq!(event["type"], "approval.requested");
    assert_eq!(event["approval"]["id"], id.as_str());
    assert_eq!(event["approval"]["requester"], "alice");
    assert_eq!(event["approval"]["reason"], "customer called");
    assert_eq!(
        event["links"]["approve"],
        format!("http://{}/v1/approvals/{id}/approve", srv.addr)
    );
    let slack = calls
        .iter()
        .find(|c| c.path == "/slack")
        .expect("slack call");
    assert_eq!(
        header(slack, "greenlight-signature"),
        "",
        "no key, no signature"
    );
    let msg: Value = serde_json::from_slice(&slack.body).expect("JSON message");
    assert_eq!(
        msg["text"],
        "Approval requested: alice asks to payment.refund on Payment::pay_123"
    );
    assert_eq!(msg["blocks"][0]["type"], "section");

    // Asking again finds the pending approval: no second approval, so no
    // second announcement (announcements follow creations only).
    let (_, again) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(again["auth_req_id"], id.as_str());
    // The counters move after the receiver answered: wait for them.
    let want = [
        r#"greenlight_approvals_total{outcome="requested"} 1"#,
        r#"greenlight_webhook_deliveries_total{outcome="delivered"} 2"#,
        r#"greenlight_webhook_deliveries_total{outcome="retried"} 1"#,
    ];
    let mut text = String::new();
    for _ in 0..200 {
        let (_, t) = srv.call("GET", "/metrics", None, None).await;
        text = t.as_str().expect("text").to_owned();
        if want.iter().all(|w| text.lines().any(|l| l == *w)) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for line in want {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
}

/// A graceful shutdown waits for webhook deliveries in flight, up to a
/// limit, and says how many it had to drop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_webhooks_in_flight_then_reports_the_rest() {
    let (hook, seen, release) = receiver().await;
    let settings: Settings = toml::from_str(&format!(
        "[[webhooks]]\nurl = \"http://{hook}/hook\"\nattempts = 1\ntimeout = 60\n"
    ))
    .expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, _) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200);
    // The receiver holds the attempt: it stays in flight past the limit.
    for _ in 0..200 {
        if !seen.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(srv.state.notifier.in_flight(), 1);
    let left = srv
        .state
        .notifier
        .drain(std::time::Duration::from_millis(100))
        .await;
    assert_eq!(left, 1, "still held by the receiver");
    // Released (and answered 500 with no attempts left), nothing is left.
    release.notify_one();
    let left = srv
        .state
        .notifier
        .drain(std::time::Duration::from_secs(30))
        .await;
    assert_eq!(left, 0);
}

/// A delivery that could not be made is still in the store after a
/// restart, and the restarted server makes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_deliveries_survive_a_restart() {
    // A port nobody listens on yet: the first server's attempt is refused.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = listener.local_addr().expect("addr");
    drop(listener);
    let settings = || -> Settings {
        toml::from_str(&format!("[[webhooks]]\nurl = \"http://{hook}/later\"\n")).expect("settings")
    };
    let srv = Server::start_with(settings()).await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    let text = loop_until_metric(
        &srv,
        r#"greenlight_webhook_deliveries_total{outcome="retried"} 1"#,
    )
    .await;
    assert!(
        text.is_some(),
        "the first attempt failed and a retry was scheduled"
    );
    assert_eq!(srv.state.store.pending_deliveries().await, Ok(1));
    let dir = srv.stop().await;

    let (_, seen, _release) =
        receiver_on(tokio::net::TcpListener::bind(hook).await.expect("rebind"));
    let srv = Server::start_in(settings(), dir).await;
    let mut calls = Vec::new();
    for _ in 0..200 {
        calls = seen.lock().expect("lock").clone();
        if !calls.is_empty() {
            break;
        }
        srv.advance(1);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(calls.len(), 1, "{calls:?}");
    let event: Value = serde_json::from_slice(&calls[0].body).expect("JSON event");
    assert_eq!(event["approval"]["id"], id.as_str());
    for _ in 0..100 {
        if srv.state.store.pending_deliveries().await == Ok(0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(srv.state.store.pending_deliveries().await, Ok(0));
}

/// Polls /metrics until `line` appears (a generous deadline, no timing
/// claim); the text when it did.
async fn loop_until_metric(srv: &Server, line: &str) -> Option<String> {
    for _ in 0..200 {
        let (_, t) = srv.call("GET", "/metrics", None, None).await;
        let text = t.as_str().expect("text").to_owned();
        if text.lines().any(|l| l == line) {
            return Some(text);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    None
}
