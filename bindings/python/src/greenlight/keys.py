"""Issuers' keys from their providers, as `greenlight serve` fetches them
(crates/server/src/serve/keysource): the `jwks_uri` the bundle names, or
the one the provider's metadata names (OpenID Connect discovery, then
RFC 8414), fetched with the bundle's `[key_fetch]` settings
(`Policy.info.key_fetch`, the WIT `key-fetch-settings`), so every host
keeps keys alike:

- only `https://`, or plain `http://` to a loopback address (`localhost`,
  `127.0.0.0/8`, `::1`) when `allow_http_loopback`; no redirect is followed;
  a connect timeout and a total timeout; a body larger than `max_bytes` is
  refused (a larger `Content-Length` at once, else as soon as the bytes
  read pass the cap); the status must be 200, the body a JSON object with a
  `keys` array (the engine checks the keys themselves in `set_keys`);
- discovery tries the metadata URLs in order; the document's `issuer` must
  be exactly the issuer, and its `jwks_uri` passes the same URL checks;
- a set is fresh as the provider's `Cache-Control` says (`no-store` or
  `no-cache`: 0; else `max-age`), else `Expires` less `Date`, else
  `min_age_seconds`; always within [`min_age_seconds`,
  `max_age_seconds`]. It is fetched again at three quarters of that;
- a failed fetch keeps the last good keys serving and is retried after
  1, 2, 4, ... seconds, at most `min_age_seconds`; an issuer whose keys
  never loaded is withdrawn (`Policy.withdraw_keys`) with the fetch error,
  and one whose keys are older than their freshness plus
  `max_stale_seconds` is withdrawn saying they are too stale, so its tokens
  are denied `token-unknown-key` naming the reason;
- a token with an unknown `kid` (a `token-unknown-key` denial whose
  `issuer` is set) fetches that issuer's keys at once, at most once per
  `unknown_kid_interval_seconds` per issuer (`KeySources.unknown_kid`).

Keys reach the engine through `Policy.set_keys` only. The error texts are
those of the Rust server, word for word (a JSON parse error's own text
aside, after `not JSON: `), and `KeySources.health` gives the entries of its
`/healthz` `keys`.

    keys = KeySources(policy)        # the issuers whose keys the host fetches
    await keys.fetch_all()           # at start
    keys.start()                     # the background refresh (an asyncio task)
    seen = keys.changes              # read before deciding
    decision = policy.evaluate_http(request, now)
    v = decision.verdict
    if isinstance(v, Deny) and v.code == "token-unknown-key" and v.issuer:
        if await keys.unknown_kid(v.issuer, seen):
            decision = policy.evaluate_http(request, now)
    ...
    await keys.aclose()

A `KeySources` belongs to one event loop at a time; when it is used from a
new one (the old one closed), it starts its task and client afresh there.
Needs httpx (the `asgi` extra).
"""

from __future__ import annotations

import asyncio
import dataclasses
import email.utils
import hashlib
import ipaddress
import json
import logging
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from .engine import BundleError, EngineError, Policy
from .info import KeyFetchSettings

if TYPE_CHECKING:  # pragma: no cover
    import httpx

__all__ = ["KeySources", "check_url", "freshness", "is_loopback"]

log = logging.getLogger("greenlight.keys")

_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


def is_loopback(host: str) -> bool:
    """Whether `host` (a parsed host name without brackets) is `localhost`
    (any case), an IPv4 address in 127.0.0.0/8 or the IPv6 `::1`: names
    such as `127.0.0.1.evil.com` or `localhost.evil.com` are not."""
    host = host.lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip in _LOOPBACK_V4 if isinstance(ip, ipaddress.IPv4Address) else ip == _LOOPBACK_V6


