"""The ASGI middleware in-process: what reaches the app, what the approval
service is asked and when (one-time and window action tokens, window grants,
read from typed fields; never for other decisions), that every failure of
the service denies, and that every answer is the component's.

The app is driven through httpx's ASGI transport; the approval service is an
httpx mock, so each test decides exactly what the service answers, except in
the redirect tests, where it is a loopback HTTP server (so httpx's own
network stack is what declines to follow). The clock is pinned to the
vectors' `now`, so their tokens are valid. The service URL is checked at
construction: `https://`, or `http://` on loopback only.
"""

import asyncio
import dataclasses
import http.server
import json
import shutil
import threading
from pathlib import Path

import httpx
import pytest

from greenlight import Decision, Engine
from greenlight.asgi import GreenlightMiddleware

ROOT = Path(__file__).resolve().parents[2]
SERVICE = "https://greenlight.example.com"


def vector(name: str) -> dict:
    return json.loads(next((ROOT / "tests/vectors").glob(f"{name}-*.json")).read_text(encoding="utf-8"))


ONCE = vector("058")  # a `once` action token of tests/bundles/tokens
ONCE_REQUIRED = vector("057")  # bob's base token for the same delete: approval-required, grant `once`
WINDOW = vector("066")  # a `window` action token for POST /things/t-1/share
WINDOW_REQUIRED = vector("065")  # bob's base token for that share: approval-required, grant `window`
SHARE = WINDOW["request"]["http"]["params"].encode()  # {"with":"carol"}
assert SHARE == WINDOW_REQUIRED["request"]["http"]["params"].encode()
REFUND = vector("001")  # alice's refund of 50 in the demo bundle
NOW = ONCE["now"]
assert REFUND["now"] == NOW


class Echo:
    """An ASGI app that records what it received and answers 200."""

    def __init__(self):
        self.seen = []

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        self.seen.append((scope["headers"], body))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"upstream"})


class Service:
    """A mock approval service: `jwks` and `check` are lists of answers
    (an httpx.Response or an exception), used in turn, the last repeated."""

    def __init__(self, check=(), jwks=(httpx.Response(404),)):
        self.answers = {"/v1/check": list(check), "/.well-known/jwks.json": list(jwks)}
        self.requests = []
        self.provider_requests = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answers = self.answers[request.url.path]
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def paths(self):
        return [r.url.path for r in self.requests]

    def provider(self, request: httpx.Request) -> httpx.Response:
        """The providers of the issuers whose keys the middleware fetches
        (tests/bundles/tokens: https://uri.example): none answers."""
        self.provider_requests.append(str(request.url))
        return httpx.Response(404)


def gateway(engine, bundle, service: Service, app=None, **kw):
    app = app or Echo()
    mw = GreenlightMiddleware(app, bundle_dir=bundle, service_url=SERVICE + "/", engine=engine,
                              clock=lambda: NOW, transport=httpx.MockTransport(service),
                              key_transport=httpx.MockTransport(service.provider), **kw)
    return mw, app


def call(mw, method, path, headers=(), content=None):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://api.test") as c:
            return await c.request(method, path, headers=list(headers), content=content)
    return asyncio.run(go())


def token_of(v: dict) -> str:
    return dict(v["request"]["http"]["headers"])["authorization"]


def decision_json(verdict: dict) -> httpx.Response:
    return httpx.Response(200, json={"verdict": verdict, "reasons": ["thing-delete"],
                                     "policy_hash": ONCE["expect"]["policy_hash"]})


def granted(challenge: dict, approval_id: str) -> dict:
    """The allow the service gives for a challenge it holds a window grant
    for (the Rust `Allowance::new(requester, action, Some(id), None)`)."""
    v = challenge["verdict"]
    return {"kind": "allow", "principal": v["requester"], "action": v["action"], "approval_id": approval_id,
            "consume": None, "forward_headers": [["x-greenlight-subject", v["requester"]["subject"]],
                                                 ["x-greenlight-issuer", v["requester"]["issuer"]],
                                                 ["x-greenlight-action", v["action"]["name"]],
                                                 ["x-greenlight-approval", approval_id]]}


