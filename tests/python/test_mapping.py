"""The HTTP mapping of docs/gateway.md as the component answers it
(`Policy.respond` calls its `gateway.respond`), the binding's checks on that
answer, the JSON printers, and decision validation."""

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from greenlight import Decision, InvalidOutput
from greenlight._json import dumps
from greenlight.gateway import checked_answer

ROOT = Path(__file__).resolve().parents[2]
JSON_HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]


def vector(name: str) -> dict:
    return json.loads(next((ROOT / "tests/vectors").glob(f"{name}-*.json")).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(engine):
    return engine.load_bundle_dir(ROOT / "examples/bundle")


def test_a_missing_token_gets_a_bare_bearer_challenge(demo):
    d = Decision.deny("token-missing", "no bearer token", "h")
    assert demo.respond(d, "https://gl.example") == (
        401, [("www-authenticate", "Bearer")] + JSON_HEADERS,
        {"error": "invalid_token", "error_description": "no bearer token", "code": "token-missing"})


def test_quotes_backslashes_and_controls_cannot_break_the_header(demo):
    d = Decision.deny("token-malformed", 'bad "x\\y"\n\x7f\u0085é', "h")
    status, headers, body = demo.respond(d, "s")
    assert status == 401
    assert headers[0] == ("www-authenticate", "Bearer error=\"invalid_token\", error_description=\"bad 'x/y'   é\"")
    assert body["error_description"] == 'bad "x\\y"\n\x7f\u0085é'


def test_engine_failures_are_503_without_a_challenge(demo):
    d = Decision.deny("engine-timeout", "slow", "h")
    assert demo.respond(d, "s") == (503, JSON_HEADERS, {"error": "temporarily_unavailable",
                                                        "error_description": "slow", "code": "engine-timeout"})


#: The table of docs/gateway.md, written out by hand: code -> (status, error).
TABLE = {
    "request-invalid": (400, "invalid_request"),
    **{c: (401, "invalid_token") for c in (
        "token-missing", "token-too-large", "token-malformed", "token-unsupported-algorithm",
        "token-algorithm-not-allowed", "token-unknown-issuer", "token-unknown-key", "token-key-mismatch",
        "token-bad-signature", "token-wrong-type", "token-unknown-critical-header", "token-wrong-audience",
        "token-expired", "token-not-yet-valid", "token-issued-in-future", "token-missing-claim", "token-invalid-claim",
        "action-token-invalid", "action-token-replayed")},
    **{c: (403, "access_denied") for c in (
        "route-not-found", "policy-forbidden", "policy-no-permit", "action-token-digest-mismatch")},
    **{c: (503, "temporarily_unavailable") for c in (
        "engine-trap", "engine-timeout", "engine-memory-exceeded", "engine-invalid-output", "engine-unavailable")},
}


def test_the_table_names_every_denial_code():
    from greenlight import DENIAL_CODES
    assert sorted(TABLE) == sorted(DENIAL_CODES)


@pytest.mark.parametrize("code", sorted(TABLE))
def test_each_denial_code_gets_its_status_from_the_component(demo, code):
    status, error = TABLE[code]
    answer = demo.respond(Decision.deny(code, "m", "h"), "s")
    assert (answer.status, answer.body) == (status, {"error": error, "error_description": "m", "code": code})
    challenge = {"token-missing": "Bearer",
                 **{c: 'Bearer error="invalid_token", error_description="m"'
                    for c, (s, _) in TABLE.items() if s == 401 and c != "token-missing"}}.get(code)
    assert answer.headers == ([("www-authenticate", challenge)] if challenge else []) + JSON_HEADERS


def test_an_approval_without_a_message_says_approval_required(demo):
    d = Decision.from_dict(vector("065")["expect"])  # a window grant whose @message is empty
    assert d.verdict.obligation.message == ""
    status, headers, body = demo.respond(d, "https://gl")
    assert status == 401
    assert body["error_description"] == "approval required"
    assert body["ask"] == {"backchannel_authentication_endpoint": "https://gl/oauth/bc-authorize",
                           "token_endpoint": "https://gl/oauth/token"}
    assert body["action_digest"] == d.verdict.action.digest
    assert list(body) == ["error", "error_description", "code", "authorization_details", "action_digest",
                          "obligation", "ask"]


def test_an_allow_is_a_pass_through(demo):
    d = Decision.from_dict(vector("001")["expect"])
    assert demo.respond(d, "s") == (0, [], None)


def test_a_decision_that_cannot_be_a_wit_value_is_answered_503(demo):
    d = Decision.from_dict(vector("002")["expect"])
    forged = dataclasses.replace(d, verdict=dataclasses.replace(
        d.verdict, obligation=dataclasses.replace(d.verdict.obligation, grant="forever")))
    assert demo.respond(forged, "s") == (503, JSON_HEADERS, {
        "error": "temporarily_unavailable", "code": "engine-invalid-output",
        "error_description": "the decision cannot be answered: unknown grant mode 'forever'"})


def answer(status, body=None, headers=()):
    """A WIT `http-answer` as wasmtime-py lifts it."""
    return SimpleNamespace(status=status, headers=list(headers), body=body)


DENY = Decision.deny("policy-forbidden", "no", "h")


@pytest.mark.parametrize("raw, decision, why", [
    (answer(0), DENY, "status 0 with no body does not answer a deny `policy-forbidden`"),
    (answer(200, "{}"), DENY, "status 200 with a body does not answer a deny `policy-forbidden`"),
    (answer(403, "[]"), DENY, "status 403 with a body does not answer a deny `policy-forbidden`"),
    (answer(403, "null"), DENY, "status 403 with no body does not answer a deny `policy-forbidden`"),
    (answer(403, "{"), DENY, "the answer's body is not JSON: Expecting property name enclosed in double quotes: "
                             "line 1 column 2 (char 1)"),
    (answer(403, "{}", [("bad name", "v")]), DENY, "header `bad name` is not a valid HTTP header"),
    (answer(403, "{}", [("x-a", "1\r\nset-cookie: x")]), DENY, "header `x-a` is not a valid HTTP header"),
    (answer(403, "{}", [("x-a", "1")] * 65), DENY, "the answer's headers has 65 entries"),
    (answer(401, "{}"), Decision.from_dict(vector("001")["expect"]), "status 401 with a body does not answer an allow"),
    (answer(0), Decision.from_dict(vector("002")["expect"]), "status 0 with no body does not answer an approval-required"),
], ids=["pass-through-deny", "2xx", "array-body", "null-body", "not-json", "bad-name", "crlf", "too-many",
        "answered-allow", "pass-through-challenge"])
def test_an_answer_that_does_not_fit_its_decision_is_refused(raw, decision, why):
    with pytest.raises(InvalidOutput) as err:
        checked_answer(raw, decision)
    assert str(err.value) == why


@pytest.mark.parametrize("value, text", [
    (1.0, "1.0"), (100.0, "100.0"), (12.5, "12.5"), (-2.5, "-2.5"), (-0.0, "-0.0"), (0.1, "0.1"),
    (1e15, "1000000000000000.0"), (1e16, "1e16"), (1.2345e20, "1.2345e20"),
    (1e-5, "0.00001"), (1.234e-5, "0.00001234"), (1e-6, "1e-6"), (1.5e-7, "1.5e-7"),
    (5e-324, "5e-324"), (1.7976931348623157e308, "1.7976931348623157e308"),
    (2**64 - 1, "18446744073709551615"), (-(2**63), "-9223372036854775808"), (2**64, "1.8446744073709552e19"),
    ("é\"\\\n\x01\x7f/", '"é\\"\\\\\\n\\u0001\x7f/"'),
    ({"b": [1, None, True], "a": {}}, '{"b":[1,null,true],"a":{}}'),
])
def test_json_is_printed_as_serde_json_prints_it(value, text):
    assert dumps(value) == text


def test_a_malformed_decision_is_refused():
    ok = {"verdict": {"kind": "deny", "code": "policy-forbidden", "message": "m"}, "reasons": [], "policy_hash": "h"}
    assert Decision.from_dict(ok).to_dict() == ok
    with pytest.raises(InvalidOutput, match=r"has unknown \['extra'\]"):
        Decision.from_dict({**ok, "extra": 1})
    assert Decision.from_dict({**ok, "ask": {}}, extra_keys=frozenset({"ask"})).to_dict() == ok
    allow = vector("058")["expect"]["verdict"]
    with pytest.raises(InvalidOutput, match="^an allow without a subject$"):
        Decision.from_dict({**ok, "verdict": {**allow, "principal": {**allow["principal"], "subject": ""}}})
    bad_header = {**allow, "forward_headers": [["x-a", "1\r\nset-cookie: x"]]}
    with pytest.raises(InvalidOutput, match="^header `x-a` is not a valid HTTP header$"):
        Decision.from_dict({**ok, "verdict": bad_header})
    with pytest.raises(InvalidOutput, match="^reasons has 65 entries$"):
        Decision.from_dict({**ok, "reasons": ["r"] * 65})
    challenge = vector("002")["expect"]["verdict"]
    bad_approver = {**challenge, "obligation": {**challenge["obligation"], "approvers": ["admins"]}}
    with pytest.raises(InvalidOutput) as err:
        Decision.from_dict({**ok, "verdict": bad_approver})
    assert str(err.value) == ("approver `admins` should be `group:NAME`, `group:NAME@tenant`, "
                              "`user:SUBJECT` or `subject`")


def test_a_principal_reads_as_serde_reads_it():
    """Only `entity_type`, `subject` and `issuer` are required (serde's
    defaults); the decision prints every field back."""
    d = vector("058")["expect"]
    short = {"entity_type": "User", "subject": "bob", "issuer": "https://greenlight.test"}
    read = Decision.from_dict({**d, "verdict": {**d["verdict"], "principal": short}})
    assert read.to_dict()["verdict"]["principal"] == {
        "entity_type": "User", "subject": "bob", "client_id": "", "scopes": [], "groups": [], "roles": [],
        "tenant": "", "issuer": "https://greenlight.test"}