def check_url(url: str, settings: KeyFetchSettings) -> None:
    """Raises `ValueError` unless `url` may be fetched: `https://`, or
    `http://` to a loopback address when `settings.allow_http_loopback`.
    The messages are the Rust server's."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # a port that is not a number in 0-65535 raises
    except ValueError as e:
        raise ValueError(f"`{url}` is not a URL: {e}") from None
    if not parts.scheme:
        raise ValueError(f"`{url}` is not a URL: relative URL without a base")
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and not parts.hostname:
        raise ValueError(f"`{url}` is not a URL: empty host")
    if scheme == "https":
        return
    if scheme == "http" and is_loopback(parts.hostname or ""):
        if settings.allow_http_loopback:
            return
        raise ValueError(f"`{url}` is plain HTTP: allowed for loopback only with "
                         "`[key_fetch] allow_http_loopback = true`")
    raise ValueError(f"`{url}` is not HTTPS")


#: The longest error text kept, logged and given as a reason.
MAX_ERROR_CHARS = 512


def _tidy(error: str) -> str:
    """An error as it is kept, logged, reported and put in denials, as the
    Rust server keeps it: control characters as spaces, at most
    `MAX_ERROR_CHARS` characters."""
    out = "".join(" " if (ord(c) < 32 or 127 <= ord(c) < 160) else c for c in error[:MAX_ERROR_CHARS])
    return out + "…" if len(error) > MAX_ERROR_CHARS else out


def _origin(url: str) -> tuple[Optional[str], Optional[int]]:
    """A URL's host and port (the scheme's default when it has none)."""
    u = urllib.parse.urlsplit(url)
    try:
        port = u.port
    except ValueError:
        return (u.hostname, -1)
    return (u.hostname, port if port is not None else {"https": 443, "http": 80}.get(u.scheme))


def freshness(headers: Any) -> Optional[int]:
    """How long a response stays fresh, in seconds (RFC 9111 §4.2.1), from
    its headers (any mapping with a case-insensitive `get`, such as httpx's):
    `no-store` or `no-cache` makes it 0, then `max-age`, then `Expires`
    less `Date` (an invalid `Expires` is 0, a missing `Date` is now);
    `None` when the response states none."""
    cc = headers.get("cache-control")
    if cc is not None:
        max_age: Optional[int] = None
        for directive in (d.strip() for d in cc.split(",")):
            lower = directive.lower()
            if lower in ("no-store", "no-cache"):
                return 0
            if lower.startswith("max-age="):
                n = lower[len("max-age="):].strip('"')
                # At most a u64, as the Rust server reads it (and never
                # Python's unbounded int() of a hostile header).
                max_age = int(n) if n.isascii() and n.isdigit() and len(n) <= 20 else None
                if max_age is not None and max_age > 2**64 - 1:
                    max_age = None
        if max_age is not None:
            return max_age
    expires = headers.get("expires")
    if expires is None:
        return None
    try:
        until = email.utils.parsedate_to_datetime(expires).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return 0  # an invalid Expires means already expired (RFC 9111 §5.3)
    date = headers.get("date")
    try:
        since = email.utils.parsedate_to_datetime(date).timestamp() if date is not None else time.time()
    except (TypeError, ValueError, IndexError, OverflowError):
        since = time.time()
    return max(0, int(until - since))


class _FetchError(Exception):
    """A fetch that failed, with the Rust server's text."""


@dataclass
class _Fetched:
    body: str
    kids: list[str]
    max_age: Optional[int]


@dataclass
class _Status:
    """What is known of one issuer's keys (the Rust `Status`)."""

    #: The JWKS URL in use (from the bundle, or found by discovery).
    jwks_uri: Optional[str] = None
    #: When the keys in the engine were fetched (the clock's seconds).
    loaded_at: Optional[int] = None
    #: Until when the provider said they are fresh.
    fresh_until: int = 0
    #: When to fetch next.
    next_fetch: int = 0
    #: The `kid`s of the keys in the engine.
    kids: list[str] = field(default_factory=list)
    #: Why the last fetch failed, if it did.
    last_error: Optional[str] = None
    #: Failed fetches in a row (for the backoff).
    failures: int = 0
    #: When a token's unknown `kid` last caused a fetch.
    last_unknown_kid_fetch: Optional[int] = None
    #: The reason given with the last withdrawal, until keys load.
    withdrawn_for: Optional[str] = None
    #: SHA-256 of the key set last handed to the engine.
    digest: Optional[bytes] = None
    #: Whether the keys were withdrawn for being too stale.
    withdrawn: bool = False


@dataclass
class _Source:
    issuer: str
    #: `"jwks_uri"` or `"discovery"`.
    kind: str
    #: The JWKS URL (`jwks_uri`) or the metadata URLs (`discovery`).
    urls: tuple[str, ...]
    status: _Status
    #: One fetch at a time per issuer: (its loop, the lock).
    lock: Optional[tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = None


def _refusal(e: Exception) -> str:
    """Why the engine refused a key change, in its own words (as the Rust
    server's `refusal`): the problems joined by `; `, or its message."""
    if isinstance(e, BundleError):
        return e.other if e.other is not None else "; ".join(map(str, e.problems))
    return str(e)


def _describe(e: BaseException) -> str:
    """An HTTP failure as the Rust server words it."""
    import httpx

    if isinstance(e, (httpx.TimeoutException, asyncio.TimeoutError)):
        return "timed out"
    if isinstance(e, httpx.ConnectError):
        return f"cannot connect: {e}" if str(e) else "cannot connect"
    return str(e) or type(e).__name__


class KeySources:
    """The issuers of a `Policy` whose keys the host fetches (`KeySource`
    `jwks_uri` or `discovery` in `Policy.info`), fetched and refreshed with
    the bundle's `[key_fetch]` settings, and handed to `Policy.set_keys`.

    `now` gives the time in whole Unix seconds (default: the wall clock);
    freshness, backoff, staleness and the unknown-`kid` interval are all
    measured with it, so a test can drive them. `transport` replaces
    httpx's network transport. `tick_seconds` is how often the background
    task looks at the clock (1 s, as the Rust server)."""

    def __init__(self, policy: Policy, *, now: Optional[Callable[[], int]] = None,
                 transport: Optional["httpx.AsyncBaseTransport"] = None, tick_seconds: float = 1.0):
        """Raises `ValueError` for a URL that is neither HTTPS nor (when the
        bundle allows it) plain HTTP to loopback, as the Rust server refuses
        to start: `issuer `...`: jwks_uri ...` or `issuer `...`: its
        metadata URL ...`."""
        info = policy.info
        self.policy = policy
        self.settings: KeyFetchSettings = info.key_fetch
        self._now = now if now is not None else (lambda: int(time.time()))
        self._transport = transport
        self._tick = tick_seconds
        self._sources: list[_Source] = []
        #: Key changes in the engine (see `changes`).
        self._changes = 0
        for i in info.issuers:
            src = i.keys
            if src.kind == "bundle":
                continue
            if src.kind == "jwks_uri":
                url = src.url or ""
                try:
                    check_url(url, self.settings)
                except ValueError as e:
                    raise ValueError(f"issuer `{i.issuer}`: jwks_uri {e}") from None
                self._sources.append(_Source(i.issuer, "jwks_uri", (url,), _Status(jwks_uri=url)))
            elif src.kind == "discovery":
                for url in src.urls:
                    try:
                        check_url(url, self.settings)
                    except ValueError as e:
                        raise ValueError(f"issuer `{i.issuer}`: its metadata URL {e}") from None
                self._sources.append(_Source(i.issuer, "discovery", tuple(src.urls), _Status()))
            else:
                raise ValueError(f"issuer `{i.issuer}`: unknown key source `{src.kind}`")
        self._client: Optional["httpx.AsyncClient"] = None
        self._client_loop: Optional[asyncio.AbstractEventLoop] = None
        self._task: Optional[asyncio.Task] = None
        self._fetched = False
        self._start_lock: Optional[tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = None

    # ---- what there is ----------------------------------------------------

    @property
    def issuers(self) -> tuple[str, ...]:
        """The issuers whose keys are fetched, in the bundle's order."""
        return tuple(s.issuer for s in self._sources)

    def __len__(self) -> int:
        return len(self._sources)

    def __repr__(self) -> str:
        return f"KeySources({list(self.issuers)!r})"

    def _source(self, issuer: str) -> Optional[_Source]:
        return next((s for s in self._sources if s.issuer == issuer), None)

    # ---- fetching ---------------------------------------------------------

    def _http(self) -> "httpx.AsyncClient":
        """The client of the running loop: connect and total timeouts (the
        total one is also enforced around each whole fetch), no redirects,
        no compression asked for."""
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            s = self.settings
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(s.timeout_ms / 1000, connect=s.connect_timeout_ms / 1000),
                follow_redirects=False, transport=self._transport, trust_env=False,
                headers={"user-agent": "greenlight-python", "accept": "application/json",
                         "accept-encoding": "identity"})
            self._client_loop = loop
        return self._client

    async def _get(self, url: str) -> tuple[str, Optional[int]]:
        """GETs `url` as JSON: status 200, at most `max_bytes`, within the
        total timeout. Returns the body and its freshness, if stated."""
        import httpx

        try:
            check_url(url, self.settings)
        except ValueError as e:
            raise _FetchError(str(e)) from None
        try:
            return await asyncio.wait_for(self._get_unchecked(url), self.settings.timeout_ms / 1000)
        except _FetchError:
            raise
        except (httpx.HTTPError, httpx.InvalidURL, asyncio.TimeoutError, OSError) as e:
            raise _FetchError(f"GET {url}: {_describe(e)}") from None

    async def _get_unchecked(self, url: str) -> tuple[str, Optional[int]]:
        cap = self.settings.max_bytes
        async with self._http().stream("GET", url) as r:
            if r.status_code != 200:
                raise _FetchError(f"GET {url}: status {r.status_code}")
            length = r.headers.get("content-length")
            if length is not None and length.strip().isdigit() and int(length) > cap:
                raise _FetchError(f"GET {url}: the body is larger than {cap} bytes")
            max_age = freshness(r.headers)
            body = bytearray()
            async for chunk in r.aiter_raw():
                if len(body) + len(chunk) > cap:
                    raise _FetchError(f"GET {url}: the body is larger than {cap} bytes")
                body += chunk
        try:
            return bytes(body).decode("utf-8"), max_age
        except UnicodeDecodeError:
            raise _FetchError(f"GET {url}: the body is not UTF-8") from None

    async def _discover(self, issuer: str, urls: tuple[str, ...]) -> str:
        """The issuer's `jwks_uri` from the first of its metadata documents
        that answers with exactly its `issuer` (OpenID Connect Discovery 1.0
        §4, RFC 8414 §3)."""
        errors = []
        for url in urls:
            try:
                body, _ = await self._get(url)
                try:
                    doc = json.loads(body)
                except (ValueError, RecursionError) as e:
                    raise _FetchError(f"{url}: not JSON: {e}") from None
                if not isinstance(doc, dict) or doc.get("issuer") != issuer:
                    raise _FetchError(f"{url}: its `issuer` is not `{issuer}`")
                uri = doc.get("jwks_uri")
                if not isinstance(uri, str):
                    raise _FetchError(f"{url}: no `jwks_uri`")
                try:
                    check_url(uri, self.settings)
                except ValueError as e:
                    raise _FetchError(f"{url}: jwks_uri {e}") from None
                # Only on the issuer's own host (and port), as the Rust
                # server: a provider cannot send the host to another machine
                # of its network; a JWKS elsewhere is named in the bundle.
                if _origin(uri) != _origin(url):
                    raise _FetchError(f"{url}: its jwks_uri `{uri}` is not on the issuer's host; to trust it, "
                                      "name it as `jwks_uri` in the bundle")
                return uri
            except _FetchError as e:
                errors.append(str(e))
        raise _FetchError(f"discovery failed: {'; '.join(errors)}")

    async def _jwks(self, url: str) -> _Fetched:
        """A key set: a JSON object with a `keys` array."""
        body, max_age = await self._get(url)
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise _FetchError(f"GET {url}: not JSON: {e}") from None
        keys = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(keys, list):
            raise _FetchError(f"GET {url}: not a JWKS (no `keys` array)")
        kids = [k["kid"] for k in keys if isinstance(k, dict) and isinstance(k.get("kid"), str)]
        return _Fetched(body, kids, max_age)

    def _lock(self, source: _Source) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if source.lock is None or source.lock[0] is not loop:
            source.lock = (loop, asyncio.Lock())
        return source.lock[1]

    @property
    def changes(self) -> int:
        """How many times any issuer's keys changed in the engine: a caller
        reads it before deciding, so that a change made meanwhile (by a
        fetch another request started) is seen (see `unknown_kid`)."""
        return self._changes

    async def _refresh(self, source: _Source, why: str) -> bool:
        """Fetches `source`'s keys now (one fetch at a time per issuer) and
        hands them to the engine. Returns whether the engine's keys changed."""
        async with self._lock(source):
            return await self._fetch_now(source, why)

    async def _fetch_now(self, source: _Source, why: str) -> bool:
        """`_refresh` with the issuer's fetch lock held by the caller."""
        now = self._now()
        st = source.status
        try:
            uri = st.jwks_uri
            if uri is None:
                uri = await self._discover(source.issuer, source.urls)
            fetched = await self._jwks(uri)
            # The same set as the engine holds: nothing to hand over (a change
            # drops the engine's pooled instances).
            digest = hashlib.sha256(fetched.body.encode()).digest()
            if st.digest != digest or st.withdrawn:
                try:
                    await asyncio.to_thread(self.policy.set_keys, source.issuer, fetched.body)
                except (BundleError, EngineError) as e:
                    raise _FetchError(f"the key set was refused: {_refusal(e)}") from None
                st.digest = digest
        except Exception as e:  # noqa: BLE001 - whatever a provider sends, a failed fetch
            error = _tidy(str(e) if isinstance(e, _FetchError) else f"{type(e).__name__}: {e}")
            log.warning("fetching the keys of %s failed (%s); the last good keys keep serving: %s",
                        source.issuer, why, error)
            st.failures += 1
            # Retry with a backoff: 1 s doubling, at most the minimum age.
            st.next_fetch = now + min(1 << min(st.failures, 16), max(self.settings.min_age_seconds, 1))
            if source.kind == "discovery":
                st.jwks_uri = None  # the provider may have moved its keys: ask again
            st.last_error = error
            reason = f"fetching its keys failed: {error}"
            # Said once per reason: a withdrawal drops the pooled instances.
            if st.loaded_at is None and st.withdrawn_for != reason:
                try:
                    await asyncio.to_thread(self.policy.withdraw_keys, source.issuer, reason)
                    st.withdrawn_for = reason
                except (BundleError, EngineError) as e:
                    log.error("cannot record why %s has no keys: %s", source.issuer, e)
            return False
        s = self.settings
        age = min(max(fetched.max_age if fetched.max_age is not None else s.min_age_seconds,
                      s.min_age_seconds), s.max_age_seconds)
        changed = st.kids != fetched.kids or st.withdrawn or st.loaded_at is None
        log.info("fetched the keys of %s from %s (%s): kids %s, fresh for %d s",
                 source.issuer, uri, why, fetched.kids, age)
        st.jwks_uri = uri
        st.loaded_at = now
        st.fresh_until = now + age
        # Before they expire: at three quarters of their life.
        st.next_fetch = now + max(age * 3 // 4, 1)
        st.kids = fetched.kids
        st.last_error = None
        st.failures = 0
        st.withdrawn = False
        st.withdrawn_for = None
        if changed:
            self._changes += 1
        return changed

    async def fetch_all(self) -> None:
        """Fetches every issuer's keys once (at start: the host then begins
        with keys where the providers answered, and fails closed, saying
        why, where they did not)."""
        for s in self._sources:
            await self._refresh(s, "start")
        self._fetched = True

    async def adopt(self, old: Optional["KeySources"]) -> None:
        """Starts a new version of the bundle with the keys `old` (the
        version it replaces) holds for every issuer whose keys come from the
        same place, so a reload neither refetches them nor loses them while
        a provider is down (as the Rust server's `KeySources::adopt`); then
        fetches the others' keys."""
        # One snapshot of the old version's keys and their fetch state, taken
        # before any await: a fetch of the old version's meanwhile must not
        # pair newer state (its digest) with older keys here.
        held = {} if old is None else {k[0]: k for k in old.policy._keys}
        snapshot = {}
        for s in self._sources:
            o = None if old is None else old._source(s.issuer)
            if o is not None and (o.kind, o.urls) == (s.kind, s.urls) and s.issuer in held:
                snapshot[s.issuer] = (held[s.issuer], dataclasses.replace(o.status, kids=list(o.status.kids)))
        for s in self._sources:
            if s.issuer in snapshot:
                (_, method, arg), status = snapshot[s.issuer]
                try:
                    if method == "set-keys":
                        await asyncio.to_thread(self.policy.set_keys, s.issuer, arg)
                    else:
                        await asyncio.to_thread(self.policy.withdraw_keys, s.issuer, arg)
                    s.status = status
                    continue
                except (BundleError, EngineError):
                    pass
            await self._refresh(s, "new bundle")
        self._fetched = True

    async def _expire_stale(self) -> None:
        """Withdraws the keys of issuers whose last good set is older than
        its freshness plus `max_stale_seconds`, so their tokens fail closed."""
        now = self._now()
        for s in self._sources:
            st = s.status
            if st.loaded_at is None or st.withdrawn or now <= st.fresh_until + self.settings.max_stale_seconds:
                continue
            if self._lock(s).locked():
                continue  # a fetch under way decides for itself
            reason = (f"its keys are too stale: fetched {now - st.loaded_at} s ago, "
                      f"fresh for {max(st.fresh_until - st.loaded_at, 0)} s, and no fetch has worked since "
                      f"({st.last_error if st.last_error is not None else 'no error recorded'})")
            log.error("withdrawing the keys of %s: %s", s.issuer, reason)
            try:
                await asyncio.to_thread(self.policy.withdraw_keys, s.issuer, reason)
            except (BundleError, EngineError) as e:
                log.error("cannot withdraw the keys of %s: %s", s.issuer, e)
                continue
            st.withdrawn = True
            st.kids = []

    async def tick(self) -> None:
        """One round of the background work: fetches the keys that are due
        (at 3/4 of their freshness, or after a failure's backoff), then
        withdraws those that grew too stale."""
        now = self._now()
        try:
            for s in self._sources:
                if s.status.next_fetch <= now:
                    try:
                        await self._refresh(s, "due")
                    except asyncio.CancelledError:
                        raise
                    except Exception:  # noqa: BLE001 - one issuer never stops the others
                        log.exception("refreshing the keys of %s failed", s.issuer)
        finally:
            # Stale keys go whatever happened above.
            await self._expire_stale()

    async def _work(self) -> None:
        while True:
            await asyncio.sleep(self._tick)
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the refresh die
                log.exception("the background key refresh failed")

    def start(self) -> None:
        """Starts the background refresh in the running loop (every
        `tick_seconds`, `tick`), unless it runs there already."""
        loop = asyncio.get_running_loop()
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        self._task = loop.create_task(self._work(), name="greenlight key refresh")

    async def ensure_started(self) -> None:
        """`fetch_all` unless done, then `start`: for a host with no startup
        hook (say, an ASGI server without lifespan), on its first request."""
        if not self._fetched:
            loop = asyncio.get_running_loop()
            if self._start_lock is None or self._start_lock[0] is not loop:
                self._start_lock = (loop, asyncio.Lock())
            async with self._start_lock[1]:
                if not self._fetched:
                    await self.fetch_all()
        self.start()

    async def aclose(self) -> None:
        """Stops the background refresh and closes the HTTP client."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            if task.get_loop() is asyncio.get_running_loop():
                try:
                    await task
                except asyncio.CancelledError:
                    pass
        client, self._client = self._client, None
        if client is not None and self._client_loop is asyncio.get_running_loop():
            await client.aclose()
        self._client_loop = None

    async def unknown_kid(self, issuer: str, seen: int) -> bool:
        """After a `token-unknown-key` denial naming `issuer` (a `kid` its
        keys lack), for a request decided when `changes` was `seen`: returns
        whether it is worth deciding once more. It is when keys changed
        since (another request's fetch, awaited if it is under way: a
        rotation's first requests all pass); otherwise the keys are fetched
        at once unless that was done less than
        `unknown_kid_interval_seconds` ago for this issuer (a flood of
        made-up `kid`s makes no flood of fetches), and it is when they
        changed (their `kid`s differ, or they are loaded again)."""
        source = self._source(issuer)
        if source is None:
            return False
        if self._changes != seen:
            return True
        async with self._lock(source):
            if self._changes != seen:
                return True
            now = self._now()
            st = source.status
            if st.last_unknown_kid_fetch is not None and now < st.last_unknown_kid_fetch + \
                    self.settings.unknown_kid_interval_seconds:
                return False
            st.last_unknown_kid_fetch = now
            return await self._fetch_now(source, "unknown kid")

    # ---- reporting --------------------------------------------------------

    def health(self) -> list[dict[str, Any]]:
        """Each fetched issuer's keys, as the Rust server's `/healthz` says
        (its `keys` entries): `issuer`, `source` (`"jwks_uri"` or
        `"discovery"`), `jwks_uri` (the one in use; `None` before discovery
        found it), `keys` (whether the engine has keys for it), `kids`,
        `age_seconds` and `fresh_for_seconds` (`None` before any key set
        loaded), `last_error` (`None` after a fetch that worked)."""
        now = self._now()
        out = []
        for s in self._sources:
            st = s.status
            out.append({
                "issuer": s.issuer,
                "source": s.kind,
                "jwks_uri": st.jwks_uri,
                "keys": st.loaded_at is not None and not st.withdrawn,
                "kids": list(st.kids),
                "age_seconds": None if st.loaded_at is None else max(now - st.loaded_at, 0),
                "fresh_for_seconds": None if st.loaded_at is None else max(st.fresh_until - now, 0),
                "last_error": st.last_error,
            })
        return out

    def all_loaded(self) -> bool:
        """Whether every fetched issuer has keys in the engine now (the Rust
        server's `/healthz` says `ok` then, else `degraded`)."""
        return all(s.status.loaded_at is not None and not s.status.withdrawn for s in self._sources)