def sent_headers(authorization: str, *more: tuple, body: bytes = b"") -> list:
    """The headers httpx sends for `call`, as the `[name, value]` pairs the
    middleware must forward to /v1/check: httpx's own, then the test's
    (`content-length` comes second without a body, last with one)."""
    length = ["content-length", str(len(body))]
    return [["host", "api.test"], *([] if body else [length]), ["accept", "*/*"],
            ["accept-encoding", "gzip, deflate"], ["connection", "keep-alive"],
            ["user-agent", f"python-httpx/{httpx.__version__}"],
            ["authorization", authorization], *[list(h) for h in more], *([length] if body else [])]


def test_an_allow_reaches_the_app_with_the_engines_headers_only(engine):
    mw, app = gateway(engine, ROOT / "examples/bundle", Service())
    body = b'{"amount":50,"currency":"EUR"}'
    r = call(mw, "POST", "/payments/pay_123/refund", [
        ("authorization", token_of(REFUND)), ("X-Greenlight-Subject", "mallory"),
        ("x-greenlight-approval", "forged"), ("x-greenlight_subject", "mallory"),
        ("content-type", "application/json")], body)
    assert (r.status_code, r.text) == (200, "upstream")
    headers, seen_body = app.seen[0]
    assert seen_body == body
    # `x-greenlight_subject` would reach a CGI-style app as X_GREENLIGHT_SUBJECT.
    greenlight = [(k, v) for k, v in headers if k.replace(b"_", b"-").startswith(b"x-greenlight-")]
    assert greenlight == [(b"x-greenlight-subject", b"alice"), (b"x-greenlight-issuer", b"https://idp.example.com"),
                          (b"x-greenlight-action", b"payment.refund")]


def test_a_body_that_is_not_json_is_not_params(engine):
    """Only a JSON (or untyped) body is the engine's `params`, as in Node: a
    JSON-looking text/plain body decides nothing (the refund route then
    misses its required amount), and a binary body reaches the app untouched
    instead of being refused as parameters that are not JSON."""
    mw, app = gateway(engine, ROOT / "examples/bundle", Service())
    r = call(mw, "POST", "/payments/pay_123/refund", [
        ("authorization", token_of(REFUND)), ("content-type", "text/plain")], b'{"amount":50,"currency":"EUR"}')
    assert (r.status_code, r.json()["code"]) == (400, "request-invalid"), r.text
    assert app.seen == []
    r = call(mw, "GET", "/payments/pay_123", [
        ("authorization", token_of(REFUND)), ("content-type", "application/octet-stream")], b"\xff\x00binary")
    assert (r.status_code, r.text) == (200, "upstream")
    assert app.seen[0][1] == b"\xff\x00binary"


def test_a_once_token_is_consumed_by_the_service_and_its_decision_wins(engine):
    # What the service answers once it consumed the token: the same allow,
    # here with other forward headers so the test sees whose decision won.
    allow = {**ONCE["expect"]["verdict"],
             "forward_headers": [["x-greenlight-subject", "bob"], ["x-greenlight-approval", "apr-1"]]}
    service = Service(check=[decision_json(allow)])
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service)
    r = call(mw, "POST", "/things/t-1/delete",
             [("authorization", token_of(ONCE)), ("x-trace", "b"), ("accept-language", "fr"), ("X-Trace", "a")])
    assert (r.status_code, r.text) == (200, "upstream")
    assert service.paths() == ["/.well-known/jwks.json", "/v1/check"]
    # The headers go as the pairs received: lower-case names, a repeated one
    # repeated in its order, never joined.
    assert json.loads(service.requests[1].content) == {
        "method": "POST", "path": "/things/t-1/delete", "query": "",
        "headers": sent_headers(token_of(ONCE), ("x-trace", "b"), ("accept-language", "fr"), ("x-trace", "a")),
        "params": None,
    }
    headers, _ = app.seen[0]
    assert [(k, v) for k, v in headers if k.startswith(b"x-greenlight-")] == [
        (b"x-greenlight-subject", b"bob"), (b"x-greenlight-approval", b"apr-1")]


def test_a_replay_reported_by_the_service_is_a_401(engine):
    deny = {"kind": "deny", "code": "action-token-replayed", "message": "action token `at-1` was already used"}
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", Service(check=[decision_json(deny)]))
    r = call(mw, "POST", "/things/t-1/delete", [("authorization", token_of(ONCE))])
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == \
        'Bearer error="invalid_token", error_description="action token `at-1` was already used"'
    assert r.json() == {"error": "invalid_token", "error_description": "action token `at-1` was already used",
                        "code": "action-token-replayed"}
    assert app.seen == []


