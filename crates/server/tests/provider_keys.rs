//! `greenlight serve` with an issuer whose keys come from its provider:
//! a stand-in OpenID provider on loopback (discovery document and JWKS,
//! counting every fetch), the server's test clock driving freshness, and
//! real HTTP between them. Discovery, the first fetch, a rotation found by
//! an unknown `kid`, a flood of made-up `kid`s, failed fetches that keep
//! the last good keys, staleness that fails closed, and recovery.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::server::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

mod common;

/// PKCS #8 v1 framing of an Ed25519 seed (RFC 8410).
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// One of the provider's signing keys.
struct Key {
    kid: String,
    key: EncodingKey,
    public: Value,
}

impl Key {
    fn new(kid: &str) -> Self {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("entropy");
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        let key = EncodingKey::from_ed_der(&der);
        let mut public =
            serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::EdDSA).expect("jwk"))
                .expect("json");
        public["kid"] = json!(kid);
        Self {
            kid: kid.to_owned(),
            key,
            public,
        }
    }

    /// An access token for `sub`, issued at `T0` for two hours, with this
    /// key's `kid` (or `kid`).
    fn token(&self, issuer: &str, sub: &str, kid: Option<&str>) -> String {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some("at+jwt".to_owned());
        header.kid = Some(kid.unwrap_or(&self.kid).to_owned());
        let claims = json!({
            "iss": issuer, "aud": "https://api.example.com", "sub": sub,
            "client_id": "shop", "iat": T0, "exp": T0 + 7200, "scope": "docs:read",
        });
        jsonwebtoken::encode(&header, &claims, &self.key).expect("signs")
    }
}

/// What the provider's JWKS endpoint answers.
#[derive(Clone, Debug)]
enum Jwks {
    /// These public keys, with this `Cache-Control` if any.
    Keys(Vec<Value>, Option<&'static str>),
    /// A status with no key set.
    Status(u16),
    /// 10 MB of JSON.
    Huge,
    /// Not JSON.
    Garbage,
}

/// The stand-in provider's state, and how often each document was fetched.
struct Provider {
    base: String,
    jwks: Mutex<Jwks>,
    /// The `jwks_uri` the discovery document names instead of its own.
    jwks_uri: Mutex<Option<String>>,
    discoveries: AtomicU64,
    fetches: AtomicU64,
}

impl Provider {
    fn set(&self, jwks: Jwks) {
        *self.jwks.lock().expect("lock") = jwks;
    }

    fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn discovery(State(p): State<Arc<Provider>>) -> Response {
    p.discoveries.fetch_add(1, Ordering::SeqCst);
    let uri = p
        .jwks_uri
        .lock()
        .expect("lock")
        .clone()
        .unwrap_or_else(|| format!("{}/jwks", p.base));
    axum::Json(json!({ "issuer": p.base, "jwks_uri": uri })).into_response()
}

async fn jwks(State(p): State<Arc<Provider>>) -> Response {
    p.fetches.fetch_add(1, Ordering::SeqCst);
    let answer = p.jwks.lock().expect("lock").clone();
    match answer {
        Jwks::Keys(keys, cache) => {
            let mut r = axum::Json(json!({ "keys": keys })).into_response();
            if let Some(c) = cache {
                r.headers_mut()
                    .insert(header::CACHE_CONTROL, c.parse().expect("header"));
            }
            r
        }
        Jwks::Status(s) => StatusCode::from_u16(s).expect("status").into_response(),
        Jwks::Huge => {
            let body = format!("{{\"keys\":[],\"pad\":\"{}\"}}", "x".repeat(10_000_000));
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Jwks::Garbage => "<html>not a key set</html>".into_response(),
    }
}

/// Starts the provider on a loopback port; it serves until the test ends.
async fn provider(jwks: Jwks) -> Arc<Provider> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let p = Arc::new(Provider {
        base,
        jwks: Mutex::new(jwks),
        jwks_uri: Mutex::new(None),
        discoveries: AtomicU64::new(0),
        fetches: AtomicU64::new(0),
    });
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(self::jwks))
        .with_state(p.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    p
}

/// A bundle whose one issuer is `issuer`, its keys found by discovery
/// (or at `jwks_uri`), plain HTTP allowed to loopback.
fn bundle(issuer: &str, jwks_uri: Option<&str>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let uri = jwks_uri.map_or_else(String::new, |u| format!("jwks_uri = \"{u}\"\n"));
    let config = format!(
        r#"
[[issuers]]
issuer = "{issuer}"
audience = "https://api.example.com"
algorithms = ["EdDSA"]
{uri}
[key_fetch]
allow_http_loopback = true
min_age_seconds = 60
max_age_seconds = 3600
max_stale_seconds = 600
unknown_kid_interval_seconds = 30

[action_tokens]
issuer = "https://greenlight.example.com"
audience = "https://api.example.com"

[[routes]]
method = "GET"
path = "/docs/{{id}}"
action = "doc.read"
resource = {{ type = "Doc", id = "{{id}}" }}
"#
    );
    std::fs::write(dir.path().join("greenlight.toml"), config).expect("config");
    std::fs::write(
        dir.path().join("policy.cedar"),
        "@id(\"read\") permit (principal, action == Action::\"doc.read\", resource);\n",
    )
    .expect("policy");
    dir
}

/// The verdict of `GET /docs/d1` with `token`: `allow`, or the denial's
/// code, message and issuer.
async fn read(srv: &Server, token: &str) -> Value {
    read_at(srv.addr, token.to_owned()).await
}

/// [`read`] of the server at `addr`, for requests sent at once.
async fn read_at(addr: std::net::SocketAddr, token: String) -> Value {
    let body = json!({ "method": "GET", "path": "/docs/d1",
                       "headers": { "authorization": format!("Bearer {token}") } });
    let (status, d) = common::call(
        addr,
        "POST",
        "/v1/check",
        None,
        Some(("application/json", body.to_string())),
    )
    .await;
    assert_eq!(status, 200, "{d}");
    match d["verdict"]["kind"].as_str() {
        Some("allow") => json!("allow"),
        _ => {
            let mut v = d["verdict"].clone();
            if let Some(o) = v.as_object_mut() {
                o.remove("kind");
            }
            v
        }
    }
}

fn unknown(message: &str, issuer: &str) -> Value {
    json!({ "code": "token-unknown-key", "message": message, "issuer": issuer })
}

/// Polls `/healthz` until the issuer's entry satisfies `done` (the
/// background fetcher looks at the clock every second).
async fn wait_for(srv: &Server, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (_, h) = srv.call("GET", "/healthz", None, None).await;
        if done(&h) {
            return h;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, h) = srv.call("GET", "/healthz", None, None).await;
    panic!("waited 10 s for {what}: {h}");
}

/// Discovery finds the key set; a token signed by a key published later is
/// accepted at once (its unknown `kid` fetches the set again); a flood of
/// made-up `kid`s costs at most one fetch per `unknown_kid_interval`; a
/// key the provider removed stops verifying once the set is refreshed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_then_rotation_through_an_unknown_kid() {
    let k1 = Key::new("k1");
    let k2 = Key::new("k2");
    let idp = provider(Jwks::Keys(vec![k1.public.clone()], None)).await;
    let iss = idp.base.clone();
    let dir = bundle(&iss, None);
    let srv = Server::start_with_bundle(dir.path()).await;

    let (_, h) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(
        h["keys"],
        json!([{
            "issuer": iss, "source": "discovery", "jwks_uri": format!("{iss}/jwks"),
            "keys": true, "kids": ["k1"], "age_seconds": 0, "fresh_for_seconds": 60,
            "last_error": null,
        }])
    );
    assert_eq!(
        (idp.discoveries.load(Ordering::SeqCst), idp.fetches()),
        (1, 1)
    );
    assert_eq!(read(&srv, &k1.token(&iss, "alice", None)).await, "allow");

