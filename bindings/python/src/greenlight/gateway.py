"""From a decision to the HTTP answer a gateway gives (docs/gateway.md).

The same mapping as the Rust `greenlight_core::gateway::respond`; each
conformance vector pins its `response`, so every host gives the same answer.
"""

from __future__ import annotations

from typing import Any, Optional

from .decision import Allow, ApprovalRequired, Decision

#: The answer a gateway gives of its own: status (0 for an allow, which the
#: upstream answers), lower-case `(name, value)` headers, the JSON body
#: (`None` for an allow).
Response = tuple[int, list[tuple[str, str]], Any]

_INVALID_TOKEN = frozenset(
    {
        "token-missing",
        "token-too-large",
        "token-malformed",
        "token-unsupported-algorithm",
        "token-algorithm-not-allowed",
        "token-unknown-issuer",
        "token-unknown-key",
        "token-key-mismatch",
        "token-bad-signature",
        "token-wrong-type",
        "token-unknown-critical-header",
        "token-wrong-audience",
        "token-expired",
        "token-not-yet-valid",
        "token-issued-in-future",
        "token-missing-claim",
        "action-token-invalid",
        "action-token-replayed",
    }
)
_FORBIDDEN = frozenset(
    {"route-not-found", "policy-forbidden", "policy-no-permit", "action-token-digest-mismatch"}
)


def status_of(code: str) -> tuple[int, str]:
    """The HTTP status and OAuth `error` of a denial code. An unknown code
    is treated as an engine failure (503): fail closed."""
    if code == "request-invalid":
        return 400, "invalid_request"
    if code in _INVALID_TOKEN:
        return 401, "invalid_token"
    if code in _FORBIDDEN:
        return 403, "access_denied"
    return 503, "temporarily_unavailable"


def respond(decision: Decision, service_url: str) -> Response:
    """The answer for `decision`, with the approval service at `service_url`
    (its base URL without a trailing slash) named in challenges.

    Returns `(status, headers, body)`: `(0, [], None)` for an allow, which
    the upstream answers; otherwise a JSON body with its status and headers.
    """
    v = decision.verdict
    if isinstance(v, Allow):
        return 0, [], None
    if isinstance(v, ApprovalRequired):
        body = {
            "error": "insufficient_authorization",
            "error_description": v.obligation.message or "approval required",
            "code": "approval-required",
            "authorization_details": v.authorization_details,
            "action_digest": v.action_digest,
            "obligation": decision.to_dict()["verdict"]["obligation"],
            "ask": {
                "backchannel_authentication_endpoint": f"{service_url}/oauth/bc-authorize",
                "token_endpoint": f"{service_url}/oauth/token",
            },
        }
        challenge = 'Bearer error="insufficient_authorization", error_description="approval required"'
        return _json_response(401, challenge, body)
    status, error = status_of(v.code)
    challenge: Optional[str] = None
    if status == 401:
        if v.code == "token-missing":
            challenge = "Bearer"
        else:
            challenge = f'Bearer error="invalid_token", error_description="{quoted(v.message)}"'
    body = {"error": error, "error_description": v.message, "code": v.code}
    return _json_response(status, challenge, body)


def quoted(message: str) -> str:
    """`message` made safe for one quoted string of a `www-authenticate`
    header: `"` becomes `'`, `\\` becomes `/`, control characters spaces."""
    return "".join(
        "'" if c == '"' else "/" if c == "\\" else " " if _is_control(c) else c for c in message
    )


def _is_control(c: str) -> bool:
    # Rust's char::is_control: the Unicode Cc category.
    o = ord(c)
    return o < 0x20 or 0x7F <= o <= 0x9F


def _json_response(status: int, challenge: Optional[str], body: Any) -> Response:
    headers = [] if challenge is None else [("www-authenticate", challenge)]
    headers += [("content-type", "application/json"), ("cache-control", "no-store")]
    return status, headers, body
