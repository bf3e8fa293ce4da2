//! Bulk access requests (`items`): one task over several approvals, its
//! aggregate status (`partial` when outcomes differ), each item's own
//! result, cancellation of the pending items, the callback told once, and
//! every refusal a single submission gets, named by item.

use super::common::server::*;
use super::{
    DUPLICATE, INVALID_BINDING, TASK_STATE, UNKNOWN_TASK, callback_receiver, calls, cancel,
    eval_of, header, problem, reevaluate, submit, task,
};
use serde_json::{Value, json};

/// The batch evaluation of refunds of `amount` EUR of each of `payments`
/// by the bearer of `token`: the evaluations and their requestable
/// denials' contexts, each with its own binding token.
async fn batch_denials(
    srv: &Server,
    token: &str,
    payments: &[&str],
    amount: i64,
) -> Vec<(Value, Value)> {
    let evals: Vec<Value> = payments.iter().map(|p| eval_of(token, p, amount)).collect();
    let (status, a) = srv
        .json(
            "POST",
            "/access/v1/evaluations",
            None,
            json!({
                "subject": { "type": "bearer", "id": token },
                "evaluations": evals.iter().map(|e| json!({
                    "action": e["action"], "resource": e["resource"], "context": e["context"],
                })).collect::<Vec<_>>(),
            }),
        )
        .await;
    assert_eq!(status, 200, "{a}");
    let answers = a["evaluations"].as_array().expect("evaluations").clone();
    assert_eq!(answers.len(), payments.len(), "{a}");
    evals
        .into_iter()
        .zip(answers)
        .map(|(e, d)| {
            assert_eq!(d["decision"], false, "{d}");
            assert!(
                d["context"]["access_request"]["binding_token"].is_string(),
                "{d}"
            );
            (e, d["context"].clone())
        })
        .collect()
}

/// An item echoing the evaluation `e` denied with `ctx`.
fn item(e: &Value, ctx: &Value) -> Value {
    json!({
        "resource": e["resource"],
        "action": e["action"],
        "denial": {
            "evaluation_id": ctx["evaluation_id"],
            "expires_at": ctx["access_request"]["expires_at"],
            "binding_token": ctx["access_request"]["binding_token"],
        },
    })
}

/// A bulk submission of `items` for the subject and context of `e`.
fn bulk(e: &Value, items: Vec<Value>) -> Value {
    json!({ "subject": e["subject"], "context": e["context"], "items": items })
}

/// A bulk submission of every evaluation `d` denied, in order.
fn all_items(d: &[(Value, Value)]) -> Value {
    bulk(&d[0].0, d.iter().map(|(e, ctx)| item(e, ctx)).collect())
}

/// Submits refunds of 500 of each of `payments` by `token`'s bearer in
/// one bulk request (no key), and returns its task id.
async fn open_bulk(srv: &Server, token: &str, payments: &[&str]) -> String {
    let d = batch_denials(srv, token, payments, 500).await;
    let (status, _, t) = submit(srv, None, all_items(&d)).await;
    assert_eq!(status, 202, "{t}");
    t["task"]["id"].as_str().expect("id").to_owned()
}

