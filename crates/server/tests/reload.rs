//! Live policy: swapping the bundle and the component while requests are
//! decided, and refusing what must not decide (a bundle whose tests fail,
//! one that does not parse, a component that is not a Greenlight module),
//! with the old version serving throughout.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::server::*;
use greenlight::serve::live::admin::AdminSettings;
use greenlight::serve::live::watch::ReloadSettings;
use serde_json::{Value, json};

mod common;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";

/// The demo bundle, copied where a test may change it.
fn bundle_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let from = root().join("examples/bundle");
    copy_dir(&from, dir.path());
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

/// The demo policy with the approval threshold at `limit` instead of 100.
fn policy_with_limit(limit: u32) -> String {
    let demo =
        std::fs::read_to_string(root().join("examples/bundle/policy.cedar")).expect("policy");
    let (small, large) = ("context.amount <= 100 };", "context.amount > 100 };");
    assert!(
        demo.contains(small) && demo.contains(large),
        "the demo's thresholds moved"
    );
    demo.replace(small, &format!("context.amount <= {limit} }};"))
        .replace(large, &format!("context.amount > {limit} }};"))
}

/// The demo tests, with a refund of 500 expected to go through when the
/// threshold is above it.
fn tests_with_limit(limit: u32) -> String {
    let demo =
        std::fs::read_to_string(root().join("examples/bundle/tests/demo.toml")).expect("tests");
    if limit < 500 {
        return demo;
    }
    demo.replace(
        r#"expect = { verdict = "approval-required", reasons = ["refund-large"], approvers = ["group:finance"], quorum = 2, grant = "once", ttl = 900 }"#,
        r#"expect = { verdict = "allow", reasons = ["refund-small"] }"#,
    )
}

/// Writes the version with the threshold at `limit`, tests included.
fn write_limit(dir: &Path, limit: u32) {
    std::fs::write(dir.join("policy.cedar"), policy_with_limit(limit)).expect("write");
    std::fs::write(dir.join("tests/demo.toml"), tests_with_limit(limit)).expect("write");
}

fn settings(dir: &Path, interval: u64) -> Settings {
    let token = dir.join("admin-token");
    std::fs::write(&token, ADMIN).expect("token");
    Settings {
        reload: ReloadSettings {
            interval: Some(interval),
        },
        admin: Some(AdminSettings {
            token_env: None,
            token_file: Some(token),
        }),
        ..Settings::default()
    }
}

/// A server on its own store, with the bundle in `bundle` and the module
/// at `component`, the admin API on and the folder watched every
/// `interval` seconds (0: not watched).
async fn serve(
    store: &tempfile::TempDir,
    bundle: &Path,
    component: Option<&Path>,
    interval: u64,
) -> Server {
    let url = format!("sqlite://{}", store.path().join("greenlight.db").display());
    Server::start_module(settings(store.path(), interval), &url, bundle, component).await
}

async fn reload(srv: &Server) -> (u16, Value) {
    srv.call("POST", "/v1/admin/reload", Some(ADMIN), None)
        .await
}

