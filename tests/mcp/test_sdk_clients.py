"""The official MCP SDKs' clients through the Greenlight gateway, in front
of an SDK server that records what it executes: the Python SDK (2.3.0,
protocol 2026-07-28: input-required with a signed request state) and the
TypeScript SDK (1.32.2, protocol 2025-11-25: URL elicitation by error).
Non-tool messages pass unchanged, a small refund passes, a large one runs
exactly once after two finance approvals, a replayed or altered retry is
refused, a refused call never reaches the server, and a token for another
resource is refused.
"""

import json
import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from conftest import ROOT, dev_token

REFUND = {"payment_id": "pay_123", "amount": 500, "currency": "EUR"}


def client(stack, token, elicitation=None):
    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0),
    )
    return Client(
        streamable_http_client(stack.gateway, http_client=http),
        elicitation_callback=elicitation,
    )


def text(result):
    return result.content[0].text


def run(coroutine_fn):
    return anyio.run(coroutine_fn)


def test_python_sdk_without_url_elicitation_gets_the_link_as_text(stack):
    async def go():
        async with client(stack, stack.agent) as c:
            first = await c.call_tool("refund_payment", REFUND)
            approval = text(first).split(" Open ", 1)[1].split(",", 1)[0].rsplit("/", 1)[1]
            await anyio.to_thread.run_sync(stack.approve, approval)
            again = await c.call_tool("refund_payment", REFUND)
        return first, approval, again

    first, approval, again = run(go)
    assert first.is_error
    assert text(first) == (
        f"Refund above 100: two finance approvals needed. Approval `{approval}` is asked of "
        "group:finance: follow it at the link; the call goes through once it is approved. "
        f"Open {stack.greenlight}/v1/approvals/{approval}, then make the same call again."
    )
    assert not again.is_error and json.loads(text(again)) == {"refunded": REFUND}
    assert stack.refunds() == [REFUND]


def test_python_sdk_lists_and_calls_through_the_gateway(stack):
    async def go():
        async with client(stack, stack.agent) as c:
            assert c.protocol_version == "2026-07-28"
            through = sorted(t.name for t in (await c.list_tools()).tools)
            payment = await c.call_tool("get_payment", {"payment_id": "pay_123"})
            small = await c.call_tool("refund_payment", {**REFUND, "amount": 50})
            refused = await c.call_tool("refund_payment", {**REFUND, "amount": 20000})
        # The same list as the server gives without the gateway.
        async with Client(stack.upstream) as direct:
            alone = sorted(t.name for t in (await direct.list_tools()).tools)
        return through, alone, payment, small, refused

    through, alone, payment, small, refused = run(go)
    assert through == alone == ["get_payment", "refund_payment"]
    assert not payment.is_error
    assert json.loads(text(payment))["customer"] == "cus_42"
    assert not small.is_error
    assert json.loads(text(small)) == {"refunded": {**REFUND, "amount": 50}}
    assert refused.is_error
    assert text(refused) == (
        "Greenlight refused this call: `payment.refund` on `Payment::pay_123` "
        "is forbidden by policy `refund-limit`"
    )
    assert stack.refunds() == [{**REFUND, "amount": 50}]


def test_python_sdk_large_refund_runs_once_after_two_approvals(stack):
    asked = []

    async def elicit(context, params):
        assert params.mode == "url"
        approval = params.url.rsplit("/", 1)[1]
        asked.append((approval, params.message))
        if len(asked) == 1:
            # Two people from finance decide while the agent waits.
            await anyio.to_thread.run_sync(stack.approve, approval)
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="decline")

    async def go():
        async with client(stack, stack.agent, elicit) as c:
            done = await c.call_tool("refund_payment", REFUND)
            replayed = await c.call_tool("refund_payment", REFUND)
        return done, replayed

    done, replayed = run(go)
    assert not done.is_error, text(done)
    assert json.loads(text(done)) == {"refunded": REFUND}
    assert len(asked) == 2 and asked[0][0] != asked[1][0]
    assert asked[0][1] == (
        f"Refund above 100: two finance approvals needed. Approval `{asked[0][0]}` is asked "
        "of group:finance: follow it at the link; the call goes through once it is approved."
    )
    # The same call again needed a new approval, which the user declined.
    assert replayed.is_error
    assert text(replayed) == "You declined to ask for approval: the call was not made"
    assert stack.approval(asked[1][0])["status"] == "revoked"
    assert stack.refunds() == [REFUND]


