#!/usr/bin/env bash
# The benchmark harness: snip side by side with a bare-hyper baseline, in one run.
#
#   bench/run.sh              full run (release build, 100k links, 3 alternating rounds of 10 s)
#                             scenarios a-e and h alternate; f (fixed rate) runs once at the end,
#                             then g (scale: 1M and 10M links, bench/scale.sh)
#   bench/run.sh --smoke      a few seconds, debug build is fine: proves the harness still works
#
# Scenario w (PostgreSQL): durable creates at each --write-consistency level (one, quorum,
# all), side by side; PG_SYNC_STANDBY=1 attaches a synchronous standby first (for e and w).
# Scenario u: UNIFORM_LINKS (10000) links requested uniformly, every request a new visitor.
# Scenarios A and U: (a) and (u) with the baseline and snip loaded at the same time (each by its
# own wrk), so that the machine's noise hits both alike: the steadier CPU ratio (measure_pair).
# Each row reports the CPU of the server, of the store (PostgreSQL's processes; 0 for SQLite)
# and of the load generator: a baseline whose wrk used a whole core is load-generator-bound.
# Environment: DURATION (10s), ROUNDS (3), CONNS (64), LINKS (100000), SCENARIOS (a,b,c,d,e,u,f,h,g; A and U on request),
# BACKEND (sqlite, or postgres: a throwaway PostgreSQL on loopback from scripts/postgres.sh, pinned
# to the server's core; scenario g is SQLite-only),
# PERF_OUT (a directory: each run's server is recorded with `perf record --call-graph dwarf` into LABEL.data; the
# recording costs CPU, so its table is not a measurement), PROFILE (release|profiling|debug), BIN_DIR (use the snip and examples/baseline of this directory
# instead of building), RATE (8000) and F_DURATION (30s) for the fixed-rate scenario (f),
# BEFORE_BIN (another snip binary, e.g. built from the previous commit: scenarios (a), (b), (u) and (e)
# then also measure it, as subject "before", to check a change against the code it replaces). The server is pinned to CPU 0 and wrk to CPU 1 when taskset exists.
# ROWS_OUT (a file: the raw rows are copied there, e.g. to merge several runs with bench/table.py).
# Every scenario runs baseline and snip alternately (A B A B ...) and the table shows medians, and
# the CPU ratio of each round to the baseline measured just before it (median and range).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke = 1 ]; then
  DURATION=${DURATION:-1s} ROUNDS=${ROUNDS:-1} LINKS=${LINKS:-1000} CONNS=${CONNS:-16}
  PROFILE=${PROFILE:-debug} SCENARIOS=${SCENARIOS:-a,b,c,d,e,u,A,g}
  export SCALE_SIZES=${SCALE_SIZES:-2000} G_DURATION=${G_DURATION:-1s} DROP_CACHES=${DROP_CACHES:-0} G_TOOL=${G_TOOL:-wrk}
fi
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-64}
LINKS=${LINKS:-100000}
PROFILE=${PROFILE:-release}
SCENARIOS=${SCENARIOS:-a,b,c,d,e,u,f,h,g}
RATE=${RATE:-8000}
BACKEND=${BACKEND:-sqlite}
F_DURATION=${F_DURATION:-30s}

source "$root/bench/lib.sh"
ensure_wrk
oha=""
if [[ $SCENARIOS == *f* ]]; then find_oha; fi

snip_bin --example baseline
start_prefix=("${pin_server[@]}")

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "$BACKEND" = postgres ]; then
    bash "$root/scripts/postgres.sh" stop "$work/pg-replica" >/dev/null 2>&1
    bash "$root/scripts/postgres.sh" stop "$work/pg" >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# store_ticks: CPU ticks the PostgreSQL cluster has used; 0 for the embedded store.
store_ticks() {
  if [ "$BACKEND" = postgres ]; then pg_ticks "$work/pg"; else echo 0; fi
}

# load URL SCRIPT: one wrk run of bench/lua/SCRIPT against URL (on the load core); prints
# wrk's output, then the CPU time wrk used (`times` in the same subshell: its second line is
# the children's, and wrk is the only child).
load() {
  BENCH_LUA_DIR="$root/bench/lua" "${pin_load[@]}" wrk -t1 -c"$CONNS" -d"$DURATION" \
    -s "$root/bench/lua/$2" "$1" 2>&1
  times
}

# row LABEL OUT CPU_TICKS STORE_TICKS: appends to $work/rows the row of one `load` (its output
# OUT), with the CPU the server and the store (PostgreSQL) used during it.
row() {
  local line wrk_user wrk_sys
  line=$(echo "$2" | grep '^RESULT') || { echo "$2" >&2; exit 1; }
  read -r wrk_user wrk_sys < <(echo "$2" | tail -1)
  echo "$1 $line cpu_ticks=$3 store_ticks=$4" \
    "load_ticks=$(( $(to_ticks "$wrk_user") + $(to_ticks "$wrk_sys") ))" >>"$work/rows"
}

