"""The conformance vectors, decided by greenlight.wasm from Python.

Every tests/vectors/*.json must give exactly its `expect` (the parsed JSON,
and the compact text the Rust `Decision::to_json` writes: serde's key order,
which is the order of the Rust structs) and its `response` through the
component's `gateway.respond` (`Policy.respond`), and a second, cached
answer must equal the first. A vector's request is `http` (`evaluate_http`),
`access` (`evaluate`) or `vouched` (`evaluate_as`: a `subject` the host
vouches for and an `access` request).

The text is also compared with what the Rust binary itself prints
(`greenlight check`) for every vector it can read.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

from greenlight import AccessRequest, Engine, Limits, Principal
from greenlight._json import dumps

ROOT = Path(__file__).resolve().parents[2]
VECTORS = sorted((ROOT / "tests/vectors").glob("*.json"))
#: The fewest vectors accepted; fewer means files went missing.
MIN_VECTORS = 40
#: The approval service named in every vector's `response`.
SERVICE = "https://greenlight.example.com"
KEYS = {"description", "bundle", "keys", "now", "request", "expect", "response"}
#: The request kinds, each for one function of the `policy` resource.
KINDS = {"http", "access", "vouched"}
#: The key order of each verdict kind in the Rust structs
#: (crates/types/src/decision.rs), which serde writes. Written out here: the
#: vector files list `authorization_details` before `action` in a challenge
#: (the generator builds them with `json!`, and the Rust runner compares
#: values, not text), so the file's order is not the Rust text's.
ORDER = {
    "allow": ["kind", "principal", "action", "approval_id", "consume", "forward_headers"],
    "deny": ["kind", "code", "message", "issuer"],
    "approval-required": ["kind", "requester", "action", "authorization_details", "obligation"],
    "step-up-required": ["kind", "acr_values", "max_age", "message"],
}
#: The principals of each verdict kind: their `attributes` are a Rust
#: `BTreeMap`, which serde writes sorted by name, whatever the order of the
#: vector file (the generator builds them with `json!`, whose maps keep
#: insertion order; the Rust runner compares values, not text).
PRINCIPALS = {"allow": "principal", "approval-required": "requester"}
#: Keys serde skips when absent (`skip_serializing_if`): a deny's `issuer`.
OPTIONAL = {"issuer"}


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def rust_text(expect: dict) -> str:
    """The compact text `Decision::to_json` writes for `expect`: its values,
    verdict keys in the Rust structs' order."""
    verdict = expect["verdict"]
    order = [k for k in ORDER[verdict["kind"]] if k in verdict or k not in OPTIONAL]
    assert sorted(verdict) == sorted(order), f"a {verdict['kind']} has {sorted(verdict)}"
    verdict = {k: verdict[k] for k in order}
    who = PRINCIPALS.get(verdict["kind"])
    if who is not None and "attributes" in verdict[who]:
        attributes = verdict[who]["attributes"]
        verdict[who] = {**verdict[who], "attributes": {k: attributes[k] for k in sorted(attributes)}}
    ordered = {**expect, "verdict": verdict}
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False)


def test_the_vectors_are_all_there():
    assert len(VECTORS) >= MIN_VECTORS, f"only {len(VECTORS)} vectors in tests/vectors"


def test_every_request_kind_has_vectors():
    kinds = {k for p in VECTORS for k in load(p)["request"]}
    assert kinds == KINDS


def policy_for(engine: Engine, v: dict):
    policy = engine.load_bundle_dir(ROOT / v["bundle"])
    for k in v["keys"]:
        policy.set_keys(k["issuer"], (ROOT / k["jwks"]).read_text(encoding="utf-8"))
    return policy


