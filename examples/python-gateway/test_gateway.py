"""The refund story of the README, end to end over real HTTP: the Python
gateway (uvicorn, Starlette, the middleware, greenlight.wasm) in front of the
payments app, and the real approval service (`greenlight serve`).

Needs GREENLIGHT_BIN (the greenlight binary) and GREENLIGHT_WASM; run it with
bindings/python/test.sh.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from app import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "examples/bundle"
REFUND = "/payments/pay_123/refund"
#: The demo bundle's refund of 500 EUR on pay_123 (as tests/vectors/002).
DIGEST = "37yCphGUEolWZQHCog7QpuCi5VA8GMxvuXmGzRBmyYc"
DETAILS = [{
    "type": "urn:greenlight:action",
    "locations": ["https://api.example.com"],
    "actions": ["payment.refund"],
    "identifier": "Payment::pay_123",
    "resource": {"type": "Payment", "id": "pay_123"},
    "params": {"amount": 500, "currency": "EUR"},
    "action_digest": DIGEST,
}]
OBLIGATION = {
    "approvers": ["group:finance"],
    "quorum": 2,
    "ttl_seconds": 900,
    "grant": "once",
    "window_seconds": 0,
    "reason_required": True,
    "message": "Refund above 100: two finance approvals needed",
}
JSON_HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]


def binary() -> str:
    path = os.environ.get("GREENLIGHT_BIN")
    if not path or not Path(path).is_file():
        pytest.fail(f"GREENLIGHT_BIN must name the greenlight binary (got {path!r})", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the process serving {url} exited with {proc.returncode}", pytrace=False)
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{url} did not come up in {timeout} s", pytrace=False)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    """`greenlight serve` with a fresh SQLite store; yields its base URL."""
    port = free_port()
    tmp = tmp_path_factory.mktemp("store")
    log = open(tmp / "serve.log", "wb")  # read it when a test fails
    proc = subprocess.Popen(
        [binary(), "serve", "--dev", "--bundle", str(BUNDLE), "--store", f"sqlite://{tmp / 'gl.db'}",
         "--listen", f"127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/healthz", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def gateway(service):
    """The payments app behind the middleware, served by uvicorn in a thread."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(service_url=service), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            pytest.fail("the gateway did not start", pytrace=False)
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def dev_token(sub: str, *args: str) -> str:
    out = subprocess.run([binary(), "dev-token", "--bundle", str(BUNDLE), "--sub", sub, *args],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def bearer(token: str) -> dict:
    return {"authorization": f"Bearer {token}"}


def claims(jwt: str) -> dict:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def answer_headers(r: httpx.Response) -> list:
    return [(k, v) for k, v in r.headers.items() if k in ("www-authenticate", "content-type", "cache-control")]


def test_the_refund_story(service, gateway):
    # Alice's app (the default client, greenlight-dev) asks; bob and carol,
    # in finance, sign in to the approvals app, the one client of the demo
    # IdP whose tokens are meant for approving (`approver_clients`).
    alice = dev_token("alice", "--scope", "payments:refund")
    bob = dev_token("bob", "--client", "approvals-app", "--claim", 'groups=["finance"]')
    carol = dev_token("carol", "--client", "approvals-app", "--claim", 'groups=["finance"]')
    gw = httpx.Client(base_url=gateway, timeout=30)
    gl = httpx.Client(base_url=service, timeout=30)

    # A refund of 50 goes through; the app sees who asked, never a header the client forged.
    r = gw.post(REFUND, json={"amount": 50, "currency": "EUR"},
                headers={**bearer(alice), "x-greenlight-subject": "mallory"})
    assert r.status_code == 200
    assert r.json() == {"refunded": "pay_123", "amount": 50, "currency": "EUR", "by": "alice", "approval": None}

    # Without a token: 401 with a bare Bearer challenge.
    r = gw.get("/payments/pay_123")
    assert r.status_code == 401
    assert answer_headers(r) == [("www-authenticate", "Bearer")] + JSON_HEADERS
    assert r.json() == {"error": "invalid_token", "error_description": "no bearer token was presented",
                        "code": "token-missing"}

    # A refund of 500 needs two finance approvals: 401 with the challenge.
    r = gw.post(REFUND, json={"amount": 500, "currency": "EUR"}, headers=bearer(alice))
    assert r.status_code == 401
    assert answer_headers(r) == [
        ("www-authenticate", 'Bearer error="insufficient_authorization", error_description="approval required"'),
    ] + JSON_HEADERS
    challenge = r.json()
    assert challenge == {
        "error": "insufficient_authorization",
        "error_description": "Refund above 100: two finance approvals needed",
        "code": "approval-required",
        "authorization_details": DETAILS,
        "action_digest": DIGEST,
        "obligation": OBLIGATION,
        "ask": {"backchannel_authentication_endpoint": f"{service}/oauth/bc-authorize",
                "token_endpoint": f"{service}/oauth/token"},
    }

    # The client asks for approval (CIBA) where the challenge says.
    r = gl.post(challenge["ask"]["backchannel_authentication_endpoint"], headers=bearer(alice),
                data={"authorization_details": json.dumps(challenge["authorization_details"])})
    assert r.status_code == 200
    ask = r.json()
    # The service computes `expires_in` from the approval's expiry (now +
    # 900 when it was created) and its clock when it answers, each read on
    # the wall clock: the second may turn in between. Bounded, not exact.
    assert 899 <= ask["expires_in"] <= 900, ask
    assert ask["interval"] == 5
    approval_id = ask["auth_req_id"]
    poll = {"grant_type": "urn:openid:params:grant-type:ciba", "auth_req_id": approval_id}

    r = gl.post("/oauth/token", headers=bearer(alice), data=poll)
    assert (r.status_code, r.json()) == (400, {"error": "authorization_pending",
                                               "error_description": "the approvers have not decided yet"})

    # The app that asked cannot vote on its own request, whoever's token it
    # holds; alice cannot approve her own refund even through the approvals
    # app; bob's token held by another app is not meant for approving; bob
    # and carol from finance, through the approvals app, can.
    r = gl.post(f"/v1/approvals/{approval_id}/approve", headers=bearer(alice), json={"reason": "mine"})
    assert (r.status_code, r.json()) == (403, {
        "error": "access_denied",
        "error_description": "client `greenlight-dev` asked for this action and cannot vote on it"})
    r = gl.post(f"/v1/approvals/{approval_id}/approve", json={"reason": "mine"},
                headers=bearer(dev_token("alice", "--client", "approvals-app")))
    assert (r.status_code, r.json()) == (403, {
        "error": "access_denied",
        "error_description": "`alice` asked for this action and cannot approve their own request"})
    r = gl.post(f"/v1/approvals/{approval_id}/approve", json={"reason": "customer verified"},
                headers=bearer(dev_token("bob", "--client", "shop-backend", "--claim", 'groups=["finance"]')))
    assert (r.status_code, r.json()) == (403, {
        "error": "access_denied",
        "error_description": "a token of client `shop-backend` is not meant for approving: votes are cast "
                             "with a token from one of the issuer's approver clients or with its approval scope"})
    r = gl.post(f"/v1/approvals/{approval_id}/approve", headers=bearer(bob), json={"reason": "customer verified"})
    assert r.status_code == 200
    assert (r.json()["approve_count"], r.json()["status"]) == (1, "pending")
    r = gl.post(f"/v1/approvals/{approval_id}/approve", headers=bearer(carol),
                json={"reason": "second pair of eyes"})
    assert r.status_code == 200
    assert (r.json()["approve_count"], r.json()["status"]) == (2, "approved")

    # The client polls (after the interval) and receives its action token.
    time.sleep(5)
    r = gl.post("/oauth/token", headers=bearer(alice), data=poll)
    assert r.status_code == 200
    token = r.json()
    assert (token["token_type"], token["authorization_details"]) == ("Bearer", DETAILS)
    action_token = token["access_token"]
    jti = claims(action_token)["jti"]

    # The action token allows this one refund: the gateway has the service consume it.
    r = gw.post(REFUND, json={"amount": 500, "currency": "EUR"}, headers=bearer(action_token))
    assert r.status_code == 200
    assert r.json() == {"refunded": "pay_123", "amount": 500, "currency": "EUR", "by": "alice",
                        "approval": approval_id}

    # A second use is a replay.
    r = gw.post(REFUND, json={"amount": 500, "currency": "EUR"}, headers=bearer(action_token))
    assert r.status_code == 401
    message = f"action token `{jti}` was already used"
    assert answer_headers(r) == [
        ("www-authenticate", f'Bearer error="invalid_token", error_description="{message}"'),
    ] + JSON_HEADERS
    assert r.json() == {"error": "invalid_token", "error_description": message, "code": "action-token-replayed"}

    # The same token for another refund is refused by the engine itself.
    r = gw.post(REFUND, json={"amount": 501, "currency": "EUR"}, headers=bearer(action_token))
    assert r.status_code == 403
    assert r.json() == {"error": "access_denied", "code": "action-token-digest-mismatch", "error_description":
                        "the action token was issued for another action than `payment.refund` on `Payment::pay_123`"}