/// The pending approval whose details name `payment`, as finance sees it.
async fn approval_of(srv: &Server, payment: &str) -> String {
    let (status, list) = srv
        .call(
            "GET",
            "/v1/approvals?status=pending",
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let found: Vec<&Value> = list["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter(|a| a["authorization_details"].to_string().contains(payment))
        .collect();
    assert_eq!(found.len(), 1, "{list}");
    found[0]["id"].as_str().expect("id").to_owned()
}

/// Denies the approval `id` as finance.
async fn deny(srv: &Server, id: &str) {
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/deny"),
            Some(&approver("bob", &["finance"])),
            json!({ "reason": "not ours" }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
}

/// Two refunds asked for in one task: pending with both items listed;
/// one approved and one denied makes it `partial`, with the approved
/// item's own result, which allows that refund once and no other; a
/// retry under the key is the same task, another body under it refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_ends_partial_with_each_items_result() {
    let srv = Server::start().await;
    let base = format!("http://{}", srv.addr);
    let alice = token("alice", "payments:refund", &[]);
    let d = batch_denials(&srv, &alice, &["pay_a", "pay_b"], 500).await;
    let mut body = all_items(&d);
    body["context"]["business_justification"] = json!("both charged twice");
    let (status, headers, t) = submit(&srv, Some("b-1"), body.clone()).await;
    assert_eq!(status, 202, "{t}");
    let id = t["task"]["id"].as_str().expect("id").to_owned();
    let url = format!("{base}/access/v1/requests/{id}");
    assert_eq!(
        t,
        json!({ "task": {
            "id": id,
            "status": "pending",
            "status_endpoint": url,
            "expires_at": "2026-01-01T00:15:00Z",
            "links": { "cancel": format!("{url}/cancel") },
            "display": {
                "title": "Approval of 2 actions",
                "description": "payment.refund of Payment pay_a; payment.refund of Payment pay_b",
            },
            "items": [
                { "resource": { "type": "Payment", "id": "pay_a" },
                  "action": { "name": "payment.refund" }, "status": "pending" },
                { "resource": { "type": "Payment", "id": "pay_b" },
                  "action": { "name": "payment.refund" }, "status": "pending" },
            ],
        }})
    );
    assert_eq!(header(&headers, "location"), Some(url.as_str()));
    assert_eq!(header(&headers, "retry-after"), Some("5"));

    // One approval per item, each with the justification.
    let a = approval_of(&srv, "pay_a").await;
    let b = approval_of(&srv, "pay_b").await;
    assert_ne!(a, b);
    let (_, seen) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{b}"),
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(seen["reason"], "both charged twice");

    // Approving one item leaves the task pending.
    srv.advance(60);
    srv.approve_by_finance(&a, &["bob", "carol"]).await;
    let (status, headers, t) = task(&srv, &id, &alice).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["task"]["status"], "pending");
    assert_eq!(t["task"]["items"][0]["status"], "approved");
    assert_eq!(t["task"]["items"][1]["status"], "pending");
    assert_eq!(header(&headers, "retry-after"), Some("5"));

    deny(&srv, &b).await;
    let (status, headers, t) = task(&srv, &id, &alice).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["task"]["status"], "partial");
    assert_eq!(t["task"]["items"][1]["status"], "denied");
    assert!(t["task"]["items"][1].get("result").is_none(), "{t}");
    assert!(t["task"].get("links").is_none(), "{t}");
    assert!(t.get("result").is_none(), "no top-level result: {t}");
    assert_eq!(header(&headers, "retry-after"), None);
    assert_eq!(t["task"]["expires_at"], "2026-01-01T00:06:00Z");
    let result = &t["task"]["items"][0]["result"];
    assert_eq!(result["mode"], "reevaluate");
    let approval = result["approval"].clone();
    assert_eq!(approval["id"], a.as_str());
    assert_eq!(approval["approved_until"], "2026-01-01T00:06:00Z");

    // The retry under the key: the same task, now ended; another body
    // under it refused.
    let (status, _, again) = submit(&srv, Some("b-1"), body.clone()).await;
    assert_eq!((status, &again["task"]["id"]), (201, &json!(id)), "{again}");
    assert_eq!(again["task"]["status"], "partial");
    let mut other = body.clone();
    other["items"].as_array_mut().expect("items").pop();
    let (status, headers, dup) = submit(&srv, Some("b-1"), other).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem(&headers, &dup),
        (
            DUPLICATE.to_owned(),
            "this Idempotency-Key was used with a different access request".to_owned()
        )
    );

    // The denied item's refund is not allowed by the approved item's
    // result; the approved one is, once.
    let wrong = reevaluate(&srv, &d[1].0, &approval).await;
    assert_eq!(wrong["decision"], false, "{wrong}");
    assert_eq!(wrong["context"]["reason"], "out_of_scope");
    let ok = reevaluate(&srv, &d[0].0, &approval).await;
    assert_eq!(ok["decision"], true, "{ok}");
    let twice = reevaluate(&srv, &d[0].0, &approval).await;
    assert_eq!(twice["context"]["reason"], "approval_expired", "{twice}");

    // Once no approved item's result can be used, the handle has expired.
    srv.advance(301);
    let (status, headers, gone) = task(&srv, &id, &alice).await;
    assert_eq!(status, 410);
    assert_eq!(
        problem(&headers, &gone),
        (
            "urn:openid:authzen:access-request:error:task_expired".to_owned(),
            format!("task `{id}` had approved items, to be used until 2026-01-01T00:06:00Z")
        )
    );
}