def test_a_window_token_goes_to_the_service_and_a_revoked_approval_is_a_401(engine):
    deny = {"kind": "deny", "code": "action-token-replayed", "message": "approval `apr-1` was revoked"}
    service = Service(check=[decision_json(deny)])
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service)
    r = call(mw, "POST", "/things/t-1/share", [("authorization", token_of(WINDOW))], SHARE)
    assert service.paths() == ["/.well-known/jwks.json", "/v1/check"]
    assert json.loads(service.requests[1].content) == {
        "method": "POST", "path": "/things/t-1/share", "query": "",
        "headers": sent_headers(token_of(WINDOW), body=SHARE), "params": {"with": "carol"},
    }
    assert r.status_code == 401
    assert [(k, v) for k, v in r.headers.items() if k != "content-length"] == [
        ("www-authenticate", 'Bearer error="invalid_token", error_description="approval `apr-1` was revoked"'),
        ("content-type", "application/json"), ("cache-control", "no-store")]
    assert r.json() == {"error": "invalid_token", "error_description": "approval `apr-1` was revoked",
                        "code": "action-token-replayed"}
    assert app.seen == []


def test_a_window_token_the_service_allows_reaches_the_app(engine):
    service = Service(check=[httpx.Response(200, json=WINDOW["expect"])])
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service)
    r = call(mw, "POST", "/things/t-1/share", [("authorization", token_of(WINDOW))], SHARE)
    assert (r.status_code, r.text) == (200, "upstream")
    assert service.paths() == ["/.well-known/jwks.json", "/v1/check"]
    headers, body = app.seen[0]
    assert body == SHARE
    assert [(k, v) for k, v in headers if k.startswith(b"x-greenlight-")] == [
        (b"x-greenlight-subject", b"bob"), (b"x-greenlight-issuer", b"https://ed.example"),
        (b"x-greenlight-action", b"thing.share"), (b"x-greenlight-approval", b"apr-1")]


def test_a_window_grant_held_by_the_service_turns_approval_required_into_an_allow(engine):
    service = Service(check=[decision_json(granted(WINDOW_REQUIRED["expect"], "apr-7"))])
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service)
    r = call(mw, "POST", "/things/t-1/share",
             [("authorization", token_of(WINDOW_REQUIRED)), ("x-greenlight-approval", "forged")],
             SHARE)
    assert (r.status_code, r.text) == (200, "upstream")
    assert service.paths() == ["/.well-known/jwks.json", "/v1/check"]
    assert json.loads(service.requests[1].content) == {
        "method": "POST", "path": "/things/t-1/share", "query": "",
        "headers": sent_headers(token_of(WINDOW_REQUIRED), ("x-greenlight-approval", "forged"), body=SHARE),
        "params": {"with": "carol"},
    }
    headers, body = app.seen[0]
    assert body == SHARE
    assert [(k, v) for k, v in headers if k.startswith(b"x-greenlight-")] == [
        (b"x-greenlight-subject", b"bob"), (b"x-greenlight-issuer", b"https://ed.example"),
        (b"x-greenlight-action", b"thing.share"), (b"x-greenlight-approval", b"apr-7")]


def test_without_a_window_grant_the_services_challenge_is_answered(engine):
    answer = httpx.Response(200, json={**WINDOW_REQUIRED["expect"], "ask": {
        "backchannel_authentication_endpoint": "http://elsewhere/oauth/bc-authorize",
        "token_endpoint": "http://elsewhere/oauth/token"}})
    service = Service(check=[answer])
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service)
    r = call(mw, "POST", "/things/t-1/share", [("authorization", token_of(WINDOW_REQUIRED))], SHARE)
    assert service.paths() == ["/.well-known/jwks.json", "/v1/check"]
    expected = WINDOW_REQUIRED["response"]
    assert r.status_code == expected["status"] == 401
    assert [[k, v] for k, v in r.headers.items() if k != "content-length"] == expected["headers"]
    assert r.json() == expected["body"]
    assert app.seen == []


def test_approval_required_with_a_once_grant_is_answered_without_the_service(engine):
    service = Service()
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service)
    r = call(mw, "POST", "/things/t-1/delete", [("authorization", token_of(ONCE_REQUIRED))])
    assert service.paths() == ["/.well-known/jwks.json"]
    expected = ONCE_REQUIRED["response"]
    assert r.status_code == expected["status"] == 401
    assert [[k, v] for k, v in r.headers.items() if k != "content-length"] == expected["headers"]
    assert r.json() == expected["body"]
    assert app.seen == []


