//! `greenlight serve` over real HTTP: the server runs on port 0 with a
//! temporary SQLite store, clients use tokens signed by the demo issuer's
//! key, and a test clock makes polling intervals deterministic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

mod common;

use greenlight::dev::{DevTokenRequest, dev_token};
use greenlight::serve::{AppState, Clock, ServeConfig, Settings, prepare, run};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    addr: std::net::SocketAddr,
    clock: Arc<AtomicI64>,
    state: Arc<AppState>,
    dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(Settings::default()).await
    }

    async fn start_with(settings: Settings) -> Self {
        Self::start_in(settings, tempfile::tempdir().expect("tempdir")).await
    }

    /// A server on the store in `dir` (a restart reuses one).
    async fn start_in(settings: Settings, dir: tempfile::TempDir) -> Self {
        let clock = Arc::new(AtomicI64::new(T0));
        let c = clock.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = ServeConfig {
            bundle: root().join("examples/bundle"),
            store: format!("sqlite://{}", dir.path().join("greenlight.db").display()),
            public_url: None,
            settings,
        };
        let state = prepare(
            &config,
            addr,
            Clock::new(move || u64::try_from(c.load(Ordering::SeqCst)).unwrap_or(0)),
        )
        .await
        .expect("server prepares");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(listener, state.clone(), async {
            let _ = rx.await;
        }));
        Server {
            addr,
            clock,
            state,
            dir: Some(dir),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Shuts down gracefully, waits until it has, and hands back the store's
    /// folder.
    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("joins").expect("serves");
        }
        self.dir.take().expect("a folder")
    }

    /// POSTs a form to `/oauth/token` without a bearer (token exchange).
    async fn token_endpoint(&self, fields: &[(&str, &str)]) -> (u16, Value) {
        let body = common::form(fields);
        self.call(
            "POST",
            "/oauth/token",
            None,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    fn advance(&self, seconds: i64) {
        self.clock.fetch_add(seconds, Ordering::SeqCst);
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (u16, Value) {
        common::call(self.addr, method, path, token, body).await
    }

    async fn json(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Value,
    ) -> (u16, Value) {
        self.call(
            method,
            path,
            token,
            Some(("application/json", body.to_string())),
        )
        .await
    }

    async fn form(&self, path: &str, token: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let body = common::form(fields);
        self.call(
            "POST",
            path,
            Some(token),
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A token of the demo issuer, issued at `T0`.
fn dev(sub: &str, scope: Option<&str>, claims: &[(&str, Value)], ttl: u64) -> String {
    dev_token(
        &root().join("examples/bundle"),
        &DevTokenRequest {
            subject: sub.to_owned(),
            scope: scope.map(str::to_owned),
            claims: claims
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_string()))
                .collect(),
            ttl,
            now: u64::try_from(T0).expect("positive"),
        },
    )
    .expect("dev token")
}

fn token(sub: &str, scope: &str, groups: &[&str]) -> String {
    dev(sub, Some(scope), &[("groups", json!(groups))], 7200)
}

fn refund(amount: i64, token: &str) -> Value {
    json!({
        "method": "POST",
        "path": "/payments/pay_123/refund",
        "headers": { "authorization": format!("Bearer {token}") },
        "params": { "amount": amount, "currency": "EUR" },
    })
}

const CIBA: &str = "urn:openid:params:grant-type:ciba";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `authorization_details` for a refund of `amount` EUR of `pay_123`.
fn refund_details(amount: i64) -> String {
    json!([{
        "type": "urn:greenlight:action",
        "actions": ["payment.refund"],
        "resource": { "type": "Payment", "id": "pay_123" },
        "params": { "amount": amount, "currency": "EUR" },
    }])
    .to_string()
}

/// The `kid` of a compact JWS.
fn kid_of(token: &str) -> String {
    greenlight_core::jws::parse(token)
        .expect("a JWS")
        .kid
        .expect("kid")
}

/// The whole refund story: challenge, ask (twice: one approval), pending and
/// slow_down, a vote that counts once, self-approval refused, quorum, the
/// token delivered once, act, replay denied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refund_of_500_needs_two_finance_approvals_and_its_token_works_once() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &["finance"]);
    let bob = token("bob", "", &["finance"]);
    let carol = token("carol", "", &["finance"]);
    let mallory = token("mallory", "", &["sales"]);

    // 1. Challenge.
    let (status, d) = srv
        .json("POST", "/v1/check", None, refund(500, &alice))
        .await;
    assert_eq!(status, 200);
    assert_eq!(d["verdict"]["kind"], "approval-required");
    assert_eq!(
        d["ask"]["backchannel_authentication_endpoint"],
        format!("http://{}/oauth/bc-authorize", srv.addr)
    );
    let details = d["verdict"]["authorization_details"].to_string();

    // 2. Ask, twice: the same pending action is one approval.
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[
                ("authorization_details", &details),
                ("binding_message", "R-7"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("auth_req_id").to_owned();
    assert_eq!(ask["expires_in"], 900);
    assert_eq!(ask["interval"], 5);
    let (_, again) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    assert_eq!(again["auth_req_id"], id.as_str());

    // 3. Poll: pending, then too fast.
    let (status, e) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("authorization_pending"))
    );
    let (status, e) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("slow_down")));
    assert_eq!(e["error_description"], "poll at most every 5 seconds");

    // 4. Votes. A reason is required; the requester cannot approve; an
    //    outsider cannot; the same approver twice counts once.
    let path = format!("/v1/approvals/{id}/approve");
    let (status, e) = srv.json("POST", &path, Some(&bob), json!({})).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(format!("approval `{id}` requires a reason with every decision").as_str())
        )
    );
    let (status, e) = srv
        .json("POST", &path, Some(&alice), json!({ "reason": "mine" }))
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("`alice` asked for this action and cannot approve their own request")
        )
    );
    let (status, e) = srv
        .json(
            "POST",
            &path,
            Some(&mallory),
            json!({ "reason": "why not" }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("`mallory` is not among the approvers (group:finance)")
        )
    );
    let (status, v) = srv
        .json(
            "POST",
            &path,
            Some(&bob),
            json!({ "reason": "customer R-7 verified" }),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str(), v["approve_count"].as_u64()),
        (200, Some("pending"), Some(1))
    );
    let (_, v) = srv
        .json("POST", &path, Some(&bob), json!({ "reason": "again" }))
        .await;
    assert_eq!(
        (
            v["status"].as_str(),
            v["approve_count"].as_u64(),
            v["recorded"].as_bool()
        ),
        (Some("pending"), Some(1), Some(false))
    );
    let (status, list) = srv
        .call("GET", "/v1/approvals?status=pending", Some(&carol), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["approvals"].as_array().map(Vec::len), Some(1));
    let (_, v) = srv
        .json(
            "POST",
            &path,
            Some(&carol),
            json!({ "reason": "second pair of eyes" }),
        )
        .await;
    assert_eq!(
        (v["status"].as_str(), v["approve_count"].as_u64()),
        (Some("approved"), Some(2))
    );

    // 5. The token, once.
    srv.advance(5);
    let (status, t) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["expires_in"], 300);
    let action_token = t["access_token"].as_str().expect("token").to_owned();
    srv.advance(5);
    let (status, e) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(format!("the action token for `{id}` was already delivered").as_str())
        )
    );

    // Introspection describes the unused token...
    let (status, i) = srv
        .form("/oauth/introspect", &bob, &[("token", &action_token)])
        .await;
    assert_eq!(status, 200, "{i}");
    assert_eq!(
        (
            i["active"].as_bool(),
            i["sub"].as_str(),
            i["grant"].as_str()
        ),
        (Some(true), Some("alice"), Some("once"))
    );
    assert_eq!(i["approval_id"], id.as_str());
    assert_eq!(i["approvers"], json!(["bob", "carol"]));
    // ...and an access token it did not issue as inactive.
    let (_, i) = srv
        .form("/oauth/introspect", &bob, &[("token", &alice)])
        .await;
    assert_eq!(i, json!({ "active": false }));

    // 6. Act, then replay.
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &action_token))
        .await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    assert_eq!(d["verdict"]["principal"]["subject"], "alice");
    assert_eq!(d["reasons"], json!(["refund-large"]));
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &action_token))
        .await;
    let jti = d["verdict"]["message"].as_str().unwrap_or("").to_owned();
    assert_eq!(d["verdict"]["code"], "action-token-replayed", "{d}");
    assert!(
        jti.starts_with("action token `") && jti.ends_with("` was already used"),
        "{jti}"
    );
    // A consumed single-use token is inactive (RFC 7662).
    let (_, i) = srv
        .form("/oauth/introspect", &bob, &[("token", &action_token)])
        .await;
    assert_eq!(i, json!({ "active": false }));
    // The token is for 500 on pay_123 only.
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(501, &action_token))
        .await;
    assert_eq!(d["verdict"]["code"], "action-token-digest-mismatch");
}

