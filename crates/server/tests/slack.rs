//! `greenlight serve` over real HTTP: Slack's buttons. A message carries
//! approve and deny bound to the approval and its action digest, and a
//! reason input; a callback counts only with Slack's signature, now, from
//! a mapped user who may decide; the decision is told to the webhooks.

use common::server::*;
use greenlight::serve::settings::{Webhook, WebhookFormat};
use greenlight::serve::slack::{SlackSettings, SlackUser, signature};
use serde_json::{Value, json};

mod common;

const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";

fn user(slack: &str, subject: &str, groups: &[&str], tenant: &str) -> SlackUser {
    SlackUser {
        slack_user: slack.to_owned(),
        subject: subject.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        tenant: tenant.to_owned(),
        roles: Vec::new(),
    }
}

/// A block_actions callback: `user` pressed `action` with `value`, having
/// typed `reason`.
fn press(user: &str, action: &str, value: &str, reason: Option<&str>) -> String {
    press_in("T0001", user, action, value, reason)
}

/// As [`press`], in the workspace `team`.
fn press_in(team: &str, user: &str, action: &str, value: &str, reason: Option<&str>) -> String {
    let payload = json!({
        "type": "block_actions",
        "team": { "id": team },
        "user": { "id": user },
        "actions": [ { "action_id": action, "value": value } ],
        "state": { "values": { "greenlight.reason": { "greenlight.reason":
            { "type": "plain_text_input", "value": reason } } } },
    });
    common::form(&[("payload", &payload.to_string())])
}

async fn post(srv: &Server, body: &str, timestamp: i64, secret: &str) -> (u16, Value) {
    let ts = timestamp.to_string();
    let sig = signature(secret.as_bytes(), &ts, body.as_bytes());
    let (status, _, v) = common::request(
        srv.addr,
        "POST",
        "/slack/interactions",
        &[
            ("x-slack-request-timestamp", &ts),
            ("x-slack-signature", &sig),
        ],
        Some(("application/x-www-form-urlencoded", body.to_owned())),
    )
    .await;
    (status, v)
}

