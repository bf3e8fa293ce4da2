"""Principal attributes and RFC 9470 step-up (WIT 0.6.0) in the Python
binding: the JSON shapes (`Principal.attributes`, `StepUpRequired`) written
exactly as the Rust `Decision::to_json` writes them and read back strictly;
the ASGI middleware on tests/bundles/claims (a step-up answered `401` by the
component, never through the approval service; a token that meets it
reaching the app; a required claim missing); and `evaluate_as` with a
vouched subject's attributes, which the engine checks.

The bundle's issuer signs EdDSA only, so the tokens are signed here with
tests/keys/ed.pem by a small Ed25519 (RFC 8032 §5.1.6, after its §6
reference code): no crypto package is needed.
"""

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from ed25519_jws import SEED, b64u, ed25519_public, signed

from greenlight import (
    ATTRIBUTE_KINDS,
    AccessRequest,
    Allow,
    Attribute,
    AttributeValue,
    Decision,
    Denied,
    Deny,
    InvalidOutput,
    Principal,
    StepUpRequired,
)
from greenlight.asgi import GreenlightMiddleware
from wasmtime.component import Variant

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "tests/bundles/claims"
SERVICE = "https://greenlight.example.com"
ISSUER = "https://idp.claims.test"
AUDIENCE = "https://api.test"
DEPARTMENT = "https://example.com/department"
#: The vectors' `now` on this bundle (tests/vectors/105-step-up-no-acr.json).
NOW = 1767225600
#: A policy hash for decisions made up here (not the bundle's).
HASH = "ad199748a58bf8871a056a80f0146caf2af660b5beed9593fff3fb0116e53f7f"
STEP_UP_MESSAGE = ("`payment.refund` on `Payment::p-1` needs a new sign-in: the token names no sign-in class "
                   "(`acr`); one of `urn:example:mfa` is needed")




def token(**claims) -> str:
    """An access token of the claims bundle's issuer for carol, issued a
    minute before `NOW`; `claims` are added (a value `None` removes one)."""
    body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "carol", "azp": "books", "iat": NOW - 60, "exp": NOW + 600,
            "scope": "reports", DEPARTMENT: "finance", "realm_access": {"roles": ["reader", "auditor"]}}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return signed({"alg": "EdDSA", "kid": "ed-1", "typ": "JWT"}, body)


def test_the_signing_key_is_the_bundles():
    jwks = json.loads((BUNDLE / "ed.jwks.json").read_text(encoding="utf-8"))
    assert b64u(ed25519_public(SEED)) == jwks["keys"][0]["x"]


# ---- the JSON shapes -----------------------------------------------------------

#: A principal with every kind of attribute, in serde's order (attributes by name).
CAROL = {"entity_type": "User", "subject": "carol", "client_id": "books", "scopes": ["reports"], "groups": [],
         "roles": [], "tenant": "", "issuer": ISSUER,
         "attributes": {"department": {"string": "finance"}, "email_verified": {"bool": True},
                        "level": {"long": -3}, "realm_roles": {"set": ["a", "b"]},
                        "signed_in": {"datetime": 1767225000}}}
CAROL_JSON = ('{"entity_type":"User","subject":"carol","client_id":"books","scopes":["reports"],"groups":[],'
              '"roles":[],"tenant":"","issuer":"https://idp.claims.test","attributes":{"department":'
              '{"string":"finance"},"email_verified":{"bool":true},"level":{"long":-3},"realm_roles":'
              '{"set":["a","b"]},"signed_in":{"datetime":1767225000}}}')
ACTION = {"name": "report.read", "resource_type": "Report", "resource_id": "r-1", "params": {},
          "digest": "s3mc_eFpjCyWaBzOJ-i-gp2IdkNsp9usiUxZQMv_1XM"}


def allow_of(principal: dict) -> dict:
    return {"verdict": {"kind": "allow", "principal": principal, "action": ACTION, "approval_id": None,
                        "consume": None, "forward_headers": [["x-greenlight-subject", "carol"]]},
            "reasons": ["report-read"], "policy_hash": HASH}


