//! `greenlight serve` over real HTTP: OpenID AuthZEN Access Request and
//! Approval (Draft 1): requestable denials, access requests with
//! idempotency, the task and its transitions, callbacks, and re-evaluation
//! with the approval, tried by the requester and by those who should not
//! get anywhere; bulk submissions in `bulk`.

use common::server::*;
use serde_json::{Value, json};

#[path = "../common/mod.rs"]
mod common;

mod bulk;

const INVALID_BINDING: &str = "urn:openid:authzen:access-request:error:invalid_denial_binding";
const EXPIRED_DENIAL: &str = "urn:openid:authzen:access-request:error:expired_denial";
const DUPLICATE: &str = "urn:openid:authzen:access-request:error:duplicate_request";
const UNKNOWN_TASK: &str = "urn:openid:authzen:access-request:error:unknown_task";
const TASK_STATE: &str = "urn:openid:authzen:access-request:error:invalid_task_state";
const NOT_REQUESTABLE: &str = "urn:openid:authzen:access-request:error:not_requestable";

/// An evaluation of a refund of `amount` EUR of `payment` by the bearer
/// of `token`.
fn eval_of(token: &str, payment: &str, amount: i64) -> Value {
    json!({
        "subject": { "type": "bearer", "id": token },
        "action": { "name": "payment.refund" },
        "resource": { "type": "Payment", "id": payment },
        "context": { "amount": amount, "currency": "EUR" },
    })
}

fn eval(token: &str, amount: i64) -> Value {
    eval_of(token, "pay_123", amount)
}