# measure LABEL PID URL SCRIPT: one wrk run, alone; appends its row.
measure() {
  local label=$1 pid=$2 url=$3 script=$4
  local before after out store_before store_after
  local perf=""
  if [ -n "${PERF_OUT:-}" ]; then
    mkdir -p "$PERF_OUT"
    perf record -q -F 499 --call-graph dwarf,16384 -p "$pid" -o "$PERF_OUT/${label/:/-}.data" >/dev/null 2>&1 &
    perf=$!
  fi
  before=$(cpu_ticks "$pid") store_before=$(store_ticks)
  out=$(load "$url" "$script") || { echo "$out" >&2; exit 1; }
  after=$(cpu_ticks "$pid") store_after=$(store_ticks)
  if [ -n "$perf" ]; then kill -INT "$perf"; wait "$perf" || true; fi
  row "$label" "$out" $((after - before)) $((store_after - store_before))
}

# measure_pair SCENARIO SCRIPT: the baseline and snip under load at the same time, each by its
# own wrk (both on the load core, both servers on the server core), for scenarios (A) and (U).
# Whatever the VM's neighbours do to the machine during the run, they do to both servers, so
# the CPU ratio of a round is not moved by it (measured one after the other, single rounds
# ranged 0.5-1.8x on a noisy day). Each wrk gets half the load core: both rows are
# load-generator-bound, and the servers answer about half as many requests each as alone.
measure_pair() {
  local scen=$1 script=$2
  local b0 s0 b1 s1 loads=()
  b0=$(cpu_ticks "$base_pid") s0=$(cpu_ticks "$snip_pid")
  load "$base_addr" "$script" >"$work/pair-baseline" &
  loads+=($!)
  load "$snip_addr" "$script" >"$work/pair-snip" &
  loads+=($!)
  wait "${loads[@]}"
  b1=$(cpu_ticks "$base_pid") s1=$(cpu_ticks "$snip_pid")
  row "$scen:baseline" "$(cat "$work/pair-baseline")" $((b1 - b0)) 0
  row "$scen:snip" "$(cat "$work/pair-snip")" $((s1 - s0)) 0
}

key="bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
# (u) requests existing links only: at most LINKS of them.
UNIFORM_LINKS=${UNIFORM_LINKS:-10000}
[ "$UNIFORM_LINKS" -le "$LINKS" ] || UNIFORM_LINKS=$LINKS
export BENCH_KEY=$key BENCH_LINKS=$LINKS BENCH_UNIFORM_LINKS=$UNIFORM_LINKS

# The store: LINKS links L0000001.. imported in bulk (not over HTTP), and copies of it for the
# cache-off, clicks-off and exact-clicks servers.
links_file() {
  awk -v n="$LINKS" 'BEGIN { for (i = 1; i <= n; i++) printf "L%07d\thttps://example.com/articles/%d?utm_source=bench\n", i, i }'
}
if [ "$BACKEND" = postgres ]; then
  # A throwaway PostgreSQL on loopback, on the server's core (like the embedded store).
  pg=$("${pin_server[@]}" bash "$root/scripts/postgres.sh" start "$work/pg")
  pg_db() { echo "${pg%/*}/$1"; }
  psql "$pg" -Xqc "CREATE DATABASE snip" >&2
  db_main=$(pg_db snip)
  start seed "$bin/snip" serve --listen 127.0.0.1:0 --database "$db_main" --admin-key "$key" --log-format json
  kill "$PID"; wait "$PID" 2>/dev/null || true
  links_file | "$bin/snip" import --database "$db_main" - >&2
  # One database per server: a create's change notification is then heard by its own server
  # only, as with one instance (NOTIFY is per database), not by every server of the run.
  for copy in nocache off exact before w_one w_quorum w_all; do
    psql "$pg" -Xqc "CREATE DATABASE $copy TEMPLATE snip" >&2
  done
  db_nocache=$(pg_db nocache) db_off=$(pg_db off) db_exact=$(pg_db exact) db_before=$(pg_db before)
  db_w_one=$(pg_db w_one) db_w_quorum=$(pg_db w_quorum) db_w_all=$(pg_db w_all)
  if [ "${PG_SYNC_STANDBY:-0}" = 1 ]; then
    # A streaming replica on the same core, made the synchronous standby: a COMMIT at quorum
    # (`synchronous_commit=on`, the server's default) waits for its flush.
    "${pin_server[@]}" bash "$root/scripts/postgres.sh" replica "$work/pg" "$work/pg-replica" >/dev/null
    psql "$pg" -Xqc "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()" >&2
    for _ in $(seq 1 100); do
      state=$(psql "$pg" -XAtc "SELECT sync_state FROM pg_stat_replication LIMIT 1")
      [ "$state" = sync ] && break
      sleep 0.1
    done
    [ "$state" = sync ] || { echo "the replica did not become a synchronous standby" >&2; exit 1; }
    echo "synchronous standby attached" >&2
  fi
