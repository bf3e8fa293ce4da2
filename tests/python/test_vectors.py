"""The conformance vectors, decided by greenlight.wasm from Python.

Every tests/vectors/*.json must give exactly its `expect` (the parsed JSON
and the compact string serde_json writes for the Rust host) and its
`response` through `greenlight.respond`, and a second, cached answer must
equal the first. A vector's request is `http` (`evaluate_http`), `access`
(`evaluate`) or `vouched` (`evaluate_as`: a `subject` the host vouches for
and an `access` request).
"""

import json
from pathlib import Path

import pytest

from greenlight import AccessRequest, Engine, Principal, respond

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests/vectors").glob("*.json"))
#: The fewest vectors accepted; fewer means files went missing.
MIN_VECTORS = 40
#: The approval service named in every vector's `response`.
SERVICE = "https://greenlight.example.com"
KEYS = {"description", "bundle", "keys", "now", "request", "expect", "response"}
#: The request kinds, each for one function of the `policy` resource.
KINDS = {"http", "access", "vouched"}


def test_the_vectors_are_all_there():
    assert len(VECTORS) >= MIN_VECTORS, f"only {len(VECTORS)} vectors in tests/vectors"


def test_every_request_kind_has_vectors():
    kinds = {k for p in VECTORS for k in json.loads(p.read_text(encoding="utf-8"))["request"]}
    assert kinds == KINDS


def decide(engine: Engine, v: dict):
    policy = engine.load_bundle_dir(ROOT / v["bundle"])
    for k in v["keys"]:
        policy.set_keys(k["issuer"], (ROOT / k["jwks"]).read_text(encoding="utf-8"))
    (kind, request), = v["request"].items()
    if kind == "vouched":
        # `evaluate-as`: a subject the host vouches for, and the request.
        assert set(request) == {"subject", "access"}, f"a vouched request has {sorted(request)}"
        subject = Principal.from_dict(request["subject"])
        access = AccessRequest.from_dict(request["access"])
        return policy.evaluate_as(subject, access, v["now"]), policy.evaluate_as(subject, access, v["now"])
    run = {"http": policy.evaluate_http, "access": policy.evaluate}[kind]
    return run(request, v["now"]), run(request, v["now"])


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(engine: Engine, path: Path):
    v = json.loads(path.read_text(encoding="utf-8"))
    assert set(v) <= KEYS, f"unknown fields {sorted(set(v) - KEYS)}"
    assert "response" in v, "the vector has no `response`"
    first, cached = decide(engine, v)
    # The Rust host prints serde_json's compact form in the vector's key order.
    rust_json = json.dumps(v["expect"], separators=(",", ":"), ensure_ascii=False)
    assert first.to_json() == rust_json
    assert json.loads(first.to_json()) == v["expect"]
    assert cached.to_json() == first.to_json(), "the cached answer differs"
    status, headers, body = respond(first, SERVICE)
    assert {"status": status, "headers": [list(h) for h in headers], "body": body} == v["response"]