/// A request with `headers` (name, value) and a JSON body.
async fn send(
    srv: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    common::request(
        srv.addr,
        method,
        path,
        headers,
        body.map(|b| ("application/json", b.to_string())),
    )
    .await
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Evaluates and returns the requestable denial's decision context.
async fn denial(srv: &Server, body: Value) -> Value {
    let (status, a) = srv.json("POST", "/access/v1/evaluation", None, body).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(a["decision"], false, "{a}");
    assert!(a["context"]["access_request"].is_object(), "{a}");
    a["context"].clone()
}

/// The access request a PEP submits for the evaluation `e` denied with
/// `ctx`, echoing the denial as ARAP says.
fn submission(e: &Value, ctx: &Value) -> Value {
    json!({
        "subject": e["subject"],
        "action": e["action"],
        "resource": e["resource"],
        "context": e["context"],
        "denial": {
            "evaluation_id": ctx["evaluation_id"],
            "evaluated_at": ctx["evaluated_at"],
            "expires_at": ctx["access_request"]["expires_at"],
            "reason": ctx["reason"],
            "binding_token": ctx["access_request"]["binding_token"],
        },
    })
}

/// Submits `body` with `headers`.
async fn submit_with(
    srv: &Server,
    headers: &[(&str, &str)],
    body: Value,
) -> (u16, Vec<(String, String)>, Value) {
    send(srv, "POST", "/access/v1/requests", headers, Some(body)).await
}

/// Submits `body`, with an `Idempotency-Key` when given.
async fn submit(
    srv: &Server,
    key: Option<&str>,
    body: Value,
) -> (u16, Vec<(String, String)>, Value) {
    let headers: Vec<(&str, &str)> = key.map(|k| ("idempotency-key", k)).into_iter().collect();
    submit_with(srv, &headers, body).await
}

/// The task `id` as `token`'s bearer reads it.
async fn task(srv: &Server, id: &str, token: &str) -> (u16, Vec<(String, String)>, Value) {
    let bearer = format!("Bearer {token}");
    send(
        srv,
        "GET",
        &format!("/access/v1/requests/{id}"),
        &[("authorization", &bearer)],
        None,
    )
    .await
}

/// Cancels the task `id` with `method` (`POST` or `DELETE`) as `token`'s
/// bearer, with an optional body.
async fn cancel(
    srv: &Server,
    method: &str,
    id: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Vec<(String, String)>, Value) {
    let bearer = format!("Bearer {token}");
    send(
        srv,
        method,
        &format!("/access/v1/requests/{id}/cancel"),
        &[("authorization", &bearer)],
        body,
    )
    .await
}

/// Re-evaluates `e` with `approval` in `context.approval`.
async fn reevaluate(srv: &Server, e: &Value, approval: &Value) -> Value {
    let mut e = e.clone();
    e["context"]["approval"] = approval.clone();
    let (status, a) = srv.json("POST", "/access/v1/evaluation", None, e).await;
    assert_eq!(status, 200, "{a}");
    a
}

/// `(type, detail)` of a problem answer, after checking it is one.
fn problem(headers: &[(String, String)], body: &Value) -> (String, String) {
    assert_eq!(
        header(headers, "content-type"),
        Some("application/problem+json"),
        "{body}"
    );
    (
        body["type"].as_str().unwrap_or_default().to_owned(),
        body["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Submits a fresh denial of `amount` for `token` and returns the task id
/// and the evaluation.
async fn open_task(srv: &Server, token: &str, amount: i64) -> (String, Value) {
    let e = eval(token, amount);
    let ctx = denial(srv, e.clone()).await;
    let (status, _, t) = submit(srv, None, submission(&e, &ctx)).await;
    assert_eq!(status, 202, "{t}");
    (t["task"]["id"].as_str().expect("task id").to_owned(), e)
}

/// The whole story: metadata, a requestable denial, a submission (twice
/// under one key: one task; another body under it: refused), a pending
/// task polled with `Retry-After`, two approvals, the approved task's
/// result, one re-evaluation allowed, the second refused as used, and the
/// CIBA collection of the same approval refused: it counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requestable_denial_becomes_one_approved_use() {
    let srv = Server::start().await;
    let base = format!("http://{}", srv.addr);
    let (status, meta) = srv
        .call("GET", "/.well-known/authzen-configuration", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        meta["access_request_endpoint"],
        format!("{base}/access/v1/requests")
    );
    assert_eq!(meta["jwks_uri"], format!("{base}/.well-known/jwks.json"));
    assert_eq!(
        meta["capabilities"],
        json!(["urn:openid:authzen:capability:access-request"])
    );

    let alice = token("alice", "payments:refund", &[]);
    let e = eval(&alice, 500);
    let ctx = denial(&srv, e.clone()).await;
    assert_eq!(ctx["reason"], "approval_required");
    assert_eq!(ctx["evaluated_at"], "2026-01-01T00:00:00Z");
    assert!(
        ctx["evaluation_id"]
            .as_str()
            .is_some_and(|i| i.starts_with("eval_") && i.len() == 37),
        "{ctx}"
    );
    let ar = &ctx["access_request"];
    assert_eq!(ar["endpoint"], format!("{base}/access/v1/requests"));
    assert_eq!(ar["expires_at"], "2026-01-01T00:10:00Z");
    assert_eq!(ar["display"]["title"], "Approval required");
    // The CIBA and exchange hints are still there beside it.
    assert_eq!(ctx["approval_required"]["kind"], "approval-required");

    // A plain allow is not requestable and carries nothing of it.
    let (_, allowed) = srv
        .json("POST", "/access/v1/evaluation", None, eval(&alice, 50))
        .await;
    assert_eq!(allowed["decision"], true);
    assert!(allowed["context"].get("access_request").is_none());

    // Submitted with a key; again with the same key and the same body
    // (members in another order, other whitespace, the key quoted as a
    // structured field): the same task.
    let mut body = submission(&e, &ctx);
    body["context"]["business_justification"] = json!("customer R-7 was charged twice");
    let (status, headers, t) = submit(&srv, Some("k-1"), body.clone()).await;
    assert_eq!(status, 202, "{t}");
    let id = t["task"]["id"].as_str().expect("task id").to_owned();
    let status_url = format!("{base}/access/v1/requests/{id}");
    assert_eq!(t["task"]["status"], "pending");
    assert_eq!(t["task"]["status_endpoint"], status_url);
    assert_eq!(t["task"]["expires_at"], "2026-01-01T00:15:00Z");
    assert_eq!(t["task"]["links"]["cancel"], format!("{status_url}/cancel"));
    assert!(t.get("result").is_none(), "{t}");
    assert_eq!(header(&headers, "location"), Some(status_url.as_str()));
    assert_eq!(header(&headers, "retry-after"), Some("5"));
    let reordered = format!(
        "{{ {} }}",
        body.as_object()
            .expect("object")
            .iter()
            .rev()
            .map(|(k, v)| format!(
                "{}:\n  {}",
                json!(k),
                serde_json::to_string_pretty(v).expect("json")
            ))
            .collect::<Vec<_>>()
            .join(",\n")
    );
    assert_ne!(reordered, body.to_string());
    let (status, _, again) = common::request(
        srv.addr,
        "POST",
        "/access/v1/requests",
        &[("idempotency-key", "\"k-1\"")],
        Some(("application/json", reordered)),
    )
    .await;
    assert_eq!((status, &again["task"]["id"]), (202, &json!(id)), "{again}");
    let mut other = body.clone();
    other["context"]["business_justification"] = json!("something else");
    let (status, headers, dup) = submit(&srv, Some("k-1"), other).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem(&headers, &dup),
        (
            DUPLICATE.to_owned(),
            "this Idempotency-Key was used with a different access request".to_owned()
        )
    );
    // The approvers see the justification as the approval's reason.
    let (status, seen) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{id}"),
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["reason"], "customer R-7 was charged twice");
    assert_eq!(seen["status"], "pending");

    // Polled while pending.
    let (status, headers, t) = task(&srv, &id, &alice).await;
    assert_eq!((status, &t["task"]["status"]), (200, &json!("pending")));
    assert_eq!(header(&headers, "retry-after"), Some("5"));

    // Approved by two of finance.
    srv.advance(60);
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    let (status, headers, t) = task(&srv, &id, &alice).await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["task"]["status"], "approved");
    assert_eq!(header(&headers, "retry-after"), None);
    assert_eq!(t["result"]["mode"], "reevaluate");
    let approval = t["result"]["approval"].clone();
    assert_eq!(approval["id"], id.as_str());
    assert_eq!(approval["approved_at"], "2026-01-01T00:01:00Z");
    // A single use waits at most `approvals.collect_within` (300 s).
    assert_eq!(approval["approved_until"], "2026-01-01T00:06:00Z");
    assert!(
        approval["state"]
            .as_str()
            .is_some_and(|s| s.split('.').count() == 3)
    );

    // Re-evaluated with the approval: allowed, once.
    let a = reevaluate(&srv, &e, &approval).await;
    assert_eq!(a["decision"], true, "{a}");
    assert_eq!(
        a["context"]["approval"],
        json!({ "id": id, "approved_until": "2026-01-01T00:06:00Z" })
    );
    let a = reevaluate(&srv, &e, &approval).await;
    assert_eq!(a["decision"], false, "{a}");
    assert_eq!(a["context"]["reason"], "approval_expired");
    assert_eq!(a["context"]["next_action"], "request");
    assert_eq!(
        a["context"]["message"],
        format!("approval `{id}` was already used")
    );
    assert!(a["context"]["access_request"]["binding_token"].is_string());

    // CIBA cannot collect it a second time either: one approval, one use.
    let (status, e2) = srv.collect(&alice, &id).await;
    assert_eq!(
        (status, e2["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e2}"
    );
    assert_eq!(
        e2["error_description"],
        format!("the action token for `{id}` was already delivered")
    );
}

/// The same action asked for through CIBA and then through ARAP is one
/// approval: the task is the CIBA request, and once its token is
/// collected, the re-evaluation finds the approval used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciba_and_an_access_request_for_one_action_count_once() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let id = srv.ask(&alice, &refund_details(500)).await;
    let (task_id, e) = open_task(&srv, &alice, 500).await;
    assert_eq!(task_id, id);
    let (status, list) = srv
        .call(
            "GET",
            "/v1/approvals?status=pending",
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["approvals"].as_array().map(Vec::len), Some(1));
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    let (_, _, t) = task(&srv, &id, &alice).await;
    let approval = t["result"]["approval"].clone();
    let (status, minted) = srv.collect(&alice, &id).await;
    assert_eq!(status, 200, "{minted}");
    let a = reevaluate(&srv, &e, &approval).await;
    assert_eq!(
        (&a["decision"], &a["context"]["reason"]),
        (&json!(false), &json!("approval_expired"))
    );
    assert_eq!(
        a["context"]["message"],
        format!("approval `{id}` was already used")
    );
}

/// An approval applies to its exact action, requester and client, and
/// only while it stands: another amount or resource is out of scope,
/// another person or client cannot borrow it, a forged or altered state
/// is unverifiable, and a revoked or lapsed one has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_is_bound_to_its_action_requester_and_time() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (id, e) = open_task(&srv, &alice, 500).await;
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    let (_, _, t) = task(&srv, &id, &alice).await;
    let approval = t["result"]["approval"].clone();

    let refused = |a: &Value, reason: &str, next: &str, message: &str| {
        assert_eq!(a["decision"], false, "{a}");
        assert_eq!(a["context"]["reason"], reason, "{a}");
        assert_eq!(a["context"]["next_action"], next, "{a}");
        assert_eq!(a["context"]["message"], message, "{a}");
        // `request` comes with a fresh requestable denial; `none` without.
        assert_eq!(
            a["context"]["access_request"].is_object(),
            next == "request",
            "{a}"
        );
    };

    // Another amount, another payment: out of scope.
    let a = reevaluate(&srv, &eval(&alice, 600), &approval).await;
    refused(
        &a,
        "out_of_scope",
        "request",
        &format!(
            "approval `{id}` covers another action, resource or parameters than `payment.refund` on `Payment::pay_123`"
        ),
    );
    let a = reevaluate(&srv, &eval_of(&alice, "pay_999", 500), &approval).await;
    assert_eq!(a["context"]["reason"], "out_of_scope", "{a}");

    // Another person with the same approval, or alice through another of
    // her apps: it was not given to them.
    let mallory = token("mallory", "payments:refund", &[]);
    let a = reevaluate(&srv, &eval(&mallory, 500), &approval).await;
    let other = format!("approval `{id}` was given to another requester or client");
    refused(&a, "approval_unverifiable", "none", &other);
    let alice_elsewhere = dev_through(
        Some("other-app"),
        "alice",
        Some("payments:refund"),
        &[("groups", json!([]))],
        7200,
    );
    let a = reevaluate(&srv, &eval(&alice_elsewhere, 500), &approval).await;
    refused(&a, "approval_unverifiable", "none", &other);

    // A state whose signature was altered, a state naming another id, no
    // state at all, and a binding token passed off as a state.
    let mut forged = approval.clone();
    let state = approval["state"].as_str().expect("state");
    let (head, sig) = state.rsplit_once('.').expect("jws");
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    forged["state"] = json!(format!("{head}.{flipped}{}", &sig[1..]));
    let a = reevaluate(&srv, &e, &forged).await;
    assert_eq!(a["context"]["reason"], "approval_unverifiable", "{a}");
    assert!(
        a["context"]["message"].as_str().is_some_and(
            |m| m.starts_with("the approval state is not valid: signature check failed")
        ),
        "{a}"
    );
    let mut renamed = approval.clone();
    renamed["id"] = json!("0".repeat(32));
    let a = reevaluate(&srv, &e, &renamed).await;
    refused(
        &a,
        "approval_unverifiable",
        "none",
        "`context.approval.id` is not the approval its state names",
    );
    let a = reevaluate(&srv, &e, &json!({ "id": id })).await;
    refused(
        &a,
        "approval_unverifiable",
        "none",
        "`context.approval.state` is missing: echo the approval object of the task's result unchanged",
    );
    let ctx = denial(&srv, e.clone()).await;
    let binding = json!({ "id": id, "state": ctx["access_request"]["binding_token"] });
    let a = reevaluate(&srv, &e, &binding).await;
    refused(
        &a,
        "approval_unverifiable",
        "none",
        "the approval state is not valid: `typ` is `greenlight-access-request-binding+jwt`, not `greenlight-approval-state+jwt`",
    );

    // None of that used it: alice still can, once. Then revoked by an
    // approver, it has expired.
    let a = reevaluate(&srv, &e, &approval).await;
    assert_eq!(a["decision"], true, "{a}");
    let (id2, e2) = open_task(&srv, &alice, 500).await;
    srv.approve_by_finance(&id2, &["bob", "carol"]).await;
    let (_, _, t2) = task(&srv, &id2, &alice).await;
    let approval2 = t2["result"]["approval"].clone();
    let (status, revoked) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id2}/revoke"),
            Some(&approver("bob", &["finance"])),
            json!({ "reason": "wrong customer" }),
        )
        .await;
    assert_eq!(status, 200, "{revoked}");
    let a = reevaluate(&srv, &e2, &approval2).await;
    refused(
        &a,
        "approval_expired",
        "request",
        &format!("approval `{id2}` was withdrawn"),
    );
    let (_, _, t2) = task(&srv, &id2, &alice).await;
    assert_eq!(t2["task"]["status"], "cancelled");
    assert!(t2.get("result").is_none(), "{t2}");

    // Past `approved_until` (300 s after the yes), a third one has expired.
    let (id3, e3) = open_task(&srv, &alice, 500).await;
    srv.approve_by_finance(&id3, &["bob", "carol"]).await;
    let (_, _, t3) = task(&srv, &id3, &alice).await;
    let approval3 = t3["result"]["approval"].clone();
    srv.advance(300);
    let a = reevaluate(&srv, &e3, &approval3).await;
    refused(
        &a,
        "approval_expired",
        "request",
        &format!("approval `{id3}` could be used until 2026-01-01T00:05:00Z"),
    );
    // Its task has expired with it.
    let (status, headers, v) = task(&srv, &id3, &alice).await;
    assert_eq!(status, 410);
    assert_eq!(
        problem(&headers, &v),
        (
            "urn:openid:authzen:access-request:error:task_expired".to_owned(),
            format!("task `{id3}` was approved, to be used until 2026-01-01T00:05:00Z")
        )
    );
}

