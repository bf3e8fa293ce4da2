#!/usr/bin/env bash
# The approval portal, by hand, with a real OpenID provider on this machine:
# node-oidc-provider (tests/idp/portal-provider.mjs) signs people in, and
# `greenlight serve` runs the demo bundle with the portal configured.
#
#   examples/portal/demo.sh
#
# It asks for a refund of 500 as alice's app and for a write to alice's
# file, then waits while you decide in a browser:
#   - open http://127.0.0.1:8080/portal, sign in as fin-ann (any password),
#     approve the refund with a reason; then, in a private window, as
#     fin-bob: the second approval completes the quorum;
#   - open the confirmation link it prints, sign in as alice, and confirm
#     the file write.
# The app collects each action token and uses it, once. Ctrl-C stops it all.
#
# Needs Rust through rustup and Node 20+ with npm. Ports: GREENLIGHT_PORT
# (8080) and IDP_PORT (8081).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
port=${GREENLIGHT_PORT:-8080}
idp_port=${IDP_PORT:-8081}
base=http://127.0.0.1:$port
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
scripts/wasm-target
cargo build -q -p greenlight
gl=$CARGO_TARGET_DIR/debug/greenlight
(cd tests/idp && { [[ -d node_modules/oidc-provider ]] || npm ci --no-audit --no-fund --silent; })

work=$(mktemp -d)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop EXIT

node tests/idp/portal-provider.mjs "$base/portal/callback" "$idp_port" > "$work/idp.out" 2> "$work/idp.log" &
pids+=($!)
for _ in $(seq 1 100); do [[ -s "$work/idp.out" ]] && break; sleep 0.1; done
issuer=http://127.0.0.1:$idp_port
grep -q "\"$issuer\"" "$work/idp.out" || { cat "$work/idp.log"; echo "the provider did not start" >&2; exit 1; }

# The demo bundle, trusting the provider (its keys found by discovery)
# instead of the development key.
mkdir "$work/bundle"
cp examples/bundle/policy.cedar examples/bundle/schema.cedarschema "$work/bundle/"
sed -e "s|^issuer = \"https://idp.example.com\"|issuer = \"$issuer\"|" \
    -e '/^jwks = "idp.jwks.json"$/d' \
    -e '/^\[dev\]$/,/^$/d' examples/bundle/greenlight.toml > "$work/bundle/greenlight.toml"
printf '\n[key_fetch]\nallow_http_loopback = true\n' >> "$work/bundle/greenlight.toml"
printf 'portal-secret\n' > "$work/portal-secret"
cat > "$work/serve.toml" <<TOML
[portal]
client_id = "greenlight-portal"
client_secret_file = "$work/portal-secret"
scopes = "openid greenlight"
TOML
"$gl" serve --bundle "$work/bundle" --store "sqlite://$work/greenlight.db" \
  --listen "127.0.0.1:$port" --config "$work/serve.toml" 2> "$work/serve.log" &
pids+=($!)
for _ in $(seq 1 200); do curl -fs "$base/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

json() { node -e "let s='';process.stdin.on('data',d=>s+=d).on('end',()=>{const v=JSON.parse(s);console.log(typeof ($1)==='string'?($1):JSON.stringify($1))})"; }
check() { # METHOD PATH PARAMS TOKEN
  curl -s "$base/v1/check" -H 'content-type: application/json' \
    -d "{\"method\":\"$1\",\"path\":\"$2\",\"headers\":{\"authorization\":\"Bearer $4\"},\"params\":$3}"
}
ALICE=$(node tests/idp/app-token.mjs "$issuer" alice)

echo "== alice's app asks to refund 500 (two people from finance must approve)"
check POST /payments/pay_123/refund '{"amount":500,"currency":"EUR"}' "$ALICE" > "$work/refund.json"
json 'v.verdict.kind + ": " + v.verdict.obligation.message' < "$work/refund.json"
REFUND=$(curl -s "$base/oauth/bc-authorize" -H "authorization: Bearer $ALICE" \
  --data-urlencode "authorization_details=$(json v.verdict.authorization_details < "$work/refund.json")" | json v.auth_req_id)

echo "== alice's app asks to write her file f1 (alice confirms it herself)"
check PUT /users/alice/files/f1/content '{}' "$ALICE" > "$work/file.json"
curl -s "$base/oauth/bc-authorize" -H "authorization: Bearer $ALICE" \
  --data-urlencode "authorization_details=$(json v.verdict.authorization_details < "$work/file.json")" > "$work/file-ask.json"
FILE=$(json v.auth_req_id < "$work/file-ask.json")

cat <<TEXT

Now, in a browser:
  1. $base/portal  sign in as fin-ann (any password), open the refund,
     approve it with a reason; then in a private window sign in as fin-bob
     and approve it too.
  2. $(json v.verification_uri_complete < "$work/file-ask.json")
     sign in as alice and confirm the file write (code $(json v.user_code < "$work/file-ask.json")).

Waiting for both decisions (Ctrl-C stops)...
TEXT

collect() { # ID -> prints the action token once approved
  while :; do
    sleep 5
    out=$(curl -s "$base/oauth/token" -H "authorization: Bearer $ALICE" \
      -d grant_type=urn:openid:params:grant-type:ciba -d "auth_req_id=$1")
    case $(printf '%s' "$out" | json 'v.error ?? "token"') in
      token) printf '%s' "$out" | json v.access_token; return 0 ;;
      authorization_pending|slow_down) ;;
      *) echo "$out" >&2; return 1 ;;
    esac
  done
}
AT=$(collect "$REFUND")
echo "== the refund was approved; the app uses its action token twice:"
check POST /payments/pay_123/refund '{"amount":500,"currency":"EUR"}' "$AT" | json 'v.verdict.kind + (v.verdict.code ? " (" + v.verdict.code + ")" : "")'
check POST /payments/pay_123/refund '{"amount":500,"currency":"EUR"}' "$AT" | json 'v.verdict.kind + (v.verdict.code ? " (" + v.verdict.code + ")" : "")'
FT=$(collect "$FILE")
echo "== alice confirmed the file write; the app writes:"
check PUT /users/alice/files/f1/content '{}' "$FT" | json 'v.verdict.kind'
echo "Done. The portal stays up until Ctrl-C."
wait