/// A deny ends the approval; the client is told `access_denied` and later
/// votes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_ends_the_approval() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let bob = token("bob", "", &["finance"]);
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(700, &alice))
        .await;
    let details = d["verdict"]["authorization_details"].to_string();
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/deny"),
            Some(&bob),
            json!({ "reason": "duplicate refund" }),
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("denied")));
    let (status, e) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("access_denied")));
    let (status, e) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&bob),
            json!({ "reason": "changed my mind" }),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            409,
            Some("approval_not_pending"),
            Some(format!("approval `{id}` is already denied").as_str())
        )
    );
}

/// An approval nobody decides expires: the client gets `expired_token` and
/// a late vote is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecided_approval_expires() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let bob = token("bob", "", &["finance"]);
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(900, &alice))
        .await;
    let details = d["verdict"]["authorization_details"].to_string();
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[
                ("authorization_details", &details),
                ("requested_expiry", "60"),
            ],
        )
        .await;
    assert_eq!(ask["expires_in"], 60);
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    srv.advance(61);
    let (status, e) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!((status, e["error"].as_str()), (400, Some("expired_token")));
    let (status, e) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&bob),
            json!({ "reason": "late" }),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (409, Some("approval_expired"))
    );
    // The late vote recorded the expiry, once; a second late vote does not
    // count it again, nor does the sweep.
    srv.json(
        "POST",
        &format!("/v1/approvals/{id}/approve"),
        Some(&bob),
        json!({ "reason": "late again" }),
    )
    .await;
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, text) = srv.call("GET", "/metrics", None, None).await;
    assert!(
        text.as_str()
            .expect("text")
            .lines()
            .any(|l| l == r#"greenlight_approvals_total{outcome="expired"} 1"#),
        "{text}"
    );
}

