"""nginx `auth_request`, Caddy `forward_auth` and Envoy `ext_authz` in
front of `greenlight serve`: each proxy, as configured in its example,
gives the client Greenlight's answer and lets through only what Greenlight
allowed, exactly once where the approval says once."""

import base64
import json
import time
from pathlib import Path

from conftest import ROOT, form, http

APPROVAL_CHALLENGE = 'Bearer error="insufficient_authorization", error_description="approval required"'
GATEWAY_HEADERS = ["x-greenlight-subject", "x-greenlight-issuer", "x-greenlight-action", "x-greenlight-approval"]


def gateway_headers(call):
    """The x-greenlight-* headers the API received (`_` read as `-`)."""
    return {k: v for k, v in call["headers"] if k.replace("_", "-").startswith("x-greenlight-")}


def refused(got, status, code, message):
    """A refusal at the proxy: its status, denial code and message."""
    got_status, _, body = got
    assert (got_status, body["code"], body["error_description"]) == (status, code, message), body


def jti(token):
    """The `jti` of a compact JWS: the id a replay names."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]


def test_an_allow_reaches_the_api_once_with_who_acts(stack):
    alice = stack.token("alice", "payments:read")
    status, _, body = stack.through("GET", "/payments/pay_1", alice)
    assert (status, body) == (200, {"payment": "pay_1", "amount": 1000, "currency": "EUR"})
    [call] = stack.calls()
    assert (call["method"], call["path"]) == ("GET", "/payments/pay_1")
    assert gateway_headers(call) == {
        "x-greenlight-subject": "alice",
        "x-greenlight-issuer": "https://idp.example.com",
        "x-greenlight-action": "payment.read",
    }


def test_a_client_cannot_pass_for_the_gateway(stack):
    """A client's own x-greenlight-* header never reaches the API. The
    sidecar refuses it (not every proxy can strip a prefix; nginx drops
    names with `_` itself); the filter inside Envoy strips it."""
    mallory = stack.token("mallory", "payments:read")
    mallory_headers = {
        "x-greenlight-subject": "mallory",
        "x-greenlight-issuer": "https://idp.example.com",
        "x-greenlight-action": "payment.read",
    }
    for name in ["X-Greenlight-Subject", "X-Greenlight-Approval", "X-Greenlight-Foo", "X-Greenlight_Subject"]:
        stack.reset()
        status, _, body = stack.through("GET", "/payments/pay_1", mallory, {name: "alice"})
        if "_" in name and stack.proxy.startswith("envoy"):
            # The Envoy examples refuse header names with `_` themselves.
            assert status == 400, body
            assert stack.calls() == []
        elif stack.proxy == "envoy-wasm" or (stack.proxy == "nginx" and "_" in name):
            assert status == 200, body
            [call] = stack.calls()
            assert gateway_headers(call) == mallory_headers
        else:
            refused((status, None, body), 400, "request-invalid",
                    f"the request carries `{name.lower()}`, a header only the gateway sets")
            assert stack.calls() == []


def test_the_original_request_cannot_be_spoofed(stack):
    """The proxy names the original method and URI, overwriting a client's
    attempt to describe a harmless read instead of its refund."""
    alice = stack.token("alice", "payments:read payments:refund")
    spoof = {"X-Forwarded-Method": "GET", "X-Forwarded-Uri": "/payments/pay_1",
             "X-Original-URI": "/payments/pay_1"}
    refused(stack.refund("pay_1", 500, alice, spoof), 401, "approval-required",
            "Refund above 100: two finance approvals needed")
    assert stack.calls() == []


def test_approval_required_then_one_refund_with_the_action_token(stack):
    alice = stack.token("alice", "payments:refund")
    status, headers, body = stack.refund("pay_1", 500, alice)
    assert status == 401, body
    assert dict(headers)["www-authenticate"] == APPROVAL_CHALLENGE
    assert dict(headers)["cache-control"] == "no-store"
    assert body["code"] == "approval-required"
    assert body["error"] == "insufficient_authorization"
    assert body["error_description"] == "Refund above 100: two finance approvals needed"
    assert body["authorization_details"] == [{
        "type": "urn:greenlight:action", "locations": ["https://api.example.com"],
        "actions": ["payment.refund"], "identifier": "Payment::pay_1",
        "resource": {"type": "Payment", "id": "pay_1"},
        "params": {"amount": 500, "currency": "EUR"}, "action_digest": body["action_digest"]}]
    assert body["obligation"]["approvers"] == ["group:finance"]
    assert body["obligation"]["quorum"] == 2
    assert stack.calls() == []

    # Ask where the challenge says, as the challenge says.
    ask = body["ask"]
    assert ask["backchannel_authentication_endpoint"] == f"{stack.service_url}/oauth/bc-authorize"
    status, asked = form(ask["backchannel_authentication_endpoint"],
                         {"authorization_details": json.dumps(body["authorization_details"])}, alice)
    assert status == 200, asked
    approval = asked["auth_req_id"]
    for who in ["bob", "carol"]:
        approver = stack.token(who, client="approvals-app", claims=['groups=["finance"]'])
        status, _, v = http("POST", f"{stack.service_url}/v1/approvals/{approval}/approve",
                            {"authorization": f"Bearer {approver}"}, {"reason": "customer called"})
        assert status == 200, v
    status, t = form(ask["token_endpoint"], {"grant_type": "urn:openid:params:grant-type:ciba",
                                              "auth_req_id": approval}, alice)
    assert status == 200, t
    action = t["access_token"]

    # The token is for this refund only: another amount or payment is refused.
    for payment, amount in [("pay_1", 600), ("pay_2", 500)]:
        refused(stack.refund(payment, amount, action), 403, "action-token-digest-mismatch",
                f"the action token was issued for another action than `payment.refund` on `Payment::{payment}`")
    assert stack.calls() == []

    status, _, body = stack.refund("pay_1", 500, action)
    assert status == 200, body
    assert body == {"refunded": 500, "currency": "EUR", "payment": "pay_1", "by": "alice", "approval": approval}
    # Replayed: refused at the proxy, the API saw exactly one refund.
    status, headers, body = stack.refund("pay_1", 500, action)
    assert status == 401, body
    assert body["code"] == "action-token-replayed"
    assert body["error_description"] == f"action token `{jti(action)}` was already used"
    assert dict(headers)["www-authenticate"].startswith('Bearer error="invalid_token"')
    [call] = stack.calls()
    assert gateway_headers(call) == {
        "x-greenlight-subject": "alice",
        "x-greenlight-issuer": "https://idp.example.com",
        "x-greenlight-action": "payment.refund",
        "x-greenlight-approval": approval,
    }


def test_bad_tokens_are_refused_at_the_proxy(stack):
    now = int(time.time())
    alice, mallory = stack.token("alice", "payments:read"), stack.token("mallory", "payments:read")
    cases = [
        (None, 401, "token-missing", "no bearer token was presented"),
        (stack.token("alice", "payments:read", ttl=60, now=now - 3600), 401, "token-expired",
         f"the token expired at {now - 3600 + 60}"),
        (stack.token("alice", "payments:read", claims=["aud=https://other.example.com"]), 401,
         "token-wrong-audience", "the audience does not include `https://api.example.com`"),
        # alice's claims under mallory's signature.
        (alice.rsplit(".", 1)[0] + "." + mallory.rsplit(".", 1)[1], 401, "token-bad-signature",
         "the signature does not verify"),
        (stack.token("alice", "files:write"), 403, "policy-no-permit",
         "no policy permits `payment.read` on `Payment::pay_1`"),
    ]
    for token, status, code, message in cases:
        got = stack.through("GET", "/payments/pay_1", token)
        refused(got, status, code, message)
        if status == 401:
            assert dict(got[1])["www-authenticate"].startswith("Bearer")
    assert stack.calls() == []


def test_another_tenants_data_is_refused_at_the_proxy(stack):
    """A tenant admin of acme asks to delete a user's data in globex: the
    tenant-isolation policy forbids it before anyone is asked; in acme it
    is held for the tenant owner."""
    admin = stack.token("erin", claims=['roles=["tenant-admin"]', 'tenant="acme"'])
    refused(stack.through("DELETE", "/tenants/globex/users/u-42/data", admin), 403, "policy-forbidden",
            "`user-data.delete` on `TenantUser::globex/u-42` is forbidden by policy `tenant-isolation`")
    status, _, body = stack.through("DELETE", "/tenants/acme/users/u-42/data", admin)
    assert (status, body["code"], body["obligation"]["approvers"]) == \
        (401, "approval-required", ["group:tenant-owner@tenant"]), body
    assert stack.calls() == []


def test_a_route_not_in_the_bundle_is_refused(stack):
    alice = stack.token("alice", "payments:read")
    refused(stack.through("GET", "/_upstream/calls", alice), 403, "route-not-found",
            "no route for `GET /_upstream/calls`")
    assert stack.calls() == []


def test_body_parameters_behind_a_proxy_that_forwards_no_body(stack):
    """nginx and Caddy forward no body: the demo's body-bound refund is
    refused (the amount is missing), never guessed. The query-bound bundle
    sees a body-only refund the same way."""
    alice = stack.token("alice", "payments:refund")
    status, _, body = stack.through("POST", "/payments/pay_1/refund", alice,
                                    body={"amount": 50, "currency": "EUR"})
    if stack.params == "query":
        refused((status, None, body), 400, "request-invalid", "parameter `amount` is required")
        assert stack.calls() == []
    else:
        # Envoy forwards the body: a small refund passes on the scope.
        assert status == 200, body
        assert len(stack.calls()) == 1


def test_the_service_stopped_fails_closed(stack):
    """Stop the service: the sidecars refuse everything; the filter still
    decides what needs no state (a plain read), and refuses what does (a
    once-only action token), never passing it unconsumed."""
    alice = stack.token("alice", "payments:read")
    action = stack.exchanged("pay_1", 50)
    assert stack.through("GET", "/payments/pay_1", alice)[0] == 200
    stack.reset()
    stack.stop_service()
    status, _, body = stack.through("GET", "/payments/pay_1", alice)
    if stack.proxy == "envoy-wasm":
        assert status == 200, body
        assert len(stack.calls()) == 1
        stack.reset()
    else:
        expected = {"nginx": 503, "caddy": 502, "envoy-ext-authz": 503}[stack.proxy]
        assert status == expected, body
        if stack.proxy == "nginx":
            assert body["code"] == "engine-unavailable"
            assert body["error_description"] == "the approval service cannot be reached"
    status, _, body = stack.refund("pay_1", 50, action)
    expected = {"nginx": 503, "caddy": 502, "envoy-ext-authz": 503, "envoy-wasm": 503}[stack.proxy]
    assert status == expected, body
    if stack.proxy == "nginx":
        assert body["code"] == "engine-unavailable"
        assert body["error_description"] == "the approval service cannot be reached"
    if stack.proxy == "envoy-wasm":
        # Envoy answers the filter's call to a dead cluster itself, 503.
        assert body["code"] == "engine-unavailable"
        assert body["error_description"] == "the approval service answered 503"
    assert stack.calls() == []


def test_the_query_bundle_differs_from_the_demo_only_in_its_config():
    demo, edge = ROOT / "examples/bundle", ROOT / "examples/edge/bundle"
    for name in ["policy.cedar", "schema.cedarschema", "idp.jwks.json", "dev/idp-dev.key.pem"]:
        assert (demo / name).read_bytes() == (edge / name).read_bytes(), name
    assert sorted(p.name for p in edge.iterdir()) == sorted(p.name for p in demo.iterdir())
    # Its tests are the demo's, the refunds' amounts in the query.
    tests = lambda p: [l for l in Path(p).read_text().splitlines() if not l.startswith("#")]
    a, b = tests(demo / "tests/demo.toml"), tests(edge / "tests/demo.toml")
    assert [(x, y) for x, y in zip(a, b) if x != y] == [
        (f'http = {{ method = "POST", path = "/payments/pay_123/refund", params = {{ amount = {n}, currency = "EUR" }} }}',
         f'http = {{ method = "POST", path = "/payments/pay_123/refund", query = "amount={n}&currency=EUR" }}')
        for n in (50, 500, 20000, 50, 50)] and len(a) == len(b)
    strip = lambda p: [l for l in Path(p).read_text().splitlines() if l and not l.startswith("#")]
    a, b = strip(demo / "greenlight.toml"), strip(edge / "greenlight.toml")
    diff = [(x, y) for x, y in zip(a, b) if x != y]
    assert len(a) == len(b)
    assert diff == [
        ('params.amount = { from = "body.amount", type = "long" }',
         'params.amount = { from = "query.amount", type = "long" }'),
        ('params.currency = { from = "body.currency", type = "string" }',
         'params.currency = { from = "query.currency", type = "string" }'),
    ]


def test_the_filter_example_carries_the_demo_bundle_as_it_is():
    """examples/envoy-wasm/envoy.yaml holds the demo bundle inline, in the
    filter's TOML configuration: file for file the same as examples/bundle."""
    import textwrap
    import tomllib
    yaml = (ROOT / "examples/envoy-wasm/envoy.yaml").read_text()
    start = yaml.index("value: |\n") + len("value: |\n")
    end = yaml.index("          - name: envoy.filters.http.router")
    config = tomllib.loads(textwrap.dedent(yaml[start:end]))
    demo = ROOT / "examples/bundle"
    assert config["bundle"] == {
        name: (demo / name).read_text()
        for name in ["greenlight.toml", "policy.cedar", "schema.cedarschema", "idp.jwks.json"]
    }
    assert config["service"] == {"cluster": "greenlight", "authority": "127.0.0.1:8080",
                                 "url": "http://127.0.0.1:8080", "timeout_ms": 2000}
    assert config["development"] is True
    assert "test_fixed_now" not in config
