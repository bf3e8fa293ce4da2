"""People decide in the portal, in a real browser, signed in with a real
provider: what waits for them, what they see, how they vote, how the
requester confirms their own action; and what an attacker gets."""

import html
import json
import os
import re
import time
import urllib.parse
from pathlib import Path

import pytest

CIBA = "urn:openid:params:grant-type:ciba"


def bearer(token):
    return {"authorization": f"Bearer {token}"}


def check(http, token, method, path, params=None):
    body = {"method": method, "path": path, "headers": bearer(token)}
    if params is not None:
        body["params"] = params
    return http.json("POST", "/v1/check", body=body)


def ask(http, token, details, **more):
    status, v = http.json("POST", "/oauth/bc-authorize", headers=bearer(token),
                          form={"authorization_details": json.dumps(details), **more})
    assert status == 200, v
    return v


def poll(http, token, id):
    return http.json("POST", "/oauth/token", headers=bearer(token),
                     form={"grant_type": CIBA, "auth_req_id": id})


def shot(page, name):
    folder = os.environ.get("GREENLIGHT_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def rows(page):
    return page.locator("#approvals tbody tr").evaluate_all(
        "rs => rs.map(r => r.dataset.approval)")


def cookie_header(page):
    return "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())


def refund_needing_finance(stack, app_token, amount):
    http = stack["http"]
    token = app_token("alice")
    status, d = check(http, token, "POST", "/payments/pay_9/refund", {"amount": amount, "currency": "EUR"})
    assert (status, d["verdict"]["kind"]) == (200, "approval-required"), d
    assert d["verdict"]["obligation"]["message"] == "Refund above 100: two finance approvals needed"
    return token, d["verdict"], ask(http, token, d["verdict"]["authorization_details"])


def test_finance_approves_a_refund_and_the_client_acts_once(stack, app_token, person):
    http = stack["http"]
    token, verdict, asked = refund_needing_finance(stack, app_token, 500)
    id = asked["auth_req_id"]
    assert "user_code" not in asked, "finance decides this one, not the requester"

    ann = person("fin-ann")
    assert ann.locator("#signed-in-as").inner_text() == "fin-ann"
    assert id in rows(ann)
    row = ann.locator(f"tr[data-approval='{id}']")
    assert row.locator("td").nth(3).inner_text() == "2 of 2"
    shot(ann, "portal-list.png")
    # Nobody outside finance sees it, nor does the requester.
    for other in ("outsider", "owner-acme", "alice"):
        page = person(other)
        assert id not in rows(page), other

    ann.click(f"tr[data-approval='{id}'] a")
    ann.wait_for_url(f"**/portal/approvals/{id}")
    assert ann.locator("#action").inner_text() == "payment.refund"
    assert ann.locator("#policy-message").inner_text() == "Refund above 100: two finance approvals needed"
    assert ann.locator("#resource").inner_text() == "Payment pay_9"
    params = ann.locator("#params tbody tr").evaluate_all(
        "rs => rs.map(r => [...r.cells].map(c => c.innerText))")
    assert params == [["amount", "500"], ["currency", '"EUR"']]
    assert ann.locator("#requester").inner_text() == "alice"
    assert ann.locator("#client").inner_text() == "shop-app"
    assert ann.locator("#digest").inner_text() == verdict["action"]["digest"]
    assert ann.locator("#needed").inner_text() == "2 of 2"
    shot(ann, "portal-detail.png")

    # The reason is required: the browser will not send the form without.
    ann.click("#approve")
    assert ann.eval_on_selector("#reason", "e => e.validity.valueMissing") is True
    assert ann.url.endswith(f"/portal/approvals/{id}")
    ann.fill("#reason", "customer called, refund checked")
    ann.click("#approve")
    ann.wait_for_load_state()
    assert ann.locator("#needed").count() == 1, ann.content()
    assert ann.locator("#needed").inner_text() == "1 of 2"
    assert ann.locator("#votes tbody tr td").nth(1).inner_text() == "approve"
    assert ann.locator("#votes tbody tr td").nth(2).inner_text() == "customer called, refund checked"

    polled = time.time()
    status, v = poll(http, token, id)
    assert (status, v["error"]) == (400, "authorization_pending"), v

    bob = person("fin-bob", f"/portal/approvals/{id}")
    assert bob.locator("#needed").inner_text() == "1 of 2"
    bob.fill("#reason", "second pair of eyes")
    bob.click("#approve")
    bob.wait_for_load_state()
    assert bob.locator("#status").inner_text() == "approved"
    assert bob.locator("#needed").inner_text() == "0 of 2"
    assert bob.locator("#vote").count() == 0, "no form once decided"

    time.sleep(max(0.0, asked["interval"] - (time.time() - polled)) + 0.2)
    status, v = poll(http, token, id)
    assert status == 200, v
    act = v["access_token"]
    status, d = check(http, act, "POST", "/payments/pay_9/refund", {"amount": 500, "currency": "EUR"})
    assert (status, d["verdict"]["kind"]) == (200, "allow"), d
    status, d = check(http, act, "POST", "/payments/pay_9/refund", {"amount": 500, "currency": "EUR"})
    assert (status, d["verdict"]["kind"], d["verdict"]["code"]) == (200, "deny", "action-token-replayed"), d


def test_the_requester_confirms_their_own_file_write_by_code(stack, app_token, person):
    http = stack["http"]
    token = app_token("alice")
    status, d = check(http, token, "PUT", "/users/alice/files/f1/content")
    assert (status, d["verdict"]["kind"]) == (200, "approval-required"), d
    asked = ask(http, token, d["verdict"]["authorization_details"])
    code = asked["user_code"]
    assert re.fullmatch(r"[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}", code), code
    assert asked["verification_uri"] == stack["base"] + "/portal/confirm"
    assert asked["verification_uri_complete"] == f"{stack['base']}/portal/confirm?code={code}"

    # Someone else with the code gets nowhere; words that are not a code
    # are not repeated.
    ann = person("fin-ann", "/portal/confirm")
    ann.fill("#code", code)
    ann.click("#go")
    assert ann.locator("#error").inner_text() == f"No action of yours waits for code {code}."
    response = ann.goto(stack["base"] + "/portal/confirm?code=" + urllib.parse.quote("Your account is locked, call 555"))
    assert response.status == 404
    assert ann.locator("#error").inner_text() == "That is not a code: codes are eight letters, like BCDF-GHJK."

    alice = person("alice", "/portal/confirm")
    shot(alice, "portal-confirm.png")
    alice.fill("#code", code.lower().replace("-", " "))
    alice.click("#go")
    alice.wait_for_url(f"**/portal/approvals/{asked['auth_req_id']}")
    assert alice.locator("h1").inner_text() == "Confirm your action: file.write"
    assert alice.locator("#policy-message").inner_text() == "Allow this app to write the file you selected?"
    shot(alice, "portal-confirm-detail.png")
    alice.click("#approve")
    alice.wait_for_load_state()
    assert alice.locator("#status").inner_text() == "approved"

    status, v = poll(http, token, asked["auth_req_id"])
    assert status == 200, v
    status, d = check(http, v["access_token"], "PUT", "/users/alice/files/f1/content")
    assert (status, d["verdict"]["kind"]) == (200, "allow"), d


def test_what_an_attacker_tries_is_refused(stack, app_token, person):
    http = stack["http"]
    base = stack["base"]
    token, verdict, asked = refund_needing_finance(stack, app_token, 700)
    refund = asked["auth_req_id"]
    status, d = check(http, token, "DELETE", "/tenants/acme/users/u7/data")
    assert (status, d["verdict"]["kind"]) == (200, "approval-required"), d
    delete = ask(http, token, d["verdict"]["authorization_details"])["auth_req_id"]

    # Another tenant's owner: neither listed nor reachable by URL, nor
    # votable with their own valid form token.
    globex = person("owner-globex")
    assert delete not in rows(globex)
    csrf = globex.locator("input[name=csrf]").first.get_attribute("value")
    response = globex.goto(f"{base}/portal/approvals/{delete}")
    assert response.status == 404
    assert globex.locator("#message").inner_text() == "no such approval waits for you"
    status, _, text = http.request("POST", f"/portal/approvals/{delete}", headers={"cookie": cookie_header(globex)},
                                   form={"csrf": csrf, "digest": "x", "decision": "approve", "reason": "mine"})
    assert status == 404 and "no such approval waits for you" in text
    acme = person("owner-acme")
    assert delete in rows(acme)

    # The requester cannot reach their own refund, which finance decides.
    alice = person("alice")
    response = alice.goto(f"{base}/portal/approvals/{refund}")
    assert response.status == 404

    ann = person("fin-ann", f"/portal/approvals/{refund}")
    csrf = ann.locator("#vote input[name=csrf]").get_attribute("value")
    digest = ann.locator("#vote input[name=digest]").get_attribute("value")
    assert digest == verdict["action"]["digest"]
    cookies = {"cookie": cookie_header(ann), "origin": base}
    vote = {"csrf": csrf, "digest": digest, "decision": "approve", "reason": "ok"}

    status, _, text = http.request("POST", f"/portal/approvals/{refund}", headers=cookies,
                                   form={**vote, "csrf": "forged"})
    assert status == 403 and "this form's CSRF token is not this session's" in html.unescape(text), text
    status, _, text = http.request("POST", f"/portal/approvals/{refund}", headers={**cookies, "origin": "http://evil.example"},
                                   form=vote)
    assert status == 403 and "this form was not sent from a page of this portal" in text, text
    status, _, text = http.request("POST", f"/portal/approvals/{refund}", headers=cookies,
                                   form={**vote, "digest": "A" * 43})
    assert status == 409 and f"this vote is for action digest `{'A' * 43}`" in text, text
    status, _, text = http.request("POST", f"/portal/approvals/{refund}", headers=cookies,
                                   form={**vote, "reason": "  "})
    assert status == 400 and f"approval `{refund}` requires a reason with every decision" in text, text
    # Nothing of that was counted.
    ann.reload()
    assert ann.locator("#needed").inner_text() == "2 of 2"

    # A signed-out session's cookie is worth nothing.
    old = cookie_header(ann)
    ann.click("#sign-out")
    ann.wait_for_url("**/portal/signed-out")
    status, headers, _ = http.request("GET", "/portal", headers={"cookie": old})
    assert (status, headers["location"]) == (303, "/portal/login?return_to=%2Fportal")
    status, _, text = http.request("POST", f"/portal/approvals/{refund}", headers={"cookie": old, "origin": base},
                                   form=vote)
    assert status == 401 and "you are not signed in, or your session has ended" in text, text

    # A callback not started in this browser signs nobody in.
    status, _, text = http.request("GET", "/portal/callback?code=stolen&state=someone-elses")
    assert status == 400 and "this sign-in was not started in this browser" in text, text


def test_pages_forbid_script_framing_and_caching(stack, person):
    page = person("outsider")
    response = page.goto(stack["base"] + "/portal")
    h = response.headers
    # Forms go here, and on (through redirects) to the provider's sign-in.
    assert h["content-security-policy"] == (
        "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; "
        f"base-uri 'none'; form-action 'self' {stack['issuer']}")
    assert (h["x-frame-options"], h["cache-control"], h["referrer-policy"]) == ("DENY", "no-store", "same-origin")
    cookie = next(c for c in page.context.cookies() if c["name"] == "greenlight-session")
    # On loopback over plain HTTP the cookie cannot be Secure; it is
    # HttpOnly and SameSite=Lax everywhere.
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["secure"]) == (True, "Lax", False)
    assert page.locator("script").count() == 0


