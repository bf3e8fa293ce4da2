#!/usr/bin/env bash
# Tests the Python binding: the conformance vectors, the fail-closed cases,
# the published JOSE vectors, the middleware and the issuers' key fetching
# (tests/python, with a real OpenID provider from tests/idp), and the
# example gateway end to end against `greenlight serve`
# (examples/python-gateway).
#
#   bindings/python/test.sh
#
# Environment (all optional):
#   GREENLIGHT_PY_VENV  the virtualenv to use or create
#                       (default ${CARGO_TARGET_DIR:-target}/py-venv)
#   GREENLIGHT_WASM     greenlight.wasm (default: `greenlight component path`)
#   GREENLIGHT_BIN      the greenlight binary (default ${CARGO_TARGET_DIR:-target}/debug/greenlight)
#   PYTHON              the interpreter that creates the virtualenv (default python3, 3.10 or newer)
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
venv=${GREENLIGHT_PY_VENV:-$target/py-venv}
python=${PYTHON:-python3}

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
  echo "bindings/python/test.sh: $python is missing or older than 3.10 (set PYTHON)" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
# Install only when the pinned requirements, the package metadata or the
# checkout changed (the package is installed editable, from this checkout).
stamp=$venv/.greenlight-installed
want=$( (cat bindings/python/requirements.txt bindings/python/pyproject.toml; echo "$root") | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -r bindings/python/requirements.txt
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e bindings/python
  echo "$want" > "$stamp"
fi

[ -n "${GREENLIGHT_WASM:-}" ] || scripts/wasm-target
GREENLIGHT_WASM=${GREENLIGHT_WASM:-$(cargo run -q -p greenlight -- component path)}
GREENLIGHT_BIN=${GREENLIGHT_BIN:-$target/debug/greenlight}
export GREENLIGHT_WASM GREENLIGHT_BIN
for f in "$GREENLIGHT_WASM" "$GREENLIGHT_BIN"; do
  [ -f "$f" ] || { echo "bindings/python/test.sh: $f does not exist" >&2; exit 1; }
done

# The real OpenID provider of tests/python/test_real_provider.py
# (node-oidc-provider, pinned in tests/idp/package-lock.json): installed
# when missing or when the lock file changed. Without node or npm the test
# fails saying so.
if command -v npm >/dev/null 2>&1 && { [ ! -d tests/idp/node_modules ] ||
    [ tests/idp/package-lock.json -nt tests/idp/node_modules/.package-lock.json ]; }; then
  (cd tests/idp && npm ci --no-audit --no-fund --silent)
fi

exec "$venv/bin/python" -m pytest -p no:cacheprovider --import-mode=importlib -q \
  tests/python examples/python-gateway "$@"