/// Every refusal of a single submission, per item and named by it, and
/// nothing opened by a refused bulk submission: an item without its
/// denial, denials swapped between items, another person's denials, the
/// same action twice, top-level `resource` beside `items`, no items.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_is_refused_item_by_item_and_opens_nothing() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let mallory = token("mallory", "payments:refund", &[]);
    let d = batch_denials(&srv, &alice, &["pay_a", "pay_b"], 500).await;
    let refused = |status: u16, headers: &[(String, String)], body: &Value| {
        assert_eq!(status, 400, "{body}");
        problem(headers, body)
    };

    let mut no_denial = item(&d[1].0, &d[1].1);
    no_denial.as_object_mut().expect("item").remove("denial");
    let (s, h, v) = submit(
        &srv,
        None,
        bulk(&d[0].0, vec![item(&d[0].0, &d[0].1), no_denial]),
    )
    .await;
    assert_eq!(
        refused(s, &h, &v),
        (
            INVALID_BINDING.to_owned(),
            "`items[1]` has no `denial`: this PDP binds each evaluation on its own, so each item echoes the denial of its own evaluation".to_owned()
        )
    );

    let mut swapped = item(&d[0].0, &d[0].1);
    swapped["denial"] = item(&d[1].0, &d[1].1)["denial"].clone();
    let (s, h, v) = submit(&srv, None, bulk(&d[0].0, vec![swapped])).await;
    assert_eq!(
        refused(s, &h, &v),
        (
            INVALID_BINDING.to_owned(),
            format!(
                "`items[0]`: the submitted action, resource or context is not the one denied in `{}`",
                d[1].1["evaluation_id"].as_str().expect("id")
            )
        )
    );

    // Mallory with alice's denials, under her own subject.
    let mut hers = bulk(&d[0].0, vec![item(&d[0].0, &d[0].1)]);
    hers["subject"]["id"] = json!(mallory);
    let (s, h, v) = submit(&srv, None, hers).await;
    assert_eq!(
        refused(s, &h, &v),
        (
            INVALID_BINDING.to_owned(),
            "`items[0]`: the denial was given to `alice` through client `greenlight-dev`, not to this subject".to_owned()
        )
    );

    let (s, h, v) = submit(
        &srv,
        None,
        bulk(
            &d[0].0,
            vec![item(&d[0].0, &d[0].1), item(&d[0].0, &d[0].1)],
        ),
    )
    .await;
    assert_eq!(
        refused(s, &h, &v),
        (
            "urn:greenlight:error:invalid_request".to_owned(),
            "`items[0]` and `items[1]` are the same action: ask for it once".to_owned()
        )
    );

    let mut both = bulk(&d[0].0, vec![item(&d[1].0, &d[1].1)]);
    both["resource"] = d[0].0["resource"].clone();
    both["action"] = d[0].0["action"].clone();
    let (s, h, v) = submit(&srv, None, both).await;
    assert_eq!(
        refused(s, &h, &v).1,
        "`resource` and `action` must be omitted when `items` is present: each item names its own"
    );

    let (s, h, v) = submit(&srv, None, bulk(&d[0].0, vec![])).await;
    assert_eq!(refused(s, &h, &v).1, "`items` holds 1 to 32 items, not 0");

    let (_, list) = srv
        .call(
            "GET",
            "/v1/approvals",
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(list["approvals"], json!([]), "nothing was opened");
}

