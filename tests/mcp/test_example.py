"""examples/mcp/README.md as written: `examples/mcp/run.sh` runs the
agent through the gateway, the refund of 500 runs once after two
approvals, and its replay runs nothing."""

import os
import subprocess

from conftest import ROOT


def test_the_example_runs_as_its_readme_says():
    out = subprocess.run(
        [str(ROOT / "examples/mcp/run.sh")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "GREENLIGHT_BIN": os.environ["GREENLIGHT_BIN"]},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "connected (2026-07-28); tools: get_payment, refund_payment"
    assert "  done: {'refunded': {'payment_id': 'pay_123', 'amount': 50, 'currency': 'EUR'}}" in lines
    assert "  bob approves: pending" in lines and "  carol approves: approved" in lines
    assert lines.count(
        "  done: {'refunded': {'payment_id': 'pay_123', 'amount': 500, 'currency': 'EUR'}}"
    ) == 1
    assert "  refused: You declined to ask for approval: the call was not made" in lines
    assert "as expected" in lines
    ledger = lines[lines.index("the server's ledger:") + 1:]
    assert ledger == [
        '{"payment_id": "pay_123", "amount": 50, "currency": "EUR"}',
        '{"payment_id": "pay_123", "amount": 500, "currency": "EUR"}',
    ]
