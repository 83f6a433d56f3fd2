#!/usr/bin/env bash
# Scenario (g), scale: memory and cold-lookup latency with millions of links in the store.
#
#   bench/scale.sh            SCALE_SIZES=1000000,10000000 (run.sh calls this for scenario g)
#
# For each size: seed a store with `snip import` (timed); then twice, once with the OS page cache
# dropped (when allowed: "cold" means cold on disk too, not only outside snip's cache) and once
# with the whole store read into it (warm), start snip with its default
# cache (100,000 entries), wait for the filter of existing codes to be built, then request
# uniformly random existing codes at a fixed rate with oha (coordinated omission corrected):
# nearly every request misses the cache and reads SQLite. Prints RSS before and after, and the
# latency percentiles.
#
# Environment: SCALE_SIZES, G_RATE (5000 req/s), G_DURATION (30s), PROFILE (release|profiling|debug),
# DROP_CACHES (1: also a run with the page cache dropped, when /proc/sys/vm/drop_caches is
# writable; 0: the warm run only),
# G_TOOL (oha: fixed rate; wrk: closed loop, for the CI smoke run, which does not install oha),
# G_ARGS (more arguments for snip serve, e.g. "--sqlite-readers 8"), BIN_DIR (use its snip).
set -euo pipefail
cd "$(dirname "$0")/.."

SCALE_SIZES=${SCALE_SIZES:-1000000,10000000}
G_RATE=${G_RATE:-5000}
G_DURATION=${G_DURATION:-30s}
PROFILE=${PROFILE:-release}
DROP_CACHES=${DROP_CACHES:-1}
# Page-cache states measured per size: "dropped" (cold disk, when DROP_CACHES=1) and "warm".
states=(warm)
[ "$DROP_CACHES" = 1 ] && states=(dropped warm)
CONNS=${CONNS:-64}

G_TOOL=${G_TOOL:-oha}
root=$(pwd)

need() { command -v "$1" >/dev/null 2>&1; }
if [ "$G_TOOL" = oha ]; then
  oha=$(command -v oha || true)
  [ -z "$oha" ] && [ -x "$HOME/.cargo/bin/oha" ] && oha="$HOME/.cargo/bin/oha"
  if [ -z "$oha" ]; then
    echo "installing oha (cargo install oha)" >&2
    cargo install oha --locked >&2 && oha="$HOME/.cargo/bin/oha"
  fi
elif ! need wrk; then
  { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1 || { echo "could not install wrk" >&2; exit 1; }
fi
pin_server=() pin_load=()
if need taskset && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0) pin_load=(taskset -c 1)
fi
source "$root/bench/lib.sh"
snip_bin
start_prefix=("${pin_server[@]}")
pids=()

work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

