"""Decisions: the WIT `decision` as Python dataclasses.

`Decision.to_json()` gives exactly the JSON of the Rust
`greenlight_types::Decision` (compact, serde's field order, kebab-case
kinds, `null` for an absent `approval_id` or `consume`, a deny's `issuer`
only when present, approvers as their policy text), so a decision can be
compared byte for byte with the Rust host's. `Decision.from_dict()` reads
that JSON back, strictly: it is how a gateway reads the approval service's
answer.

Everything a host acts on is a field: who acts (`principal`), on what
(`action`, with its digest), under which approval (`approval_id`), which
single-use token to consume (`consume`). A host never reads them back out
of a forward header or of `authorization_details`.
"""

from __future__ import annotations

import json
import unicodedata
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
    "token-invalid-claim",
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
#: The suffix that scopes an approver group to the requester's tenant.
_TENANT_SUFFIX = "@tenant"

#: The largest string accepted from a policy module or the approval service
#: (as the Rust host: 64 KiB); a bigger one means something is wrong.
MAX_STRING = 64 * 1024
#: The most entries accepted in one list (reasons, headers, approvers, scopes).
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
class Principal:
    """Who a verified token names, as the policies see them (the WIT
    `principal`): who acts in an `Allow`, who asks in an `ApprovalRequired`,
    whom the `Credential` of `Policy.authenticate` names, and the subject
    `Policy.evaluate_as` decides for."""

    #: The Cedar entity type of principals in the bundle, e.g. `User`
    #: (`evaluate_as` replaces it with the bundle's).
    entity_type: str
    #: `sub`.
    subject: str
    #: `client_id` (or `azp`); empty when absent.
    client_id: str
    #: The token's scopes.
    scopes: tuple[str, ...]
    #: The subject's groups: from a token, only those its issuer is
    #: authoritative for (the bundle's first issuer: any; another: those its
    #: `[[issuers]]` entry lists in `groups`).
    groups: tuple[str, ...]
    #: The subject's roles.
    roles: tuple[str, ...]
    #: The subject's tenant; empty when absent.
    tenant: str
    #: The token's issuer.
    issuer: str

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Principal":
        """From the JSON shape of the vectors (snake_case keys); the lists
        default to empty, `client_id` and `tenant` to the empty string. For
        building a subject to vouch for; `Decision.from_dict` reads
        principals strictly."""
        return Principal(d["entity_type"], d["subject"], d.get("client_id", ""),
                         _text_tuple(d.get("scopes", ()), "scopes"), _text_tuple(d.get("groups", ()), "groups"),
                         _text_tuple(d.get("roles", ()), "roles"), d.get("tenant", ""), d["issuer"])

    def to_dict(self) -> dict[str, Any]:
        """The principal's JSON, keys in serde's order."""
        return {"entity_type": self.entity_type, "subject": self.subject, "client_id": self.client_id,
                "scopes": list(self.scopes), "groups": list(self.groups), "roles": list(self.roles),
                "tenant": self.tenant, "issuer": self.issuer}


@dataclass(frozen=True)
class Action:
    """One concrete action (the WIT `action`): what is done, to what, with
    which bound parameters, and the digest that names exactly this action."""

    #: The action id, e.g. `payment.refund`.
    name: str
    #: The resource's entity type, e.g. `Payment`.
    resource_type: str
    #: The resource's id, e.g. `pay_123`.
    resource_id: str
    #: The bound parameters (a JSON object, parsed), members in the order
    #: the module gave them.
    params: dict[str, Any]
    #: The digest the core computed for exactly this action (an action
    #: token carries it as `act_digest`). The binding passes it through;
    #: the Rust host checks it (`host/src/convert.rs`).
    digest: str

    def __str__(self) -> str:
        """`` `payment.refund` on `Payment::pay_123` ``, for messages."""
        return f"`{self.name}` on `{self.resource_type}::{self.resource_id}`"

    def to_dict(self) -> dict[str, Any]:
        """The action's JSON, keys in serde's order."""
        return {"name": self.name, "resource_type": self.resource_type, "resource_id": self.resource_id,
                "params": self.params, "digest": self.digest}


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

    #: Who acts: the principal of the verified token (an access token, or
    #: the action token an approval produced), or the vouched subject.
    principal: Principal
    #: What they do.
    action: Action
    #: The approval that allowed the action (an action token, or a window
    #: grant the approval service found): the service must check it was not
    #: revoked. `None` otherwise.
    approval_id: Optional[str]
    #: Set for a `once` action token: the host must consume it first.
    consume: Optional[SingleUse]
    #: Headers to add to the upstream request, as `(name, value)` pairs,
    #: derived from the fields above (`x-greenlight-subject`,
    #: `x-greenlight-issuer`, `x-greenlight-action`, `x-greenlight-approval`).
    forward_headers: tuple[tuple[str, str], ...]
    kind = "allow"


