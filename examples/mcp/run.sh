#!/usr/bin/env bash
# The MCP example end to end on loopback: the payments MCP server (Python
# SDK), `greenlight serve` in front of it as an MCP gateway, and the
# scripted agent (examples/mcp/client.py). Stops what it started.
#
#   examples/mcp/run.sh
#
# GREENLIGHT_BIN: the greenlight binary (built when unset).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
case $target in /*) ;; *) target=$root/$target ;; esac
if [[ -z "${GREENLIGHT_BIN:-}" ]]; then
  (cd "$root" && scripts/wasm-target && cargo build -q -p greenlight)
  GREENLIGHT_BIN=$target/debug/greenlight
fi
gl=$GREENLIGHT_BIN
venv=$target/mcp-venv
"$root/scripts/python-venv" "$venv" "$root/tests/mcp/requirements.txt"
py=$venv/bin/python
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "nothing listens on $1; logs in $work" >&2; cat "$work"/*.log >&2; return 1
}
up=$(free_port); port=$(free_port)

# 1. The MCP server: two tools, every executed refund appended to a ledger.
"$py" "$here/server.py" --port "$up" --ledger "$work/refunds.jsonl" > "$work/server.log" 2>&1 &
pids+=($!)
wait_port "$up"

# 2. Greenlight in front of it: [mcp] names the upstream and the resource
#    tokens are issued for (the bundle's issuer audience).
cat > "$work/serve.toml" <<TOML
[mcp]
upstream = "http://127.0.0.1:$up/mcp"
resource = "https://payments-mcp.example.com/mcp"
TOML
"$gl" serve --dev --bundle "$here/bundle" --store "sqlite://$work/greenlight.db" \
  --listen "127.0.0.1:$port" --config "$work/serve.toml" > "$work/greenlight.log" 2>&1 &
pids+=($!)
wait_port "$port"

# 3. Tokens from the demo IdP: the agent's, and two people in finance
#    signed in to the approvals app.
TOKEN=$("$gl" dev-token --bundle "$here/bundle" --sub alice --scope "payments:refund payments:read")
APPROVERS="$("$gl" dev-token --bundle "$here/bundle" --sub bob --client approvals-app --claim 'groups=["finance"]') $("$gl" dev-token --bundle "$here/bundle" --sub carol --client approvals-app --claim 'groups=["finance"]')"
export TOKEN APPROVERS

# 4. The agent.
"$py" "$here/client.py" "http://127.0.0.1:$port/mcp" "http://127.0.0.1:$port"

# 5. What the MCP server really executed: the 50, and the 500 once.
echo "the server's ledger:"
cat "$work/refunds.jsonl"
