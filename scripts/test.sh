#!/usr/bin/env bash
# The test command (README, .ci/run): every test on the embedded SQLite store, then the
# black-box suite again on PostgreSQL, with the PostgreSQL and Redis tests, against a
# throwaway PostgreSQL cluster and Redis server that this script starts on loopback (installing
# Debian's packages when they are missing) and removes afterwards.
#
# Then the contract check: Schemathesis against a live server and the OpenAPI document it
# publishes (scripts/schemathesis.sh); then the dashboard's browser tests in headless Chromium
# (ui-tests/run.sh, which installs Debian's chromium and its npm packages when missing).
#
# Every pass always runs, each to the end (`cargo test --no-fail-fast`): a failure in one test
# binary or in the SQLite pass hides nothing else. At the end a summary names the passes and
# tests that failed, and the exit status is non-zero if any did.
#
# If PostgreSQL or Redis cannot be installed or started, this fails: the tests that need them
# are never skipped here. The command-line tools the tests and the README's examples use (curl,
# jq, file, python3, promtool, tmux for the terminal test, script for a pseudo-terminal) are
# installed from Debian's packages when missing. Extra
# arguments go to every `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

# Command-line tools the tests, the scripts and the README's examples call: command → package.
missing=()
for tool in curl:curl jq:jq file:file python3:python3 promtool:prometheus tmux:tmux script:bsdutils; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]} (Debian packages)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2 \
    || { echo "test.sh: could not install ${missing[*]}: install them and run again" >&2; exit 1; }
fi

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

# What failed in a `cargo test` log: `TARGET: TEST` lines (the names cargo lists under the last
# "failures:" before each "test result: FAILED", with the test binary it was running), then
# cargo's own list of the targets that failed (which also names a binary that crashed).
failed_tests() {
  awk '
    /^error: [0-9]+ targets? failed:/ { targets = 1; print "  cargo: " $0; next }
    targets && /^    / { print "  cargo: " $0; next }
    { targets = 0 }
    /^error: test failed/ { print "  cargo: " $0; next }
    /^ *Running / { target = ($2 == "unittests") ? $3 : $2 }
    /^ *Doc-tests / { target = "doc-tests " $2 }
    /^failures:$/ { n = 0; next }
    /^    [^ ]/ { names[++n] = $1; next }
    /^test result: FAILED/ { for (i = 1; i <= n; i++) print "  " target ": " names[i]; n = 0 }
  ' "$1"
}

# Runs one pass (NAME, then the cargo test arguments) with its output also in $work/NAME.log;
# records it in `failed` when it fails.
failed=()
pass() {
  local name=$1
  shift
  if cargo test --locked --no-fail-fast "$@" 2>&1 | tee "$work/$name.log"; then
    return 0
  fi
  failed+=("$name")
}

echo "== all tests, embedded SQLite store" >&2
SNIP_TEST_BACKEND=sqlite pass sqlite "$@"
echo "== black-box suite, PostgreSQL store" >&2
# `--test '*'`: the integration tests, i.e. tests/suite.rs (every file of tests/ is one of its
# modules), without the unit tests of src/.
SNIP_TEST_BACKEND=postgres pass postgres --test '*' "$@"
echo "== contract: a live server against its OpenAPI document (scripts/schemathesis.sh)" >&2
if ! bash scripts/schemathesis.sh 2>&1 | tee "$work/contract.log"; then
  failed+=(contract)
fi

echo "== dashboard: end-to-end browser tests in headless Chromium (ui-tests/run.sh)" >&2
if ! bash ui-tests/run.sh 2>&1 | tee "$work/ui.log"; then
  failed+=(ui)
fi

if [ "${#failed[@]}" -eq 0 ]; then
  echo "== test.sh: both passes (SQLite, PostgreSQL), the contract check and the browser tests passed" >&2
  exit 0
fi
echo "== test.sh: FAILED: ${failed[*]}" >&2
for name in "${failed[@]}"; do
  if [ "$name" = contract ]; then
    echo "the contract check failed: Schemathesis's failures are above (reproduce with scripts/schemathesis.sh)" >&2
    continue
  fi
  if [ "$name" = ui ]; then
    echo "the browser tests failed: see their output above (reproduce with bash ui-tests/run.sh)" >&2
    continue
  fi
  tests=$(failed_tests "$work/$name.log")
  if [ -n "$tests" ]; then
    echo "the $name pass failed; failing tests:" >&2
    echo "$tests" >&2
  else
    echo "the $name pass failed without a failing test (a build error? see its output above)" >&2
  fi
done
exit 1
