"""`respond`, the JSON printer and decision validation, without the component."""

import pytest

from greenlight import ApprovalRequired, Decision, InvalidOutput, Obligation, respond, status_of
from greenlight._json import dumps

JSON_HEADERS = [("content-type", "application/json"), ("cache-control", "no-store")]


def test_a_missing_token_gets_a_bare_bearer_challenge():
    d = Decision.deny("token-missing", "no bearer token", "h")
    assert respond(d, "https://gl.example") == (
        401, [("www-authenticate", "Bearer")] + JSON_HEADERS,
        {"error": "invalid_token", "error_description": "no bearer token", "code": "token-missing"})


def test_quotes_backslashes_and_controls_cannot_break_the_header():
    d = Decision.deny("token-malformed", 'bad "x\\y"\n\x7f\u0085é', "h")
    status, headers, body = respond(d, "s")
    assert status == 401
    assert headers[0] == ("www-authenticate", "Bearer error=\"invalid_token\", error_description=\"bad 'x/y'   é\"")
    assert body["error_description"] == 'bad "x\\y"\n\x7f\u0085é'


def test_engine_failures_are_503_without_a_challenge():
    d = Decision.deny("engine-timeout", "slow", "h")
    assert respond(d, "s") == (503, JSON_HEADERS, {"error": "temporarily_unavailable",
                                                   "error_description": "slow", "code": "engine-timeout"})


@pytest.mark.parametrize("code, answer", [
    ("request-invalid", (400, "invalid_request")),
    ("token-expired", (401, "invalid_token")),
    ("action-token-invalid", (401, "invalid_token")),
    ("action-token-replayed", (401, "invalid_token")),
    ("route-not-found", (403, "access_denied")),
    ("policy-forbidden", (403, "access_denied")),
    ("policy-no-permit", (403, "access_denied")),
    ("action-token-digest-mismatch", (403, "access_denied")),
    ("engine-memory-exceeded", (503, "temporarily_unavailable")),
    ("engine-unavailable", (503, "temporarily_unavailable")),
])
def test_each_denial_code_has_its_status(code, answer):
    assert status_of(code) == answer


def test_an_approval_without_a_message_says_approval_required():
    o = Obligation(("subject",), 1, 300, "window", 300, False, "")
    d = Decision(ApprovalRequired([{"type": "t"}], "dig", o), ("p",), "h")
    status, headers, body = respond(d, "https://gl")
    assert status == 401
    assert body["error_description"] == "approval required"
    assert body["ask"] == {"backchannel_authentication_endpoint": "https://gl/oauth/bc-authorize",
                           "token_endpoint": "https://gl/oauth/token"}
    assert list(body) == ["error", "error_description", "code", "authorization_details", "action_digest",
                          "obligation", "ask"]


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
    allow = {"kind": "allow", "subject": "", "consume": None, "forward_headers": []}
    with pytest.raises(InvalidOutput, match="an allow without a subject"):
        Decision.from_dict({**ok, "verdict": allow})
    bad_header = {**allow, "subject": "a", "forward_headers": [["x-a", "1\r\nset-cookie: x"]]}
    with pytest.raises(InvalidOutput, match="is not a valid HTTP header"):
        Decision.from_dict({**ok, "verdict": bad_header})
    with pytest.raises(InvalidOutput, match="reasons has 65 entries"):
        Decision.from_dict({**ok, "reasons": ["r"] * 65})
