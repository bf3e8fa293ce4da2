//! `greenlight serve` over real HTTP: The approvals API: who may decide, votes, denial, expiry, tenant-scoped
//! approvers.

use common::server::*;
use serde_json::json;

mod common;

/// A deny ends the approval; the client is told `access_denied` and later
/// votes are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_ends_the_approval() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let bob = approver("bob", &["finance"]);
    let (_, d) = srv
        .json("POST", "/v1/check", None, refund(700, &alice))
        .await;
    let details = d["verdict"]["authorization_details"].to_string();
    let id = srv.ask(&alice, &details).await;
    let (status, v) = srv
        .json(
            "POST",
            &format!("/v1/approvals/{id}/deny"),
            Some(&bob),
            json!({ "reason": "duplicate refund" }),
        )
        .await;
    assert_eq!((status, v["status"].as_str()), (200, Some("denied")));
    let (status, e) = srv.collect(&alice, &id).await;
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
    let bob = approver("bob", &["finance"]);
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
    let (status, e) = srv.collect(&alice, &id).await;
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

/// The periodic sweep marks approvals past their expiry as expired in the
/// store and audits it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_expires_due_approvals() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let id = srv.ask(&alice, &refund_details(500)).await;
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
            ("client_id", json!(APPROVALS_APP)),
        ],
    );
    let olga = token_with(
        "olga",
        &[
            ("groups", json!(["tenant-owner"])),
            ("tenant", json!("acme")),
            ("client_id", json!(APPROVALS_APP)),
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

/// Asks for a refund of `amount` as `who`; the `auth_req_id`.
async fn ask_refund(srv: &Server, who: &str, amount: i64) -> String {
    let (status, ask) = srv
        .form(
            "/oauth/bc-authorize",
            who,
            &[("authorization_details", &refund_details(amount))],
        )
        .await;
    assert_eq!(status, 200, "{ask}");
    ask["auth_req_id"].as_str().expect("auth_req_id").to_owned()
}

/// A flood of approvals the approver may not decide (2,100 of another
/// requester's confirmations, newer than the refund) shortens the pages
/// but never hides the refund: the listing stops after reading 2,000 and
/// says where to go on. Bad paging parameters are refused by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_others_approvals_never_hides_one_from_its_approvers() {
    let srv = Server::start().await;
    let alice = token("alice", "payments:refund", &[]);
    let carol = approver("carol", &["finance"]);
    let refund_id = ask_refund(&srv, &alice, 500).await;

    let template = srv
        .state
        .store
        .get_approval(&refund_id)
        .await
        .expect("read")
        .expect("the refund");
    for n in 0..2100 {
        let flood = greenlight_store::NewApproval {
            id: None,
            requester: "mallory".to_owned(),
            requester_issuer: template.requester_issuer.clone(),
            client_id: template.client_id.clone(),
            action_digest: format!("flood-{n}"),
            action: "file.write".to_owned(),
            authorization_details: json!([]),
            obligation: greenlight_store::Obligation {
                approvers: vec![greenlight_store::Approver::Subject],
                ..template.obligation.clone()
            },
            binding_message: None,
            reason: None,
            policy_hash: template.policy_hash.clone(),
            expires_at: T0 + 900,
            poll_interval_seconds: 5,
            requester_tenant: None,
            requester_actor: None,
        };
        srv.state
            .store
            .create_or_get_pending(flood, T0 + 1)
            .await
            .expect("flood");
    }

    let (status, first) = srv
        .call("GET", "/v1/approvals?status=pending", Some(&carol), None)
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["approvals"], json!([]), "only others' approvals read");
    let next = first["next"].as_str().expect("where to go on").to_owned();
    let (status, second) = srv
        .call(
            "GET",
            &format!("/v1/approvals?status=pending&after={next}"),
            Some(&carol),
            None,
        )
        .await;
    assert_eq!(status, 200, "{second}");
    let ids: Vec<&str> = second["approvals"]
        .as_array()
        .expect("approvals")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(
        (ids, &second["next"]),
        (vec![refund_id.as_str()], &json!(null))
    );

    for (query, message) in [
        ("limit=0", "limit 0 is not between 1 and 200"),
        ("limit=201", "limit 201 is not between 1 and 200"),
        ("after=nope", "no approval `nope` to list after"),
    ] {
        let (status, e) = srv
            .call("GET", &format!("/v1/approvals?{query}"), Some(&carol), None)
            .await;
        assert_eq!(
            (status, e["error"].as_str(), e["error_description"].as_str()),
            (400, Some("invalid_request"), Some(message)),
            "{query}"
        );
    }
}

/// Pages of `limit` walk every approval the approver may decide, newest
/// first, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_listed_in_pages() {
    let srv = Server::start().await;
    let carol = approver("carol", &["finance"]);
    let mut asked = Vec::new();
    for (n, who) in ["alice", "bob"].iter().enumerate() {
        let t = token(who, "payments:refund", &[]);
        for amount in [500, 600, 700] {
            asked.push(ask_refund(&srv, &t, amount + i64::try_from(n).expect("n")).await);
            srv.advance(1);
        }
    }
    asked.reverse();
    let mut seen = Vec::new();
    let mut path = "/v1/approvals?limit=4".to_owned();
    loop {
        let (status, page) = srv.call("GET", &path, Some(&carol), None).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["approvals"]
                .as_array()
                .expect("approvals")
                .iter()
                .filter_map(|a| a["id"].as_str().map(str::to_owned)),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/approvals?limit=4&after={next}"),
            None => break,
        }
    }
    assert_eq!(seen, asked);
}

/// An agent acting for a person (RFC 8693 `act`) is recorded with the
/// approval, so approvers see who really asks; the person's own client
/// asks without one.
#[tokio::test]
async fn an_agent_acting_for_the_requester_is_recorded() {
    let srv = Server::start().await;
    let agent = dev(
        "carol",
        Some("payments:refund"),
        &[(
            "act",
            json!({ "sub": "agent-1", "act": { "sub": "orchestrator" } }),
        )],
        7200,
    );
    let by_agent = srv.ask(&agent, &refund_details(500)).await;
    let own = srv
        .ask(&token("dave", "payments:refund", &[]), &refund_details(500))
        .await;
    let bob = approver("bob", &["finance"]);
    for (id, actor) in [(&by_agent, json!("agent-1")), (&own, json!(null))] {
        let (status, v) = srv
            .call("GET", &format!("/v1/approvals/{id}"), Some(&bob), None)
            .await;
        assert_eq!((status, &v["requester_actor"]), (200, &actor), "{v}");
    }
    srv.stop().await;
}