def decide(policy, v: dict):
    (kind, request), = v["request"].items()
    if kind == "vouched":
        # `evaluate-as`: a subject the host vouches for, and the request.
        assert set(request) == {"subject", "access"}, f"a vouched request has {sorted(request)}"
        subject = Principal.from_dict(request["subject"])
        access = AccessRequest.from_dict(request["access"])
        return policy.evaluate_as(subject, access, v["now"])
    run = {"http": policy.evaluate_http, "access": policy.evaluate}[kind]
    return run(request, v["now"])


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(engine: Engine, path: Path):
    v = load(path)
    assert set(v) <= KEYS, f"unknown fields {sorted(set(v) - KEYS)}"
    assert "response" in v, "the vector has no `response`"
    policy = policy_for(engine, v)
    first = decide(policy, v)
    assert first.to_json() == rust_text(v["expect"])
    assert json.loads(first.to_json()) == v["expect"]
    assert decide(policy, v).to_json() == first.to_json(), "the cached answer differs"
    # The HTTP answer is the component's (`gateway.respond`), checked by the binding.
    status, headers, body = policy.respond(first, SERVICE)
    assert {"status": status, "headers": [list(h) for h in headers], "body": body} == v["response"]


@pytest.fixture(scope="module")
def in_guest(wasm_path: Path) -> Engine:
    """The component checking every signature itself (no native primitive)."""
    return Engine(wasm_path, Limits(native_signatures=False))


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector_with_signatures_checked_in_the_module(engine: Engine, in_guest: Engine, path: Path):
    """The same decision whether `cryptography` or the module checks the
    token's signature."""
    v = load(path)
    assert decide(policy_for(in_guest, v), v).to_json() == rust_text(v["expect"])
    assert decide(policy_for(engine, v), v).to_json() == rust_text(v["expect"])


def test_both_ways_were_taken(engine: Engine, in_guest: Engine):
    # Runs after the vectors above (pytest keeps file order).
    assert engine.native_signature_checks >= 40
    assert in_guest.native_signature_checks == 0


def checkable(path: Path) -> bool:
    """Whether `greenlight check` can be given exactly this vector's request:
    an HTTP request whose `params` text is the compact JSON the binary
    writes back from a request file."""
    http = load(path)["request"].get("http")
    if http is None or http["params"] is None:
        return http is not None
    try:
        return dumps(json.loads(http["params"])) == http["params"]
    except ValueError:
        return False


CHECKABLE = [p for p in VECTORS if checkable(p)]


def test_most_vectors_can_be_checked_against_the_rust_binary():
    assert len(CHECKABLE) >= 50, f"only {len(CHECKABLE)} vectors for `greenlight check`"


@pytest.mark.parametrize("path", CHECKABLE, ids=[p.stem for p in CHECKABLE])
def test_the_decision_json_is_the_rust_binarys(engine: Engine, path: Path, tmp_path: Path):
    """`Decision.to_json()` is byte for byte what the Rust host prints for
    the same request (`greenlight check`, the component in wasmtime)."""
    binary = os.environ.get("GREENLIGHT_BIN")
    if not binary or not Path(binary).is_file():
        pytest.fail(f"GREENLIGHT_BIN must name the greenlight binary (got {binary!r})", pytrace=False)
    v = load(path)
    http = v["request"]["http"]
    request = tmp_path / "request.json"
    request.write_text(json.dumps({
        "method": http["method"], "path": http["path"], "query": http["query"], "headers": http["headers"],
        "params": None if http["params"] is None else json.loads(http["params"]),
    }))
    keys = [f"--keys={k['issuer']}={ROOT / k['jwks']}" for k in v["keys"]]
    out = subprocess.run([binary, "check", "--bundle", str(ROOT / v["bundle"]), "--request", str(request),
                          "--now", str(v["now"]), *keys], check=True, capture_output=True, text=True).stdout
    # The binary pretty-prints; compact it keeping its key order.
    rust = dumps(json.loads(out))
    assert decide(policy_for(engine, v), v).to_json() == rust
    assert rust == rust_text(v["expect"])