/// The shipped component with a custom section added: another module, as
/// far as hashes go, that decides alike.
fn variant_component(tag: &str) -> Vec<u8> {
    let mut bytes = greenlight_component::GREENLIGHT_WASM.to_vec();
    let name = b"greenlight-test-variant";
    let payload = tag.as_bytes();
    let body_len = 1 + name.len() + payload.len();
    assert!(
        body_len < 128 && name.len() < 128,
        "one-byte LEB128 lengths"
    );
    bytes.push(0); // custom section
    bytes.push(u8::try_from(body_len).expect("small"));
    bytes.push(u8::try_from(name.len()).expect("small"));
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

/// The verdict a refund of 500 must get from each bundle, by policy hash.
type Expected = Arc<std::sync::Mutex<BTreeMap<String, &'static str>>>;

/// Under four clients deciding refunds of 500 without pause, the bundle is
/// swapped 100 times between a threshold of 100 (approval required) and
/// 1000 (allowed), then the component 20 times between two modules: every
/// answer is a 200 whose verdict is the one its named bundle gives, and
/// names a component that was deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_load_never_give_a_wrong_or_failed_decision() {
    let store = tempfile::tempdir().expect("tempdir");
    let bundle = bundle_copy();
    let module = store.path().join("module.wasm");
    let shipped = greenlight_component::GREENLIGHT_WASM;
    let other = variant_component("b");
    std::fs::write(&module, shipped).expect("write");
    let srv = serve(&store, bundle.path(), Some(&module), 0).await;

    let (_, health) = srv.call("GET", "/healthz", None, None).await;
    let hash_100 = health["policy_hash"].as_str().expect("hash").to_owned();
    assert_eq!(
        health["component_hash"],
        greenlight::archive::sha256_hex(shipped)
    );
    let components = [
        greenlight::archive::sha256_hex(shipped),
        greenlight::archive::sha256_hex(&other),
    ];
    let expected: Expected = Arc::new(std::sync::Mutex::new(BTreeMap::from([(
        hash_100.clone(),
        "approval-required",
    )])));

    let alice = token("alice", "payments:refund", &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (addr, alice, stop, expected) =
            (srv.addr, alice.clone(), stop.clone(), expected.clone());
        let components = components.clone();
        clients.push(tokio::spawn(async move {
            let mut seen: BTreeMap<(String, String), u64> = BTreeMap::new();
            while !stop.load(Ordering::SeqCst) {
                let (status, d) = common::call(
                    addr,
                    "POST",
                    "/v1/check",
                    None,
                    Some(("application/json", refund(500, &alice).to_string())),
                )
                .await;
                assert_eq!(status, 200, "{d}");
                let hash = d["policy_hash"].as_str().expect("a policy hash").to_owned();
                let component = d["component_hash"]
                    .as_str()
                    .expect("a component hash")
                    .to_owned();
                assert!(
                    components.contains(&component),
                    "unknown component {component}"
                );
                let want = expected
                    .lock()
                    .expect("lock")
                    .get(&hash)
                    .copied()
                    .unwrap_or_else(|| panic!("an answer from unknown bundle {hash}"));
                assert_eq!(d["verdict"]["kind"], want, "bundle {hash} decided {d}");
                *seen.entry((hash, component)).or_default() += 1;
            }
            seen
        }));
    }

    // The bundle, 100 times.
    let mut hash_1000 = None;
    for i in 0..100 {
        let limit = if i % 2 == 0 { 1000 } else { 100 };
        write_limit(bundle.path(), limit);
        if limit == 1000 && hash_1000.is_none() {
            // Learn the new bundle's hash before it can decide.
            let files = greenlight_host::read_bundle_dir(bundle.path()).expect("files");
            let h = greenlight_core::Engine::load(&files)
                .expect("bundle")
                .policy_hash()
                .to_owned();
            expected.lock().expect("lock").insert(h.clone(), "allow");
            hash_1000 = Some(h);
        }
        let (status, a) = reload(&srv).await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["outcome"], "swapped", "{a}");
        let want = if limit == 1000 {
            hash_1000.as_deref().expect("known")
        } else {
            hash_100.as_str()
        };
        assert_eq!(a["policy_hash"], want);
        assert_eq!(a["trigger"], "admin");
        assert_eq!(a["detail"], "tests: 10 passed, 0 failed");
    }
    // The component, 20 times.
    for i in 0..20 {
        let bytes: &[u8] = if i % 2 == 0 { &other } else { shipped };
        std::fs::write(&module, bytes).expect("write");
        let (status, a) = reload(&srv).await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["outcome"], "swapped", "{a}");
        assert_eq!(a["component_hash"], greenlight::archive::sha256_hex(bytes));
    }
    stop.store(true, Ordering::SeqCst);
    let mut total: BTreeMap<(String, String), u64> = BTreeMap::new();
    for c in clients {
        for (k, n) in c.await.expect("a client failed") {
            *total.entry(k).or_default() += n;
        }
    }
    // Both bundles and both components decided while swaps went on.
    let by_hash = |h: &str| {
        total
            .iter()
            .filter(|((p, _), _)| p == h)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    let by_component = |c: &str| {
        total
            .iter()
            .filter(|((_, k), _)| k == c)
            .map(|(_, n)| n)
            .sum::<u64>()
    };
    assert!(
        by_hash(&hash_100) > 0 && by_hash(hash_1000.as_deref().expect("known")) > 0,
        "{total:?}"
    );
    assert!(
        by_component(&components[0]) > 0 && by_component(&components[1]) > 0,
        "{total:?}"
    );

    let swaps = srv.call("GET", "/metrics", None, None).await.1;
    let metrics = swaps.as_str().expect("text");
    assert!(
        metrics.contains("greenlight_policy_swaps_total{outcome=\"swapped\"} 120"),
        "{metrics}"
    );
    let audit = srv.state.store.audit_since(0, 1000).await.expect("audit");
    let swapped: Vec<_> = audit
        .iter()
        .filter(|e| e.event == "policy.swapped")
        .collect();
    assert_eq!(swapped.len(), 120);
    assert_eq!(swapped[0].detail["previous_policy_hash"], hash_100.as_str());
    assert_eq!(swapped[0].detail["trigger"], "admin");
}

