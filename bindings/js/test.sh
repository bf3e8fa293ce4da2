#!/usr/bin/env bash
# The Node side of the conformance suite: installs the pinned packages,
# transpiles greenlight.wasm (and the hostile test component) with jco, runs
# the vectors, fail-closed, middleware, JOSE and key-fetching tests (tests/js;
# the key fetching also against a real OpenID provider, tests/idp/provider.mjs,
# whose pinned packages it installs) and the example gateway's end-to-end
# test against the real approval service.
#
#   bindings/js/test.sh
#
# Environment (all optional):
#   GREENLIGHT_WASM          the component; default: `cargo run -q -p greenlight -- component path`
#   GREENLIGHT_HOSTILE_WASM  the hostile test component; default: greenlight_test_hostile.wasm beside it
#   GREENLIGHT_BIN           the greenlight binary; default: ${CARGO_TARGET_DIR:-target}/debug/greenlight
#                            (built with `cargo build -p greenlight` when missing)
# Needs Node 20 or later and npm; the packages come from the npm registry.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"

if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null; then
  echo "bindings/js/test.sh: Node 20 or later is needed (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

(cd bindings/js && npm ci --no-audit --no-fund)
(cd examples/node-gateway && npm ci --no-audit --no-fund)
# The real OpenID provider tests/js/idp.test.mjs decides against (node-oidc-provider).
(cd tests/idp && npm ci --no-audit --no-fund --silent)

# The default component: GREENLIGHT_WASM, else the workspace's (cargo builds
# it, for the wasm32-wasip2 target scripts/wasm-target adds when missing).
[[ -n "${GREENLIGHT_WASM:-}" ]] || scripts/wasm-target
(cd bindings/js && npm run --silent build)
wasm=$(node -p 'require("./bindings/js/gen/default.json").wasm')
hostile=${GREENLIGHT_HOSTILE_WASM:-$(dirname "$wasm")/greenlight_test_hostile.wasm}
(cd bindings/js && node scripts/transpile.mjs "$hostile")
export GREENLIGHT_HOSTILE_WASM=$hostile

if [[ -z "${GREENLIGHT_BIN:-}" ]]; then
  GREENLIGHT_BIN=${CARGO_TARGET_DIR:-$root/target}/debug/greenlight
  [[ -x "$GREENLIGHT_BIN" ]] || cargo build -q -p greenlight
fi
export GREENLIGHT_BIN

status=0
node --test tests/js/ || status=1
(cd examples/node-gateway && npm test) || status=1
exit $status
