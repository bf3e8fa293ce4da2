"""Issuers' keys from their providers (`greenlight.keys.KeySources`, owned by
the ASGI middleware), as crates/server/tests/provider_keys.rs tests
`greenlight serve`: a stand-in OpenID provider on loopback (a discovery
document and a JWKS, counting every fetch; a threaded HTTP server in this
process), an injected clock driving freshness, and real HTTP between them.
Discovery and the first fetch, a rotation found by an unknown `kid`, a
flood of made-up `kid`s, failed fetches that keep the last good keys,
staleness that fails closed, recovery; then the URL checks and the
freshness rules, as the Rust unit tests of fetch.rs.

The tokens are RS256, signed here with the RSA keys of RFC 7515 A.2 and
RFC 7520 §3.4 (tests/jose): no crypto package is needed.
"""

import asyncio
import base64
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import httpx
import pytest

from greenlight import Allow, Deny, HttpRequest, KeyFetchSettings, KeySources
from greenlight.asgi import GreenlightMiddleware
from greenlight.keys import check_url, freshness

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000
AUD = "https://api.example.com"


def b64u(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64d(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class Key:
    """One of the provider's RS256 signing keys."""

    def __init__(self, kid: str, source: str):
        jwk = json.loads((ROOT / "tests/jose" / source).read_text(encoding="utf-8"))["jwk"]
        self.kid = kid
        self.n = int.from_bytes(b64d(jwk["n"]), "big")
        self.d = int.from_bytes(b64d(jwk["d"]), "big")
        self.public = {"kty": "RSA", "kid": kid, "n": jwk["n"], "e": jwk["e"]}

    def sign(self, data: bytes) -> bytes:
        """RSASSA-PKCS1-v1_5 with SHA-256 (RFC 8017 §8.2)."""
        k = (self.n.bit_length() + 7) // 8
        t = bytes.fromhex("3031300d060960864801650304020105000420") + hashlib.sha256(data).digest()
        em = b"\x00\x01" + b"\xff" * (k - len(t) - 3) + b"\x00" + t
        return pow(int.from_bytes(em, "big"), self.d, self.n).to_bytes(k, "big")

    def token(self, issuer: str, sub: str, kid: "str | None" = None) -> str:
        """An access token for `sub`, issued at T0 for two hours, with this
        key's `kid` (or `kid`)."""
        header = {"alg": "RS256", "typ": "at+jwt", "kid": kid or self.kid}
        claims = {"iss": issuer, "aud": AUD, "sub": sub, "client_id": "shop", "iat": T0, "exp": T0 + 7200,
                  "scope": "docs:read"}
        signing_input = f"{b64u(json.dumps(header).encode())}.{b64u(json.dumps(claims).encode())}"
        return f"{signing_input}.{b64u(self.sign(signing_input.encode()))}"


class Provider:
    """The stand-in provider: `/.well-known/openid-configuration` and
    `/jwks`, whose answer `set` changes: ("keys", [jwk...], cache-control
    or None), ("status", n), ("huge",) (10 MB of JSON with its length),
    ("huge-unsized",) (10 MB with no Content-Length), ("garbage",), ("raw",
    text) (that text as JSON); `jwks_uri` replaces the one its discovery
    document names."""

    def __init__(self, answer):
        self.answer = answer
        self.discoveries = 0
        self.fetches = 0
        self.jwks_uri = None
        self.lock = threading.Lock()
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def send(self, status, body: bytes, headers=(), sized=True):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                if sized:
                    self.send_header("content-length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading, as it should

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    with provider.lock:
                        provider.discoveries += 1
                    doc = {"issuer": provider.base, "jwks_uri": provider.jwks_uri or f"{provider.base}/jwks"}
                    return self.send(200, json.dumps(doc).encode(), [("content-type", "application/json")])
                if self.path != "/jwks":
                    return self.send(404, b"")
                with provider.lock:
                    provider.fetches += 1
                    answer = provider.answer
                kind = answer[0]
                if kind == "keys":
                    headers = [("content-type", "application/json")]
                    if answer[2] is not None:
                        headers.append(("cache-control", answer[2]))
                    return self.send(200, json.dumps({"keys": answer[1]}).encode(), headers)
                if kind == "status":
                    return self.send(answer[1], b"", [("location", f"{provider.base}/elsewhere")])
                if kind == "raw":
                    return self.send(200, answer[1].encode(), [("content-type", "application/json")])
                if kind in ("huge", "huge-unsized"):
                    body = b'{"keys":[],"pad":"' + b"x" * 10_000_000 + b'"}'
                    return self.send(200, body, [("content-type", "application/json")], sized=kind == "huge")
                return self.send(200, b"<html>not a key set</html>", [("content-type", "text/plain")])

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def set(self, answer):
        with self.lock:
            self.answer = answer

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def keys():
    return Key("k1", "rfc7515_A2_RS256.json"), Key("k2", "rfc7520_4_1_RS256.json")


@pytest.fixture
def provider():
    made = []

    def make(answer):
        p = Provider(answer)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


def bundle(tmp: Path, issuer: str, jwks_uri: "str | None" = None) -> Path:
    """A bundle whose one issuer is `issuer`, its keys found by discovery
    (or at `jwks_uri`), plain HTTP allowed to loopback."""
    uri = f'jwks_uri = "{jwks_uri}"\n' if jwks_uri else ""
    (tmp / "greenlight.toml").write_text(f"""
[[issuers]]
issuer = "{issuer}"
audience = "{AUD}"
algorithms = ["RS256"]
{uri}
[key_fetch]
allow_http_loopback = true
min_age_seconds = 60
max_age_seconds = 3600
max_stale_seconds = 600
unknown_kid_interval_seconds = 30

[action_tokens]
issuer = "https://greenlight.example.com"
audience = "{AUD}"

[[routes]]
method = "GET"
path = "/docs/{{id}}"
action = "doc.read"
resource = {{ type = "Doc", id = "{{id}}" }}
""", encoding="utf-8")
    (tmp / "policy.cedar").write_text(
        '@id("read") permit (principal, action == Action::"doc.read", resource);\n', encoding="utf-8")
    return tmp


class App:
    """An ASGI app that answers lifespan and every HTTP request (200)."""

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                m = await receive()
                if m["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        subject = dict(scope["headers"]).get(b"x-greenlight-subject", b"").decode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": subject.encode()})


class Gateway:
    """The middleware in front of `App`, its clock at `self.now`, started
    and stopped through ASGI lifespan (as an ASGI server does)."""

    def __init__(self, engine, bundle_dir: Path):
        self.now = T0
        self.mw = GreenlightMiddleware(App(), bundle_dir=bundle_dir, service_url="https://greenlight.example.com",
                                       engine=engine, clock=lambda: self.now,
                                       transport=httpx.MockTransport(lambda r: httpx.Response(404)))

    async def __aenter__(self):
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.create_task(self.mw({"type": "lifespan"}, self.inbox.get, self.outbox.put))
        await self.inbox.put({"type": "lifespan.startup"})
        assert (await asyncio.wait_for(self.outbox.get(), 30))["type"] == "lifespan.startup.complete"
        return self

    async def __aexit__(self, *exc):
        await self.inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self.task, 30)

    def advance(self, seconds: int):
        self.now += seconds

    def health(self) -> list:
        return self.mw.keys.health()

    async def read(self, token: str):
        """The middleware's decision on `GET /docs/d1` with `token`:
        "allow", or the denial's (code, message, issuer)."""
        request = HttpRequest("GET", "/docs/d1", "", (("authorization", f"Bearer {token}"),), None)
        v = (await self.mw.decide(request)).verdict
        if isinstance(v, Allow):
            return "allow"
        assert isinstance(v, Deny), v
        return (v.code, v.message, v.issuer)

    async def wait_for(self, what: str, done) -> list:
        """Polls `health()` until `done` holds (the background refresh looks
        at the clock every second)."""
        for _ in range(200):
            h = self.health()
            if done(h):
                return h
            await asyncio.sleep(0.05)
        pytest.fail(f"waited 10 s for {what}: {self.health()}")


def unknown(message: str, issuer: str):
    return ("token-unknown-key", message, issuer)


def test_discovery_then_rotation_through_an_unknown_kid(engine, tmp_path, provider, keys):
    """Discovery finds the key set; a token signed by a key published later
    is accepted at once (its unknown `kid` fetches the set again); a flood
    of made-up `kid`s costs at most one fetch per `unknown_kid_interval`; a
    key the provider removed stops verifying once the set is refreshed."""
    k1, k2 = keys
    idp = provider(("keys", [k1.public], None))
    iss = idp.base

    async def scenario():
        async with Gateway(engine, bundle(tmp_path, iss)) as gw:
            assert gw.health() == [{
                "issuer": iss, "source": "discovery", "jwks_uri": f"{iss}/jwks", "keys": True, "kids": ["k1"],
                "age_seconds": 0, "fresh_for_seconds": 60, "last_error": None}]
            assert gw.mw.keys.all_loaded()
            assert (idp.discoveries, idp.fetches) == (1, 1)
            assert await gw.read(k1.token(iss, "alice")) == "allow"

            # The provider publishes k2 and signs with it: twenty requests at
            # once with the new kid all pass (those arriving during the fetch
            # wait for it), for one fetch.
            idp.set(("keys", [k1.public, k2.public], None))
            verdicts = await asyncio.gather(*(gw.read(k2.token(iss, f"user-{i}")) for i in range(20)))
            assert verdicts == ["allow"] * 20
            assert idp.fetches == 2, "one fetch for the new kid"

            # Made-up kids: denied, and no fetch within the interval.
            for i in range(50):
                kid = f"made-up-{i}"
                assert await gw.read(k1.token(iss, "mallory", kid)) == unknown(f"no key with kid `{kid}`", iss)
            assert idp.fetches == 2, "a flood of unknown kids fetched nothing more"
            gw.advance(31)
            for i in range(50):
                kid = f"again-{i}"
                assert await gw.read(k1.token(iss, "mallory", kid)) == unknown(f"no key with kid `{kid}`", iss)
            assert idp.fetches == 3, "one fetch per interval, however many kids"

            # k1 is removed; the background refresh (at 3/4 of 60 s) drops it.
            idp.set(("keys", [k2.public], None))
            gw.advance(46)
            await gw.wait_for("k1 to be gone", lambda h: h[0]["kids"] == ["k2"])
            assert idp.fetches == 4
            assert await gw.read(k1.token(iss, "alice")) == unknown("no key with kid `k1`", iss)
            assert await gw.read(k2.token(iss, "alice")) == "allow"
            assert idp.discoveries == 1

    asyncio.run(scenario())


def test_failed_fetches_keep_the_last_keys_until_they_are_too_stale(engine, tmp_path, provider, keys):
    """Fetches that fail (a 500, a redirect, 10 MB with or without its
    length, not JSON, a private key, a shared secret) keep the last good
    keys serving; past the allowed staleness the keys are withdrawn and
    tokens are denied saying why; a working fetch brings them back."""
    k1, _ = keys
    idp = provider(("keys", [k1.public], "public, max-age=120"))
    iss = idp.base
    jwks_url = f"{iss}/jwks"
    private = {**k1.public, "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}
    oct_key = {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "kid": "s"}
    shared_secret = (f"the key set was refused: issuer `{iss}` does not allow HS256, so its keys cannot include a "
                     "shared secret")
    cases = [
        (("status", 500), f"GET {jwks_url}: status 500"),
        (("status", 302), f"GET {jwks_url}: status 302"),
        (("huge",), f"GET {jwks_url}: the body is larger than 524288 bytes"),
        (("huge-unsized",), f"GET {jwks_url}: the body is larger than 524288 bytes"),
        (("garbage",), f"GET {jwks_url}: not JSON: Expecting value: line 1 column 1 (char 0)"),
        (("keys", [private], None),
         f"the key set was refused: jwks of `{iss}`: key 0: a key set holds public keys only, and this key has "
         "the private member `d`"),
        (("keys", [oct_key], None), shared_secret),
    ]

    async def scenario():
        async with Gateway(engine, bundle(tmp_path, iss)) as gw:
            token = k1.token(iss, "alice")
            assert gw.health()[0]["fresh_for_seconds"] == 120
            for n, (answer, error) in enumerate(cases, start=2):
                idp.set(answer)
                # Past the next fetch (the refresh at 90 s, then the backoff).
                gw.advance(100)
                h = await gw.wait_for(error, lambda h: idp.fetches == n and h[0]["last_error"] == error)
                assert (h[0]["keys"], h[0]["kids"]) == (True, ["k1"])
                assert gw.mw.keys.all_loaded()
                assert await gw.read(token) == "allow", "the last good keys serve"
            assert gw.now == T0 + 700
            # A failed fetch forgets the discovered jwks_uri (the provider
            # may have moved its keys): each fetch after one asked for it again.
            assert (idp.discoveries, idp.fetches) == (1 + len(cases) - 1, 1 + len(cases))

            # Fresh for 120 s, stale for 600 s more: at 721 s the keys go.
            gw.advance(21)
            h = await gw.wait_for("the keys to be withdrawn", lambda h: h[0]["keys"] is False)
            assert h == [{"issuer": iss, "source": "discovery", "jwks_uri": None, "keys": False, "kids": [],
                          "age_seconds": 721, "fresh_for_seconds": 0, "last_error": shared_secret}]
            assert not gw.mw.keys.all_loaded()
            assert await gw.read(token) == unknown(
                f"no keys are loaded for issuer `{iss}`: its keys are too stale: fetched 721 s ago, fresh for "
                f"120 s, and no fetch has worked since ({shared_secret})", iss)

            # The provider is fixed: the next fetch brings the keys back.
            idp.set(("keys", [k1.public], None))
            gw.advance(100)
            h = await gw.wait_for("the keys to come back", lambda h: h[0]["keys"] is True)
            assert h == [{"issuer": iss, "source": "discovery", "jwks_uri": jwks_url, "keys": True, "kids": ["k1"],
                          "age_seconds": 0, "fresh_for_seconds": 60, "last_error": None}]
            assert await gw.read(token) == "allow"

    asyncio.run(scenario())


def test_an_issuer_without_keys_yet_fails_closed_naming_the_error(engine, tmp_path, provider, keys):
    """A provider that never answered: the gateway starts, says so in
    `health()`, and denies its tokens naming the fetch error; the keys
    arrive with the first fetch that works."""
    k1, _ = keys
    idp = provider(("status", 503))
    iss = idp.base
    jwks_url = f"{iss}/jwks"
    error = f"GET {jwks_url}: status 503"

    async def scenario():
        async with Gateway(engine, bundle(tmp_path, iss, jwks_url)) as gw:
            assert gw.health() == [{
                "issuer": iss, "source": "jwks_uri", "jwks_uri": jwks_url, "keys": False, "kids": [],
                "age_seconds": None, "fresh_for_seconds": None, "last_error": error}]
            assert idp.discoveries == 0, "jwks_uri needs no discovery"
            token = k1.token(iss, "alice")
            assert await gw.read(token) == unknown(
                f"no keys are loaded for issuer `{iss}`: fetching its keys failed: {error}", iss)
            assert idp.fetches == 2, "at start, and for the token"
            idp.set(("keys", [k1.public], None))
            # Past the backoff of the two failed fetches.
            gw.advance(60)
            await gw.wait_for("the first keys", lambda h: h[0]["keys"] is True)
            assert await gw.read(token) == "allow"
            assert idp.fetches == 3

    asyncio.run(scenario())


def test_without_lifespan_the_keys_are_fetched_at_the_first_request(engine, tmp_path, provider, keys):
    """An ASGI server without lifespan: the first request fetches the keys
    (once, however many requests come at once), then passes."""
    k1, _ = keys
    idp = provider(("keys", [k1.public], None))
    iss = idp.base
    gw = Gateway(engine, bundle(tmp_path, iss))
    assert gw.health()[0]["keys"] is False and idp.fetches == 0

    async def scenario():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.mw), base_url="http://api.test") as c:
            rs = await asyncio.gather(*[
                c.get("/docs/d1", headers={"authorization": f"Bearer {k1.token(iss, 'alice')}"}) for _ in range(5)])
        assert [(r.status_code, r.text) for r in rs] == [(200, "alice")] * 5
        assert (idp.discoveries, idp.fetches) == (1, 1)
        await gw.mw.aclose()

    asyncio.run(scenario())


