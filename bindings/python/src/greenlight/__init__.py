"""Greenlight for Python: `greenlight.wasm` in wasmtime-py.

    from greenlight import Engine, respond
    policy = Engine("greenlight.wasm").load_bundle_dir("examples/bundle")
    decision = policy.evaluate_http({"method": "POST", "path": "/payments/p-1/refund",
                                     "headers": [["authorization", "Bearer ..."]],
                                     "params": '{"amount": 50, "currency": "EUR"}'}, now)
    status, headers, body = respond(decision, "https://greenlight.example.com")

The ASGI middleware is `greenlight.asgi.GreenlightMiddleware` (needs httpx).
"""

from .decision import (
    DENIAL_CODES,
    Allow,
    ApprovalRequired,
    Decision,
    Deny,
    InvalidOutput,
    Obligation,
    SingleUse,
)
from .engine import (
    ACTION_ISSUER,
    AccessRequest,
    BundleError,
    Denied,
    Engine,
    EngineError,
    HttpRequest,
    Limits,
    Policy,
    Principal,
    Problem,
    read_bundle_dir,
)
from .gateway import respond, status_of

__all__ = [
    "ACTION_ISSUER",
    "DENIAL_CODES",
    "AccessRequest",
    "Allow",
    "ApprovalRequired",
    "BundleError",
    "Decision",
    "Denied",
    "Deny",
    "Engine",
    "EngineError",
    "HttpRequest",
    "InvalidOutput",
    "Limits",
    "Obligation",
    "Policy",
    "Principal",
    "Problem",
    "SingleUse",
    "read_bundle_dir",
    "respond",
    "status_of",
]