/// A submission binds only to the denial it echoes: the same requester,
/// action, resource and parameters, the token and its expiry unaltered,
/// within the denial's lifetime. Nothing is opened otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_must_be_the_denied_request() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let e = eval(&alice, 500);
    let ctx = denial(&srv, e.clone()).await;
    let good = submission(&e, &ctx);
    let refused =
        |status: u16, headers: &[(String, String)], body: &Value, kind: &str, detail: &str| {
            assert_eq!(
                status,
                if kind == EXPIRED_DENIAL { 410 } else { 400 },
                "{body}"
            );
            assert_eq!(problem(headers, body), (kind.to_owned(), detail.to_owned()));
        };

    let mut b = good.clone();
    b.as_object_mut().expect("object").remove("denial");
    let (s, h, v) = submit(&srv, None, b).await;
    refused(
        s,
        &h,
        &v,
        INVALID_BINDING,
        "`denial` is required: echo the requestable denial's binding",
    );

    let mut b = good.clone();
    b["denial"]
        .as_object_mut()
        .expect("object")
        .remove("binding_token");
    let (s, h, v) = submit(&srv, None, b).await;
    refused(
        s,
        &h,
        &v,
        INVALID_BINDING,
        "`denial.binding_token` is required: this PDP binds every requestable denial with one; echo it unchanged",
    );

    let mut b = good.clone();
    b["denial"]["expires_at"] = json!("2026-01-01T01:00:00Z");
    let (s, h, v) = submit(&srv, None, b).await;
    refused(
        s,
        &h,
        &v,
        INVALID_BINDING,
        "`denial.expires_at` `2026-01-01T01:00:00Z` is not the expiry the denial gave",
    );

    let mut b = good.clone();
    let token = ctx["access_request"]["binding_token"]
        .as_str()
        .expect("token");
    let (head, sig) = token.rsplit_once('.').expect("jws");
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    b["denial"]["binding_token"] = json!(format!("{head}.{flipped}{}", &sig[1..]));
    let (s, _, v) = submit(&srv, None, b).await;
    assert_eq!((s, v["type"].as_str()), (400, Some(INVALID_BINDING)), "{v}");

    // Another amount than the one denied.
    let mut b = good.clone();
    b["context"]["amount"] = json!(5000);
    let (s, h, v) = submit(&srv, None, b).await;
    refused(
        s,
        &h,
        &v,
        INVALID_BINDING,
        &format!(
            "the submitted action, resource or context is not the one denied in `{}`",
            ctx["evaluation_id"].as_str().expect("id")
        ),
    );

    // Mallory submitting alice's denial with her own token.
    let mallory = token_with("mallory", &[("scope", json!("payments:refund"))]);
    let mut b = good.clone();
    b["subject"]["id"] = json!(mallory);
    let (s, h, v) = submit(&srv, None, b).await;
    refused(
        s,
        &h,
        &v,
        INVALID_BINDING,
        "the denial was given to `alice` through client `greenlight-dev`, not to this subject",
    );

    // Alice with a token that may not refund at all: refused, not awaiting
    // approval.
    let mut b = good.clone();
    b["subject"]["id"] = json!(token_with("alice", &[]));
    let (s, h, v) = submit(&srv, None, b).await;
    assert_eq!(s, 400, "{v}");
    let (kind, detail) = problem(&h, &v);
    assert_eq!(kind, NOT_REQUESTABLE);
    assert!(
        detail.starts_with("the action is refused, not awaiting approval ("),
        "{detail}"
    );

    // A body that is not an object (serde would read an array as the
    // fields in order) is refused, not read.
    let fields: Vec<Value> = ["subject", "resource", "action"]
        .iter()
        .map(|k| good[*k].clone())
        .collect();
    let (s, h, v) = submit(&srv, None, json!(fields)).await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(
        problem(&h, &v).1,
        "the body is not an access request: a JSON object is expected"
    );

    // None of that opened an approval.
    let (_, list) = srv
        .call(
            "GET",
            "/v1/approvals",
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(list["approvals"], json!([]));

    // Ten minutes on, the denial has expired.
    srv.advance(600);
    let (s, h, v) = submit(&srv, None, good).await;
    refused(
        s,
        &h,
        &v,
        EXPIRED_DENIAL,
        "the requestable denial expired at 2026-01-01T00:10:00Z; evaluate again",
    );
}

