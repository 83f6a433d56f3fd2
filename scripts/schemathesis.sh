#!/usr/bin/env bash
# The contract check: Schemathesis (PyPI) generates requests from the OpenAPI document that a
# live server publishes at /api/openapi.json and checks every answer against it (`--checks
# all`: no server error, every status, content type, header and body as documented, invalid
# input refused, valid input accepted, a deleted link gone...). Authenticated with an admin
# key; a bounded number of examples per operation (SNIP_SCHEMATHESIS_EXAMPLES, 40) and a fixed
# seed (SNIP_SCHEMATHESIS_SEED), so a run is repeatable. Prints Schemathesis's summary; exits
# non-zero on any failure or error.
#
# The server is the debug build on a fresh SQLite store, on a free loopback port, with its
# per-key rate limit and failed-authentication limit off (one client sends thousands of
# requests, many with wrong keys on purpose) and a deny list, so that its reload can succeed.
# Schemathesis is installed when missing into target/schemathesis-venv (pinned version).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/process.sh

version=4.32.5
venv=target/schemathesis-venv
if ! "$venv/bin/st" --version 2>/dev/null | grep -q "$version"; then
  echo "installing schemathesis $version (PyPI) into $venv" >&2
  { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "schemathesis==$version"; } >&2 \
    || { echo "schemathesis.sh: could not install schemathesis" >&2; exit 1; }
fi

cargo build --locked --quiet
work=$(mktemp -d /tmp/snip-schemathesis.XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then
    kill -TERM "$pid" 2>/dev/null || true
    wait_gone "$pid" "" 20 || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

key=snip_schemathesis_$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf 'blocked.example\n' >"$work/deny.txt"
target/debug/snip serve --listen 127.0.0.1:0 --database "sqlite://$work/data/snip.db" \
  --admin-key "$key" --rate-limit 0 --failed-auth-limit 0 --deny-list "$work/deny.txt" \
  >"$work/stdout" 2>"$work/server.log" &
pid=$!
deadline=$((SECONDS + 60))
until grep -q '^listening on http://' "$work/stdout"; do
  alive "$pid" || { echo "schemathesis.sh: the server exited:" >&2; cat "$work/server.log" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { echo "schemathesis.sh: the server did not start" >&2; exit 1; }
  sleep 0.05
done
base=$(sed -n 's/^listening on //p' "$work/stdout" | head -1)
echo "schemathesis against $base (spec $base/api/openapi.json)" >&2

"$venv/bin/st" --config-file scripts/schemathesis.toml --no-color run "$base/api/openapi.json" \
  --url "$base" --checks all --header "Authorization: Bearer $key" \
  --max-examples "${SNIP_SCHEMATHESIS_EXAMPLES:-40}" --seed "${SNIP_SCHEMATHESIS_SEED:-20261130}" \
  --max-redirects 0 --request-timeout 30 --output-truncate true
