"""What the component tells besides decisions (`authenticate`, `inspect`,
`describe`, `stats`), and that the HTTP answer is the component's: a module that
answers a deny with a pass-through gets a 503, never a pass-through, and the
binding keeps no status table of its own."""

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

import greenlight
from greenlight import (
    ActionTokenSettings,
    ApprovalSettings,
    ClaimNames,
    Credential,
    Decision,
    Denied,
    Engine,
    BundleError,
    EngineStats,
    IssuerInfo,
    KeyFetchSettings,
    KeySource,
    Principal,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "bindings/python/src/greenlight"
JSON_HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]


def vector(name: str) -> dict:
    return json.loads(next((ROOT / "tests/vectors").glob(f"{name}-*.json")).read_text(encoding="utf-8"))


def token_of(v: dict) -> str:
    return dict(v["request"]["http"]["headers"])["authorization"].removeprefix("Bearer ")


ONCE = vector("058")  # a `once` action token of tests/bundles/tokens: exp = now + 120


def test_inspect_gives_the_claims_enforcement_checked(engine):
    policy = engine.load_bundle_dir(ROOT / "tests/bundles/tokens")
    now = ONCE["now"]
    t = policy.inspect(token_of(ONCE), now)
    # The principal's issuer is the person's, from `sub_id`, not Greenlight's.
    assert t == greenlight.ActionToken(
        principal=Principal("User", "bob", "cli", ("things:write",), (), (), "", "https://ed.example"),
        audience="https://api.test", token_id="at-1", issued_at=now - 10, expires_at=now + 120,
        digest=ONCE["expect"]["verdict"]["action"]["digest"], grant="once", approval_id="apr-1",
        approvers=(), authorization_details=None)
    # The digest is the one the decision's action names.
    assert t.digest == "7ZQSWV3eYaqJ6cMbAJfAsdgaWanaPxy71Q_2u9nT0ns"


def test_inspect_allows_the_leeway_and_refuses_past_it(engine):
    policy = engine.load_bundle_dir(ROOT / "tests/bundles/tokens")
    exp = ONCE["now"] + 120
    assert policy.inspect(token_of(ONCE), exp + 59).token_id == "at-1"
    with pytest.raises(Denied) as err:
        policy.inspect(token_of(ONCE), exp + 60)
    assert (err.value.code, err.value.message) == ("token-expired", f"the action token expired at {exp}")


def test_inspect_refuses_an_access_token(engine):
    policy = engine.load_bundle_dir(ROOT / "tests/bundles/tokens")
    access = vector("043")  # an EdDSA access token of the same bundle
    with pytest.raises(Denied) as err:
        policy.inspect(token_of(access), access["now"])
    assert (err.value.code, err.value.message) == ("action-token-invalid", "an access token is not an action token")


def test_describe_names_what_the_demo_bundle_configures(engine):
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    info = policy.info
    assert info.policy_hash == policy.policy_hash == vector("001")["expect"]["policy_hash"]
    assert info.action_tokens == ActionTokenSettings(
        issuer="https://greenlight.example.com", audience="https://api.example.com", ttl_seconds=300,
        leeway_seconds=60)
    assert info.issuers == (IssuerInfo("https://idp.example.com", "https://api.example.com", KeySource.bundle(),
                                       ("EdDSA", "ES256", "RS256"), "at+jwt"),)
    assert info.approvals == ApprovalSettings(default_ttl_seconds=900, poll_interval_seconds=5,
                                              confirm_max_age_seconds=300)
    assert info.claims == ClaimNames("User", "scope", "groups", "roles", "tenant")
    assert info.development is True


#: The `[key_fetch]` defaults (crates/types/src/bundle.rs, `KeyFetchSettings`).
KEY_FETCH_DEFAULTS = KeyFetchSettings(
    connect_timeout_ms=2000, timeout_ms=5000, max_bytes=524288, min_age_seconds=300, max_age_seconds=86400,
    max_stale_seconds=86400, unknown_kid_interval_seconds=30, allow_http_loopback=False)