/// A task is the requester's through the client that asked: a task id is
/// not a credential, and nobody else learns the task exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requesters_client_may_read_or_cancel_a_task() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let (id, _) = open_task(&srv, &alice, 500).await;
    let path = format!("/access/v1/requests/{id}");

    let (status, headers, v) = send(&srv, "GET", &path, &[], None).await;
    assert_eq!(status, 401);
    assert_eq!(
        problem(&headers, &v),
        (
            "urn:greenlight:error:invalid_token".to_owned(),
            "no bearer token was presented".to_owned()
        )
    );
    assert_eq!(
        header(&headers, "www-authenticate"),
        Some("Bearer error=\"invalid_token\", error_description=\"no bearer token was presented\"")
    );

    let unknown = (UNKNOWN_TASK.to_owned(), format!("no task `{id}`"));
    let alice_elsewhere = dev_through(
        Some("other-app"),
        "alice",
        Some("payments:refund"),
        &[],
        7200,
    );
    for who in [
        token("mallory", "payments:refund", &[]),
        alice_elsewhere,
        approver("bob", &["finance"]),
    ] {
        let (status, headers, v) = task(&srv, &id, &who).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(problem(&headers, &v), unknown);
        let (status, headers, v) = cancel(&srv, "POST", &id, &who, None).await;
        assert_eq!(status, 404, "{v}");
        assert_eq!(problem(&headers, &v), unknown);
    }
    let (status, headers, v) = task(&srv, &"f".repeat(32), &alice).await;
    assert_eq!(status, 404);
    assert_eq!(
        problem(&headers, &v),
        (
            UNKNOWN_TASK.to_owned(),
            format!("no task `{}`", "f".repeat(32))
        )
    );
    // Still pending: nobody above moved it.
    let (_, _, t) = task(&srv, &id, &alice).await;
    assert_eq!(t["task"]["status"], "pending");
}