/// The decision a refund of 500 gets now, and the hashes it names.
async fn refund_500(srv: &Server) -> (String, String, String) {
    let alice = token("alice", "payments:refund", &[]);
    let (status, d) = srv
        .json("POST", "/v1/check", None, refund(500, &alice))
        .await;
    assert_eq!(status, 200, "{d}");
    (
        d["verdict"]["kind"].as_str().expect("kind").to_owned(),
        d["policy_hash"].as_str().expect("hash").to_owned(),
        d["component_hash"].as_str().expect("hash").to_owned(),
    )
}

/// What must not decide is refused, saying why, and the version deciding
/// before keeps deciding: a bundle whose own tests fail, one that does
/// not parse, a component that is not a Greenlight module, a file that is
/// not a component. Each refusal is answered 422, counted, and audited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_version_is_refused_and_the_old_one_serves() {
    let store = tempfile::tempdir().expect("tempdir");
    let bundle = bundle_copy();
    let module = store.path().join("module.wasm");
    std::fs::write(&module, greenlight_component::GREENLIGHT_WASM).expect("write");
    let srv = serve(&store, bundle.path(), Some(&module), 0).await;
    let before = refund_500(&srv).await;
    assert_eq!(before.0, "approval-required");

    // Tests that fail: the threshold moves, its tests still expect the old.
    std::fs::write(bundle.path().join("policy.cedar"), policy_with_limit(1000)).expect("write");
    let (status, a) = reload(&srv).await;
    assert_eq!(status, 422, "{a}");
    assert_eq!(a["outcome"], "refused");
    assert_eq!(a["policy_hash"], before.1.as_str());
    assert_eq!(
        a["detail"],
        "its tests failed: 9 passed, 1 failed: demo.toml: a refund of 500 needs two finance \
         approvals, once: expected approval-required, expected reasons [refund-large]; got allow \
         (determined by refund-small)"
    );
    assert_eq!(refund_500(&srv).await, before);

    // A policy that does not parse.
    std::fs::write(bundle.path().join("policy.cedar"), "permit (principal,").expect("write");
    let (status, a) = reload(&srv).await;
    assert_eq!(status, 422, "{a}");
    let why = a["detail"].as_str().expect("detail");
    assert!(
        why.starts_with("the bundle has 1 problem(s): policy.cedar")
            && why.matches("problem(s)").count() == 1,
        "{why}"
    );
    assert_eq!(refund_500(&srv).await, before);
    write_limit(bundle.path(), 100);

    // Another first issuer: `User::"sub"` and `user:` approvers would name
    // another provider's people.
    let config = std::fs::read_to_string(bundle.path().join("greenlight.toml")).expect("read");
    std::fs::write(
        bundle.path().join("greenlight.toml"),
        config.replace(
            "issuer = \"https://idp.example.com\"",
            "issuer = \"https://idp2.example.com\"",
        ),
    )
    .expect("write");
    let (status, a) = reload(&srv).await;
    assert_eq!(status, 422, "{a}");
    assert_eq!(
        a["detail"],
        "the bundle's first issuer changed (from `https://idp.example.com` to \
         `https://idp2.example.com`): its subjects and `user:` approvers would mean others; \
         restart to change it"
    );
    assert_eq!(refund_500(&srv).await, before);
    std::fs::write(bundle.path().join("greenlight.toml"), config).expect("write");

    // A component exporting nothing (an empty component).
    std::fs::write(&module, b"\0asm\x0d\0\x01\0").expect("write");
    let (status, a) = reload(&srv).await;
    assert_eq!(status, 422, "{a}");
    assert_eq!(
        a["detail"],
        "the component cannot be used: no exported instance named `greenlight:approval/types@0.11.0`"
    );
    assert_eq!(a["component_hash"], before.2.as_str());
    assert_eq!(refund_500(&srv).await, before);

    // Not a component at all.
    std::fs::write(&module, b"not wasm").expect("write");
    let (status, a) = reload(&srv).await;
    assert_eq!(status, 422, "{a}");
    // wasmtime reads text that is not binary wasm as the text format.
    assert_eq!(
        a["detail"],
        "the component cannot be used: expected `(`\n     --> <anon>:1:1\n      |\n    1 | not wasm\n      | ^"
    );
    assert_eq!(refund_500(&srv).await, before);

    // A missing component file: nothing to judge, the sources are
    // unavailable (not audited as a refusal).
    std::fs::remove_file(&module).expect("rm");
    let (status, a) = reload(&srv).await;
    assert_eq!(
        (status, a["outcome"].as_str()),
        (503, Some("unavailable")),
        "{a}"
    );
    assert_eq!(
        a["detail"],
        format!(
            "cannot read {}: No such file or directory (os error 2)",
            module.display()
        )
    );
    assert_eq!(refund_500(&srv).await, before);

    let audit = srv.state.store.audit_since(0, 100).await.expect("audit");
    let policy: Vec<&str> = audit
        .iter()
        .map(|e| e.event.as_str())
        .filter(|e| e.starts_with("policy."))
        .collect();
    assert_eq!(policy, ["policy.refused"; 5]);
    let metrics = srv.call("GET", "/metrics", None, None).await.1;
    assert!(
        metrics
            .as_str()
            .expect("text")
            .contains("greenlight_policy_swaps_total{outcome=\"refused\"} 5"),
        "{metrics}"
    );
    // Once the files are good again, the same sources swap in (or are
    // unchanged: here the bundle went back to what was serving).
    std::fs::write(&module, greenlight_component::GREENLIGHT_WASM).expect("write");
    let (status, a) = reload(&srv).await;
    assert_eq!(
        (status, a["outcome"].as_str()),
        (200, Some("unchanged")),
        "{a}"
    );
}

