"""Calls read the component's types once (greenlight/_calls.py).

wasmtime-py reads a function's types back from the component on every call
unless the binding keeps them; these tests make every such read fail once
each export (and the host's `crypto` import) has been called, and check
that every vector is still decided exactly as it expects, warm and cold,
with the gateway's answer. They also fail first if a new wasmtime-py moves
the internals `_calls` uses.
"""

from pathlib import Path

import pytest
import wasmtime.component._func as wfunc
import wasmtime.component._types as wtypes
from test_vectors import SERVICE, VECTORS, decide, load, policy_for, rust_text

from greenlight import Engine, HttpRequest
from greenlight import _calls


def test_the_internals_used_are_there():
    for name in ("ListType", "RecordType", "TupleType", "VariantType", "EnumType", "OptionType",
                 "ResultType", "FlagsType", "VariantLikeType", "ValType", "valtype_from_ptr"):
        assert hasattr(wtypes, name), name
    assert hasattr(wfunc.Func, "type") and hasattr(wfunc.Func, "post_return")


def check(policy, v: dict) -> None:
    """The vector's decision and the gateway's answer for it, exactly."""
    decision = decide(policy, v)
    assert decision.to_json() == rust_text(v["expect"])
    status, headers, body = policy.respond(decision, SERVICE)
    assert {"status": status, "headers": [list(h) for h in headers], "body": body} == v["response"]


def test_no_type_is_read_again_after_the_first_call(wasm_path: Path, monkeypatch: pytest.MonkeyPatch):
    engine = Engine(wasm_path)
    vectors = [load(p) for p in VECTORS]
    policies = [policy_for(engine, v) for v in vectors]
    # First round: every export a vector uses reads its types (once).
    for policy, v in zip(policies, vectors):
        check(policy, v)

    def refuse(*_args, **_kwargs):
        raise AssertionError("a type was read from the component again")

    monkeypatch.setattr(wfunc.Func, "type", refuse)
    monkeypatch.setattr(wtypes, "valtype_from_ptr", refuse)

    # Second round, on the same policies (warm; a token refused the first
    # time has its signature checked again through the `crypto` import),
    # then on fresh policies (cold: every signature checked again, through
    # the import, with the same types).
    for policy, v in zip(policies, vectors):
        check(policy, v)
    checks = engine.native_signature_checks
    for v in vectors:
        check(policy_for(engine, v), v)
    assert engine.native_signature_checks > checks


def test_arguments_that_do_not_fit_are_refused_before_the_call(engine: Engine):
    policy = engine.load_bundle_dir(Path(__file__).resolve().parents[2] / "examples/bundle")
    slot = policy._take()
    try:
        func = slot.funcs["decide-json"]
        sig = engine._signatures.get("decide-json", func, slot.store)
        request = '{"http":{"method":"GET","path":"/payments/p"}}'
        with pytest.raises(TypeError, match=r"^wrong number of parameters provided: given 2, expected 3$"):
            _calls.call(func, slot.store, sig, (slot.policy, request))
        with pytest.raises(TypeError, match=r"^expected int for U64 type$"):
            _calls.call(func, slot.store, sig, (slot.policy, request, "now"))
    finally:
        policy._put_back(slot)
    # The instance is still usable: nothing reached the module.
    assert policy.evaluate_http(HttpRequest("GET", "/payments/p", "", [], None), 1).verdict.code == "token-missing"