/// Every transition out of `pending` the service makes: approved (above),
/// denied, expired, cancelled by the requester's side; and cancelling a
/// task that has ended is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_is_denied_expires_or_is_cancelled() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);

    let (denied, e) = open_task(&srv, &alice, 500).await;
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{denied}/deny"),
            Some(&approver("bob", &["finance"])),
            json!({ "reason": "not ours" }),
        )
        .await;
    assert_eq!(status, 200, "{v}");
    let (_, headers, t) = task(&srv, &denied, &alice).await;
    assert_eq!(t["task"]["status"], "denied");
    assert!(
        t.get("result").is_none() && t["task"].get("links").is_none(),
        "{t}"
    );
    assert_eq!(header(&headers, "retry-after"), None);

    let (cancelled, _) = open_task(&srv, &alice, 700).await;
    let (status, _, t) = cancel(&srv, "DELETE", &cancelled, &alice, None).await;
    assert_eq!(
        (status, &t["task"]["status"]),
        (200, &json!("cancelled")),
        "{t}"
    );
    let (status, headers, v) = cancel(
        &srv,
        "POST",
        &cancelled,
        &alice,
        Some(json!({ "reason": "changed_mind" })),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        problem(&headers, &v),
        (
            TASK_STATE.to_owned(),
            format!("task `{cancelled}` is already cancelled")
        )
    );
    // Cancelled by the requester's side, the approvers see it withdrawn.
    let (_, seen) = srv
        .call(
            "GET",
            &format!("/v1/approvals/{cancelled}"),
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(seen["status"], "revoked");

    let (expired, _) = open_task(&srv, &alice, 800).await;
    srv.advance(900);
    let (_, _, t) = task(&srv, &expired, &alice).await;
    assert_eq!(t["task"]["status"], "expired");
    let (status, headers, v) = cancel(&srv, "POST", &expired, &alice, None).await;
    assert_eq!(status, 409);
    assert_eq!(
        problem(&headers, &v),
        (
            TASK_STATE.to_owned(),
            format!("task `{expired}` is already expired")
        )
    );
    // A denied request re-evaluated with no approval is requestable again.
    let ctx = denial(&srv, e).await;
    assert_eq!(ctx["reason"], "approval_required");
}