else
  db="$work/snip.db"
  start seed "$bin/snip" serve --listen 127.0.0.1:0 --database "sqlite://$db" --admin-key "$key" --log-format json
  kill "$PID"; wait "$PID" 2>/dev/null || true
  links_file | "$bin/snip" import --database "sqlite://$db" - >&2
  # Copied while no process has the store open (a copy of a live WAL database may be torn).
  cp "$db" "$work/nocache.db"
  cp "$db" "$work/off.db"
  cp "$db" "$work/exact.db"
  cp "$db" "$work/before.db"
  db_main="sqlite://$db" db_nocache="sqlite://$work/nocache.db"
  db_off="sqlite://$work/off.db" db_exact="sqlite://$work/exact.db"
  db_before="sqlite://$work/before.db"
fi

# Loopback is the trusted proxy: scenario (u) gives every request its own visitor address in
# X-Forwarded-For (the other scenarios send none).
common=(--listen 127.0.0.1:0 --admin-key "$key" --log-format json --rate-limit 0
        --trusted-proxies 127.0.0.1)
start baseline "$bin/examples/baseline" 127.0.0.1:0; base_addr=$ADDR base_pid=$PID
# The cache holds the whole working set (the scenario is "the cache absorbs the load").
start snip "$bin/snip" serve "${common[@]}" --database "$db_main" --cache-capacity $((LINKS * 2))
snip_addr=$ADDR snip_pid=$PID
if [ -n "${BEFORE_BIN:-}" ]; then
  start before "$BEFORE_BIN" serve "${common[@]}" --database "$db_before" \
    --cache-capacity $((LINKS * 2))
  before_addr=$ADDR before_pid=$PID
fi
if [[ $SCENARIOS == *c* ]]; then
  start nocache "$bin/snip" serve "${common[@]}" --database "$db_nocache" --cache-capacity 0
  nocache_addr=$ADDR nocache_pid=$PID
fi

if [[ $SCENARIOS == *w* ]]; then
  [ "$BACKEND" = postgres ] || { echo "scenario w needs BACKEND=postgres" >&2; exit 2; }
  for level in one quorum all; do
    eval "db_w=\$db_w_$level"
    start "w-$level" "$bin/snip" serve "${common[@]}" --database "$db_w" --write-consistency "$level"
    eval "w_${level}_addr=\$ADDR w_${level}_pid=\$PID"
  done
fi

if [[ $SCENARIOS == *h* ]]; then
  start off "$bin/snip" serve "${common[@]}" --database "$db_off" \
    --cache-capacity $((LINKS * 2)) --click-mode off
  off_addr=$ADDR off_pid=$PID
  start exact "$bin/snip" serve "${common[@]}" --database "$db_exact" \
    --cache-capacity $((LINKS * 2)) --click-mode exact
  exact_addr=$ADDR exact_pid=$PID
fi

# Warm-up, not measured: every link once (fills the cache and SQLite's page cache).
warm=$(( LINKS / 20000 + 2 ))s
[ $smoke = 1 ] && warm=1s
for target in "$snip_addr" ${before_addr:+"$before_addr"} ${nocache_addr:+"$nocache_addr"} ${off_addr:+"$off_addr"} ${exact_addr:+"$exact_addr"}; do
  BENCH_LUA_DIR="$root/bench/lua" "${pin_load[@]}" wrk -t1 -c"$CONNS" -d"$warm" -s "$root/bench/lua/warm.lua" "$target" >/dev/null
done

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >&2
echo "run: BACKEND=$BACKEND PROFILE=$PROFILE DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$CONNS LINKS=$LINKS" >&2