def test_python_sdk_altered_retry_is_refused(stack):
    async def shown(context, params):
        # Declares URL elicitation; this test drives the rounds itself.
        return types.ElicitResult(action="accept")

    async def go():
        async with client(stack, stack.agent, shown) as c:
            first = await c.session.call_tool("refund_payment", REFUND, allow_input_required=True)
            assert first.result_type == "input_required"
            approval = first.input_requests["io.greenlight/approval"].params.url.rsplit("/", 1)[1]
            await anyio.to_thread.run_sync(stack.approve, approval)
            altered = await c.session.call_tool(
                "refund_payment", {**REFUND, "amount": 5000},
                request_state=first.request_state, allow_input_required=True,
            )
            done = await c.session.call_tool(
                "refund_payment", REFUND, request_state=first.request_state,
                allow_input_required=True,
            )
            replayed = await c.session.call_tool(
                "refund_payment", REFUND, request_state=first.request_state,
                allow_input_required=True,
            )
        return altered, done, replayed

    altered, done, replayed = run(go)
    assert altered.is_error
    assert text(altered) == (
        "Greenlight refused this call: its approval state is for another call (other "
        "arguments); call again without it to ask for approval of this one"
    )
    assert not done.is_error and json.loads(text(done)) == {"refunded": REFUND}
    assert replayed.is_error
    assert text(replayed) == (
        "Greenlight refused this call: its approval was already used; call again to ask "
        "for a new one"
    )
    assert stack.refunds() == [REFUND]


def test_a_token_for_another_resource_is_refused(stack):
    # The main demo's token: same IdP, issued for the payments API.
    for_api = subprocess.check_output(
        [os.environ.get("GREENLIGHT_BIN", "greenlight"), "dev-token", "--bundle",
         str(ROOT / "examples/bundle"), "--sub", "alice", "--scope", "payments:refund"],
        text=True,
    ).strip()

    async def go():
        async with client(stack, for_api) as c:
            await c.call_tool("refund_payment", {**REFUND, "amount": 50})

    with pytest.raises(BaseExceptionGroup) as refused:
        run(go)
    leaf = refused.value
    while isinstance(leaf, BaseExceptionGroup):
        [leaf] = leaf.exceptions
    # The SDK reports the refusal of its first request as an error answer.
    assert isinstance(leaf, MCPError)
    assert (leaf.error.code, leaf.error.message) == (-32603, "Server returned an error response")
    # What it was: a 401 naming where to learn how to get a token for it.
    req = urllib.request.Request(
        stack.gateway, method="POST", data=b"{}",
        headers={"authorization": f"Bearer {for_api}", "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(req, timeout=10)
    assert answer.value.code == 401
    challenge = answer.value.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')
    assert challenge.endswith(
        f'resource_metadata="{stack.greenlight}/.well-known/oauth-protected-resource/mcp"'
    )
    assert stack.refunds() == []


def test_typescript_sdk_through_the_gateway(stack):
    env = {
        **os.environ,
        "TOKEN": stack.agent,
        "APPROVERS": " ".join(stack.approvers),
        "GREENLIGHT": stack.greenlight,
    }
    out = subprocess.run(
        ["node", str(Path(__file__).with_name("ts_client.mjs")), stack.gateway],
        env=env, capture_output=True, text=True, timeout=120,
        cwd=Path(__file__).parent,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["protocol"] == "payments"
    assert r["tools"] == ["get_payment", "refund_payment"]
    assert r["small"]["isError"] is False
    assert json.loads(r["small"]["text"]) == {"refunded": {**REFUND, "amount": 50}}
    assert r["refused"] == {
        "isError": True,
        "text": "Greenlight refused this call: `payment.refund` on `Payment::pay_123` is "
        "forbidden by policy `refund-limit`",
    }
    first = r["asked"]["elicitation"]
    assert first["mode"] == "url"
    assert first["url"] == f"{stack.greenlight}/v1/approvals/{first['elicitationId']}"
    assert r["askedAgain"]["elicitation"]["elicitationId"] == first["elicitationId"]
    assert r["approved"]["isError"] is False
    assert json.loads(r["approved"]["text"]) == {"refunded": REFUND}
    replay = r["replayed"]["elicitation"]["elicitationId"]
    altered = r["altered"]["elicitation"]["elicitationId"]
    assert len({first["elicitationId"], replay, altered}) == 3
    assert stack.refunds() == [{**REFUND, "amount": 50}, REFUND]
