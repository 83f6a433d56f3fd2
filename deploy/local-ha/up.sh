#!/usr/bin/env bash
# The reference production topology, on loopback, with one command:
#
#   etcd (one member) ─ three PostgreSQL nodes under Patroni (strict synchronous replication)
#   HAProxy: :WRITE → the current primary, :READ → the replicas (both checked through Patroni's
#            REST API: GET /primary, GET /replica), :HTTP → the snip instances (fall 3: out
#            after 3 consecutive failed checks): those that hear the database (GET /health), or,
#            when none does, those that can still serve redirects from their cache
#            (GET /health/ready)
#   Redis, and SNIP_INSTANCES (3) snip instances on the write and read frontends
#
#   deploy/local-ha/up.sh        start everything (installs Debian's packages when missing)
#   deploy/local-ha/down.sh      stop everything and remove the state
#
# Environment: HA_DIR (/tmp/snip-ha: all state, logs and the generated configuration),
# HA_PORT (21000: base of the ports used, all below 32768 so that restarted servers never
# collide with the kernel's ephemeral client ports), SNIP_INSTANCES (3), SNIP_BIN (built with
# `cargo build --release` when unset). The files under HA_DIR/conf are what a deployment
# uses with its own addresses. Prints the endpoints and writes them to HA_DIR/env.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
HA_DIR=${HA_DIR:-/tmp/snip-ha}
HA_PORT=${HA_PORT:-21000}
SNIP_INSTANCES=${SNIP_INSTANCES:-3}
die() { echo "local-ha: $*" >&2; exit 1; }

# Ports.
etcd_client=$((HA_PORT + 379)) etcd_peer=$((HA_PORT + 380))
pg_port() { echo $((HA_PORT + 431 + $1)); }     # nodes 1..3
rest_port() { echo $((HA_PORT + 7 + $1)); }     # Patroni REST API of nodes 1..3
write_port=$((HA_PORT + 500)) read_port=$((HA_PORT + 501)) stats_port=$((HA_PORT + 502))
http_port=$((HA_PORT + 80))
snip_port() { echo $((HA_PORT + 80 + $1)); }    # instances 1..N
redis_port=$((HA_PORT + 637))
# Instance i reaches the database frontends from its own loopback address, as if from its own
# host: the chaos suite cuts or slows one instance's database link by that address.
snip_db_addr() { echo "127.0.0.$((10 + $1))"; }
db_binds() { # db_binds PORT: the bind lines of a database frontend
  echo "    bind 127.0.0.1:$1"
  for i in $(seq 1 "$SNIP_INSTANCES"); do echo "    bind $(snip_db_addr "$i"):$1"; done
}

need_pkgs=()
command -v patroni >/dev/null || need_pkgs+=(patroni)
command -v etcd >/dev/null || need_pkgs+=(etcd-server)
command -v etcdctl >/dev/null || need_pkgs+=(etcd-client)
command -v haproxy >/dev/null || need_pkgs+=(haproxy)
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1 || need_pkgs+=(postgresql)
command -v curl >/dev/null || need_pkgs+=(curl)
command -v python3 >/dev/null || need_pkgs+=(python3)  # the chaos suite
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "installing ${need_pkgs[*]} (Debian packages)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}"; } >&2 \
    || die "could not install ${need_pkgs[*]}"
fi
pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
[ "$(id -u)" = 0 ] || die "run as root (Patroni and PostgreSQL run as the postgres user)"

if [ -z "${SNIP_BIN:-}" ]; then
  (cd "$root" && cargo build --release --locked --bin snip >&2)
  SNIP_BIN=$root/target/release/snip
fi

[ -e "$HA_DIR" ] && die "$HA_DIR exists: run deploy/local-ha/down.sh first"
mkdir -p "$HA_DIR"/{conf,log,run}
chmod 755 "$HA_DIR"
up=$(dirname "$HA_DIR")
while [ "$up" != / ]; do chmod o+x "$up" 2>/dev/null || true; up=$(dirname "$up"); done

wait_for() { # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what did not come up within ${limit}s (logs in $HA_DIR/log)"
}

