//! The demo bundle's verdicts: refunds, reads, file writes, tenant deletion.

use super::*;

/// Adds this group's vectors, in order.
pub fn add(ctx: &Ctx, v: &mut Vectors) {
    let idp = &ctx.idp;
    let good = ctx.good.clone();
    let alice = ctx.alice.clone();
    v.add(
        "demo-refund-50-allowed",
        "a refund of 50 is within the client's own scope",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(50)),
        ),
        allow(
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(50)),
            Value::Null,
            None,
        ),
        vec!["refund-small"],
    );
    v.add(
        "demo-refund-500-needs-finance",
        "a refund of 500 needs two finance approvals, once",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(500)),
        ),
        challenge(
            API,
            alice.clone(),
            action("payment.refund", "Payment", "pay_123", refund(500)),
            refund_obligation(),
        ),
        vec!["refund-large"],
    );
    v.add(
        "demo-refund-over-limit-forbidden",
        "a refund above 10000 is forbidden even with approval",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(20000)),
        ),
        deny(
            "policy-forbidden",
            "`payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`",
        ),
        vec!["refund-limit"],
    );
    v.add(
        "demo-refund-negative-forbidden",
        "a negative refund is forbidden",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(refund(-5)),
        ),
        deny(
            "policy-forbidden",
            "`payment.refund` on `Payment::pay_123` is forbidden by policy `refund-limit`",
        ),
        vec!["refund-limit"],
    );
    let no_scope = idp.sign("at+jwt", &demo_claims(json!({ "scope": "payments:read" })));
    v.add(
        "demo-refund-without-scope-no-permit",
        "without payments:refund no policy permits a refund",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&no_scope),
            Some(refund(50)),
        ),
        deny(
            "policy-no-permit",
            "no policy permits `payment.refund` on `Payment::pay_123`",
        ),
        vec![],
    );
    v.add(
        "demo-refund-amount-string-invalid",
        "an amount sent as a string is refused, not coerced",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!({ "amount": "500", "currency": "EUR" })),
        ),
        deny(
            "request-invalid",
            "parameter `amount` must be an integer, got `\"500\"`",
        ),
        vec![],
    );
    v.add(
        "demo-refund-missing-currency-invalid",
        "a required parameter that is absent is refused",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!({ "amount": 50 })),
        ),
        deny("request-invalid", "parameter `currency` is required"),
        vec![],
    );
    v.add(
        "demo-refund-params-not-object-invalid",
        "request parameters must be a JSON object",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!("[1,2]")),
        ),
        deny(
            "request-invalid",
            "the request parameters must be a JSON object",
        ),
        vec![],
    );
    v.add(
        "demo-refund-params-not-json-invalid",
        "request parameters that are not JSON are refused",
        DEMO,
        http(
            "POST",
            "/payments/pay_123/refund",
            Some(&good),
            Some(json!("{\"amount\": 5")),
        ),
        deny(
            "request-invalid",
            "the request parameters are not valid JSON: EOF while parsing an object at line 1 column 12",
        ),
        vec![],
    );
    v.add(
        "demo-payment-read-allowed",
        "reading a payment needs only payments:read",
        DEMO,
        http("GET", "/payments/pay_123", Some(&good), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_123", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );
    v.add(
        "demo-unknown-route-denied",
        "a path no route matches is denied (fail closed)",
        DEMO,
        http("GET", "/admin/users", Some(&good), None),
        deny("route-not-found", "no route for `GET /admin/users`"),
        vec![],
    );
    v.add(
        "demo-wrong-method-denied",
        "a known path with another method matches no route",
        DEMO,
        http("DELETE", "/payments/pay_123", Some(&good), None),
        deny("route-not-found", "no route for `DELETE /payments/pay_123`"),
        vec![],
    );
    v.add(
        "demo-file-write-needs-user-confirmation",
        "writing the user's own file needs that user's confirmation, for a window",
        DEMO,
        http(
            "PUT",
            "/users/alice/files/report.txt/content",
            Some(&good),
            None,
        ),
        challenge(
            API,
            alice.clone(),
            action(
                "file.write",
                "File",
                "report.txt",
                json!({ "owner": "alice" }),
            ),
            json!({
            "approvers": ["subject"], "quorum": 1, "ttl_seconds": 300, "grant": "window",
            "window_seconds": 300, "reason_required": false,
            "message": "Allow this app to write the file you selected?" }),
        ),
        vec!["file-write-confirm"],
    );
    v.add(
        "demo-file-write-other-user-forbidden",
        "a client may not write another user's file",
        DEMO,
        http(
            "PUT",
            "/users/mallory/files/report.txt/content",
            Some(&good),
            None,
        ),
        deny(
            "policy-forbidden",
            "`file.write` on `File::report.txt` is forbidden by policy `file-owner-only`",
        ),
        vec!["file-owner-only"],
    );
    let admin_claims = demo_claims(
        json!({ "sub": "dana", "roles": ["tenant-admin"], "tenant": "acme", "scope": null }),
    );
    let admin = idp.sign("at+jwt", &admin_claims);
    v.add(
        "demo-tenant-delete-needs-owner",
        "a tenant admin deleting a user's data needs the tenant owner",
        DEMO,
        http(
            "DELETE",
            "/tenants/acme/users/u-42/data",
            Some(&admin),
            None,
        ),
        challenge(
            API,
            principal(&admin_claims),
            action(
                "user-data.delete",
                "TenantUser",
                "acme/u-42",
                json!({ "tenant": "acme" }),
            ),
            json!({
            "approvers": ["group:tenant-owner@tenant"], "quorum": 1, "ttl_seconds": 3600, "grant": "once",
            "window_seconds": 0, "reason_required": true,
            "message": "A tenant admin asks to delete a user's data" }),
        ),
        vec!["tenant-data-delete"],
    );
    v.add(
        "demo-tenant-delete-cross-tenant-forbidden",
        "an admin of one tenant cannot touch another tenant",
        DEMO,
        http(
            "DELETE",
            "/tenants/globex/users/u-42/data",
            Some(&admin),
            None,
        ),
        deny(
            "policy-forbidden",
            "`user-data.delete` on `TenantUser::globex/u-42` is forbidden by policy `tenant-isolation`",
        ),
        vec!["tenant-isolation"],
    );
    let member = idp.sign(
        "at+jwt",
        &demo_claims(json!({ "sub": "erin", "tenant": "acme", "scope": null })),
    );
    v.add(
        "demo-tenant-delete-non-admin-no-permit",
        "a tenant member without the admin role gets no permit",
        DEMO,
        http(
            "DELETE",
            "/tenants/acme/users/u-42/data",
            Some(&member),
            None,
        ),
        deny(
            "policy-no-permit",
            "no policy permits `user-data.delete` on `TenantUser::acme/u-42`",
        ),
        vec![],
    );
    v.add(
        "demo-percent-encoded-path",
        "path parameters are percent-decoded before they name the resource",
        DEMO,
        http("GET", "/payments/pay%5F9", Some(&good), None),
        allow(
            alice.clone(),
            action("payment.read", "Payment", "pay_9", json!({})),
            Value::Null,
            None,
        ),
        vec!["payment-read"],
    );
}

/// Requests a proxy and the application behind it could read as two
/// different requests: refused whatever else they carry. Added last, so
/// they are numbered after every other vector.
pub fn add_ambiguous(ctx: &Ctx, v: &mut Vectors) {
    let good = &ctx.good;
    for (name, description, request, message) in [
        (
            "demo-refund-without-body-invalid",
            "a route that reads body parameters needs a JSON body: none is refused, never decided on defaults",
            http("POST", "/payments/pay_123/refund", Some(good), None),
            "the route reads parameters from a JSON body, and the request has none",
        ),
        (
            "demo-refund-repeated-member-invalid",
            "a parameter named twice is refused: parsers that keep different copies would act on different amounts",
            http(
                "POST",
                "/payments/pay_123/refund",
                Some(good),
                Some(json!(
                    "{\"amount\":50,\"currency\":\"EUR\",\"amount\":50000}"
                )),
            ),
            "the request parameters name `amount` more than once",
        ),
        (
            "demo-dot-segment-invalid",
            "a `..` segment, even percent-encoded, is refused: servers resolve it differently",
            http("GET", "/payments/%2E%2e", Some(good), None),
            "the path has a `.` or `..` segment, which servers resolve differently",
        ),
        (
            "demo-path-semicolon-invalid",
            "a `;` in the path is refused: some servers cut it off as path parameters",
            http("GET", "/payments/pay_123;jsessionid=x", Some(good), None),
            "the path has a `;`, which some servers read as path parameters",
        ),
    ] {
        v.extra.push(Vector {
            name,
            description,
            bundle: DEMO,
            keys: Vec::new(),
            request,
            verdict: deny("request-invalid", message),
            reasons: Vec::new(),
        });
    }
}
