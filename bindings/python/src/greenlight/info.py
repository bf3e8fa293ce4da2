"""What the policy module tells a host outside a decision: the loaded
bundle's settings (`describe`), a verified access token (`authenticate`) or
ID token (`authenticate_id_token`), a verified action token's claims
(`inspect`) and its counters (`stats`), as
the WIT `bundle-info` (with its `key-source` and `key-fetch-settings`),
`credential`, `action-token` and `engine-stats` (`wit/types.wit`).

A host reads these instead of parsing `greenlight.toml` or a token itself,
so it uses exactly what the module enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from .decision import Principal


@dataclass(frozen=True)
class ClaimNames:
    """The claims that build a principal (`[principal]`)."""

    #: The principal's Cedar entity type, e.g. `User`.
    entity_type: str
    #: The scopes claim, e.g. `scope`.
    scope: str
    #: The groups claim.
    groups: str
    #: The roles claim.
    roles: str
    #: The tenant claim.
    tenant: str


#: The kinds of `KeySource`, as the Rust `KeySource` serialises them.
KEY_SOURCE_KINDS: tuple[str, ...] = ("bundle", "jwks_uri", "discovery")


@dataclass(frozen=True)
class KeySource:
    """Where a host gets an issuer's keys (the WIT `key-source`), to hand
    them to `Policy.set_keys`. `kind` is one of:

    - `"bundle"`: the bundle carries them (`jwks = "file"`); nothing to fetch;
    - `"jwks_uri"`: the JWKS at `url` (the issuer's `jwks_uri`);
    - `"discovery"`: the provider's metadata documents at `urls`, to try in
      order (OpenID Connect discovery, then RFC 8414): the first that
      answers with an `issuer` exactly the issuer's names the `jwks_uri` to
      fetch.

    Build one with `KeySource.bundle()`, `KeySource.jwks_uri(url)` or
    `KeySource.discovery(urls)`."""

    #: `"bundle"`, `"jwks_uri"` or `"discovery"`.
    kind: str
    #: The JWKS URL, for `"jwks_uri"`; `None` otherwise.
    url: Optional[str] = None
    #: The metadata URLs, in order, for `"discovery"`; empty otherwise.
    urls: tuple[str, ...] = ()

    @staticmethod
    def bundle() -> "KeySource":
        """The bundle carries the keys."""
        return KeySource("bundle")

    @staticmethod
    def jwks_uri(url: str) -> "KeySource":
        """The JWKS at `url`."""
        return KeySource("jwks_uri", url=url)

    @staticmethod
    def discovery(urls: Sequence[str]) -> "KeySource":
        """The metadata documents at `urls`, tried in order."""
        return KeySource("discovery", urls=tuple(urls))

    @property
    def fetched(self) -> bool:
        """Whether the host fetches these keys (anything but `"bundle"`)."""
        return self.kind != "bundle"


@dataclass(frozen=True)
class IssuerInfo:
    """One issuer of access tokens (`[[issuers]]`)."""

    #: The exact `iss`.
    issuer: str
    #: The audience its tokens must name.
    audience: str
    #: Where its keys come from: the bundle, or a URL the host fetches them
    #: from (then hands them to `Policy.set_keys`).
    keys: KeySource
    #: The signature algorithms its tokens may use, as JOSE names them.
    algorithms: tuple[str, ...] = ()
    #: The `typ` its tokens must carry, if any.
    required_typ: str | None = None


@dataclass(frozen=True)
class KeyFetchSettings:
    """How every host fetches issuers' keys (`[key_fetch]`; the WIT
    `key-fetch-settings`), so that every host keeps them alike. Fetches are
    HTTPS (plain HTTP to loopback only when `allow_http_loopback`), follow
    no redirect, and a set that is refused (by the host's checks or by
    `Policy.set_keys`) leaves the last good set serving."""

    #: The longest wait for a connection, in milliseconds (default 2000).
    connect_timeout_ms: int
    #: The longest wait for a whole response, in milliseconds (default 5000).
    timeout_ms: int
    #: The largest response body accepted, in bytes (default 524288).
    max_bytes: int
    #: A fetched set is kept at least this long, in seconds, whatever the
    #: provider's `Cache-Control`/`Expires` say; also the freshness of a
    #: response that states none (default 300).
    min_age_seconds: int
    #: A fetched set is fresh at most this long, in seconds; hosts fetch
    #: again before it ends (default 86400).
    max_age_seconds: int
    #: How long past its freshness a set keeps serving while fetches fail,
    #: in seconds; then the host withdraws it (`Policy.withdraw_keys`) and
    #: the issuer's tokens are denied (default 86400).
    max_stale_seconds: int
    #: The shortest time between two fetches caused by an unknown `kid`,
    #: per issuer, in seconds (default 30).
    unknown_kid_interval_seconds: int
    #: Whether plain HTTP may reach a loopback address (default `False`).
    allow_http_loopback: bool


@dataclass(frozen=True)
class ActionTokenSettings:
    """How Greenlight's action tokens are minted and checked (`[action_tokens]`)."""

    #: The `iss` of minted tokens.
    issuer: str
    #: The `aud` of minted tokens.
    audience: str
    #: The longest life of a minted token, in seconds.
    ttl_seconds: int
    #: The clock leeway enforcement allows, in seconds: a consumed token id
    #: must be remembered this long past the token's `exp`.
    leeway_seconds: int


