"""`greenlight.wasm` in wasmtime-py: load a bundle, decide requests,
answer them.

The component is compiled once per `Engine`. A `Policy` keeps a small pool of
instances, each with the bundle (and the keys set or withdrawn since) loaded
in it, so its cache of verified tokens stays warm. Every call has a time
budget (epoch interruption) and every instance a memory cap. A trap, an overrun or a
malformed answer is a deny (`engine-trap`, `engine-timeout`,
`engine-memory-exceeded`, `engine-invalid-output`), never an exception; the
instance is discarded and the next call gets a fresh one, as in the Rust
host (`host/src/policy.rs`, `host/src/pool.rs`).

wasmtime-py lifts a WIT record as an object with the WIT's (dashed) field
names as attributes, a variant whose cases Python cannot tell apart as a
`Variant(tag, payload)`, an option as `None` or its value, an enum as its
case name. It lowers the same shapes, except that an `option<record>` must
hold a `wasmtime.component.Record`.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import math
import os
import stat
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

import wasmtime
from wasmtime.component import Component, Linker, Record, ResourceAny, Variant

from . import _calls, _crypto, _json
from .decision import (
    DENIAL_CODES,
    GRANT_MODES,
    Action,
    Allow,
    Attribute,
    AttributeValue,
    Decision,
    Deny,
    InvalidOutput,
    Principal,
    StepUpRequired,
    _check_list,
    _check_str,
    _text_tuple,
    approver_case,
    validated,
)
from .gateway import Response, checked_answer, unavailable
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

log = logging.getLogger("greenlight")

#: The WIT package version this binding speaks.
WIT_VERSION = "0.11.0"
_ENGINE_IFACE = f"greenlight:approval/engine@{WIT_VERSION}"
_CRYPTO_IFACE = f"greenlight:approval/crypto@{WIT_VERSION}"
_JOSE_IFACE = f"greenlight:approval/jose@{WIT_VERSION}"
_GATEWAY_IFACE = f"greenlight:approval/gateway@{WIT_VERSION}"
_METHODS = ("set-keys", "withdraw-keys", "decide-json", "authenticate",
            "authenticate-id-token", "inspect", "describe", "stats", "run-tests")

#: The folder of a bundle that holds its policy tests (`tests/*.toml`).
TESTS_DIR = "tests"

#: The most policy-test outcomes a module may return (as the Rust host).
MAX_TESTS = 10_000

#: The bundle files read from a folder besides the `*.json` key sets.
BUNDLE_FILES = ("greenlight.toml", "policy.cedar", "schema.cedarschema")
#: The name `set_keys` and `withdraw_keys` use for Greenlight's own action-token issuer.
ACTION_ISSUER = "greenlight"

#: Table elements an instance may have; Rust guests use a few hundred.
MAX_TABLE_ELEMENTS = 100_000
#: Guest stderr kept per instance, to tell a failed allocation from a trap.
_STDERR_KEEP = 4096


@dataclass(frozen=True)
class Limits:
    """Limits on what the policy module may use."""

    #: Wall-clock budget of one call, in seconds. An RSA check costs a few
    #: milliseconds in wasm; 100 ms is generous and below a gateway's
    #: timeout. Defaults to 0.1.
    call_budget: float = 0.1
    #: Budget for instantiating and loading a bundle, in seconds. Defaults to 5.
    load_budget: float = 5.0
    #: Linear memory an instance may grow to, in bytes. Defaults to 64 MiB.
    memory_bytes: int = 64 << 20
    #: Idle instances kept for reuse. Defaults to 8.
    pool_size: int = 8
    #: How often the epoch advances, in seconds: the budgets' resolution.
    #: A Python thread wakes this often; 5 ms keeps that cheap. Defaults to 0.005.
    tick: float = 0.005
    #: Whether the module's signature checks may use `cryptography`
    #: (OpenSSL) through the WIT `crypto` import. Off, the module checks
    #: every signature itself: the same verdicts, slower. Defaults to True.
    native_signatures: bool = True


@dataclass(frozen=True)
class Problem:
    """One problem in a bundle, located as precisely as the file allows."""

    #: `missing-file`, `invalid-config`, `invalid-policy`, `invalid-schema`, `invalid-keys`
    #: or `invalid-entities`.
    kind: str
    #: The file it is in, as named in the bundle.
    file: str
    #: The 1-based line, where known.
    line: Optional[int]
    #: The 1-based column, where known.
    column: Optional[int]
    #: What is wrong and how to fix it.
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.message}"


class BundleError(Exception):
    """When the policy module refused a bundle or a key set (the WIT
    `load-error`). `problems` lists every problem found; `other` is set
    instead for any other refusal (never parse it)."""

    def __init__(self, problems: Sequence[Problem] = (), other: Optional[str] = None):
        self.problems = tuple(problems)
        self.other = other
        if other is not None:
            text = other
        else:
            text = f"the bundle has {len(self.problems)} problem(s): " + "; ".join(map(str, self.problems))
        super().__init__(text)


class EngineError(Exception):
    """When the component cannot be used, or an instance failed while
    loading a bundle or keys (a trap, a timeout, malformed output)."""


class Denied(Exception):
    """When `authenticate`, `authenticate_id_token`, `inspect` or
    `verify_compact` refuses: `code`
    (one of the denial codes), `message` and `issuer`, as in a `Deny`.
    `issuer` is set only for `token-unknown-key` from one of the bundle's
    issuers whose keys the host fetches (then fetch them again and retry);
    `None` otherwise."""

    def __init__(self, code: str, message: str, issuer: Optional[str] = None):
        self.code = code
        self.message = message
        self.issuer = issuer
        super().__init__(f"{code}: {message}")


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as a gateway sees it (the WIT `http-request`)."""

    #: The method, case-insensitive.
    method: str
    #: The raw path without the query string (percent-encoding kept).
    path: str
    #: The raw query string without `?`; empty when absent.
    query: str = ""
    #: Headers as `(name, value)` pairs; the bearer token is read from `authorization`.
    headers: Sequence[tuple[str, str]] = ()
    #: The parameters (usually the JSON body) as JSON text; `None` for none.
    params: Optional[str] = None
    #: Entities this host adds for the request, beside the bundle's
    #: `entities.json`: a JSON list in Cedar's entity JSON (text; a list is
    #: serialised). Only a host gives them, never the client. `None` for none.
    entities: Optional[Union[str, list[Any]]] = None

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "HttpRequest":
        """From the JSON shape of the vectors: `headers` a list of `[name, value]`."""
        return HttpRequest(d["method"], d["path"], d.get("query", ""),
                           tuple((k, v) for k, v in d.get("headers", ())), d.get("params"),
                           d.get("entities"))


@dataclass(frozen=True)
class AccessRequest:
    """An AuthZEN-shaped request (the WIT `access-request`)."""

    #: The bearer token (a base access token or an action token).
    token: str
    #: The action name, e.g. `payment.refund`.
    action: str
    #: The resource's entity type, e.g. `Payment`.
    resource_type: str
    #: The resource's id.
    resource_id: str
    #: Resource attributes as a JSON object text; `None` for none.
    resource_properties: Optional[str] = None
    #: The action's parameters as a JSON object text; `None` for none.
    context: Optional[str] = None
    #: Entities this host adds for the request, as in `HttpRequest`.
    entities: Optional[Union[str, list[Any]]] = None

    @staticmethod
    def from_dict(d: dict[str, Any]) -> "AccessRequest":
        """From the JSON shape of the vectors (snake_case keys)."""
        return AccessRequest(d["token"], d["action"], d["resource_type"], d["resource_id"],
                             d.get("resource_properties"), d.get("context"), d.get("entities"))