    // The provider publishes k2 and signs with it: twenty requests at once
    // with the new kid all pass (those arriving during the fetch wait for
    // it), for one fetch.
    idp.set(Jwks::Keys(vec![k1.public.clone(), k2.public.clone()], None));
    let mut at_once = tokio::task::JoinSet::new();
    for i in 0..20 {
        at_once.spawn(read_at(
            srv.addr,
            k2.token(&iss, &format!("user-{i}"), None),
        ));
    }
    let verdicts = at_once.join_all().await;
    assert_eq!(verdicts, vec![json!("allow"); 20]);
    assert_eq!(idp.fetches(), 2, "one fetch for the new kid");

    // Made-up kids: denied, and no fetch within the interval.
    for i in 0..50 {
        let kid = format!("made-up-{i}");
        assert_eq!(
            read(&srv, &k1.token(&iss, "mallory", Some(&kid))).await,
            unknown(&format!("no key with kid `{kid}`"), &iss)
        );
    }
    assert_eq!(
        idp.fetches(),
        2,
        "a flood of unknown kids fetched nothing more"
    );
    srv.advance(31);
    for i in 0..50 {
        let kid = format!("again-{i}");
        assert_eq!(
            read(&srv, &k1.token(&iss, "mallory", Some(&kid))).await,
            unknown(&format!("no key with kid `{kid}`"), &iss)
        );
    }
    assert_eq!(
        idp.fetches(),
        3,
        "one fetch per interval, however many kids"
    );

    // k1 is removed; the background refresh (at 3/4 of 60 s) drops it.
    idp.set(Jwks::Keys(vec![k2.public.clone()], None));
    srv.advance(46);
    wait_for(&srv, "k1 to be gone", |h| {
        h["keys"][0]["kids"] == json!(["k2"])
    })
    .await;
    assert_eq!(
        read(&srv, &k1.token(&iss, "alice", None)).await,
        unknown("no key with kid `k1`", &iss)
    );
    assert_eq!(read(&srv, &k2.token(&iss, "alice", None)).await, "allow");
}

/// Fetches that fail (a 500, 10 MB, not JSON, a private key, a shared
/// secret) keep the last good keys serving; past the allowed staleness the
/// keys are withdrawn and tokens are denied saying why; a working fetch
/// brings them back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_fetches_keep_the_last_keys_until_they_are_too_stale() {
    let k1 = Key::new("k1");
    let idp = provider(Jwks::Keys(
        vec![k1.public.clone()],
        Some("public, max-age=120"),
    ))
    .await;
    let iss = idp.base.clone();
    let dir = bundle(&iss, None);
    let srv = Server::start_with_bundle(dir.path()).await;
    let token = k1.token(&iss, "alice", None);
    let (_, h) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!(h["keys"][0]["fresh_for_seconds"], 120, "{h}");

