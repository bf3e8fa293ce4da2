#!/usr/bin/env python3
"""A load loop for the live-policy walkthrough: clients POST the same
refund to /v1/check on one or more `greenlight serve`s, without pause, and
check every answer: a 200 whose verdict is the one its named bundle gives
(`--expect HASH=VERDICT`, one per version the walkthrough may publish).
Until the file `--stop` appears; then it prints what it saw as JSON and
exits 1 if any answer failed or was wrong.

    python3 examples/live/load.py --url http://127.0.0.1:8280 --token "$alice" \\
        --expect "$h100=approval-required" --expect "$h1000=allow" --stop "$work/stop"
"""

import argparse
import collections
import json
import os
import sys
import threading
import urllib.error
import urllib.request


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", action="append", required=True, help="a server's base URL (repeatable)")
    p.add_argument("--token", required=True)
    p.add_argument("--expect", action="append", default=[], help="POLICY_HASH=VERDICT (repeatable)")
    p.add_argument("--stop", required=True, help="stop once this file exists")
    p.add_argument("--clients", type=int, default=2, help="clients per server")
    a = p.parse_args()
    expect = dict(e.split("=", 1) for e in a.expect)
    body = json.dumps({
        "method": "POST", "path": "/payments/pay_123/refund",
        "headers": {"authorization": f"Bearer {a.token}"},
        "params": {"amount": 500, "currency": "EUR"},
    }).encode()
    lock = threading.Lock()
    seen = collections.Counter()
    wrong = []

    def client(url: str) -> None:
        while not os.path.exists(a.stop):
            req = urllib.request.Request(f"{url}/v1/check", data=body,
                                         headers={"content-type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as r:
                    status, d = r.status, json.load(r)
            except urllib.error.HTTPError as e:
                status, d = e.code, {}
            except OSError as e:
                status, d = 0, {"error": str(e)}
            with lock:
                kind = d.get("verdict", {}).get("kind")
                h = d.get("policy_hash")
                if status != 200 or h not in expect or kind != expect[h]:
                    wrong.append({"url": url, "status": status, "policy_hash": h, "verdict": kind})
                else:
                    seen[f"{h[:12]} {d.get('component_hash', '')[:12]} {kind}"] += 1

    threads = [threading.Thread(target=client, args=(u,)) for u in a.url for _ in range(a.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"decisions": sum(seen.values()) + len(wrong), "failed_or_wrong": len(wrong),
                      "by_version": dict(seen), "first_wrong": wrong[:5]}, indent=2))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
