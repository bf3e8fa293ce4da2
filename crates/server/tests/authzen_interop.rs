//! The OpenID AuthZEN interop scenarios (Todo 1.0-id, Todo 1.1 and the API
//! gateway), their decision files kept in tests/authzen-interop/ as the
//! working group publishes them, against `greenlight serve` over HTTP with
//! the bundles written for them there: a trusted PEP names each subject by
//! its opaque id, and who the subject is comes from the bundle's entity
//! data. Then what nobody else may do with the same setup.

use std::path::{Path, PathBuf};

use common::server::*;
use greenlight::serve::live::admin::AdminSettings;
use serde_json::{Map, Value, json};

mod common;

const ADMIN: &str = "an-admin-token-of-at-least-32-characters";
const RICK: &str = "CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const MORTY: &str = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";
const BETH: &str = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs";

fn interop() -> PathBuf {
    root().join("tests/authzen-interop")
}

/// The PEP's own token (client credentials: `sub` is its client id).
fn pep() -> String {
    token_with("todo-backend", &[("client_id", json!("todo-backend"))])
}

/// A server with `bundle`, trusting `todo-backend` to vouch for subjects,
/// with the admin API on (token in the store's folder).
async fn serve(bundle: &Path, store: &tempfile::TempDir) -> Server {
    let token = store.path().join("admin-token");
    std::fs::write(&token, ADMIN).expect("token");
    let mut settings: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"todo-backend\"",
    )
    .expect("settings");
    settings.admin = Some(AdminSettings {
        token_env: None,
        token_file: Some(token),
    });
    let url = format!("sqlite://{}", store.path().join("greenlight.db").display());
    Server::start_full(settings, &url, bundle).await
}

/// Drops members named `_…`: the decision files' authors' comments.
fn without_comments(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('_'))
                .map(|(k, v)| (k.clone(), without_comments(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_comments).collect()),
        other => other.clone(),
    }
}

/// Checks one answer against its expected decision. A `false` must be the
/// policies' (no permit), never a refused request passing for a denial.
fn check(answer: &Value, expected: bool, what: &str) {
    assert_eq!(
        answer["decision"].as_bool(),
        Some(expected),
        "{what}: {answer}"
    );
    if expected {
        let reasons = answer["context"]["reasons"].as_array();
        assert!(
            reasons.is_some_and(|r| !r.is_empty()),
            "{what}: an allow names its policies: {answer}"
        );
    } else {
        assert_eq!(
            answer["context"]["code"], "policy-no-permit",
            "{what}: {answer}"
        );
    }
}

/// Runs every decision of `file` against `bundle`; returns how many.
async fn run(bundle: &str, file: &str) -> usize {
    let store = tempfile::tempdir().expect("tempdir");
    let srv = serve(&interop().join(bundle), &store).await;
    let text =
        std::fs::read_to_string(interop().join("decisions").join(file)).expect("decision file");
    let cases: Value = serde_json::from_str(&text).expect("json");
    let pep = pep();
    let mut count = 0;
    for case in cases["evaluation"].as_array().into_iter().flatten() {
        let request = without_comments(&case["request"]);
        let (status, answer) = srv
            .json("POST", "/access/v1/evaluation", Some(&pep), request.clone())
            .await;
        assert_eq!(status, 200, "{request}: {answer}");
        let expected = case["expected"].as_bool().expect("a boolean");
        check(&answer, expected, &request.to_string());
        count += 1;
    }
    for case in cases["evaluations"].as_array().into_iter().flatten() {
        let request = without_comments(&case["request"]);
        let (status, answer) = srv
            .json(
                "POST",
                "/access/v1/evaluations",
                Some(&pep),
                request.clone(),
            )
            .await;
        assert_eq!(status, 200, "{request}: {answer}");
        let expected = case["expected"].as_array().expect("a list");
        let got = answer["evaluations"].as_array().expect("evaluations");
        assert_eq!(got.len(), expected.len(), "{request}: {answer}");
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            let e = e["decision"].as_bool().expect("a boolean");
            check(g, e, &format!("{request} #{i}"));
            count += 1;
        }
    }
    drop(srv);
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todo_1_0_id_decisions_are_as_published() {
    assert_eq!(run("todo", "todo-1.0-id.json").await, 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todo_1_1_decisions_are_as_published() {
    assert_eq!(run("todo", "todo-1.1.json").await, 46);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_gateway_decisions_are_as_published() {
    assert_eq!(run("gateway", "api-gateway.json").await, 25);
}

fn delete(subject: &str, subject_props: Value, owner: &str) -> Value {
    json!({
        "subject": { "type": "user", "id": subject, "properties": subject_props },
        "action": { "name": "can_delete_todo" },
        "resource": { "type": "todo", "id": "t-1", "properties": { "ownerID": owner } },
    })
}

/// Who could get a yes they should not: a client that is not the trusted
/// PEP, a PEP claiming roles the data does not give, a request restating
/// a fact the data holds, a subject the data does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_trusted_pep_names_subjects_and_only_data_says_who_they_are() {
    let store = tempfile::tempdir().expect("tempdir");
    let srv = serve(&interop().join("todo"), &store).await;
    let pep = pep();
    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            delete(RICK, json!({}), "morty@the-citadel.com"),
        )
        .await;
    assert_eq!((status, a["decision"].as_bool()), (200, Some(true)), "{a}");
    assert_eq!(a["context"]["reasons"], json!(["delete-any-todo"]));

    // Another client of the same issuer, or the subject itself, may not
    // name Rick.
    for (token, description) in [
        (
            token_with("someone", &[("client_id", json!("greenlight-dev"))]),
            "client `greenlight-dev` of `https://idp.example.com` is not trusted to vouch for subjects; forward the subject's token as {\"type\": \"bearer\", \"id\": TOKEN}",
        ),
        (
            token_with(RICK, &[("client_id", json!("todo-backend"))]),
            "only client `todo-backend`'s own token (subject `todo-backend`, as its client-credentials grant gives) may vouch for subjects, not `CiRmZDA2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs`'s",
        ),
    ] {
        let (status, e) = srv
            .json(
                "POST",
                "/access/v1/evaluation",
                Some(&token),
                delete(RICK, json!({}), "morty@the-citadel.com"),
            )
            .await;
        assert_eq!(
            (status, e["error_description"].as_str()),
            (403, Some(description))
        );
    }

    // Roles named in the request are token-style attributes, not the
    // data's role membership: Beth stays a viewer.
    let (_, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            delete(
                BETH,
                json!({ "roles": ["admin", "editor"] }),
                "morty@the-citadel.com",
            ),
        )
        .await;
    check(&a, false, "Beth claiming admin");

    // The request may not say anything of a person: Morty reading Rick's
    // user record while asserting Rick's e-mail is his.
    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            json!({
                "subject": { "type": "user", "id": MORTY },
                "action": { "name": "can_read_user" },
                "resource": { "type": "user", "id": RICK,
                              "properties": { "email": "morty@the-citadel.com" } },
            }),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["decision"], false, "{a}");
    assert_eq!(a["context"]["code"], "request-invalid");
    assert_eq!(
        a["context"]["reason"],
        format!(
            "the resource user::\"{RICK}\" is of the principal type: its attributes come from tokens and entity data, not from the request"
        )
    );

    // A subject the data does not know has no role.
    let (_, a) = srv
        .json(
            "POST",
            "/access/v1/evaluation",
            Some(&pep),
            json!({
                "subject": { "type": "user", "id": "nobody" },
                "action": { "name": "can_read_todos" },
                "resource": { "type": "todo", "id": "todo-1" },
            }),
        )
        .await;
    check(&a, false, "an unknown subject");

    // Nobody calling over HTTP states entities: /v1/check refuses them.
    let (status, e) = srv
        .json(
            "POST",
            "/v1/check",
            None,
            json!({
                "method": "GET", "path": "/todos",
                "entities": [{ "uid": { "type": "user", "id": BETH },
                               "parents": [{ "type": "Role", "id": "admin" }] }],
            }),
        )
        .await;
    assert_eq!(
        (status, e["error_description"].as_str()),
        (
            400,
            Some("`entities` are not taken over HTTP: entity data comes from the bundle")
        )
    );
    drop(srv);
}

