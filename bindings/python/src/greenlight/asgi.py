"""An ASGI middleware that puts Greenlight in front of any ASGI app
(Starlette, FastAPI, ...), with the HTTP answers of docs/gateway.md.

For each HTTP request it builds the engine's `http-request` (raw path,
query, lower-case headers, the body text as `params` when the body is JSON
or untyped, as docs/gateway.md says),
decides it with `greenlight.wasm` at the wall clock's time, and then:

- when the decision needs the approval service's state
  (`Decision.needs_service`, read from typed fields only: an allow with
  `consume`, i.e. a `once` action token; an allow with an `approval_id`,
  i.e. an action token whose approval may have been revoked; approval-required
  with a `window` grant, which the service may already hold): sends the
  request to the service's `POST /v1/check`, headers as the `[name, value]`
  pairs received, and acts on that decision instead; when the service
  cannot be reached or does not answer with a decision, denies with
  `engine-unavailable`;
- allow: removes the client's `x-greenlight-*` headers, adds the decision's
  `forward_headers`, and calls the app (the body is replayed to it);
- deny, approval-required or step-up-required: answers with what the
  component's `gateway.respond` says (`Policy.respond`), checked; this
  module has no mapping of its own. A step-up-required (RFC 9470: a `401`
  whose `WWW-Authenticate` names the `acr_values` and `max_age` the policy
  requires) never involves the approval service.

The approval service's public keys (`/.well-known/jwks.json`) are fetched at
startup and again, at most every `key_refresh_seconds`, when a token names
an unknown key (a `token-unknown-key` denial that names no issuer: one that
does is about an access-token issuer's fetched keys), so action tokens
verify locally.

When the bundle has issuers whose keys the host fetches (`jwks_uri`, or
discovery from the issuer's URL alone), the middleware owns a
`greenlight.keys.KeySources` (`GreenlightMiddleware.keys`): it fetches them
at lifespan startup (or, without lifespan, on the first request), refreshes
them in the background with the bundle's `[key_fetch]` settings, and on a
`token-unknown-key` denial that names an issuer fetches that issuer's keys
again (at most once per `unknown_kid_interval_seconds`) and decides once
more when they changed, as `greenlight serve` does (docs/gateway.md).
`GreenlightMiddleware.keys.health()` reports them as its `/healthz` does.

WebSocket connections are refused: the engine decides HTTP requests only.

Both calls to the service carry what an attacker on the path must not see
or swap (the client's bearer tokens; the keys that verify action tokens),
so the service URL must be `https://`, or `http://` on loopback only
(`localhost`, `127.x.y.z`, `[::1]`), and no redirect is followed: a `30x`
is a failure like any other status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
import urllib.parse
from typing import Any, Awaitable, Callable, MutableMapping, NamedTuple, Optional, Union

import httpx

from . import _json
from .decision import Allow, Decision, Deny, InvalidOutput
from .engine import (
    ACTION_ISSUER,
    BundleError,
    EngineError,
    Engine,
    HttpRequest,
    Limits,
    Policy,
    read_tests_dir,
)
from .keys import KeySources, is_loopback

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("greenlight")

#: The largest request body read for a decision; a bigger one is refused
#: (`request-invalid`). Parameters are small JSON objects. Defaults to 1 MiB.
MAX_BODY = 1 << 20
_FORWARD_PREFIX = b"x-greenlight-"
#: Media types whose bodies are the engine's `params` (as in bindings/js).
_JSON_TYPE = re.compile(rb"^application/(?:[\w.+-]*\+)?json\s*(?:;|$)", re.IGNORECASE)


#: The loopback addresses where the service may be reached over plain HTTP.
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _service_base_url(url: str) -> str:
    """The approval service's base URL from `url`, or `ValueError` when the
    gateway must not talk to it: the gateway sends it the client's bearer
    tokens and takes from it the keys that verify action tokens, so only
    `https://` is accepted, or `http://` whose host is loopback
    (`localhost`, `127.x.y.z`, `[::1]`). A URL with a user name or password,
    a query or a fragment is refused too, and so is anything that is not an
    absolute URL. The answer is rebuilt from the parsed parts (scheme, host,
    port, path; the default port and trailing slashes dropped), so the URL
    requested is the one checked. The messages are those of bindings/js."""
    if not isinstance(url, str):
        raise TypeError(f"greenlight: the approval service URL must be a str, not {type(url).__name__}")
    not_absolute = (f"greenlight: the approval service URL {json.dumps(url, ensure_ascii=False)} "
                    "is not an absolute URL; give its base URL, such as https://greenlight.example.com")
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port  # a port that is not a number in 0-65535 raises
    except ValueError:
        raise ValueError(not_absolute) from None
    if not parts.scheme:
        raise ValueError(not_absolute)
    if parts.scheme not in _DEFAULT_PORTS:
        raise ValueError(f"greenlight: the approval service URL has the scheme {parts.scheme}:; "
                         "use https:// (http:// only on loopback)")
    host = parts.hostname
    if not host:
        raise ValueError(not_absolute)
    shown = f"{parts.scheme}://{f'[{host}]' if ':' in host else host}"
    if port is not None and port != _DEFAULT_PORTS[parts.scheme]:
        shown += f":{port}"
    if parts.username or parts.password:
        raise ValueError(f"greenlight: the approval service URL {shown} has a user name or password "
                         "before its host; remove them")
    if parts.scheme == "http" and not is_loopback(host):
        raise ValueError(f"greenlight: the approval service URL {shown} is plain HTTP outside loopback; use https://")
    if parts.query or parts.fragment:
        raise ValueError(f"greenlight: the approval service URL {shown} has a query or fragment; "
                         "give its base URL only")
    return (shown + parts.path).rstrip("/")


def _is_ours(name: bytes) -> bool:
    """Whether a client header could pass for one of ours: `x-greenlight-*`,
    with `_` read as `-` (Django and other CGI-style stacks map `-` to `_`,
    so `x-greenlight_subject` would reach the app as `X_GREENLIGHT_SUBJECT`)."""
    return name.lower().replace(b"_", b"-").startswith(_FORWARD_PREFIX)


def _is_json(scope: Scope) -> bool:
    """Whether the body is JSON (or untyped): only then is it `params`."""
    types = [v for k, v in scope["headers"] if k.lower() == b"content-type"]
    return not types or bool(_JSON_TYPE.match(types[0].strip()))


class GreenlightMiddleware:
    """Decides every HTTP request with `greenlight.wasm` before `app` sees it."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        bundle_dir: Union[str, os.PathLike],
        service_url: str,
        wasm_path: Union[str, os.PathLike, None] = None,
        engine: Optional[Engine] = None,
        limits: Limits = Limits(),
        service_timeout: float = 5.0,
        key_refresh_seconds: float = 5.0,
        max_body: int = MAX_BODY,
        clock: Callable[[], float] = time.time,
        transport: Optional[httpx.AsyncBaseTransport] = None,
        key_transport: Optional[httpx.AsyncBaseTransport] = None,
    ):
        """Loads the bundle in `bundle_dir` into `engine`, or into the
        component at `wasm_path` (default: the `GREENLIGHT_WASM` environment
        variable) compiled with `limits`; raises `BundleError` for a bad
        bundle, so a gateway never starts with one. `service_url` is the
        approval service's base URL: `https://`, or `http://` on loopback
        only, else `ValueError` (`_service_base_url`). `clock` gives `now`
        (Unix seconds), also to the issuers' key fetching (`KeySources`, in
        whole seconds); `transport` replaces httpx's network transport for
        the approval service, `key_transport` for the issuers' providers
        (for tests). A bundle whose fetched issuers have URLs the
        `[key_fetch]` settings forbid raises `ValueError`."""
        service_url = _service_base_url(service_url)
        if engine is None:
            wasm = wasm_path if wasm_path is not None else os.environ.get("GREENLIGHT_WASM")
            if not wasm:
                raise ValueError("no component: pass wasm_path or engine, or set GREENLIGHT_WASM")
            engine = Engine(wasm, limits)
        self.app = app
        self._engine = engine
        self._bundle_dir = bundle_dir
        self._key_transport = key_transport
        policy = engine.load_bundle_dir(bundle_dir)
        _run_bundle_tests(policy, bundle_dir, int(clock()))
        self.service_url = service_url
        self._timeout = service_timeout
        self._refresh_every = key_refresh_seconds
        self._max_body = max_body
        self._clock = clock
        self._transport = transport
        self._client: Optional[httpx.AsyncClient] = None
        self._keys_tried_at: Optional[float] = None
        self._keys_lock: Optional[asyncio.Lock] = None
        #: The action-token keys last fetched from the service (a JWKS), for
        #: a reloaded bundle to start with.
        self._action_jwks: Optional[str] = None
        self._reload_lock: Optional[asyncio.Lock] = None
        self._live = _Live(policy, self._key_sources(policy))

    def _key_sources(self, policy: Policy) -> Optional[KeySources]:
        if any(i.keys.fetched for i in policy.info.issuers):
            return KeySources(policy, now=lambda: int(self._clock()), transport=self._key_transport)
        return None

    @property
    def policy(self) -> Policy:
        """The bundle deciding now (swapped whole by `reload`)."""
        return self._live.policy

    @property
    def keys(self) -> Optional[KeySources]:
        """The issuers' keys the middleware fetches for the bundle deciding
        now; `None` when it carries every issuer's keys."""
        return self._live.keys

    async def reload(self, engine: Optional[Engine] = None) -> "Reload":
        """Loads what `bundle_dir` holds now (in `engine` when given: a new
        component) and swaps it in whole, as `greenlight serve` does: the
        bundle must load and pass its own tests (`tests/*.toml`), then it
        gets the action-token keys and, for issuers whose keys come from
        the same place, the keys the old one holds (others are fetched).
        Requests in flight finish on the version they started with. A
        refused version leaves the old one deciding; the answer says why.
        Never raises for a bad bundle or component."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            old = self._live
            eng = engine if engine is not None else self._engine
            try:
                policy = await asyncio.to_thread(eng.load_bundle_dir, self._bundle_dir)
                if (policy.policy_hash, policy.component_hash) == (old.policy.policy_hash,
                                                                   old.policy.component_hash):
                    return Reload("unchanged", policy.policy_hash, policy.component_hash, "")
                detail = await asyncio.to_thread(_run_bundle_tests, policy, self._bundle_dir, int(self._clock()))
                action_jwks = self._action_jwks
                if action_jwks is not None:
                    await asyncio.to_thread(policy.set_keys, ACTION_ISSUER, action_jwks)
                keys = self._key_sources(policy)
                if keys is not None:
                    await keys.adopt(old.keys)
                    keys.start()
            except (OSError, ValueError, BundleError, EngineError) as e:
                log.warning("a new policy version was refused; the current one keeps deciding: %s", e)
                return Reload("refused", old.policy.policy_hash, old.policy.component_hash, str(e))
            self._live = _Live(policy, keys)
            if engine is not None:
                self._engine = engine
            if self._action_jwks is not None and self._action_jwks != action_jwks:
                # The service's keys changed while the new version was built.
                try:
                    await asyncio.to_thread(policy.set_keys, ACTION_ISSUER, self._action_jwks)
                except (BundleError, EngineError) as e:
                    log.warning("cannot hand the approval service's new keys to the new version: %s", e)
            if old.keys is not None:
                await old.keys.aclose()
            log.info("policy swapped: %s (component %s); %s", policy.policy_hash, policy.component_hash, detail)
            return Reload("swapped", policy.policy_hash, policy.component_hash, detail)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point: decides HTTP requests, fetches keys at
        lifespan startup, refuses WebSocket connections."""
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self.app(scope, self._lifespan_receive(receive), send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "not decided by greenlight"})
        else:
            raise RuntimeError(f"unsupported ASGI scope type {scope['type']!r}")

    def _lifespan_receive(self, receive: Receive) -> Receive:
        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.refresh_keys(force=True)
                if self.keys is not None:
                    await self.keys.ensure_started()
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
            return message

        return wrapped

    async def aclose(self) -> None:
        """Stops the issuers' key refresh and closes the HTTP clients."""
        if self.keys is not None:
            await self.keys.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _http_client(self) -> httpx.AsyncClient:
        """The client for the approval service. It follows no redirect (so
        a `30x` cannot send the client's tokens, or the key fetch, to
        another host or to plain HTTP): httpx's default, kept explicit."""
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, transport=self._transport,
                                             follow_redirects=False)
        return self._client

    async def refresh_keys(self, force: bool = False) -> bool:
        """Fetches the approval service's JWKS and hands it to the engine as
        the `greenlight` issuer's keys. Unless `force`, does nothing when the
        last attempt is under `key_refresh_seconds` old. Returns whether new
        keys were set; a failure (a status other than 200, a redirect
        included: none is followed) is logged and leaves the old keys
        serving."""
        if self._keys_lock is None:
            self._keys_lock = asyncio.Lock()
        async with self._keys_lock:
            now = time.monotonic()
            if not force and self._keys_tried_at is not None and now - self._keys_tried_at < self._refresh_every:
                return False
            self._keys_tried_at = now
            url = f"{self.service_url}/.well-known/jwks.json"
            try:
                r = await self._http_client().get(url)
                if r.status_code != 200:
                    raise ValueError(f"it answered {r.status_code}")
                await asyncio.to_thread(self.policy.set_keys, ACTION_ISSUER, r.text)
                self._action_jwks = r.text
            except (httpx.HTTPError, ValueError, BundleError, EngineError) as e:
                log.warning("cannot load the approval service's keys from %s: %s", url, e)
                return False
            return True

    async def decide(self, request: HttpRequest, live: Optional["_Live"] = None) -> Decision:
        """The decision for `request` at the wall clock's time, replaced by
        the approval service's when it `needs_service` (typed fields only:
        never a forward header). `live` is the version the request started
        on (default: the one deciding now)."""
        if self._keys_tried_at is None:
            await self.refresh_keys()
        live = live if live is not None else self._live
        policy, keys = live.policy, live.keys
        if keys is not None:
            await keys.ensure_started()
        seen = keys.changes if keys is not None else 0
        decision = await asyncio.to_thread(policy.evaluate_http, request, int(self._clock()))
        v = decision.verdict
        if isinstance(v, Deny) and v.code == "token-unknown-key" and v.issuer is not None:
            # An issuer whose keys are fetched, and a `kid` its set lacks (as
            # right after the provider rotated): fetch them again (at most
            # once per `unknown_kid_interval_seconds` for that issuer) and
            # decide once more if they changed.
            if keys is not None and await keys.unknown_kid(v.issuer, seen):
                decision = await asyncio.to_thread(policy.evaluate_http, request, int(self._clock()))
        elif isinstance(v, Deny) and v.code == "token-unknown-key":
            # Refresh (or wait for the refresh another request started, or be
            # rate-limited), then decide again: the keys may be new either way.
            # A denial naming an issuer is about that issuer's fetched keys
            # (`Deny.issuer`), which the service's JWKS cannot bring.
            await self.refresh_keys()
            decision = await asyncio.to_thread(policy.evaluate_http, request, int(self._clock()))
        if decision.needs_service:
            decision = await self._check_with_service(request, decision.policy_hash)
        return decision

    async def _check_with_service(self, request: HttpRequest, policy_hash: str) -> Decision:
        """`POST {service}/v1/check`: the service re-decides with its store
        (consumes a `once` token, refuses a revoked approval's token, applies
        a window grant) and its decision is the answer; any other status
        (a redirect included: none is followed) denies."""
        # The headers as received: in order, a repeated one repeated.
        headers = [[k, v] for k, v in request.headers]
        try:
            params = None if request.params is None else json.loads(request.params)
        except ValueError:
            return Decision.deny("request-invalid", "the request body is not JSON", policy_hash)
        body = {"method": request.method, "path": request.path, "query": request.query,
                "headers": headers, "params": params}
        try:
            r = await self._http_client().post(f"{self.service_url}/v1/check", json=body)
        except httpx.HTTPError as e:
            log.error("the approval service is unreachable: %s", e)
            why = f"the approval service cannot be reached: {type(e).__name__}"
            return Decision.deny("engine-unavailable", why, policy_hash)
        if r.status_code != 200:
            return Decision.deny("engine-unavailable", f"the approval service answered {r.status_code}", policy_hash)
        try:
            # The service adds where to ask and which component decided.
            return Decision.from_dict(r.json(), extra_keys=frozenset({"ask", "component_hash"}))
        except (ValueError, InvalidOutput) as e:
            why = f"the approval service's answer is not a decision: {str(e)[:200]}"
            return Decision.deny("engine-unavailable", why, policy_hash)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        live = self._live
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:
                d = Decision.deny("request-invalid", f"the request body is larger than {self._max_body} bytes",
                                  live.policy.policy_hash)
                return await self._answer(d, send, live)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            params = body.decode("utf-8") if body and _is_json(scope) else None
        except UnicodeDecodeError:
            d = Decision.deny("request-invalid", "the request body is not UTF-8", live.policy.policy_hash)
            return await self._answer(d, send, live)
        decision = await self.decide(http_request(scope, params), live)
        if not isinstance(decision.verdict, Allow):
            return await self._answer(decision, send, live)
        headers = [(k, v) for k, v in scope["headers"] if not _is_ours(k)]
        headers += [(k.encode("latin-1"), v.encode("utf-8")) for k, v in decision.verdict.forward_headers]
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app({**scope, "headers": headers}, replay, send)

    async def _answer(self, decision: Decision, send: Send, live: "_Live") -> None:
        """Answers a deny, approval-required or step-up-required with the component's mapping
        (a `503` when the module fails or answers wrongly, never a
        pass-through: `Policy.respond` refuses status 0 for these)."""
        status, headers, body = await asyncio.to_thread(live.policy.respond, decision, self.service_url)
        raw = _json.dumps(body).encode("utf-8")
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [(k.encode("latin-1"), v.encode("utf-8")) for k, v in headers]
            + [(b"content-length", str(len(raw)).encode())],
        })
        await send({"type": "http.response.body", "body": raw})