@dataclass(frozen=True)
class Deny:
    """The request is refused."""

    #: The failure class, one of `DENIAL_CODES`.
    code: str
    #: A message for a person; never parse it, use `code`.
    message: str
    #: For `token-unknown-key` from an issuer whose keys the host fetches
    #: (`KeySource` other than `bundle`): that issuer, so the host can fetch
    #: its keys again (no more often than the bundle's
    #: `key_fetch.unknown_kid_interval_seconds`), hand them to
    #: `Policy.set_keys` and decide once more. `None` for every other
    #: denial, and then absent from the JSON.
    issuer: Optional[str] = None
    kind = "deny"


@dataclass(frozen=True)
class Obligation:
    """What must happen before an action that needs approval may proceed."""

    #: Who may approve, as policy text: `group:NAME`, `group:NAME@tenant`,
    #: `user:SUBJECT` or `subject`.
    approvers: tuple[str, ...]
    quorum: int
    ttl_seconds: int
    #: `once` or `window`.
    grant: str
    window_seconds: int
    reason_required: bool
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The obligation's JSON, keys in serde's order."""
        return {"approvers": list(self.approvers), "quorum": self.quorum, "ttl_seconds": self.ttl_seconds,
                "grant": self.grant, "window_seconds": self.window_seconds,
                "reason_required": self.reason_required, "message": self.message}


@dataclass(frozen=True)
class ApprovalRequired:
    """The request is refused for now: this exact action needs approval."""

    #: Who asks: the verified principal of the request.
    requester: Principal
    #: The action to approve.
    action: Action
    #: RFC 9396 `authorization_details`, parsed (a JSON array).
    authorization_details: Any
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
    def deny(code: str, message: str, policy_hash: str, issuer: Optional[str] = None) -> "Decision":
        """A deny with no determining policies (as the Rust `Decision::deny`),
        naming `issuer` when given (see `Deny.issuer`)."""
        if code not in DENIAL_CODES:
            raise ValueError(f"unknown denial code `{code}`")
        return Decision(Deny(code, message, issuer), (), policy_hash)

    @property
    def allowed(self) -> bool:
        """Whether the verdict is `allow`."""
        return isinstance(self.verdict, Allow)

    @property
    def needs_service(self) -> bool:
        """Whether a gateway must ask the approval service about this
        decision instead of answering it alone (docs/gateway.md), read from
        typed fields only: an allow with `consume` (a `once` action token to
        consume) or an `approval_id` (an approval that may have been
        revoked), or approval-required with a `window` grant (the service
        may hold one for this subject and action)."""
        v = self.verdict
        if isinstance(v, Allow):
            return v.consume is not None or v.approval_id is not None
        if isinstance(v, ApprovalRequired):
            return v.obligation.grant == "window"
        return False

    def to_dict(self) -> dict[str, Any]:
        """The decision as JSON-ready data, keys in serde's order."""
        v = self.verdict
        if isinstance(v, Allow):
            verdict: dict[str, Any] = {
                "kind": "allow",
                "principal": v.principal.to_dict(),
                "action": v.action.to_dict(),
                "approval_id": v.approval_id,
                "consume": None
                if v.consume is None
                else {"token_id": v.consume.token_id, "expires_at": v.consume.expires_at},
                "forward_headers": [[k, val] for k, val in v.forward_headers],
            }
        elif isinstance(v, Deny):
            verdict = {"kind": "deny", "code": v.code, "message": v.message}
            if v.issuer is not None:  # serde skips an absent issuer
                verdict["issuer"] = v.issuer
        else:
            verdict = {
                "kind": "approval-required",
                "requester": v.requester.to_dict(),
                "action": v.action.to_dict(),
                "authorization_details": v.authorization_details,
                "obligation": v.obligation.to_dict(),
            }
        return {"verdict": verdict, "reasons": list(self.reasons), "policy_hash": self.policy_hash}

    def to_json(self) -> str:
        """The compact JSON every host prints the same (the Rust `Decision::to_json`)."""
        return _json.dumps(self.to_dict())

    @staticmethod
    def from_dict(data: Any, *, extra_keys: frozenset[str] = frozenset()) -> "Decision":
        """Reads and validates decision JSON (as `to_dict` writes it, and as
        serde reads it: a principal's `client_id`, `tenant` and lists may be
        absent). `extra_keys` names top-level keys to tolerate and ignore
        (the approval service adds `ask` to approval-required answers).
        Raises `InvalidOutput` for anything else that is not exactly a
        decision."""
        top = _obj(data, "the decision", {"verdict", "reasons", "policy_hash"}, extra_keys)
        verdict = top["verdict"]
        if not isinstance(verdict, dict):
            raise InvalidOutput("`verdict` is not an object")
        kind = verdict.get("kind")
        if kind == "allow":
            v = _obj(verdict, "the allow",
                     {"kind", "principal", "action", "approval_id", "consume", "forward_headers"})
            consume = None
            if v["consume"] is not None:
                c = _obj(v["consume"], "`consume`", {"token_id", "expires_at"})
                consume = SingleUse(
                    _str(c["token_id"], "the token id"), _uint(c["expires_at"], "`expires_at`", _U64_MAX)
                )
            approval_id = None if v["approval_id"] is None else _str(v["approval_id"], "the approval id")
            headers = tuple(
                _pair(h, "a forward header") for h in _list(v["forward_headers"], "forward headers")
            )
            result: Verdict = Allow(_principal(v["principal"], "the principal"), _action(v["action"]),
                                    approval_id, consume, headers)
        elif kind == "deny":
            v = _obj(verdict, "the deny", {"kind", "code", "message"}, frozenset({"issuer"}))
            # As serde reads `Option<String>` with a default: absent or null is none.
            issuer = v.get("issuer")
            result = Deny(_str(v["code"], "the code"), _str(v["message"], "the denial message"),
                          None if issuer is None else _str(issuer, "the denial's issuer"))
        elif kind == "approval-required":
            v = _obj(verdict, "the challenge",
                     {"kind", "requester", "action", "authorization_details", "obligation"})
            o = _obj(
                v["obligation"],
                "the obligation",
                {"approvers", "quorum", "ttl_seconds", "grant", "window_seconds", "reason_required", "message"},
            )
            if not isinstance(o["reason_required"], bool):
                raise InvalidOutput("`reason_required` is not a boolean")
            obligation = Obligation(
                tuple(_approver_text(_str(a, "an approver")) for a in _list(o["approvers"], "approvers")),
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
            result = ApprovalRequired(_principal(v["requester"], "the requester"), _action(v["action"]),
                                      details, obligation)
        else:
            raise InvalidOutput(f"unknown verdict kind {kind!r}")
        reasons = tuple(_str(r, "a reason") for r in _list(top["reasons"], "reasons"))
        return validated(Decision(result, reasons, _str(top["policy_hash"], "the policy hash")))


def approver_text(tag: str, name: Optional[str]) -> str:
    """The policy text of a WIT `approver` case: `group:NAME`,
    `group:NAME@tenant`, `user:SUBJECT` or `subject`. Raises
    `InvalidOutput` for an unknown case or a named case without a name."""
    if tag == "subject" and name is None:
        return "subject"
    if tag not in ("group", "tenant-group", "user") or not isinstance(name, str):
        raise InvalidOutput(f"unknown approver {tag!r}")
    if not name:
        raise InvalidOutput("an approver without a name")
    _check_str(name, "an approver")
    if tag == "group":
        return f"group:{name}"
    if tag == "tenant-group":
        return f"group:{name}{_TENANT_SUFFIX}"
    return f"user:{name}"


def approver_case(text: str) -> tuple[str, Optional[str]]:
    """The WIT `approver` case of its policy text, as `(tag, name)` (name
    `None` for `subject`); the grammar of the Rust `Approver`. Raises
    `InvalidOutput` when `text` is not one of the four forms."""
    if text == "subject":
        return "subject", None
    if text.startswith("group:"):
        group = text[len("group:"):]
        if group.endswith(_TENANT_SUFFIX):
            if len(group) > len(_TENANT_SUFFIX):
                return "tenant-group", group[: -len(_TENANT_SUFFIX)]
        elif group:
            return "group", group
    elif text.startswith("user:") and len(text) > len("user:"):
        return "user", text[len("user:"):]
    raise InvalidOutput(
        f"approver `{text}` should be `group:NAME`, `group:NAME@tenant`, `user:SUBJECT` or `subject`")


def _approver_text(text: str) -> str:
    approver_case(text)
    return text


def validated(d: Decision) -> Decision:
    """Checks what the Rust host checks on a module's decision
    (`host/src/convert.rs`: sizes, list lengths, header syntax, a non-empty
    subject and token id, approvers and quorum, a JSON array of
    `authorization_details`, params that are a JSON object) plus known
    codes and grant modes, and returns `d`, or raises `InvalidOutput`. The
    action's digest is not recomputed here: that check lives once, in the
    Rust host."""
    _check_list(d.reasons, "reasons")
    for r in d.reasons:
        _check_str(r, "a reason")
    _check_str(d.policy_hash, "the policy hash")
    v = d.verdict
    if isinstance(v, Allow):
        _check_principal(v.principal)
        if not v.principal.subject:
            raise InvalidOutput("an allow without a subject")
        if v.consume is not None:
            _check_str(v.consume.token_id, "the token id")
            if not v.consume.token_id:
                raise InvalidOutput("a single-use token without an id")
        if v.approval_id is not None:
            _check_str(v.approval_id, "the approval id")
        _check_action(v.action)
        _check_list(v.forward_headers, "forward headers")
        for name, value in v.forward_headers:
            check_header(name, value)
    elif isinstance(v, Deny):
        if v.code not in DENIAL_CODES:
            raise InvalidOutput(f"unknown denial code {v.code!r}")
        _check_str(v.message, "the denial message")
        if v.issuer is not None:
            _check_str(v.issuer, "the denial's issuer")
    else:
        if not isinstance(v.authorization_details, list):
            raise InvalidOutput("authorization_details is not an array")
        _check_principal(v.requester)
        _check_action(v.action)
        o = v.obligation
        _check_list(o.approvers, "approvers")
        for a in o.approvers:
            _check_str(a, "an approver")
            approver_case(a)
        if not o.approvers or o.quorum == 0:
            raise InvalidOutput("an obligation without approvers or quorum")
        if o.grant not in GRANT_MODES:
            raise InvalidOutput(f"unknown grant mode {o.grant!r}")
        _check_str(o.message, "the obligation message")
    return d


def _check_principal(p: Principal) -> None:
    for value, what in ((p.entity_type, "the entity type"), (p.subject, "the subject"),
                        (p.client_id, "the client id"), (p.tenant, "the tenant"), (p.issuer, "the issuer")):
        _check_str(value, what)
    for values, what in ((p.scopes, "scopes"), (p.groups, "groups"), (p.roles, "roles")):
        _check_list(values, what)
        for value in values:
            _check_str(value, what)


def _check_action(a: Action) -> None:
    _check_str(a.name, "the action")
    _check_str(a.resource_type, "the resource type")
    _check_str(a.resource_id, "the resource id")
    _check_str(a.digest, "the action digest")
    if not isinstance(a.params, dict):
        raise InvalidOutput("the action's params are not a JSON object")


def _principal(v: Any, what: str) -> Principal:
    """A principal's JSON, read as serde reads the Rust `Principal`."""
    p = _obj(v, what, {"entity_type", "subject", "issuer"}, frozenset(
        {"client_id", "scopes", "groups", "roles", "tenant"}))
    lists = {k: tuple(_str(s, k) for s in _list(p.get(k, []), k)) for k in ("scopes", "groups", "roles")}
    return Principal(_str(p["entity_type"], "the entity type"), _str(p["subject"], "the subject"),
                     _str(p.get("client_id", ""), "the client id"), lists["scopes"], lists["groups"],
                     lists["roles"], _str(p.get("tenant", ""), "the tenant"), _str(p["issuer"], "the issuer"))


def _action(v: Any) -> Action:
    a = _obj(v, "the action", {"name", "resource_type", "resource_id", "params", "digest"})
    if not isinstance(a["params"], dict):
        raise InvalidOutput("the action's params are not a JSON object")
    return Action(_str(a["name"], "the action"), _str(a["resource_type"], "the resource type"),
                  _str(a["resource_id"], "the resource id"), a["params"], _str(a["digest"], "the action digest"))


def check_header(name: str, value: str) -> None:
    """Raises `InvalidOutput` unless `name` is an HTTP token (RFC 9110
    §5.6.2) and `value` has no CR, LF or NUL and at most 8 KiB; the message
    is the Rust host's."""
    if (not name or any(c not in _TOKEN_CHARS for c in name)
            or any(c in value for c in "\r\n\0") or len(value.encode()) > MAX_HEADER_VALUE):
        raise InvalidOutput(f"header `{_escape_debug(name)}` is not a valid HTTP header")


def _escape_debug(s: str) -> str:
    """`s` as Rust's `str::escape_debug` writes it, for the common cases:
    backslash, quotes, tab, CR and LF escaped, other controls as `\\u{..}`."""
    short = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\t": "\\t", "\r": "\\r", "\n": "\\n", "\0": "\\0"}
    return "".join(short.get(c) or (f"\\u{{{ord(c):x}}}" if unicodedata.category(c) == "Cc" else c) for c in s)


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


def _text_tuple(v: Any, what: str) -> tuple[str, ...]:
    """A list or tuple of str (a lone str is refused, not split into characters)."""
    if not isinstance(v, (list, tuple)):
        raise TypeError(f"{what} must be a list of str")
    for s in v:
        if not isinstance(s, str):
            raise TypeError(f"an entry of {what} must be a str")
    return tuple(v)