@pytest.mark.parametrize("answer, message", [
    (httpx.ConnectError("refused"), "the approval service cannot be reached: ConnectError"),
    (httpx.ReadTimeout("slow"), "the approval service cannot be reached: ReadTimeout"),
    (httpx.Response(500, json={"error": "server_error"}), "the approval service answered 500"),
    (httpx.Response(200, text="<html>"),
     "the approval service's answer is not a decision: Expecting value: line 1 column 1 (char 0)"),
    (httpx.Response(200, json={"verdict": {"kind": "allow"}, "reasons": [], "policy_hash": "h"}),
     "the approval service's answer is not a decision: the allow lacks "
     "['action', 'approval_id', 'consume', 'forward_headers', 'principal'] or has unknown []"),
    (httpx.Response(200, json={"verdict": {"kind": "deny", "code": "no-such-code", "message": ""},
                               "reasons": [], "policy_hash": "h"}),
     "the approval service's answer is not a decision: unknown denial code 'no-such-code'"),
], ids=["unreachable", "timeout", "error-status", "not-json", "not-a-decision", "unknown-code"])
@pytest.mark.parametrize("asked", [ONCE, WINDOW, WINDOW_REQUIRED], ids=["once-token", "window-token", "window-grant"])
def test_a_failing_service_denies_with_engine_unavailable(engine, answer, message, asked):
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", Service(check=[answer]))
    http = asked["request"]["http"]
    params = None if http["params"] is None else http["params"].encode()
    r = call(mw, http["method"], http["path"], [("authorization", token_of(asked))], params)
    assert r.status_code == 503
    assert [(k, v) for k, v in r.headers.items() if k != "content-length"] == [
        ("content-type", "application/json"), ("cache-control", "no-store")]
    assert r.json() == {"error": "temporarily_unavailable", "error_description": message,
                        "code": "engine-unavailable"}
    assert app.seen == []


def bundle_without_action_keys(tmp_path: Path) -> Path:
    """tests/bundles/tokens with Greenlight's keys left to the host."""
    dst = tmp_path / "bundle"
    shutil.copytree(ROOT / "tests/bundles/tokens", dst)
    (dst / "greenlight.jwks.json").unlink()
    toml = dst / "greenlight.toml"
    toml.write_text(toml.read_text().replace('jwks = "greenlight.jwks.json"\n', ""))
    return dst


def test_keys_are_fetched_again_when_a_token_names_an_unknown_key(engine, tmp_path):
    jwks = (ROOT / "tests/bundles/tokens/greenlight.jwks.json").read_text()
    service = Service(check=[httpx.Response(200, json=ONCE["expect"])],
                      jwks=[httpx.Response(503), httpx.Response(200, text=jwks)])
    mw, app = gateway(engine, bundle_without_action_keys(tmp_path), service, key_refresh_seconds=0)
    r = call(mw, "POST", "/things/t-1/delete", [("authorization", token_of(ONCE))])
    assert (r.status_code, r.text) == (200, "upstream")
    assert service.paths() == ["/.well-known/jwks.json", "/.well-known/jwks.json", "/v1/check"]


def test_key_fetches_are_rate_limited_and_an_unknown_key_is_denied(engine, tmp_path):
    service = Service(jwks=[httpx.Response(503)])
    mw, app = gateway(engine, bundle_without_action_keys(tmp_path), service, key_refresh_seconds=60)
    for _ in range(2):
        r = call(mw, "POST", "/things/t-1/delete", [("authorization", token_of(ONCE))])
        assert r.status_code == 401
        assert r.json() == {"error": "invalid_token", "code": "token-unknown-key",
                            "error_description": "no keys are loaded for issuer `https://greenlight.test`"}
    assert service.paths() == ["/.well-known/jwks.json"]
    assert app.seen == []


