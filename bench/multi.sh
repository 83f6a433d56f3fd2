#!/usr/bin/env bash
# Several instances behind a load balancer: two snip instances on one PostgreSQL and one Redis,
# behind HAProxy (HTTP mode, keep-alive to the instances), against one instance alone.
#
#   bench/multi.sh            release build, 100k links, 3 alternating rounds of 10 s
#   bench/multi.sh --smoke    a few seconds on a debug build (CI: the harness cannot rot)
#
# Subjects, measured alternately (A B C D A B C D ...), Zipf mix over LINKS links (as scenario (b)):
#   one      wrk -> instance 1 directly
#   lb-one   wrk -> HAProxy -> instance 1 (what the balancer's hop costs)
#   lb-two   wrk -> HAProxy -> instances 1 and 2, round robin (the aggregate)
#   tcp-two  wrk -> HAProxy in TCP mode -> instances 1 and 2 (balanced per connection: wrk's
#            connections are split between the instances, HAProxy only copies bytes)
# Nothing is pinned: the instances, HAProxy, PostgreSQL, Redis and wrk share the machine's cores.
# Each row reports req/s and the CPU each part used, in µs per request; on a machine whose cores
# are all busy (2 here) the aggregate cannot exceed one instance, so the figure that tells what a
# second instance costs is the total CPU per request.
# Environment: DURATION (10s), ROUNDS (3), CONNS (64), LINKS (100000), PROFILE (release|profiling|
# debug), BIN_DIR (use the snip of this directory instead of building).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke = 1 ]; then
  DURATION=${DURATION:-1s} ROUNDS=${ROUNDS:-1} LINKS=${LINKS:-1000} CONNS=${CONNS:-16}
  PROFILE=${PROFILE:-debug}
fi
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
LINKS=${LINKS:-100000}
PROFILE=${PROFILE:-release}

source "$root/bench/lib.sh"
ensure_wrk
if ! need haproxy; then
  echo "installing haproxy (Debian package)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy; } >/dev/null 2>&1 ||
    { echo "could not install haproxy" >&2; exit 1; }
fi

snip_bin

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash "$root/scripts/redis.sh" stop "$work/redis" >/dev/null 2>&1 || true
  bash "$root/scripts/postgres.sh" stop "$work/pg" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

pg=$(bash "$root/scripts/postgres.sh" start "$work/pg")
redis=$(bash "$root/scripts/redis.sh" start "$work/redis")
redis_pid=$(cat "$work/redis/redis.pid")
psql "$pg" -Xqc "CREATE DATABASE snip" >&2
db="${pg%/*}/snip"
key="bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export BENCH_KEY=$key BENCH_LINKS=$LINKS BENCH_UNIFORM_LINKS=$LINKS

start seed "$bin/snip" serve --listen 127.0.0.1:0 --database "$db" --admin-key "$key" --log-format json
kill "$PID"; wait "$PID" 2>/dev/null || true
awk -v n="$LINKS" 'BEGIN { for (i = 1; i <= n; i++) printf "L%07d\thttps://example.com/articles/%d?utm_source=bench\n", i, i }' |
  "$bin/snip" import --database "$db" - >&2

common=(serve --listen 127.0.0.1:0 --admin-key "$key" --log-format json --rate-limit 0
        --trusted-proxies 127.0.0.1 --database "$db" --redis "$redis"
        --cache-capacity $((LINKS * 2)))
start snip1 "$bin/snip" "${common[@]}"; addr1=$ADDR pid1=$PID
start snip2 "$bin/snip" "${common[@]}"; addr2=$ADDR pid2=$PID

# Frontends on free ports: HTTP over both instances, HTTP over instance 1 only, TCP over both.
read -r port_two port_one port_tcp < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
cat >"$work/haproxy.cfg" <<CFG
global
    maxconn 4096
    nbthread 2
defaults
    mode http
    option http-keep-alive
    http-reuse always
    timeout connect 2s
    timeout client 30s
    timeout server 30s
frontend two
    bind 127.0.0.1:$port_two
    default_backend two
frontend one
    bind 127.0.0.1:$port_one
    default_backend one
