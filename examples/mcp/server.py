"""A payments MCP server (the official Python SDK) for the MCP example.

Two tools: `get_payment` and `refund_payment`. It trusts whoever reaches
it, so only the Greenlight gateway in front of it should: it listens on
loopback. Each refund it executes is appended to the ledger file as one
JSON line, so the example (and its tests) can count what really ran.

    python examples/mcp/server.py --port 9000 --ledger /tmp/refunds.jsonl
"""

import argparse
import json
import threading
from pathlib import Path

from mcp.server.mcpserver import MCPServer

PAYMENTS = {"pay_123": {"amount": 900, "currency": "EUR", "customer": "cus_42"}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--ledger", type=Path, required=True)
    args = parser.parse_args()
    lock = threading.Lock()
    server = MCPServer("payments", version="1.0.0")

    @server.tool(description="Look up a payment")
    def get_payment(payment_id: str) -> dict:
        payment = PAYMENTS.get(payment_id)
        if payment is None:
            raise ValueError(f"no payment {payment_id}")
        return {"payment_id": payment_id, **payment}

    @server.tool(description="Refund part or all of a payment")
    def refund_payment(payment_id: str, amount: int, currency: str) -> dict:
        if payment_id not in PAYMENTS:
            raise ValueError(f"no payment {payment_id}")
        refund = {"payment_id": payment_id, "amount": amount, "currency": currency}
        with lock, args.ledger.open("a") as ledger:
            ledger.write(json.dumps(refund) + "\n")
        return {"refunded": refund}

    server.run(transport="streamable-http", host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    main()