def test_a_principal_with_every_attribute_kind_round_trips_exactly():
    # Given out of order: read, kept sorted by name, written as serde writes the BTreeMap.
    shuffled = {**CAROL, "attributes": dict(reversed(list(CAROL["attributes"].items())))}
    d = Decision.from_dict(allow_of(shuffled))
    p = d.verdict.principal
    assert p.attributes == (
        Attribute("department", AttributeValue("string", "finance")),
        Attribute("email_verified", AttributeValue("bool", True)),
        Attribute("level", AttributeValue("long", -3)),
        Attribute("realm_roles", AttributeValue("set", ("a", "b"))),
        Attribute("signed_in", AttributeValue("datetime", 1767225000)),
    )
    assert p.attribute("level") == AttributeValue.long(-3)
    assert p.attribute("admin") is None
    assert d.to_json() == (f'{{"verdict":{{"kind":"allow","principal":{CAROL_JSON},"action":{{"name":"report.read",'
                           '"resource_type":"Report","resource_id":"r-1","params":{},"digest":'
                           '"s3mc_eFpjCyWaBzOJ-i-gp2IdkNsp9usiUxZQMv_1XM"},"approval_id":null,"consume":null,'
                           '"forward_headers":[["x-greenlight-subject","carol"]]},"reasons":["report-read"],'
                           f'"policy_hash":"{HASH}"}}')
    assert Decision.from_dict(json.loads(d.to_json())) == d
    assert Principal.from_dict(shuffled) == p
    assert ATTRIBUTE_KINDS == ("string", "long", "bool", "set", "datetime")


def test_a_principal_without_attributes_has_no_attributes_member():
    p = Principal("User", "carol", "", (), (), (), "", ISSUER)
    assert p.attributes == ()
    assert json.dumps(p.to_dict()) == ('{"entity_type": "User", "subject": "carol", "client_id": "", "scopes": [], '
                                       '"groups": [], "roles": [], "tenant": "", "issuer": "https://idp.claims.test"}')
    assert Principal.from_dict({**CAROL, "attributes": {}}).to_dict() == {
        k: v for k, v in CAROL.items() if k != "attributes"}


def test_attributes_given_as_a_mapping_are_sorted_and_a_name_twice_is_refused():
    p = Principal("User", "carol", "", (), (), (), "", ISSUER,
                  {"level": AttributeValue.long(2), "acr": AttributeValue.string("urn:example:mfa")})
    assert [a.name for a in p.attributes] == ["acr", "level"]
    with pytest.raises(ValueError) as e:
        Principal("User", "carol", "", (), (), (), "", ISSUER,
                  [("level", AttributeValue.long(2)), Attribute("level", AttributeValue.long(3))])
    assert str(e.value) == "attribute `level` is given twice"
    with pytest.raises(TypeError) as e:
        Principal("User", "carol", "", (), (), (), "", ISSUER, {"level": 2})
    assert str(e.value) == "attribute `level` must have an AttributeValue"


@pytest.mark.parametrize("attributes, message", [
    ({"level": {"integer": 3}},
     "attribute `level` has the unknown kind `integer`; the kinds are `string`, `long`, `bool`, `set`, `datetime`"),
    ({"level": {"long": True}},
     "attribute `level`: a `long` holds an integer from -9223372036854775808 to 9223372036854775807, not true"),
    ({"level": {"long": 2**63}},
     "attribute `level`: a `long` holds an integer from -9223372036854775808 to 9223372036854775807, "
     "not 9223372036854775808"),
    ({"level": {"long": 3.0}},
     "attribute `level`: a `long` holds an integer from -9223372036854775808 to 9223372036854775807, not 3.0"),
    ({"email_verified": {"bool": 1}}, "attribute `email_verified`: a `bool` holds true or false, not 1"),
    ({"realm_roles": {"set": ["reader", 7]}},
     'attribute `realm_roles`: a `set` holds a list of strings, not ["reader", 7]'),
    ({"realm_roles": {"set": "reader"}}, 'attribute `realm_roles`: a `set` holds a list of strings, not "reader"'),
    ({"signed_in": {"datetime": -1}},
     "attribute `signed_in`: a `datetime` holds whole Unix seconds from 0 to 18446744073709551615, not -1"),
    ({"department": {"string": None}}, "attribute `department`: a `string` holds a string, not null"),
    ({"department": "finance"},
     'attribute `department` is not an object of one member naming its kind, but "finance"'),
    ({"department": {"string": "finance", "long": 3}},
     'attribute `department` is not an object of one member naming its kind, but {"string": "finance", "long": 3}'),
    ([["department", {"string": "finance"}]],
     'the attributes are not an object, but [["department", {"string": "finance"}]]'),
])
def test_malformed_attributes_are_refused_with_their_message(attributes, message):
    with pytest.raises(InvalidOutput) as e:
        Decision.from_dict(allow_of({**CAROL, "attributes": attributes}))
    assert str(e.value) == message
    with pytest.raises(ValueError) as e:
        Principal.from_dict({**CAROL, "attributes": attributes})
    assert str(e.value) == message