def test_an_unknown_key_of_a_fetched_issuer_does_not_refetch_the_service_keys(engine):
    """A `token-unknown-key` naming an issuer (one whose keys the host
    fetches from its `jwks_uri`) is about that issuer's keys: the service's
    JWKS cannot bring them, so it is not fetched again for it: the
    issuer's are (at the first request, and once more for the unknown key),
    and the denial says why they are missing."""
    unfetched = vector("056")  # a token of https://uri.example, whose provider does not answer
    service = Service(jwks=[httpx.Response(503)])
    mw, app = gateway(engine, ROOT / "tests/bundles/tokens", service, key_refresh_seconds=0)
    r = call(mw, "GET", "/things/t-1", [("authorization", token_of(unfetched))])
    assert (r.status_code, r.json()) == (401, {
        "error": "invalid_token", "code": "token-unknown-key",
        "error_description": "no keys are loaded for issuer `https://uri.example`: fetching its keys failed: "
                             "GET https://uri.example/.well-known/jwks.json: status 404"})
    assert service.paths() == ["/.well-known/jwks.json"]
    assert service.provider_requests == ["https://uri.example/.well-known/jwks.json"] * 2
    assert app.seen == []


def test_a_body_that_is_not_utf8_is_refused(engine):
    mw, app = gateway(engine, ROOT / "examples/bundle", Service())
    r = call(mw, "POST", "/payments/pay_123/refund", [("authorization", token_of(REFUND))], b"\xff\xfe")
    assert (r.status_code, r.json()) == (400, {"error": "invalid_request", "code": "request-invalid",
                                               "error_description": "the request body is not UTF-8"})
    assert app.seen == []


def test_a_body_over_the_limit_is_refused(engine):
    mw, app = gateway(engine, ROOT / "examples/bundle", Service(), max_body=16)
    r = call(mw, "POST", "/payments/pay_123/refund", [("authorization", token_of(REFUND))],
             b'{"amount":50,"currency":"EUR"}')
    assert (r.status_code, r.json()) == (400, {"error": "invalid_request", "code": "request-invalid",
                                               "error_description": "the request body is larger than 16 bytes"})
    assert app.seen == []


def test_a_decision_read_back_from_json_is_the_same_decision():
    for name in ("001", "002", "058", "011", "015", "066", "071"):
        expect = vector(name)["expect"]
        assert Decision.from_dict(expect).to_dict() == expect


def test_the_service_is_asked_on_typed_fields_never_on_a_header():
    """`needs_service` reads `consume`, `approval_id` and the grant: an
    `x-greenlight-approval` forward header without an approval id asks
    nothing, an approval id without the header asks."""
    once, window = Decision.from_dict(ONCE["expect"]), Decision.from_dict(WINDOW["expect"])
    allow = Decision.from_dict(REFUND["expect"])
    assert (once.needs_service, window.needs_service, allow.needs_service) == (True, True, False)
    header_only = dataclasses.replace(allow, verdict=dataclasses.replace(
        allow.verdict, forward_headers=(*allow.verdict.forward_headers, ("x-greenlight-approval", "apr-1"))))
    assert header_only.needs_service is False
    id_only = dataclasses.replace(window, verdict=dataclasses.replace(
        window.verdict, forward_headers=window.verdict.forward_headers[:2]))
    assert id_only.needs_service is True
    consume_only = dataclasses.replace(once, verdict=dataclasses.replace(once.verdict, approval_id=None))
    assert consume_only.needs_service is True
    challenges = [Decision.from_dict(v["expect"]) for v in (WINDOW_REQUIRED, ONCE_REQUIRED)]
    assert [c.needs_service for c in challenges] == [True, False]
    assert Decision.deny("policy-forbidden", "no", "h").needs_service is False


def test_every_answer_comes_from_the_component(hostile_path):
    """Behind the hostile module (whose `respond` passes everything
    through), a deny is answered 503 `engine-invalid-output`: the
    middleware gives the component's answer, checked, never its own."""
    mw, app = gateway(Engine(hostile_path), ROOT / "tests/bundles/tokens", Service())
    r = call(mw, "GET", "/trap")
    assert r.status_code == 503
    assert [(k, v) for k, v in r.headers.items() if k != "content-length"] == [
        ("content-type", "application/json"), ("cache-control", "no-store")]
    assert r.json() == {"error": "temporarily_unavailable", "code": "engine-invalid-output",
                        "error_description": "the policy module answered wrongly: status 0 with no body "
                                             "does not answer a deny `engine-trap`"}
    assert app.seen == []
    r = call(mw, "GET", "/ok")  # the hostile allow reaches the app
    assert (r.status_code, r.text) == (200, "upstream")


