#!/usr/bin/env bash
# The quick start: mint a development token, then ask Greenlight about two
# refunds on the demo bundle. 500 needs two finance approvals; 50 is allowed.
#
#   examples/demo.sh
#
# Needs only Rust through rustup: the wasm32-wasip2 target is added if it is
# missing. The first run builds the workspace (wasmtime, Cedar, the
# component): on two cores that takes about 15 minutes; later runs take
# seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/wasm-target
echo "== building greenlight (the first build takes a while)" >&2
cargo build -q -p greenlight
gl=${CARGO_TARGET_DIR:-target}/debug/greenlight

token=$("$gl" dev-token --bundle examples/bundle --sub alice --scope "payments:read payments:refund")

echo "== refund of 500: approval required (decided by greenlight.wasm in wasmtime)"
"$gl" check --bundle examples/bundle --request examples/requests/refund-500.json --token "$token"
echo
echo "== refund of 50: allowed"
"$gl" check --bundle examples/bundle --request examples/requests/refund-50.json --token "$token"