for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  IFS=, read -ra list <<<"$SCENARIOS"
  for s in "${list[@]}"; do
    case $s in
      a) measure "a:baseline" "$base_pid" "$base_addr" hot.lua
         measure "a:snip" "$snip_pid" "$snip_addr" hot.lua
         if [ -n "${before_addr:-}" ]; then measure "a:before" "$before_pid" "$before_addr" hot.lua; fi ;;
      b) measure "b:baseline" "$base_pid" "$base_addr" zipf.lua
         measure "b:snip" "$snip_pid" "$snip_addr" zipf.lua
         if [ -n "${before_addr:-}" ]; then measure "b:before" "$before_pid" "$before_addr" zipf.lua; fi ;;
      c) measure "c:baseline" "$base_pid" "$base_addr" zipf.lua
         measure "c:snip" "$nocache_pid" "$nocache_addr" zipf.lua ;;
      d) measure "d:baseline" "$base_pid" "$base_addr" unknown.lua
         measure "d:snip" "$snip_pid" "$snip_addr" unknown.lua ;;
      # Creates: snip and before take turns going first (the second of a pair measured about
      # 7 % faster either way, in the disk's wake of the first's writes).
      e) if [ -n "${before_addr:-}" ] && [ $((round % 2)) = 0 ]; then
           measure "e:before" "$before_pid" "$before_addr" create.lua
           measure "e:snip" "$snip_pid" "$snip_addr" create.lua
         else
           measure "e:snip" "$snip_pid" "$snip_addr" create.lua
           if [ -n "${before_addr:-}" ]; then measure "e:before" "$before_pid" "$before_addr" create.lua; fi
         fi ;;
      w) for level in one quorum all; do
           eval "measure w:$level \$w_${level}_pid \$w_${level}_addr create.lua"
         done ;;
      u) measure "u:baseline" "$base_pid" "$base_addr" uniform.lua
         measure "u:snip" "$snip_pid" "$snip_addr" uniform.lua
         if [ -n "${before_addr:-}" ]; then measure "u:before" "$before_pid" "$before_addr" uniform.lua; fi ;;
      A) measure_pair A hot.lua ;;
      U) measure_pair U uniform.lua ;;
      f|g) ;; # fixed rate and scale: once, after the rounds
      h) measure "h:off" "$off_pid" "$off_addr" zipf.lua
         measure "h:snip" "$snip_pid" "$snip_addr" zipf.lua
         measure "h:exact" "$exact_pid" "$exact_addr" zipf.lua ;;
      *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
  done
done

# Sanity: the redirects really were redirects, the creates really were created.
code=$(curl -s -o /dev/null -w '%{http_code}' "$snip_addr/L0000001")
[ "$code" = 302 ] || { echo "snip answered $code for a seeded link" >&2; exit 1; }

[ -s "$work/rows" ] && python3 "$root/bench/table.py" "$work/rows" "$TICK"
if [ -n "${ROWS_OUT:-}" ] && [ -s "$work/rows" ]; then cp "$work/rows" "$ROWS_OUT"; fi

# (f) Fixed rate with coordinated omission corrected (oha -q --latency-correction), mix (b):
# the URL list is drawn from the same Zipf distribution as zipf.lua.
if [[ $SCENARIOS == *f* ]]; then
  for subject in baseline snip; do
    addr=$base_addr; [ $subject = snip ] && addr=$snip_addr
    python3 - "$LINKS" "$addr" >"$work/urls-$subject.txt" <<'PY'
import bisect, random, sys
n, addr = int(sys.argv[1]), sys.argv[2]
cdf, total = [], 0.0
for k in range(1, n + 1):
    total += 1.0 / k
    cdf.append(total)
rng = random.Random(42)
for _ in range(200_000):
    print(f"{addr}/L{bisect.bisect_left(cdf, rng.random() * total) + 1:07d}")
PY
    "${pin_load[@]}" "$oha" --no-tui --output-format json -q "$RATE" -z "$F_DURATION" \
      --latency-correction -c "$CONNS" --urls-from-file "$work/urls-$subject.txt" >"$work/f-$subject.json"
  done
  python3 - "$work" "$RATE" "$F_DURATION" <<'PY'
import json, sys
work, rate, duration = sys.argv[1:]
print(f"\n(f) fixed rate {rate} req/s for {duration}, Zipf mix, coordinated omission corrected")
print(f"{'subject':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'non-3xx':>8} {'errors':>7}")
for subject in ("baseline", "snip"):
    d = json.load(open(f"{work}/f-{subject}.json"))
    p = d["latencyPercentiles"]
    codes = d.get("statusCodeDistribution") or {}
    non3xx = sum(v for k, v in codes.items() if not k.startswith("3"))
    errors = sum((d.get("errorDistribution") or {}).values())
    print(f"{subject:<9} {d['summary']['requestsPerSec']:>8.0f} {p['p50'] * 1000:>8.3f} "
          f"{p['p99'] * 1000:>8.3f} {p['p99.9'] * 1000:>9.3f} {non3xx:>8} {errors:>7}")
PY
fi

# (g) Scale: its own stores of millions of links (bench/scale.sh), after everything else.
if [[ $SCENARIOS == *g* ]]; then
  cleanup; trap - EXIT
  PROFILE=$PROFILE CONNS=$CONNS bash "$root/bench/scale.sh"
fi
