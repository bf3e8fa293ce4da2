"""The compiled-artifact cache (`greenlight.engine._compile_cached`): a
cached artifact is native code the process will run, so it is mapped only
from a private directory of this user, only if it is a private regular file
of this user matching the SHA-256 recorded beside it; anything else is
compiled afresh (and replaced, or not written at all when the directory is
refused). The rules and messages of the Rust host (`host/src/cache.rs`).

Most tests compile the empty component, which takes a millisecond, and call
`_compile_cached_as` with an explicit user, so the ownership rule is checked
without `chown` (the suite may run as root).
"""

import hashlib
import importlib.metadata
import logging
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest
import wasmtime

import greenlight.engine
from greenlight import Engine
from greenlight.engine import _MAPPED, _compile_cached_as, _Compiled, _Untrusted, _verify

#: The smallest component.
EMPTY = bytes(wasmtime.wat2wasm("(component)"))
ME = os.geteuid()


def load(cache: Path, user: int = ME):
    """What loading `EMPTY` with the cache `cache` did, as user `user`."""
    return _compile_cached_as(wasmtime.Engine(), EMPTY, str(cache), user)[1]


def artifact(cache: Path) -> Path:
    """The one artifact in `cache` (not its digest)."""
    (path,) = cache.glob("*.cwasm")
    return path


def digest_of(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    """A cache holding a verified artifact of `EMPTY`."""
    d = tmp_path / "c"
    assert load(d) == _Compiled(True)
    return d


def test_a_new_cache_is_private_and_maps_on_the_next_load(tmp_path):
    d = tmp_path / "cache" / "greenlight"
    with umask(0o022):
        assert load(d) == _Compiled(True)
    path = artifact(d)
    name = path.name
    version = importlib.metadata.version("wasmtime")
    assert name == f"{hashlib.sha256(EMPTY).hexdigest()}-py-wasmtime-{version}-epoch.cwasm"
    assert sorted(os.listdir(d)) == [name, f"{name}.sha256"]
    assert (mode(d), mode(path), mode(digest_of(path))) == (0o700, 0o600, 0o600)
    assert digest_of(path).read_text() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load(d) == _MAPPED


def test_a_new_cache_directory_is_0700_whatever_the_umask(tmp_path):
    d = tmp_path / "c"
    with umask(0o277):  # would leave the directory 0500 without the chmod
        assert load(d) == _Compiled(True)
    assert mode(d) == 0o700
    assert load(d) == _MAPPED


def test_a_tampered_artifact_is_not_mapped_but_recompiled_and_replaced(cache):
    path = artifact(cache)
    good = path.read_bytes()
    with open(path, "r+b") as f:  # in place: the owner and mode stay
        f.seek(-1, os.SEEK_END)
        f.write(bytes([good[-1] ^ 1]))
    assert load(cache) == _Compiled(True, f"{path.name}: its SHA-256 does not match the recorded digest")
    assert path.read_bytes() == good
    assert mode(path) == 0o600
    assert load(cache) == _MAPPED


def test_an_artifact_without_its_digest_is_refused(cache):
    path = artifact(cache)
    digest_of(path).unlink()
    assert load(cache) == _Compiled(True, f"{path.name}: its digest: No such file or directory")
    assert digest_of(path).read_text() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load(cache) == _MAPPED


def test_a_digest_others_may_read_is_refused(cache):
    path = artifact(cache)
    digest_of(path).chmod(0o644)
    assert load(cache) == _Compiled(True, f"{path.name}: its digest: mode 644 lets others in")
    assert mode(digest_of(path)) == 0o600
    assert load(cache) == _MAPPED


def test_an_artifact_that_verifies_but_does_not_load_is_replaced(cache):
    path = artifact(cache)
    path.write_bytes(b"not an artifact")
    digest_of(path).write_text(hashlib.sha256(b"not an artifact").hexdigest())
    outcome = load(cache)
    assert isinstance(outcome, _Compiled) and outcome.stored
    assert outcome.why.splitlines()[0] == f"{path.name}: failed to load code for: {path}"
    assert load(cache) == _MAPPED


def test_another_users_cache_directory_is_refused_and_left_alone(cache):
    before = {p.name: p.read_bytes() for p in cache.iterdir()}
    other = ME + 1
    assert load(cache, other) == _Compiled(False, f"the cache directory {cache}: owned by uid {ME}, not {other}")
    assert {p.name: p.read_bytes() for p in cache.iterdir()} == before


def test_another_users_artifact_is_refused(cache):
    # The directory check comes first in a load, so the artifact's is
    # called directly for a user who does not own it.
    path = artifact(cache)
    with pytest.raises(_Untrusted, match=f"^its digest: owned by uid {ME}, not {ME + 1}$"):
        _verify(str(path), str(digest_of(path)), ME + 1)
    _verify(str(path), str(digest_of(path)), ME)


@pytest.mark.parametrize("bits", [0o777, 0o770, 0o702], ids=lambda bits: f"{bits:o}")
def test_a_cache_directory_others_may_write_is_not_used_at_all(tmp_path, bits):
    d = tmp_path / "c"
    d.mkdir()
    d.chmod(bits)
    assert load(d) == _Compiled(False, f"the cache directory {d}: mode {bits:o} lets others in")
    assert (os.listdir(d), mode(d)) == ([], bits)


def test_a_cache_directory_others_may_only_read_is_made_private_and_used(cache):
    cache.chmod(0o755)
    assert load(cache) == _MAPPED
    assert mode(cache) == 0o700


def test_an_artifact_others_may_read_is_replaced(cache):
    path = artifact(cache)
    path.chmod(0o644)
    assert load(cache) == _Compiled(True, f"{path.name}: mode 644 lets others in")
    assert mode(path) == 0o600
    assert load(cache) == _MAPPED


def test_a_symlinked_artifact_is_not_followed_but_replaced(cache, tmp_path):
    path = artifact(cache)
    elsewhere = tmp_path / "elsewhere.cwasm"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)
    assert load(cache) == _Compiled(True, f"{path.name}: not a regular file (a symlink is not followed)")
    assert stat.S_ISREG(os.lstat(path).st_mode)
    assert mode(path) == 0o600
    assert load(cache) == _MAPPED


