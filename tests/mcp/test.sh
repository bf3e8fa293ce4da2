#!/usr/bin/env bash
# The official MCP SDKs' clients against the Greenlight MCP gateway in
# front of an SDK server (examples/mcp): the Python SDK (PyPI `mcp`,
# pinned in requirements.txt) and the TypeScript SDK (npm
# `@modelcontextprotocol/sdk`, pinned in package-lock.json), and the
# example's script as its README runs it.
#
#   tests/mcp/test.sh
#
# GREENLIGHT_BIN: the greenlight binary; default
# ${CARGO_TARGET_DIR:-target}/debug/greenlight (built when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
if [[ -z "${GREENLIGHT_BIN:-}" ]]; then
  GREENLIGHT_BIN=$target/debug/greenlight
  [[ -x "$GREENLIGHT_BIN" ]] || (cd "$root" && scripts/wasm-target && cargo build -q -p greenlight)
fi
export GREENLIGHT_BIN
venv=$target/mcp-venv
"$root/scripts/python-venv" "$venv" "$here/requirements.txt"
(cd "$here" && npm ci --no-audit --no-fund --silent)
export PATH=$venv/bin:$PATH
cd "$root"
pytest -q -p no:cacheprovider tests/mcp "$@"
