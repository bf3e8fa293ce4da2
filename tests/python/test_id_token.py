"""OpenID Connect ID tokens (WIT 0.7.0, `authenticate-id-token`) in the
Python binding: `Policy.authenticate_id_token` signs a person in for a
relying party (`portal-client`) that sent a `nonce`, with the issuers, keys
and claim mapping of access tokens but the ID token's own rules (OpenID
Connect Core 1.0 §3.1.3.7): its audience and `nonce`, never an access
token's `typ`. Refusals raise `Denied` as `authenticate` does.

The tokens are ID tokens of tests/bundles/tokens' EdDSA issuer
(`https://ed.example`, whose access tokens must be `typ` `at+jwt`), signed
here with tests/keys/ed.pem by tests/python/ed25519_jws.py: no crypto
package is needed.
"""

import json
from pathlib import Path

import pytest
from ed25519_jws import SEED, b64u, ed25519_public, signed

from greenlight import Credential, Denied, Engine, Principal

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "tests/bundles/tokens"
ISSUER = "https://ed.example"
CLIENT = "portal-client"
NONCE = "n-123"
NOW = 1767225600
#: When the person signed in: before the token was issued.
SIGNED_IN = NOW - 30




def id_token(typ: "str | None" = "JWT", **claims) -> str:
    """An ID token of `https://ed.example` for alice, issued to the portal
    five seconds before `NOW` with its nonce; `claims` are added (a value
    `None` removes one), `typ` is the header's (`None`: none)."""
    body = {"iss": ISSUER, "aud": CLIENT, "sub": "alice", "nonce": NONCE, "iat": NOW - 5, "exp": NOW + 300,
            "auth_time": SIGNED_IN, "groups": ["finance"]}
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return signed({"alg": "EdDSA", "kid": "ed-1", **({"typ": typ} if typ is not None else {})}, body)


@pytest.fixture(scope="module")
def policy(engine):
    return engine.load_bundle_dir(BUNDLE)


def refusal(policy, token: str, client_id: str = CLIENT, nonce: str = NONCE, now: int = NOW) -> tuple:
    """`(code, message, issuer)` of the `Denied` the token is refused with."""
    with pytest.raises(Denied) as err:
        policy.authenticate_id_token(token, client_id, nonce, now)
    return err.value.code, err.value.message, err.value.issuer


def test_the_signing_key_is_the_issuers():
    jwks = json.loads((BUNDLE / "ed.jwks.json").read_text(encoding="utf-8"))
    assert (jwks["keys"][0]["kid"], jwks["keys"][0]["x"]) == ("ed-1", b64u(ed25519_public(SEED)))


def test_a_valid_id_token_gives_the_persons_credential(policy):
    # `typ` `JWT` passes although the issuer's access tokens must be
    # `at+jwt`: an ID token is checked with its own rules. The client is
    # the relying party, and a sign-in is meant for approving.
    assert policy.authenticate_id_token(id_token(), CLIENT, NONCE, NOW) == Credential(
        principal=Principal("User", "alice", CLIENT, (), ("finance",), (), "", ISSUER),
        expires_at=NOW + 300, auth_time=SIGNED_IN, approver=True)


def test_a_token_without_typ_auth_time_or_groups_is_accepted_too(policy):
    credential = policy.authenticate_id_token(id_token(typ=None, auth_time=None, groups=None), CLIENT, NONCE, NOW)
    assert credential == Credential(principal=Principal("User", "alice", CLIENT, (), (), (), "", ISSUER),
                                    expires_at=NOW + 300, auth_time=None, approver=True)


def test_a_wrong_nonce_is_refused(policy):
    assert refusal(policy, id_token(nonce="n-456")) == (
        "token-invalid-claim", "the ID token's `nonce` is not the one sent with this sign-in", None)
    # So is the right token checked against another sign-in's nonce.
    assert refusal(policy, id_token(), nonce="n-456")[:2] == (
        "token-invalid-claim", "the ID token's `nonce` is not the one sent with this sign-in")


def test_an_audience_not_naming_the_client_is_refused(policy):
    expected = ("token-wrong-audience", "the ID token's audience does not include `portal-client`", None)
    assert refusal(policy, id_token(aud="other-client")) == expected
    # The access tokens' audience is not the relying party either.
    assert refusal(policy, id_token(aud=["https://api.test", "other-client"])) == expected
    # The right token, for another relying party.
    assert refusal(policy, id_token(), client_id="other-client")[:2] == (
        "token-wrong-audience", "the ID token's audience does not include `other-client`")


def test_an_azp_naming_another_client_is_refused(policy):
    assert refusal(policy, id_token(aud=[CLIENT, "other-client"], azp="other-client")) == (
        "token-wrong-audience", "the ID token was issued to `other-client` (`azp`), not `portal-client`", None)
    # Several audiences with `azp` naming the relying party: accepted.
    credential = policy.authenticate_id_token(id_token(aud=[CLIENT, "other-client"], azp=CLIENT), CLIENT, NONCE, NOW)
    assert (credential.principal.subject, credential.principal.client_id) == ("alice", CLIENT)


def test_the_issuers_leeway_applies_and_exp_iat_and_nonce_are_required(policy):
    # `https://ed.example` has the default leeway of 60 seconds.
    exp = NOW + 300
    assert policy.authenticate_id_token(id_token(), CLIENT, NONCE, exp + 59).expires_at == exp
    assert refusal(policy, id_token(), now=exp + 60) == ("token-expired", f"the token expired at {exp}", None)
    for claim in ("exp", "iat", "nonce"):
        assert refusal(policy, id_token(**{claim: None})) == (
            "token-missing-claim", f"claim `{claim}` is missing or not of the right type", None)


def test_an_access_token_is_not_an_id_token(policy):
    expected = ("token-wrong-type", "an access token (`typ` `at+jwt`) is not an ID token", None)
    assert refusal(policy, id_token(typ="at+jwt")) == expected
    # A real access token of the issuer (tests/vectors/043), which
    # `authenticate` accepts.
    access = json.loads(next((ROOT / "tests/vectors").glob("043-*.json")).read_text(encoding="utf-8"))
    token = dict(access["request"]["http"]["headers"])["authorization"].removeprefix("Bearer ")
    assert policy.authenticate(token, access["now"]).principal.subject == "bob"
    assert refusal(policy, token, now=access["now"]) == expected


@pytest.mark.parametrize("client_id, nonce", [(CLIENT, ""), ("", NONCE)])
def test_an_empty_nonce_or_client_id_is_refused(policy, client_id, nonce):
    assert refusal(policy, id_token(), client_id, nonce) == (
        "request-invalid",
        "an ID token is checked for a relying party's `client_id` and `nonce`; both must be given", None)


def test_arguments_of_the_wrong_type_are_refused(policy):
    with pytest.raises(TypeError, match="the nonce must be a str"):
        policy.authenticate_id_token(id_token(), CLIENT, None, NOW)
    with pytest.raises(TypeError, match="the client id must be a str"):
        policy.authenticate_id_token(id_token(), 7, NONCE, NOW)
    with pytest.raises(TypeError, match="`now` must be Unix seconds as an int"):
        policy.authenticate_id_token(id_token(), CLIENT, NONCE, -1)


def test_the_call_reaches_the_module(hostile_path):
    # The hostile module refuses every ID token with a bad signature.
    policy = Engine(hostile_path).load_bundle([])
    with pytest.raises(Denied) as err:
        policy.authenticate_id_token("t", CLIENT, NONCE, NOW)
    assert (err.value.code, err.value.message, err.value.issuer) == ("token-bad-signature", "hostile", None)
