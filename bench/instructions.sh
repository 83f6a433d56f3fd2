#!/usr/bin/env bash
# Instructions per hot redirect, counted by callgrind in the server process: for each binary,
# `snip serve` under `valgrind --tool=callgrind` on a fresh SQLite store, one link, N redirects
# of it with `oha -c 8`, SIGTERM; the run with 25,000 redirects minus the one with 5,000,
# divided by 20,000, is one redirect with start-up and shutdown taken out. Counts do not depend
# on what else the machine is doing, so this compares binaries (a build profile, a change)
# where wall-clock runs on a shared 2-core VM cannot tell a few percent. Nearly deterministic:
# how many requests each wake-up of the server finds varies a little, and with it the count
# (about ±2 % between runs of one binary); RUNS=3 measures each binary three times, in turn,
# and prints every run and the median.
#
#   [RUNS=3] bench/instructions.sh BIN [BIN...]     e.g. target/release/snip /tmp/snip-before
#
# A binary named `baseline` (target/*/examples/baseline, the bare hyper server of bench/run.sh)
# is measured the same way: the instructions of the machine's limit, per request.
#
# AS_BENCH=1 measures the hot redirect as bench/run.sh's scenario (a) sends it: the server
# trusts loopback as a proxy (`--trusted-proxies 127.0.0.1`, as there), and wrk (`-c 8`) sends
# bench/lua/hot.lua's requests (four browsers' User-Agent, some with a Referer, no forwarding
# header); callgrind's counters are zeroed after 3 s of warm-up and dumped after 6 s more, and
# the count is divided by the requests wrk made in between.
#
# CACHE_SIM=1 (with AS_BENCH=1) also simulates the caches (`--cache-sim=yes`, sized like the
# host's L1 by valgrind) and prints the L1 instruction-cache and data-cache misses per redirect:
# on this machine's 32 KiB L1i, a hot redirect's code does not fit, so nearly every line of code
# a request runs is a miss, and the misses count the distinct code it runs.
#
# KEEP=DIR copies each run's callgrind dumps to DIR (BIN-name.RUN.N.out*), for
# `callgrind_annotate --inclusive=yes DIR/snip.1.0.out.1` (with CACHE_SIM=1, `--show=Ir,I1mr`).
#
# Needs valgrind (Debian) and oha (cargo install oha) or, with AS_BENCH=1, wrk (Debian);
# prints one line per binary.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/process.sh
command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind >/dev/null; }
if [ "${AS_BENCH:-0}" = 1 ]; then
  command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
else
  command -v oha >/dev/null || cargo install --locked --quiet oha
fi

if [ "${CACHE_SIM:-0}" = 1 ] && [ "${AS_BENCH:-0}" != 1 ]; then
  echo "instructions.sh: CACHE_SIM=1 needs AS_BENCH=1" >&2
  exit 2
fi

work=$(mktemp -d /tmp/snip-instructions.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# instructions BIN N: the server's total instruction count for N redirects (with AS_BENCH=1,
# N is not used: the count per redirect of 6 s of wrk).
instructions() {
  local bin n=$2 dir=$work/run-$RANDOM port key code requests
  bin=$(realpath "$1")
  mkdir -p "$dir"
  port=$(free_port)
  key=snip_instructions_$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  # The bare hyper baseline (examples/baseline) takes its address and answers any path.
  local args=(serve --listen "127.0.0.1:$port" --database "sqlite://$dir/snip.db" --admin-key "$key"
    --rate-limit 0)
  [ "${AS_BENCH:-0}" != 1 ] || args+=(--trusted-proxies 127.0.0.1)
  [ "$(basename "$bin")" != baseline ] || args=("127.0.0.1:$port")
  local sim=()
  [ "${CACHE_SIM:-0}" != 1 ] || sim=(--cache-sim=yes)
  (cd "$dir" && exec valgrind --tool=callgrind "${sim[@]}" --callgrind-out-file="$dir/out" "$bin" "${args[@]}" \
    >"$dir/stdout" 2>"$dir/stderr") &
  pid=$!
  local deadline=$((SECONDS + 120))
  until grep -q '^listening on' "$dir/stdout" 2>/dev/null; do
    alive "$pid" || { cat "$dir/stderr" >&2; echo "instructions.sh: $bin exited" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "instructions.sh: $bin did not start" >&2; exit 1; }
    sleep 0.1
  done
  code=x
  [ "$(basename "$bin")" = baseline ] ||
    code=$(curl -sf -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
      -d '{"url": "https://example.com/instructions"}' "http://127.0.0.1:$port/api/v1/links" | jq -r .code)
  if [ "${AS_BENCH:-0}" = 1 ]; then
    local hot=(env BENCH_LUA_DIR=bench/lua BENCH_HOT_CODE="$code" wrk -t1 -c8 -s bench/lua/hot.lua
      "http://127.0.0.1:$port")
    "${hot[@]}" -d3s >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    requests=$("${hot[@]}" -d6s | sed -n 's/^RESULT requests=\([0-9]*\).*/\1/p')
    callgrind_control -d "$pid" >/dev/null 2>&1
  else
    oha --no-tui -n "$n" -c 8 --redirect 0 "http://127.0.0.1:$port/$code" >/dev/null
  fi
  kill -TERM "$pid"
  wait_gone "$pid" "" 120 || { echo "instructions.sh: $bin did not stop" >&2; exit 1; }
  pid=
  if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP"
    for f in "$dir"/out*; do cp "$f" "$KEEP/$(basename "$bin").$run.$n.$(basename "$f")"; done
  fi
  if [ "${AS_BENCH:-0}" = 1 ]; then
    # The dump taken after the measured requests (out.1); the final one holds the shutdown.
    # With CACHE_SIM=1 the summary also holds Dr Dw I1mr D1mr D1mw ...: "IR:I1MR:D1MISSES".
    awk -v n="$requests" '/^summary:/ {
      if (NF >= 7) printf "%d:%d:%d\n", $2 / n, $5 / n + 0.5, ($6 + $7) / n + 0.5; else print int($2 / n) }' "$dir/out.1"
  else
    awk '/^summary:/ {print $2}' "$dir/out"*
  fi
}

runs=${RUNS:-1}
declare -A counts
for ((run = 1; run <= runs; run++)); do
  for bin in "$@"; do
    if [ "${AS_BENCH:-0}" = 1 ]; then
      counts[$bin]+=" $(instructions "$bin" 0)"
      continue
    fi
    small=$(instructions "$bin" 5000)
    large=$(instructions "$bin" 25000)
    counts[$bin]+=" $(( (large - small) / 20000 ))"
  done
done
# median FIELD WORDS...: the median of the FIELD-th (1-based) ':'-separated part of the words.
median() {
  local field=$1
  shift
  printf '%s\n' "$@" | cut -d: -f"$field" | sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}
for bin in "$@"; do
  # shellcheck disable=SC2086
  echo "$bin: $(median 1 ${counts[$bin]}) instructions per redirect (runs:${counts[$bin]}; $(du -b "$bin" | cut -f1) bytes)"
  if [ "${CACHE_SIM:-0}" = 1 ]; then
    # shellcheck disable=SC2086
    echo "$bin: $(median 2 ${counts[$bin]}) L1i misses, $(median 3 ${counts[$bin]}) L1d misses per redirect (runs as IR:L1I:L1D above)"
  fi
done
