#!/usr/bin/env bash
# Redirect latency under attack: the hot redirect (scenario (a) of bench/run.sh) measured
#   quiet      — nothing else going on,
#   held       — while IDLE connections that send nothing and SLOW slowloris connections are
#                held open (reconnecting as soon as the server closes them),
#   qr         — while QR clients loop on uncached 2048-pixel PNGs,
# alternating quiet / held / quiet / qr for ROUNDS rounds; the table shows medians and the ratio
# of each attack's p50/p99 to the quiet runs'. The attacker is bench/attack.py.
#
#   bench/attack.sh            full run (release build)
#   bench/attack.sh --smoke    a few seconds, debug build: proves the harness works
#
# The redirect load is a fixed RATE (oha, coordinated omission corrected) when oha is installed
# (`cargo install --locked oha`; the full run installs it), so that the latency is that of a
# server with room to spare and not of its queue; without oha (the smoke run), wrk's closed loop.
#
# Environment: DURATION (10s), ROUNDS (3), RATE (5000 req/s), CONNS (16 load connections),
# IDLE (1000), SLOW (200), QR (4 QR clients), PROFILE (release|debug). The server is pinned to
# CPU 0, the load generator and the attacker to CPU 1 when taskset exists.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

smoke=0
[ "${1:-}" = "--smoke" ] && smoke=1
if [ $smoke = 1 ]; then
  DURATION=${DURATION:-1s} ROUNDS=${ROUNDS:-1} IDLE=${IDLE:-100} SLOW=${SLOW:-20} QR=${QR:-1}
  PROFILE=${PROFILE:-debug}
fi
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-16}
IDLE=${IDLE:-1000}
SLOW=${SLOW:-200}
QR=${QR:-4}
RATE=${RATE:-5000}
PROFILE=${PROFILE:-release}

source "$root/bench/lib.sh"
ensure_wrk
oha=""
if [ $smoke = 0 ]; then find_oha; fi
if [ "$PROFILE" = release ]; then
  cargo build --release --locked --bin snip >&2
  bin=target/release/snip
else
  cargo build --locked --bin snip >&2
  bin=target/debug/snip
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

key="bench_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
"${pin_server[@]}" "$bin" serve --listen 127.0.0.1:0 --database "sqlite://$work/snip.db" \
  --admin-key "$key" --log-format json --rate-limit 0 >"$work/out" 2>"$work/err" &
pid=$!
pids+=("$pid")
addr=""
for _ in $(seq 1 200); do
  addr=$(grep -o 'listening on http://[^ ]*' "$work/out" 2>/dev/null | head -1 | sed 's/listening on //') || true
  [ -n "$addr" ] && break
  sleep 0.05
done
[ -n "$addr" ] || { echo "snip did not start:" >&2; cat "$work/err" >&2; exit 1; }
hostport=${addr#http://}
host=${hostport%:*} port=${hostport##*:}
code=$(curl -sf -X POST "$addr/api/v1/links" -H "Authorization: Bearer $key" \
  -H 'Content-Type: application/json' -d '{"url":"https://example.com/attacked"}' |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["code"])')

# measure LABEL: one load run on the hot link; appends a row to $work/rows.
measure() {
  local out line
  if [ -n "$oha" ]; then
    "${pin_load[@]}" "$oha" --no-tui --output-format json -q "$RATE" -z "$DURATION" \
      --latency-correction -c "$CONNS" --redirect 0 "$addr/$code" >"$work/oha.json"
    line=$(python3 - "$work/oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution") or {}
other = sum(v for k, v in codes.items() if k != "302")
# Requests still in flight when the run ends are "aborted due to deadline": not failures.
errors = sum(v for k, v in (d.get("errorDistribution") or {}).items() if "deadline" not in k) + other
n = sum(codes.values())
print(f"RESULT requests={n} duration_us={d['summary']['total'] * 1e6:.0f} "
      f"p50_us={p['p50'] * 1e6:.0f} p99_us={p['p99'] * 1e6:.0f} p999_us={p['p99.9'] * 1e6:.0f} "
      f"connect_errors=0 read_errors={errors} write_errors=0 timeouts=0")
PY
)
  else
    out=$(BENCH_LUA_DIR="$root/bench/lua" BENCH_HOT_CODE="$code" "${pin_load[@]}" wrk -t1 \
          -c"$CONNS" -d"$DURATION" -s "$root/bench/lua/hot.lua" "$addr" 2>&1) || { echo "$out" >&2; exit 1; }
    line=$(echo "$out" | grep '^RESULT') || { echo "$out" >&2; exit 1; }
  fi
  echo "$1 $line" >>"$work/rows"
}

# under LABEL ARGS...: measure while bench/attack.py runs with ARGS.
under() {
  local label=$1; shift
  "${pin_load[@]}" python3 "$root/bench/attack.py" "$host" "$port" "$@" >"$work/attack.out" 2>&1 &
  local attacker=$!
  for _ in $(seq 1 100); do grep -q READY "$work/attack.out" && break; sleep 0.05; done
  sleep 2 # let the connections open and the renders start
  measure "$label"
  kill -TERM "$attacker"; wait "$attacker" || true
  grep '^ATTACK' "$work/attack.out" | sed "s/^/$label /" >>"$work/attacks"
  sleep 2 # let the server close the attacker's connections and finish its renders
}

curl -s -o /dev/null "$addr/$code" # warm
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" >&2
echo "run: PROFILE=$PROFILE DURATION=$DURATION ROUNDS=$ROUNDS CONNS=$CONNS IDLE=$IDLE SLOW=$SLOW QR=$QR load=$([ -n "$oha" ] && echo "oha at $RATE req/s" || echo "wrk closed loop")" >&2
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS" >&2
  measure quiet
  under held --idle "$IDLE" --slowloris "$SLOW"
  measure quiet
  under qr --qr "$QR" --key "$key" --code "$code"
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$addr/$code")" = 302 ] || { echo "the link stopped redirecting" >&2; exit 1; }
cat "$work/attacks" >&2
cp "$work/rows" "${ROWS_OUT:-/dev/null}"
python3 - "$work/rows" <<'PY'
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    label, _, *fields = line.split()
    f = {k: float(v) for k, v in (x.split("=") for x in fields)}
    errors = f["connect_errors"] + f["read_errors"] + f["write_errors"] + f["timeouts"]
    runs[label].append((f["requests"] / (f["duration_us"] / 1e6), f["p50_us"], f["p99_us"], errors))
med = lambda rows, i: statistics.median(r[i] for r in rows)
q50, q99 = med(runs["quiet"], 1), med(runs["quiet"], 2)
print(f"{'while':<8} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'× quiet p50':>12} {'× quiet p99':>12} {'errors':>7}")
for label in ("quiet", "held", "qr"):
    r = runs[label]
    print(f"{label:<8} {med(r, 0):>9.0f} {med(r, 1) / 1000:>8.3f} {med(r, 2) / 1000:>8.3f} "
          f"{med(r, 1) / q50:>12.2f} {med(r, 2) / q99:>12.2f} {int(sum(x[3] for x in r)):>7}")
print(f"(medians of {len(runs['held'])} runs per attack, {len(runs['quiet'])} quiet runs)")
PY
