#!/usr/bin/env bash
# The packaging test (.ci/run, after scripts/package.sh has built target/package/): what an
# operator installs works as documented.
#
#   manifests  the rendered overlay and the base pass `kubernetes-validate --strict` (and a
#              misspelled field in a copy is caught, so the check can fail)
#   image      starts as a non-root user, /health is healthy, `snip health` (the HEALTHCHECK)
#              passes, a link created survives a restart and a new container on the same
#              volume, `podman stop` (SIGTERM) exits 0
#   deb        in a container whose PID 1 is systemd (a Debian base made here by debootstrap
#              from the mirror apt uses, kept in podman's store as the cache): `dpkg -i` starts
#              the hardened unit (Type=notify: the install waits for READY=1), /health is
#              healthy, the first admin key is in the journal and works, the service runs as a
#              dynamic user with its data in /var/lib/private/snip, `systemd-analyze verify`
#              prints nothing, the exposure score is at most 2.0, `systemctl stop` ends it with
#              status 0, `dpkg -r` stops it and keeps the data and the conffile, purge removes
#              the conffile and keeps the data
#
# Usage: packaging/test.sh [manifests] [image] [deb]    (no argument: all three)
#        packaging/test.sh prepare    only make the systemd base (.ci/run does it early)
# Every wait polls for a state change within a bound. Exits non-zero on the first failure,
# after removing the containers and the volume it made.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/process.sh

export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/lib/containers.conf}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
out=target/package
validate_version=1.37.0
base_image=localhost/snip-test-systemd:bookworm
tag=snip-test-$$
work=$(mktemp -d /tmp/snip-package-test.XXXXXX)

cleanup() {
  # One name per call: given several, `podman rm --force` stops at the first that does not
  # exist (the image's container is gone by the time the .deb's runs) and, exiting 0, leaves
  # the rest running: every run used to leave its systemd container behind.
  local name
  for name in "$tag-image" "$tag-deb"; do
    podman rm --force --time 0 "$name" >/dev/null 2>&1 || true
  done
  podman volume rm --force "$tag-data" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "packaging test: FAILED: $*" >&2
  exit 1
}
ok() { echo "packaging test: ok: $*" >&2; }

# quiet COMMAND...: runs COMMAND with its output in a log, shown only when it fails (podman
# without systemd on the host logs an error for every health-check timer it cannot make).
quiet() {
  "$@" >"$work/quiet.log" 2>&1 || { cat "$work/quiet.log" >&2; fail "$*"; }
}

# until_true SECONDS WHAT COMMAND...: runs COMMAND until it succeeds, failing after SECONDS.
until_true() {
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$what (not within the bound)"
    sleep 0.1
  done
}

# HTTP status of GET URL (000 when nothing answers).
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$1" || true; }
healthy() { [ "$(curl -s --max-time 5 "$1/health" | jq -r .status 2>/dev/null)" = healthy ]; }

# create_link BASE KEY URL: prints the new link's code.
create_link() {
  curl -sf --max-time 5 -H "Authorization: Bearer $2" -H 'Content-Type: application/json' \
    -d "{\"url\": \"$3\"}" "$1/api/v1/links" | jq -er .code
}

# redirects_to BASE CODE URL: whether GET BASE/CODE redirects to URL.
redirects_to() {
  local location
  location=$(curl -s -o /dev/null -w '%{redirect_url}' --max-time 5 "$1/$2")
  [ "$location" = "$3" ]
}

manifests() {
  local venv=target/package-venv
  if ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$validate_version"; then
    echo "installing kubernetes-validate $validate_version (PyPI) into $venv" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "kubernetes-validate==$validate_version"; } >&2 \
      || fail "could not install kubernetes-validate"
  fi
  [ -s "$out/kubernetes.yaml" ] || fail "$out/kubernetes.yaml is missing: run scripts/package.sh"
  local kubectl=kubectl
  command -v kubectl >/dev/null || kubectl=$venv/bin/kubectl
  "$kubectl" kustomize deploy/kubernetes/base >"$work/base.yaml"
  for file in "$out/kubernetes.yaml" "$work/base.yaml"; do
    "$venv/bin/kubernetes-validate" --strict --quiet "$file" || fail "$file does not validate"
  done
  for kind in Namespace ConfigMap Service Deployment PodDisruptionBudget; do
    grep -q "^kind: $kind\$" "$out/kubernetes.yaml" || fail "no $kind in $out/kubernetes.yaml"
  done
  sed 's/readinessProbe:/readynessProbe:/' "$out/kubernetes.yaml" >"$work/typo.yaml"
  if "$venv/bin/kubernetes-validate" --strict --quiet "$work/typo.yaml" >/dev/null 2>&1; then
    fail "kubernetes-validate --strict accepted a misspelled field"
  fi
  ok "manifests pass kubernetes-validate --strict (a misspelled field is caught)"
}