def test_a_symlinked_cache_directory_is_refused(cache, tmp_path):
    before = sorted(os.listdir(cache))
    link = tmp_path / "link"
    link.symlink_to(cache)
    assert load(link) == _Compiled(False, f"the cache directory {link}: not a directory (a symlink is not followed)")
    assert sorted(os.listdir(cache)) == before


def test_the_old_digest_is_gone_before_the_artifact_is_replaced(cache, monkeypatch):
    # A reader between the two renames must find no digest, never the old
    # one beside the new artifact.
    path = artifact(cache)
    path.chmod(0o644)
    seen = []
    write = greenlight.engine._write_private

    def spy(target: str, data: bytes) -> None:
        seen.append((os.path.basename(target), digest_of(path).exists()))
        write(target, data)

    monkeypatch.setattr(greenlight.engine, "_write_private", spy)
    assert load(cache) == _Compiled(True, f"{path.name}: mode 644 lets others in")
    assert seen == [(path.name, False), (digest_of(path).name, False)]


def test_a_leftover_temporary_file_is_replaced(cache):
    path = artifact(cache)
    path.unlink()
    leftover = Path(f"{path}.tmp{os.getpid()}-{threading.get_ident()}")
    leftover.write_bytes(b"left by a crashed run")
    leftover.chmod(0o644)
    assert load(cache) == _Compiled(True)
    assert sorted(os.listdir(cache)) == [path.name, digest_of(path).name]
    assert mode(path) == 0o600
    assert load(cache) == _MAPPED


def test_an_engine_uses_the_default_cache_dir_and_says_why_it_does_not_map(hostile_path, tmp_path, monkeypatch,
                                                                           caplog):
    d = tmp_path / "env-cache"
    monkeypatch.setenv("GREENLIGHT_CACHE_DIR", str(d))
    Engine(hostile_path, cache_dir=None)
    assert not d.exists()
    Engine(hostile_path)
    path = artifact(d)
    assert sorted(os.listdir(d)) == [path.name, digest_of(path).name]
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with caplog.at_level(logging.WARNING, logger="greenlight"):
        Engine(hostile_path).load_bundle([])
    assert [m for name, _, m in caplog.record_tuples if name == "greenlight"] == [
        f"not using the cached artifact in {d}: {path.name}: its SHA-256 does not match the recorded digest"]
