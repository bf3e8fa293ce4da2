#!/usr/bin/env bash
# The portal in a real browser: Debian's Chromium driven by Playwright
# (pinned in requirements.txt), a real OpenID provider (node-oidc-provider,
# from tests/idp), and `greenlight serve`.
#
#   tests/portal/test.sh
#
# GREENLIGHT_BIN: the greenlight binary; default
# ${CARGO_TARGET_DIR:-target}/debug/greenlight (built when missing).
# CHROMIUM: the browser (default /usr/bin/chromium; Debian: apt-get install chromium).
# GREENLIGHT_SCREENSHOTS: a folder to save the pages' screenshots in.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
chromium=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x "$chromium" ]]; then
  echo "tests/portal/test.sh: no browser at $chromium; Debian: apt-get install chromium (or set CHROMIUM)" >&2
  exit 1
fi
if [[ -z "${GREENLIGHT_BIN:-}" ]]; then
  GREENLIGHT_BIN=$target/debug/greenlight
  [[ -x "$GREENLIGHT_BIN" ]] || (cd "$root" && scripts/wasm-target && cargo build -q -p greenlight)
fi
export GREENLIGHT_BIN CHROMIUM=$chromium
venv=$target/portal-venv
"$root/scripts/python-venv" "$venv" "$here/requirements.txt"
# The provider's packages, pinned in tests/idp (a no-op when installed).
(cd "$root/tests/idp" && { [[ -d node_modules/oidc-provider ]] || npm ci --no-audit --no-fund --silent; })
cd "$root"
"$venv/bin/pytest" -q -p no:cacheprovider tests/portal "$@"
