#!/usr/bin/env bash
# `greenlight serve` against a real OpenID provider (node-oidc-provider,
# pinned in package-lock.json) on loopback: discovery, every algorithm's
# tokens, a key rotation, the provider's claims as attributes and step-up.
# Installs the pinned packages on first use.
#
#   tests/idp/test.sh
#
# GREENLIGHT_BIN: the greenlight binary; default
# ${CARGO_TARGET_DIR:-target}/debug/greenlight (built when missing).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [[ -z "${GREENLIGHT_BIN:-}" ]]; then
  GREENLIGHT_BIN=${CARGO_TARGET_DIR:-$root/target}/debug/greenlight
  [[ -x "$GREENLIGHT_BIN" ]] || (cd "$root" && scripts/wasm-target && cargo build -q -p greenlight)
fi
export GREENLIGHT_BIN
cd "$here"
npm ci --no-audit --no-fund --silent
node --test --test-concurrency=1 ./*.test.mjs