/// The user's own confirmation opens a window: the same write is allowed
/// again without a new approval until the window closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_grant_is_reused_then_expires() {
    let srv = Server::start().await;
    let alice = token("alice", "files:write", &[]);
    let write = json!({ "method": "PUT", "path": "/users/alice/files/report.txt/content",
                        "headers": { "authorization": format!("Bearer {alice}") } });
    let (_, d) = srv.json("POST", "/v1/check", None, write.clone()).await;
    assert_eq!(d["verdict"]["kind"], "approval-required");
    let details = d["verdict"]["authorization_details"].to_string();
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    let id = ask["auth_req_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{ask}"))
        .to_owned();
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/approve"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("approved")),
        "{v}"
    );
    let (status, t) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["expires_in"], 300);
    // Asking again inside the window opens nothing: it is approved.
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &details)],
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                format!(
                    "`file.write` on `File::report.txt` is already approved (approval `{id}`) until {}: act with your access token",
                    T0 + 300
                )
                .as_str()
            )
        )
    );
    for _ in 0..2 {
        let (_, d) = srv.json("POST", "/v1/check", None, write.clone()).await;
        assert_eq!(d["verdict"]["kind"], "allow", "{d}");
        assert_eq!(
            d["verdict"]["forward_headers"][2],
            json!(["x-greenlight-approval", id])
        );
    }
    srv.advance(301);
    let (_, d) = srv.json("POST", "/v1/check", None, write).await;
    assert_eq!(d["verdict"]["kind"], "approval-required");
}

/// Bad input gets a clear error and writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_a_reason() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (status, e) = srv
        .call(
            "POST",
            "/v1/check",
            None,
            Some(("application/json", "{\"method\": ".to_owned())),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let (status, e) = srv
        .json(
            "POST",
            "/v1/check",
            None,
            json!({ "method": "GET", "path": "/", "body": 1 }),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str(), e["error_description"].as_str()),
        (
            400,
            Some("invalid_request"),
            Some(
                "Failed to deserialize the JSON body into the target type: body: unknown field `body`, expected one of `method`, `path`, `query`, `headers`, `params` at line 1 column 33"
            )
        )
    );
    let (status, _) = srv
        .call(
            "POST",
            "/v1/check",
            None,
            Some((
                "application/json",
                format!("{{\"method\":\"{}\"}}", "x".repeat(70_000)),
            )),
        )
        .await;
    assert_eq!(status, 413);
    let (status, e) = srv
        .form(
            "/oauth/bc-authorize",
            "not-a-token",
            &[("authorization_details", "[]")],
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_authorization_details"))
    );
    let (status, e) = srv.form("/oauth/bc-authorize", "not-a-token", &[("authorization_details", "[{\"type\":\"urn:greenlight:action\",\"actions\":[\"payment.refund\"],\"resource\":{\"type\":\"Payment\",\"id\":\"p\"},\"params\":{\"amount\":500,\"currency\":\"EUR\"}}]")]).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_token")));
    let (status, e) = srv.form("/oauth/bc-authorize", &alice, &[("authorization_details", "[{\"type\":\"urn:greenlight:action\",\"actions\":[\"payment.refund\"],\"resource\":{\"type\":\"Payment\",\"id\":\"p\"},\"params\":{\"amount\":50,\"currency\":\"EUR\"}}]")]).await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some("`payment.refund` on `Payment::p` is allowed without approval")
        )
    );
    let (status, e) = srv
        .form("/oauth/token", &alice, &[("grant_type", "password")])
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );
    let (status, e) = srv.call("GET", "/v1/approvals", None, None).await;
    assert_eq!((status, e["error"].as_str()), (401, Some("invalid_token")));
    let (status, e) = srv.call("GET", "/admin", None, None).await;
    assert_eq!((status, e["error"].as_str()), (404, Some("not_found")));
    // Nothing was written by any of that.
    let bob = token("bob", "", &["finance"]);
    let (_, list) = srv.call("GET", "/v1/approvals", Some(&bob), None).await;
    assert_eq!(list["approvals"], json!([]));
}

/// The keys action tokens are signed with are published, with RFC 8414 metadata.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_and_metadata_are_published() {
    let srv = Server::start().await;
    let (status, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1);
    assert_eq!(
        (
            keys[0]["kty"].as_str(),
            keys[0]["crv"].as_str(),
            keys[0]["alg"].as_str()
        ),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    let (_, meta) = srv
        .call("GET", "/.well-known/oauth-authorization-server", None, None)
        .await;
    assert_eq!(meta["issuer"], "https://greenlight.example.com");
    assert_eq!(
        meta["token_endpoint"],
        format!("http://{}/oauth/token", srv.addr)
    );
    assert_eq!(meta["grant_types_supported"], json!([CIBA, EXCHANGE]));
    let (status, h) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!((status, h["status"].as_str()), (200, Some("ok")));
}

/// AuthZEN: the same decisions as /v1/check in the AuthZEN shape, single
/// and batched, with approval-required as `decision: false` plus the
/// challenge, and the short-circuit semantics honoured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authzen_evaluations_answer_like_check() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let eval = |amount: i64| {
        json!({
            "subject": { "type": "bearer", "id": alice },
            "action": { "name": "payment.refund" },
            "resource": { "type": "Payment", "id": "pay_123" },
            "context": { "amount": amount, "currency": "EUR" },
        })
    };
    let (status, a) = srv
        .json("POST", "/access/v1/evaluation", None, eval(50))
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["decision"], true);
    assert_eq!(a["context"]["reasons"], json!(["refund-small"]));
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", None, eval(500))
        .await;
    assert_eq!(a["decision"], false);
    assert_eq!(
        a["context"]["approval_required"]["kind"],
        "approval-required"
    );
    assert_eq!(a["context"]["approval_required"]["obligation"]["quorum"], 2);
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", None, eval(20000))
        .await;
    assert_eq!(
        (a["decision"].as_bool(), a["context"]["code"].as_str()),
        (Some(false), Some("policy-forbidden"))
    );

    let batch = |semantic: &str| {
        json!({
            "subject": { "type": "bearer", "id": alice },
            "action": { "name": "payment.refund" },
            "resource": { "type": "Payment", "id": "pay_123" },
            "options": { "evaluations_semantic": semantic },
            "evaluations": [
                { "context": { "amount": 50, "currency": "EUR" } },
                { "context": { "amount": 500, "currency": "EUR" } },
                { "context": { "amount": 60, "currency": "EUR" } },
            ],
        })
    };
    let (_, b) = srv
        .json("POST", "/access/v1/evaluations", None, batch("execute_all"))
        .await;
    let decisions: Vec<bool> = b["evaluations"]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["decision"] == true)
        .collect();
    assert_eq!(decisions, [true, false, true]);
    let (_, b) = srv
        .json(
            "POST",
            "/access/v1/evaluations",
            None,
            batch("deny_on_first_deny"),
        )
        .await;
    assert_eq!(b["evaluations"].as_array().map(Vec::len), Some(2));
    let (_, b) = srv
        .json(
            "POST",
            "/access/v1/evaluations",
            None,
            batch("permit_on_first_permit"),
        )
        .await;
    assert_eq!(b["evaluations"].as_array().map(Vec::len), Some(1));
    let (status, e) = srv
        .json("POST", "/access/v1/evaluations", None, batch("sometimes"))
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                "evaluations_semantic `\"sometimes\"` is not one of execute_all, deny_on_first_deny, permit_on_first_permit"
            )
        )
    );
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            json!({ "subject": { "type": "user", "id": "alice" } }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                "`subject.type` must be `bearer`, with the token as `subject.id`, or `User` from a trusted PEP"
            )
        )
    );
}

/// RFC 8693: an action policy allows outright is exchanged for a single-use
/// action token at once; one that needs approval opens the same pending
/// approval as bc-authorize; bad exchanges are refused with a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_exchange_mints_at_once_or_opens_the_pending_approval() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let exchange = |details: String, token: String| {
        let srv = &srv;
        async move {
            srv.token_endpoint(&[
                ("grant_type", EXCHANGE),
                ("subject_token", &token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("authorization_details", &details),
            ])
            .await
        }
    };

    // Allowed outright: an action token now, good once.
    let (status, t) = exchange(refund_details(50), alice.clone()).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["issued_token_type"], ACCESS_TOKEN_TYPE);
    assert_eq!(t["expires_in"], 300);
    assert_eq!(
        t["authorization_details"][0]["params"],
        json!({"amount": 50, "currency": "EUR"})
    );
    let at = t["access_token"].as_str().expect("access_token").to_owned();
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    assert_eq!(d["verdict"]["principal"]["subject"], "alice");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(50, &at)).await;
    assert_eq!(d["verdict"]["code"], "action-token-replayed", "{d}");
    // It is good for that refund only.
    let (_, d) = srv.json("POST", "/v1/check", None, refund(60, &at)).await;
    assert_eq!(d["verdict"]["code"], "action-token-digest-mismatch", "{d}");

    // An action token never outlives the token it was exchanged for.
    let short = dev("alice", Some("payments:refund"), &[], 120);
    let (status, t) = exchange(refund_details(50), short).await;
    assert_eq!((status, t["expires_in"].as_i64()), (200, Some(120)), "{t}");

    // Needs approval: the pending approval, the same one bc-authorize finds.
    let (status, e) = exchange(refund_details(500), alice.clone()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("authorization_pending")),
        "{e}"
    );
    assert_eq!(
        e["error_description"],
        "this action needs approval; poll the token endpoint with grant_type=urn:openid:params:grant-type:ciba and this auth_req_id"
    );
    assert_eq!(
        (e["expires_in"].as_i64(), e["interval"].as_i64()),
        (Some(900), Some(5))
    );
    let id = e["auth_req_id"].as_str().expect("auth_req_id").to_owned();
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    assert_eq!(ask["auth_req_id"], id.as_str());

    // Refused: a forbidden action, a bad token, a missing or wrong type.
    let (status, e) = exchange(refund_details(-5), alice.clone()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    assert_eq!(
        e["error_description"],
        "policy-forbidden: `payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`"
    );
    let (status, e) = exchange(refund_details(50), "not.a.token".to_owned()).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    let (status, e) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &alice),
            ("authorization_details", &refund_details(50)),
        ])
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (400, Some("subject_token_type is required"))
    );
    let (status, e) = srv
        .token_endpoint(&[
            ("grant_type", EXCHANGE),
            ("subject_token", &alice),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:id_token",
            ),
            ("authorization_details", &refund_details(50)),
        ])
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some(
                "subject_token_type `urn:ietf:params:oauth:token-type:id_token` is not supported; use `urn:ietf:params:oauth:token-type:access_token`"
            )
        )
    );
}

/// Decisions, approval events and request latency appear at /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_decisions_approvals_and_latency() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    srv.json("POST", "/v1/check", None, refund(50, &alice))
        .await;
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &alice))
        .await;
    srv.json("POST", "/v1/check", None, refund(50, "forged"))
        .await;
    // Any method a client invents is one label, not one each.
    srv.call("BREW", "/v1/check", None, None).await;
    let details = d["verdict"]["authorization_details"].to_string();
    srv.form(
        "/oauth/bc-authorize",
        &alice,
        &[("authorization_details", &details)],
    )
    .await;
    let (status, text) = srv.call("GET", "/metrics", None, None).await;
    assert_eq!(status, 200);
    let text = text.as_str().expect("text").to_owned();
    for line in [
        r#"greenlight_decisions_total{api="check",verdict="allow",code=""} 1"#,
        r#"greenlight_decisions_total{api="check",verdict="approval-required",code=""} 1"#,
        r#"greenlight_decisions_total{api="check",verdict="deny",code="token-malformed"} 1"#,
        r#"greenlight_approvals_total{outcome="requested"} 1"#,
        r#"greenlight_http_requests_total{method="POST",route="/v1/check",status="200"} 3"#,
        r#"greenlight_http_request_duration_seconds_count{method="POST",route="/v1/check"} 3"#,
        r#"greenlight_http_requests_total{method="POST",route="/oauth/bc-authorize",status="200"} 1"#,
        r#"greenlight_http_requests_total{method="other",route="/v1/check",status="405"} 1"#,
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
}

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

