"""Real edge proxies in front of `greenlight serve` and the demo API.

Each stack is the example's own config (examples/nginx, examples/caddy,
examples/envoy-ext-authz) with its three loopback ports swapped for free
ones: the proxy, `greenlight serve` (the demo bundle, or for proxies that
forward no body examples/edge/bundle) and examples/edge/upstream.py, which
counts the calls it receives. Processes are stopped by their PID.

Needs GREENLIGHT_BIN (the `greenlight` binary), GREENLIGHT_FILTER (the
proxy-wasm filter), `nginx`, `caddy` and `envoy` on PATH
(tests/edge/test.sh provides them).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GL = os.environ.get("GREENLIGHT_BIN") or str(ROOT / "target/debug/greenlight")

#: Which bundle each proxy's service loads, and where a refund's amount is.
PROXIES = {
    "nginx": ("examples/edge/bundle", "query"),
    "caddy": ("examples/edge/bundle", "query"),
    "envoy-ext-authz": ("examples/bundle", "body"),
    "envoy-wasm": ("examples/bundle", "body"),
}
#: The proxy-wasm filter, built by tests/edge/test.sh.
FILTER = os.environ.get("GREENLIGHT_FILTER", "")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A process we started, stopped by its PID."""

    def __init__(self, name, argv, log, **kw):
        self.name, self.log = name, log
        self.p = subprocess.Popen(argv, stdout=open(log, "ab"), stderr=subprocess.STDOUT, **kw)

    def stop(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait()

    def alive(self):
        return self.p.poll() is None

    def tail(self):
        try:
            return Path(self.log).read_text(errors="replace")[-3000:]
        except OSError:
            return ""


def http(method, url, headers=None, body=None):
    """One request; (status, [(name, value)], body as JSON or text)."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, hdrs, raw = r.status, r.getheaders(), r.read()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers.items(), e.read()
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text) if text else None
    except ValueError:
        parsed = text
    return status, [(k.lower(), v) for k, v in hdrs], parsed


def form(url, fields, token):
    data = urllib.parse.urlencode(fields).encode()
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def wait_until(ready, what, proc, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if not proc.alive():
            raise AssertionError(f"{proc.name} exited while starting:\n{proc.tail()}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{what} not ready after {seconds} s:\n{proc.tail()}")


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def render(text, replacements):
    """The example's config with its ports swapped; every one must occur."""
    for old, new in replacements:
        assert old in text, f"the example no longer has `{old}`"
        text = text.replace(old, new)
    return text


class Stack:
    """One proxy, `greenlight serve` and the demo API, on loopback."""

    def __init__(self, proxy, work):
        self.proxy, self.work = proxy, Path(work)
        bundle, self.params = PROXIES[proxy]
        self.bundle = ROOT / bundle
        self.ports = {"proxy": free_port(), "service": free_port(), "api": free_port()}
        self.procs = []
        self.service = None
        try:
            self.api = self._start_api()
            self.start_service()
            self.front = self._start_proxy()
        except BaseException:
            self.close()
            raise

    # -- processes -------------------------------------------------------

    def _start_api(self):
        p = Proc("upstream", ["python3", str(ROOT / "examples/edge/upstream.py"), "--listen",
                              f"127.0.0.1:{self.ports['api']}", "--params", self.params],
                 self.work / "upstream.log")
        self.procs.append(p)
        wait_until(lambda: listening(self.ports["api"]), "the demo API", p)
        return p

    def start_service(self):
        p = Proc("greenlight", [GL, "serve", "--dev", "--bundle", str(self.bundle),
                                "--store", f"sqlite://{self.work}/greenlight.db",
                                "--listen", f"127.0.0.1:{self.ports['service']}"],
                 self.work / "greenlight.log")
        self.procs.append(p)
        wait_until(lambda: http("GET", f"{self.service_url}/healthz")[0] == 200, "greenlight serve", p)
        self.service = p

    def stop_service(self):
        self.service.stop()

    def _start_proxy(self):
        ports = self.ports
        swaps = [("127.0.0.1:8000", f"127.0.0.1:{ports['proxy']}"),
                 ("127.0.0.1:8080", f"127.0.0.1:{ports['service']}"),
                 ("127.0.0.1:9000", f"127.0.0.1:{ports['api']}")]
        if self.proxy == "nginx":
            conf = self.work / "nginx.conf"
            conf.write_text(render((ROOT / "examples/nginx/nginx.conf").read_text(), swaps))
            argv = ["nginx", "-p", str(self.work), "-c", str(conf)]
        elif self.proxy == "caddy":
            conf = self.work / "Caddyfile"
            conf.write_text(render((ROOT / "examples/caddy/Caddyfile").read_text(), swaps))
            argv = ["caddy", "run", "--adapter", "caddyfile", "--config", str(conf)]
        elif self.proxy == "envoy-wasm":
            conf = self.work / "envoy.yaml"
            conf.write_text(render((ROOT / "examples/envoy-wasm/envoy.yaml").read_text(), [
                ("port_value: 8000", f"port_value: {ports['proxy']}"),
                ('authority = "127.0.0.1:8080"', f'authority = "127.0.0.1:{ports["service"]}"'),
                ('url = "http://127.0.0.1:8080"', f'url = "http://127.0.0.1:{ports["service"]}"'),
                ("port_value: 8080", f"port_value: {ports['service']}"),
                ("port_value: 9000", f"port_value: {ports['api']}"),
                ("filename: examples/envoy-wasm/greenlight-filter.wasm", f"filename: {FILTER}"),
            ]))
            argv = ["envoy", "-c", str(conf), "--log-level", "warn", "--component-log-level", "wasm:info",
                    "--use-dynamic-base-id"]
        else:
            conf = self.work / "envoy.yaml"
            conf.write_text(render((ROOT / "examples/envoy-ext-authz/envoy.yaml").read_text(), [
                ("port_value: 8000", f"port_value: {ports['proxy']}"),
                ("uri: http://127.0.0.1:8080", f"uri: http://127.0.0.1:{ports['service']}"),
                ("port_value: 8080", f"port_value: {ports['service']}"),
                ("port_value: 9000", f"port_value: {ports['api']}"),
            ]))
            argv = ["envoy", "-c", str(conf), "--log-level", "warn", "--use-dynamic-base-id"]
        env = dict(os.environ, HOME=str(self.work), XDG_DATA_HOME=str(self.work / "data"),
                   XDG_CONFIG_HOME=str(self.work / "config"))
        p = Proc(self.proxy, argv, self.work / f"{self.proxy}.log", env=env)
        self.procs.append(p)
        wait_until(lambda: listening(ports["proxy"]), self.proxy, p, seconds=60)
        if self.proxy == "envoy-wasm":
            # The filter fetches the service's keys once loaded: wait until
            # an action token verifies (a refund of 50 by token exchange).
            wait_until(self._filter_has_keys, "the filter's keys", p)
        return p

    def _filter_has_keys(self):
        status, _, body = self.refund("pay_0", 50, self.exchanged("pay_0", 50))
        return status == 200

    def close(self):
        for p in reversed(self.procs):
            p.stop()

    # -- acting as a client ----------------------------------------------

    @property
    def service_url(self):
        return f"http://127.0.0.1:{self.ports['service']}"

    def token(self, sub, scope=None, client=None, claims=(), ttl=3600, now=None):
        argv = [GL, "dev-token", "--bundle", str(self.bundle), "--sub", sub, "--ttl", str(ttl)]
        if scope is not None:
            argv += ["--scope", scope]
        if client is not None:
            argv += ["--client", client]
        if now is not None:
            argv += ["--now", str(now)]
        for c in claims:
            argv += ["--claim", c]
        return subprocess.run(argv, check=True, capture_output=True, text=True).stdout.strip()

    def exchanged(self, payment, amount):
        """A once-only action token for a refund of `amount` (up to 100, the
        demo allows it outright) by token exchange (RFC 8693)."""
        alice = self.token("alice", "payments:refund")
        details = json.dumps([{"type": "urn:greenlight:action", "actions": ["payment.refund"],
                               "resource": {"type": "Payment", "id": payment},
                               "params": {"amount": amount, "currency": "EUR"}}])
        status, t = form(f"{self.service_url}/oauth/token", {
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": alice, "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "authorization_details": details}, None)
        assert status == 200, t
        return t["access_token"]

    def through(self, method, path, token=None, headers=None, body=None):
        """A request through the proxy."""
        h = dict(headers or {})
        if token:
            h["authorization"] = f"Bearer {token}"
        return http(method, f"http://127.0.0.1:{self.ports['proxy']}{path}", h, body)

    def refund(self, payment, amount, token, headers=None):
        """A refund as this stack's bundle binds it: query or JSON body."""
        if self.params == "query":
            return self.through("POST", f"/payments/{payment}/refund?amount={amount}&currency=EUR",
                                token, headers)
        return self.through("POST", f"/payments/{payment}/refund", token, headers,
                            {"amount": amount, "currency": "EUR"})

    def calls(self):
        """What the API has received so far."""
        status, _, calls = http("GET", f"http://127.0.0.1:{self.ports['api']}/_upstream/calls")
        assert status == 200
        return calls

    def reset(self):
        assert http("POST", f"http://127.0.0.1:{self.ports['api']}/_upstream/reset")[0] == 200


@pytest.fixture(scope="module", params=list(PROXIES))
def stack(request):
    tool = "envoy" if request.param.startswith("envoy") else request.param
    if shutil.which(tool) is None:
        pytest.fail(f"`{tool}` is not on PATH: run tests/edge/test.sh")
    work = tempfile.mkdtemp(prefix=f"gl-edge-{request.param}-")
    s = Stack(request.param, work)
    yield s
    s.close()
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(autouse=True)
def fresh_calls(request):
    if "stack" in request.fixturenames:
        s = request.getfixturevalue("stack")
        if s.service is not None and not s.service.alive():
            s.start_service()
        s.reset()
    yield
