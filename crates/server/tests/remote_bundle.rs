//! Remote, signed bundles: `greenlight serve --bundle URL` fetches a bundle
//! archive, polls it with `If-None-Match`, and loads nothing whose detached
//! signature does not verify with a locally configured key. Replicas
//! polling one URL converge on one bundle hash.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::server::*;
use greenlight::archive::{self, Unpacked};
use greenlight::serve::live::remote::RemoteSettings;
use serde_json::Value;

mod common;

fn key(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/keys").join(name)).expect("key")
}

/// The demo bundle, with the refund threshold at `limit` and its tests to
/// match.
fn demo(limit: u32) -> Unpacked {
    let dir = root().join("examples/bundle");
    let mut files = greenlight_host::read_bundle_dir(&dir).expect("files");
    let mut tests = greenlight::policytest::read_files(&dir).expect("tests");
    if limit != 100 {
        for (name, text) in &mut files {
            if name == "policy.cedar" {
                *text = text
                    .replace(
                        "context.amount <= 100 };",
                        &format!("context.amount <= {limit} }};"),
                    )
                    .replace(
                        "context.amount > 100 };",
                        &format!("context.amount > {limit} }};"),
                    );
            }
        }
        for (_, text) in &mut tests {
            *text = text.replace(
                r#"expect = { verdict = "approval-required", reasons = ["refund-large"], approvers = ["group:finance"], quorum = 2, grant = "once", ttl = 900 }"#,
                r#"expect = { verdict = "allow", reasons = ["refund-small"] }"#,
            );
        }
    }
    Unpacked { files, tests }
}

/// What the bundle host serves now.
#[derive(Default)]
struct Published {
    archive: Vec<u8>,
    signature: Option<String>,
    /// Full answers and `304 Not Modified` answers to the archive.
    full: AtomicU64,
    not_modified: AtomicU64,
}

type Host = Arc<Mutex<Arc<Published>>>;

