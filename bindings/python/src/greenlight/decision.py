"""Decisions: the WIT `decision` as Python dataclasses.

`Decision.to_json()` gives exactly the JSON of the Rust
`greenlight_core::Decision` (compact, serde's field order, kebab-case kinds,
`null` for an absent `consume`), so a decision can be compared byte for byte
with the Rust host's. `Decision.from_dict()` reads that JSON back, strictly:
it is how a gateway reads the approval service's answer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, Union

from . import _json

#: Every denial code, in WIT order (`wit/types.wit`, `denial-code`).
DENIAL_CODES: tuple[str, ...] = (
    "request-invalid",
    "route-not-found",
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
    "policy-forbidden",
    "policy-no-permit",
    "action-token-digest-mismatch",
    "action-token-invalid",
    "action-token-replayed",
    "engine-trap",
    "engine-timeout",
    "engine-memory-exceeded",
    "engine-invalid-output",
    "engine-unavailable",
)

#: The grant modes of an obligation.
GRANT_MODES: tuple[str, ...] = ("once", "window")

#: The largest string accepted from a policy module or the approval service
#: (as the Rust host: 64 KiB); a bigger one means something is wrong.
MAX_STRING = 64 * 1024
#: The most entries accepted in one list (reasons, headers, approvers).
MAX_LIST = 64
#: The longest header value accepted for forwarding.
MAX_HEADER_VALUE = 8192
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)


class InvalidOutput(ValueError):
    """When a policy module or the approval service returned a value that is
    not a well-formed decision. The message says what is wrong."""


@dataclass(frozen=True)
class SingleUse:
    """A single-use action token the host must record before the action runs."""

    #: The token's `jti`.
    token_id: str
    #: When the token expires, in Unix seconds.
    expires_at: int


@dataclass(frozen=True)
class Allow:
    """The request may proceed."""

    #: The authenticated subject (`sub` of the token).
    subject: str
    #: Set for a `once` action token: the host must consume it first.
    consume: Optional[SingleUse]
    #: Headers to add to the upstream request, as `(name, value)` pairs.
    forward_headers: tuple[tuple[str, str], ...]
    kind = "allow"


@dataclass(frozen=True)
class Deny:
    """The request is refused."""

    #: The failure class, one of `DENIAL_CODES`.
    code: str
    #: A message for a person; never parse it, use `code`.
    message: str
    kind = "deny"


@dataclass(frozen=True)
class Obligation:
    """What must happen before an action that needs approval may proceed."""

    approvers: tuple[str, ...]
    quorum: int
    ttl_seconds: int
    #: `once` or `window`.
    grant: str
    window_seconds: int
    reason_required: bool
    message: str


@dataclass(frozen=True)
class ApprovalRequired:
    """The request is refused for now: this exact action needs approval."""

    #: RFC 9396 `authorization_details`, parsed (a JSON array).
    authorization_details: Any
    #: base64url SHA-256 of the canonical action.
    action_digest: str
    obligation: Obligation
    kind = "approval-required"


Verdict = Union[Allow, Deny, ApprovalRequired]


@dataclass(frozen=True)
class Decision:
    """A verdict with the policies that determined it and the bundle's hash."""

    verdict: Verdict
    #: The ids of the determining policies, sorted.
    reasons: tuple[str, ...]
    #: Hex SHA-256 of the loaded bundle.
    policy_hash: str

    @staticmethod
    def deny(code: str, message: str, policy_hash: str) -> "Decision":
        """A deny with no determining policies (as the Rust `Decision::deny`)."""
        if code not in DENIAL_CODES:
            raise ValueError(f"unknown denial code `{code}`")
        return Decision(Deny(code, message), (), policy_hash)

    @property
    def allowed(self) -> bool:
        """Whether the verdict is `allow`."""
        return isinstance(self.verdict, Allow)

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data, keys in serde's order."""
        v = self.verdict
        if isinstance(v, Allow):
            verdict: dict[str, Any] = {
                "kind": "allow",
                "subject": v.subject,
                "consume": None
                if v.consume is None
                else {"token_id": v.consume.token_id, "expires_at": v.consume.expires_at},
                "forward_headers": [[k, val] for k, val in v.forward_headers],
            }
        elif isinstance(v, Deny):
            verdict = {"kind": "deny", "code": v.code, "message": v.message}
        else:
            o = v.obligation
            verdict = {
                "kind": "approval-required",
                "authorization_details": v.authorization_details,
                "action_digest": v.action_digest,
                "obligation": {
                    "approvers": list(o.approvers),
                    "quorum": o.quorum,
                    "ttl_seconds": o.ttl_seconds,
                    "grant": o.grant,
                    "window_seconds": o.window_seconds,
                    "reason_required": o.reason_required,
                    "message": o.message,
                },
            }
        return {"verdict": verdict, "reasons": list(self.reasons), "policy_hash": self.policy_hash}

    def to_json(self) -> str:
        """The compact JSON every host prints the same (the Rust `Decision::to_json`)."""
        return _json.dumps(self.to_dict())

    @staticmethod
    def from_dict(data: Any, *, extra_keys: frozenset[str] = frozenset()) -> "Decision":
        """Reads and validates decision JSON (as `to_dict` writes it).

        `extra_keys` names top-level keys to tolerate and ignore (the
        approval service adds `ask` to approval-required answers). Raises
        `InvalidOutput` for anything else that is not exactly a decision.
        """
        top = _obj(data, "the decision", {"verdict", "reasons", "policy_hash"}, extra_keys)
        verdict = top["verdict"]
        if not isinstance(verdict, dict):
            raise InvalidOutput("`verdict` is not an object")
        kind = verdict.get("kind")
        if kind == "allow":
            v = _obj(verdict, "the allow", {"kind", "subject", "consume", "forward_headers"})
            consume = None
            if v["consume"] is not None:
                c = _obj(v["consume"], "`consume`", {"token_id", "expires_at"})
                consume = SingleUse(
                    _str(c["token_id"], "the token id"), _uint(c["expires_at"], "`expires_at`", _U64_MAX)
                )
            headers = tuple(
                _pair(h, "a forward header") for h in _list(v["forward_headers"], "forward headers")
            )
            result: Verdict = Allow(_str(v["subject"], "the subject"), consume, headers)
        elif kind == "deny":
            v = _obj(verdict, "the deny", {"kind", "code", "message"})
            result = Deny(_str(v["code"], "the code"), _str(v["message"], "the denial message"))
        elif kind == "approval-required":
            v = _obj(verdict, "the challenge", {"kind", "authorization_details", "action_digest", "obligation"})
            o = _obj(
                v["obligation"],
                "the obligation",
                {"approvers", "quorum", "ttl_seconds", "grant", "window_seconds", "reason_required", "message"},
            )
            if not isinstance(o["reason_required"], bool):
                raise InvalidOutput("`reason_required` is not a boolean")
            obligation = Obligation(
                tuple(_str(a, "an approver") for a in _list(o["approvers"], "approvers")),
                _uint(o["quorum"], "the quorum", _U32_MAX),
                _uint(o["ttl_seconds"], "`ttl_seconds`", _U64_MAX),
                _str(o["grant"], "the grant"),
                _uint(o["window_seconds"], "`window_seconds`", _U64_MAX),
                o["reason_required"],
                _str(o["message"], "the obligation message"),
            )
            details = v["authorization_details"]
            if len(json.dumps(details)) > MAX_STRING:
                raise InvalidOutput("authorization_details is too large")
            result = ApprovalRequired(details, _str(v["action_digest"], "the action digest"), obligation)
        else:
            raise InvalidOutput(f"unknown verdict kind {kind!r}")
        reasons = tuple(_str(r, "a reason") for r in _list(top["reasons"], "reasons"))
        return validated(Decision(result, reasons, _str(top["policy_hash"], "the policy hash")))