def test_a_provider_too_slow_or_gone_is_a_failed_fetch(engine, tmp_path):
    """The total timeout (`timeout_ms`) bounds a provider that accepts and
    never answers; a closed port cannot be connected to. Both are failed
    fetches, worded as the Rust server words them."""
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never answers
    closed = socket.create_server(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    try:
        for port, error in [(silent.getsockname()[1], "timed out"),
                            (closed_port, "cannot connect: All connection attempts failed")]:
            url = f"http://127.0.0.1:{port}/jwks"
            d = tmp_path / str(port)
            d.mkdir()
            text = bundle(d, "https://idp.test", url).joinpath("greenlight.toml").read_text()
            (d / "greenlight.toml").write_text(text.replace("[key_fetch]\n", "[key_fetch]\ntimeout_ms = 300\n"))
            ks = KeySources(engine.load_bundle_dir(d), now=lambda: T0)

            async def scenario():
                started = asyncio.get_running_loop().time()
                await ks.fetch_all()
                assert asyncio.get_running_loop().time() - started < 5
                await ks.aclose()

            asyncio.run(scenario())
            [h] = ks.health()
            assert (h["keys"], h["last_error"]) == (False, f"GET {url}: {error}")
    finally:
        silent.close()


def test_a_bundle_carrying_every_key_has_nothing_to_fetch(engine):
    """The demo bundle carries its issuer's keys: the middleware owns no
    `KeySources`, and one made for it fetches nothing."""
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    ks = KeySources(policy)
    assert (len(ks), ks.issuers, ks.health(), ks.all_loaded()) == (0, (), [], True)

    async def scenario():
        await ks.fetch_all()
        assert await ks.unknown_kid("https://idp.example.com", ks.changes) is False
        await ks.aclose()

    asyncio.run(scenario())
    mw = GreenlightMiddleware(App(), bundle_dir=ROOT / "examples/bundle", service_url="https://greenlight.example.com",
                              engine=engine)
    assert mw.keys is None


def settings(allow_http_loopback: bool) -> KeyFetchSettings:
    return KeyFetchSettings(2000, 5000, 524288, 300, 86400, 86400, 30, allow_http_loopback)


def test_only_https_or_allowed_loopback_http_is_fetched():
    def error(url, s):
        try:
            check_url(url, s)
        except ValueError as e:
            return str(e)
        return None

    s = settings(False)
    assert error("https://idp.example.com/jwks", s) is None
    assert error("http://idp.example.com/jwks", s) == "`http://idp.example.com/jwks` is not HTTPS"
    assert error("http://127.0.0.1:8080/jwks", s) == (
        "`http://127.0.0.1:8080/jwks` is plain HTTP: allowed for loopback only with "
        "`[key_fetch] allow_http_loopback = true`")
    s = settings(True)
    for ok in ("http://127.0.0.1:8080/jwks", "http://[::1]:8080/jwks", "http://localhost/jwks",
               "http://127.1.2.3/jwks"):
        assert error(ok, s) is None, ok
    assert error("http://10.0.0.1/jwks", s) == "`http://10.0.0.1/jwks` is not HTTPS"
    assert error("http://127.0.0.1.evil.com/jwks", s) == "`http://127.0.0.1.evil.com/jwks` is not HTTPS"
    assert error("file:///etc/passwd", s) == "`file:///etc/passwd` is not HTTPS"


def test_freshness_follows_cache_control_then_expires():
    h = httpx.Headers
    assert freshness(h({"cache-control": "public, max-age=600"})) == 600
    assert freshness(h({"cache-control": "max-age=600, no-cache"})) == 0
    assert freshness(h({"cache-control": "no-store"})) == 0
    assert freshness(h({"date": "Sat, 28 Nov 2026 10:00:00 GMT", "expires": "Sat, 28 Nov 2026 11:00:00 GMT"})) == 3600
    assert freshness(h({"cache-control": "max-age=60", "date": "Sat, 28 Nov 2026 10:00:00 GMT",
                        "expires": "Sat, 28 Nov 2026 11:00:00 GMT"})) == 60
    assert freshness(h({"expires": "0"})) == 0
    assert freshness(h({})) is None


def test_a_hostile_provider_is_a_failed_fetch_and_stops_nothing(engine, tmp_path, provider, keys):
    """A `max-age` of 5,000 digits (past Python's int() limit), a JSON body
    nested 100,000 deep, a discovered `jwks_uri` on another host, a
    5,000-character error with control characters: each is a failed fetch
    with a short one-line error; the last good keys keep serving and the
    background work goes on."""
    k1, _ = keys
    idp = provider(("keys", [k1.public], None))
    iss = idp.base
    port = iss.rsplit(":", 1)[1]

    async def scenario():
        async with Gateway(engine, bundle(tmp_path, iss)) as gw:
            token = k1.token(iss, "alice")
            assert await gw.read(token) == "allow"
            idp.set(("keys", [k1.public], "max-age=" + "9" * 5000))
            gw.advance(46)
            await gw.wait_for("a refresh", lambda h: h[0]["fresh_for_seconds"] == 60 and h[0]["age_seconds"] == 0)
            assert await gw.read(token) == "allow"
            idp.set(("raw", "[" * 100_000))
            gw.advance(46)
            await gw.wait_for("the nesting refused",
                              lambda h: (h[0]["last_error"] or "").startswith(f"GET {iss}/jwks: not JSON: "))
            assert await gw.read(token) == "allow"
            assert gw.health()[0]["keys"] is True

            # Discovery may not send the host elsewhere; the error is one
            # short line.
            idp.jwks_uri = f"http://localhost:{port}/jwks"
            idp.set(("keys", [k1.public], None))
            gw.advance(60)
            oidc = f"{iss}/.well-known/openid-configuration"
            rfc8414 = f"{iss}/.well-known/oauth-authorization-server"
            error = (f"discovery failed: {oidc}: its jwks_uri `http://localhost:{port}/jwks` is not on the issuer's "
                     f"host; to trust it, name it as `jwks_uri` in the bundle; GET {rfc8414}: status 404")
            await gw.wait_for("the other host refused", lambda h: h[0]["last_error"] == error)
            idp.jwks_uri = f"{iss}/" + "x" * 5000 + "\u0007"
            gw.advance(60)
            h = await gw.wait_for("a long error", lambda h: (h[0]["last_error"] or "").endswith("…"))
            assert len(h[0]["last_error"]) == 513
            assert await gw.read(token) == "allow", "the last good keys still serve"
    asyncio.run(scenario())


def test_a_reload_keeps_an_unchanged_issuers_fetched_keys(engine, tmp_path, provider, keys):
    """`reload` hands the new version the old one's fetched keys for an
    issuer whose keys come from the same place: no fetch, and its tokens
    verify through the reload while the provider is down. An issuer whose
    `jwks_uri` changed is fetched anew and fails closed, naming why."""
    k1, _ = keys
    idp = provider(("keys", [k1.public], None))
    iss = idp.base
    folder = bundle(tmp_path, iss)

    async def scenario():
        async with Gateway(engine, folder) as gw:
            assert await gw.read(k1.token(iss, "alice")) == "allow"
            fetched = idp.fetches
            idp.set(("status", 503))
            with open(folder / "policy.cedar", "a", encoding="utf-8") as f:
                f.write('@id("hidden") forbid (principal, action, resource == Doc::"d2");\n')
            r = await gw.mw.reload()
            assert (r.outcome, r.detail) == ("swapped", "the bundle has no tests"), r
            assert idp.fetches == fetched, "no fetch for an unchanged key source"
            assert gw.health()[0]["kids"] == ["k1"] and gw.health()[0]["keys"] is True
            assert await gw.read(k1.token(iss, "alice")) == "allow"

            # Its keys at another URL: fetched, and refused while that fails.
            bundle(folder, iss, jwks_uri=f"{iss}/jwks/v2")
            with open(folder / "policy.cedar", "a", encoding="utf-8") as f:
                f.write('@id("moved") forbid (principal, action, resource == Doc::"d3");\n')
            r = await gw.mw.reload()
            assert r.outcome == "swapped", r
            code, message, issuer = await gw.read(k1.token(iss, "alice"))
            assert (code, issuer) == ("token-unknown-key", iss)
            assert "fetching its keys failed" in message, message

    asyncio.run(scenario())