/// The admin API answers only its token: none or another is a 401 with a
/// challenge, and a server without `[admin]` has no admin API at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_the_admin_token() {
    let store = tempfile::tempdir().expect("tempdir");
    let bundle = bundle_copy();
    let srv = serve(&store, bundle.path(), None, 0).await;
    let (status, headers, body) =
        common::call_full(srv.addr, "POST", "/v1/admin/reload", None, None).await;
    assert_eq!(status, 401);
    assert!(headers.contains(&(
        "www-authenticate".to_owned(),
        "Bearer realm=\"greenlight-admin\"".to_owned()
    )));
    assert_eq!(
        body,
        json!({"error": "invalid_token",
               "error_description": "the admin API needs the admin token as a bearer token"})
    );
    let wrong = "an-admin-token-of-at-least-32-characterz";
    let (status, _) = srv
        .call("POST", "/v1/admin/reload", Some(wrong), None)
        .await;
    assert_eq!(status, 401);
    let (status, _) = srv.call("GET", "/v1/admin/policy", Some(wrong), None).await;
    assert_eq!(status, 401);
    // A client's access token is not the admin token either.
    let alice = token("alice", "payments:refund", &[]);
    let (status, _) = srv
        .call("POST", "/v1/admin/reload", Some(&alice), None)
        .await;
    assert_eq!(status, 401);
    let (status, p) = srv.call("GET", "/v1/admin/policy", Some(ADMIN), None).await;
    assert_eq!(status, 200);
    assert_eq!(p["last_attempt"]["trigger"], "start");
    assert_eq!(p["component"], Value::Null);
    let audit = srv.state.store.audit_since(0, 100).await.expect("audit");
    assert!(
        audit.iter().all(|e| !e.event.starts_with("policy.")),
        "{audit:?}"
    );

    let plain = Server::start().await;
    let (status, _) = plain
        .call("POST", "/v1/admin/reload", Some(ADMIN), None)
        .await;
    assert_eq!(status, 404);
}