def test_describe_gives_where_each_issuers_keys_come_from(engine):
    info = engine.load_bundle_dir(ROOT / "tests/bundles/tokens").info
    assert [i for i in info.issuers if i.keys.fetched] == [
        IssuerInfo("https://uri.example", "https://api.test",
                   KeySource("jwks_uri", url="https://uri.example/.well-known/jwks.json"), ("EdDSA",), None)]
    uri = next(i for i in info.issuers if i.issuer == "https://uri.example")
    assert (uri.keys.kind, uri.keys.url, uri.keys.urls) == (
        "jwks_uri", "https://uri.example/.well-known/jwks.json", ())
    # An issuer whose key set the bundle carries (`jwks = "ed.jwks.json"`).
    ed = next(i for i in info.issuers if i.issuer == "https://ed.example")
    assert ed == IssuerInfo("https://ed.example", "https://api.test", KeySource("bundle"), ("EdDSA",), "at+jwt")
    assert (ed.keys.kind, ed.keys.url, ed.keys.urls, ed.keys.fetched) == ("bundle", None, (), False)
    assert [i.issuer for i in info.issuers if not i.keys.fetched] == [
        "https://ed.example", "https://ec.example", "https://rsa.example", "https://hs.example",
        "https://pairwise.example"]
    assert info.key_fetch == KEY_FETCH_DEFAULTS
    assert dataclasses.astuple(info.key_fetch) == (2000, 5000, 524288, 300, 86400, 86400, 30, False)
    assert info.development is False


def test_describe_gives_discovery_urls_and_the_bundles_key_fetch_settings(engine):
    """An issuer with neither `jwks` nor `jwks_uri` is discovered from its
    metadata; `[key_fetch]` settings the bundle gives replace the defaults."""
    files = [(n, t) for n, t in greenlight.read_bundle_dir(ROOT / "tests/bundles/tokens")]
    extra = ('\n[[issuers]]\nissuer = "https://login.example/tenant-1"\naudience = "https://api.test"\n'
             'algorithms = ["EdDSA"]\n\n[key_fetch]\ntimeout_ms = 3000\nmax_stale_seconds = 3600\n'
             'allow_http_loopback = true\n')
    files = [(n, t.replace("\n[action_tokens]", extra + "\n[action_tokens]") if n == "greenlight.toml" else t)
             for n, t in files]
    info = engine.load_bundle(files).info
    assert info.issuers[-1] == IssuerInfo("https://login.example/tenant-1", "https://api.test", KeySource.discovery([
        "https://login.example/tenant-1/.well-known/openid-configuration",
        "https://login.example/.well-known/oauth-authorization-server/tenant-1"]), ("EdDSA",), None)
    assert (info.issuers[-1].keys.kind, info.issuers[-1].keys.url) == ("discovery", None)
    assert info.key_fetch == dataclasses.replace(KEY_FETCH_DEFAULTS, timeout_ms=3000, max_stale_seconds=3600,
                                                 allow_http_loopback=True)


UNKNOWN_KEY = "token-unknown-key"
URI = "https://uri.example"
FETCHED = vector("074")  # an EdDSA token of https://uri.example, allowed once its keys are set
ED_JWKS = (ROOT / "tests/bundles/tokens/ed.jwks.json").read_text(encoding="utf-8")


def read_thing(policy):
    return policy.evaluate_http(FETCHED["request"]["http"], FETCHED["now"])


def test_withdraw_keys_denies_the_issuers_tokens_until_set_keys(engine):
    policy = engine.load_bundle_dir(ROOT / FETCHED["bundle"])
    assert [(k["issuer"], k["jwks"]) for k in FETCHED["keys"]] == [(URI, "tests/bundles/tokens/ed.jwks.json")]
    policy.set_keys(URI, ED_JWKS)
    assert read_thing(policy).to_dict() == FETCHED["expect"]

    policy.withdraw_keys(URI, "fetching its keys failed: boom")
    denied = read_thing(policy)
    message = "no keys are loaded for issuer `https://uri.example`: fetching its keys failed: boom"
    assert denied.verdict == greenlight.Deny(UNKNOWN_KEY, message, URI)
    assert (denied.verdict.code, denied.verdict.message, denied.verdict.issuer) == (UNKNOWN_KEY, message, URI)
    assert denied.to_json() == (
        '{"verdict":{"kind":"deny","code":"token-unknown-key","message":"no keys are loaded for issuer '
        '`https://uri.example`: fetching its keys failed: boom","issuer":"https://uri.example"},'
        f'"reasons":[],"policy_hash":"{policy.policy_hash}"}}')
    # So does `authenticate`, naming the issuer (one of the bundle's).
    with pytest.raises(Denied) as err:
        policy.authenticate(token_of(FETCHED), FETCHED["now"])
    assert (err.value.code, err.value.message, err.value.issuer) == (UNKNOWN_KEY, message, URI)

    policy.set_keys(URI, ED_JWKS)
    assert read_thing(policy).to_dict() == FETCHED["expect"]