/// Only the requester's client reads or cancels a bulk task; cancelling
/// withdraws the pending items and leaves the decided ones (`partial`),
/// a task with none pending cannot be cancelled, and a task whose items
/// all lapsed is `expired`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_task_cancels_its_pending_items_for_its_requester_only() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let id = open_bulk(&srv, &alice, &["pay_a", "pay_b"]).await;
    let a = approval_of(&srv, "pay_a").await;
    let b = approval_of(&srv, "pay_b").await;
    srv.approve_by_finance(&a, &["bob", "carol"]).await;

    // Another person, and alice through another client: no such task.
    let mallory = token("mallory", "payments:refund", &[]);
    let elsewhere = dev_through(
        Some("other-app"),
        "alice",
        Some("payments:refund"),
        &[],
        7200,
    );
    for who in [&mallory, &elsewhere] {
        let (status, headers, v) = task(&srv, &id, who).await;
        assert_eq!(status, 404);
        assert_eq!(
            problem(&headers, &v),
            (UNKNOWN_TASK.to_owned(), format!("no task `{id}`"))
        );
        let (status, headers, v) = cancel(&srv, "POST", &id, who, None).await;
        assert_eq!(status, 404);
        assert_eq!(
            problem(&headers, &v),
            (UNKNOWN_TASK.to_owned(), format!("no task `{id}`"))
        );
    }

    let (status, _, t) = cancel(
        &srv,
        "POST",
        &id,
        &alice,
        Some(json!({ "reason": "changed_mind" })),
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["task"]["status"], "partial");
    assert_eq!(t["task"]["items"][0]["status"], "approved");
    assert_eq!(t["task"]["items"][1]["status"], "cancelled");
    let (_, seen) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{b}"),
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(seen["status"], "revoked");
    let (_, seen) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{a}"),
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(seen["status"], "approved", "a decided item stays decided");
    let (status, headers, v) = cancel(&srv, "DELETE", &id, &alice, None).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem(&headers, &v),
        (
            TASK_STATE.to_owned(),
            format!("task `{id}` is already partial")
        )
    );

    // All pending: cancelled as a whole.
    let all = open_bulk(&srv, &alice, &["pay_c", "pay_d"]).await;
    let (status, _, t) = cancel(&srv, "DELETE", &all, &alice, None).await;
    assert_eq!(
        (status, &t["task"]["status"]),
        (200, &json!("cancelled")),
        "{t}"
    );

    // Lapsed: expired, and not cancellable.
    let lapsed = open_bulk(&srv, &alice, &["pay_e", "pay_f"]).await;
    srv.advance(900);
    let (status, _, t) = task(&srv, &lapsed, &alice).await;
    assert_eq!(
        (status, &t["task"]["status"]),
        (200, &json!("expired")),
        "{t}"
    );
    let (status, headers, v) = cancel(&srv, "POST", &lapsed, &alice, None).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem(&headers, &v),
        (
            TASK_STATE.to_owned(),
            format!("task `{lapsed}` is already expired")
        )
    );
}

/// A bulk task's callback is told once, when its last item ends, with the
/// aggregate: not when the first item is approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_callback_is_told_the_aggregate_once() {
    let (url, _, seen, settings, _keys) = callback_receiver().await;
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let d = batch_denials(&srv, &alice, &["pay_a", "pay_b"], 500).await;
    let mut body = all_items(&d);
    body["callback"] = json!({ "endpoint": url, "state": { "batch": 7 } });
    let (status, _, t) = submit(&srv, None, body).await;
    assert_eq!(status, 202, "{t}");
    let id = t["task"]["id"].as_str().expect("id").to_owned();
    srv.approve_by_finance(&approval_of(&srv, "pay_a").await, &["bob", "carol"])
        .await;
    deny(&srv, &approval_of(&srv, "pay_b").await).await;
    let got = calls(&seen, 1).await;
    // Give a second (wrong) notification the time to arrive.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let got2 = calls(&seen, 2).await;
    assert_eq!((got.len(), got2.len()), (1, 1), "one notification");
    let (headers, sent) = &got[0];
    assert_eq!(
        headers
            .get("greenlight-event")
            .and_then(|v| v.to_str().ok()),
        Some("access_request.partial")
    );
    assert_eq!(
        serde_json::from_slice::<Value>(sent).expect("json"),
        json!({
            "state": { "batch": 7 },
            "task": {
                "id": id,
                "status": "partial",
                "status_endpoint": format!("http://{}/access/v1/requests/{id}", srv.addr),
            },
        })
    );
}