/// Waits until `/v1/admin/policy` satisfies `done`, for at most 20 s.
async fn await_policy(srv: &Server, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let (_, p) = srv.call("GET", "/v1/admin/policy", Some(ADMIN), None).await;
        if done(&p) {
            return p;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the policy never reached the state waited for");
}

/// A change in the watched folder swaps in once it holds still; a bad
/// change is refused once (not at every look) and the old version serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_folder_swaps_good_changes_and_refuses_bad_ones_once() {
    let store = tempfile::tempdir().expect("tempdir");
    let bundle = bundle_copy();
    let srv = serve(&store, bundle.path(), None, 1).await;
    let before = refund_500(&srv).await;
    write_limit(bundle.path(), 1000);
    let p = await_policy(&srv, |p| p["policy_hash"] != before.1.as_str()).await;
    assert_eq!(p["last_attempt"]["trigger"], "watch");
    assert_eq!(p["last_attempt"]["outcome"], "swapped");
    let after = refund_500(&srv).await;
    assert_eq!(after.0, "allow");
    assert_eq!(after.1, p["policy_hash"].as_str().expect("hash"));

    std::fs::write(bundle.path().join("policy.cedar"), "forbid (").expect("write");
    let p = await_policy(&srv, |p| p["last_attempt"]["outcome"] == "refused").await;
    assert_eq!(p["policy_hash"], after.1.as_str());
    // Three more looks: the same bad change is not tried again.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let audit = srv.state.store.audit_since(0, 100).await.expect("audit");
    let events: Vec<&str> = audit
        .iter()
        .map(|e| e.event.as_str())
        .filter(|e| e.starts_with("policy."))
        .collect();
    assert_eq!(events, ["policy.swapped", "policy.refused"]);
    assert_eq!(refund_500(&srv).await, after);
}

/// `greenlight serve` swaps on SIGHUP, and `--component` names the module.
#[test]
fn sighup_swaps_the_served_bundle() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = bundle_copy();
    let module = dir.path().join("module.wasm");
    std::fs::write(&module, variant_component("sighup")).expect("write");
    let config = dir.path().join("greenlight-serve.toml");
    std::fs::write(&config, "[reload]\ninterval = 0\n").expect("write");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_greenlight"))
        .args(["serve", "--dev", "--listen", "127.0.0.1:0", "--bundle"])
        .arg(bundle.path())
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("g.db").display()))
        .arg("--config")
        .arg(&config)
        .arg("--component")
        .arg(&module)
        .env(
            "GREENLIGHT_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("cwasm"),
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("a line");
    let addr = line
        .trim()
        .strip_prefix("greenlight serving on http://")
        .unwrap_or_else(|| panic!("{line}"))
        .to_owned();
    let health = || -> Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(common::call(
            addr.parse().expect("addr"),
            "GET",
            "/healthz",
            None,
            None,
        ))
        .1
    };
    let first = health();
    assert_eq!(
        first["component_hash"],
        greenlight::archive::sha256_hex(&variant_component("sighup"))
    );
    write_limit(bundle.path(), 1000);
    let pid = child.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .expect("kill");
    assert!(hup.success());
    let mut swapped = None;
    for _ in 0..200 {
        let now = health();
        if now["policy_hash"] != first["policy_hash"] {
            swapped = Some(now);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = std::process::Command::new("kill").arg(&pid).status();
    let _ = child.wait();
    let swapped = swapped.expect("SIGHUP swapped the bundle");
    assert_eq!(swapped["component_hash"], first["component_hash"]);
}
