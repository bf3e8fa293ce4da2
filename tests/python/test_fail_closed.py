"""Fail closed: a bad bundle is refused with its problems, hostile requests
and tokens are denied with their codes, a module that traps or loops is
denied and replaced, and the published JOSE vectors verify in the module."""

import dataclasses
import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from greenlight import (
    AccessRequest,
    BundleError,
    Credential,
    Denied,
    Engine,
    EngineError,
    Limits,
    Principal,
    Problem,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples/bundle"
REFUND = json.loads((ROOT / "tests/vectors/001-demo-refund-50-allowed.json").read_text())
NOW = REFUND["now"]
ALICE = dict(REFUND["request"]["http"]["headers"])["authorization"]
PROBLEM_POLICY = Problem("invalid-policy", "policy.cedar", 62, 45, "unexpected token `;`")
PROBLEM_MISSING = Problem("missing-file", "policy.cedar", None, None, "every bundle needs `policy.cedar`")
JSON_HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]
#: The allow the hostile module gives for any request it does not misbehave on.
HOSTILE_ALLOW = {
    "kind": "allow",
    "principal": {"entity_type": "User", "subject": "hostile", "client_id": "", "scopes": [], "groups": [],
                  "roles": [], "tenant": "", "issuer": "hostile"},
    "action": {"name": "hostile", "resource_type": "Hostile", "resource_id": "hostile", "params": {},
               "digest": "erF0EfDnttDOVv9WNrqnsf34DPlnUOKXRSZuQUe9npY"},
    "approval_id": None, "consume": None, "forward_headers": [],
}


def demo_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "bundle"
    shutil.copytree(DEMO, dst, ignore=shutil.ignore_patterns("dev"))
    return dst


def test_a_bundle_with_a_policy_error_is_refused_with_the_problem_located(engine, tmp_path):
    bundle = demo_copy(tmp_path)
    policy = bundle / "policy.cedar"
    policy.write_text(policy.read_text() + '\n@id("broken")\npermit (principal, action, resource) when { ;\n')
    with pytest.raises(BundleError) as err:
        engine.load_bundle_dir(bundle)
    assert err.value.problems == (PROBLEM_POLICY,)
    assert err.value.other is None
    assert str(err.value) == f"the bundle has 1 problem(s): {PROBLEM_POLICY}"


def test_a_bundle_without_its_policy_file_is_refused(engine, tmp_path):
    bundle = demo_copy(tmp_path)
    (bundle / "policy.cedar").unlink()
    with pytest.raises(BundleError) as err:
        engine.load_bundle_dir(bundle)
    assert err.value.problems == (PROBLEM_MISSING,)


def test_a_private_key_beside_the_bundle_never_reaches_the_engine(engine):
    # examples/bundle/dev holds the demo IdP's private key: only the listed files are read.
    policy = engine.load_bundle_dir(DEMO)
    assert policy.policy_hash == REFUND["expect"]["policy_hash"]


def refund(policy, path="/payments/pay_123/refund", token=ALICE, method="POST"):
    return policy.evaluate_http({"method": method, "path": path, "query": "",
                                 "headers": [["authorization", token]],
                                 "params": '{"amount":50,"currency":"EUR"}'}, NOW)


def test_an_unknown_route_is_denied_403(engine):
    policy = engine.load_bundle_dir(DEMO)
    d = refund(policy, "/payments/pay_123/refund/now")
    assert json.loads(d.to_json())["verdict"] == {
        "kind": "deny", "code": "route-not-found", "message": "no route for `POST /payments/pay_123/refund/now`"}
    assert policy.respond(d, "s") == (403, JSON_HEADERS, {
        "error": "access_denied", "error_description": "no route for `POST /payments/pay_123/refund/now`",
        "code": "route-not-found"})


def test_a_9000_byte_token_is_denied_before_it_is_parsed(engine):
    policy = engine.load_bundle_dir(DEMO)
    d = refund(policy, token="Bearer " + "a" * 9000)
    assert json.loads(d.to_json())["verdict"] == {
        "kind": "deny", "code": "token-too-large", "message": "the token has 9000 bytes, more than the 8192 accepted"}


def test_an_alg_none_token_is_denied(engine):
    header, payload, _ = ALICE.removeprefix("Bearer ").split(".")
    # {"alg":"none","typ":"at+jwt"} with alice's claims and no signature.
    d = refund(engine.load_bundle_dir(DEMO), token=f"Bearer eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.{payload}.")
    assert json.loads(d.to_json())["verdict"] == {
        "kind": "deny", "code": "token-unsupported-algorithm", "message": "algorithm `none` is not supported"}


def test_a_trapping_module_is_denied_and_replaced(hostile_path):
    policy = Engine(hostile_path).load_bundle([])
    assert policy.policy_hash == "hostile"
    for _ in range(2):
        d = refund(policy, "/trap")
        assert json.loads(d.to_json()) == {
            "verdict": {"kind": "deny", "code": "engine-trap",
                        "message": "the policy module trapped (wasm `unreachable` instruction executed)"},
            "reasons": [], "policy_hash": "hostile"}
        assert refund(policy, "/ok").to_dict()["verdict"] == HOSTILE_ALLOW