# The service URLs refused, with the exact message; bindings/js refuses the
# same ones with the same messages (tests/js/middleware.test.mjs).
REFUSED_URLS = [
    ("http://gl.internal:8080",
     "greenlight: the approval service URL http://gl.internal:8080 is plain HTTP outside loopback; use https://"),
    ("http://127.0.0.1.evil.com",
     "greenlight: the approval service URL http://127.0.0.1.evil.com is plain HTTP outside loopback; use https://"),
    ("http://localhost.evil.com:8080",
     "greenlight: the approval service URL http://localhost.evil.com:8080 is plain HTTP outside loopback; "
     "use https://"),
    ("http://[::2]:8080",
     "greenlight: the approval service URL http://[::2]:8080 is plain HTTP outside loopback; use https://"),
    # The host is evil.com: what follows `#` is the fragment.
    ("http://evil.com#@127.0.0.1",
     "greenlight: the approval service URL http://evil.com is plain HTTP outside loopback; use https://"),
    # The host is evil.com: what precedes `@` is a user name.
    ("http://127.0.0.1@evil.com",
     "greenlight: the approval service URL http://evil.com has a user name or password before its host; remove them"),
    ("http://user:secret@127.0.0.1:8080",
     "greenlight: the approval service URL http://127.0.0.1:8080 has a user name or password before its host; "
     "remove them"),
    ("https://user:secret@greenlight.example.com",
     "greenlight: the approval service URL https://greenlight.example.com has a user name or password before its "
     "host; remove them"),
    ("ftp://greenlight.example.com",
     "greenlight: the approval service URL has the scheme ftp:; use https:// (http:// only on loopback)"),
    ("file:///etc/greenlight",
     "greenlight: the approval service URL has the scheme file:; use https:// (http:// only on loopback)"),
    ("localhost:8080",
     "greenlight: the approval service URL has the scheme localhost:; use https:// (http:// only on loopback)"),
    ("greenlight.example.com",
     'greenlight: the approval service URL "greenlight.example.com" is not an absolute URL; '
     "give its base URL, such as https://greenlight.example.com"),
    ("127.0.0.1:8080",
     'greenlight: the approval service URL "127.0.0.1:8080" is not an absolute URL; '
     "give its base URL, such as https://greenlight.example.com"),
    ("",
     'greenlight: the approval service URL "" is not an absolute URL; '
     "give its base URL, such as https://greenlight.example.com"),
    ("http://",
     'greenlight: the approval service URL "http://" is not an absolute URL; '
     "give its base URL, such as https://greenlight.example.com"),
    ("http://[::1",
     'greenlight: the approval service URL "http://[::1" is not an absolute URL; '
     "give its base URL, such as https://greenlight.example.com"),
    ("http://127.0.0.1:99999",
     'greenlight: the approval service URL "http://127.0.0.1:99999" is not an absolute URL; '
     "give its base URL, such as https://greenlight.example.com"),
    ("https://greenlight.example.com/?x=1",
     "greenlight: the approval service URL https://greenlight.example.com has a query or fragment; "
     "give its base URL only"),
    ("https://greenlight.example.com/#top",
     "greenlight: the approval service URL https://greenlight.example.com has a query or fragment; "
     "give its base URL only"),
]


@pytest.mark.parametrize("url, message", REFUSED_URLS, ids=[u or "empty" for u, _ in REFUSED_URLS])
def test_a_service_url_outside_https_and_loopback_http_is_refused(engine, url, message):
    """The gateway sends the service the client's bearer tokens and takes
    from it the keys that verify action tokens: never over plain HTTP
    beyond this machine, never to a URL that only looks like loopback."""
    with pytest.raises(ValueError) as refused:
        GreenlightMiddleware(Echo(), bundle_dir=ROOT / "examples/bundle", service_url=url, engine=engine)
    assert type(refused.value) is ValueError
    assert str(refused.value) == message


def test_a_service_url_that_is_not_a_str_is_a_type_error(engine):
    with pytest.raises(TypeError) as refused:
        GreenlightMiddleware(Echo(), bundle_dir=ROOT / "examples/bundle", service_url=b"https://gl.example",
                             engine=engine)
    assert str(refused.value) == "greenlight: the approval service URL must be a str, not bytes"