def test_more_attributes_than_a_list_may_hold_are_refused():
    many = {f"a{i:02}": {"long": i} for i in range(65)}
    with pytest.raises(InvalidOutput) as e:
        Decision.from_dict(allow_of({**CAROL, "attributes": many}))
    assert str(e.value) == "attributes has 65 entries"


def test_attribute_values_refuse_what_does_not_fit_their_kind():
    # Python's bool is an int: never a `long` or a `datetime`.
    for make, value, message in (
        (AttributeValue.long, True,
         "a `long` holds an integer from -9223372036854775808 to 9223372036854775807, not true"),
        (AttributeValue.datetime, False, "a `datetime` holds whole Unix seconds from 0 to 18446744073709551615, not false"),
        (AttributeValue.bool, 0, "a `bool` holds true or false, not 0"),
        (AttributeValue.set, "ab", 'a `set` holds a list of strings, not "ab"'),
    ):
        with pytest.raises(ValueError) as e:
            make(value)
        assert str(e.value) == message
    assert AttributeValue.set(["b", "a"]).value == ("b", "a")  # the order given is kept
    assert AttributeValue.set(["b", "a"]).to_dict() == {"set": ["b", "a"]}
    assert AttributeValue.long(2**63 - 1).to_dict() == {"long": 9223372036854775807}
    with pytest.raises(ValueError) as e:
        AttributeValue("integer", 3)
    assert str(e.value) == ('the unknown attribute kind "integer"; the kinds are '
                            "`string`, `long`, `bool`, `set`, `datetime`")


STEP_UP = {"verdict": {"kind": "step-up-required", "acr_values": ["urn:example:mfa", "urn:example:hwk"],
                       "max_age": 300, "message": "sign in again"},
           "reasons": ["refund"], "policy_hash": HASH}


def test_a_step_up_round_trips_exactly():
    d = Decision.from_dict(STEP_UP)
    assert d.verdict == StepUpRequired(("urn:example:mfa", "urn:example:hwk"), 300, "sign in again")
    assert d.verdict.kind == "step-up-required"
    assert not d.allowed and not d.needs_service
    assert d.to_json() == ('{"verdict":{"kind":"step-up-required","acr_values":["urn:example:mfa","urn:example:hwk"],'
                           f'"max_age":300,"message":"sign in again"}},"reasons":["refund"],"policy_hash":"{HASH}"}}')
    assert Decision.from_dict(json.loads(d.to_json())) == d
    # No `max_age`: null, as serde writes `None` (and reads it absent too).
    none = Decision(StepUpRequired((), None, "m"), (), HASH)
    assert none.to_json() == ('{"verdict":{"kind":"step-up-required","acr_values":[],"max_age":null,"message":"m"},'
                              f'"reasons":[],"policy_hash":"{HASH}"}}')
    absent = {k: v for k, v in STEP_UP["verdict"].items() if k != "max_age"}
    assert Decision.from_dict({**STEP_UP, "verdict": absent}).verdict.max_age is None


@pytest.mark.parametrize("change, message", [
    ({"max_age": -1}, "`max_age` is not an unsigned integer"),
    ({"max_age": True}, "`max_age` is not an unsigned integer"),
    ({"acr_values": "urn:example:mfa"}, "acr values is not a list"),
    ({"acr_values": [1]}, "an acr value is not a string"),
    ({"acr_values": ["x"] * 65}, "acr values has 65 entries"),
    ({"message": None}, "the step-up message is not a string"),
    ({"issuer": "x"}, "the step-up lacks [] or has unknown ['issuer']"),
])
def test_a_malformed_step_up_is_refused(change, message):
    with pytest.raises(InvalidOutput) as e:
        Decision.from_dict({**STEP_UP, "verdict": {**STEP_UP["verdict"], **change}})
    assert str(e.value) == message