async fn archive_route(State(host): State<Host>, headers: HeaderMap) -> Response {
    let p = host.lock().expect("lock").clone();
    let etag = format!("\"{}\"", archive::sha256_hex(&p.archive));
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        == Some(etag.as_str())
    {
        p.not_modified.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    p.full.fetch_add(1, Ordering::SeqCst);
    (StatusCode::OK, [(header::ETAG, etag)], p.archive.clone()).into_response()
}

async fn signature_route(State(host): State<Host>) -> Response {
    let p = host.lock().expect("lock").clone();
    match &p.signature {
        Some(s) => s.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// A bundle host on loopback: `/payments.tar.gz` and its `.sig`.
async fn bundle_host() -> (SocketAddr, Host) {
    let host: Host = Arc::default();
    let app = axum::Router::new()
        .route("/payments.tar.gz", axum::routing::get(archive_route))
        .route("/payments.tar.gz.sig", axum::routing::get(signature_route))
        .with_state(host.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, host)
}

/// When the archives are signed, unless a test says otherwise.
const SIGNED_AT: u64 = 1_767_225_600;

/// Publishes `bundle`, signed with `signer` (a key file of tests/keys)
/// under `kid` as the bundle `payments` at [`SIGNED_AT`], or unsigned.
fn publish(host: &Host, bundle: &Unpacked, signer: Option<(&str, &str)>) -> Arc<Published> {
    publish_as(host, bundle, signer, "payments", SIGNED_AT)
}

/// [`publish`], naming the bundle `name`, signed at `iat`.
fn publish_as(
    host: &Host,
    bundle: &Unpacked,
    signer: Option<(&str, &str)>,
    name: &str,
    iat: u64,
) -> Arc<Published> {
    let bytes = archive::pack(bundle).expect("pack");
    let signature =
        signer.map(|(k, kid)| archive::sign(&bytes, name, &key(k), kid, iat).expect("sign"));
    let p = Arc::new(Published {
        archive: bytes,
        signature,
        ..Published::default()
    });
    *host.lock().expect("lock") = p.clone();
    p
}

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";

/// Settings trusting `ops-1` (tests/keys/ed.pem) for bundles, polling
/// every second.
fn settings(dir: &Path) -> Settings {
    let jwks = dir.join("signers.jwks.json");
    let set = archive::public_jwks(&key("ed.pem"), "ops-1").expect("jwks");
    std::fs::write(&jwks, serde_json::to_string(&set).expect("json")).expect("write");
    let token = dir.join("admin-token");
    std::fs::write(&token, ADMIN).expect("token");
    Settings {
        remote_bundle: RemoteSettings {
            trusted_keys: Some(jwks),
            poll_interval: Some(1),
            allow_http_loopback: true,
            ..RemoteSettings::default()
        },
        admin: Some(greenlight::serve::live::admin::AdminSettings {
            token_env: None,
            token_file: Some(token),
        }),
        ..Settings::default()
    }
}

async fn replica(dir: &tempfile::TempDir, url: &str) -> Server {
    let store = format!("sqlite://{}", dir.path().join("greenlight.db").display());
    Server::start_full(settings(dir.path()), &store, &PathBuf::from(url)).await
}

fn hash_of(bundle: &Unpacked) -> String {
    greenlight_core::Engine::load(&bundle.files)
        .expect("bundle")
        .policy_hash()
        .to_owned()
}

async fn policy(srv: &Server) -> Value {
    srv.call("GET", "/v1/admin/policy", Some(ADMIN), None)
        .await
        .1
}

/// Two replicas polling one URL start on its bundle, and both take up the
/// next one published, asking with `If-None-Match` in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_polling_one_url_converge_on_its_bundle() {
    let (addr, host) = bundle_host().await;
    let url = format!("http://{addr}/payments.tar.gz");
    publish(&host, &demo(100), Some(("ed.pem", "ops-1")));
    let (a_dir, b_dir) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    let (a, b) = (replica(&a_dir, &url).await, replica(&b_dir, &url).await);
    for srv in [&a, &b] {
        assert_eq!(policy(srv).await["policy_hash"], hash_of(&demo(100)));
        assert_eq!(policy(srv).await["bundle"], url.as_str());
    }
    let next = publish(&host, &demo(1000), Some(("ed.pem", "ops-1")));
    let want = hash_of(&demo(1000));
    for srv in [&a, &b] {
        let mut seen = Value::Null;
        for _ in 0..100 {
            seen = policy(srv).await;
            if seen["policy_hash"] == want.as_str() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(seen["policy_hash"], want.as_str(), "{seen}");
        assert_eq!(seen["last_attempt"]["trigger"], "poll");
        assert_eq!(seen["last_attempt"]["detail"], "tests: 10 passed, 0 failed");
    }
    // Each replica fetched the new archive once; later polls were 304s.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    assert_eq!(next.full.load(Ordering::SeqCst), 2);
    assert!(next.not_modified.load(Ordering::SeqCst) >= 2);
    let alice = token("alice", "payments:refund", &[]);
    let (_, d) = a.json("POST", "/v1/check", None, refund(500, &alice)).await;
    assert_eq!(
        (d["verdict"]["kind"].as_str(), d["policy_hash"].as_str()),
        (Some("allow"), Some(want.as_str()))
    );
}

/// An unsigned archive, one signed by a key the server does not trust, one
/// signed by an impostor under the trusted key's id, and a signature of
/// another archive are each refused, saying why, and the old bundle keeps
/// deciding; a poll refuses the same archive once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_wrongly_signed_bundles_are_refused() {
    let (addr, host) = bundle_host().await;
    let url = format!("http://{addr}/payments.tar.gz");
    publish(&host, &demo(100), Some(("ed.pem", "ops-1")));
    let dir = tempfile::tempdir().expect("dir");
    let srv = replica(&dir, &url).await;
    let first = hash_of(&demo(100));
    let bad = demo(1000);
    let reload = || async {
        srv.call("POST", "/v1/admin/reload", Some(ADMIN), None)
            .await
    };

    publish(&host, &bad, None);
    let (status, a) = reload().await;
    assert_eq!(
        (status, a["outcome"].as_str()),
        (422, Some("refused")),
        "{a}"
    );
    assert_eq!(
        a["detail"],
        format!("http://{addr}/payments.tar.gz.sig answered 404 Not Found: the bundle is unsigned")
    );
    assert_eq!(a["policy_hash"], first.as_str());

    publish(&host, &bad, Some(("p256.pem", "someone-else")));
    let (status, a) = reload().await;
    assert_eq!(status, 422);
    assert_eq!(
        a["detail"],
        "the signature's key `someone-else` is not a trusted bundle signer"
    );

    publish(&host, &bad, Some(("attacker.pem", "ops-1")));
    let (status, a) = reload().await;
    assert_eq!(status, 422);
    assert_eq!(
        a["detail"],
        "the signature does not verify with key `ops-1`: InvalidSignature"
    );

    // A genuine signature, of another archive.
    let genuine = archive::sign(
        &archive::pack(&demo(100)).expect("pack"),
        "payments",
        &key("ed.pem"),
        "ops-1",
        SIGNED_AT,
    )
    .expect("sign");
    let swapped = Arc::new(Published {
        archive: archive::pack(&bad).expect("pack"),
        signature: Some(genuine),
        ..Published::default()
    });
    *host.lock().expect("lock") = swapped;
    let (status, a) = reload().await;
    assert_eq!(status, 422);
    assert!(
        a["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("the signature is for another archive (sha256 ")),
        "{a}"
    );
    let alice = token("alice", "payments:refund", &[]);
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(500, &alice))
        .await;
    assert_eq!(d["verdict"]["kind"], "approval-required");
    assert_eq!(d["policy_hash"], first.as_str());

    // Polls meanwhile (every second) refused it at most once more.
    tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
    let audit = srv.state.store.audit_since(0, 100).await.expect("audit");
    let refused = audit.iter().filter(|e| e.event == "policy.refused").count();
    assert!((4..=5).contains(&refused), "{refused} refusals: {audit:?}");
    assert!(audit.iter().all(|e| e.event != "policy.swapped"));

    // The same archive, now with its own signature (published a moment
    // after it): the next poll judges the pair again, and swaps.
    publish(&host, &bad, Some(("ed.pem", "ops-1")));
    let want = hash_of(&bad);
    let mut seen = Value::Null;
    for _ in 0..100 {
        seen = policy(&srv).await;
        if seen["policy_hash"] == want.as_str() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen["policy_hash"], want.as_str(), "{seen}");
    assert_eq!(seen["last_attempt"]["trigger"], "poll");
}

/// A signature binds the archive to one bundle and one time: another
/// service's genuinely signed bundle is refused, and so is an older signed
/// version served again once a newer one was accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_bundle_or_an_older_version_is_refused() {
    let (addr, host) = bundle_host().await;
    let url = format!("http://{addr}/payments.tar.gz");
    publish(&host, &demo(100), Some(("ed.pem", "ops-1")));
    let dir = tempfile::tempdir().expect("dir");
    let srv = replica(&dir, &url).await;
    let reload = || async {
        srv.call("POST", "/v1/admin/reload", Some(ADMIN), None)
            .await
    };

    publish_as(
        &host,
        &demo(1000),
        Some(("ed.pem", "ops-1")),
        "billing",
        SIGNED_AT,
    );
    let (status, a) = reload().await;
    assert_eq!(status, 422, "{a}");
    assert_eq!(
        a["detail"],
        "the signature is for bundle `billing`, not `payments`"
    );

    publish_as(
        &host,
        &demo(1000),
        Some(("ed.pem", "ops-1")),
        "payments",
        SIGNED_AT + 60,
    );
    let (status, a) = reload().await;
    assert_eq!(
        (status, a["outcome"].as_str()),
        (200, Some("swapped")),
        "{a}"
    );
    // The first version, genuinely signed, served again.
    publish_as(
        &host,
        &demo(100),
        Some(("ed.pem", "ops-1")),
        "payments",
        SIGNED_AT,
    );
    let (status, a) = reload().await;
    assert_eq!(status, 422, "{a}");
    assert_eq!(
        a["detail"],
        format!(
            "the archive was signed at {SIGNED_AT}, before the newest accepted ({}): an older \
             version served again is refused",
            SIGNED_AT + 60
        )
    );
    assert_eq!(a["policy_hash"], hash_of(&demo(1000)));
}

/// A server whose bundle URL holds a wrongly signed archive does not start:
/// it has nothing it may decide with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_does_not_start_on_a_wrongly_signed_bundle() {
    let (addr, host) = bundle_host().await;
    publish(&host, &demo(100), Some(("attacker.pem", "ops-1")));
    let dir = tempfile::tempdir().expect("dir");
    let config = greenlight::serve::ServeConfig {
        bundle: PathBuf::from(format!("http://{addr}/payments.tar.gz")),
        store: format!("sqlite://{}", dir.path().join("g.db").display()),
        public_url: None,
        settings: settings(dir.path()),
        development: true,
        component: None,
    };
    let err = greenlight::serve::prepare(&config, addr, greenlight::serve::Clock::system())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        format!("{err:#}"),
        format!(
            "cannot load bundle http://{addr}/payments.tar.gz: the signature does not verify with key `ops-1`: InvalidSignature"
        )
    );
    assert!(!dir.path().join("g.db").exists(), "no store is opened");
    // Nor on plain HTTP to another host, or without trusted keys.
    let mut no_keys = config.clone();
    no_keys.settings.remote_bundle.trusted_keys = None;
    let err = greenlight::serve::prepare(&no_keys, addr, greenlight::serve::Clock::system())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        format!("{err:#}"),
        "a bundle URL needs [remote_bundle] trusted_keys: the keys whose signatures are trusted"
    );
    let mut elsewhere = config.clone();
    elsewhere.bundle = PathBuf::from("http://policy.example.com/payments.tar.gz");
    let err = greenlight::serve::prepare(&elsewhere, addr, greenlight::serve::Clock::system())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        format!("{err:#}"),
        "`http://policy.example.com/payments.tar.gz` is not HTTPS (plain HTTP only to loopback, with allow_http_loopback)"
    );
}

