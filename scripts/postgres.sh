#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on loopback for the tests and examples.
#
#   scripts/postgres.sh start DIR   installs Debian's postgresql if initdb is missing, creates a
#                                   cluster in DIR (unless DIR has one), starts it on 127.0.0.1
#                                   and a free port with trust authentication, waits until it
#                                   accepts connections, prints its URL:
#                                   postgres://postgres@127.0.0.1:PORT/postgres
#   scripts/postgres.sh stop DIR [fast|immediate]
#                                   stops it (immediate: like a crash) and returns once it is
#                                   gone: its postmaster has exited and its port refuses
#                                   connections; a later start reuses the port if it is still
#                                   free
#   scripts/postgres.sh replica PRIMARY_DIR DIR
#                                   a streaming replica of the cluster in PRIMARY_DIR
#                                   (pg_basebackup -R), started like `start`; prints its URL
#
# Fails (non-zero exit, a message on stderr) when PostgreSQL cannot be installed or started, or
# is not gone within 30 s of a stop.
# Run as root, the server runs as the `postgres` user (PostgreSQL refuses to run as root).
set -euo pipefail

cmd=${1:-}
dir=${2:-}
usage="usage: $0 start DIR | stop DIR [fast|immediate] | replica PRIMARY_DIR DIR"
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "$usage" >&2; exit 2; }

die() { echo "postgres.sh: $*" >&2; exit 1; }

# shellcheck source=lib/process.sh
. "$(dirname "$0")/lib/process.sh"

# The directory of initdb/pg_ctl/pg_isready: PATH first, then Debian's versioned directories.
find_bin() {
  local initdb
  if initdb=$(command -v initdb 2>/dev/null); then
    dirname "$(readlink -f "$initdb")"
    return
  fi
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$found" ] && [ -x "$found/initdb" ] && echo "$found"
}

# Runs a PostgreSQL binary as the cluster's owner.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

url() { echo "postgres://postgres@127.0.0.1:$1/postgres"; }

# Seconds a stop may take until the server is gone.
STOP_TIMEOUT=30

# Waits until the postmaster PID has exited and PORT refuses connections; fails after
# STOP_TIMEOUT seconds.
wait_stopped() {
  local rc=0
  wait_gone "$1" "$2" "$STOP_TIMEOUT" || rc=$?
  case $rc in
    0) ;;
    1) die "the postmaster (pid $1) is still running ${STOP_TIMEOUT}s after the stop" ;;
    *) die "port $2 still accepts connections ${STOP_TIMEOUT}s after the postmaster (pid $1) was stopped" ;;
  esac
}

bin=$(find_bin || true)

# Installs PostgreSQL if needed and makes DIR a directory the postgres user owns and reaches.
prepare() {
  local dir=$1 up
  if [ -z "$bin" ]; then
    echo "installing postgresql (Debian package)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } >&2 \
      || die "could not install postgresql"
    bin=$(find_bin || true)
    [ -n "$bin" ] || die "postgresql is installed but initdb was not found"
  fi
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root needs a postgres user to own the cluster"
  fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$dir"
    # The postgres user must be able to reach DIR (mktemp -d makes 0700 directories).
    up=$(dirname "$(cd "$dir" && pwd)")
    while [ "$up" != / ]; do
      if ! runuser -u postgres -- test -x "$up"; then
        echo "postgres.sh: allowing the postgres user to traverse $up (chmod o+x)" >&2
        chmod o+x "$up"
      fi
      up=$(dirname "$up")
    done
  fi
}

# Starts the cluster in DIR/data on 127.0.0.1: on the port it had before if that is free, else
# on a free one; prints its URL and exits.
launch() {
  local dir=$1 data=$1/data port
  # A port can be taken between choosing it and binding it: try a few.
  for attempt in 1 2 3 4; do
    if [ "$attempt" = 1 ] && [ -f "$dir/last-port" ]; then
      port=$(cat "$dir/last-port")
    else
      port=$(free_port)
    fi
    if as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories='$dir'" \
        start >&2; then
      for _ in $(seq 1 100); do
        if as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
          echo "$port" >"$dir/port"
          echo "$port" >"$dir/last-port"
          url "$port"
          exit 0
        fi
        sleep 0.1
      done
      as_owner "$bin/pg_ctl" -D "$data" -m fast stop >&2 || true
    fi
  done
  tail -n 30 "$dir/server.log" >&2 2>/dev/null || true
  die "PostgreSQL did not start (cluster in $data)"
}

case $cmd in
  start)
    prepare "$dir"
    dir=$(cd "$dir" && pwd)
    data=$dir/data

    if [ -f "$dir/port" ] && as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$(cat "$dir/port")"; then
      url "$(cat "$dir/port")"
      exit 0
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; die "initdb failed in $data"; }
    fi
    launch "$dir"
    ;;
  stop)
    mode=${3:-fast}
    case $mode in fast|immediate) ;; *) echo "$usage" >&2; exit 2 ;; esac
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/data/postmaster.pid" ]; then
      [ -n "$bin" ] || die "pg_ctl not found"
      # postmaster.pid: the postmaster's pid on line 1, its port on line 4.
      pid=$(sed -n 1p "$dir/data/postmaster.pid")
      port=$(sed -n 4p "$dir/data/postmaster.pid")
      # A pid file left by a crash may name a process that is not PostgreSQL at all.
      if [ -n "$pid" ] && alive "$pid" && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ]; then
        # pg_ctl -w returns once the pid file is gone; wait_stopped checks the process and port.
        as_owner "$bin/pg_ctl" -D "$dir/data" -m "$mode" -w -t "$STOP_TIMEOUT" stop >&2 \
          || die "could not stop the cluster in $dir/data"
        wait_stopped "$pid" "$port"
      fi
    fi
    rm -f "$dir/port"
    ;;
  replica)
    primary=$(cd "$dir" && pwd)
    dir=${3:-}
    [ -n "$dir" ] || { echo "$usage" >&2; exit 2; }
    [ -f "$primary/port" ] || die "no running cluster in $primary"
    prepare "$dir"
    dir=$(cd "$dir" && pwd)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      # -R writes standby.signal and primary_conninfo: the copy starts as a streaming replica.
      as_owner "$bin/pg_basebackup" -h 127.0.0.1 -p "$(cat "$primary/port")" -U postgres \
        -D "$dir/data" -R -X stream >"$dir/basebackup.log" 2>&1 \
        || { cat "$dir/basebackup.log" >&2; die "pg_basebackup failed"; }
    fi
    launch "$dir"
    ;;
  *) echo "$usage" >&2; exit 2 ;;
esac