def test_withdrawn_keys_reach_every_instance_present_and_future(engine):
    """As `set_keys`: the change is replayed into every new instance, and an
    instance busy during it is dropped when it comes back."""
    policy = engine.load_bundle_dir(ROOT / FETCHED["bundle"])
    policy.set_keys(URI, ED_JWKS)
    busy = policy._take()
    policy.withdraw_keys(URI, "boom")
    policy._put_back(busy)
    assert [s.generation for s in policy._pool] == [2]
    fresh = [policy._new_slot() for _ in range(2)]
    for slot in fresh:
        policy._put_back(slot)
    for _ in range(4):
        assert read_thing(policy).verdict == greenlight.Deny(
            UNKNOWN_KEY, "no keys are loaded for issuer `https://uri.example`: boom", URI)


def test_a_key_set_with_a_private_member_is_refused_and_the_old_keys_serve(engine):
    policy = engine.load_bundle_dir(ROOT / FETCHED["bundle"])
    policy.set_keys(URI, ED_JWKS)
    jwks = json.loads(ED_JWKS)
    jwks["keys"][0]["d"] = jwks["keys"][0]["x"]
    with pytest.raises(BundleError) as err:
        policy.set_keys(URI, json.dumps(jwks))
    assert (err.value.problems, err.value.other) == ((greenlight.Problem(
        "invalid-keys", "jwks of `https://uri.example`", None, None,
        "key 0: a key set holds public keys only, and this key has the private member `d`"),), None)
    assert read_thing(policy).to_dict() == FETCHED["expect"]


def test_withdraw_keys_for_an_issuer_the_bundle_lacks_is_refused(engine):
    policy = engine.load_bundle_dir(ROOT / FETCHED["bundle"])
    policy.set_keys(URI, ED_JWKS)
    with pytest.raises(BundleError) as err:
        policy.withdraw_keys("https://nobody.example", "gone")
    assert (err.value.problems, err.value.other) == ((), "the bundle has no issuer `https://nobody.example`")
    assert str(err.value) == "the bundle has no issuer `https://nobody.example`"
    assert read_thing(policy).to_dict() == FETCHED["expect"]


def test_a_denial_names_only_an_issuer_of_the_bundle(engine, monkeypatch):
    """As the Rust host (`denial_with_issuer`): an `authenticate` denial's
    issuer is kept only when it names one of the bundle's issuers."""
    policy = engine.load_bundle_dir(ROOT / FETCHED["bundle"])
    for named, kept in ((URI, URI), ("https://elsewhere.example", None)):
        denial = SimpleNamespace(code=UNKNOWN_KEY, message="no key with kid `k`", issuer=named)
        monkeypatch.setattr(policy, "_ask", lambda name, *args, d=denial: greenlight.engine.Variant("err", d))
        with pytest.raises(Denied) as err:
            policy.authenticate("t", 0)
        assert (err.value.code, err.value.message, err.value.issuer) == (UNKNOWN_KEY, "no key with kid `k`", kept)


def test_a_deny_reads_and_writes_its_issuer_as_serde_does():
    text = ('{"verdict":{"kind":"deny","code":"token-unknown-key","message":"m","issuer":"https://uri.example"},'
            '"reasons":[],"policy_hash":"h"}')
    d = Decision.from_dict(json.loads(text))
    assert d.verdict == greenlight.Deny("token-unknown-key", "m", "https://uri.example")
    assert d.to_json() == text
    # Absent or null: no issuer, and none written.
    for verdict in ({"kind": "deny", "code": "policy-forbidden", "message": "m"},
                    {"kind": "deny", "code": "policy-forbidden", "message": "m", "issuer": None}):
        d = Decision.from_dict({"verdict": verdict, "reasons": [], "policy_hash": "h"})
        assert d.verdict.issuer is None
        assert d.to_json() == '{"verdict":{"kind":"deny","code":"policy-forbidden","message":"m"},' \
                              '"reasons":[],"policy_hash":"h"}'
    assert Decision.deny("token-unknown-key", "m", "h", issuer="https://uri.example").to_json() == text


def dev_token(*args: str) -> str:
    """`greenlight dev-token` for the demo bundle (its development IdP key)."""
    binary = os.environ.get("GREENLIGHT_BIN")
    if not binary or not Path(binary).is_file():
        pytest.fail(f"GREENLIGHT_BIN must name the greenlight binary (got {binary!r})", pytrace=False)
    return subprocess.run([binary, "dev-token", "--bundle", str(ROOT / "examples/bundle"), *args],
                          check=True, capture_output=True, text=True).stdout.strip()