@pytest.mark.parametrize("url, base", [
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
    ("http://127.0.0.2:8080", "http://127.0.0.2:8080"),
    ("http://localhost:8080", "http://localhost:8080"),
    ("http://LOCALHOST:8080", "http://localhost:8080"),
    ("http://[::1]:8080/", "http://[::1]:8080"),
    ("https://greenlight.example.com", "https://greenlight.example.com"),
    ("https://greenlight.example.com/approvals/", "https://greenlight.example.com/approvals"),
    ("HTTPS://Greenlight.Example.com:443//", "https://greenlight.example.com"),
    ("https://gl.internal:8443", "https://gl.internal:8443"),
])
def test_https_and_loopback_http_service_urls_are_accepted(engine, url, base):
    """Accepted, and kept as the parsed parts give them: trailing slashes
    and the default port dropped, the scheme and host in lower case."""
    mw = GreenlightMiddleware(Echo(), bundle_dir=ROOT / "examples/bundle", service_url=url, engine=engine)
    assert mw.service_url == base


class LoopbackServer:
    """An HTTP server on 127.0.0.1 in a thread: `routes` maps
    `(method, path)` to `(status, headers, body)`, anything else is a 404;
    `requests` records the `(method, path)` of each request received."""

    def __init__(self, routes: dict):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def answer(self):
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                server.requests.append((self.command, self.path))
                status, headers, body = routes.get((self.command, self.path), (404, {}, ""))
                raw = body.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.requests = []
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def call_over_the_network(mw, method, path, headers=()):
    """As `call`, then closes the middleware's client in the same event
    loop (its connections to the loopback servers belong to that loop)."""
    async def go():
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://api.test") as c:
                return await c.request(method, path, headers=list(headers))
        finally:
            await mw.aclose()
    return asyncio.run(go())


def test_a_redirected_key_fetch_is_not_followed(engine, tmp_path, caplog):
    """The service's JWKS answers 302 to another server that serves the
    keys that signed the token: they are not loaded, so the action token
    still names an unknown key, and the other server is never asked."""
    jwks = (ROOT / "tests/bundles/tokens/greenlight.jwks.json").read_text()
    elsewhere = LoopbackServer({("GET", "/keys.json"): (200, {"content-type": "application/json"}, jwks)})
    with elsewhere, LoopbackServer({("GET", "/.well-known/jwks.json"):
                                    (302, {"location": f"{elsewhere.url}/keys.json"}, "")}) as service:
        app = Echo()
        mw = GreenlightMiddleware(app, bundle_dir=bundle_without_action_keys(tmp_path), service_url=service.url,
                                  engine=engine, clock=lambda: NOW, key_refresh_seconds=0)
        r = call_over_the_network(mw, "POST", "/things/t-1/delete", [("authorization", token_of(ONCE))])
    assert r.status_code == 401
    assert r.json() == {"error": "invalid_token", "code": "token-unknown-key",
                        "error_description": "no keys are loaded for issuer `https://greenlight.test`"}
    # Fetched at the first request and again for the unknown key; refused both times.
    assert service.requests == [("GET", "/.well-known/jwks.json")] * 2
    assert elsewhere.requests == []
    assert [m for name, _, m in caplog.record_tuples if name == "greenlight"] == [
        f"cannot load the approval service's keys from {service.url}/.well-known/jwks.json: it answered 302"] * 2
    assert app.seen == []


def test_a_redirected_check_is_not_followed_and_denies(engine):
    """/v1/check answers 307 to another server that would allow: the
    request is denied as for any other failing status, and the other
    server never sees the request or its bearer token."""
    elsewhere = LoopbackServer({("POST", "/v1/check"): (200, {"content-type": "application/json"},
                                                        json.dumps(ONCE["expect"]))})
    with elsewhere, LoopbackServer({("POST", "/v1/check"):
                                    (307, {"location": f"{elsewhere.url}/v1/check"}, "")}) as service:
        app = Echo()
        # The bundle's own keys verify the token; the service's JWKS is a 404.
        mw = GreenlightMiddleware(app, bundle_dir=ROOT / "tests/bundles/tokens", service_url=service.url + "/",
                                  engine=engine, clock=lambda: NOW)
        r = call_over_the_network(mw, "POST", "/things/t-1/delete", [("authorization", token_of(ONCE))])
    assert r.status_code == 503
    assert r.json() == {"error": "temporarily_unavailable", "code": "engine-unavailable",
                        "error_description": "the approval service answered 307"}
    assert service.requests == [("GET", "/.well-known/jwks.json"), ("POST", "/v1/check")]
    assert elsewhere.requests == []
    assert app.seen == []
