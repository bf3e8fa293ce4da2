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
from typing import Any, Iterable, Mapping, Optional, Union

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
#: The largest quorum a module may ask for (as the Rust host; a bundle
#: cannot ask for more).
MAX_QUORUM = 32
#: The longest header value accepted for forwarding.
MAX_HEADER_VALUE = 8192
_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
_S64_MIN, _S64_MAX = -(2**63), 2**63 - 1
_TOKEN_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+-.^_`|~"
)


class InvalidOutput(ValueError):
    """When a policy module or the approval service returned a value that is
    not a well-formed decision. The message says what is wrong."""


#: The kinds of `AttributeValue`, in WIT order (`wit/types.wit`,
#: `attribute-value`), as the Rust `AttributeValue` serialises them.
ATTRIBUTE_KINDS: tuple[str, ...] = ("string", "long", "bool", "set", "datetime")

#: What each kind of `AttributeValue` holds, for messages.
_HOLDS = {
    "string": "a string",
    "long": f"an integer from {_S64_MIN} to {_S64_MAX}",
    "bool": "true or false",
    "set": "a list of strings",
    "datetime": f"whole Unix seconds from 0 to {_U64_MAX}",
}


def _shown(v: Any) -> str:
    """`v` for a message: its JSON when it has one, cut to 100 characters."""
    try:
        text = json.dumps(v, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(v)
    return text if len(text) <= 100 else text[:100] + "..."


@dataclass(frozen=True)
class AttributeValue:
    """The value of a mapped principal attribute, typed as Cedar sees it
    (the WIT `attribute-value`): a tagged value, `kind` one of
    `ATTRIBUTE_KINDS`:

    - `"string"`: a Cedar `String`, `value` a str;
    - `"long"`: a Cedar `Long`, `value` an int from -2**63 to 2**63-1 (never
      a bool, although Python's bool is an int);
    - `"bool"`: a Cedar `Bool`, `value` a bool;
    - `"set"`: a Cedar `Set<String>`, `value` a tuple of str (the engine
      gives them sorted, without repeats; a list is taken as a tuple);
    - `"datetime"`: a Cedar `datetime`, `value` Unix seconds (an int from 0
      to 2**64-1, such as `auth_time`).

    Build one with `AttributeValue.string("finance")`,
    `AttributeValue.long(3)`, `AttributeValue.bool(True)`,
    `AttributeValue.set(["auditor", "reader"])` or
    `AttributeValue.datetime(1767225000)`; a value that does not fit its
    kind raises `ValueError`. Its JSON (`to_dict`) is one member naming the
    kind: `{"string": "finance"}`, `{"set": ["auditor", "reader"]}`."""

    #: One of `ATTRIBUTE_KINDS`.
    kind: str
    #: The value, of the Python type its kind says.
    value: Union[str, int, bool, tuple[str, ...]]

    def __post_init__(self) -> None:
        kind, v = self.kind, self.value
        if kind not in ATTRIBUTE_KINDS:
            raise ValueError(f"the unknown attribute kind {_shown(kind)}; the kinds are "
                             + ", ".join(f"`{k}`" for k in ATTRIBUTE_KINDS))
        if kind == "set" and isinstance(v, (list, tuple)) and all(isinstance(s, str) for s in v):
            object.__setattr__(self, "value", tuple(v))
            return
        fits = {
            "string": lambda: isinstance(v, str),
            "long": lambda: isinstance(v, int) and not isinstance(v, bool) and _S64_MIN <= v <= _S64_MAX,
            "bool": lambda: isinstance(v, bool),
            "set": lambda: False,
            "datetime": lambda: isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= _U64_MAX,
        }[kind]()
        if not fits:
            raise ValueError(f"a `{kind}` holds {_HOLDS[kind]}, not {_shown(v)}")

    @staticmethod
    def string(value: str) -> "AttributeValue":
        """A Cedar `String`."""
        return AttributeValue("string", value)

    @staticmethod
    def long(value: int) -> "AttributeValue":
        """A Cedar `Long` (a signed 64-bit integer; a bool is refused)."""
        return AttributeValue("long", value)

    @staticmethod
    def bool(value: bool) -> "AttributeValue":
        """A Cedar `Bool`."""
        return AttributeValue("bool", value)

    @staticmethod
    def set(values: Iterable[str]) -> "AttributeValue":
        """A Cedar `Set<String>`, in the order given (a lone str is refused)."""
        return AttributeValue("set", values if isinstance(values, str) else tuple(values))

    @staticmethod
    def datetime(seconds: int) -> "AttributeValue":
        """A Cedar `datetime`, in Unix seconds."""
        return AttributeValue("datetime", seconds)

    def to_dict(self) -> dict[str, Any]:
        """The value's JSON: `{kind: value}`, as serde writes the Rust enum."""
        return {self.kind: list(self.value) if self.kind == "set" else self.value}  # type: ignore[arg-type]

    @staticmethod
    def from_dict(data: Any) -> "AttributeValue":
        """Reads the JSON of one value (`{"long": 3}`), strictly: one
        member, a known kind, a value of its type (`{"long": true}` is
        refused, as serde refuses it). Raises `ValueError`."""
        if not isinstance(data, dict) or len(data) != 1:
            raise ValueError(f"is not an object of one member naming its kind, but {_shown(data)}")
        (kind, value), = data.items()
        if kind not in ATTRIBUTE_KINDS:
            raise ValueError(f"has the unknown kind `{kind}`; the kinds are "
                             + ", ".join(f"`{k}`" for k in ATTRIBUTE_KINDS))
        if kind == "set" and not isinstance(value, list):
            # A JSON array only: a string is not a set of its characters.
            raise ValueError(f"a `set` holds {_HOLDS['set']}, not {_shown(value)}")
        return AttributeValue(kind, value)


@dataclass(frozen=True)
class Attribute:
    """One mapped principal attribute (the WIT `attribute`), as policies
    see it: `principal.NAME` in Cedar."""

    #: Its name, as policies write it (`principal.department`).
    name: str
    #: Its typed value.
    value: AttributeValue


def attributes_of(data: Union[Mapping[str, AttributeValue], Iterable[Any]]) -> tuple[Attribute, ...]:
    """`data` as a principal's attributes: a tuple of `Attribute`, sorted by
    name (as the Rust `BTreeMap`, which JSON and the WIT list follow).
    `data` is a mapping of name to `AttributeValue`, or an iterable of
    `Attribute` or `(name, AttributeValue)` pairs. Raises `TypeError` for
    anything else and `ValueError` for a name given twice."""
    items = data.items() if isinstance(data, Mapping) else data
    if isinstance(items, (str, bytes)):
        raise TypeError("attributes must be a mapping or a list of (name, AttributeValue) pairs")
    out: dict[str, Attribute] = {}
    for item in items:
        a = item if isinstance(item, Attribute) else Attribute(*item)
        if not isinstance(a.name, str):
            raise TypeError("an attribute's name must be a str")
        if not isinstance(a.value, AttributeValue):
            raise TypeError(f"attribute `{a.name}` must have an AttributeValue")
        if a.name in out:
            raise ValueError(f"attribute `{a.name}` is given twice")
        out[a.name] = a
    return tuple(out[name] for name in sorted(out))


def attributes_from_dict(data: Any) -> tuple[Attribute, ...]:
    """Reads the JSON `attributes` of a principal (`{"level": {"long": 3}}`),
    strictly: an object, at most `MAX_LIST` members, each value one known
    kind with a value of its type. Raises `ValueError` naming the attribute:
    "attribute `level` has the unknown kind `integer`; ...",
    "attribute `level`: a `long` holds an integer from ..., not true"."""
    if not isinstance(data, dict):
        raise ValueError(f"the attributes are not an object, but {_shown(data)}")
    if len(data) > MAX_LIST:
        raise ValueError(f"attributes has {len(data)} entries")
    out = []
    for name, value in data.items():
        try:
            out.append(Attribute(name, AttributeValue.from_dict(value)))
        except ValueError as e:
            sep = ":" if str(e).startswith("a `") else ""
            raise ValueError(f"attribute `{name}`{sep} {e}") from None
    return attributes_of(out)


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
    #: The attributes the bundle maps from claims (`[principal.attributes]`;
    #: in Cedar `principal.NAME`), a tuple of `Attribute` sorted by name;
    #: empty when there are none. Given as a mapping of name to
    #: `AttributeValue` or as pairs, they are sorted here; a name given
    #: twice raises `ValueError`. A vouched subject (`evaluate_as`) may
    #: carry only names the bundle maps, with their mapped kinds.
    attributes: tuple[Attribute, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", attributes_of(self.attributes))

    def attribute(self, name: str) -> Optional[AttributeValue]:
        """The value of attribute `name`, or `None` when it has none."""
        return next((a.value for a in self.attributes if a.name == name), None)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "Principal":
        """From the JSON shape of the vectors (snake_case keys); the lists
        default to empty, `client_id` and `tenant` to the empty string,
        `attributes` to none (read strictly: see `attributes_from_dict`;
        `ValueError` for a malformed one). For building a subject to vouch
        for; `Decision.from_dict` reads principals strictly."""
        return Principal(d["entity_type"], d["subject"], d.get("client_id", ""),
                         _text_tuple(d.get("scopes", ()), "scopes"), _text_tuple(d.get("groups", ()), "groups"),
                         _text_tuple(d.get("roles", ()), "roles"), d.get("tenant", ""), d["issuer"],
                         attributes_from_dict(d.get("attributes", {})))

    def to_dict(self) -> dict[str, Any]:
        """The principal's JSON, keys in serde's order; `attributes` (an
        object by name, each value `{kind: value}`) only when there are
        some, as serde skips an empty map."""
        d = {"entity_type": self.entity_type, "subject": self.subject, "client_id": self.client_id,
             "scopes": list(self.scopes), "groups": list(self.groups), "roles": list(self.roles),
             "tenant": self.tenant, "issuer": self.issuer}
        if self.attributes:
            d["attributes"] = {a.name: a.value.to_dict() for a in self.attributes}
        return d


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


@dataclass(frozen=True)
class StepUpRequired:
    """The request is refused for now: the person must sign in again, more
    strongly or more recently (RFC 9470; a policy's `@acr`/`@max_age`),
    and the client retry with the new token. No approver is asked and the
    approval service is never involved: `Policy.respond` answers it with
    `401` and `WWW-Authenticate: Bearer
    error="insufficient_user_authentication"` with `acr_values` and
    `max_age`."""

    #: Acceptable authentication context classes (`acr`), in the policy's
    #: order; empty when any will do.
    acr_values: tuple[str, ...]
    #: The oldest acceptable sign-in (`auth_time`), in seconds before the
    #: request; `None` when any age will do.
    max_age: Optional[int]
    #: What is short, for a person.
    message: str
    kind = "step-up-required"


Verdict = Union[Allow, Deny, ApprovalRequired, StepUpRequired]


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
        elif isinstance(v, StepUpRequired):
            verdict = {"kind": "step-up-required", "acr_values": list(v.acr_values), "max_age": v.max_age,
                       "message": v.message}
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
        elif kind == "step-up-required":
            # As serde reads `Option<u64>`: absent or null is none.
            v = _obj(verdict, "the step-up", {"kind", "acr_values", "message"}, frozenset({"max_age"}))
            max_age = v.get("max_age")
            result = StepUpRequired(
                tuple(_str(a, "an acr value") for a in _list(v["acr_values"], "acr values")),
                None if max_age is None else _uint(max_age, "`max_age`", _U64_MAX),
                _str(v["message"], "the step-up message"))
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
    elif isinstance(v, StepUpRequired):
        _check_list(v.acr_values, "acr values")
        for a in v.acr_values:
            _check_str(a, "an acr value")
        if v.max_age is not None:
            _uint(v.max_age, "`max_age`", _U64_MAX)
        _check_str(v.message, "the step-up message")
    elif isinstance(v, ApprovalRequired):
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
        if o.quorum > MAX_QUORUM:
            raise InvalidOutput(f"an obligation with a quorum of {o.quorum}")
        if o.ttl_seconds == 0:
            raise InvalidOutput("an obligation that expires at once")
        if o.grant not in GRANT_MODES:
            raise InvalidOutput(f"unknown grant mode {o.grant!r}")
        if (o.grant == "window") == (o.window_seconds == 0):
            raise InvalidOutput(f"a {o.grant} grant with a window of {o.window_seconds} seconds")
        _check_str(o.message, "the obligation message")
    else:
        raise InvalidOutput(f"unknown verdict {type(v).__name__}")
    return d


def _check_principal(p: Principal) -> None:
    for value, what in ((p.entity_type, "the entity type"), (p.subject, "the subject"),
                        (p.client_id, "the client id"), (p.tenant, "the tenant"), (p.issuer, "the issuer")):
        _check_str(value, what)
    for values, what in ((p.scopes, "scopes"), (p.groups, "groups"), (p.roles, "roles")):
        _check_list(values, what)
        for value in values:
            _check_str(value, what)
    _check_list(p.attributes, "attributes")
    for a in p.attributes:
        _check_str(a.name, "an attribute name")
        if a.value.kind == "string":
            _check_str(a.value.value, "an attribute")  # type: ignore[arg-type]
        elif a.value.kind == "set":
            _check_list(a.value.value, "an attribute")
            for s in a.value.value:  # type: ignore[union-attr]
                _check_str(s, "an attribute")


def _check_action(a: Action) -> None:
    _check_str(a.name, "the action")
    _check_str(a.resource_type, "the resource type")
    _check_str(a.resource_id, "the resource id")
    _check_str(a.digest, "the action digest")
    if not a.name:
        raise InvalidOutput("an action without a name")
    if not isinstance(a.params, dict):
        raise InvalidOutput("the action's params are not a JSON object")
    # The Rust host reads params as one text of at most MAX_STRING bytes.
    size = len(json.dumps(a.params, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_STRING:
        raise InvalidOutput(f"the action's params has {size} bytes")


def _principal(v: Any, what: str) -> Principal:
    """A principal's JSON, read as serde reads the Rust `Principal`."""
    p = _obj(v, what, {"entity_type", "subject", "issuer"}, frozenset(
        {"client_id", "scopes", "groups", "roles", "tenant", "attributes"}))
    lists = {k: tuple(_str(s, k) for s in _list(p.get(k, []), k)) for k in ("scopes", "groups", "roles")}
    try:
        attributes = attributes_from_dict(p.get("attributes", {}))
    except ValueError as e:
        raise InvalidOutput(str(e)) from None
    return Principal(_str(p["entity_type"], "the entity type"), _str(p["subject"], "the subject"),
                     _str(p.get("client_id", ""), "the client id"), lists["scopes"], lists["groups"],
                     lists["roles"], _str(p.get("tenant", ""), "the tenant"), _str(p["issuer"], "the issuer"),
                     attributes)


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
    # `issuperset` and `in` scan in C: a decision checks several headers.
    if (not name or not _TOKEN_CHARS.issuperset(name)
            or "\r" in value or "\n" in value or "\0" in value
            or _utf8_len(value) > MAX_HEADER_VALUE):
        raise InvalidOutput(f"header `{_escape_debug(name)}` is not a valid HTTP header")


def _escape_debug(s: str) -> str:
    """`s` as Rust's `str::escape_debug` writes it, for the common cases:
    backslash, quotes, tab, CR and LF escaped, other controls as `\\u{..}`."""
    short = {"\\": "\\\\", "'": "\\'", '"': '\\"', "\t": "\\t", "\r": "\\r", "\n": "\\n", "\0": "\\0"}
    return "".join(short.get(c) or (f"\\u{{{ord(c):x}}}" if unicodedata.category(c) == "Cc" else c) for c in s)


def _utf8_len(s: str) -> int:
    """The UTF-8 length of `s`, without encoding it when every character
    is ASCII (a UTF-8 character is at most 4 bytes, an ASCII one 1)."""
    return len(s) if s.isascii() else len(s.encode())


def _check_str(s: str, what: str) -> None:
    if _utf8_len(s) > MAX_STRING:
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