def test_authenticate_gives_an_approvers_credential(engine):
    """A token of the bundle's first issuer issued to one of its
    `approver_clients` (`approvals-app`) is meant for approving; dev-token
    sets `auth_time` to the issue time, and the first issuer's groups count."""
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    issued = 1767225600
    token = dev_token("--sub", "bob", "--client", "approvals-app", "--claim", 'groups=["finance"]',
                      "--now", str(issued))
    assert policy.authenticate(token, issued + 10) == Credential(
        principal=Principal("User", "bob", "approvals-app", (), ("finance",), (), "", "https://idp.example.com"),
        expires_at=issued + 3600, auth_time=issued, approver=True)
    # The same person through another client: not meant for approving.
    token = dev_token("--sub", "bob", "--client", "shop-backend", "--claim", "auth_time=null", "--now", str(issued))
    credential = policy.authenticate(token, issued)
    assert (credential.principal.client_id, credential.auth_time, credential.approver) == (
        "shop-backend", None, False)


@pytest.mark.parametrize("who", [{"subject": ""}, {"issuer": ""}])
def test_a_credential_without_a_subject_or_issuer_is_refused(engine, monkeypatch, who):
    """As the Rust host (`host/src/convert.rs`): a module naming nobody is a
    malformed answer, never a credential."""
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    principal = {"entity-type": "User", "subject": "bob", "client-id": "approvals-app", "scopes": [],
                 "groups": [], "roles": [], "tenant": "", "issuer": "https://idp.example.com",
                     "attributes": [], **who}
    answer = SimpleNamespace(**{"principal": SimpleNamespace(**principal), "expires-at": 1, "auth-time": None,
                                "approver": True})
    monkeypatch.setattr(policy, "_result", lambda name, *args: answer)
    with pytest.raises(Denied) as err:
        policy.authenticate("t", 0)
    assert (err.value.code, err.value.message) == (
        "engine-invalid-output",
        "the policy module returned a malformed credential: a credential without a subject or issuer")


def test_stats_count_token_checks_and_signature_verifications(engine):
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    read = vector("010")  # alice reads a payment
    before = policy.stats()
    for _ in range(2):
        assert policy.evaluate_http(read["request"]["http"], read["now"]).to_dict() == read["expect"]
    after = policy.stats()
    # The same token twice: two checks, one signature verification (the
    # second came from the cache of verified tokens).
    assert (after.token_checks - before.token_checks, after.signature_checks - before.signature_checks) == (2, 1)
    # A key change drops the instances; their counts are kept.
    policy.set_keys("https://idp.example.com", (ROOT / "examples/bundle/idp.jwks.json").read_text())
    assert policy.stats() == after
    assert isinstance(after, EngineStats)


@pytest.fixture(scope="module")
def hostile(hostile_path):
    # Its `gateway.respond` answers every decision with a pass-through
    # (status 0), and its `describe` names the hash `hostile`.
    return Engine(hostile_path).load_bundle([])


def test_a_deny_the_module_answers_with_a_pass_through_is_a_503(hostile):
    """The proof that the answer comes from the module: the hostile one
    says "pass through" for everything, and the binding refuses that for a
    deny with exactly the Rust host's answer."""
    denied = hostile.evaluate_http({"method": "GET", "path": "/trap", "headers": []}, ONCE["now"])
    assert denied.to_dict()["verdict"]["code"] == "engine-trap"
    assert hostile.respond(denied, "https://gl.example") == (503, JSON_HEADERS, {
        "error": "temporarily_unavailable",
        "error_description": "the policy module answered wrongly: status 0 with no body does not answer "
                             "a deny `engine-trap`",
        "code": "engine-invalid-output",
    })


def test_a_challenge_the_module_answers_with_a_pass_through_is_a_503(hostile):
    challenge = Decision.from_dict(vector("002")["expect"])
    assert hostile.respond(challenge, "https://gl.example") == (503, JSON_HEADERS, {
        "error": "temporarily_unavailable",
        "error_description": "the policy module answered wrongly: status 0 with no body does not answer "
                             "an approval-required",
        "code": "engine-invalid-output",
    })


def test_an_allow_the_module_passes_through_passes(hostile):
    allowed = hostile.evaluate_http({"method": "GET", "path": "/ok", "headers": []}, ONCE["now"])
    assert allowed.allowed
    assert hostile.respond(allowed, "https://gl.example") == (0, [], None)


def test_the_binding_keeps_no_status_table():
    """No source of the binding names an OAuth error or builds a challenge:
    those come from the component only (the hostile tests above prove the
    answers do)."""
    assert not hasattr(greenlight.gateway, "status_of") and not hasattr(greenlight, "respond")
    for path in sorted(SOURCES.glob("*.py")):
        text = path.read_text(encoding="utf-8")
        found = re.findall(r"invalid_token|access_denied|invalid_request|insufficient_authorization|"
                           r"Bearer error|/oauth/", text)
        assert found == [], f"{path.name} names {sorted(set(found))}"
