//! `greenlight serve` over real HTTP: `GET /metrics`: decisions, approvals, latency.

use common::server::*;

mod common;

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