class _Live(NamedTuple):
    """One version: the bundle deciding and its issuers' key sources."""

    policy: Policy
    keys: Optional[KeySources]


class Reload(NamedTuple):
    """What `GreenlightMiddleware.reload` did (as `greenlight serve`'s
    `POST /v1/admin/reload` answers)."""

    #: `swapped`, `unchanged` or `refused`.
    outcome: str
    #: The bundle deciding after the attempt.
    policy_hash: str
    #: The component deciding after the attempt.
    component_hash: str
    #: Why it was refused; the tests' summary when they ran.
    detail: str


def _run_bundle_tests(policy: Policy, bundle_dir: Union[str, os.PathLike], now: int) -> str:
    """Runs the bundle's tests against `policy`; raises `ValueError` naming
    the failures, or returns their summary."""
    tests = read_tests_dir(bundle_dir)
    if not tests:
        return "the bundle has no tests"
    outcomes = policy.run_tests(tests, now)
    failed = [f"{o.name}: {o.failure}" for o in outcomes if o.failure is not None]
    summary = f"{len(outcomes) - len(failed)} passed, {len(failed)} failed"
    if failed:
        raise ValueError(f"its tests failed: {summary}: " + "; ".join(failed))
    return f"tests: {summary}"


def http_request(scope: Scope, params: Optional[str]) -> HttpRequest:
    """The engine's view of an ASGI HTTP request: the raw (still
    percent-encoded) path, the raw query, every header with a lower-case
    name, and `params` (the body text, or `None` without a body)."""
    raw_path = scope.get("raw_path")
    if raw_path:
        # Some servers and test clients include the query in raw_path.
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
    else:
        path = urllib.parse.quote(scope["path"], safe="/:@!$&'()*+,;=-._~")
    headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"])
    return HttpRequest(scope["method"], path, scope.get("query_string", b"").decode("latin-1"), headers, params)