def test_a_looping_module_is_stopped_by_its_time_budget(hostile_path):
    policy = Engine(hostile_path).load_bundle([])
    d = refund(policy, "/loop")
    # The verdict is the proof: an endless loop returns only because the
    # budget stopped it. (No timing assertion: these machines are shared.)
    assert json.loads(d.to_json())["verdict"] == {
        "kind": "deny", "code": "engine-timeout", "message": "the policy module ran past its time budget"}
    assert refund(policy, "/ok").to_dict()["verdict"] == HOSTILE_ALLOW


def test_a_module_allocating_without_bound_hits_its_memory_cap(hostile_path):
    # A generous time budget, so the cap and not the clock stops it on a busy machine.
    policy = Engine(hostile_path, Limits(call_budget=10.0, memory_bytes=16 << 20)).load_bundle([])
    d = refund(policy, "/alloc")
    assert json.loads(d.to_json())["verdict"] == {
        "kind": "deny", "code": "engine-memory-exceeded",
        "message": "the policy module ran past its memory cap of 16777216 bytes"}
    assert refund(policy, "/ok").to_dict()["verdict"] == HOSTILE_ALLOW


@pytest.mark.parametrize("path, message", [
    ("/not-json", "Expecting value: line 1 column 1 (char 0)"),
    ("/not-a-decision",
     "the allow lacks ['action', 'approval_id', 'consume', 'forward_headers', 'principal'] or has unknown []"),
    ("/deep", "maximum recursion depth exceeded while decoding a JSON array from a unicode string"),
    ("/nan", "`NaN` is not JSON"),
    ("/huge-number", "`1e400` is out of range"),
    ("/surrogate", "'utf-8' codec can't encode character '\\ud800' in position 287: surrogates not allowed"),
    ("/big-params", "the action's params has 70010 bytes"),
    ("/twice", "the member `verdict` is named twice in one object"),
    # Refused before it is parsed: no host reads more than 1 MiB.
    ("/huge-decision", "the decision is longer than 1048576 bytes"),
    # The unknown member, named by 40,000 emoji, is quoted only up to 64 KiB
    # of reason, cut between two of its four-byte characters.
    ("/long-name", "the decision lacks [] or has unknown ['"
     + "\U0001F600" * ((64 * 1024 - len("the policy module returned a malformed decision: "
                                         "the decision lacks [] or has unknown ['")) // 4)),
])
def test_an_answer_that_is_not_a_decision_is_denied(hostile_path, path, message):
    """The decision crosses as JSON text (`decide-json`) and is read as the
    Rust host reads it: text that is not JSON, JSON of another shape, JSON
    nested past what the reader takes, a number serde_json refuses, a lone
    surrogate, params over 64 KiB, or a member named twice (here a deny
    before the allow a reader keeping the last one would take) is a deny,
    never an exception or a decision, and the next call is served."""
    policy = Engine(hostile_path).load_bundle([])
    d = refund(policy, path)
    assert json.loads(d.to_json()) == {
        "verdict": {"kind": "deny", "code": "engine-invalid-output",
                    "message": f"the policy module returned a malformed decision: {message}"},
        "reasons": [], "policy_hash": "hostile"}
    assert refund(policy, "/ok").to_dict()["verdict"] == HOSTILE_ALLOW


#: Alice's refund of 50 as an AuthZEN request without a token, for `evaluate_as`.
VOUCHED_REFUND = AccessRequest("", "payment.refund", "Payment", "pay_123", None, '{"amount":50,"currency":"EUR"}')
#: Alice as a trusted policy enforcement point would forward her.
ALICE_VOUCHED = Principal("User", "alice", "api-gateway", ("payments:refund",), (), (), "",
                          "https://idp.example.com")


def test_evaluate_as_calls_through_to_the_module(hostile_path):
    # The hostile module allows whatever it is asked, naming the call it
    # received and the vouched subject in it.
    policy = Engine(hostile_path).load_bundle([])
    d = policy.evaluate_as(ALICE_VOUCHED, VOUCHED_REFUND, NOW)
    principal = {**HOSTILE_ALLOW["principal"], "subject": "alice"}
    assert d.to_dict() == {"verdict": {**HOSTILE_ALLOW, "principal": principal}, "reasons": ["vouched"],
                           "policy_hash": "hostile"}
    access = policy.evaluate(VOUCHED_REFUND, NOW)
    assert access.to_dict() == {"verdict": HOSTILE_ALLOW, "reasons": ["access"], "policy_hash": "hostile"}
    assert refund(policy, "/ok").to_dict() == {"verdict": HOSTILE_ALLOW, "reasons": ["http"],
                                               "policy_hash": "hostile"}


def test_evaluate_as_refuses_a_request_that_carries_a_token(engine):
    policy = engine.load_bundle_dir(DEMO)
    with_token = dataclasses.replace(VOUCHED_REFUND, token=ALICE.removeprefix("Bearer "))
    d = policy.evaluate_as(ALICE_VOUCHED, with_token, NOW)
    assert d.to_dict() == {
        "verdict": {"kind": "deny", "code": "request-invalid",
                    "message": "a request for a vouched subject carries no token"},
        "reasons": [], "policy_hash": REFUND["expect"]["policy_hash"]}
    assert policy.respond(d, "s") == (400, JSON_HEADERS, {
        "error": "invalid_request", "error_description": "a request for a vouched subject carries no token",
        "code": "request-invalid"})


def test_evaluate_as_decides_for_an_authenticated_principal_as_for_its_token(engine):
    policy = engine.load_bundle_dir(DEMO)
    token = ALICE.removeprefix("Bearer ")
    as_token = policy.evaluate(dataclasses.replace(VOUCHED_REFUND, token=token), NOW)
    vouched = policy.evaluate_as(policy.authenticate(token, NOW).principal, VOUCHED_REFUND, NOW)
    assert vouched.to_dict() == as_token.to_dict()
    assert vouched.verdict.principal.subject == "alice" and vouched.reasons == ("refund-small",)


def test_evaluate_as_refuses_a_subject_of_the_wrong_shape(engine):
    policy = engine.load_bundle_dir(DEMO)
    with pytest.raises(TypeError, match="scopes must be a list of str"):
        policy.evaluate_as({**dataclasses.asdict(ALICE_VOUCHED), "scopes": "payments:refund"}, VOUCHED_REFUND, NOW)
    with pytest.raises(TypeError, match="the subject must be a str"):
        policy.evaluate_as(Principal("User", None, "", (), (), (), "", "i"), VOUCHED_REFUND, NOW)


def test_authenticate_gives_the_credential_and_refuses_bad_tokens(engine):
    policy = engine.load_bundle_dir(DEMO)
    read = json.loads((ROOT / "tests/vectors/010-demo-payment-read-allowed.json").read_text())
    token, now = dict(read["request"]["http"]["headers"])["authorization"].removeprefix("Bearer "), read["now"]
    # The requesting app's token (client shop-backend): not meant for
    # approving, and it does not say when alice signed in.
    assert policy.authenticate(token, now) == Credential(
        principal=Principal("User", "alice", "shop-backend", ("payments:read", "payments:refund", "files:write"),
                            (), (), "", "https://idp.example.com"),
        expires_at=now + 3600, auth_time=None, approver=False)
    with pytest.raises(Denied) as err:
        policy.authenticate(token, now + 86400)
    assert (err.value.code, err.value.message) == ("token-expired", "the token expired at 1767229200")


JOSE = sorted((ROOT / "tests/jose").glob("*.json"))


def test_the_ten_published_jose_vectors_are_there():
    assert len(JOSE) == 10


@pytest.fixture(scope="module")
def in_guest(wasm_path) -> Engine:
    """The component checking every signature itself (no native primitive)."""
    return Engine(wasm_path, Limits(native_signatures=False))


@pytest.mark.parametrize("native", [True, False], ids=["native", "in-module"])
@pytest.mark.parametrize("path", JOSE, ids=[p.stem for p in JOSE])
def test_published_jose_vector(engine, in_guest, path, native):
    engine = engine if native else in_guest
    v = json.loads(path.read_text())
    jwk = json.dumps(v["jwk"])
    if v["alg"] in ("ES512", "none"):
        with pytest.raises(Denied) as err:
            engine.verify_compact(v["token"], jwk)
        assert (err.value.code, err.value.message) == (
            "token-unsupported-algorithm", f"algorithm `{v['alg']}` is not supported")
        return
    assert engine.verify_compact(v["token"], jwk) == v["payload"].encode()
    signing_input, sig = v["token"].rsplit(".", 1)
    flipped = f"{signing_input}.{'B' if sig[0] == 'A' else 'A'}{sig[1:]}"
    with pytest.raises(Denied) as err:
        engine.verify_compact(flipped, jwk)
    assert (err.value.code, err.value.message) == ("token-bad-signature", "the signature does not verify")


def test_a_file_that_is_not_a_component_is_refused(tmp_path):
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\0asm\x01\0\0\0garbage")
    with pytest.raises(EngineError, match="^the component cannot be used: "):
        Engine(junk, cache_dir=None)


def test_one_policy_answers_several_threads_at_once(engine):
    policy = engine.load_bundle_dir(DEMO)
    cases = [json.loads(p.read_text()) for p in sorted((ROOT / "tests/vectors").glob("00[12]-*.json"))]

    def work(_):
        return [policy.evaluate_http(v["request"]["http"], v["now"]).to_dict() == v["expect"]
                for _ in range(25) for v in cases]

    with ThreadPoolExecutor(4) as pool:
        results = [ok for batch in pool.map(work, range(4)) for ok in batch]
    assert results == [True] * 200


def test_an_instance_busy_while_keys_change_is_not_pooled_again(engine):
    """An instance in use while `set_keys` ran holds the old keys: when it
    comes back it is dropped, and only the instance validated with the new
    keys is pooled."""
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    busy = policy._take()
    policy.set_keys("https://idp.example.com", (ROOT / "examples/bundle/idp.jwks.json").read_text())
    policy._put_back(busy)
    assert [s.generation for s in policy._pool] == [1]