# 1. etcd: one member, v3 API.
mkdir -p "$HA_DIR/etcd"
setsid etcd --name ha1 --data-dir "$HA_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "ha1=http://127.0.0.1:$etcd_peer" </dev/null >"$HA_DIR/log/etcd.log" 2>&1 &
echo $! >"$HA_DIR/run/etcd.pid"
wait_for 20 etcd env ETCDCTL_API=3 etcdctl --endpoints "127.0.0.1:$etcd_client" endpoint health

# 2. Three PostgreSQL nodes under Patroni.
for n in 1 2 3; do
  node=$HA_DIR/pg$n
  mkdir -p "$node"
  chown postgres: "$node"
  chmod 700 "$node"
  cat >"$HA_DIR/conf/pg$n.yml" <<YML
scope: snip
name: pg$n
restapi:
  listen: 127.0.0.1:$(rest_port $n)
  connect_address: 127.0.0.1:$(rest_port $n)
etcd3:
  host: 127.0.0.1:$etcd_client
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 2
    retry_timeout: 3
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    synchronous_mode_strict: true
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: "on"
        wal_retrieve_retry_interval: 500ms
        max_connections: 200
        superuser_reserved_connections: 5
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:$(pg_port $n)
  connect_address: 127.0.0.1:$(pg_port $n)
  data_dir: $node/data
  bin_dir: $pg_bin
  pgpass: $node/pgpass
  authentication:
    superuser:
      username: postgres
      password: postgres
    replication:
      username: replicator
      password: replicator
    rewind:
      username: postgres
      password: postgres
  parameters:
    unix_socket_directories: $node
YML
  chown postgres: "$HA_DIR/conf/pg$n.yml"
  (cd / && exec setsid -f runuser -u postgres -- patroni "$HA_DIR/conf/pg$n.yml" \
    </dev/null >"$HA_DIR/log/patroni-pg$n.log" 2>&1)
