#!/usr/bin/env bash
# Changing policy under load, from nothing: two `greenlight serve`s decide a
# stream of refunds while their policy changes underneath them.
#
#   server A (127.0.0.1:8280) serves a bundle folder and watches it;
#   server B (127.0.0.1:8282) serves a signed bundle archive from a URL
#   (a plain file server on 127.0.0.1:8281) and polls it.
#
# Clients decide a refund of 500 against both without pause. The threshold
# for approval moves from 100 to 1000 (a refund of 500 goes from
# "approval-required" to "allow"): first in A's folder, then as a newly
# signed archive for B. A change whose own tests fail, and an archive
# signed by a key B does not trust, are each refused while the old version
# serves. At the end every answer is checked: a 200 whose verdict is the
# one its named bundle gives. Everything it starts is stopped at the end.
#
#   examples/live/walkthrough.sh
#
# Needs Python 3, OpenSSL, curl and Rust through rustup.
set -euo pipefail
cd "$(dirname "$0")/../.."
for port in 8280 8281 8282; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "127.0.0.1:$port is in use; the walkthrough uses 8280, 8281 and 8282" >&2
    exit 1
  fi
done
scripts/wasm-target
echo "== building greenlight (the first build takes a while)" >&2
cargo build -q -p greenlight
gl=${CARGO_TARGET_DIR:-target}/debug/greenlight
work=$(mktemp -d /tmp/greenlight-live.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
wait_for() { for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done
             echo "nothing listens on 127.0.0.1:$1; logs in $work" >&2; exit 1; }
admin() { curl -s -H "authorization: Bearer $(cat "$work/admin-token")" "http://127.0.0.1:$1/v1/admin/policy"; }
field() { python3 -c 'import json,sys; v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"; }
# Waits until server $1's admin answer has $2 equal to $3.
await() { for _ in $(seq 1 300); do [[ $(admin "$1" | field "$2") == "$3" ]] && return; sleep 0.1; done
          echo "server :$1 never had $2 = $3; logs in $work" >&2; admin "$1" >&2; exit 1; }

echo "== two versions of the demo bundle: the threshold at 100, and at 1000 (tests to match)"
cp -r examples/bundle "$work/bundle"
cp -r examples/bundle "$work/v1000"
sed -i 's/context.amount <= 100 };/context.amount <= 1000 };/; s/context.amount > 100 };/context.amount > 1000 };/' \
  "$work/v1000/policy.cedar"
sed -i 's/expect = { verdict = "approval-required", reasons = \["refund-large"\], approvers = \["group:finance"\], quorum = 2, grant = "once", ttl = 900 }/expect = { verdict = "allow", reasons = ["refund-small"] }/' \
  "$work/v1000/tests/demo.toml"
"$gl" test "$work/v1000" | tail -1
h100=$("$gl" bundle validate "$work/bundle" | sed 's/.*policy hash \(.*\))/\1/')
h1000=$("$gl" bundle validate "$work/v1000" | sed 's/.*policy hash \(.*\))/\1/')
echo "   threshold 100: $h100"
echo "   threshold 1000: $h1000"

echo "== a bundle signing key; servers trust its public half"
openssl genpkey -algorithm ed25519 -out "$work/signer.pem" 2>/dev/null
openssl genpkey -algorithm ed25519 -out "$work/impostor.pem" 2>/dev/null
"$gl" bundle public-key --key "$work/signer.pem" --kid ops-1 > "$work/signers.jwks.json"
mkdir "$work/pub"
"$gl" bundle build "$work/bundle" --out "$work/pub/payments.tar.gz"
"$gl" bundle sign "$work/pub/payments.tar.gz" --key "$work/signer.pem" --kid ops-1

head -c 32 /dev/urandom | base64 > "$work/admin-token"
cat > "$work/serve.toml" <<TOML
[reload]
interval = 1                     # look at the bundle folder every second

[admin]
token_file = "$work/admin-token"

[remote_bundle]
trusted_keys = "$work/signers.jwks.json"
poll_interval = 1
allow_http_loopback = true       # the file server below is plain HTTP on loopback
TOML

echo "== server A: the folder, on 127.0.0.1:8280"
"$gl" serve --dev --bundle "$work/bundle" --config "$work/serve.toml" --listen 127.0.0.1:8280 \
  --store "sqlite://$work/a.db" > "$work/a.log" 2>&1 &
pids+=($!)
echo "== a file server for the signed archive, on 127.0.0.1:8281"
python3 -m http.server --bind 127.0.0.1 --directory "$work/pub" 8281 > "$work/files.log" 2>&1 &
pids+=($!)
wait_for 8281
echo "== server B: the archive at http://127.0.0.1:8281/payments.tar.gz, on 127.0.0.1:8282"
"$gl" serve --dev --bundle http://127.0.0.1:8281/payments.tar.gz --config "$work/serve.toml" \
  --listen 127.0.0.1:8282 --store "sqlite://$work/b.db" > "$work/b.log" 2>&1 &
pids+=($!)
wait_for 8280
wait_for 8282

alice=$("$gl" dev-token --bundle examples/bundle --sub alice --scope "payments:refund")
echo "== clients decide a refund of 500 on both, without pause"
python3 examples/live/load.py --url http://127.0.0.1:8280 --url http://127.0.0.1:8282 --token "$alice" \
  --expect "$h100=approval-required" --expect "$h1000=allow" --stop "$work/stop" > "$work/load.json" &
load=$!
pids+=($load)
sleep 2

echo
echo "== 1. A's folder gets the threshold at 1000"
cp "$work/v1000/policy.cedar" "$work/bundle/policy.cedar"
cp "$work/v1000/tests/demo.toml" "$work/bundle/tests/demo.toml"
await 8280 policy_hash "$h1000"
admin 8280 | python3 -m json.tool
sleep 1

echo
echo "== 2. a change whose own tests fail (refunds of 50 frozen) is refused; A keeps deciding"
printf '\n@id("freeze")\nforbid (principal, action == Action::"payment.refund", resource)\nwhen { context.amount == 50 };\n' \
  >> "$work/bundle/policy.cedar"
await 8280 last_attempt.outcome refused
admin 8280 | field last_attempt.detail
admin 8280 | field policy_hash
sleep 1

echo
echo "== 3. a newly signed archive with the threshold at 1000 is published for B"
"$gl" bundle build "$work/v1000" --out "$work/next.tar.gz"
"$gl" bundle sign "$work/next.tar.gz" --name payments --key "$work/signer.pem" --kid ops-1
mv "$work/next.tar.gz.sig" "$work/pub/payments.tar.gz.sig.new"
mv "$work/next.tar.gz" "$work/pub/payments.tar.gz"
mv "$work/pub/payments.tar.gz.sig.new" "$work/pub/payments.tar.gz.sig"
await 8282 policy_hash "$h1000"
admin 8282 | python3 -m json.tool
sleep 1

echo
echo "== 4. an archive signed by a key B does not trust is refused; B keeps deciding"
cp "$work/bundle/policy.cedar" "$work/v1000/policy.cedar"
"$gl" bundle build "$work/v1000" --out "$work/forged.tar.gz"
"$gl" bundle sign "$work/forged.tar.gz" --name payments --key "$work/impostor.pem" --kid ops-1
mv "$work/forged.tar.gz.sig" "$work/pub/payments.tar.gz.sig"
mv "$work/forged.tar.gz" "$work/pub/payments.tar.gz"
await 8282 last_attempt.outcome refused
admin 8282 | field last_attempt.detail
admin 8282 | field policy_hash
sleep 1

echo
echo "== every answer while the policy changed"
touch "$work/stop"
wait "$load" && ok=1 || ok=0
cat "$work/load.json"
[[ $ok == 1 ]] || { echo "some answers failed or were wrong; logs in $work" >&2; exit 1; }
echo "no request failed; every verdict was its named version's"
