"""The conformance vectors decided by the proxy-wasm filter inside a real
Envoy: every HTTP vector (tests/vectors) is sent through Envoy, and the
client gets exactly the vector's `response`, or, for an allow, the
upstream gets the request with exactly the vector's forward headers. A
decision that needs the approval service (a once-only token, an approval
id, a window grant) is asked of a stub service that records what it was
asked and answers 503: the filter must ask with the vector's request and
refuse.

One Envoy per (bundle, keys) group, its filter configured with the bundle
and `test_fixed_now` = the vectors' `now`. The `access` and `vouched`
vectors are not HTTP requests and have no proxy to go through.
"""

import http.client as httpclient
import json
import os
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import FILTER, ROOT, Proc, free_port, http, listening, wait_until

VECTORS = sorted((ROOT / "tests/vectors").glob("*.json"))
SERVICE = "https://greenlight.example.com"
BUNDLE_FILES = ("greenlight.toml", "policy.cedar", "schema.cedarschema")


def load(path):
    return json.loads(path.read_text(encoding="utf-8"))


HTTP_VECTORS = [p for p in VECTORS if "http" in load(p)["request"]]


def group_of(v):
    return (v["bundle"], tuple(k["jwks"] for k in v["keys"]), v["now"])


class Stub(BaseHTTPRequestHandler):
    """The approval service (records /v1/check, answers 503; no keys) or
    a provider's key endpoint (serves `keys` when given)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *_):
        pass

    def _answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.server.gets += 1
        if self.server.keys is not None and self.path == "/.well-known/jwks.json":
            return self._answer(200, self.server.keys)
        return self._answer(404, "{}")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        self.server.checks.append({"path": self.path, "body": json.loads(body)})
        return self._answer(503, '{"error":"temporarily_unavailable"}')


def stub(keys=None):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    server.daemon_threads = True
    server.keys, server.checks, server.gets = keys, [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def toml_string(text):
    assert "'''" not in text
    return f"'''\n{text}'''"


class Front:
    """Envoy with the filter for one group of vectors, an upstream, stubs."""

    def __init__(self, group, work):
        bundle, keys, now = group
        self.work = Path(work)
        self.service = stub()
        keys_text = (ROOT / keys[0]).read_text() if keys else None
        self.provider = stub(keys_text)
        self.api_port, self.port = free_port(), free_port()
        self.procs = []
        try:
            self._start(bundle, now)
        except BaseException:
            self.close()
            raise

    def _start(self, bundle, now):
        api = Proc("upstream", ["python3", str(ROOT / "examples/edge/upstream.py"), "--listen",
                                f"127.0.0.1:{self.api_port}"], self.work / "upstream.log")
        self.procs.append(api)
        wait_until(lambda: listening(self.api_port), "the upstream", api)
        folder = ROOT / bundle
        files = [f for f in sorted(os.listdir(folder)) if f in BUNDLE_FILES or f.endswith(".json")]
        config = [f"development = true\ntest_fixed_now = {now}\n",
                  f'[service]\ncluster = "greenlight"\nauthority = "greenlight.test"\nurl = "{SERVICE}"\n',
                  '[issuers."https://uri.example"]\ncluster = "provider"\n', "[bundle]\n"]
        config += [f'"{f}" = {toml_string((folder / f).read_text())}\n' for f in files]
        conf = self.work / "envoy.yaml"
        conf.write_text(json.dumps(self.envoy_config("".join(config))))
        envoy = Proc("envoy", ["envoy", "-c", str(conf), "--log-level", "warn", "--component-log-level",
                               "wasm:info", "--concurrency", "1", "--use-dynamic-base-id"],
                     self.work / "envoy.log")
        self.procs.append(envoy)
        wait_until(lambda: listening(self.port), "envoy", envoy, seconds=60)
        # The filter asks for the service's and the provider's keys once
        # it loads; decide only after both answered.
        fetched = "jwks_uri" in (folder / "greenlight.toml").read_text()
        wait_until(lambda: self.service.gets > 0 and (self.provider.gets > 0 or not fetched),
                   "the key fetches", envoy)
        time.sleep(0.2)

    def envoy_config(self, plugin):
        def cluster(name, port):
            return {"name": name, "type": "STATIC", "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1",
                                                                     "port_value": port}}}}]}]}}
        wasm = {"name": "envoy.filters.http.wasm", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {"name": "greenlight", "root_id": "greenlight", "fail_open": False,
                       "vm_config": {"vm_id": "greenlight", "runtime": "envoy.wasm.runtime.v8",
                                     "code": {"local": {"filename": FILTER}}},
                       "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                         "value": plugin}}}}
        router = {"name": "envoy.filters.http.router", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}
        hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                        ".HttpConnectionManager",
               "stat_prefix": "api", "http_filters": [wasm, router],
               # HTTP/1.1 chunked requests may end with trailers, as HTTP/2
               # ones may: the filter must decide at the trailers.
               "http_protocol_options": {"enable_trailers": True},
               "route_config": {"name": "api", "virtual_hosts": [
                   {"name": "api", "domains": ["*"], "routes": [{"match": {"prefix": "/"},
                                                                 "route": {"cluster": "api"}}]}]}}
        listener = {"name": "api", "address": {"socket_address": {"address": "127.0.0.1",
                                                                   "port_value": self.port}},
                    "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                    "typed_config": hcm}]}]}
        return {"static_resources": {"listeners": [listener], "clusters": [
            cluster("api", self.api_port), cluster("greenlight", self.service.server_address[1]),
            cluster("provider", self.provider.server_address[1])]}}

    def send(self, req):
        target = req["path"] + (f"?{req['query']}" if req["query"] else "")
        body = None if req["params"] is None else req["params"].encode()
        conn = httpclient.HTTPConnection("127.0.0.1", self.port, timeout=10)
        conn.putrequest(req["method"], target, skip_host=True, skip_accept_encoding=True)
        conn.putheader("host", "api.example.com")
        for name, value in req["headers"]:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        r = conn.getresponse()
        status, headers, raw = r.status, [(k.lower(), v) for k, v in r.getheaders()], r.read()
        conn.close()
        return status, headers, raw

    def calls(self):
        return http("GET", f"http://127.0.0.1:{self.api_port}/_upstream/calls")[2]

    def reset(self):
        http("POST", f"http://127.0.0.1:{self.api_port}/_upstream/reset")
        self.service.checks.clear()

    def close(self):
        for p in reversed(self.procs):
            p.stop()
        self.service.shutdown()
        self.provider.shutdown()


@pytest.fixture(scope="module")
def fronts():
    if not FILTER or not Path(FILTER).is_file():
        pytest.fail(f"GREENLIGHT_FILTER must name the built filter (got {FILTER!r}): run tests/edge/test.sh")
    started = {}

    def front(group):
        if group not in started:
            started[group] = Front(group, tempfile.mkdtemp(prefix="gl-vectors-"))
        return started[group]

    yield front
    for f in started.values():
        f.close()


def needs_service(verdict):
    if verdict["kind"] == "allow":
        return verdict["consume"] is not None or verdict["approval_id"] is not None
    return verdict["kind"] == "approval-required" and verdict["obligation"]["grant"] == "window"


def test_most_vectors_are_http():
    assert len(HTTP_VECTORS) >= 100, f"only {len(HTTP_VECTORS)} HTTP vectors"


@pytest.mark.parametrize("path", HTTP_VECTORS, ids=[p.stem for p in HTTP_VECTORS])
def test_vector_through_envoy(fronts, path):
    v = load(path)
    front = fronts(group_of(v))
    front.reset()
    req = v["request"]["http"]
    status, headers, raw = front.send(req)
    verdict = v["expect"]["verdict"]
    if needs_service(verdict):
        # Asked of the service, with the vector's request; refused when it
        # cannot say yes.
        assert status == 503, raw
        assert json.loads(raw)["code"] == "engine-unavailable"
        [check] = front.service.checks
        assert check["path"] == "/v1/check"
        assert check["body"]["method"] == req["method"]
        assert check["body"]["path"] == req["path"]
        assert check["body"]["query"] == req["query"]
        assert [h for h in check["body"]["headers"] if h[0] == "authorization"] == \
            [[k.lower(), val] for k, val in req["headers"] if k.lower() == "authorization"]
        assert front.calls() == []
        return
    assert front.service.checks == []
    if v["response"]["status"] == 0:
        assert status != 503, raw
        [call] = front.calls()
        ours = [[k, val] for k, val in call["headers"] if k.startswith("x-greenlight-")]
        assert ours == verdict["forward_headers"]
        assert (call["method"], call["path"], call["query"]) == (req["method"], req["path"], req["query"])
        return
    expected = v["response"]
    assert status == expected["status"], raw
    gateway = [[k, val] for k, val in headers if k in ("www-authenticate", "content-type", "cache-control")]
    assert gateway == expected["headers"]
    assert json.loads(raw) == expected["body"]
    assert front.calls() == []


def chunked(port, path, token, body, trailer=True):
    """A POST whose JSON body comes chunked and, with `trailer`, ends with
    a trailer field: the filter sees no data frame marked as the last."""
    import socket
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (f"POST {path} HTTP/1.1\r\nhost: api.example.com\r\nauthorization: Bearer {token}\r\n"
                "content-type: application/json\r\ntransfer-encoding: chunked\r\n")
        if trailer:
            head += "trailer: x-checksum\r\n"
        data = body.encode()
        half = len(data) // 2
        chunks = "".join(f"{len(c):x}\r\n{c.decode()}\r\n" for c in (data[:half], data[half:]))
        end = "0\r\nx-checksum: 1\r\n\r\n" if trailer else "0\r\n\r\n"
        sock.sendall((head + "\r\n" + chunks + end).encode())
        raw = b""
        while b"\r\n\r\n" not in raw:
            raw += sock.recv(65536)
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = int(next((l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")), b"0"))
        while len(rest) < length:
            rest += sock.recv(65536)
        return int(head.split(b" ")[1]), json.loads(rest[:length] or b"null")


def test_a_body_ending_in_trailers_is_decided(fronts):
    """A body-reading route whose body ends with trailers is decided when
    they come: a refund of 500 is held for approval and never reaches the
    upstream; a refund of 50 passes with its body."""
    v = load(HTTP_VECTORS[0])
    assert v["request"]["http"]["path"] == "/payments/pay_123/refund"
    front = fronts(group_of(v))
    token = v["request"]["http"]["headers"][0][1].removeprefix("Bearer ")
    for trailer in (True, False):
        front.reset()
        status, body = chunked(front.port, "/payments/pay_123/refund", token,
                               json.dumps({"amount": 500, "currency": "EUR"}), trailer)
        assert (status, body["code"]) == (401, "approval-required"), body
        assert front.calls() == []
        status, body = chunked(front.port, "/payments/pay_123/refund", token,
                               json.dumps({"amount": 50, "currency": "EUR"}), trailer)
        assert status != 401, body
        [call] = front.calls()
        assert json.loads(call["body"]) == {"amount": 50, "currency": "EUR"}
        assert [h for h in call["headers"] if h[0] == "x-greenlight-action"] == [["x-greenlight-action",
                                                                                  "payment.refund"]]