/// What a callback receiver was sent: each call's headers and body.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, axum::body::Bytes)>>>;

/// A PEP's callback receiver on loopback, registered for alice's client
/// (`greenlight-dev`) with the key `pep-shared-key`: its URL, address,
/// what it was sent, the settings registering it, and the key's directory
/// (kept while the server runs).
async fn callback_receiver() -> (
    String,
    std::net::SocketAddr,
    Seen,
    Settings,
    tempfile::TempDir,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = listener.local_addr().expect("addr");
    let seen: Seen = Seen::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                s.lock().expect("lock").push((headers, body));
                "ok"
            }
        },
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let keys = tempfile::tempdir().expect("tempdir");
    let key_file = keys.path().join("callback.key");
    std::fs::write(&key_file, "pep-shared-key\n").expect("write key");
    let url = format!("http://{hook}/callbacks/greenlight");
    let settings: Settings = toml::from_str(&format!(
        r#"
        [[access_requests.callbacks]]
        issuer = "https://idp.example.com"
        client_id = "greenlight-dev"
        url = "{url}"
        secret_file = "{}"
        "#,
        key_file.display()
    ))
    .expect("settings");
    (url, hook, seen, settings, keys)
}

/// What `seen` holds once it holds `n` calls, or after ten seconds.
async fn calls(seen: &Seen, n: usize) -> Vec<(axum::http::HeaderMap, axum::body::Bytes)> {
    let mut got = Vec::new();
    for _ in 0..200 {
        got = seen.lock().expect("lock").clone();
        if got.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    got
}

/// A callback goes only to an endpoint registered for the submitting
/// client, signed with its key: the receiver can tell a real notification
/// from a forged one, whose signature fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_go_to_registered_endpoints_signed() {
    let (url, hook, seen, settings, _keys) = callback_receiver().await;
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let e = eval(&alice, 500);
    let ctx = denial(&srv, e.clone()).await;

    // Not registered for this client: refused, and nothing opened.
    let mut b = submission(&e, &ctx);
    b["callback"] = json!({ "endpoint": format!("http://{hook}/elsewhere") });
    let (status, headers, v) = submit(&srv, None, b).await;
    assert_eq!(status, 400);
    assert_eq!(
        problem(&headers, &v).1,
        format!(
            "callback endpoint `http://{hook}/elsewhere` is not registered for client `greenlight-dev` of `https://idp.example.com` (access_requests.callbacks)"
        )
    );
    let (_, list) = srv
        .call(
            "GET",
            "/v1/approvals",
            Some(&approver("bob", &["finance"])),
            None,
        )
        .await;
    assert_eq!(list["approvals"], json!([]));

    // The registered endpoint, named by another client of the same person:
    // refused too (registered for a client, not for a person).
    let elsewhere = dev_through(
        Some("other-app"),
        "alice",
        Some("payments:refund"),
        &[],
        7200,
    );
    let e2 = eval(&elsewhere, 500);
    let ctx2 = denial(&srv, e2.clone()).await;
    let mut b = submission(&e2, &ctx2);
    b["callback"] = json!({ "endpoint": url });
    let (status, headers, v) = submit(&srv, None, b).await;
    assert_eq!(status, 400);
    assert_eq!(
        problem(&headers, &v).1,
        format!(
            "callback endpoint `{url}` is not registered for client `other-app` of `https://idp.example.com` (access_requests.callbacks)"
        )
    );

    let mut b = submission(&e, &ctx);
    b["callback"] =
        json!({ "endpoint": url, "state": { "thread": "t-42" }, "events": ["approved", "denied"] });
    let (status, _, t) = submit(&srv, None, b).await;
    assert_eq!(status, 202, "{t}");
    let id = t["task"]["id"].as_str().expect("id").to_owned();
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    let calls = calls(&seen, 1).await;
    assert_eq!(calls.len(), 1, "one notification");
    let (headers, body) = &calls[0];
    let got: Value = serde_json::from_slice(body).expect("json");
    assert_eq!(
        got,
        json!({
            "state": { "thread": "t-42" },
            "task": {
                "id": id,
                "status": "approved",
                "status_endpoint": format!("http://{}/access/v1/requests/{id}", srv.addr),
            },
        })
    );
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    assert_eq!(h("greenlight-event"), "access_request.approved");
    let signed = h("greenlight-signature");
    let t = signed
        .strip_prefix("t=")
        .and_then(|r| r.split(',').next())
        .and_then(|t| t.parse::<i64>().ok())
        .expect("t=");
    let delivery = h("greenlight-delivery");
    let sign =
        |key: &[u8], body: &[u8]| greenlight::serve::notify::signature(key, delivery, t, body);
    assert_eq!(sign(b"pep-shared-key", body), signed);
    // A forged "approved" for another task, or one signed with another
    // key, does not verify.
    let forged = String::from_utf8(body.to_vec())
        .expect("utf-8")
        .replace(&id, &"0".repeat(32));
    assert_ne!(sign(b"pep-shared-key", forged.as_bytes()), signed);
    assert_ne!(sign(b"another-key", body), signed);
}

