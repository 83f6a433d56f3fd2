#!/usr/bin/env bash
# Stops everything deploy/local-ha/up.sh started and removes its state (etcd's data with the
# PostgreSQL data directories: a cluster is reset as a whole).
set -uo pipefail
HA_DIR=${HA_DIR:-/tmp/snip-ha}
[ -d "$HA_DIR" ] || exit 0
for f in "$HA_DIR"/run/snip*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
sleep 0.5
pkill -f "patroni $HA_DIR/conf/" 2>/dev/null
for _ in $(seq 1 50); do pgrep -f "patroni $HA_DIR/conf/" >/dev/null || break; sleep 0.2; done
pkill -9 -f "patroni $HA_DIR/conf/" 2>/dev/null
for n in 1 2 3; do
  pid_file=$HA_DIR/pg$n/data/postmaster.pid
  [ -f "$pid_file" ] && kill -9 "$(head -n 1 "$pid_file")" 2>/dev/null
done
[ -f "$HA_DIR/run/haproxy.pid" ] && kill "$(cat "$HA_DIR/run/haproxy.pid")" 2>/dev/null
bash "$(dirname "$0")/../../scripts/redis.sh" stop "$HA_DIR/redis" >/dev/null 2>&1
[ -f "$HA_DIR/run/etcd.pid" ] && kill "$(cat "$HA_DIR/run/etcd.pid")" 2>/dev/null
# The chaos suite's network faults, if one was left behind.
command -v nft >/dev/null && nft delete table ip snip_chaos 2>/dev/null
sleep 0.5
rm -rf "$HA_DIR"
echo "local-ha is down" >&2
