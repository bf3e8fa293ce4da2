"""Live policy in the Python host: a bundle's own tests run in the
component (`Policy.run_tests`, the WIT `run-tests`), and the ASGI
middleware's `reload` swaps a bundle whole, refusing one whose tests fail
or that does not load, while the old one keeps deciding."""

import asyncio
import shutil
from pathlib import Path

import httpx
import pytest

from greenlight import EngineError, Engine, TestOutcome, read_tests_dir
from greenlight.asgi import GreenlightMiddleware, Reload

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples/bundle"
SERVICE = "https://greenlight.example.com"
NOW = 1767225600


def test_the_demo_bundles_tests_pass_in_the_component(engine):
    outcomes = engine.load_bundle_dir(DEMO).run_tests(read_tests_dir(DEMO), NOW)
    assert len(outcomes) == 10
    assert all(o.failure is None for o in outcomes)
    assert outcomes[0] == TestOutcome("demo.toml: a refund of 50 goes through on the client's scope", None)


def test_a_failing_test_names_the_decision_and_its_policies(engine):
    policy = engine.load_bundle_dir(DEMO)
    test = ('now = 1767225600\n[[tests]]\nname = "r"\nclaims = { sub = "alice", scope = "payments:refund" }\n'
            'http = { method = "POST", path = "/payments/p/refund", params = { amount = 500, currency = "EUR" } }\n'
            'expect = { verdict = "allow" }\n')
    assert policy.run_tests([("t.toml", test)], 0) == (TestOutcome(
        "t.toml: r", "expected allow; got approval-required: approvers group:finance, quorum 2, grant once, "
                     "ttl 900 (determined by refund-large)"),)


def test_a_file_that_is_not_a_test_file_is_refused_saying_which(engine):
    policy = engine.load_bundle_dir(DEMO)
    with pytest.raises(ValueError, match=r"^tests/t.toml: test `x` needs exactly one of `http` and `evaluation`$"):
        policy.run_tests([("t.toml", '[[tests]]\nname = "x"\nexpect = { verdict = "allow" }\n')], NOW)


def test_a_hostile_modules_test_answers_are_refused(hostile_path):
    policy = Engine(hostile_path).load_bundle([])
    with pytest.raises(EngineError, match=r"^the policy module answered the tests wrongly: 10001 test outcomes$"):
        policy.run_tests([("t.toml", "")], NOW)


class Echo:
    async def __call__(self, scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"upstream"})


def refund_50(mw) -> int:
    """A refund of 50 of pay_123 by alice (vector 001): its status."""
    import json
    v = json.loads(next((ROOT / "tests/vectors").glob("001-*.json")).read_text())
    h = v["request"]["http"]

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://api.test") as c:
            r = await c.request(h["method"], h["path"], headers=h["headers"] + [["content-type", "application/json"]],
                                content=h["params"])
            return r.status_code
    return asyncio.run(go())


FREEZE = '\n@id("freeze")\nforbid (principal, action == Action::"payment.refund", resource)\nwhen { principal.scopes.contains("payments:refund") && context.amount == 50 };\n'


def test_reload_swaps_a_bundle_whose_tests_pass_and_refuses_one_whose_tests_fail(engine, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEMO, bundle)
    mw = GreenlightMiddleware(Echo(), bundle_dir=bundle, service_url=SERVICE, engine=engine, clock=lambda: NOW,
                              transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    first = mw.policy.policy_hash
    assert refund_50(mw) == 200
    assert asyncio.run(mw.reload()) == Reload("unchanged", first, engine.component_hash, "")

    # The refund frozen: the bundle's own test of a refund of 50 fails.
    (bundle / "policy.cedar").write_text((DEMO / "policy.cedar").read_text() + FREEZE)
    r = asyncio.run(mw.reload())
    assert (r.outcome, r.policy_hash, r.component_hash) == ("refused", first, engine.component_hash)
    assert r.detail.startswith("its tests failed: 9 passed, 1 failed: demo.toml: a refund of 50 goes through "
                               "on the client's scope: expected allow, expected reasons [refund-small]; got deny "
                               "policy-forbidden: "), r.detail
    assert mw.policy.policy_hash == first and refund_50(mw) == 200

    # A policy that does not parse.
    (bundle / "policy.cedar").write_text("permit (")
    r = asyncio.run(mw.reload())
    assert r.outcome == "refused" and r.detail.startswith("the bundle has 1 problem(s): policy.cedar"), r
    assert refund_50(mw) == 200

    # The frozen refund with its test changed to match: swapped.
    (bundle / "policy.cedar").write_text((DEMO / "policy.cedar").read_text() + FREEZE)
    tests = (bundle / "tests/demo.toml").read_text()
    (bundle / "tests/demo.toml").write_text(tests.replace(
        'expect = { verdict = "allow", reasons = ["refund-small"] }',
        'expect = { verdict = "deny", code = "policy-forbidden", reasons = ["freeze"] }'))
    r = asyncio.run(mw.reload())
    assert r.outcome == "swapped" and r.policy_hash != first and r.detail == "tests: 10 passed, 0 failed", r
    assert mw.policy.policy_hash == r.policy_hash
    assert refund_50(mw) == 403


def test_reload_refuses_a_component_that_answers_the_tests_wrongly(engine, hostile_path, tmp_path):
    mw = GreenlightMiddleware(Echo(), bundle_dir=DEMO, service_url=SERVICE, engine=engine, clock=lambda: NOW,
                              transport=httpx.MockTransport(lambda r: httpx.Response(404)))
    first = mw.policy.policy_hash
    r = asyncio.run(mw.reload(Engine(hostile_path)))
    assert r == Reload("refused", first, engine.component_hash,
                       "the policy module answered the tests wrongly: 10001 test outcomes")
    assert refund_50(mw) == 200