    let mut private = k1.public.clone();
    private["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
    let oct =
        json!({ "kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "s" });
    let jwks_url = format!("{iss}/jwks");
    let cases = [
        (Jwks::Status(500), format!("GET {jwks_url}: status 500")),
        (
            Jwks::Huge,
            format!("GET {jwks_url}: the body is larger than 524288 bytes"),
        ),
        (
            Jwks::Garbage,
            format!("GET {jwks_url}: not JSON: expected value at line 1 column 1"),
        ),
        (
            Jwks::Keys(vec![private], None),
            format!(
                "the key set was refused: jwks of `{iss}`: key 0: a key set holds public keys only, and this key has the private member `d`"
            ),
        ),
        (
            Jwks::Keys(vec![oct], None),
            format!(
                "the key set was refused: issuer `{iss}` does not allow HS256, so its keys cannot include a shared secret"
            ),
        ),
    ];
    for (answer, error) in cases {
        idp.set(answer);
        // Past the next fetch (the refresh at 90 s, then the backoff).
        srv.advance(100);
        let h = wait_for(&srv, &error, |h| h["keys"][0]["last_error"] == json!(error)).await;
        assert_eq!(
            (h["status"].as_str(), &h["keys"][0]["keys"]),
            (Some("ok"), &json!(true))
        );
        assert_eq!(
            read(&srv, &token).await,
            "allow",
            "the last good keys serve"
        );
    }

    // 500 s after the fetch that worked; fresh for 120 s, stale for 600 s
    // more: at 721 s the keys go.
    srv.advance(221);
    let h = wait_for(&srv, "the keys to be withdrawn", |h| {
        h["status"] == "degraded"
    })
    .await;
    assert_eq!(h["keys"][0]["keys"], false, "{h}");
    let last = format!(
        "the key set was refused: issuer `{iss}` does not allow HS256, so its keys cannot include a shared secret"
    );
    let verdict = read(&srv, &token).await;
    assert_eq!(
        verdict,
        unknown(
            &format!(
                "no keys are loaded for issuer `{iss}`: its keys are too stale: fetched 721 s ago, fresh for 120 s, and no fetch has worked since ({last})"
            ),
            &iss
        )
    );

    // The provider is fixed: the next fetch brings the keys back.
    idp.set(Jwks::Keys(vec![k1.public.clone()], None));
    srv.advance(100);
    wait_for(&srv, "the keys to come back", |h| h["status"] == "ok").await;
    assert_eq!(read(&srv, &token).await, "allow");
}

/// A provider that never answered: the server starts, says so in
/// `/healthz`, and denies its tokens naming the fetch error; the keys
/// arrive with the first fetch that works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuer_without_keys_yet_fails_closed_naming_the_error() {
    let k1 = Key::new("k1");
    let idp = provider(Jwks::Status(503)).await;
    let iss = idp.base.clone();
    let jwks_url = format!("{iss}/jwks");
    let dir = bundle(&iss, Some(&jwks_url));
    let srv = Server::start_with_bundle(dir.path()).await;
    let (_, h) = srv.call("GET", "/healthz", None, None).await;
    let error = format!("GET {jwks_url}: status 503");
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(
        h["keys"],
        json!([{
            "issuer": iss, "source": "jwks_uri", "jwks_uri": jwks_url, "keys": false,
            "kids": [], "age_seconds": null, "fresh_for_seconds": null, "last_error": error,
        }])
    );
    assert_eq!(
        idp.discoveries.load(Ordering::SeqCst),
        0,
        "jwks_uri needs no discovery"
    );
    let token = k1.token(&iss, "alice", None);
    assert_eq!(
        read(&srv, &token).await,
        unknown(
            &format!("no keys are loaded for issuer `{iss}`: fetching its keys failed: {error}"),
            &iss
        )
    );
    idp.set(Jwks::Keys(vec![k1.public.clone()], None));
    // Past the backoff of the two failed fetches (at start, and the one
    // the denied token asked for).
    srv.advance(60);
    wait_for(&srv, "the first keys", |h| h["status"] == "ok").await;
    assert_eq!(read(&srv, &token).await, "allow");
    let (_, metrics) = srv.call("GET", "/metrics", None, None).await;
    let metrics = metrics.as_str().expect("text");
    assert!(
        metrics.contains(&format!(
            "greenlight_key_fetches_total{{issuer=\"{iss}\",outcome=\"ok\"}} 1"
        )),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("greenlight_key_age_seconds{{issuer=\"{iss}\"}} 0")),
        "{metrics}"
    );
}

/// A discovery document may only send the server to the issuer's own host:
/// a `jwks_uri` elsewhere (another machine of the provider's network, or
/// another port) is refused, its tokens denied naming why; naming the
/// URL in the bundle is how an operator trusts it. The error the provider
/// controls is kept short and on one line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovered_jwks_uri_elsewhere_is_refused() {
    let k1 = Key::new("k1");
    let idp = provider(Jwks::Keys(vec![k1.public.clone()], None)).await;
    let iss = idp.base.clone();
    let port = iss.rsplit(':').next().expect("port");
    let elsewhere = format!("http://localhost:{port}/jwks");
    *idp.jwks_uri.lock().expect("lock") = Some(elsewhere.clone());
    let dir = bundle(&iss, None);
    let srv = Server::start_with_bundle(dir.path()).await;
    let oidc = format!("{iss}/.well-known/openid-configuration");
    let rfc8414 = format!("{iss}/.well-known/oauth-authorization-server");
    let error = format!(
        "discovery failed: {oidc}: its jwks_uri `{elsewhere}` is not on the issuer's host; to trust it, name it as `jwks_uri` in the bundle; GET {rfc8414}: status 404"
    );
    let (_, h) = srv.call("GET", "/healthz", None, None).await;
    assert_eq!(h["keys"][0]["last_error"], json!(error), "{h}");
    assert_eq!(idp.fetches(), 0, "nothing fetched elsewhere");
    assert_eq!(
        read(&srv, &k1.token(&iss, "alice", None)).await,
        unknown(
            &format!("no keys are loaded for issuer `{iss}`: fetching its keys failed: {error}"),
            &iss
        )
    );