/// An archive carries the bundle's files and tests only, builds the same
/// bytes every time, and unpacks nothing else.
#[test]
fn archives_are_deterministic_and_unpack_only_bundle_files() {
    let dir = root().join("examples/bundle");
    let a = archive::build(&dir).expect("build");
    assert_eq!(a, archive::build(&dir).expect("build"));
    let u = archive::unpack(&a).expect("unpack");
    let names: Vec<&str> = u.files.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "greenlight.toml",
            "idp.jwks.json",
            "policy.cedar",
            "schema.cedarschema"
        ]
    );
    assert_eq!(u.tests.len(), 1);

    let tar_of = |entries: &[(&str, &[u8], tar::EntryType)]| {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut t = tar::Builder::new(gz);
        for (name, data, kind) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_entry_type(*kind);
            h.set_mode(0o644);
            if *kind == tar::EntryType::Symlink {
                h.set_size(0);
                t.append_link(&mut h, name, "/etc/passwd").expect("link");
            } else {
                t.append_data(&mut h, name, *data).expect("append");
            }
        }
        t.into_inner().expect("tar").finish().expect("gz")
    };
    let config: &[u8] = b"[principal]\n";
    for (entries, why) in [
        (
            vec![
                ("greenlight.toml", config, tar::EntryType::Regular),
                ("dev/idp.key.pem", b"x" as &[u8], tar::EntryType::Regular),
            ],
            "entry `dev/idp.key.pem` is not a bundle file or a test",
        ),
        (
            vec![
                ("greenlight.toml", config, tar::EntryType::Regular),
                ("notes.txt", b"x", tar::EntryType::Regular),
            ],
            "entry `notes.txt` is not a bundle file or a test",
        ),
        (
            vec![
                ("greenlight.toml", config, tar::EntryType::Regular),
                ("keys.json", b"", tar::EntryType::Symlink),
            ],
            "entry `keys.json` is not a regular file",
        ),
        (
            vec![("policy.cedar", b"", tar::EntryType::Regular)],
            "the archive has no greenlight.toml",
        ),
    ] {
        let err = archive::unpack(&tar_of(&entries)).expect_err(why);
        assert_eq!(format!("{err:#}"), why);
    }
    assert_eq!(
        format!("{:#}", archive::unpack(b"not gzip").expect_err("refused")),
        "the archive is not a gzip'd tar: unexpected end of file"
    );
}