done
primary_up() { curl -sf "http://127.0.0.1:$(rest_port 1)/primary" || curl -sf "http://127.0.0.1:$(rest_port 2)/primary" || curl -sf "http://127.0.0.1:$(rest_port 3)/primary"; }
wait_for 90 "a Patroni primary" primary_up
replicas_up() { [ "$(for n in 1 2 3; do curl -s -o /dev/null -w '%{http_code}\n' "http://127.0.0.1:$(rest_port $n)/replica"; done | grep -c 200)" -ge 2 ]; }
wait_for 120 "two Patroni replicas" replicas_up

# 3. HAProxy.
snip_backend() { # the lines both HTTP backends share, then the servers
  cat <<LINES
    mode http
    balance roundrobin
    timeout connect 2s
    timeout server 30s
    timeout check 1s
    http-check expect status 200
    # A refused connection (an instance restarting) is retried on another instance for every
    # method; a 503 (this instance cannot reach the store for a link it has not cached) only
    # for GET and HEAD: redirects.
    retry-on conn-failure empty-response 503
    http-request disable-l7-retry unless METH_GET
    retries 2
    option redispatch 1
    default-server inter 1s fastinter 500ms fall 3 rise 2
LINES
  for i in $(seq 1 "$SNIP_INSTANCES"); do echo "    server snip$i 127.0.0.1:$(snip_port "$i") check"; done
}
cat >"$HA_DIR/conf/haproxy.cfg" <<CFG
global
    maxconn 4000
    pidfile $HA_DIR/run/haproxy.pid

defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s

# Writes: only the node Patroni calls primary. on-marked-down shuts the sessions of a demoted
# or orphaned primary, so pooled connections cannot keep writing to it.
listen postgres_write
$(db_binds "$write_port")
    option httpchk GET /primary
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
$(for n in 1 2 3; do echo "    server pg$n 127.0.0.1:$(pg_port $n) check port $(rest_port $n)"; done)

# Reads for the redirect path: the replicas.
listen postgres_read
$(db_binds "$read_port")
    balance roundrobin
    option httpchk GET /replica
    http-check expect status 200
    default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions
$(for n in 1 2 3; do echo "    server pg$n 127.0.0.1:$(pg_port $n) check port $(rest_port $n)"; done)

# The service. Instances that hear the database (GET /health: 200 unless the database or its
# change feed is out of reach) take the traffic; an instance cut off from the database leaves
# after 3 failed checks, so that it cannot keep answering destinations changed elsewhere.
# When no instance hears the database (the whole cluster is down), the instances that can
# still serve redirects from their caches (GET /health/ready) take it: redirects are AP.
frontend snip_http
    mode http
    bind 127.0.0.1:$http_port
    timeout client 30s
    use_backend snip if { nbsrv(snip) gt 0 }
    default_backend snip_cache

backend snip
    option httpchk GET /health
$(snip_backend)

backend snip_cache
    option httpchk GET /health/ready
$(snip_backend)

listen stats
    mode http
    bind 127.0.0.1:$stats_port
    stats enable
    stats uri /
CFG
haproxy -D -f "$HA_DIR/conf/haproxy.cfg" || die "haproxy did not start"
wait_for 30 "the HAProxy write frontend" runuser -u postgres -- "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$write_port"

# The application's role and database (not a superuser: see docs/operations.md).
psql_admin() { runuser -u postgres -- psql -X -q -h 127.0.0.1 -p "$write_port" -U postgres "$@"; }
# HAProxy starts with every server up until its checks say otherwise: wait until the write
# frontend has led to the primary several times in a row.
writable() {
  for _ in 1 2 3 4 5 6; do
    [ "$(psql_admin -tAc 'SELECT pg_is_in_recovery()' 2>/dev/null)" = f ] || return 1
  done
}
sleep 2
wait_for 60 "a writable primary behind the write frontend" writable
psql_admin -c "CREATE ROLE snip LOGIN" -c "CREATE DATABASE snip OWNER snip" >/dev/null

# 4. Redis.
bash "$root/scripts/redis.sh" start "$HA_DIR/redis" >/dev/null

# 5. snip instances.
key=snip_$(head -c 24 /dev/urandom | base64 | tr -dc A-Za-z0-9)
echo "$key" >"$HA_DIR/admin-key"
chmod 600 "$HA_DIR/admin-key"
redis="redis://127.0.0.1:$(cat "$HA_DIR/redis/port")"
for i in $(seq 1 "$SNIP_INSTANCES"); do
  database="postgres://snip@$(snip_db_addr "$i"):$write_port/snip"
  replica="postgres://snip@$(snip_db_addr "$i"):$read_port/snip"
  cat >"$HA_DIR/conf/snip$i.toml" <<TOML
listen = "127.0.0.1:$(snip_port "$i")"
base-url = "http://127.0.0.1:$http_port"
database = "$database"
database-replica = ["$replica"]
redis = "$redis"
log-format = "json"
# Every instance's clicks reach the shared statistics within 10 s (the default, 60 s, writes
# less; the chaos suite reads the stats right after each fault).
click-fold-interval = "10s"
TOML
  setsid "$SNIP_BIN" serve --config "$HA_DIR/conf/snip$i.toml" --admin-key "$key" \
    </dev/null >"$HA_DIR/log/snip$i.log" 2>&1 &
  echo $! >"$HA_DIR/run/snip$i.pid"
done
for i in $(seq 1 "$SNIP_INSTANCES"); do
  wait_for 30 "snip instance $i" curl -sf "http://127.0.0.1:$(snip_port "$i")/health/ready"
done
wait_for 30 "the snip frontend" curl -sf "http://127.0.0.1:$http_port/health/ready"

cat >"$HA_DIR/env" <<ENV
SNIP_URL=http://127.0.0.1:$http_port
SNIP_ADMIN_KEY=$key
HA_DIR=$HA_DIR
HA_PORT=$HA_PORT
SNIP_INSTANCES=$SNIP_INSTANCES
SNIP_BIN=$SNIP_BIN
PG_WRITE=127.0.0.1:$write_port
PG_READ=127.0.0.1:$read_port
HAPROXY_STATS=http://127.0.0.1:$stats_port/
ETCD=127.0.0.1:$etcd_client
ENV
echo "local-ha is up:" >&2
cat "$HA_DIR/env"