/// A bulk request refused part-way leaves nothing it opened: more items
/// than the requester may have pending is refused before anything is
/// opened, and one that reaches the quota on its second item withdraws the
/// first (an approval already pending for another request stays).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_request_refused_part_way_withdraws_what_it_opened() {
    let settings: Settings = toml::from_str("[approvals]\nmax_pending = 2\n").expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let d = batch_denials(&srv, &alice, &["pay_a", "pay_b", "pay_c"], 500).await;
    let items: Vec<Value> = d.iter().map(|(e, ctx)| item(e, ctx)).collect();
    let (status, headers, v) = submit(&srv, None, bulk(&d[0].0, items.clone())).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        problem(&headers, &v).1,
        "`items` asks for 3 approvals; a requester may have at most 2 pending (approvals.max_pending)"
    );

    // One pending already (pay_c, asked for alone); two more would be three.
    let (status, _, t) = submit(&srv, None, bulk(&d[2].0, vec![items[2].clone()])).await;
    assert_eq!(status, 202, "{t}");
    let (status, headers, v) = submit(&srv, None, bulk(&d[0].0, items[..2].to_vec())).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(
        problem(&headers, &v).1,
        "`items[1]`: `alice` has 2 approvals pending, the most allowed at once: wait for one to be decided or to expire"
    );
    let (_, list) = srv
        .call(
            "GET",
            "/v1/approvals",
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    let mut seen: Vec<(String, String)> = list["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .map(|a| {
            let details = a["authorization_details"].to_string();
            let payment = ["pay_a", "pay_b", "pay_c"]
                .into_iter()
                .find(|p| details.contains(p))
                .unwrap_or("?");
            (
                payment.to_owned(),
                a["status"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("pay_a".to_owned(), "revoked".to_owned()),
            ("pay_c".to_owned(), "pending".to_owned()),
        ],
        "{list}"
    );
}

/// Another issuer's `alice`, through a client of the same name, is
/// another person: she cannot read or cancel alice's tasks, single or
/// bulk, nor submit alice's denial as hers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_issuers_user_of_the_same_name_gets_nothing() {
    let bundle = two_issuers();
    let srv = Server::start_with_bundle(bundle.path()).await;
    let alice = token("alice", "payments:refund", &[]);
    let (single, e) = super::open_task(&srv, &alice, 500).await;
    let several = open_bulk(&srv, &alice, &["pay_a", "pay_b"]).await;

    let fake = partner(
        "alice",
        "greenlight-dev",
        json!({ "scope": "payments:refund" }),
    );
    for id in [&single, &several] {
        let unknown = (UNKNOWN_TASK.to_owned(), format!("no task `{id}`"));
        let (status, headers, v) = task(&srv, id, &fake).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(problem(&headers, &v), unknown);
        let (status, headers, v) = cancel(&srv, "POST", id, &fake, None).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(problem(&headers, &v), unknown);
    }
    let ctx = super::denial(&srv, e.clone()).await;
    let mut hers = super::submission(&e, &ctx);
    hers["subject"]["id"] = json!(fake);
    let (status, headers, v) = submit(&srv, None, hers).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        problem(&headers, &v),
        (
            INVALID_BINDING.to_owned(),
            "the denial was given to `alice` through client `greenlight-dev`, not to this subject"
                .to_owned()
        )
    );
    for id in [&single, &several] {
        let (_, _, t) = task(&srv, id, &alice).await;
        assert_eq!(t["task"]["status"], "pending", "{t}");
    }
}
