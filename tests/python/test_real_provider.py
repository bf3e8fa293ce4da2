"""The ASGI middleware against a real OpenID provider: node-oidc-provider
(pinned in tests/idp/package-lock.json), driven through tests/idp/cli.mjs,
as tests/idp/discovery.test.mjs drives `greenlight serve`. A bundle naming
only the issuer finds the keys by discovery and decides every algorithm's
tokens exactly as a bundle with the provider's JWKS copied in; after the
provider rotates its keys, the discovering middleware lets the new tokens
through at once (one more JWKS fetch for all three), while the copied
bundle denies them.

Needs node and tests/idp/node_modules (bindings/python/test.sh runs
`npm ci` there): without them the test fails, saying so; it is never
skipped.
"""

import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import httpx
import pytest

from greenlight import Allow, Deny, HttpRequest
from greenlight.asgi import GreenlightMiddleware

ROOT = Path(__file__).resolve().parents[2]
IDP = ROOT / "tests/idp"
RESOURCE = "https://api.example.com"
CLIENTS = {"app-rs256": "RS256", "app-es256": "ES256", "app-eddsa": "EdDSA"}
POLICY = ('@id("read") permit (principal, action == Action::"doc.read", resource) '
          'when { principal.scopes.contains("docs:read") };\n')


def config(issuer: str, copied: bool) -> str:
    """greenlight.toml for the provider at `issuer`: keys found by discovery
    (`jwks` absent), or in the bundle's `idp.jwks.json`."""
    jwks = 'jwks = "idp.jwks.json"\n' if copied else ""
    return f"""[[issuers]]
issuer = "{issuer}"
audience = "{RESOURCE}"
algorithms = ["RS256", "ES256", "EdDSA"]
require_typ = "at+jwt"
{jwks}
[key_fetch]
allow_http_loopback = true

[action_tokens]
issuer = "https://greenlight.example.com"
audience = "{RESOURCE}"

[[routes]]
method = "GET"
path = "/docs/{{id}}"
action = "doc.read"
resource = {{ type = "Doc", id = "{{id}}" }}
"""


class Idp:
    """`node tests/idp/cli.mjs`: one JSON line per command."""

    def __init__(self):
        node = shutil.which("node")
        if node is None:
            pytest.fail("node is not installed: the real-provider test needs Node.js 20 or newer "
                        "(tests/idp/package.json)", pytrace=False)
        if not (IDP / "node_modules/oidc-provider").is_dir():
            pytest.fail("tests/idp/node_modules is missing: run `(cd tests/idp && npm ci)` "
                        "(bindings/python/test.sh does)", pytrace=False)
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([node, str(IDP / "cli.mjs")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self.issuer = self._answer("start")["issuer"]

    def _answer(self, what: str) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.stderr.seek(0)
            log = self.stderr.read().decode("utf-8", "replace")
            pytest.fail(f"tests/idp/cli.mjs ended before answering `{what}`:\n{log}", pytrace=False)
        answer = json.loads(line)
        assert "error" not in answer, f"{what}: {answer['error']}"
        return answer

    def ask(self, command: str) -> dict:
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._answer(command)

    def token(self, client: str) -> str:
        return self.ask(f"token {client}")["token"]

    def counts(self) -> dict:
        return self.ask("counts")

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.stderr.close()


@pytest.fixture
def idp():
    p = Idp()
    yield p
    p.close()


class App:
    """Answers 200 with the subject the middleware forwards."""

    async def __call__(self, scope, receive, send):
        subject = dict(scope["headers"]).get(b"x-greenlight-subject", b"").decode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": subject.encode()})


def middleware(engine, tmp: Path, files: dict) -> GreenlightMiddleware:
    tmp.mkdir()
    for name, text in files.items():
        (tmp / name).write_text(text, encoding="utf-8")
    return GreenlightMiddleware(App(), bundle_dir=tmp, service_url="https://greenlight.example.com", engine=engine,
                                transport=httpx.MockTransport(lambda r: httpx.Response(404)))


async def read(mw: GreenlightMiddleware, token: str):
    request = HttpRequest("GET", "/docs/d1", "", (("authorization", f"Bearer {token}"),), None)
    return await mw.decide(request)


def test_a_real_provider_found_by_discovery_decides_as_its_copied_keys(engine, tmp_path, idp):
    jwks = idp.ask("jwks")
    discovering = middleware(engine, tmp_path / "discovering",
                             {"greenlight.toml": config(idp.issuer, False), "policy.cedar": POLICY})
    copied = middleware(engine, tmp_path / "copied", {"greenlight.toml": config(idp.issuer, True),
                                                       "policy.cedar": POLICY, "idp.jwks.json": json.dumps(jwks)})
    assert copied.keys is None, "the copied bundle fetches nothing"
    assert idp.counts() == {"jwks": 0, "discovery": 0}

    async def scenario():
        # Lifespan startup: the discovering middleware fetches the keys.
        await discovering.keys.ensure_started()
        [h] = discovering.keys.health()
        assert {**h, "age_seconds": None, "fresh_for_seconds": None} == {
            "issuer": idp.issuer, "source": "discovery", "jwks_uri": f"{idp.issuer}/jwks", "keys": True,
            "kids": ["rs256-1", "es256-1", "eddsa-1"], "age_seconds": None, "fresh_for_seconds": None,
            "last_error": None}
        assert idp.counts() == {"jwks": 1, "discovery": 1}

        # Every algorithm's tokens are decided as with the copied key set.
        for client, alg in CLIENTS.items():
            token = idp.token(client)
            found, hand_copied = await read(discovering, token), await read(copied, token)
            v = found.verdict
            assert isinstance(v, Allow), f"{alg}: {found.to_json()}"
            assert (v.principal.subject, v.principal.issuer, tuple(v.principal.scopes)) == (
                client, idp.issuer, ("docs:read",))
            assert (found.verdict, found.reasons) == (hand_copied.verdict, hand_copied.reasons), alg
            # A signature that does not verify is refused alike.
            h, p, s = token.split(".")
            forged = f"{h}.{p}.{s[:-4]}{'BBBB' if s[-4:] == 'AAAA' else 'AAAA'}"
            a, b = await read(discovering, forged), await read(copied, forged)
            assert isinstance(a.verdict, Deny) and a.verdict.code == "token-bad-signature", f"{alg}: {a.to_json()}"
            assert a.verdict == b.verdict
        assert idp.counts() == {"jwks": 1, "discovery": 1}

        # The provider rotates: its new tokens pass the discovering
        # middleware at once, and the copied bundle denies them.
        idp.ask("rotate")
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=discovering), base_url="http://api.test") as c:
            for client, alg in CLIENTS.items():
                token = idp.token(client)
                r = await c.get("/docs/d1", headers={"authorization": f"Bearer {token}"})
                assert (r.status_code, r.text) == (200, client), f"{alg}: {r.text}"
                kid = f"{alg.lower()}-2"
                denied = (await read(copied, token)).verdict
                assert denied == Deny("token-unknown-key", f"no key with kid `{kid}`", None)
        # One fetch for the first unknown kid brought all three new keys.
        assert idp.counts() == {"jwks": 2, "discovery": 1}
        assert discovering.keys.health()[0]["kids"] == [
            "rs256-2", "es256-2", "eddsa-2", "rs256-1", "es256-1", "eddsa-1"]
        await discovering.aclose()
        await copied.aclose()

    asyncio.run(scenario())
