"""The portal's browser tests: a real OpenID provider (node-oidc-provider,
tests/idp/portal-provider.mjs), `greenlight serve` on the demo bundle with
that provider as its issuer and the portal configured, and Debian's
Chromium driven by Playwright. Everything listens on 127.0.0.1 and is
stopped by PID at the end.

Environment: GREENLIGHT_BIN (the greenlight binary), CHROMIUM (default
/usr/bin/chromium), GREENLIGHT_SCREENSHOTS (a folder: when set, the list,
detail and confirmation pages are saved there as PNG).
"""

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
RESOURCE = "https://api.example.com"
SHOP_REDIRECT = "http://127.0.0.1:9/shop/callback"
CONFIRM_MAX_AGE = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bundle(dir: Path, issuer: str) -> None:
    """The demo bundle, its issuer replaced by the provider (keys found by
    discovery) and without the development key."""
    shutil.copytree(ROOT / "examples/bundle", dir, ignore=shutil.ignore_patterns("dev", "idp.jwks.json"))
    toml = (dir / "greenlight.toml").read_text()
    toml = toml.replace('issuer = "https://idp.example.com"\naudience', f'issuer = "{issuer}"\naudience', 1)
    toml = toml.replace('jwks = "idp.jwks.json"\n', "", 1)
    toml = re.sub(r"\[dev\]\n(?:[^\[\n].*\n)*", "", toml)
    toml += "\n[key_fetch]\nallow_http_loopback = true\n"
    # Confirming one's own action takes a sign-in this recent: short, so a
    # test can let one grow old.
    toml = toml.replace("[approvals]\n", f"[approvals]\nconfirm_max_age = {CONFIRM_MAX_AGE}\n", 1)
    assert f"confirm_max_age = {CONFIRM_MAX_AGE}" in toml
    assert issuer in toml and "[dev]" not in toml
    (dir / "greenlight.toml").write_text(toml)


class Http:
    """Plain HTTP to the server, as a client app or an attacker would
    speak it: no redirects followed, every status returned."""

    def __init__(self, base: str):
        self.base = base

    def request(self, method, path, *, body=None, headers=None, form=None):
        headers = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["content-type"] = "application/x-www-form-urlencoded"
        elif body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        req = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *a, **k):
                return None

        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=30) as r:
                return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read().decode()

    def json(self, method, path, **kw):
        status, _, text = self.request(method, path, **kw)
        return status, json.loads(text)


@pytest.fixture(scope="session")
def stack():
    """The provider and the server, started once for the suite."""
    bin = os.environ.get("GREENLIGHT_BIN")
    assert bin, "set GREENLIGHT_BIN to the greenlight binary"
    tmp = Path(tempfile.mkdtemp(prefix="greenlight-portal-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    provider = subprocess.Popen(
        ["node", str(ROOT / "tests/idp/portal-provider.mjs"), f"{base}/portal/callback"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    server = None
    try:
        issuer = json.loads(provider.stdout.readline())["issuer"]
        bundle(tmp / "bundle", issuer)
        (tmp / "portal-secret").write_text("portal-secret\n")
        (tmp / "settings.toml").write_text(
            '[portal]\nclient_id = "greenlight-portal"\n'
            f'client_secret_file = "{tmp / "portal-secret"}"\n'
            'scopes = "openid greenlight"\n'
            'auditor_role = "greenlight-auditor"\n'
        )
        log = open(tmp / "serve.log", "w")
        server = subprocess.Popen(
            [bin, "serve", "--bundle", str(tmp / "bundle"), "--listen", f"127.0.0.1:{port}",
             "--store", f"sqlite://{tmp / 'greenlight.db'}", "--config", str(tmp / "settings.toml")],
            stdout=log, stderr=subprocess.STDOUT,
        )
        http = Http(base)
        for _ in range(600):
            try:
                if http.request("GET", "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert server.poll() is None, (tmp / "serve.log").read_text()
            time.sleep(0.05)
        else:
            raise AssertionError("greenlight serve did not start:\n" + (tmp / "serve.log").read_text())
        yield {"base": base, "issuer": issuer, "http": http, "log": tmp / "serve.log"}
    finally:
        for p in (server, provider):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                              args=["--no-sandbox"])
        yield b
        b.close()


def sign_in_at_provider(page, who: str) -> None:
    """Signs `who` in on the provider's development pages (any password),
    consenting when asked."""
    page.fill("input[name=login]", who)
    page.fill("input[name=password]", "any")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if page.locator("button:has-text('Continue')").count():
        page.click("button:has-text('Continue')")
        page.wait_for_load_state()


@pytest.fixture
def person(stack, browser):
    """A browser of its own per person, signed in to the portal."""
    contexts = []

    def open_as(who: str, path: str = "/portal"):
        ctx = browser.new_context()
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(stack["base"] + path)
        sign_in_at_provider(page, who)
        page.wait_for_url(re.compile(re.escape(stack["base"]) + r"/portal.*"))
        return page

    yield open_as
    for c in contexts:
        c.close()


@pytest.fixture(scope="session")
def app_token(stack, browser):
    """An access token of a requesting app (`shop-app`, or the agent
    `agent-app`) for a person, by the authorization code flow in a browser
    of its own."""
    tokens = {}

    def token(who: str, client: str = "shop-app") -> str:
        if (who, client) in tokens:
            return tokens[(who, client)]
        import secrets, hashlib, base64
        verifier = secrets.token_urlsafe(32)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": client, "redirect_uri": SHOP_REDIRECT,
            "scope": "openid payments:refund files:write", "resource": RESOURCE,
            "code_challenge": challenge, "code_challenge_method": "S256", "state": "s",
        })
        ctx = browser.new_context()
        page = ctx.new_page()
        codes = []
        # The app's callback is not served: the code is read off the redirect.
        page.route(SHOP_REDIRECT + "*", lambda route: (codes.append(route.request.url), route.fulfill(body="ok")))
        page.goto(f"{stack['issuer']}/auth?{query}")
        sign_in_at_provider(page, who)
        deadline = time.time() + 20
        while not codes and time.time() < deadline:
            page.wait_for_timeout(50)
        ctx.close()
        assert codes, f"no code came back for {who}"
        code = urllib.parse.parse_qs(urllib.parse.urlparse(codes[0]).query)["code"][0]
        body = urllib.parse.urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": SHOP_REDIRECT,
            "code_verifier": verifier, "client_id": client, "client_secret": client.split("-")[0] + "-secret",
            "resource": RESOURCE,
        }).encode()
        with urllib.request.urlopen(urllib.request.Request(f"{stack['issuer']}/token", data=body), timeout=30) as r:
            tokens[(who, client)] = json.loads(r.read())["access_token"]
        return tokens[(who, client)]

    return token