backend two
    balance roundrobin
    server snip1 ${addr1#http://}
    server snip2 ${addr2#http://}
backend one
    server snip1 ${addr1#http://}
listen tcp
    mode tcp
    bind 127.0.0.1:$port_tcp
    balance roundrobin
    server snip1 ${addr1#http://}
    server snip2 ${addr2#http://}
CFG
haproxy -db -f "$work/haproxy.cfg" >"$work/haproxy.log" 2>&1 &
haproxy_pid=$!
pids+=("$haproxy_pid")
for _ in $(seq 1 100); do
  curl -s -o /dev/null "http://127.0.0.1:$port_two/health/live" && curl -s -o /dev/null "http://127.0.0.1:$port_one/health/live" && break
  sleep 0.05
done

# Warm-up, not measured: every link once on each instance (their caches and Redis).
warm=$(( LINKS / 20000 + 2 ))s
[ $smoke = 1 ] && warm=1s
for target in "$addr1" "$addr2"; do
  BENCH_LUA_DIR="$root/bench/lua" wrk -t1 -c"$CONNS" -d"$warm" -s "$root/bench/lua/warm.lua" "$target" >/dev/null
done

# measure LABEL URL: one wrk run; a row with the requests and each part's CPU ticks.
measure() {
  local label=$1 url=$2 out line wrk_user wrk_sys p
  local -a before after
  for p in "$pid1" "$pid2" "$haproxy_pid" "$redis_pid"; do before+=("$(cpu_ticks "$p")"); done
  before+=("$(pg_ticks "$work/pg")")
  out=$(BENCH_LUA_DIR="$root/bench/lua" wrk -t1 -c"$CONNS" -d"$DURATION" \
        -s "$root/bench/lua/zipf.lua" "$url" 2>&1; times) || { echo "$out" >&2; exit 1; }
  for p in "$pid1" "$pid2" "$haproxy_pid" "$redis_pid"; do after+=("$(cpu_ticks "$p")"); done
  after+=("$(pg_ticks "$work/pg")")
  line=$(echo "$out" | grep '^RESULT') || { echo "$out" >&2; exit 1; }
  read -r wrk_user wrk_sys < <(echo "$out" | tail -1)
  echo "$label $line snip_ticks=$(( after[0] - before[0] + after[1] - before[1] ))" \
    "lb_ticks=$(( after[2] - before[2] )) store_ticks=$(( after[3] - before[3] + after[4] - before[4] ))" \
    "load_ticks=$(( $(to_ticks "$wrk_user") + $(to_ticks "$wrk_sys") ))" >>"$work/rows"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >&2
echo "run: PROFILE=$PROFILE DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$CONNS LINKS=$LINKS" >&2
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  measure one "$addr1"
  measure lb-one "http://127.0.0.1:$port_one"
  measure lb-two "http://127.0.0.1:$port_two"
  measure tcp-two "http://127.0.0.1:$port_tcp"
done

# Sanity: through the balancer, both instances answered redirects.
for i in 1 2; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port_two/L0000001")
  [ "$code" = 302 ] || { echo "the balancer answered $code for a seeded link" >&2; exit 1; }
done
for p in "$pid1" "$pid2"; do
  [ "$(cpu_ticks "$p")" -gt 0 ] || { echo "an instance used no CPU" >&2; exit 1; }
done

python3 - "$work/rows" "$TICK" <<'PY'
import statistics, sys
rows, tick = sys.argv[1], int(sys.argv[2])
by = {}
for line in open(rows):
    label, *fields = line.split()
    f = dict(x.split("=", 1) for x in fields if "=" in x)
    by.setdefault(label, []).append(f)
def med(label, key):
    return statistics.median(float(f[key]) for f in by[label])
print("\nseveral instances (Zipf mix; medians; CPU in µs per request, all cores)")
print(f"{'subject':<8} {'req/s':>9} {'errors':>8} {'snip':>7} {'haproxy':>8} {'pg+redis':>9} "
      f"{'total':>7} {'wrk':>7}")
one = None
for label in ("one", "lb-one", "lb-two", "tcp-two"):
    if label not in by:
        continue
    rps = statistics.median(
        float(f["requests"]) / float(f["duration_us"]) * 1e6 for f in by[label])
    us = lambda k: statistics.median(
        float(f[k]) / tick * 1e6 / max(1.0, float(f["requests"])) for f in by[label])
    total = statistics.median(
        (float(f["snip_ticks"]) + float(f["lb_ticks"]) + float(f["store_ticks"])) / tick * 1e6
        / max(1.0, float(f["requests"])) for f in by[label])
    bad = med(label, "status_errors") + med(label, "connect_errors") + med(label, "read_errors") \
        + med(label, "timeouts")
    print(f"{label:<8} {rps:>9.0f} {bad:>8.0f} {us('snip_ticks'):>7.1f} {us('lb_ticks'):>8.1f} "
          f"{us('store_ticks'):>9.1f} {total:>7.1f} {us('load_ticks'):>7.1f}")
PY
