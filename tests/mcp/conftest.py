"""The MCP example's stack on free loopback ports: the payments MCP server
(examples/mcp/server.py, the official Python SDK), `greenlight serve` with
`[mcp]` in front of it (examples/mcp/bundle), and tokens of the demo IdP
for the gateway. Processes are stopped by their PID.

Needs GREENLIGHT_BIN (tests/mcp/test.sh provides it) and the packages of
tests/mcp/requirements.txt.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GL = os.environ.get("GREENLIGHT_BIN") or str(ROOT / "target/debug/greenlight")
BUNDLE = ROOT / "examples/mcp/bundle"
RESOURCE = "https://payments-mcp.example.com/mcp"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process we started, stopped by its PID."""

    def __init__(self, argv, log, **kw):
        self.log = log
        self.p = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, **kw)

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()

    def tail(self):
        return Path(self.log).read_text(errors="replace")[-3000:]


def wait_for(port, proc, what):
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if proc.p.poll() is not None:
                raise RuntimeError(f"{what} exited:\n{proc.tail()}")
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port}:\n{proc.tail()}")


def dev_token(sub, client=None, scope=None, claims=()):
    argv = [GL, "dev-token", "--bundle", str(BUNDLE), "--sub", sub]
    if client:
        argv += ["--client", client]
    if scope:
        argv += ["--scope", scope]
    for c in claims:
        argv += ["--claim", c]
    return subprocess.check_output(argv, text=True).strip()


class Stack:
    """The running example: where each part listens, its ledger, tokens."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.ledger = self.tmp / "refunds.jsonl"
        self.ledger.touch()
        up, gl = free_port(), free_port()
        self.upstream = f"http://127.0.0.1:{up}/mcp"
        self.greenlight = f"http://127.0.0.1:{gl}"
        self.gateway = f"{self.greenlight}/mcp"
        self.server = Proc(
            [sys.executable, str(ROOT / "examples/mcp/server.py"), "--port", str(up),
             "--ledger", str(self.ledger)],
            self.tmp / "server.log",
        )
        wait_for(up, self.server, "the MCP server")
        config = self.tmp / "serve.toml"
        config.write_text(
            f'[mcp]\nupstream = "{self.upstream}"\nresource = "{RESOURCE}"\nwait = 2\n'
        )
        self.gl = Proc(
            [GL, "serve", "--dev", "--bundle", str(BUNDLE), "--store",
             f"sqlite://{self.tmp / 'greenlight.db'}", "--listen", f"127.0.0.1:{gl}",
             "--config", str(config)],
            self.tmp / "greenlight.log",
            env={**os.environ, "RUST_LOG": "greenlight=info"},
        )
        wait_for(gl, self.gl, "greenlight serve")
        self.agent = dev_token("alice", scope="payments:refund payments:read")
        self.approvers = [
            dev_token(who, client="approvals-app", claims=['groups=["finance"]'])
            for who in ("bob", "carol")
        ]

    def refunds(self):
        """What the MCP server really executed."""
        return [json.loads(l) for l in self.ledger.read_text().splitlines() if l.strip()]

    def approve(self, approval_id):
        for token in self.approvers:
            req = urllib.request.Request(
                f"{self.greenlight}/v1/approvals/{approval_id}/approve",
                data=b"{}",
                method="POST",
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200

    def approval(self, approval_id):
        req = urllib.request.Request(
            f"{self.greenlight}/v1/approvals/{approval_id}",
            headers={"authorization": f"Bearer {self.approvers[0]}"},
        )
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.load(r)

    def stop(self):
        self.gl.stop()
        self.server.stop()


@pytest.fixture
def stack():
    with tempfile.TemporaryDirectory() as tmp:
        s = Stack(tmp)
        try:
            yield s
        finally:
            s.stop()