    // A provider's text is kept to one line of at most 512 characters.
    let long = format!(
        "http://127.0.0.1:{port}/{}\nFORGED LOG LINE",
        "x".repeat(600)
    );
    *idp.jwks_uri.lock().expect("lock") = Some(long);
    srv.advance(60);
    let h = wait_for(&srv, "the next failure", |h| {
        h["keys"][0]["last_error"]
            .as_str()
            .is_some_and(|e| e.ends_with('…'))
    })
    .await;
    let e = h["keys"][0]["last_error"].as_str().expect("text");
    assert_eq!(e.chars().count(), 513, "{e}");
    assert!(!e.contains('\n'), "{e}");
}

/// A swap keeps the keys fetched for an issuer whose keys come from the
/// same place: no fetch, and its tokens verify through the swap while the
/// provider is down. An issuer whose `jwks_uri` changed is fetched anew,
/// and with the provider down its tokens fail closed, saying why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_keeps_the_fetched_keys_of_an_unchanged_issuer() {
    use greenlight::serve::live::{Outcome, reload};
    let k1 = Key::new("k1");
    let p = provider(Jwks::Keys(vec![k1.public.clone()], None)).await;
    let uri = format!("{}/jwks", p.base);
    let dir = bundle(&p.base, Some(&uri));
    let srv = Server::start_with_bundle(dir.path()).await;
    let token = k1.token(&p.base, "alice", None);
    assert_eq!(read(&srv, &token).await, json!("allow"));
    let fetched = p.fetches();
    p.set(Jwks::Status(503));

    let policy = dir.path().join("policy.cedar");
    let mut text = std::fs::read_to_string(&policy).expect("policy");
    text.push_str("@id(\"hidden\") forbid (principal, action, resource == Doc::\"d2\");\n");
    std::fs::write(&policy, &text).expect("write");
    let a = reload(&srv.state, "admin").await;
    assert_eq!(a.outcome, Outcome::Swapped, "{a:?}");
    assert_eq!(p.fetches(), fetched, "no fetch for an unchanged key source");
    assert_eq!(read(&srv, &token).await, json!("allow"));

    // The same issuer, its keys at another URL: fetched, and refused while
    // the provider is down.
    let moved = bundle(&p.base, Some(&format!("{uri}?v=2")));
    std::fs::copy(
        moved.path().join("greenlight.toml"),
        dir.path().join("greenlight.toml"),
    )
    .expect("copy");
    let a = reload(&srv.state, "admin").await;
    assert_eq!(a.outcome, Outcome::Swapped, "{a:?}");
    assert_eq!(p.fetches(), fetched + 1);
    let denied = read(&srv, &token).await;
    assert_eq!(denied["code"], "token-unknown-key", "{denied}");
    assert!(
        denied["message"]
            .as_str()
            .is_some_and(|m| m.ends_with(&format!(
                "fetching its keys failed: GET {uri}?v=2: status 503"
            ))),
        "{denied}"
    );
}
