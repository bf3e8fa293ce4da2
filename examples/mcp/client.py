"""A scripted agent (the official MCP Python SDK) behind the Greenlight
gateway: it lists the payments tools, refunds 50 (allowed), refunds 500
(approval required: it is sent to the approval's page, two people from
finance approve, and the call goes through once), then tries the same
refund again (a new approval is asked, which it declines: nothing runs).

    python examples/mcp/client.py GATEWAY_URL GREENLIGHT_URL

Environment: TOKEN, the agent's access token for the gateway; APPROVERS,
the two approvers' tokens (space-separated), whose approvals stand in for
people clicking in the portal. Exits 1 when anything goes otherwise.
"""

import json
import os
import sys
import urllib.request

import anyio
import httpx2
import mcp_types as types
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client

REFUND = {"payment_id": "pay_123", "amount": 500, "currency": "EUR"}


def approve(greenlight, approval):
    """Two people from finance approve (what they would do in the portal)."""
    for who, token in zip(("bob", "carol"), os.environ["APPROVERS"].split()):
        req = urllib.request.Request(
            f"{greenlight}/v1/approvals/{approval}/approve",
            data=json.dumps({"reason": "checked with the customer"}).encode(),
            method="POST",
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            print(f"  {who} approves: {json.load(r)['status']}")


async def main(gateway, greenlight):
    asked = []

    async def elicit(context, params):
        # Greenlight asks the user to follow the approval at a URL.
        print(f"  approval needed: {params.message}\n  follow it at {params.url}")
        asked.append(params.url)
        if len(asked) == 1:
            await anyio.to_thread.run_sync(approve, greenlight, params.url.rsplit("/", 1)[1])
            return types.ElicitResult(action="accept")
        print("  the agent declines to ask again")
        return types.ElicitResult(action="decline")

    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {os.environ['TOKEN']}"})
    async with Client(streamable_http_client(gateway, http_client=http), elicitation_callback=elicit) as c:
        print(f"connected ({c.protocol_version}); tools:",
              ", ".join(sorted(t.name for t in (await c.list_tools()).tools)))
        print("refund 50:")
        small = await c.call_tool("refund_payment", {**REFUND, "amount": 50})
        print(f"  done: {json.loads(small.content[0].text)}" if not small.is_error
              else f"  refused: {small.content[0].text}")
        print("refund 500:")
        large = await c.call_tool("refund_payment", REFUND)
        print(f"  done: {json.loads(large.content[0].text)}" if not large.is_error
              else f"  refused: {large.content[0].text}")
        print("refund 500 again:")
        again = await c.call_tool("refund_payment", REFUND)
        print(f"  {'refused: ' + again.content[0].text if again.is_error else 'ran again!'}")
    ok = not small.is_error and not large.is_error and again.is_error and len(asked) == 2
    print("as expected" if ok else "NOT as expected")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(anyio.run(main, sys.argv[1], sys.argv[2]))