/// A trusted PEP allowed to request (`may_request`) submits for the
/// subject it vouches for and reads the task with its own token; a PEP
/// only trusted to vouch gets no requestable denial and cannot submit; a
/// PEP that is not trusted cannot name a subject at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_pep_submits_and_polls_for_a_vouched_subject() {
    let settings: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"api-gateway\"\nmay_request = true\n\
         [[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"audit-gateway\"",
    )
    .expect("settings");
    let srv = Server::start_with(settings).await;
    let pep = token_with("api-gateway", &[("client_id", json!("api-gateway"))]);
    let bearer = format!("Bearer {pep}");
    let vouching = token_with("audit-gateway", &[("client_id", json!("audit-gateway"))]);
    let e = json!({
        "subject": { "type": "User", "id": "alice", "properties": { "scopes": ["payments:refund"] } },
        "action": { "name": "payment.refund" },
        "resource": { "type": "Payment", "id": "pay_123" },
        "context": { "amount": 500, "currency": "EUR" },
    });
    let (status, _, a) = send(
        &srv,
        "POST",
        "/access/v1/evaluation",
        &[("authorization", &bearer)],
        Some(e.clone()),
    )
    .await;
    assert_eq!(status, 200, "{a}");
    let ctx = a["context"].clone();
    assert!(ctx["access_request"].is_object(), "{a}");
    // Only vouching: the same denial is not requestable, and a submission
    // (with the other PEP's binding) is refused.
    let (status, _, only) = send(
        &srv,
        "POST",
        "/access/v1/evaluation",
        &[("authorization", &format!("Bearer {vouching}"))],
        Some(e.clone()),
    )
    .await;
    assert_eq!((status, &only["decision"]), (200, &json!(false)), "{only}");
    assert!(only["context"].get("access_request").is_none(), "{only}");
    assert!(only["context"]["approval_required"].is_object(), "{only}");
    let (status, headers, v) = submit_with(
        &srv,
        &[("authorization", &format!("Bearer {vouching}"))],
        submission(&e, &ctx),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        problem(&headers, &v).1,
        "client `audit-gateway` may vouch for subjects but not submit access requests for them (`may_request` in `[[authzen.trusted_clients]]`)"
    );
    // The actor a submission claims must be the one its credential names:
    // here the PEP itself.
    let mut claimed = submission(&e, &ctx);
    claimed["client"] = json!({ "actor": { "id": "agent-7", "type": "ai_agent" } });
    let (status, headers, v) = submit_with(&srv, &[("authorization", &bearer)], claimed).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(
        problem(&headers, &v).1,
        "`client.actor.id` `agent-7` is not the actor the credential names (`api-gateway`)"
    );
    let (status, _, t) = submit_with(
        &srv,
        &[("authorization", &bearer), ("idempotency-key", "p-1")],
        submission(&e, &ctx),
    )
    .await;
    assert_eq!(status, 202, "{t}");
    let id = t["task"]["id"].as_str().expect("id").to_owned();
    let (status, _, t) = task(&srv, &id, &pep).await;
    assert_eq!((status, &t["task"]["status"]), (200, &json!("pending")));
    // Another client's own token is not that PEP.
    let stranger = token_with("other-gateway", &[("client_id", json!("other-gateway"))]);
    let (status, _, _) = task(&srv, &id, &stranger).await;
    assert_eq!(status, 404);
    let (status, headers, v) = submit_with(
        &srv,
        &[("authorization", &format!("Bearer {stranger}"))],
        submission(&e, &ctx),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(
        problem(&headers, &v),
        (
            "urn:greenlight:error:access_denied".to_owned(),
            "client `other-gateway` of `https://idp.example.com` is not trusted to vouch for subjects; forward the subject's token as {\"type\": \"bearer\", \"id\": TOKEN}".to_owned()
        )
    );
    srv.approve_by_finance(&id, &["bob", "carol"]).await;
    let (_, _, t) = task(&srv, &id, &pep).await;
    let mut again = e.clone();
    again["context"]["approval"] = t["result"]["approval"].clone();
    let (_, _, a) = send(
        &srv,
        "POST",
        "/access/v1/evaluation",
        &[("authorization", &bearer)],
        Some(again),
    )
    .await;
    assert_eq!(a["decision"], true, "{a}");
}

