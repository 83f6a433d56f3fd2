#!/usr/bin/env bash
# A throwaway Redis on loopback for the tests and examples.
#
#   scripts/redis.sh start DIR   installs Debian's redis-server if missing, starts a server whose
#                                files live in DIR on 127.0.0.1 and a free port, prints its URL
#   scripts/redis.sh stop DIR    stops it (a later start reuses its port if still free)
#
# Fails (non-zero exit, a message on stderr) when Redis cannot be installed or started.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case $cmd in
  start)
    if ! command -v redis-server >/dev/null 2>&1; then
      echo "installing redis-server (Debian package)" >&2
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } >&2 \
        || { echo "could not install redis-server" >&2; exit 1; }
    fi
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/port" ] && redis-cli -p "$(cat "$dir/port")" ping >/dev/null 2>&1; then
      echo "redis://127.0.0.1:$(cat "$dir/port")"
      exit 0
    fi
    # The port it had before, if it is still free (a restart keeps its clients' URL).
    port=$(cat "$dir/last-port" 2>/dev/null || free_port)
    python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null \
      || port=$(free_port)
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save '' --appendonly no \
      --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" >&2
    for _ in $(seq 1 100); do
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "$port" >"$dir/port"
        echo "$port" >"$dir/last-port"
        echo "redis://127.0.0.1:$port"
        exit 0
      fi
      sleep 0.05
    done
    echo "redis did not start on port $port:" >&2
    cat "$dir/redis.log" >&2 || true
    exit 1
    ;;
  stop)
    if [ -f "$dir/redis.pid" ]; then
      kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
      rm -f "$dir/redis.pid" "$dir/port"
    fi
    ;;
  *) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac
