//! A `greenlight serve` on port 0 for tests: a temporary SQLite store, a
//! test clock that makes polling intervals and expiries exact, tokens
//! signed by the demo issuer's development key, and a small client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use greenlight::dev::{DevTokenRequest, dev_token};
pub use greenlight::serve::Settings;
use greenlight::serve::{AppState, Clock, ServeConfig, prepare, run};
use serde_json::{Value, json};

/// 2026-01-01T00:00:00Z.
pub const T0: i64 = 1_767_225_600;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running server and what a test needs of it.
pub struct Server {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The test clock every request reads; see [`Server::advance`].
    clock: Arc<AtomicI64>,
    /// Its state, for looking into the store and the policy.
    pub state: Arc<AppState>,
    dir: Option<tempfile::TempDir>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// A server with default settings on a new SQLite store.
    pub async fn start() -> Self {
        Self::start_with(Settings::default()).await
    }

    /// A server with `settings` on a new SQLite store.
    pub async fn start_with(settings: Settings) -> Self {
        Self::start_in(settings, tempfile::tempdir().expect("tempdir")).await
    }

    /// A server on the store in `dir` (a restart reuses one).
    pub async fn start_in(settings: Settings, dir: tempfile::TempDir) -> Self {
        let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
        let mut srv = Self::start_on(settings, &store).await;
        srv.dir = Some(dir);
        srv
    }

    /// A server on the store at `store` (a URL; replicas share one).
    pub async fn start_on(settings: Settings, store: &str) -> Self {
        Self::start_full(settings, store, &root().join("examples/bundle")).await
    }

    /// A server on a new SQLite store with the bundle in `bundle`.
    pub async fn start_with_bundle(bundle: &Path) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
        let mut srv = Self::start_full(Settings::default(), &store, bundle).await;
        srv.dir = Some(dir);
        srv
    }

    /// A server with `settings`, on the store at `store`, with `bundle`.
    pub async fn start_full(settings: Settings, store: &str, bundle: &Path) -> Self {
        Self::start_module(settings, store, bundle, None).await
    }

    /// A server with `settings`, on the store at `store`, with `bundle`
    /// in the policy module at `component` (the shipped one when `None`).
    pub async fn start_module(
        settings: Settings,
        store: &str,
        bundle: &Path,
        component: Option<&Path>,
    ) -> Self {
        let clock = Arc::new(AtomicI64::new(T0));
        let c = clock.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let config = ServeConfig {
            bundle: bundle.to_owned(),
            store: store.to_owned(),
            public_url: None,
            settings,
            development: true,
            component: component.map(Path::to_owned),
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
            dir: None,
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Shuts down gracefully, waits until it has, and hands back the store's
    /// folder.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("joins").expect("serves");
        }
        self.dir.take().expect("a folder")
    }

    /// POSTs a form to `/oauth/token` without a bearer (token exchange).
    pub async fn token_endpoint(&self, fields: &[(&str, &str)]) -> (u16, Value) {
        let body = super::form(fields);
        self.call(
            "POST",
            "/oauth/token",
            None,
            Some(("application/x-www-form-urlencoded", body)),
        )
        .await
    }

    /// Token checks and signature verifications the component has made so
    /// far, as `/metrics` reports them.
    pub async fn checks(&self) -> (u64, u64) {
        let (status, text) = self.call("GET", "/metrics", None, None).await;
        assert_eq!(status, 200);
        let text = text.as_str().expect("OpenMetrics text").to_owned();
        let read = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no `{name}` in\n{text}"))
        };
        (
            read("greenlight_token_checks_total"),
            read("greenlight_signature_checks_total"),
        )
    }

    /// An action token for a refund of `amount` by token exchange (the
    /// demo allows refunds up to 100 outright).
    pub async fn exchanged(&self, amount: i64, subject_token: &str) -> String {
        let (status, t) = self
            .token_endpoint(&[
                ("grant_type", EXCHANGE),
                ("subject_token", subject_token),
                ("subject_token_type", ACCESS_TOKEN_TYPE),
                ("authorization_details", &refund_details(amount)),
            ])
            .await;
        assert_eq!(status, 200, "{t}");
        t["access_token"].as_str().expect("access_token").to_owned()
    }

    /// Asks for approval of `details` (RFC 9396 JSON) with `token`
    /// (CIBA `bc-authorize`) and returns the `auth_req_id`.
    pub async fn ask(&self, token: &str, details: &str) -> String {
        let (status, ask) = self
            .form(
                "/oauth/bc-authorize",
                token,
                &[("authorization_details", details)],
            )
            .await;
        assert_eq!(status, 200, "{ask}");
        ask["auth_req_id"].as_str().expect("id").to_owned()
    }

    /// Each of `who`, signed in to the approvals app as a member of
    /// `finance`, approves `id` with a reason.
    pub async fn approve_by_finance(&self, id: &str, who: &[&str]) {
        for w in who {
            let (status, v) = self
                .json(
                    "POST",
                    &format!("/v1/approvals/{id}/approve"),
                    Some(&approver(w, &["finance"])),
                    json!({ "reason": "checked" }),
                )
                .await;
            assert_eq!(status, 200, "{v}");
        }
    }

    /// Polls `/oauth/token` for approval `id` with `token` (CIBA).
    pub async fn collect(&self, token: &str, id: &str) -> (u16, Value) {
        self.form(
            "/oauth/token",
            token,
            &[("grant_type", CIBA), ("auth_req_id", id)],
        )
        .await
    }

    /// Advances the test clock by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.clock.fetch_add(seconds, Ordering::SeqCst);
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, String)>,
    ) -> (u16, Value) {
        super::call(self.addr, method, path, token, body).await
    }

    pub async fn json(
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

    pub async fn form(&self, path: &str, token: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        let body = super::form(fields);
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

/// The demo's approvals app: its tokens are meant for approving.
pub const APPROVALS_APP: &str = "approvals-app";

/// A token of the demo issuer, issued at `T0` to the requesting app
/// (`greenlight-dev`), signed in at `T0`.
pub fn dev(sub: &str, scope: Option<&str>, claims: &[(&str, Value)], ttl: u64) -> String {
    dev_through(None, sub, scope, claims, ttl)
}

/// A token of the demo issuer issued at `T0` to `client` (the requesting
/// app when `None`).
pub fn dev_through(
    client: Option<&str>,
    sub: &str,
    scope: Option<&str>,
    claims: &[(&str, Value)],
    ttl: u64,
) -> String {
    dev_token(
        &root().join("examples/bundle"),
        &DevTokenRequest {
            subject: sub.to_owned(),
            scope: scope.map(str::to_owned),
            client_id: client.map(str::to_owned),
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

/// A token of the requesting app for `sub`, with `scope` and `groups`.
pub fn token(sub: &str, scope: &str, groups: &[&str]) -> String {
    dev(sub, Some(scope), &[("groups", json!(groups))], 7200)
}

/// A token of the approvals app for `sub` in `groups`: one meant for
/// approving.
pub fn approver(sub: &str, groups: &[&str]) -> String {
    dev_through(
        Some(APPROVALS_APP),
        sub,
        None,
        &[("groups", json!(groups))],
        7200,
    )
}

pub fn refund(amount: i64, token: &str) -> Value {
    json!({
        "method": "POST",
        "path": "/payments/pay_123/refund",
        "headers": { "authorization": format!("Bearer {token}") },
        "params": { "amount": amount, "currency": "EUR" },
    })
}

pub const CIBA: &str = "urn:openid:params:grant-type:ciba";
pub const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `authorization_details` for a refund of `amount` EUR of `pay_123`.
pub fn refund_details(amount: i64) -> String {
    json!([{
        "type": "urn:greenlight:action",
        "actions": ["payment.refund"],
        "resource": { "type": "Payment", "id": "pay_123" },
        "params": { "amount": amount, "currency": "EUR" },
    }])
    .to_string()
}

/// The `kid` of a compact JWS.
pub fn kid_of(token: &str) -> String {
    greenlight_core::jws::parse(token)
        .expect("a JWS")
        .kid
        .expect("kid")
}

/// A token with any claims (JSON values), from the demo issuer.
pub fn token_with(sub: &str, claims: &[(&str, Value)]) -> String {
    dev(sub, None, claims, 7200)
}

/// A temporary folder holding `files` of the bundle at `from` (paths
/// inside it, such as `dev/idp-dev.key.pem`), for a test to add the rest.
pub fn bundle_copy(from: &Path, files: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in files {
        let to = dir.path().join(name);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).expect("bundle folder");
        }
        std::fs::copy(from.join(name), &to).unwrap_or_else(|e| panic!("copy {name}: {e}"));
    }
    dir
}

/// The demo bundle with a second, less trusted provider: its own key, an
/// approvals app of the same name, no groups, and a gateway client of the
/// same name as the one the first provider's PEP uses.
pub fn two_issuers() -> tempfile::TempDir {
    let demo = root().join("examples/bundle");
    let dir = bundle_copy(
        &demo,
        &[
            "policy.cedar",
            "schema.cedarschema",
            "idp.jwks.json",
            "dev/idp-dev.key.pem",
        ],
    );
    std::fs::copy(
        root().join("tests/bundles/tokens/ed.jwks.json"),
        dir.path().join("partner.jwks.json"),
    )
    .expect("partner keys");
    let config = std::fs::read_to_string(demo.join("greenlight.toml")).expect("config");
    let (issuers, rest) = config
        .split_once("# Greenlight's own action tokens.")
        .expect("the demo's layout");
    let partner = r#"
[[issuers]]
issuer = "https://partner.example.com"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
jwks = "partner.jwks.json"
approver_clients = ["approvals-app"]

"#;
    std::fs::write(
        dir.path().join("greenlight.toml"),
        format!("{issuers}{partner}# Greenlight's own action tokens.{rest}"),
    )
    .expect("config");
    dir
}

/// A token of the partner provider, signed with its key.
pub fn partner(sub: &str, client: &str, extra: Value) -> String {
    let pem = std::fs::read(root().join("tests/keys/ed.pem")).expect("key");
    let key = jsonwebtoken::EncodingKey::from_ed_pem(&pem).expect("ed key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("ed-1".to_owned());
    let mut claims = json!({ "iss": "https://partner.example.com", "aud": "https://api.example.com",
        "sub": sub, "client_id": client, "iat": T0, "auth_time": T0, "exp": T0 + 7200 });
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        claims[k] = v;
    }
    jsonwebtoken::encode(&header, &claims, &key).expect("signs")
}