/// Settings that cannot work are refused at start, with the reason.
#[test]
fn bad_settings_are_refused() {
    let check = |text: &str| {
        toml::from_str::<Settings>(text)
            .map_err(|e| e.to_string())
            .and_then(|s| s.check().map_err(|e| e.to_string()))
    };
    assert_eq!(
        check("[[webhooks]]\nurl = \"ftp://x\"").expect_err("scheme"),
        "webhooks[0].url `ftp://x` is not an http(s) URL"
    );
    assert_eq!(
        check("[[webhooks]]\nurl = \"http://x\"\nsecret_env = \"GREENLIGHT_TEST_UNSET_SECRET\"")
            .expect_err("unset"),
        "webhooks[0].secret_env names `GREENLIGHT_TEST_UNSET_SECRET`, which is not set or empty"
    );
    assert_eq!(
        check("[signing]\nrotate_after = 0").expect_err("zero"),
        "signing.rotate_after must be at least 1 second"
    );
    assert_eq!(
        check("[[webhooks]]\nurl = \"http://x\"\nbogus = 1").expect_err("unknown field"),
        "TOML parse error at line 3, column 1\n  |\n3 | bogus = 1\n  | ^^^^^\nunknown field `bogus`, expected one of `url`, `secret_env`, `secret_file`, `format`, `attempts`, `timeout`\n"
    );
}

/// Rotation: `rotate_after` adds the next key at a sweep; it is published
/// before it signs (two sweeps), tokens the old key signed keep verifying
/// while it is published, and it is withdrawn afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_and_the_old_key_stays_published_until_its_tokens_expire() {
    let settings: Settings =
        toml::from_str("[signing]\nrotate_after = 3600\nretain_for = 600").expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let exchange = |details: String| {
        let (srv, alice) = (&srv, alice.clone());
        async move {
            let (status, t) = srv
                .token_endpoint(&[
                    ("grant_type", EXCHANGE),
                    ("subject_token", &alice),
                    ("subject_token_type", ACCESS_TOKEN_TYPE),
                    ("authorization_details", &details),
                ])
                .await;
            assert_eq!(status, 200, "{t}");
            t["access_token"].as_str().expect("token").to_owned()
        }
    };
    let old = exchange(refund_details(50)).await;
    let old_kid = kid_of(&old);

    let kids = |jwks: &Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|k| k["kid"].as_str().map(str::to_owned))
            .collect()
    };

    // Not yet due: a sweep keeps the key; a token minted now has the old key.
    srv.advance(3599);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let late = exchange(refund_details(51)).await;
    assert_eq!(kid_of(&late), old_kid);

    // Due: the sweep adds the next key and publishes it, but the old key
    // still signs, so every replica can fetch the new one first.
    srv.advance(1);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    let published = kids(&jwks);
    assert_eq!(published.len(), 2, "{jwks}");
    assert_eq!(published[1], old_kid);
    let new_kid = published[0].clone();
    assert_eq!(kid_of(&exchange(refund_details(52)).await), old_kid);

    // Two sweeps later (grace 60 s) the new key signs; the old one is
    // retired but still published.
    srv.advance(60);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let new = exchange(refund_details(53)).await;
    assert_eq!(kid_of(&new), new_kid);
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(kids(&jwks), vec![new_kid.clone(), old_kid.clone()]);
    let keys = srv.state.store.signing_keys().await.expect("keys");
    let old = keys.iter().find(|k| k.kid == old_kid).expect("old key");
    assert_eq!(
        (old.retired_at, old.publish_until),
        (Some(T0 + 3660), Some(T0 + 3660 + 600 + 60))
    );

    // The token the old key signed just before still verifies and works.
    let (_, intro) = srv
        .form("/oauth/introspect", &alice, &[("token", &late)])
        .await;
    assert_eq!(intro["active"], true, "{intro}");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(51, &late)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");
    let (_, d) = srv.json("POST", "/v1/check", None, refund(53, &new)).await;
    assert_eq!(d["verdict"]["kind"], "allow", "{d}");

    // When its publication ends, the old key is withdrawn.
    srv.advance(659);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(kids(&jwks), vec![new_kid.clone(), old_kid.clone()]);
    srv.advance(1);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let (_, jwks) = srv.call("GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(kids(&jwks), vec![new_kid]);
}