key="bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
rss_mb() { awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

# serve DB [ARGS...]: starts snip, sets pid and addr.
serve() {
  local db=$1; shift
  # shellcheck disable=SC2086
  start scale "$bin/snip" serve --listen 127.0.0.1:0 --database "sqlite://$db" \
    --admin-key "$key" --log-format json --rate-limit 0 ${G_ARGS:-} "$@"
  pid=$PID addr=$ADDR
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

echo "size,import_s,db_mb,filter_s,rss_start_mb,rss_end_mb,cold,rate,p50,p99,p999,non3xx,errors" >"$work/rows"
IFS=, read -ra sizes <<<"$SCALE_SIZES"
for n in "${sizes[@]}"; do
  db="$work/scale-$n.db"
  serve "$db"; stop   # creates the store and its admin key
  echo "(g) importing $n links" >&2
  t0=$(date +%s.%N)
  awk -v n="$n" 'BEGIN { for (i = 1; i <= n; i++) printf "S%08d\thttps://example.com/articles/%d?utm_source=scale\n", i, i }' \
    | "$bin/snip" import --database "sqlite://$db" - >&2
  import_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  db_mb=$(du -m "$db" | cut -f1)

  for state in "${states[@]}"; do
  if [ "$state" = dropped ]; then
    sync
    if ! (echo 1 >/proc/sys/vm/drop_caches) 2>/dev/null; then
      echo "(g) cannot drop the page cache here: skipping the cold-disk run" >&2
      continue
    fi
    cold="page cache dropped"
  else
    cat "$db" "$db"-wal >/dev/null 2>&1 || true  # the whole store in the page cache
    cold="page cache warm"
  fi
  t0=$(date +%s.%N)
  serve "$db"
  # Wait until the filter of existing codes holds every code (it is built in the background).
  for _ in $(seq 1 1200); do
    codes=$(curl -s "$addr/metrics" | awk '/^snip_code_filter_codes / { print $2 }')
    python3 -c "import sys; sys.exit(0 if float('${codes:-0}' or 0) >= $n else 1)" && break
    sleep 0.1
  done
  filter_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
  # Building the filter read every code (the whole `code` index): drop the page cache again,
  # so that the cold run's lookups read index and table pages from the disk.
  if [ "$state" = dropped ]; then sync; echo 1 >/proc/sys/vm/drop_caches; fi
  rss_start=$(rss_mb "$pid")

  if [ "$G_TOOL" = oha ]; then
    python3 - "$n" "$addr" >"$work/urls.txt" <<'PY'
import random, sys
n, addr = int(sys.argv[1]), sys.argv[2]
rng = random.Random(7)
for _ in range(300_000):
    print(f"{addr}/S{rng.randint(1, n):08d}")
PY
    "${pin_load[@]}" "$oha" --no-tui --output-format json -q "$G_RATE" -z "$G_DURATION" \
      --latency-correction -c "$CONNS" --urls-from-file "$work/urls.txt" >"$work/g.json"
  else
    BENCH_LUA_DIR="$root/bench/lua" BENCH_LINKS=$n "${pin_load[@]}" wrk -t1 -c"$CONNS" \
      -d"$G_DURATION" -s "$root/bench/lua/scale.lua" "$addr" | grep '^RESULT' >"$work/g.txt"
  fi
  rss_end=$(rss_mb "$pid")
  stop
  python3 - "$work" "$G_TOOL" >>"$work/rows" <<PY
import json, sys
work, tool = sys.argv[1:]
if tool == "oha":
    d = json.load(open(f"{work}/g.json"))
    p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution") or {}
    non3xx = sum(v for k, v in codes.items() if not k.startswith("3"))
    errors = sum((d.get("errorDistribution") or {}).values())
    rate, p50, p99, p999 = d["summary"]["requestsPerSec"], p["p50"] * 1000, p["p99"] * 1000, p["p99.9"] * 1000
else:
    f = dict(kv.split("=") for kv in open(f"{work}/g.txt").read().split()[1:])
    rate = int(f["requests"]) / (int(f["duration_us"]) / 1e6)
    p50, p99, p999 = (float(f[k]) / 1000 for k in ("p50_us", "p99_us", "p999_us"))
    non3xx = int(f["status_errors"])
    errors = sum(int(f[k]) for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
print(f"$n,$import_s,$db_mb,$filter_s,$rss_start,$rss_end,$cold,{rate:.0f},{p50:.3f},{p99:.3f},{p999:.3f},{non3xx},{errors}")
PY
  done
  rm -f "$db" "$db"-wal "$db"-shm
done

python3 - "$work/rows" "$G_RATE" "$G_DURATION" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
print(f"\n(g) scale: uniformly random existing codes at {sys.argv[2]} req/s (oha) or closed loop (wrk) for {sys.argv[3]}, default cache (100,000 entries)")
print(f"{'links':>10} {'import s':>9} {'links/s':>9} {'db MB':>6} {'filter s':>9} {'RSS start MB':>13} {'RSS end MB':>11} "
      f"{'req/s':>6} {'p50 ms':>7} {'p99 ms':>7} {'p99.9 ms':>9} {'non-3xx':>8} {'errors':>7}  cold")
for r in rows:
    n, imp = int(r["size"]), float(r["import_s"])
    print(f"{n:>10} {imp:>9.1f} {n / imp:>9.0f} {r['db_mb']:>6} {float(r['filter_s']):>9.1f} {r['rss_start_mb']:>13} "
          f"{r['rss_end_mb']:>11} {r['rate']:>6} {r['p50']:>7} {r['p99']:>7} {r['p999']:>9} {r['non3xx']:>8} "
          f"{r['errors']:>7}  {r['cold']}")
PY