def test_the_component_answers_a_step_up(engine):
    policy = engine.load_bundle_dir(BUNDLE)
    # Lowered to the WIT with `max-age` none and two classes.
    answer = policy.respond(Decision(StepUpRequired(("urn:a", "urn:b"), None, "sign in again"), (), HASH), SERVICE)
    assert answer == (401, [("www-authenticate", 'Bearer error="insufficient_user_authentication", '
                                                 'error_description="sign in again", acr_values="urn:a urn:b"'),
                            ("content-type", "application/json"), ("cache-control", "no-store")],
                      {"error": "insufficient_user_authentication", "error_description": "sign in again",
                       "code": "step-up-required", "acr_values": "urn:a urn:b"})
    # What validation refuses is never handed to the component.
    status, _, body = policy.respond(Decision(StepUpRequired(("x",) * 65, 1, "m"), (), HASH), SERVICE)
    assert (status, body["code"], body["error_description"]) == (
        503, "engine-invalid-output", "the decision cannot be answered: acr values has 65 entries")


# ---- the middleware on tests/bundles/claims ------------------------------------


class Echo:
    """An ASGI app that records the headers it received and answers 200."""

    def __init__(self):
        self.seen = []

    async def __call__(self, scope, receive, send):
        while (await receive()).get("more_body"):
            pass
        self.seen.append(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"upstream"})


def gateway(engine):
    requests = []

    def service(request: httpx.Request) -> httpx.Response:
        requests.append(request.url.path)
        return httpx.Response(404)

    app = Echo()
    mw = GreenlightMiddleware(app, bundle_dir=BUNDLE, service_url=SERVICE, engine=engine, clock=lambda: NOW,
                              transport=httpx.MockTransport(service))
    return mw, app, requests


def refund(mw, bearer: str) -> httpx.Response:
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=mw), base_url="http://api.test") as c:
            return await c.post("/payments/p-1/refund", json={"amount": 50},
                                headers={"authorization": f"Bearer {bearer}"})
    return asyncio.run(go())


def test_a_refund_without_a_sign_in_class_gets_a_step_up_and_no_service_call(engine):
    mw, app, requests = gateway(engine)
    r = refund(mw, token())
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == (
        f'Bearer error="insufficient_user_authentication", error_description="{STEP_UP_MESSAGE}", '
        'acr_values="urn:example:mfa", max_age=300')
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    assert r.json() == {"error": "insufficient_user_authentication", "error_description": STEP_UP_MESSAGE,
                        "code": "step-up-required", "acr_values": "urn:example:mfa", "max_age": 300}
    assert app.seen == []
    # Only the service's keys were fetched (at the first request): never /v1/check.
    assert requests == ["/.well-known/jwks.json"]


def test_a_sign_in_too_old_gets_a_step_up(engine):
    mw, app, requests = gateway(engine)
    r = refund(mw, token(acr="urn:example:mfa", auth_time=NOW - 301))
    assert r.status_code == 401
    assert r.json()["code"] == "step-up-required"
    assert r.json()["max_age"] == 300
    assert app.seen == [] and "/v1/check" not in requests


def test_a_refund_after_a_recent_multi_factor_sign_in_reaches_the_app(engine):
    mw, app, requests = gateway(engine)
    r = refund(mw, token(acr="urn:example:mfa", auth_time=NOW - 10))
    assert (r.status_code, r.text) == (200, "upstream")
    (headers,) = app.seen
    assert headers[b"x-greenlight-subject"] == b"carol"
    assert headers[b"x-greenlight-issuer"] == ISSUER.encode()
    assert headers[b"x-greenlight-action"] == b"payment.refund"
    assert "/v1/check" not in requests


def test_a_token_without_the_required_department_claim_is_refused(engine):
    mw, app, _ = gateway(engine)
    r = refund(mw, token(**{DEPARTMENT: None, "acr": "urn:example:mfa", "auth_time": NOW - 10}))
    message = f"claim `{DEPARTMENT}` (attribute `department`) is required and missing"
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == f'Bearer error="invalid_token", error_description="{message}"'
    assert r.json()["code"] == "token-missing-claim"
    assert r.json()["error_description"] == message
    assert app.seen == []


def test_the_engine_maps_a_tokens_claims_to_attributes(engine):
    policy = engine.load_bundle_dir(BUNDLE)
    bearer = token(acr="urn:example:mfa", auth_time=NOW - 10, email_verified=True,
                   **{"https://example.com/profile": {"level": 4}})
    credential = policy.authenticate(bearer, NOW)
    assert credential.principal.attributes == (
        Attribute("acr", AttributeValue.string("urn:example:mfa")),
        Attribute("department", AttributeValue.string("finance")),
        Attribute("email_verified", AttributeValue.bool(True)),
        Attribute("level", AttributeValue.long(4)),
        Attribute("realm_roles", AttributeValue.set(["auditor", "reader"])),
        Attribute("signed_in", AttributeValue.datetime(NOW - 10)),
    )
    assert credential.auth_time == NOW - 10