/// The periodic sweep marks approvals past their expiry as expired in the
/// store and audits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_due_approvals() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    srv.advance(899);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let a = srv
        .state
        .store
        .get_approval(&id)
        .await
        .expect("store")
        .expect("approval");
    assert_eq!(a.status, greenlight_store::Status::Pending);
    srv.advance(1);
    greenlight::serve::sweep(&srv.state).await.expect("sweep");
    let a = srv
        .state
        .store
        .get_approval(&id)
        .await
        .expect("store")
        .expect("approval");
    assert_eq!(a.status, greenlight_store::Status::Expired);
    let events: Vec<String> = srv
        .state
        .store
        .audit_for(&id)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.event)
        .collect();
    assert_eq!(events, vec!["approval.created", "approval.expired"]);
    let (_, text) = srv.call("GET", "/metrics", None, None).await;
    assert!(
        text.as_str()
            .expect("text")
            .lines()
            .any(|l| l == r#"greenlight_approvals_total{outcome="expired"} 1"#),
        "{text}"
    );
}

/// A token with any claims (JSON values), from the demo issuer.
fn token_with(sub: &str, claims: &[(&str, Value)]) -> String {
    dev(sub, None, claims, 7200)
}

/// `group:tenant-owner@tenant`: an owner of another tenant is not an
/// approver of this tenant's deletion; the requester's own tenant owner is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_scoped_approvers_come_from_the_requesters_tenant() {
    let srv = Server::start().await;
    let dave = token_with(
        "dave",
        &[
            ("roles", json!(["tenant-admin"])),
            ("tenant", json!("acme")),
        ],
    );
    let erin = token_with(
        "erin",
        &[
            ("groups", json!(["tenant-owner"])),
            ("tenant", json!("globex")),
        ],
    );
    let olga = token_with(
        "olga",
        &[
            ("groups", json!(["tenant-owner"])),
            ("tenant", json!("acme")),
        ],
    );
    let (_, d) = srv
        .json(
            "POST",
            "/v1/check",
            None,
            json!({
                "method": "DELETE",
                "path": "/tenants/acme/users/u1/data",
                "headers": { "authorization": format!("Bearer {dave}") },
            }),
        )
        .await;
    assert_eq!(d["verdict"]["kind"], "approval-required", "{d}");
    assert_eq!(
        d["verdict"]["obligation"]["approvers"],
        json!(["group:tenant-owner@tenant"])
    );
    let details = d["verdict"]["authorization_details"].to_string();
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &dave,
            &[("authorization_details", &details)],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();

    let (_, list) = srv
        .call("GET", "/v1/approvals?status=pending", Some(&erin), None)
        .await;
    assert_eq!(
        list["approvals"],
        json!([]),
        "another tenant's owner sees nothing"
    );
    let path = format!("/v1/approvals/{id}/approve");
    let (status, e) = srv
        .json(
            "POST",
            &path,
            Some(&erin),
            json!({ "reason": "looks fine" }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some("`erin` is not among the approvers (group:tenant-owner@tenant)")
        )
    );
    let (_, list) = srv
        .call("GET", "/v1/approvals?status=pending", Some(&olga), None)
        .await;
    assert_eq!(list["approvals"][0]["id"], id.as_str());
    let (status, v) = srv
        .json(
            "POST",
            &path,
            Some(&olga),
            json!({ "reason": "requested by the user" }),
        )
        .await;
    assert_eq!(
        (status, v["status"].as_str()),
        (200, Some("approved")),
        "{v}"
    );
}

/// /v1/check takes headers as an object or, as a gateway saw them, as
/// `[name, value]` pairs; anything else is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_takes_headers_as_pairs_too() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let mut req = refund(50, &alice);
    req["headers"] = json!([
        ["x-trace", "1"],
        ["authorization", format!("Bearer {alice}")]
    ]);
    let (status, d) = srv.json("POST", "/v1/check", None, req.clone()).await;
    assert_eq!(
        (status, d["verdict"]["kind"].as_str()),
        (200, Some("allow")),
        "{d}"
    );
    req["headers"] = json!("authorization: Bearer x");
    let (status, e) = srv.json("POST", "/v1/check", None, req).await;
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        e["error_description"],
        "Failed to deserialize the JSON body into the target type: headers: headers as an object of strings or a list of [name, value] pairs at line 1 column 86"
    );
}

/// A trusted PEP (its own token's client_id in `[authzen] trusted_clients`)
/// may name a subject by id and properties; anyone else may not, and
/// bearer subjects keep working without any PEP credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_pep_may_vouch_for_a_subject_by_id() {
    let settings: Settings =
        toml::from_str("[authzen]\ntrusted_clients = [\"api-gateway\"]").expect("settings");
    let srv = Server::start_with(settings).await;
    // A client-credentials token: the gateway speaking for itself.
    let pep = token_with("api-gateway", &[("client_id", json!("api-gateway"))]);
    let stranger = token_with("someone", &[]);
    // A user's token issued to the gateway's client is not the gateway.
    let users = token_with("mallory", &[("client_id", json!("api-gateway"))]);
    let vouched = |amount: i64, props: Value| {
        json!({
            "subject": { "type": "User", "id": "alice", "properties": props },
            "action": { "name": "payment.refund" },
            "resource": { "type": "Payment", "id": "pay_123" },
            "context": { "amount": amount, "currency": "EUR" },
        })
    };
    let refund_scope = json!({ "scopes": ["payments:refund"] });

    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["decision"], true, "{a}");
    assert_eq!(a["context"]["reasons"], json!(["refund-small"]));
    let (_, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(500, refund_scope.clone()),
        )
        .await;
    assert_eq!(a["decision"], false, "{a}");
    assert_eq!(
        a["context"]["approval_required"]["kind"],
        "approval-required"
    );
    assert_eq!(
        a["context"]["approval_required"]["obligation"]["approvers"],
        json!(["group:finance"])
    );
    let (_, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(50, json!({})),
        )
        .await;
    assert_eq!(
        (a["decision"].as_bool(), a["context"]["code"].as_str()),
        (Some(false), Some("policy-no-permit")),
        "without the scope: {a}"
    );

    // Refused: no PEP credential, an untrusted client, bad properties.
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (401, Some("no bearer token was presented"))
    );
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&stranger),
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            403,
            Some(
                "client `greenlight-dev` is not trusted to vouch for subjects; forward the subject's token as {\"type\": \"bearer\", \"id\": TOKEN}"
            )
        )
    );
    let (status, e) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            vouched(50, json!({ "scope": "x" })),
        )
        .await;
    let (status_u, e_u) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&users),
            vouched(50, refund_scope.clone()),
        )
        .await;
    assert_eq!(
        (status_u, e_u["error_description"].as_str()),
        (
            403,
            Some(
                "only client `api-gateway`'s own token (sub = client_id, as the client-credentials grant gives) may vouch for subjects, not `mallory`'s"
            )
        )
    );
    assert_eq!(status, 400, "{e}");
    assert_eq!(
        e["error_description"],
        "`subject.properties` do not fit: unknown field `scope`, expected one of `scopes`, `groups`, `roles`, `tenant`"
    );

    // A bearer subject needs no PEP credential.
    let alice = token("alice", "payments:refund", &[]);
    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            None,
            json!({
                "subject": { "type": "bearer", "id": alice },
                "action": { "name": "payment.refund" },
                "resource": { "type": "Payment", "id": "pay_123" },
                "context": { "amount": 50, "currency": "EUR" },
            }),
        )
        .await;
    assert_eq!((status, a["decision"].as_bool()), (200, Some(true)), "{a}");
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

/// A one-time action token ends no later than the base token that
/// collected it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_once_token_ends_no_later_than_the_base_token_that_collected_it() {
    let srv = Server::start().await;
    let alice = dev("alice", Some("payments:refund"), &[], 120);
    let (_, ask) = srv
        .form(
            "/oauth/bc-authorize",
            &alice,
            &[("authorization_details", &refund_details(500))],
        )
        .await;
    let id = ask["auth_req_id"].as_str().expect("id").to_owned();
    for who in ["bob", "carol"] {
        let (status, v) = srv
            .json(
                "POST",
                &format!("/v1/approvals/{id}/approve"),
                Some(&token(who, "", &["finance"])),
                json!({ "reason": "checked" }),
            )
            .await;
        assert_eq!(status, 200, "{v}");
    }
    srv.advance(20);
    let (status, t) = srv
        .form(
            "/oauth/token",
            &alice,
            &[("grant_type", CIBA), ("auth_req_id", &id)],
        )
        .await;
    assert_eq!((status, t["expires_in"].as_i64()), (200, Some(100)), "{t}");
}