#[tokio::test]
async fn slack_buttons_decide_with_the_portals_rules() {
    let (hooks, seen) = common::recorder().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let secret_file = dir.path().join("slack-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).expect("write");
    let webhook = |path: &str, format| Webhook {
        url: format!("http://{hooks}{path}"),
        secret_env: None,
        secret_file: None,
        format,
        attempts: Some(1),
        timeout: Some(5),
    };
    let settings = Settings {
        webhooks: vec![
            webhook("/slack", WebhookFormat::Slack),
            webhook("/events", WebhookFormat::Greenlight),
        ],
        slack: Some(SlackSettings {
            signing_secret_env: None,
            signing_secret_file: Some(secret_file),
            issuer: None,
            team_id: Some("T0001".to_owned()),
            users: vec![
                user("UANN", "ann", &["finance"], ""),
                user("UBOB", "bob", &["finance"], ""),
                user("UEVE", "eve", &[], ""),
                user("UALICE", "alice", &[], ""),
            ],
        }),
        // The portal is on: every message links to the approval's page.
        portal: Some(toml::from_str("client_id = \"greenlight-portal\"").expect("portal")),
        ..Settings::default()
    };
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let id = srv.ask(&alice, &refund_details(500)).await;
    let message = &common::recorded(&seen, "/slack", 1).await[0];
    let blocks = message["blocks"].as_array().expect("blocks");
    let actions = blocks
        .iter()
        .find(|b| b["type"] == "actions")
        .expect("buttons");
    let bound = actions["elements"][0]["value"]
        .as_str()
        .expect("value")
        .to_owned();
    let digest = srv
        .state
        .store
        .get_approval(&id)
        .await
        .expect("read")
        .expect("found")
        .action_digest;
    assert_eq!(bound, format!("{id}:{digest}"));
    assert_eq!(
        actions["elements"]
            .as_array()
            .expect("elements")
            .iter()
            .map(|e| e["action_id"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["greenlight.approve", "greenlight.deny", "greenlight.open"]
    );
    let page = format!("http://{}/portal/approvals/{id}", srv.addr);
    assert_eq!(actions["elements"][2]["url"], page);
    assert!(
        blocks
            .iter()
            .any(|b| b["type"] == "input" && b["block_id"] == "greenlight.reason")
    );

    let approve =
        |who: &str, reason: Option<&str>| press(who, "greenlight.approve", &bound, reason);
    // Not Slack's, or not now: refused before anything is read.
    let body = approve("UANN", Some("checked"));
    assert_eq!(
        post(&srv, &body, T0, "another-secret").await,
        (
            401,
            json!({ "error": "invalid_token", "error_description": "the callback's signature is not Slack's for this app" })
        )
    );
    assert_eq!(
        post(&srv, &body, T0 - 301, SECRET).await,
        (
            401,
            json!({ "error": "invalid_token", "error_description": format!(
                "the callback was signed at {}, more than 300 seconds from now: a replay or a wrong clock", T0 - 301) })
        )
    );
    // The link button only tells us it was pressed.
    assert_eq!(
        post(
            &srv,
            &press("UEVE", "greenlight.open", "", None),
            T0,
            SECRET
        )
        .await,
        (200, json!({ "ok": true }))
    );
    // Another workspace the app is in.
    let (status, v) = post(
        &srv,
        &press_in("T0666", "UANN", "greenlight.approve", &bound, Some("x")),
        T0,
        SECRET,
    )
    .await;
    assert_eq!(
        (status, v["error_description"].as_str()),
        (
            403,
            Some("the callback comes from another Slack workspace than `T0001`")
        )
    );
    // Slack's, now, but nobody we know, or nobody who may decide this.
    let (status, v) = post(&srv, &approve("UMALLORY", Some("x")), T0, SECRET).await;
    assert_eq!(
        (status, v["error_description"].as_str()),
        (
            403,
            Some("Slack user `UMALLORY` is not mapped to anyone: add them to [[slack.users]]")
        )
    );
    for who in ["UEVE", "UALICE"] {
        let (status, v) = post(&srv, &approve(who, Some("x")), T0, SECRET).await;
        assert_eq!(
            (status, v["error_description"].clone()),
            (404, json!(format!("no approval `{id}` waits for you"))),
            "{who}"
        );
    }
    // Another action's digest.
    let other = press(
        "UANN",
        "greenlight.approve",
        &format!("{id}:{}", "A".repeat(43)),
        Some("x"),
    );
    let (status, v) = post(&srv, &other, T0, SECRET).await;
    assert_eq!(
        (status, v["error_description"].clone()),
        (
            409,
            json!(format!(
                "this vote is for action digest `{}`, but approval `{id}` is for `{digest}`",
                "A".repeat(43)
            ))
        )
    );
    // The policy wants a reason.
    let (status, v) = post(&srv, &approve("UANN", None), T0, SECRET).await;
    assert_eq!(
        (status, v["error_description"].clone()),
        (
            400,
            json!(format!(
                "approval `{id}` requires a reason with every decision: decide it in the portal, {page}"
            ))
        )
    );
    assert!(
        srv.state.store.votes(&id).await.expect("votes").is_empty(),
        "nothing counted"
    );

    let (status, v) = post(&srv, &body, T0, SECRET).await;
    assert_eq!(
        (status, &v["status"], &v["approve_count"]),
        (200, &json!("pending"), &json!(1)),
        "{v}"
    );
    let (status, v) = post(
        &srv,
        &approve("UBOB", Some("second pair of eyes")),
        T0,
        SECRET,
    )
    .await;
    assert_eq!(
        (status, &v["status"], &v["approve_count"]),
        (200, &json!("approved"), &json!(2)),
        "{v}"
    );
    let votes = srv.state.store.votes(&id).await.expect("votes");
    assert_eq!(
        votes
            .iter()
            .map(|v| (
                v.approver.as_str(),
                v.approver_client.as_str(),
                v.reason.as_deref()
            ))
            .collect::<Vec<_>>(),
        [
            ("ann", "slack", Some("checked")),
            ("bob", "slack", Some("second pair of eyes"))
        ]
    );
    // The requester's side hears the outcome, once.
    let events = common::recorded(&seen, "/events", 2).await;
    assert_eq!(
        events
            .iter()
            .map(|e| e["type"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["approval.requested", "approval.approved"]
    );
    assert_eq!(events[0]["links"]["portal"], page);
    assert_eq!(events[1]["links"]["portal"], page);
    assert_eq!(events[1]["approval"]["requester"], "alice");
    assert_eq!(events[1]["approval"]["status"], "approved");
    let told = &common::recorded(&seen, "/slack", 2).await[1];
    assert_eq!(
        told["text"],
        format!(
            "Approved: alice (through greenlight-dev) may payment.refund on Payment::pay_123 (approval {id})"
        )
    );
    srv.stop().await;
}
