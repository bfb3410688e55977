#!/usr/bin/env bash
# `make run`: the demo gateway on Caddyfile.example.
# Starts three local OpenID providers (node oidc-provider) on 127.0.0.1:3000-3002,
# then bin/caddy on Caddyfile.example (gateway on 127.0.0.1:8080, the admin portal
# on 127.0.0.1:8080/portal/, demo upstream on 127.0.0.1:9000, admin on
# localhost:2019), and prints the portal's URL and working curl lines.
# Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."

for port in 2019 3000 3001 3002 8080 9000; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "make run: port $port on 127.0.0.1 is already in use; stop whatever listens there first." >&2
    exit 1
  fi
done

mkdir -p run
pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo
  echo "stopped (logs in run/)"
}
trap cleanup EXIT INT TERM

wait_for() { # url what log
  for _ in $(seq 1 100); do
    if curl -fsS -o /dev/null "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "make run: $2 did not come up; last lines of $3:" >&2
  tail -n 20 "$3" >&2
  exit 1
}

for port in 3000 3001 3002; do
  PORT=$port node tools/oidc/idp.mjs >"run/idp-$port.log" 2>&1 &
  pids+=($!)
done
for port in 3000 3001 3002; do
  wait_for "http://127.0.0.1:$port/jwks" "the OpenID provider on port $port" "run/idp-$port.log"
done

export ACME_INTROSPECTION_SECRET=gateway-secret
bin/caddy run --config Caddyfile.example --adapter caddyfile >run/caddy.log 2>&1 &
pids+=($!)
wait_for "http://localhost:2019/config/" "Caddy" run/caddy.log

token() { # issuer-port
  curl -fsS -u cc-client:cc-secret -d grant_type=client_credentials -d scope='read write' \
    -d resource=https://api.example.test "http://127.0.0.1:$1/token" | sed 's/.*"access_token":"\([^"]*\)".*/\1/'
}
ACME=$(token 3000)
CORP=$(token 3002)
OPAQUE=$(curl -fsS -u cc-client:cc-secret -d grant_type=client_credentials -d scope=read \
  -d resource=urn:example:opaque http://127.0.0.1:3000/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')

# Prove the line we print works before printing it.
for _ in $(seq 1 50); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $ACME" http://127.0.0.1:8080/acme/orders || true)
  [ "$code" = 200 ] && break
  sleep 0.1
done
if [ "$code" != 200 ]; then
  echo "make run: the gateway answered $code instead of 200; see run/caddy.log" >&2
  exit 1
fi

# The admin portal (docs/portal.md), behind basic_auth with the demo account.
PORTAL_URL=http://127.0.0.1:8080/portal/
PORTAL_USER=admin
PORTAL_PASSWORD=kmgate-demo
code=$(curl -s -o /dev/null -w '%{http_code}' -u "$PORTAL_USER:$PORTAL_PASSWORD" "$PORTAL_URL" || true)
if [ "$code" != 200 ]; then
  echo "make run: the portal answered $code instead of 200; see run/caddy.log" >&2
  exit 1
fi

cat <<TXT

caddy-keymanager demo is running (logs in run/). Tokens below are valid for 5 minutes.

portal: $PORTAL_URL
  user $PORTAL_USER, password $PORTAL_PASSWORD (basic_auth in Caddyfile.example)

  # an ACME token on ACME's API (200, the upstream echoes the forwarded identity)
  curl -s -H "Authorization: Bearer $ACME" http://127.0.0.1:8080/acme/orders

  # the upstream got a gateway-signed backend JWT; its public keys:
  curl -s http://127.0.0.1:8080/.well-known/backend-jwks.json

  # the corporate (Global Key Manager) token works for every tenant
  curl -s -H "Authorization: Bearer $CORP" http://127.0.0.1:8080/acme/orders

  # an opaque ACME token, validated by RFC 7662 introspection (then cached)
  curl -s -H "Authorization: Bearer $OPAQUE" http://127.0.0.1:8080/acme/orders

  # ACME's admin resources need the "admin" scope this token lacks (403, 900910)
  curl -s -i -H "Authorization: Bearer $ACME" http://127.0.0.1:8080/acme/admin/users

  # an ACME token on Globex's API is refused (401, 900901)
  curl -s -i -H "Authorization: Bearer $ACME" http://127.0.0.1:8080/globex/orders

  # developer keys: register an application at Globex's IdP (RFC 7591; the secret
  # is shown this once), then get a token for it that Globex's API accepts
  curl -s -H 'Content-Type: application/json' -d '{"id":"my-app","key_manager":"globex-idp","register":true,"registration_scopes":["read"]}' \
    http://localhost:2019/keymanagers/globex/applications/
  curl -s -X POST http://localhost:2019/keymanagers/globex/applications/my-app/token

  # a fresh token from ACME's IdP
  curl -s -u cc-client:cc-secret -d grant_type=client_credentials -d 'scope=read write' \\
    -d resource=https://api.example.test http://127.0.0.1:3000/token

Press Ctrl-C to stop.
TXT
wait -n "${pids[@]}" || true
echo "make run: a process exited; see run/*.log" >&2