/// Writes `entities` to `path` and asks the server to reload.
async fn swap_data(srv: &Server, path: &Path, entities: &[Value]) -> (u16, Value) {
    let text = serde_json::to_string_pretty(entities).expect("json");
    std::fs::write(path, text).expect("write");
    srv.call("POST", "/v1/admin/reload", Some(ADMIN), None)
        .await
}

/// Entity data swaps with the bundle: demoting Morty in entities.json and
/// reloading takes his editor role away; a data file that breaks a rule is
/// refused and the old data keeps deciding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_data_swaps_with_the_bundle() {
    let store = tempfile::tempdir().expect("tempdir");
    let bundle = tempfile::tempdir().expect("tempdir");
    for f in [
        "greenlight.toml",
        "policy.cedar",
        "entities.json",
        "idp.jwks.json",
    ] {
        std::fs::copy(interop().join("todo").join(f), bundle.path().join(f)).expect("copy");
    }
    let srv = serve(bundle.path(), &store).await;
    let pep = pep();
    let create = json!({
        "subject": { "type": "user", "id": MORTY },
        "action": { "name": "can_create_todo" },
        "resource": { "type": "todo", "id": "todo-1" },
    });
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", Some(&pep), create.clone())
        .await;
    check(&a, true, "Morty the editor");
    let before = a["context"]["policy_hash"].clone();

    let path = bundle.path().join("entities.json");
    let data = std::fs::read_to_string(&path).expect("read");
    let mut entities: Vec<Value> = serde_json::from_str(&data).expect("json");
    for e in &mut entities {
        if e["uid"]["id"] == MORTY {
            e["parents"] = json!([{ "type": "Role", "id": "viewer" }]);
        }
    }
    let (status, r) = swap_data(&srv, &path, &entities).await;
    assert_eq!(
        (status, r["outcome"].as_str()),
        (200, Some("swapped")),
        "{r}"
    );
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", Some(&pep), create.clone())
        .await;
    check(&a, false, "Morty the viewer");
    assert_ne!(a["context"]["policy_hash"], before);

    // Data that gives a user a token's attribute is refused; Morty stays
    // a viewer.
    entities.push(json!({ "uid": { "type": "user", "id": "x" }, "attrs": { "roles": ["admin"] } }));
    let (status, r) = swap_data(&srv, &path, &entities).await;
    assert_eq!(
        (status, r["outcome"].as_str()),
        (422, Some("refused")),
        "{r}"
    );
    assert!(
        r["detail"].as_str().is_some_and(|d| d
            .contains("user::\"x\" has attribute `roles`, which a principal takes from its token")),
        "{r}"
    );
    let (_, a) = srv
        .json("POST", "/access/v1/evaluation", Some(&pep), create)
        .await;
    check(&a, false, "Morty still the viewer");
    drop(srv);
}