@dataclass(frozen=True)
class ApprovalSettings:
    """The approval workflow's settings (`[approvals]`)."""

    #: How long a pending approval stays open when a policy has no `@ttl`.
    default_ttl_seconds: int
    #: The CIBA polling interval clients are told, in seconds.
    poll_interval_seconds: int
    #: How recent the sign-in (`auth_time`) behind a token must be, in
    #: seconds, for its subject to confirm their own action.
    confirm_max_age_seconds: int


@dataclass(frozen=True)
class BundleInfo:
    """What a host needs to know about a loaded bundle (`Policy.info`)."""

    #: The bundle's hex SHA-256, as reported in every decision.
    policy_hash: str
    #: The claims that build a principal, for hosts that mint tokens.
    claims: ClaimNames
    #: The issuers of access tokens.
    issuers: tuple[IssuerInfo, ...]
    #: Greenlight's action tokens, when the bundle accepts them.
    action_tokens: Optional[ActionTokenSettings]
    #: The approval workflow's settings.
    approvals: ApprovalSettings
    #: Whether the bundle has a `[dev]` signing key (never for production).
    development: bool
    #: How hosts fetch the keys of issuers the bundle does not carry.
    key_fetch: KeyFetchSettings


@dataclass(frozen=True)
class Credential:
    """A verified access token (`Policy.authenticate`) or ID token
    (`Policy.authenticate_id_token`): who it names, and what a host needs
    to know of the token itself to let its bearer act as a person."""

    #: Who the token names; their identity is (`issuer`, `subject`), both
    #: non-empty. `groups` holds only those the token's issuer is
    #: authoritative for.
    principal: Principal
    #: `exp`, in Unix seconds.
    expires_at: int
    #: `auth_time`, in Unix seconds: when the person last signed in, if the
    #: token says; `None` when it does not.
    auth_time: Optional[int]
    #: Whether the token is meant for approving: issued to a client its
    #: issuer lists in `approver_clients`, or carrying its `approval_scope`;
    #: always for an ID token (a sign-in is the person's own act). Only such
    #: a token may vote; a host refuses a vote from any other.
    approver: bool


@dataclass(frozen=True)
class ActionToken:
    """The claims of a Greenlight action token, verified with exactly the
    rules a decision applies to it (`Policy.inspect`)."""

    #: Who it was minted for, as a decision sees them; `issuer` is Greenlight's.
    principal: Principal
    #: The audience it was checked against.
    audience: str
    #: `jti`.
    token_id: str
    #: `iat`, in Unix seconds, when present.
    issued_at: Optional[int]
    #: `exp`, in Unix seconds.
    expires_at: int
    #: `act_digest`: the digest of the one action it allows.
    digest: str
    #: `grant`: `once` or `window`.
    grant: str
    #: `approval_id`: the approval that produced it, when present.
    approval_id: Optional[str]
    #: `approvers`: who approved; empty when absent.
    approvers: tuple[str, ...]
    #: `authorization_details` (RFC 9396), parsed; `None` when absent.
    authorization_details: Any


@dataclass(frozen=True)
class EngineStats:
    """How many tokens a policy's instances checked, and how many of those
    took a signature verification (the rest came from the cache of verified
    tokens). Counts only grow."""

    #: Tokens checked: each decision, authentication or inspection checks one.
    token_checks: int
    #: Signature verifications: token checks the cache could not answer.
    signature_checks: int

    def __add__(self, other: "EngineStats") -> "EngineStats":
        return EngineStats(self.token_checks + other.token_checks,
                           self.signature_checks + other.signature_checks)


@dataclass(frozen=True)
class TestOutcome:
    """How one policy test went (the WIT `test-outcome`, from
    `Policy.run_tests`)."""

    __test__ = False  # not a pytest test class, for all its name

    #: `FILE: NAME`.
    name: str
    #: `None` when it passed; otherwise what differed, with the decision and
    #: the policies that determined it.
    failure: Optional[str]