def validated(d: Decision) -> Decision:
    """Checks the shapes the Rust host checks on a module's decision (sizes,
    list lengths, header syntax, non-empty subject, approvers and quorum,
    known codes) and returns `d`, or raises `InvalidOutput`."""
    _check_list(d.reasons, "reasons")
    for r in d.reasons:
        _check_str(r, "a reason")
    _check_str(d.policy_hash, "the policy hash")
    v = d.verdict
    if isinstance(v, Allow):
        _check_str(v.subject, "the subject")
        _check_list(v.forward_headers, "forward headers")
        for name, value in v.forward_headers:
            check_header(name, value)
        if not v.subject:
            raise InvalidOutput("an allow without a subject")
        if v.consume is not None:
            _check_str(v.consume.token_id, "the token id")
            if not v.consume.token_id:
                raise InvalidOutput("a single-use token without an id")
    elif isinstance(v, Deny):
        if v.code not in DENIAL_CODES:
            raise InvalidOutput(f"unknown denial code {v.code!r}")
        _check_str(v.message, "the denial message")
    else:
        o = v.obligation
        _check_str(v.action_digest, "the action digest")
        _check_list(o.approvers, "approvers")
        for a in o.approvers:
            _check_str(a, "an approver")
        _check_str(o.message, "the obligation message")
        if not o.approvers or o.quorum == 0:
            raise InvalidOutput("an obligation without approvers or quorum")
        if o.grant not in GRANT_MODES:
            raise InvalidOutput(f"unknown grant mode {o.grant!r}")
        if not isinstance(v.authorization_details, list):
            raise InvalidOutput("authorization_details is not an array")
    return d


def check_header(name: str, value: str) -> None:
    """Raises `InvalidOutput` unless `name` is an HTTP token (RFC 9110
    §5.6.2) and `value` has no CR, LF or NUL and at most 8 KiB."""
    if not name or any(c not in _TOKEN_CHARS for c in name):
        raise InvalidOutput(f"header {name!r} is not a valid HTTP header")
    if any(c in value for c in "\r\n\0") or len(value.encode()) > MAX_HEADER_VALUE:
        raise InvalidOutput(f"header {name!r} is not a valid HTTP header")


def _check_str(s: str, what: str) -> None:
    if len(s.encode()) > MAX_STRING:
        raise InvalidOutput(f"{what} has {len(s.encode())} bytes")


def _check_list(items: Any, what: str) -> None:
    if len(items) > MAX_LIST:
        raise InvalidOutput(f"{what} has {len(items)} entries")


def _obj(v: Any, what: str, keys: set[str], extra: frozenset[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise InvalidOutput(f"{what} is not an object")
    missing = keys - v.keys()
    unknown = v.keys() - keys - extra
    if missing or unknown:
        raise InvalidOutput(f"{what} lacks {sorted(missing)} or has unknown {sorted(unknown)}")
    return v


def _str(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise InvalidOutput(f"{what} is not a string")
    return v


def _uint(v: Any, what: str, top: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= top:
        raise InvalidOutput(f"{what} is not an unsigned integer")
    return v


def _list(v: Any, what: str) -> list[Any]:
    if not isinstance(v, list):
        raise InvalidOutput(f"{what} is not a list")
    _check_list(v, what)
    return v


def _pair(v: Any, what: str) -> tuple[str, str]:
    if not isinstance(v, list) or len(v) != 2:
        raise InvalidOutput(f"{what} is not a [name, value] pair")
    return (_str(v[0], what), _str(v[1], what))
