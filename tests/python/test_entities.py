"""Entity data in the Python host: a bundle's `entities.json` says who a
vouched subject is, and a host adds entities for one request (a resource it
has just looked up) beside it; neither the host nor the request may restate
what the token or the data says. The bundle is the AuthZEN interop Todo
bundle (tests/authzen-interop/todo)."""

import json
from pathlib import Path

import pytest

from greenlight import AccessRequest, Allow, BundleError, Deny, Principal

ROOT = Path(__file__).resolve().parents[2]
TODO = ROOT / "tests/authzen-interop/todo"
ISSUER = "https://idp.example.com"
NOW = 1767225600
MORTY = "CiRmZDE2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"
BETH = "CiRmZDM2MTRkMy1jMzlhLTQ3ODEtYjdiZC04Yjk2ZjVhNTEwMGQSBWxvY2Fs"


def user(pid: str) -> Principal:
    return Principal("user", pid, "todo-backend", (), (), (), "", ISSUER)


def update(todo: str, owner=None, entities=None) -> AccessRequest:
    props = None if owner is None else json.dumps({"ownerID": owner})
    return AccessRequest("", "can_update_todo", "todo", todo, props, None, entities)


def test_the_data_says_who_the_subject_is(engine):
    policy = engine.load_bundle_dir(TODO)
    d = policy.evaluate_as(user(MORTY), update("t-1", "morty@the-citadel.com"), NOW)
    assert (isinstance(d.verdict, Allow), d.reasons) == (True, ("update-own-todo",))
    d = policy.evaluate_as(user(BETH), update("t-1", "beth@the-smiths.com"), NOW)
    assert d.verdict == Deny("policy-no-permit", "no policy permits `can_update_todo` on `todo::t-1`")


def test_a_host_gives_the_resource_it_has_looked_up(engine):
    policy = engine.load_bundle_dir(TODO)
    looked_up = [{"uid": {"type": "todo", "id": "t-2"}, "attrs": {"ownerID": "morty@the-citadel.com"}}]
    # As a list or as JSON text.
    for entities in (looked_up, json.dumps(looked_up)):
        d = policy.evaluate_as(user(MORTY), update("t-2", entities=entities), NOW)
        assert (isinstance(d.verdict, Allow), d.reasons) == (True, ("update-own-todo",))
    # The request may not contradict what the host looked up.
    d = policy.evaluate_as(user(MORTY), update("t-2", "morty@the-citadel.com", looked_up), NOW)
    assert d.verdict == Deny(
        "request-invalid",
        'attribute `ownerID` of the resource todo::"t-2" is given by both the request and entity data')


def test_a_host_may_not_restate_the_principal(engine):
    policy = engine.load_bundle_dir(TODO)
    promoted = [{"uid": {"type": "user", "id": BETH}, "parents": [{"type": "Role", "id": "admin"}]}]
    d = policy.evaluate_as(user(BETH), update("t-1", "beth@the-smiths.com", promoted), NOW)
    assert d.verdict == Deny(
        "request-invalid",
        f'the host\'s entities may not give the principal (user::"{BETH}"): its facts come from its token')


def test_data_that_breaks_a_rule_is_refused_at_load(engine, tmp_path):
    for f in ("greenlight.toml", "policy.cedar", "idp.jwks.json"):
        (tmp_path / f).write_text((TODO / f).read_text())
    (tmp_path / "entities.json").write_text('[{"uid": {"type": "Action", "id": "can_update_todo"}}]')
    with pytest.raises(BundleError) as e:
        engine.load_bundle_dir(tmp_path)
    assert 'entities.json:1:35: Action::"can_update_todo" is or names an action' in str(e.value)
    assert e.value.problems[0].kind == "invalid-entities"