def read_bundle_dir(path: Union[str, os.PathLike]) -> list[tuple[str, str]]:
    """Reads a bundle folder into `(name, contents)` pairs, sorted by name:
    `greenlight.toml`, `policy.cedar`, `schema.cedarschema` when present,
    and every `*.json` regular file at the top level. Nothing else is read,
    so private keys beside a bundle never reach the engine (as the Rust
    `read_bundle_dir`)."""
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: os.fsencode(e.name))
    files = []
    for e in entries:
        if (e.name in BUNDLE_FILES or e.name.endswith(".json")) and e.is_file(follow_symlinks=False):
            with open(e.path, "rb") as f:
                raw = f.read()
            try:
                files.append((e.name, raw.decode("utf-8")))
            except UnicodeDecodeError as err:
                raise OSError(f"{e.path}: stream did not contain valid UTF-8 ({err})") from None
    return files


def read_tests_dir(path: Union[str, os.PathLike]) -> list[tuple[str, str]]:
    """Reads a bundle folder's policy tests (`tests/*.toml` regular files)
    into `(name, contents)` pairs, sorted by name; none when it has no
    `tests` folder (as the Rust `policytest::read_files`)."""
    try:
        with os.scandir(os.path.join(path, TESTS_DIR)) as it:
            entries = sorted(it, key=lambda e: e.name)
    except FileNotFoundError:
        return []
    tests = []
    for e in entries:
        if e.name.endswith(".toml") and e.is_file(follow_symlinks=False):
            with open(e.path, "rb") as f:
                raw = f.read()
            try:
                tests.append((e.name, raw.decode("utf-8")))
            except UnicodeDecodeError as err:
                raise OSError(f"{e.path}: stream did not contain valid UTF-8 ({err})") from None
    return tests


#: `Engine`'s default `cache_dir`: `default_cache_dir()` at construction.
DEFAULT_CACHE = object()


def default_cache_dir() -> Optional[str]:
    """Where compiled components are cached: `$GREENLIGHT_CACHE_DIR`, else
    `$XDG_CACHE_HOME/greenlight`, else `~/.cache/greenlight` (as the Rust host)."""
    if os.environ.get("GREENLIGHT_CACHE_DIR"):
        return os.environ["GREENLIGHT_CACHE_DIR"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "greenlight")
    home = os.environ.get("HOME")
    return os.path.join(home, ".cache", "greenlight") if home else None


#: What `_compile_cached_as` did when it mapped a verified artifact.
_MAPPED = "mapped"


@dataclass(frozen=True)
class _Compiled:
    """What `_compile_cached_as` did when it compiled the component."""

    #: Whether the new artifact (and its digest) was written for next time.
    stored: bool
    #: Why no artifact was mapped, when one was found or the directory was
    #: refused; `None` when there simply was none yet.
    why: Optional[str] = None


class _Untrusted(Exception):
    """Why a cache directory or file cannot be trusted."""


def _current_user() -> Optional[int]:
    """The effective user of this process; `None` outside Unix, where the
    ownership and mode checks do not apply (the digest does)."""
    return os.geteuid() if hasattr(os, "geteuid") else None


def _owned(st: os.stat_result, user: Optional[int], private: bool) -> None:
    """Raises `_Untrusted` unless `st` is owned by `user` and neither group-
    nor other-writable (`private`: nor readable either)."""
    if user is None:
        return
    if st.st_uid != user:
        raise _Untrusted(f"owned by uid {st.st_uid}, not {user}")
    if st.st_mode & (0o077 if private else 0o022):
        raise _Untrusted(f"mode {st.st_mode & 0o777:o} lets others in")


def _private_dir(path: str, user: Optional[int]) -> None:
    """Makes sure `path` is a private directory of `user`, creating it `0700`
    or tightening one others can only read; raises `_Untrusted` when it
    cannot be trusted."""
    if not os.path.lexists(path):
        try:
            os.makedirs(path, mode=0o700)
            os.chmod(path, 0o700)  # the umask may have taken the owner's bits
        except FileExistsError:
            pass  # another process created it meanwhile: checked below
        except OSError as e:
            raise _Untrusted(f"cannot create it: {e.strerror or e}") from None
    try:
        st = os.lstat(path)
    except OSError as e:
        raise _Untrusted(e.strerror or str(e)) from None
    if not stat.S_ISDIR(st.st_mode):
        raise _Untrusted("not a directory (a symlink is not followed)")
    _owned(st, user, private=False)
    if user is not None and st.st_mode & 0o077:
        try:
            os.chmod(path, 0o700)
        except OSError as e:
            raise _Untrusted(f"cannot make it private: {e.strerror or e}") from None


def _read_private(path: str, user: Optional[int]) -> bytes:
    """The contents of `path` if it is a regular file private to `user`;
    raises `_Untrusted` otherwise."""
    try:
        st = os.lstat(path)
    except OSError as e:
        raise _Untrusted(e.strerror or str(e)) from None
    if not stat.S_ISREG(st.st_mode):
        raise _Untrusted("not a regular file (a symlink is not followed)")
    _owned(st, user, private=True)
    try:
        # O_NOFOLLOW: a symlink put there since the check is not read either.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
        with open(fd, "rb") as f:
            return f.read()
    except OSError as e:
        raise _Untrusted(e.strerror or str(e)) from None


def _verify(path: str, digest_path: str, user: Optional[int]) -> None:
    """Raises `_Untrusted` unless the artifact at `path` is private to `user`
    and matches the SHA-256 recorded in `digest_path`."""
    try:
        recorded = _read_private(digest_path, user)
    except _Untrusted as e:
        raise _Untrusted(f"its digest: {e}") from None
    artifact = _read_private(path, user)
    if recorded.strip() != hashlib.sha256(artifact).hexdigest().encode():
        raise _Untrusted("its SHA-256 does not match the recorded digest")