# ---- evaluate_as with attributes ----------------------------------------------


def carol(**attributes) -> Principal:
    return Principal("User", "carol", "books", ("reports",), (), (), "", ISSUER, attributes)


READ = AccessRequest("", "report.read", "Report", "r-1")


def test_a_vouched_subjects_mapped_and_typed_attributes_are_accepted(engine):
    policy = engine.load_bundle_dir(BUNDLE)
    d = policy.evaluate_as(carol(department=AttributeValue.string("finance"),
                                 realm_roles=AttributeValue.set(["reader"])), READ, NOW)
    assert isinstance(d.verdict, Allow)
    assert d.reasons == ("report-read",)
    # The engine adds the defaults of the attributes it was not given.
    assert d.verdict.principal.to_dict()["attributes"] == {
        "department": {"string": "finance"}, "email_verified": {"bool": False}, "level": {"long": 0},
        "realm_roles": {"set": ["reader"]}}
    # The attributes decide: another department is not permitted.
    d = policy.evaluate_as(carol(department=AttributeValue.string("sales"),
                                 realm_roles=AttributeValue.set(["reader"])), READ, NOW)
    assert d.verdict == Deny("policy-no-permit", "no policy permits `report.read` on `Report::r-1`")


@pytest.mark.parametrize("attributes, message", [
    ({"department": AttributeValue.string("finance"), "admin": AttributeValue.bool(True)},
     "the vouched subject's attribute `admin` is not one the bundle maps"),
    ({"department": AttributeValue.string("finance"), "level": AttributeValue.string("3")},
     "the vouched subject's attribute `level` is a String, not a Long"),
    ({}, "the vouched subject lacks the required attribute `department`"),
])
def test_a_vouched_subjects_attributes_are_checked(engine, attributes, message):
    policy = engine.load_bundle_dir(BUNDLE)
    d = policy.evaluate_as(carol(**attributes), READ, NOW)
    assert (d.verdict, d.reasons) == (Deny("request-invalid", message), ())


def test_a_vouched_subject_may_need_a_step_up_too(engine):
    policy = engine.load_bundle_dir(BUNDLE)
    d = policy.evaluate_as(carol(department=AttributeValue.string("finance")),
                           AccessRequest("", "payment.refund", "Payment", "p-1", None, '{"amount":50}'), NOW)
    assert d.verdict == StepUpRequired(("urn:example:mfa",), 300, STEP_UP_MESSAGE)
    assert d.reasons == ("refund",)


@pytest.mark.parametrize("attributes, message", [
    ([("level", Variant("long", 2)), ("level", Variant("long", 3))], "attribute `level` is given twice"),
    ([("level", 2)], "an attribute value is not a variant"),
    ([("level", Variant("long", True))],
     "attribute `level`: a `long` holds an integer from -9223372036854775808 to 9223372036854775807, not true"),
    ([("level", Variant("integer", 2))], "unknown attribute kind 'integer'"),
    ([(f"a{i:02}", Variant("bool", True)) for i in range(65)], "attributes has 65 entries"),
])
def test_a_modules_malformed_attributes_are_refused(engine, monkeypatch, attributes, message):
    """As the Rust host (`host/src/convert.rs`): the module's attributes are
    checked like the rest of its answer."""
    policy = engine.load_bundle_dir(BUNDLE)
    principal = {"entity-type": "User", "subject": "carol", "client-id": "books", "scopes": [], "groups": [],
                 "roles": [], "tenant": "", "issuer": ISSUER,
                 "attributes": [SimpleNamespace(name=n, value=v) for n, v in attributes]}
    answer = SimpleNamespace(**{"principal": SimpleNamespace(**principal), "expires-at": 1, "auth-time": None,
                                "approver": False})
    monkeypatch.setattr(policy, "_result", lambda name, *args: answer)
    with pytest.raises(Denied) as err:
        policy.authenticate("t", 0)
    assert (err.value.code, err.value.message) == (
        "engine-invalid-output", f"the policy module returned a malformed credential: {message}")
