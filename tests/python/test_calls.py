"""Calls read the component's types once (greenlight/_calls.py).

wasmtime-py reads a function's types back from the component on every call
unless the binding keeps them; these tests make every such read fail once
each export (and the host's `crypto` import) has been called, and check
that decisions of every kind, warm and cold, and the gateway's answer still
come out exactly as before. They
also fail first if a new wasmtime-py moves the internals `_calls` uses.
"""

import json
from pathlib import Path

import pytest
import wasmtime.component._func as wfunc
import wasmtime.component._types as wtypes

from greenlight import Engine, HttpRequest

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests/vectors").glob("*.json"))


def _decide(policy, v):
    (kind, request), = v["request"].items()
    if kind == "http":
        return policy.evaluate_http(HttpRequest.from_dict(request), v["now"])
    if kind == "vouched":
        from greenlight import AccessRequest, Principal
        return policy.evaluate_as(Principal.from_dict(request["subject"]),
                                  AccessRequest.from_dict(request["access"]), v["now"])
    from greenlight import AccessRequest
    return policy.evaluate(AccessRequest.from_dict(request), v["now"])


def _policies(engine: Engine):
    out = []
    for path in VECTORS:
        v = json.loads(path.read_text(encoding="utf-8"))
        policy = engine.load_bundle_dir(ROOT / v["bundle"])
        for k in v["keys"]:
            policy.set_keys(k["issuer"], (ROOT / k["jwks"]).read_text(encoding="utf-8"))
        out.append((path.stem, policy, v))
    return out


def test_the_internals_used_are_there():
    for name in ("ListType", "RecordType", "TupleType", "VariantType", "EnumType", "OptionType",
                 "ResultType", "FlagsType", "VariantLikeType", "ValType", "valtype_from_ptr"):
        assert hasattr(wtypes, name), name
    assert hasattr(wfunc.Func, "type") and hasattr(wfunc.Func, "post_return")


def test_no_type_is_read_again_after_the_first_call(wasm_path: Path, monkeypatch: pytest.MonkeyPatch):
    engine = Engine(wasm_path)
    cases = _policies(engine)
    # First round: every export a vector uses reads its types (once).
    first = {name: _decide(policy, v) for name, policy, v in cases}
    first_answers = {name: policy.respond(first[name], "https://greenlight.example.com")
                     for name, policy, _ in cases}
    assert all(d.verdict is not None for d in first.values())

    def refuse(*_args, **_kwargs):
        raise AssertionError("a type was read from the component again")

    monkeypatch.setattr(wfunc.Func, "type", refuse)
    monkeypatch.setattr(wtypes, "valtype_from_ptr", refuse)

    # Second round, on the same policies (warm; a token refused the first
    # time has its signature checked again through the `crypto` import),
    # then on fresh instances of fresh policies (cold: every signature
    # checked again, through the import, with the same types).
    for name, policy, v in cases:
        again = _decide(policy, v)
        assert again == first[name], name
        assert policy.respond(again, "https://greenlight.example.com") == first_answers[name], name
    checks = engine.native_signature_checks
    for name, _, v in cases:
        fresh = engine.load_bundle_dir(ROOT / v["bundle"])
        for k in v["keys"]:
            fresh.set_keys(k["issuer"], (ROOT / k["jwks"]).read_text(encoding="utf-8"))
        assert _decide(fresh, v) == first[name], name
    assert engine.native_signature_checks > checks


def test_a_value_that_does_not_fit_is_still_refused(engine: Engine):
    policy = engine.load_bundle_dir(ROOT / "examples/bundle")
    # A header value that is not a string cannot be lowered: the binding
    # refuses it before the call, as it did before.
    with pytest.raises((TypeError, ValueError)):
        policy.evaluate_http(HttpRequest("GET", "/payments/p", "", [("authorization", 5)], None), 1)
