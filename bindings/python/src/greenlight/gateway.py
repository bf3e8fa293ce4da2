"""From a decision to the HTTP answer a gateway gives (docs/gateway.md).

The mapping itself is the component's: `Policy.respond` calls its
`greenlight:approval/gateway.respond`, the one mapping every host calls, and
this binding keeps no table of its own. What is here is the host's part, as
in the Rust host (`host/src/convert.rs` fn `answer`, `host/src/policy.rs` fn
`unavailable`): the module's answer is checked before anyone acts on it, and
an answer that does not fit its decision, or a module that fails, gets a
`503` instead. Never a pass-through.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from .decision import Allow, Decision, Deny, InvalidOutput, MAX_LIST, StepUpRequired, _check_str, check_header


class Response(NamedTuple):
    """The answer a gateway gives of its own, or none for an allow. Unpacks
    as `status, headers, body`."""

    #: The HTTP status; 0 for an allow, which the upstream answers.
    status: int
    #: Lower-case `(name, value)` pairs: `www-authenticate` when there is
    #: one, then `content-type` and `cache-control`. Empty for an allow.
    headers: list[tuple[str, str]]
    #: The JSON body, parsed; `None` for an allow.
    body: Any


def unavailable(code: str, message: str) -> Response:
    """The answer when the module cannot give one: a `503` with the code of
    what failed, never letting the request through."""
    return Response(503, [("content-type", "application/json"), ("cache-control", "no-store")],
                    {"error": "temporarily_unavailable", "error_description": message, "code": code})


def checked_answer(raw: Any, decision: Decision) -> Response:
    """The module's WIT `http-answer` for `decision`, checked as the Rust
    host checks it: a JSON body, a status that fits the verdict (0 with no
    body for an allow only; 400 to 599 with a JSON object for anything
    else), valid HTTP headers. Raises `InvalidOutput` with the Rust host's
    reason otherwise."""
    status, headers, text = raw.status, raw.headers, raw.body
    body = None
    if text is not None:
        _check_str(text, "the answer's body")
        try:
            body = json.loads(text, parse_constant=_no_constant)
        except ValueError as e:
            raise InvalidOutput(f"the answer's body is not JSON: {e}") from None
    if isinstance(decision.verdict, Allow):
        fits = status == 0 and body is None
    else:
        fits = 400 <= status <= 599 and isinstance(body, dict)
    if not fits:
        raise InvalidOutput(f"status {status} with {'no' if body is None else 'a'} body "
                            f"does not answer {_what(decision)}")
    if len(headers) > MAX_LIST:
        raise InvalidOutput(f"the answer's headers has {len(headers)} entries")
    for name, value in headers:
        check_header(name, value)
    return Response(status, [(name, value) for name, value in headers], body)


def _what(decision: Decision) -> str:
    v = decision.verdict
    if isinstance(v, Allow):
        return "an allow"
    if isinstance(v, Deny):
        return f"a deny `{v.code}`"
    if isinstance(v, StepUpRequired):
        return "a step-up-required"
    return "an approval-required"


def _no_constant(name: str) -> Any:
    # serde_json, like RFC 8259, has no NaN or Infinity.
    raise ValueError(f"`{name}` is not JSON")
