"""Shared fixtures: the repository root, the components, one compiled engine.

The component paths come from the environment (bindings/python/test.sh sets
them): GREENLIGHT_WASM, and GREENLIGHT_HOSTILE_WASM (default: the hostile
test component beside greenlight.wasm). A missing component fails the run.
"""

import os
import sys
from pathlib import Path

import pytest

from greenlight import Engine

ROOT = Path(__file__).resolve().parents[2]

# The tests' helper modules (ed25519_jws) sit beside them; with
# `--import-mode=importlib` pytest does not put this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))


def _component(var: str, default: "Path | None" = None) -> Path:
    value = os.environ.get(var)
    path = Path(value) if value else default
    if path is None or not path.is_file():
        pytest.fail(f"{var} must name a component file (got {path}); run bindings/python/test.sh", pytrace=False)
    return path


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    return _component("GREENLIGHT_WASM")


@pytest.fixture(scope="session")
def hostile_path(wasm_path: Path) -> Path:
    return _component("GREENLIGHT_HOSTILE_WASM", wasm_path.parent / "greenlight_test_hostile.wasm")


@pytest.fixture(scope="session")
def engine(wasm_path: Path) -> Engine:
    return Engine(wasm_path)