def history_rows(page):
    return page.locator("#history tbody tr").evaluate_all(
        "rs => Object.fromEntries(rs.map(r => [r.dataset.approval, [...r.cells].map(c => c.innerText)]))")


def test_history_is_for_those_who_took_part_and_the_auditor(stack, app_token, person):
    http = stack["http"]
    token, _, asked = refund_needing_finance(stack, app_token, 333)
    id = asked["auth_req_id"]
    for who, reason in (("fin-ann", "one"), ("fin-bob", "two")):
        page = person(who, f"/portal/approvals/{id}")
        page.fill("#reason", reason)
        page.click("#approve")
        page.wait_for_load_state()
    status, v = poll(http, token, id)
    assert status == 200, v
    jti = json.loads(__import__("base64").urlsafe_b64decode(v["access_token"].split(".")[1] + "=="))["jti"]
    status, d = check(http, v["access_token"], "POST", "/payments/pay_9/refund", {"amount": 333, "currency": "EUR"})
    assert d["verdict"]["kind"] == "allow", d

    ann = person("fin-ann", "/portal/history")
    row = history_rows(ann)[id]
    assert row[:4] == ["payment.refund", "alice", "approved", "fin-ann approve, fin-bob approve"], row
    assert row[5] == jti
    ann.click(f"#history tr[data-approval='{id}'] a")
    ann.wait_for_url(f"**/portal/approvals/{id}")
    assert ann.locator("#token").inner_text().startswith(f"{jti}, handed out ")
    assert ", used " in ann.locator("#token").inner_text()
    assert ann.locator("#vote").count() == 0
    shot(ann, "portal-history-detail.png")

    # The requester took part too; the auditor reads everything; someone
    # else reads nothing of it, by list or by URL.
    alice = person("alice", "/portal/history")
    assert id in history_rows(alice)
    amy = person("audit-amy", "/portal/history")
    assert id in history_rows(amy)
    shot(amy, "portal-history.png")
    outsider = person("outsider", "/portal/history")
    assert id not in history_rows(outsider)
    assert outsider.goto(f"{stack['base']}/portal/approvals/{id}").status == 404
    status, headers, text = http.request("GET", "/portal/history.jsonl", headers={"cookie": cookie_header(amy)})
    assert (status, headers["content-type"]) == (200, "application/x-ndjson")
    lines = [json.loads(line) for line in text.splitlines()]
    mine = next(l for l in lines if l["id"] == id)
    assert [(v["approver"], v["decision"], v["reason"]) for v in mine["votes"]] == [
        ("fin-ann", "approve", "one"), ("fin-bob", "approve", "two")]
    assert mine["token"]["jti"] == jti and mine["token"]["consumed_at"] is not None
    status, _, text = http.request("GET", "/portal/history.jsonl", headers={"cookie": cookie_header(outsider)})
    assert status == 200 and id not in text