/// A PEP trusted only to vouch (no `may_request`) cannot read or cancel
/// the tasks of its client's users: vouching for decisions is not
/// speaking for people's requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pep_trusted_only_to_vouch_cannot_handle_tasks() {
    let settings: Settings = toml::from_str(
        "[[authzen.trusted_clients]]\nissuer = \"https://idp.example.com\"\nclient_id = \"greenlight-dev\"\n",
    )
    .expect("settings");
    let srv = Server::start_with(settings).await;
    let alice = token("alice", "payments:refund", &[]);
    let (id, _) = open_task(&srv, &alice, 500).await;
    let pep = token("greenlight-dev", "", &[]);
    let (status, headers, v) = task(&srv, &id, &pep).await;
    assert_eq!(status, 404);
    assert_eq!(
        problem(&headers, &v),
        (UNKNOWN_TASK.to_owned(), format!("no task `{id}`"))
    );
    let (status, headers, v) = cancel(&srv, "POST", &id, &pep, None).await;
    assert_eq!(status, 404);
    assert_eq!(
        problem(&headers, &v),
        (UNKNOWN_TASK.to_owned(), format!("no task `{id}`"))
    );
    let (_, _, t) = task(&srv, &id, &alice).await;
    assert_eq!(t["task"]["status"], "pending");
}
