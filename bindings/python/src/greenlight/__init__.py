"""Greenlight for Python: `greenlight.wasm` in wasmtime-py.

    from greenlight import Engine
    policy = Engine("greenlight.wasm").load_bundle_dir("examples/bundle")
    decision = policy.evaluate_http({"method": "POST", "path": "/payments/p-1/refund",
                                     "headers": [["authorization", "Bearer ..."]],
                                     "params": '{"amount": 50, "currency": "EUR"}'}, now)
    status, headers, body = policy.respond(decision, "https://greenlight.example.com")

The HTTP answer comes from the component (`gateway.respond`), never from a
table of this package. The ASGI middleware is
`greenlight.asgi.GreenlightMiddleware` (needs httpx); it fetches the keys
of issuers the bundle does not carry with `greenlight.keys.KeySources`
(also needs httpx), which any other host can use as well.
"""

from .decision import (
    ATTRIBUTE_KINDS,
    DENIAL_CODES,
    Action,
    Allow,
    ApprovalRequired,
    Attribute,
    AttributeValue,
    Decision,
    Deny,
    InvalidOutput,
    Obligation,
    Principal,
    SingleUse,
    StepUpRequired,
)
from .engine import (
    ACTION_ISSUER,
    WIT_VERSION,
    AccessRequest,
    BundleError,
    Denied,
    Engine,
    EngineError,
    HttpRequest,
    Limits,
    Policy,
    Problem,
    read_bundle_dir,
    read_tests_dir,
)
from .gateway import Response
from .keys import KeySources
from .info import (
    ActionToken,
    ActionTokenSettings,
    ApprovalSettings,
    BundleInfo,
    ClaimNames,
    Credential,
    EngineStats,
    IssuerInfo,
    KeyFetchSettings,
    KeySource,
    TestOutcome,
)

__all__ = [
    "ACTION_ISSUER",
    "ATTRIBUTE_KINDS",
    "DENIAL_CODES",
    "WIT_VERSION",
    "AccessRequest",
    "Action",
    "ActionToken",
    "ActionTokenSettings",
    "Allow",
    "ApprovalRequired",
    "ApprovalSettings",
    "Attribute",
    "AttributeValue",
    "BundleError",
    "BundleInfo",
    "ClaimNames",
    "Credential",
    "Decision",
    "Denied",
    "Deny",
    "Engine",
    "EngineError",
    "EngineStats",
    "HttpRequest",
    "InvalidOutput",
    "IssuerInfo",
    "KeyFetchSettings",
    "KeySource",
    "KeySources",
    "Limits",
    "Obligation",
    "Policy",
    "Principal",
    "Problem",
    "Response",
    "SingleUse",
    "StepUpRequired",
    "read_bundle_dir",
    "read_tests_dir",
    "TestOutcome",
]