def _write_private(path: str, data: bytes) -> None:
    """Writes `data` to `path` as a `0600` file, through a temporary file and
    a rename, so a concurrent reader never sees half a file."""
    tmp = f"{path}.tmp{os.getpid()}-{threading.get_ident()}"
    # A leftover of a crashed process with the same name goes first, so the
    # file is created here, with its mode.
    try:
        os.remove(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    try:
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def _compile_cached(engine: wasmtime.Engine, wasm: bytes, cache_dir: Optional[str]) -> Component:
    """Compiles `wasm`, or maps the artifact an earlier run cached in
    `cache_dir` (`None`: no cache). The file name holds the component's
    SHA-256, wasmtime-py's version and the engine settings, so a changed
    input never maps a stale artifact; wasmtime re-checks its version and
    settings on loading.

    A cached artifact is native code this process will run, so nobody else
    may have been able to write it (the rules of the Rust host,
    `host/src/cache.rs`):
    - the directory is created `0700`; an existing one must be a real
      directory (not a symlink) owned by this process's user and writable by
      nobody else (one merely readable by others is tightened to `0700`),
      else the cache is not used at all;
    - an artifact is mapped only if it is a regular file (not a symlink),
      owned by this user, `0600`, and its SHA-256 matches the digest written
      beside it (`.sha256`), which catches a truncated, corrupted or swapped
      file; anything else is compiled afresh and replaced.
    Outside Unix the ownership checks do not apply; the digest does."""
    if cache_dir is None:
        return Component(engine, wasm)
    compiled, outcome = _compile_cached_as(engine, wasm, cache_dir, _current_user())
    if isinstance(outcome, _Compiled) and outcome.why is not None:
        log.warning("not using the cached artifact in %s: %s", cache_dir, outcome.why)
    return compiled


def _compile_cached_as(engine: wasmtime.Engine, wasm: bytes, cache_dir: str,
                       user: Optional[int]) -> tuple[Component, Union[str, _Compiled]]:
    """`_compile_cached` for the user `user` (`None`: no ownership checks),
    saying what it did: `_MAPPED` or a `_Compiled`."""
    try:
        _private_dir(cache_dir, user)
    except _Untrusted as e:
        return Component(engine, wasm), _Compiled(False, f"the cache directory {cache_dir}: {e}")
    key = hashlib.sha256(wasm).hexdigest()
    version = importlib.metadata.version("wasmtime")
    name = f"{key}-py-wasmtime-{version}-epoch.cwasm"
    path = os.path.join(cache_dir, name)
    digest_path = f"{path}.sha256"
    why = None
    if os.path.lexists(path):
        try:
            _verify(path, digest_path, user)
            # The file is private to this user in a directory only this user
            # can write, and matches the digest recorded when it was written
            # with `Component.serialize` for this wasmtime-py version and
            # engine configuration (both are in its name).
            return Component.deserialize_file(engine, path), _MAPPED
        except (_Untrusted, wasmtime.WasmtimeError) as e:
            why = f"{name}: {str(e).strip()}"
    compiled = Component(engine, wasm)
    try:
        data = compiled.serialize()
        # The old digest goes first: between the two renames a reader finds
        # no digest and compiles, never a digest of another file.
        try:
            os.remove(digest_path)
        except FileNotFoundError:
            pass
        _write_private(path, data)
        _write_private(digest_path, hashlib.sha256(data).hexdigest().encode())
        stored = True
    except (OSError, wasmtime.WasmtimeError) as e:
        log.warning("cannot cache the compiled component in %s: %s", cache_dir, e)
        stored = False
    return compiled, _Compiled(stored, why)


class _Ticker:
    """Advances an engine's epoch every `tick` seconds on a daemon thread,
    until the owner is garbage-collected."""

    def __init__(self, engine: wasmtime.Engine, tick: float, owner: object):
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(tick):
                engine.increment_epoch()

        threading.Thread(target=run, name="greenlight-epoch", daemon=True).start()
        weakref.finalize(owner, stop.set)


class _Failure(Exception):
    """A call into the module failed: `code` and `message` of the deny."""

    def __init__(self, code: str, message: str):
        self.code = code
        self.message = message
        super().__init__(message)


class _Slot:
    """One instance with a bundle loaded in it; used by one thread at a time."""

    def __init__(self, engine: "Engine", budget: float):
        self.engine = engine
        #: The key generation this instance holds (see `Policy._change_keys`).
        self.generation = 0
        # The callback must not hold the slot or the store: wasmtime-py keeps
        # it in a global table until the store is freed.
        self.stderr = stderr = bytearray()

        def on_stderr(data: bytes) -> None:
            stderr.extend(data)
            del stderr[:-_STDERR_KEEP]

        store = wasmtime.Store(engine._wasm)
        wasi = wasmtime.WasiConfig()  # no files, no environment, no network
        wasi.stderr_custom = on_stderr
        # Without a WASI context the first WASI call aborts the process.
        store.set_wasi(wasi)
        store.set_limits(memory_size=engine.limits.memory_bytes, table_elements=MAX_TABLE_ELEMENTS)
        # With epoch interruption on, a store's deadline starts at "now".
        store.set_epoch_deadline(engine._ticks(budget))
        self.store = store
        self.policy: Optional[ResourceAny] = None
        try:
            instance = engine._linker.instantiate(store, engine._component)
            self.funcs = {name: instance.get_func(store, idx) for name, idx in engine._exports.items()}
        except Exception as e:  # noqa: BLE001 - every failure is the module's
            raise self.failure(e) from None
        if any(f is None for f in self.funcs.values()):
            raise _Failure("engine-invalid-output", "the component lacks a function of the greenlight:approval world")

    def call(self, name: str, budget: float, *args: Any) -> Any:
        """Calls export `name` with a fresh deadline; raises `_Failure`."""
        f = self.funcs[name]
        self.stderr.clear()
        self.store.set_epoch_deadline(self.engine._ticks(budget))
        try:
            sig = self.engine._signatures.get(name, f, self.store)
            result = _calls.call(f, self.store, sig, args)
            f.post_return(self.store)
        except Exception as e:  # noqa: BLE001 - every failure is the module's
            raise self.failure(e) from None
        return result

    def failure(self, e: Exception) -> _Failure:
        """Classifies why a call failed, as the Rust host does."""
        if isinstance(e, _Failure):
            return e
        if b"memory allocation of" in self.stderr:
            return _Failure("engine-memory-exceeded",
                            f"the policy module ran past its memory cap of {self.engine.limits.memory_bytes} bytes")
        if not isinstance(e, wasmtime.WasmtimeError):
            return _Failure("engine-invalid-output", f"the policy module returned a malformed value: {e}")
        text = str(e)
        if "wasm trap: interrupt" in text:
            return _Failure("engine-timeout", "the policy module ran past its time budget")
        trap = next((line.strip()[len("wasm trap: "):] for line in text.splitlines()
                     if line.strip().startswith("wasm trap: ")), None)
        if trap is not None:
            return _Failure("engine-trap", f"the policy module trapped ({trap})")
        return _Failure("engine-trap", f"the policy module failed: {text.splitlines()[0] if text else 'unknown error'}")


class Engine:
    """A compiled policy module (`greenlight.wasm`, or any component that
    exports the `greenlight:approval/approver` world), ready to load bundles."""

    def __init__(self, wasm_path: Union[str, os.PathLike], limits: Limits = Limits(),
                 cache_dir: Union[str, os.PathLike, None, object] = DEFAULT_CACHE):
        """Compiles the component at `wasm_path` (seconds for
        `greenlight.wasm`), or maps the compiled artifact cached in
        `cache_dir` (default: `default_cache_dir()`; `None`: no cache).
        Raises `EngineError` when the component cannot be used."""
        cache = default_cache_dir() if cache_dir is DEFAULT_CACHE else cache_dir
        cache = None if cache is None else os.fspath(cache)  # type: ignore[arg-type]
        self.limits = limits
        self._native_checks = [0]
        config = wasmtime.Config()
        config.epoch_interruption = True
        self._wasm = wasmtime.Engine(config)
        try:
            with open(wasm_path, "rb") as f:
                wasm = f.read()
            #: Hex SHA-256 of the component's bytes: names the module version
            #: as `Policy.policy_hash` names the bundle's.
            self.component_hash = hashlib.sha256(wasm).hexdigest()
            self._component = _compile_cached(self._wasm, wasm, cache)
            self._linker = Linker(self._wasm)
            self._linker.add_wasip2()
            native = limits.native_signatures
            answered = self._native_checks

            def verify_signature(_store: Any, alg: str, key: Any, message: bytes, signature: bytes) -> str:
                if not native:
                    return _crypto.NOT_AVAILABLE
                try:
                    answer = _crypto.verify(alg, key, message, signature)
                except Exception:  # noqa: BLE001 - never a trap: the module checks it
                    return _crypto.NOT_AVAILABLE
                if answer != _crypto.NOT_AVAILABLE:
                    answered[0] += 1
                return answer

            with self._linker.root() as root:
                with root.add_instance(_CRYPTO_IFACE) as crypto:
                    _calls.add_func(crypto, "verify-signature", verify_signature)
        except (OSError, wasmtime.WasmtimeError) as e:
            raise EngineError(f"the component cannot be used: {e}") from None
        #: Each export's types, read once (see `_calls`).
        self._signatures = _calls.Signatures()
        self._exports = {}
        engine_iface = self._component.get_export_index(_ENGINE_IFACE)
        jose_iface = self._component.get_export_index(_JOSE_IFACE)
        gateway_iface = self._component.get_export_index(_GATEWAY_IFACE)
        if engine_iface is None or jose_iface is None or gateway_iface is None:
            raise EngineError(f"the component does not export {_ENGINE_IFACE}, {_JOSE_IFACE} and {_GATEWAY_IFACE}")
        names = {"load": "[static]policy.load", **{m: f"[method]policy.{m}" for m in _METHODS}}
        for short, full in names.items():
            self._exports[short] = self._component.get_export_index(full, engine_iface)
        self._exports["verify-compact"] = self._component.get_export_index("verify-compact", jose_iface)
        self._exports["respond"] = self._component.get_export_index("respond", gateway_iface)
        missing = [k for k, v in self._exports.items() if v is None]
        if missing:
            raise EngineError(f"the component lacks {', '.join(missing)}")
        _Ticker(self._wasm, limits.tick, self)

    @property
    def native_signature_checks(self) -> int:
        """How many signature checks `cryptography` answered for the module
        (the WIT `crypto` import): zero when `Limits.native_signatures` is
        off."""
        return self._native_checks[0]

    def _ticks(self, budget: float) -> int:
        return max(1, math.ceil(budget / self.limits.tick))

    def load_bundle(self, files: Sequence[tuple[str, str]]) -> "Policy":
        """Validates and loads a bundle given as `(file name, contents)`
        pairs. Raises `BundleError` listing every problem, or `EngineError`
        when the module fails."""
        return Policy(self, [(_text(n, "a file name"), _text(c, f"file `{n}`")) for n, c in files])

    def load_bundle_dir(self, path: Union[str, os.PathLike]) -> "Policy":
        """Reads a bundle folder (see `read_bundle_dir`) and loads it."""
        return self.load_bundle(read_bundle_dir(path))

    def verify_compact(self, token: str, jwk: str) -> bytes:
        """Verifies a JWS compact serialisation against one JWK (a JSON
        object text) in the module (WIT `jose.verify-compact`) and returns
        the payload. Raises `Denied` with a `token-*` code when it does not
        verify, or an `engine-*` code when the module fails."""
        token, jwk = _text(token, "the token"), _text(jwk, "the key")
        try:
            slot = _Slot(self, self.limits.load_budget)
            answer = slot.call("verify-compact", self.limits.call_budget, token, jwk)
        except _Failure as f:
            raise Denied(f.code, f.message) from None
        if isinstance(answer, Variant):  # should wasmtime-py ever tag this result
            answer = answer.payload
        if isinstance(answer, (bytes, bytearray)):
            return bytes(answer)
        code, message = getattr(answer, "code", None), getattr(answer, "message", None)
        if code not in DENIAL_CODES or not isinstance(message, str):
            raise Denied("engine-invalid-output", "the policy module returned a malformed jws-error")
        raise Denied(code, message)


class Policy:
    """A bundle loaded in the policy module, answering requests. Safe to
    share between threads: each call takes an instance from the pool."""

    def __init__(self, engine: Engine, files: list[tuple[str, str]]):
        """Use `Engine.load_bundle`."""
        self._engine = engine
        self._files = files
        #: Key changes since loading, the last per issuer, replayed into every
        #: new instance: `(issuer, "set-keys", jwks)` or
        #: `(issuer, "withdraw-keys", reason)`.
        self._keys: list[tuple[str, str, str]] = []
        #: Bumped by every key change (`set_keys`, `withdraw_keys`): an
        #: instance from an older generation (busy while the keys changed)
        #: is dropped, not pooled again.
        self._generation = 0
        self._pool: list[_Slot] = []
        #: The counters of instances no longer in use (see `stats`).
        self._retired = EngineStats(0, 0)
        self._lock = threading.Lock()
        slot = self._new_slot()
        try:
            raw = slot.call("describe", engine.limits.call_budget, slot.policy)
            self._info = _bundle_info(raw)
        except _Failure as f:
            raise EngineError(f.message) from None
        except (InvalidOutput, AttributeError, TypeError, ValueError) as e:
            raise EngineError(f"the policy module described the bundle wrongly: {e}") from None
        self._hash = self._info.policy_hash
        self._put_back(slot)

    @property
    def policy_hash(self) -> str:
        """The bundle's hex SHA-256, as reported in every decision."""
        return self._hash

    @property
    def info(self) -> BundleInfo:
        """What the module said about the bundle when it was loaded (the WIT
        `describe`): its hash, issuers (with the `KeySource` of their keys:
        the bundle, or a URL the host fetches them from), action-token and
        approval settings, claim names, and how hosts fetch keys
        (`key_fetch`). A host reads these instead of parsing
        `greenlight.toml`."""
        return self._info

    def _new_slot(self) -> _Slot:
        limits = self._engine.limits
        try:
            slot = _Slot(self._engine, limits.load_budget)
            loaded = slot.call("load", limits.load_budget, self._files)
            if not isinstance(loaded, ResourceAny):
                raise _load_error(loaded)
            slot.policy = loaded
            with self._lock:
                keys, slot.generation = list(self._keys), self._generation
            for issuer, method, arg in keys:
                refused = slot.call(method, limits.load_budget, slot.policy, issuer, arg)
                if refused is not None:
                    raise _load_error(refused)
        except _Failure as f:
            raise EngineError(f.message) from None
        return slot

    def _take(self) -> _Slot:
        with self._lock:
            if self._pool:
                return self._pool.pop()
        return self._new_slot()

    def _put_back(self, slot: _Slot) -> None:
        with self._lock:
            if slot.generation == self._generation and len(self._pool) < self._engine.limits.pool_size:
                self._pool.append(slot)
                return
        self._retire(slot)

    def _slot_stats(self, slot: _Slot) -> EngineStats:
        """One instance's counters; zero when it cannot answer."""
        try:
            raw = slot.call("stats", self._engine.limits.call_budget, slot.policy)
            return EngineStats(_u64(getattr(raw, "token-checks"), "token checks"),
                               _u64(getattr(raw, "signature-checks"), "signature checks"))
        except (_Failure, InvalidOutput, AttributeError):
            return EngineStats(0, 0)

    def _retire(self, slot: _Slot) -> None:
        """Keeps the counters of an instance about to be dropped."""
        stats = self._slot_stats(slot)
        with self._lock:
            self._retired += stats

    def set_keys(self, issuer: str, jwks: str) -> None:
        """Replaces one issuer's key set (`greenlight` for action tokens)
        with a JWKS document, in every instance present and future; it ends
        a `withdraw_keys`. Raises `BundleError` when the set is refused (a
        set with a private key member, `d`, `p`, `q`, `dp`, `dq`, `qi` or
        `oth`, is); the old keys keep serving."""
        self._change_keys(_text(issuer, "the issuer"), "set-keys", _text(jwks, "the key set"))

    def withdraw_keys(self, issuer: str, reason: str) -> None:
        """Removes one issuer's keys (named as for `set_keys`) in every
        instance present and future: its tokens are then denied with
        `token-unknown-key`, whose message ends with `": " + reason` (say,
        the last fetch error, or that the keys grew too stale), until
        `set_keys` gives it keys again. Raises `BundleError` for an issuer
        the bundle does not have; nothing changes then."""
        self._change_keys(_text(issuer, "the issuer"), "withdraw-keys", _text(reason, "the reason"))

    def _change_keys(self, issuer: str, method: str, arg: str) -> None:
        """Calls `method` (`set-keys` or `withdraw-keys`) for `issuer` with
        `arg` in every instance present and future, as the Rust host does
        (`host/src/pool.rs`): validated on a fresh instance first, then
        replayed into every new one; idle instances are dropped, and one
        busy meanwhile is dropped when it comes back."""
        slot = self._new_slot()  # validate first: a refused change changes nothing
        try:
            refused = slot.call(method, self._engine.limits.call_budget, slot.policy, issuer, arg)
        except _Failure as f:
            raise EngineError(f.message) from None
        if refused is not None:
            raise _load_error(refused)
        with self._lock:
            self._keys = [k for k in self._keys if k[0] != issuer] + [(issuer, method, arg)]
            self._generation += 1
            # The validated instance holds exactly the changes replayed into
            # it plus this one: current only if no other change came between.
            current = slot.generation + 1 == self._generation
            slot.generation = self._generation
            old, self._pool = self._pool, [slot] if current else []
        # Instances with the old keys are dropped; their counts are kept.
        for s in old if current else [*old, slot]:
            self._retire(s)

    def stats(self) -> EngineStats:
        """How many tokens this bundle's instances checked, and how many of
        those took a signature verification (the WIT `stats`): the idle
        instances' counts plus those of instances dropped since (an instance
        busy right now is counted when it comes back; one that failed is
        lost with its counts), as the Rust host counts."""
        # Idle instances are asked under the lock, so no call takes one
        # meanwhile (a stats call takes microseconds).
        with self._lock:
            total = self._retired
            for slot in self._pool:
                total += self._slot_stats(slot)
        return total

    def _run(self, call: dict[str, Any], now: int) -> Decision:
        """Decides `call` (one `http`, `access` or `vouched` request, as the
        vectors write it) at `now` through the WIT `decide-json`: the
        request and the decision cross as one JSON string each, which
        wasmtime-py converts far faster than the typed records
        (BENCHMARKS.md, "The Python and Node hosts, per call"). Every
        failure is a deny."""
        _check_now(now)
        text = json.dumps(call, ensure_ascii=False, separators=(",", ":"))
        try:
            slot = self._take()
        except (EngineError, BundleError) as e:
            return Decision.deny("engine-unavailable", f"no policy instance is available: {e}", self._hash)
        try:
            raw = slot.call("decide-json", self._engine.limits.call_budget, slot.policy, text, now)
        except _Failure as f:
            # A trapped instance cannot be entered again: drop it.
            return Decision.deny(f.code, f.message, self._hash)
        self._put_back(slot)
        try:
            return _read_decision(raw)
        except (InvalidOutput, TypeError, ValueError, RecursionError) as e:
            message = f"the policy module returned a malformed decision: {e}"
            return Decision.deny("engine-invalid-output", _cut_utf8(message, MAX_GUEST_STRING), self._hash)

    def _ask(self, name: str, *args: Any, policy: bool = True, budget: Optional[float] = None) -> Any:
        """Calls `name` (a method of the loaded policy unless `policy` is
        false) on a pooled instance, within `budget` (default: a call's);
        raises `_Failure`, the instance then dropped."""
        try:
            slot = self._take()
        except (EngineError, BundleError) as e:
            raise _Failure("engine-unavailable", f"no policy instance is available: {e}") from None
        resource = (slot.policy,) if policy else ()
        answer = slot.call(name, budget if budget is not None else self._engine.limits.call_budget,
                           *resource, *args)
        self._put_back(slot)
        return answer

    def evaluate_http(self, request: Union[HttpRequest, dict[str, Any]], now: int) -> Decision:
        """Decides an HTTP request at `now` (Unix seconds): verifies its
        bearer token, matches a route, evaluates the policies. Never raises
        for what the module does: every failure is a deny."""
        r = request if isinstance(request, HttpRequest) else HttpRequest.from_dict(request)
        headers = [(_text(k, "a header name"), _text(v, "a header value")) for k, v in r.headers]
        return self._run({"http": {
            "method": _text(r.method, "the method"), "path": _text(r.path, "the path"),
            "query": _text(r.query, "the query"), "headers": headers,
            "params": _opt_text(r.params, "params"),
            "entities": _entities(r.entities),
        }}, now)

    def evaluate(self, request: Union[AccessRequest, dict[str, Any]], now: int) -> Decision:
        """Decides an AuthZEN-shaped request at `now` (Unix seconds), with
        the rules of `evaluate_http` minus route matching. Never raises for
        what the module does."""
        return self._run({"access": _access_request(request)}, now)

    def evaluate_as(self, subject: Union[Principal, dict[str, Any]],
                    request: Union[AccessRequest, dict[str, Any]], now: int) -> Decision:
        """Decides an AuthZEN-shaped request at `now` (Unix seconds) for a
        subject this host vouches for instead of a token (the WIT
        `evaluate-as`): `subject` stands where a verified token's principal
        would (its `entity_type` is replaced by the bundle's), and
        `request.token` must be empty (else a deny `request-invalid`).

        Only for subjects forwarded by a policy enforcement point this host
        has authenticated and trusts: the module cannot tell a vouched
        subject from a claimed one, so never pass a subject a client merely
        claims. Never raises for what the module does."""
        s = subject if isinstance(subject, Principal) else Principal.from_dict(subject)
        return self._run({"vouched": {"subject": _principal_json(s), "access": _access_request(request)}}, now)

    def authenticate(self, token: str, now: int) -> Credential:
        """Verifies an access token of one of the bundle's issuers at `now`
        (Unix seconds), with every rule `evaluate_http` applies to tokens,
        and returns a `Credential`: who it names (`principal`, with only the
        groups its issuer is authoritative for), when it expires
        (`expires_at`), when the person signed in (`auth_time`, `None` when
        the token does not say) and whether it is meant for approving
        (`approver`). Action tokens are refused (`action-token-invalid`).
        Raises `Denied` with the denial's code (an `engine-*` code when the
        module fails; `engine-invalid-output` for a malformed credential,
        such as one without a subject or issuer, as the Rust host)."""
        _check_now(now)
        return _checked_credential(self._result("authenticate", _text(token, "the token"), now))

    def authenticate_id_token(self, token: str, client_id: str, nonce: str, now: int) -> Credential:
        """Verifies an OpenID Connect ID token of one of the bundle's issuers
        at `now` (Unix seconds) for the relying party `client_id` that sent
        `nonce` with its authentication request (OpenID Connect Core 1.0
        §3.1.3.7; the WIT `authenticate-id-token`): the issuer's algorithms
        and keys, an audience naming `client_id` (and `azp` naming it when
        there are several audiences, or whenever present), `exp` and `iat`
        present and current with the issuer's leeway, `nonce` equal. An
        access token (`typ` `at+jwt`) is refused (`token-wrong-type`); an
        issuer's `require_typ` is for access tokens only. Returns a
        `Credential` as `authenticate` does, its principal mapped from the
        claims as for access tokens with `client_id` as its client, and
        `approver` true (a sign-in is the person's own act). An empty
        `client_id` or `nonce` is refused (`request-invalid`). Raises
        `Denied` as `authenticate` does. For hosts that sign people in to a
        portal."""
        _check_now(now)
        answer = self._result("authenticate-id-token", _text(token, "the token"),
                              _text(client_id, "the client id"), _text(nonce, "the nonce"), now)
        return _checked_credential(answer)

    def inspect(self, token: str, now: int) -> ActionToken:
        """Verifies a Greenlight action token at `now` (Unix seconds) with
        exactly the rules of enforcement (signature, issuer, audience,
        `typ`, time claims with the leeway) and returns its claims (the WIT
        `inspect`), e.g. for RFC 7662 introspection. An access token is
        refused (`action-token-invalid`). What only the host knows (a
        consumed token, a revoked approval) is for the caller to add.
        Raises `Denied` with the denial's code (an `engine-*` code when the
        module fails)."""
        _check_now(now)
        answer = self._result("inspect", _text(token, "the token"), now)
        try:
            return _action_token(answer)
        except (InvalidOutput, AttributeError, TypeError, ValueError) as e:
            raise Denied("engine-invalid-output",
                         f"the policy module returned a malformed action token: {e}") from None

    def _result(self, name: str, *args: Any) -> Any:
        """The `ok` of a `result<_, denial>` method, or raises `Denied`."""
        try:
            answer = self._ask(name, *args)
        except _Failure as f:
            raise Denied(f.code, f.message) from None
        if not isinstance(answer, Variant) or answer.tag not in ("ok", "err"):
            raise Denied("engine-invalid-output", f"the policy module returned a malformed result: {answer!r:.100}")
        if answer.tag == "ok":
            return answer.payload
        code, message = getattr(answer.payload, "code", None), getattr(answer.payload, "message", None)
        if code not in DENIAL_CODES or not isinstance(message, str):
            raise Denied("engine-invalid-output", "the policy module returned a malformed denial")
        # The issuer whose keys to fetch again is kept only when it names one
        # of the bundle's issuers (as the Rust host, `denial_with_issuer`).
        issuer = getattr(answer.payload, "issuer", None)
        if not any(i.issuer == issuer for i in self._info.issuers):
            issuer = None
        raise Denied(code, message[:MAX_GUEST_STRING], issuer)

    @property
    def component_hash(self) -> str:
        """The hash of the component deciding (`Engine.component_hash`)."""
        return self._engine.component_hash

    def run_tests(self, files: Sequence[tuple[str, str]], now: int) -> tuple[TestOutcome, ...]:
        """Runs policy tests against this bundle (the WIT `run-tests`):
        `files` are the `(file name, contents)` of a bundle's `tests/*.toml`
        (`read_tests_dir`); a file without `now` decides at `now`. Each
        outcome's `failure` is `None` when it passed. Raises `ValueError`
        when a file is not a test file, `EngineError` when the module fails
        or answers wrongly. Tests run within the load budget."""
        _check_now(now)
        texts = [(_text(n, "a file name"), _text(c, f"file `{n}`")) for n, c in files]
        try:
            answer = self._ask("run-tests", texts, now, budget=self._engine.limits.load_budget)
        except _Failure as f:
            raise EngineError(f.message) from None
        # wasmtime-py gives a `result<list<...>, string>` as its payload
        # alone (the two cases are told apart by type), or tagged.
        if isinstance(answer, Variant):
            if answer.tag not in ("ok", "err"):
                raise EngineError("the policy module answered the tests wrongly: not a result")
            tag, answer = answer.tag, answer.payload
        else:
            tag = "err" if isinstance(answer, str) else "ok"
        if tag == "err":
            if not isinstance(answer, str):
                raise EngineError("the policy module answered the tests wrongly: not a message")
            raise ValueError(answer[:MAX_GUEST_STRING])
        outcomes = answer
        if not isinstance(outcomes, list) or len(outcomes) > MAX_TESTS:
            n = len(outcomes) if isinstance(outcomes, list) else "malformed"
            raise EngineError(f"the policy module answered the tests wrongly: {n} test outcomes")
        try:
            return tuple(TestOutcome(_string(o.name, "a test's name"),
                                     None if o.failure is None else _string(o.failure, "a test's failure"))
                         for o in outcomes)
        except (InvalidOutput, AttributeError, TypeError, ValueError) as e:
            raise EngineError(f"the policy module answered the tests wrongly: {e}") from None

    def respond(self, decision: Decision, service_url: str) -> Response:
        """The HTTP answer a gateway gives for `decision` (docs/gateway.md),
        with the approval service at `service_url` (its base URL, without a
        trailing slash) named in challenges: the component's
        `gateway.respond`, the one mapping every host calls. Returns
        `Response(status, headers, body)`: `(0, [], None)` for an allow,
        which the upstream answers.

        Fails closed: an answer that does not fit the decision (a
        pass-through for anything but an allow, a body that is not a JSON
        object, a malformed header) is a `503` `engine-invalid-output`; a
        module that traps or overruns is a `503` with that failure's code.
        Never raises for what the module does; `TypeError` for a
        `service_url` that is not a str."""
        url = _text(service_url, "the service URL")
        try:
            wit = _decision_out(validated(decision))
        except (InvalidOutput, AttributeError, TypeError, ValueError) as e:
            return unavailable("engine-invalid-output", f"the decision cannot be answered: {e}")
        try:
            raw = self._ask("respond", wit, url, policy=False)
        except _Failure as f:
            return unavailable(f.code, f.message)
        try:
            return checked_answer(raw, decision)
        except (InvalidOutput, AttributeError, TypeError, ValueError) as e:
            log.warning("the policy module answered a decision wrongly: %s", e)
            return unavailable("engine-invalid-output", f"the policy module answered wrongly: {e}")


#: The most text kept of a denial message from the module (as the Rust host).
MAX_GUEST_STRING = 64 * 1024


def _access_request(request: Union[AccessRequest, dict[str, Any]]) -> dict[str, Any]:
    """The JSON of `request` for `decide-json`, its strings checked."""
    r = request if isinstance(request, AccessRequest) else AccessRequest.from_dict(request)
    return {
        "token": _text(r.token, "the token"), "action": _text(r.action, "the action"),
        "resource_type": _text(r.resource_type, "the resource type"),
        "resource_id": _text(r.resource_id, "the resource id"),
        "resource_properties": _opt_text(r.resource_properties, "resource properties"),
        "context": _opt_text(r.context, "the context"),
        "entities": _entities(r.entities),
    }


def _principal_json(p: Principal) -> dict[str, Any]:
    """The JSON of a vouched subject for `decide-json`, its strings checked
    as for the WIT `principal` (names are unique: `Principal` refuses a
    name given twice)."""
    _principal_out(p)
    return p.to_dict()


def _entities(entities: Optional[Union[str, list[Any]]]) -> Optional[str]:
    """A request's host entities as the WIT's JSON text (a list is serialised)."""
    if isinstance(entities, list):
        return json.dumps(entities)
    return _opt_text(entities, "the entities")


def _checked_credential(answer: Any) -> Credential:
    """The `Credential` of a module's answer, or raises `Denied`
    (`engine-invalid-output`) for a malformed one, as the Rust host."""
    try:
        return _credential(answer)
    except (InvalidOutput, AttributeError, TypeError, ValueError) as e:
        raise Denied("engine-invalid-output", f"the policy module returned a malformed credential: {e}") from None


def _check_now(now: int) -> None:
    if isinstance(now, bool) or not isinstance(now, int) or not 0 <= now < 2**64:
        raise TypeError("`now` must be Unix seconds as an int")


def _text(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise TypeError(f"{what} must be a str")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode") from None
    return v


def _opt_text(v: Any, what: str) -> Optional[str]:
    return None if v is None else _text(v, what)


def _text_list(v: Any, what: str) -> tuple[str, ...]:
    """A list or tuple of str (a lone str is refused, not split into characters)."""
    return tuple(_text(s, f"an entry of {what}") for s in _text_tuple(v, what))


def _strings(v: Any, what: str) -> tuple[str, ...]:
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        raise InvalidOutput(f"{what} is not a list of strings")
    _check_list(v, what)
    for s in v:
        _check_str(s, what)
    return tuple(v)


def _string(v: Any, what: str) -> str:
    if not isinstance(v, str):
        raise InvalidOutput(f"{what} is not a string")
    _check_str(v, what)
    return v


def _u64(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
        raise InvalidOutput(f"{what} is not a u64")
    return v


def _u32(v: Any, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32:
        raise InvalidOutput(f"{what} is not a u32")
    return v


def _no_constant(name: str) -> Any:
    # serde_json, like RFC 8259, has no NaN or Infinity.
    raise ValueError(f"`{name}` is not JSON")


def _finite(text: str) -> float:
    """A JSON number with a fraction or exponent, refused where serde_json
    refuses it: beyond the range of a double."""
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"`{text}` is out of range")
    return value


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """One object of a module's answer: serde refuses a member named twice,
    where `json` would keep the last one."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise ValueError(f"the member `{name}` is named twice in one object")
            seen.add(name)
    return obj


#: The longest decision text read from a module (as the Rust and Node
#: hosts): far above any decision the core writes, far below what would
#: strain the host to parse.
MAX_DECISION_JSON = 1 << 20


def _cut_utf8(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes at a character boundary,
    so a reason quoting the module stays within what every host accepts."""
    if len(text) * 4 <= limit:
        return text
    return text.encode("utf-8", "surrogatepass")[:limit].decode("utf-8", "ignore")


def _read_decision(raw: Any) -> Decision:
    """A module's `decide-json` answer, read as the Rust host reads it: at
    most MAX_DECISION_JSON bytes, JSON as serde_json takes it (no NaN or Infinity, no number beyond a
    double, no member named twice, no lone surrogate), then held to every
    check of `Decision.from_dict`. The module is untrusted: anything else
    raises."""
    if not isinstance(raw, str):
        raise InvalidOutput("the decision is not a string")
    if len(raw) > MAX_DECISION_JSON or (len(raw) * 4 > MAX_DECISION_JSON
                                        and len(raw.encode("utf-8", "surrogatepass")) > MAX_DECISION_JSON):
        raise InvalidOutput(f"the decision is longer than {MAX_DECISION_JSON} bytes")
    data = json.loads(raw, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique)
    if "\\u" in raw:
        # Only an escape can give a string a lone surrogate, which UTF-8
        # cannot hold: refused here, not when the decision is written out.
        json.dumps(data, ensure_ascii=False).encode()
    return Decision.from_dict(data)


def _json_text(text: Any, what: str) -> Any:
    """A JSON text from the module, parsed (as serde_json reads it)."""
    _string(text, what)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        raise InvalidOutput(f"{what} is not JSON: {e}") from None


def _load_error(e: Any) -> Exception:
    """The WIT `load-error` (lifted by wasmtime-py as a list of problem
    records or a string) as a `BundleError`."""
    if isinstance(e, Variant):
        e = e.payload
    if isinstance(e, str):
        return BundleError(other=e[:65536])
    if isinstance(e, list):
        problems = []
        for p in e[:1024]:
            kind, file, line, column, message = (getattr(p, k, None) for k in
                                                 ("kind", "file", "line", "column", "message"))
            if not (isinstance(kind, str) and isinstance(file, str) and isinstance(message, str)
                    and (line is None or isinstance(line, int)) and (column is None or isinstance(column, int))):
                return EngineError("the policy module returned a malformed load error")
            problems.append(Problem(kind, file[:65536], line, column, message[:65536]))
        return BundleError(problems)
    return EngineError("the policy module returned a malformed load error")


# ---- from the module's WIT values (lifted by wasmtime-py) ---------------------


def _principal(p: Any) -> Principal:
    """A WIT `principal` from the module, checked."""
    lists = {k: _strings(getattr(p, k), k) for k in ("scopes", "groups", "roles")}
    one = {k: _string(getattr(p, k), f"the {k.replace('-', ' ')}")
           for k in ("entity-type", "subject", "client-id", "tenant", "issuer")}
    return Principal(one["entity-type"], one["subject"], one["client-id"], lists["scopes"],
                     lists["groups"], lists["roles"], one["tenant"], one["issuer"], _attributes(p.attributes))


def _attributes(raw: Any) -> tuple[Attribute, ...]:
    """A WIT `list<attribute>` from the module, checked as the Rust host
    does (`host/src/convert.rs`): at most `MAX_LIST`, sizes, each name once
    (else "attribute `NAME` is given twice"). wasmtime-py lifts an
    `attribute-value` as a `Variant` (its `long` and `datetime` are both
    ints)."""
    if not isinstance(raw, list):
        raise InvalidOutput("the attributes are not a list")
    _check_list(raw, "attributes")
    out = []
    for a in raw:
        v = a.value
        if not isinstance(v, Variant):
            raise InvalidOutput("an attribute value is not a variant")
        payload = v.payload
        if v.tag == "string":
            payload = _string(payload, "an attribute")
        elif v.tag == "set":
            payload = _strings(payload, "an attribute")
        elif v.tag not in ("long", "bool", "datetime"):
            raise InvalidOutput(f"unknown attribute kind {v.tag!r}")
        try:
            out.append(Attribute(_string(a.name, "an attribute name"), AttributeValue(v.tag, payload)))
        except ValueError as e:
            raise InvalidOutput(f"attribute `{a.name}`: {e}") from None
    names = [a.name for a in out]
    for name in names:
        if names.count(name) > 1:
            raise InvalidOutput(f"attribute `{name}` is given twice")
    return tuple(out)


def _credential(c: Any) -> Credential:
    """A WIT `credential` from the module, checked as the Rust host does
    (`host/src/convert.rs`): its principal names a subject and an issuer."""
    principal = _principal(c.principal)
    if not principal.subject or not principal.issuer:
        raise InvalidOutput("a credential without a subject or issuer")
    auth_time, approver = getattr(c, "auth-time"), c.approver
    if not isinstance(approver, bool):
        raise InvalidOutput("`approver` is not a bool")
    return Credential(principal, _u64(getattr(c, "expires-at"), "`exp`"),
                      None if auth_time is None else _u64(auth_time, "`auth_time`"), approver)


def _action_token(t: Any) -> ActionToken:
    """A WIT `action-token` from the module, checked as the Rust host does."""
    token_id = _string(getattr(t, "token-id"), "the token id")
    if not token_id:
        raise InvalidOutput("an action token without an id")
    issued_at, approval_id = getattr(t, "issued-at"), getattr(t, "approval-id")
    if t.grant not in GRANT_MODES:
        raise InvalidOutput(f"unknown grant mode {t.grant!r}")
    return ActionToken(
        principal=_principal(t.principal),
        audience=_string(t.audience, "the audience"),
        token_id=token_id,
        issued_at=None if issued_at is None else _u64(issued_at, "`iat`"),
        expires_at=_u64(getattr(t, "expires-at"), "`exp`"),
        digest=_string(t.digest, "the action digest"),
        grant=t.grant,
        approval_id=None if approval_id is None else _string(approval_id, "the approval id"),
        approvers=_strings(t.approvers, "approvers"),
        authorization_details=_json_text(getattr(t, "authorization-details"), "authorization_details"),
    )


def _bundle_info(b: Any) -> BundleInfo:
    """A WIT `bundle-info` from the module, checked."""
    c, a, at = b.claims, b.approvals, getattr(b, "action-tokens")
    issuers = list(b.issuers)
    _check_list(issuers, "issuers")
    return BundleInfo(
        policy_hash=_string(getattr(b, "policy-hash"), "the policy hash"),
        claims=ClaimNames(_string(getattr(c, "entity-type"), "the entity type"),
                          _string(c.scope, "the scope claim"), _string(c.groups, "the groups claim"),
                          _string(c.roles, "the roles claim"), _string(c.tenant, "the tenant claim")),
        issuers=tuple(IssuerInfo(_string(i.issuer, "an issuer"), _string(i.audience, "an audience"),
                                 _key_source(i.keys), _strings(i.algorithms, "algorithms"),
                                 None if getattr(i, "required-typ") is None
                                 else _string(getattr(i, "required-typ"), "a required typ"))
                      for i in issuers),
        action_tokens=None if at is None else ActionTokenSettings(
            _string(at.issuer, "the action-token issuer"), _string(at.audience, "the action-token audience"),
            _u64(getattr(at, "ttl-seconds"), "the action-token ttl"),
            _u64(getattr(at, "leeway-seconds"), "the action-token leeway")),
        approvals=ApprovalSettings(_u64(getattr(a, "default-ttl-seconds"), "the default ttl"),
                                   _u64(getattr(a, "poll-interval-seconds"), "the poll interval"),
                                   _u64(getattr(a, "confirm-max-age-seconds"), "the confirm max age")),
        development=b.development is True,
        key_fetch=_key_fetch(getattr(b, "key-fetch")),
    )


def _key_source(k: Any) -> KeySource:
    """A WIT `key-source` from the module. wasmtime-py lifts it untagged
    (its cases' Python types differ): `None` for `bundle`, a str for
    `jwks-uri`, a list for `discovery`; a `Variant` is read too."""
    if isinstance(k, Variant):
        tag, payload = k.tag, k.payload
        if tag == "bundle" and payload is None:
            return KeySource.bundle()
        if tag == "jwks-uri":
            return KeySource.jwks_uri(_string(payload, "a jwks_uri"))
        if tag == "discovery":
            return KeySource.discovery(_strings(payload, "metadata URLs"))
        raise InvalidOutput(f"unknown key source {tag!r}")
    if k is None:
        return KeySource.bundle()
    if isinstance(k, str):
        return KeySource.jwks_uri(_string(k, "a jwks_uri"))
    if isinstance(k, list):
        return KeySource.discovery(_strings(k, "metadata URLs"))
    raise InvalidOutput(f"a key source is not a key-source: {k!r:.100}")


def _key_fetch(k: Any) -> KeyFetchSettings:
    """A WIT `key-fetch-settings` from the module, checked."""
    allow = getattr(k, "allow-http-loopback")
    if not isinstance(allow, bool):
        raise InvalidOutput("`allow_http_loopback` is not a bool")
    return KeyFetchSettings(
        connect_timeout_ms=_u32(getattr(k, "connect-timeout-ms"), "`connect_timeout_ms`"),
        timeout_ms=_u32(getattr(k, "timeout-ms"), "`timeout_ms`"),
        max_bytes=_u32(getattr(k, "max-bytes"), "`max_bytes`"),
        min_age_seconds=_u64(getattr(k, "min-age-seconds"), "`min_age_seconds`"),
        max_age_seconds=_u64(getattr(k, "max-age-seconds"), "`max_age_seconds`"),
        max_stale_seconds=_u64(getattr(k, "max-stale-seconds"), "`max_stale_seconds`"),
        unknown_kid_interval_seconds=_u64(getattr(k, "unknown-kid-interval-seconds"),
                                          "`unknown_kid_interval_seconds`"),
        allow_http_loopback=allow,
    )


# ---- to the module's WIT values (lowered by wasmtime-py) ----------------------


def _record(**fields: Any) -> Record:
    """A WIT record for wasmtime-py: its (dashed) field names as
    attributes. A `Record`, since that is what an `option<record>` accepts."""
    r = Record()
    for name, value in fields.items():
        setattr(r, name.replace("_", "-"), value)
    return r


def _principal_out(p: Principal) -> Record:
    return _record(entity_type=_text(p.entity_type, "the entity type"),
                   subject=_text(p.subject, "the subject"),
                   client_id=_text(p.client_id, "the client id"),
                   scopes=list(_text_list(p.scopes, "scopes")),
                   groups=list(_text_list(p.groups, "groups")),
                   roles=list(_text_list(p.roles, "roles")),
                   tenant=_text(p.tenant, "the tenant"),
                   issuer=_text(p.issuer, "the issuer"),
                   attributes=[_attribute_out(a) for a in p.attributes])


def _attribute_out(a: Attribute) -> Record:
    """A WIT `attribute`: its value a `Variant` (wasmtime-py lowers an
    `attribute-value` only tagged)."""
    v = a.value
    payload = list(_text_list(v.value, "a set attribute")) if v.kind == "set" else v.value
    if v.kind == "string":
        payload = _text(payload, "a string attribute")
    return _record(name=_text(a.name, "an attribute name"), value=Variant(v.kind, payload))


def _action_out(a: Action) -> Record:
    # `params` as plain JSON text: the guest parses it with serde_json and
    # needs no canonical form.
    return _record(name=a.name, resource_type=a.resource_type, resource_id=a.resource_id,
                   params=_json.dumps(a.params), digest=a.digest)


def _decision_out(d: Decision) -> Record:
    """A (validated) decision in its WIT form, to hand to the module's
    `respond`: the exact values a module's decision converts from."""
    v = d.verdict
    if isinstance(v, Allow):
        consume = None if v.consume is None else _record(token_id=v.consume.token_id,
                                                         expires_at=v.consume.expires_at)
        verdict = Variant("allow", _record(principal=_principal_out(v.principal), action=_action_out(v.action),
                                           approval_id=v.approval_id, consume=consume,
                                           forward_headers=[(k, val) for k, val in v.forward_headers]))
    elif isinstance(v, Deny):
        verdict = Variant("deny", _record(code=v.code, message=v.message, issuer=v.issuer))
    elif isinstance(v, StepUpRequired):
        verdict = Variant("step-up-required", _record(acr_values=list(v.acr_values), max_age=v.max_age,
                                                      message=v.message))
    else:
        o = v.obligation
        verdict = Variant("approval-required", _record(
            requester=_principal_out(v.requester),
            action=_action_out(v.action),
            authorization_details=_json.dumps(v.authorization_details),
            obligation=_record(approvers=[Variant(*approver_case(a)) for a in o.approvers], quorum=o.quorum,
                               ttl_seconds=o.ttl_seconds, grant=o.grant, window_seconds=o.window_seconds,
                               reason_required=o.reason_required, message=o.message)))
    return _record(verdict=verdict, reasons=list(d.reasons), policy_hash=d.policy_hash)
