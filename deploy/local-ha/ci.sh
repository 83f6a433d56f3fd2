#!/usr/bin/env bash
# The chaos suite's short version, for CI (.ci/run): brings deploy/local-ha up on its own
# ports and directory, runs the instance kill, primary kill (at the default write consistency,
# then at quorum and all) and Redis kill scenarios under load, prints their table, and tears
# everything down. Fails if a checker fails: an
# acknowledged link lost, a redirect to a wrong or stale destination, an unresolved unknown
# outcome, clicks lost beyond their bound or counted twice. Needs root (installs Debian's
# patroni, etcd, haproxy, redis and postgresql packages when missing). A few minutes.
#
# Environment: SNIP_BIN (default: the debug build the tests use, built when missing; the figures
# in docs/reliability.md come from a release build), HA_PORT (22000),
# CHAOS_SCENARIOS (instance-kill primary-kill redis-kill primary-kill-quorum primary-kill-all).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export HA_DIR=${HA_DIR:-/tmp/snip-ha-ci}
export HA_PORT=${HA_PORT:-22000}
if [ -z "${SNIP_BIN:-}" ]; then
  (cd "$root" && cargo build --locked --bin snip >&2)
  SNIP_BIN=$root/target/debug/snip
fi
export SNIP_BIN
bash "$root/deploy/local-ha/down.sh" 2>/dev/null || true
trap 'bash "$root/deploy/local-ha/down.sh" >/dev/null 2>&1 || true' EXIT
started=$(date +%s)
bash "$root/deploy/local-ha/up.sh" >/dev/null
echo "local-ha up in $(( $(date +%s) - started )) s" >&2
# shellcheck disable=SC2086
python3 "$root/deploy/local-ha/chaos.py" ${CHAOS_SCENARIOS:-instance-kill primary-kill redis-kill primary-kill-quorum primary-kill-all}
echo "chaos suite (short) done in $(( $(date +%s) - started )) s" >&2
