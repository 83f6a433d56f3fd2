# Shared by the bench scripts (sourced): the load tools, CPU pinning, the binary, starting
# servers and reading their CPU time.

need() { command -v "$1" >/dev/null 2>&1; }

# Installs wrk from Debian's packages when it is missing.
ensure_wrk() {
  if ! need wrk; then
    echo "installing wrk (Debian package)" >&2
    { apt-get update -qq && apt-get install -y -qq wrk; } >/dev/null 2>&1 || { echo "could not install wrk" >&2; exit 1; }
  fi
}

# Sets oha to oha's path, installing it with cargo when it is missing.
find_oha() {
  oha=$(command -v oha || true)
  [ -z "$oha" ] && [ -x "$HOME/.cargo/bin/oha" ] && oha="$HOME/.cargo/bin/oha"
  if [ -z "$oha" ]; then
    echo "installing oha (cargo install oha)" >&2
    cargo install oha --locked >&2 && oha="$HOME/.cargo/bin/oha"
  fi
}

# pin_server / pin_load: the server on CPU 0, the load on CPU 1 (when taskset and 2 CPUs exist).
pin_server=() pin_load=()
if need taskset && [ "$(nproc)" -ge 2 ]; then
  pin_server=(taskset -c 0) pin_load=(taskset -c 1)
fi

# snip_bin: sets bin to the directory holding snip: BIN_DIR when given (a copy of a build,
# measured as it is), else the build of PROFILE (release, profiling or debug), built first.
# Arguments: more cargo targets to build along (e.g. --example baseline).
snip_bin() {
  if [ -n "${BIN_DIR:-}" ]; then
    bin=$BIN_DIR
  else case $PROFILE in
    debug) cargo build --locked --bin snip "$@" >&2; bin=target/debug ;;
    *) cargo build --profile "$PROFILE" --locked --bin snip "$@" >&2; bin=target/$PROFILE ;;
  esac; fi
}

# start NAME CMD... : runs a server in the background (prefixed by the array start_prefix, e.g.
# a taskset pinning), output in $work/NAME.out and .err; waits (up to 20 s: a store of millions
# of links opens in seconds) for its "listening on" line, sets
# ADDR and PID and adds PID to the array pids.
start_prefix=()
start() {
  local name=$1; shift
  "${start_prefix[@]}" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  PID=$!
  pids+=("$PID")
  for _ in $(seq 1 400); do
    ADDR=$(grep -o 'listening on http://[^ ]*' "$work/$name.out" 2>/dev/null | head -1 | sed 's/listening on //') || true
    [ -n "$ADDR" ] && return 0
    sleep 0.05
  done
  echo "$name did not start:" >&2; cat "$work/$name.err" >&2; exit 1
}

# cpu_ticks PID: utime + stime of a process, in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)

# pg_ticks DIR: CPU ticks the PostgreSQL cluster whose files are in DIR (scripts/postgres.sh) has
# used: its postmaster, the backends alive now, and those that exited (the postmaster's reaped
# children).
pg_ticks() {
  local pm total child
  pm=$(head -1 "$1/data/postmaster.pid")
  total=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$pm/stat")
  for child in $(pgrep -P "$pm"); do
    total=$((total + $(cpu_ticks "$child" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# to_ticks "0m1.250s": bash's `times` format in clock ticks.
to_ticks() { awk -v t="$1" -v hz="$TICK" 'BEGIN { split(t, a, "m"); sub("s", "", a[2]); printf "%d", (a[1] * 60 + a[2]) * hz }'; }
