"""What the component tells besides decisions (`authenticate`, `inspect`,
`describe`, `stats`), and that the HTTP answer is the component's: a module that
answers a deny with a pass-through gets a 503, never a pass-through, and the
binding keeps no status table of its own."""

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
    EngineStats,
    IssuerInfo,
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
    assert info.issuers == (IssuerInfo("https://idp.example.com", "https://api.example.com", None),)
    assert info.approvals == ApprovalSettings(default_ttl_seconds=900, poll_interval_seconds=5,
                                              confirm_max_age_seconds=300)
    assert info.claims == ClaimNames("User", "scope", "groups", "roles", "tenant")
    assert info.development is True


def test_describe_gives_a_jwks_uri_the_host_must_fetch(engine):
    info = engine.load_bundle_dir(ROOT / "tests/bundles/tokens").info
    assert [i for i in info.issuers if i.jwks_uri is not None] == [
        IssuerInfo("https://uri.example", "https://api.test", "https://uri.example/.well-known/jwks.json")]
    assert info.development is False


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
                 "groups": [], "roles": [], "tenant": "", "issuer": "https://idp.example.com", **who}
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
