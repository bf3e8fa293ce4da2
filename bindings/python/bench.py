"""Per-decision latency of greenlight.wasm called from Python (wasmtime-py).

    GREENLIGHT_WASM=$(greenlight component path) python bindings/python/bench.py [--iterations N]

Every vector of tests/vectors is decided N times after a warm-up, on one
policy per vector, so the verified-token cache answers the signature part
("warm" in BENCHMARKS.md). Prints the mean and median per decision for the
cases BENCHMARKS.md reports for Rust, then over all vectors. The time
includes everything a Python caller pays: building the WIT values, the call,
lifting and validating the decision. Not a test: numbers on a shared
machine are noisy; compare them with the Rust ones measured in the same hour.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from greenlight import AccessRequest, Engine, HttpRequest, Principal

ROOT = Path(__file__).resolve().parents[2]
#: The cases of BENCHMARKS.md: case name -> vector.
CASES = {
    "refund-500-eddsa": "002-demo-refund-500-needs-finance",
    "read-es256": "044-keys-es256-allowed",
    "read-rs256": "046-keys-rs256-allowed",
}


def prepare(engine: Engine, path: Path):
    """The vector's policy (keys set) and a call deciding its request."""
    v = json.loads(path.read_text(encoding="utf-8"))
    policy = engine.load_bundle_dir(ROOT / v["bundle"])
    for k in v["keys"]:
        policy.set_keys(k["issuer"], (ROOT / k["jwks"]).read_text(encoding="utf-8"))
    (kind, request), = v["request"].items()
    if kind == "http":
        req = HttpRequest.from_dict(request)
        return lambda: policy.evaluate_http(req, v["now"])
    if kind == "vouched":
        subject, access = Principal.from_dict(request["subject"]), AccessRequest.from_dict(request["access"])
        return lambda: policy.evaluate_as(subject, access, v["now"])
    req = AccessRequest.from_dict(request)
    return lambda: policy.evaluate(req, v["now"])


def measure(decide, iterations: int, warmup: int) -> list[float]:
    """Microseconds per call, one sample per call."""
    for _ in range(warmup):
        decide()
    samples = []
    for _ in range(iterations):
        t = time.perf_counter_ns()
        decide()
        samples.append((time.perf_counter_ns() - t) / 1000)
    return samples


def main() -> int:
    """Runs the benchmark and prints a Markdown table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wasm", default=os.environ.get("GREENLIGHT_WASM"),
                    help="greenlight.wasm (default $GREENLIGHT_WASM)")
    ap.add_argument("--iterations", type=int, default=300, help="timed decisions per vector (default 300)")
    ap.add_argument("--warmup", type=int, default=30, help="untimed decisions per vector first (default 30)")
    args = ap.parse_args()
    if not args.wasm:
        ap.error("no component: pass --wasm or set GREENLIGHT_WASM")
    engine = Engine(args.wasm)
    vectors = sorted((ROOT / "tests/vectors").glob("*.json"))
    results = {p.stem: measure(prepare(engine, p), args.iterations, args.warmup) for p in vectors}

    print(f"wasmtime-py, Python {sys.version.split()[0]}, {args.iterations} warm decisions per vector\n")
    print("| case | mean | median |")
    print("|---|---|---|")
    for case, stem in CASES.items():
        s = results[stem]
        print(f"| {case} (warm) | {statistics.fmean(s):.1f} µs | {statistics.median(s):.1f} µs |")
    everything = [x for s in results.values() for x in s]
    print(f"| all {len(vectors)} vectors (warm) | {statistics.fmean(everything):.1f} µs "
          f"| {statistics.median(everything):.1f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
