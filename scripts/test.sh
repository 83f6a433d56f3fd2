#!/usr/bin/env bash
# The test command (README, .ci/run): every test on the embedded SQLite store, then the
# black-box suite again on PostgreSQL, with the PostgreSQL and Redis tests, against a
# throwaway PostgreSQL cluster and Redis server that this script starts on loopback (installing
# Debian's packages when they are missing) and removes afterwards.
#
# If PostgreSQL or Redis cannot be installed or started, this fails: the tests that need them
# are never skipped here. Extra arguments go to every `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d /tmp/snip-test.XXXXXX)
cleanup() {
  scripts/postgres.sh stop "$work/pg" >/dev/null 2>&1 || true
  scripts/redis.sh stop "$work/redis" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

SNIP_TEST_POSTGRES=$(scripts/postgres.sh start "$work/pg")
SNIP_TEST_REDIS=$(scripts/redis.sh start "$work/redis")
export SNIP_TEST_POSTGRES SNIP_TEST_REDIS
# Tests that need these servers fail rather than skip when they are missing.
export SNIP_TEST_REQUIRE_SERVICES=1
echo "test services: PostgreSQL $SNIP_TEST_POSTGRES, Redis $SNIP_TEST_REDIS" >&2

echo "== all tests, embedded SQLite store" >&2
SNIP_TEST_BACKEND=sqlite cargo test --locked "$@"
echo "== black-box suite, PostgreSQL store" >&2
SNIP_TEST_BACKEND=postgres cargo test --locked --test '*' "$@"
