# Shared by bench/run.sh and bench/attack.sh (sourced): the load tools and CPU pinning.

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