# start_image PORT: a container of the image on the shared volume, listening on PORT.
start_image() {
  # No periodic health checks (they need systemd timers on the host): run by hand below.
  podman run --detach --name "$tag-image" --network host --env "SNIP_LISTEN=127.0.0.1:$1" \
    --health-interval disable \
    --volume "$tag-data:/data" "localhost/snip:$version" >/dev/null 2>"$work/podman-run.log" \
    || { cat "$work/podman-run.log" >&2; fail "podman run"; }
  until_true 60 "the image's server answers /health on port $1" healthy "http://127.0.0.1:$1"
}

image() {
  podman image exists "localhost/snip:$version" || fail "no image localhost/snip:$version: run scripts/package.sh"
  local port base key code pid uid exit_code
  port=$(free_port)
  base=http://127.0.0.1:$port
  podman volume create "$tag-data" >/dev/null
  start_image "$port"
  ok "the image serves: /health is healthy"
  pid=$(podman inspect --format '{{.State.Pid}}' "$tag-image")
  uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  [ "$uid" = 10001 ] || fail "the image's server runs as uid $uid, not 10001"
  podman healthcheck run "$tag-image" || fail "the image's HEALTHCHECK (snip health) failed"
  ok "runs as uid 10001; its HEALTHCHECK passes"
  # The key is on stderr (podman keeps the two streams apart; merged, they may interleave).
  key=$(podman logs "$tag-image" 2>&1 >/dev/null | sed -n 's/^snip: created admin API key: //p' | head -1)
  [ -n "$key" ] || fail "no admin key in the container's log"
  code=$(create_link "$base" "$key" https://example.com/packaged) || fail "creating a link"
  redirects_to "$base" "$code" https://example.com/packaged || fail "$code does not redirect"

  quiet podman stop --time 20 "$tag-image"
  exit_code=$(podman inspect --format '{{.State.ExitCode}}' "$tag-image")
  [ "$exit_code" = 0 ] || fail "podman stop: the server exited with $exit_code, not 0"
  ok "podman stop (SIGTERM): exit status 0"
  quiet podman start "$tag-image"
  until_true 60 "the restarted container answers /health" healthy "$base"
  redirects_to "$base" "$code" https://example.com/packaged || fail "$code lost after a restart"
  quiet podman rm --force --time 20 "$tag-image"
  start_image "$port"
  redirects_to "$base" "$code" https://example.com/packaged || fail "$code lost in a new container"
  ok "the link survives a restart and a new container on the same volume"
  quiet podman rm --force --time 20 "$tag-image"
}

# The Debian base with systemd, made once and kept in podman's store.
systemd_base() {
  podman image exists "$base_image" && return
  command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends debootstrap; } >&2
  local mirror codename root=$work/rootfs
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  codename=$(. /etc/os-release && echo "$VERSION_CODENAME")
  [ -n "$mirror" ] && [ -n "$codename" ] || fail "cannot tell apt's Debian mirror and release"
  echo "debootstrap $codename from $mirror (minbase, with systemd)" >&2
  debootstrap --variant=minbase --include=systemd,systemd-sysv "$codename" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap"; }
  tar -C "$root" -c . | podman import --quiet - "$base_image" >/dev/null
  rm -rf "$root"
}

in_deb() { podman exec "$tag-deb" "$@"; }

