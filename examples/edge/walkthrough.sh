#!/usr/bin/env bash
# A refund held for approval in front of a real proxy, from nothing: the
# demo API on 127.0.0.1:9000, `greenlight serve` on 127.0.0.1:8080, the
# proxy on 127.0.0.1:8000 with its example config, then a client asks for a
# refund of 500, two finance approvers approve, and the refund goes through
# once. Everything it starts is stopped at the end.
#
#   examples/edge/walkthrough.sh nginx|caddy|envoy-ext-authz|envoy-wasm
#
# Needs the proxy (examples/<proxy>/README.md says how to install it),
# Python 3 and Rust through rustup; the first build takes a while.
set -euo pipefail
proxy=${1:?usage: examples/edge/walkthrough.sh nginx|caddy|envoy-ext-authz|envoy-wasm}
cd "$(dirname "$0")/../.."
case $proxy in
  nginx | caddy) bundle=examples/edge/bundle params=query ;;
  envoy-ext-authz | envoy-wasm) bundle=examples/bundle params=body ;;
  *) echo "unknown proxy \`$proxy\`: nginx, caddy, envoy-ext-authz or envoy-wasm" >&2; exit 2 ;;
esac
tool=${proxy%-*}
command -v "$tool" >/dev/null || { echo "\`$tool\` is not installed: see examples/$proxy/README.md" >&2; exit 1; }
for port in 8000 8080 9000; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is in use; the example's configs use 8000, 8080 and 9000" >&2
    exit 1
  fi
done

scripts/wasm-target
echo "== building greenlight (the first build takes a while)" >&2
cargo build -q -p greenlight
if [[ $proxy == envoy-wasm ]]; then
  echo "== building the proxy-wasm filter (wasm32-wasip1)" >&2
  cargo build -q --target wasm32-wasip1 --profile guest -p greenlight-proxy-wasm \
    --target-dir "${CARGO_TARGET_DIR:-target}/proxy-wasm"
  cp "${CARGO_TARGET_DIR:-target}/proxy-wasm/wasm32-wasip1/guest/greenlight_proxy_wasm.wasm" \
    examples/envoy-wasm/greenlight-filter.wasm
fi
gl=${CARGO_TARGET_DIR:-target}/debug/greenlight
work=$(mktemp -d /tmp/greenlight-edge.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
             echo "nothing listens on 127.0.0.1:$1; logs in $work" >&2; exit 1; }

echo "== the demo API (refund parameters in the $params) on 127.0.0.1:9000"
python3 examples/edge/upstream.py --listen 127.0.0.1:9000 --params "$params" > "$work/api.log" 2>&1 &
pids+=($!)
echo "== greenlight serve ($bundle) on 127.0.0.1:8080"
"$gl" serve --dev --bundle "$bundle" --store "sqlite://$work/greenlight.db" --listen 127.0.0.1:8080 \
  > "$work/greenlight.log" 2>&1 &
pids+=($!)
wait_for 9000
wait_for 8080
echo "== $proxy on 127.0.0.1:8000"
case $proxy in
  nginx) nginx -p "$work" -c "$PWD/examples/nginx/nginx.conf" > "$work/nginx.log" 2>&1 & ;;
  caddy) HOME=$work caddy run --adapter caddyfile --config examples/caddy/Caddyfile > "$work/caddy.log" 2>&1 & ;;
  envoy-*) envoy -c "examples/$proxy/envoy.yaml" --log-level warn --component-log-level wasm:info \
             --use-dynamic-base-id \
             > "$work/envoy.log" 2>&1 & ;;
esac
pids+=($!)
wait_for 8000
if [[ $proxy == envoy-wasm ]]; then
  # The filter fetches the service's keys (for action tokens) once loaded.
  for _ in $(seq 1 100); do grep -q 'greenlight: bundle loaded' "$work/envoy.log" && break; sleep 0.1; done
  sleep 1
fi

alice=$("$gl" dev-token --bundle "$bundle" --sub alice --scope "payments:read payments:refund")
refund() {
  if [[ $params == query ]]; then
    curl -s -o "$work/answer.json" -w '%{http_code}' -X POST -H "authorization: Bearer $1" \
      'http://127.0.0.1:8000/payments/pay_1/refund?amount=500&currency=EUR'
  else
    curl -s -o "$work/answer.json" -w '%{http_code}' -X POST -H "authorization: Bearer $1" \
      -H 'content-type: application/json' -d '{"amount": 500, "currency": "EUR"}' \
      http://127.0.0.1:8000/payments/pay_1/refund
  fi
}
field() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v[sys.argv[2]] if isinstance(v[sys.argv[2]], str) else json.dumps(v[sys.argv[2]]))' "$@"; }

echo
echo "== alice asks for a refund of 500 through $proxy"
status=$(refund "$alice")
echo "$status $(cat "$work/answer.json")"
[[ $status == 401 ]] || { echo "expected 401 approval required" >&2; exit 1; }

echo
echo "== alice asks for approval (CIBA, with the challenge's authorization_details)"
curl -s -o "$work/ask.json" http://127.0.0.1:8080/oauth/bc-authorize -H "authorization: Bearer $alice" \
  --data-urlencode "authorization_details=$(field "$work/answer.json" authorization_details)"
cat "$work/ask.json"; echo
id=$(field "$work/ask.json" auth_req_id)

for who in bob carol; do
  echo "== $who (finance, signed in to the approvals app) approves"
  token=$("$gl" dev-token --bundle "$bundle" --sub "$who" --client approvals-app --claim 'groups=["finance"]')
  curl -s -X POST "http://127.0.0.1:8080/v1/approvals/$id/approve" -H "authorization: Bearer $token" \
    -H 'content-type: application/json' -d '{"reason": "customer called"}' -o /dev/null -w '%{http_code}\n'
done

echo "== alice collects the action token"
curl -s -o "$work/token.json" http://127.0.0.1:8080/oauth/token -H "authorization: Bearer $alice" \
  -d grant_type=urn:openid:params:grant-type:ciba -d "auth_req_id=$id"
action=$(field "$work/token.json" access_token)

echo
echo "== alice retries the refund with it"
status=$(refund "$action")
echo "$status $(cat "$work/answer.json")"
[[ $status == 200 ]] || { echo "expected 200" >&2; exit 1; }
echo
echo "== and once more: a replay"
status=$(refund "$action")
echo "$status $(cat "$work/answer.json")"
[[ $status == 401 ]] || { echo "expected 401 action-token-replayed" >&2; exit 1; }
echo
echo "== the API received $(curl -s http://127.0.0.1:9000/_upstream/calls | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') call(s)"