def test_approvers_see_that_an_agent_asks_for_the_person(stack, app_token, person):
    http = stack["http"]
    token = app_token("alice", "agent-app")
    status, d = check(http, token, "POST", "/payments/pay_7/refund", {"amount": 250, "currency": "EUR"})
    assert (status, d["verdict"]["kind"]) == (200, "approval-required"), d
    # The agent's message tries to read backwards (a right-to-left override).
    id = ask(http, token, d["verdict"]["authorization_details"],
             binding_message="refund for order \u202e0001")["auth_req_id"]
    ann = person("fin-ann")
    cell = ann.locator(f"tr[data-approval='{id}'] td").nth(2).inner_text()
    assert cell == "alice by agent shop-agent via agent-app", cell
    ann.goto(f"{stack['base']}/portal/approvals/{id}")
    assert ann.locator("#actor").inner_text() == "shop-agent (an agent: the token's act)"
    assert ann.locator("#client").inner_text() == "agent-app"
    assert ann.locator("#binding-message").inner_text() == "refund for order \\u{202E}0001"


def test_an_old_sign_in_must_sign_in_again_to_confirm(stack, app_token, person):
    from conftest import CONFIRM_MAX_AGE, sign_in_at_provider
    http = stack["http"]
    token = app_token("alice")
    status, d = check(http, token, "PUT", "/users/alice/files/f2/content")
    assert (status, d["verdict"]["kind"]) == (200, "approval-required"), d
    asked = ask(http, token, d["verdict"]["authorization_details"])
    alice = person("alice", "/portal/confirm")
    time.sleep(CONFIRM_MAX_AGE + 1)
    alice.fill("#code", asked["user_code"])
    alice.click("#go")
    alice.wait_for_url(f"**/portal/approvals/{asked['auth_req_id']}")
    assert alice.locator("#notice").inner_text().startswith(
        f"confirming your own action needs a sign-in within the last {CONFIRM_MAX_AGE} seconds")
    assert alice.locator("#vote").count() == 0
    # A new sign-in at the provider (it asks again: prompt=login), then
    # straight back to the action.
    alice.click("#sign-in-again")
    sign_in_at_provider(alice, "alice")
    alice.wait_for_url(f"**/portal/approvals/{asked['auth_req_id']}")
    alice.click("#approve")
    alice.wait_for_load_state()
    assert alice.locator("#status").inner_text() == "approved"