deb() {
  local deb_file port base key code pid uid verify score
  deb_file=$(ls "$out"/snip_*.deb 2>/dev/null | head -1)
  [ -n "$deb_file" ] || fail "no .deb in $out: run scripts/package.sh"
  systemd_base
  port=$(free_port)
  base=http://127.0.0.1:$port
  podman run --detach --name "$tag-deb" --privileged --systemd=always --network host \
    --volume "$PWD/$out:/pkg:ro" "$base_image" /sbin/init >/dev/null
  until_true 60 "systemd in the container is up" \
    bash -c "podman exec $tag-deb systemctl is-system-running | grep -Eq '^(running|degraded)\$'"
  # The port, as an operator would set it: a drop-in (it outlives upgrades).
  in_deb mkdir -p /etc/systemd/system/snip.service.d
  printf '[Service]\nEnvironment=SNIP_LISTEN=127.0.0.1:%s\n' "$port" \
    | podman exec --interactive "$tag-deb" tee /etc/systemd/system/snip.service.d/port.conf >/dev/null
  in_deb dpkg -i "/pkg/$(basename "$deb_file")" >"$work/dpkg.log" 2>&1 \
    || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
  [ "$(in_deb systemctl is-active snip)" = active ] || fail "snip.service is not active after dpkg -i"
  until_true 30 "the packaged service answers /health" healthy "$base"
  ok "dpkg -i: snip.service is active (sd_notify READY) and healthy"

  [ "$(in_deb systemctl show --property Type --value snip)" = notify ] || fail "the unit is not Type=notify"
  # SIGHUP reloads the deny list; the service goes on.
  in_deb systemctl kill --kill-whom=main --signal=HUP snip
  until_true 10 "the service answers after SIGHUP" healthy "$base"
  [ "$(in_deb systemctl is-active snip)" = active ] || fail "SIGHUP stopped the service"
  pid=$(in_deb systemctl show --property MainPID --value snip)
  uid=$(in_deb awk '/^Uid:/ {print $2}' "/proc/$pid/status")
  [ -n "$uid" ] && [ "$uid" != 0 ] || fail "the service runs as uid '$uid'"
  in_deb test -f /var/lib/private/snip/snip.db || fail "no store in /var/lib/private/snip"
  key=$(in_deb journalctl -u snip --no-pager -o cat | sed -n 's/^snip: created admin API key: //p' | head -1)
  [ -n "$key" ] || fail "no admin key in the journal"
  code=$(create_link "$base" "$key" https://example.com/from-deb) || fail "creating a link"
  redirects_to "$base" "$code" https://example.com/from-deb || fail "$code does not redirect"
  in_deb man -w snip >/dev/null 2>&1 || in_deb test -f /usr/share/man/man1/snip.1.gz || fail "no man page"
  in_deb test -f /usr/share/bash-completion/completions/snip || fail "no bash completion"
  [ "$(in_deb systemctl show --property NRestarts --value snip)" = 0 ] || fail "the service restarted"
  ok "runs as dynamic user $uid, survives SIGHUP; the journal's admin key creates a link that redirects"

  verify=$(in_deb systemd-analyze verify --man=no /usr/lib/systemd/system/snip.service 2>&1 || true)
  [ -z "$verify" ] || fail "systemd-analyze verify printed: $verify"
  # The gate can fail: a misspelled directive in a copy makes verify print.
  in_deb sh -c 'sed s/^NoNewPrivileges=/NoNewPrivilege=/ /usr/lib/systemd/system/snip.service >/tmp/typo.service'
  verify=$(in_deb systemd-analyze verify --man=no /tmp/typo.service 2>&1 || true)
  [ -n "$verify" ] || fail "systemd-analyze verify printed nothing for a misspelled directive"
  in_deb systemd-analyze security --offline=yes /usr/lib/systemd/system/snip.service >"$work/security.txt" 2>&1 || true
  score=$(sed -n 's/.*Overall exposure level for snip.service: \([0-9.]*\).*/\1/p' "$work/security.txt")
  [ -n "$score" ] || { cat "$work/security.txt" >&2; fail "no exposure score"; }
  awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || { cat "$work/security.txt" >&2; fail "exposure score $score > 2.0"; }
  ok "systemd-analyze verify prints nothing; exposure score $score (at most 2.0)"

  in_deb systemctl stop snip
  [ "$(in_deb systemctl show --property Result --value snip)" = success ] || fail "stop: the unit's result is not success"
  [ "$(in_deb systemctl show --property ExecMainStatus --value snip)" = 0 ] || fail "stop: exit status not 0"
  in_deb systemctl start snip
  until_true 30 "the service answers again after a start" healthy "$base"
  redirects_to "$base" "$code" https://example.com/from-deb || fail "$code lost across a stop and start"
  ok "systemctl stop: exit status 0; the link survives a stop and a start"

  in_deb dpkg -r snip >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
  [ "$(in_deb systemctl is-active snip || true)" != active ] || fail "snip.service still active after dpkg -r"
  until_true 30 "the port closes after dpkg -r" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/$port)"
  in_deb test ! -e /usr/bin/snip || fail "/usr/bin/snip left after dpkg -r"
  in_deb test -f /etc/snip/snip.toml || fail "dpkg -r removed the conffile"
  in_deb test -f /var/lib/private/snip/snip.db || fail "dpkg -r removed the data"
  in_deb dpkg -P snip >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P"; }
  in_deb test ! -e /etc/snip/snip.toml || fail "purge left /etc/snip/snip.toml"
  in_deb test -f /var/lib/private/snip/snip.db || fail "purge removed the data"
  grep -q "data in /var/lib/private/snip" "$work/dpkg.log" || fail "purge did not say where the data is"
  ok "dpkg -r stops the service (conffile and data kept); purge keeps the data and says so"
}

[ "$#" -gt 0 ] || set -- manifests image deb
for what in "$@"; do
  case "$what" in
    manifests) manifests ;;
    image) image ;;
    deb) deb ;;
    prepare) systemd_base ;;
    *) echo "packaging/test.sh: unknown part '$what' (manifests, image, deb, prepare)" >&2; exit 2 ;;
  esac
done
echo "packaging test: passed ($*)" >&2
