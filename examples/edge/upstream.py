#!/usr/bin/env python3
"""The demo's API behind an edge proxy: payments, files and tenants.

It trusts the proxy in front of it: who acts comes from the
`x-greenlight-*` headers the proxy copies from Greenlight's answer, and it
counts every call it receives, so a test (or you) can see what got through.

    python3 examples/edge/upstream.py --listen 127.0.0.1:9000 --params body

`--params` says where a refund's amount and currency are read: `body` (JSON,
as examples/bundle binds them; Envoy forwards the body to Greenlight) or
`query` (as examples/edge/bundle binds them, for nginx and Caddy, which
forward no body). It must be where the bundle's route reads them: the API
acts on exactly what was decided.

    GET    /payments/{id}                        a payment
    POST   /payments/{id}/refund                 refunds it
    PUT    /users/{user}/files/{file}/content    writes a file
    DELETE /tenants/{tenant}/users/{user}/data   deletes a user's data
    GET    /_upstream/calls                      every call so far (JSON)
    GET    /_upstream/aborted                    requests cut off before their body
    POST   /_upstream/reset                      forgets them

Python's standard library only.
"""

import argparse
import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROUTES = [
    ("GET", re.compile(r"^/payments/([^/]+)$"), "payment"),
    ("POST", re.compile(r"^/payments/([^/]+)/refund$"), "refund"),
    ("PUT", re.compile(r"^/users/([^/]+)/files/([^/]+)/content$"), "file"),
    ("DELETE", re.compile(r"^/tenants/([^/]+)/users/([^/]+)/data$"), "erase"),
]


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-api"

    def log_message(self, fmt, *args):  # quiet: the calls list is the log
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self):
        url = urlsplit(self.path)
        body = self._body()
        if url.path.startswith("/_upstream/"):
            return self._control(url.path)
        if body is None:
            # The proxy gave up on the request before its body arrived (a
            # refusal after the headers went ahead): no request, no call.
            with self.server.lock:
                self.server.aborted += 1
            self.close_connection = True
            return None
        call = {
            "method": self.command,
            "path": url.path,
            "query": url.query,
            "headers": [[k.lower(), v] for k, v in self.headers.items()],
            "body": body.decode("utf-8", "replace"),
        }
        with self.server.lock:
            self.server.calls.append(call)
        who = self.headers.get("x-greenlight-subject")
        if not who:
            return self._answer(401, {"error": "no x-greenlight-subject: is Greenlight in front of me?"})
        for method, pattern, kind in ROUTES:
            m = pattern.match(url.path)
            if m and method == self.command:
                return self._act(kind, m.groups(), url.query, body, who)
        return self._answer(404, {"error": "no such endpoint"})

    def _body(self):
        """The request body (chunked or sized), or None when the request was
        cut off before it all arrived."""
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            data = b""
            while True:
                line = self.rfile.readline()
                if not line:
                    return None
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailer fields, up to the empty line.
                    while (line := self.rfile.readline()) not in (b"\r\n", b"\n"):
                        if not line:
                            return None
                    return data
                chunk = self.rfile.read(size + 2)
                if len(chunk) < size + 2:
                    return None
                data += chunk[:size]
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _act(self, kind, ids, query, body, who):
        approval = self.headers.get("x-greenlight-approval")
        if kind == "payment":
            return self._answer(200, {"payment": ids[0], "amount": 1000, "currency": "EUR"})
        if kind == "refund":
            if self.server.params == "query":
                q = parse_qs(query)
                amount, currency = q.get("amount", [None])[0], q.get("currency", [None])[0]
            else:
                try:
                    p = json.loads(body or b"null")
                except ValueError:
                    p = None
                p = p if isinstance(p, dict) else {}
                amount, currency = p.get("amount"), p.get("currency")
            if amount is None or currency is None:
                return self._answer(400, {"error": f"amount and currency belong in the {self.server.params}"})
            return self._answer(200, {"refunded": int(amount), "currency": currency, "payment": ids[0],
                                      "by": who, "approval": approval})
        if kind == "file":
            return self._answer(200, {"written": ids[1], "owner": ids[0], "by": who, "approval": approval})
        return self._answer(200, {"erased": ids[1], "tenant": ids[0], "by": who, "approval": approval})

    def _control(self, path):
        with self.server.lock:
            if path == "/_upstream/calls" and self.command == "GET":
                return self._answer(200, list(self.server.calls))
            if path == "/_upstream/aborted" and self.command == "GET":
                return self._answer(200, {"aborted": self.server.aborted})
            if path == "/_upstream/reset" and self.command == "POST":
                self.server.calls.clear()
                self.server.aborted = 0
                return self._answer(200, {"reset": True})
        return self._answer(404, {"error": "no such endpoint"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:9000", help="host:port (port 0 picks one)")
    parser.add_argument("--params", choices=["body", "query"], default="body",
                        help="where a refund's amount and currency are read")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    server = ThreadingHTTPServer((host, int(port)), Api)
    server.daemon_threads = True
    server.calls, server.lock, server.params, server.aborted = [], threading.Lock(), args.params, 0
    print(f"listening on {host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
