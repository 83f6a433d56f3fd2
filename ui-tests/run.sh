#!/usr/bin/env bash
# The dashboard's end-to-end browser tests (ui-tests/README.md): headless Chromium against a real
# snip server, with node's test runner.
#
#   bash ui-tests/run.sh                 run the suite
#   bash ui-tests/run.sh --update-docs   run it, and after a passing run copy the chosen
#                                        screenshots to docs/screenshots/
#
# Installs what is missing and fails (exit 1) if an install fails; it never skips a test:
#   - Debian's chromium (apt-get update, then apt-get install) when /usr/bin/chromium is absent
#     and $CHROMIUM is not set;
#   - the pinned npm packages (npm ci) when ui-tests/node_modules is missing or older than
#     ui-tests/package-lock.json.
# The snip binary is ${SNIP_BIN:-target/debug/snip} (relative to the repository root), built by the
# caller (scripts/test.sh runs cargo test first); only when it is missing is it built here.
# Screenshots go to ${SNIP_UI_SCREENSHOTS:-target/ui-screenshots}.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

die() { echo "ui-tests/run.sh: $*" >&2; exit 1; }

update_docs=0
for arg in "$@"; do
  case "$arg" in
    --update-docs) update_docs=1 ;;
    -h | --help) sed -n '2,/^set /{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ui-tests/run.sh: unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

# Node: the test runner with --test-concurrency needs 20.10 or later.
command -v node >/dev/null 2>&1 || die "node is not installed (Node.js 20.10 or later is needed)"
command -v npm >/dev/null 2>&1 || die "npm is not installed"
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=10)?0:1)' \
  || die "Node.js $(node --version) is too old: 20.10 or later is needed"

# Chromium.
if [ -n "${CHROMIUM:-}" ]; then
  [ -x "$CHROMIUM" ] || die "CHROMIUM=$CHROMIUM is not an executable file"
elif [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian package)" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; } >&2 \
    || die "could not install chromium with apt-get"
  [ -x /usr/bin/chromium ] || die "apt-get installed chromium but /usr/bin/chromium is missing"
fi

# The pinned npm packages (playwright-core, axe-core). npm writes node_modules/.package-lock.json
# on every install: it stands for the age of node_modules.
stamp="$here/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$here/package-lock.json" -nt "$stamp" ]; then
  echo "installing the npm packages of ui-tests (npm ci)" >&2
  (cd "$here" && npm ci --no-audit --no-fund) >&2 || die "npm ci failed in ui-tests/"
fi

# The snip binary.
bin="${SNIP_BIN:-target/debug/snip}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  [ -z "${SNIP_BIN:-}" ] || die "SNIP_BIN=$SNIP_BIN is not an executable file"
  echo "target/debug/snip is missing: building it (cargo build --locked --bin snip)" >&2
  cargo build --locked --bin snip >&2 || die "cargo build failed"
  [ -x "$bin" ] || die "cargo build did not produce $bin"
fi
export SNIP_BIN="$bin"

# Screenshots: a fresh set each run.
shots="${SNIP_UI_SCREENSHOTS:-target/ui-screenshots}"
case "$shots" in /*) ;; *) shots="$root/$shots" ;; esac
mkdir -p "$shots"
rm -f "$shots"/*.png
export SNIP_UI_SCREENSHOTS="$shots"

echo "ui-tests: snip $bin, chromium ${CHROMIUM:-/usr/bin/chromium}, screenshots in $shots" >&2
status=0
node --test --test-concurrency=1 ui-tests/*.test.mjs || status=$?
if [ "$status" -ne 0 ]; then
  echo "ui-tests: FAILED (node --test exited $status)" >&2
  exit 1
fi

if [ "$update_docs" -eq 1 ]; then
  docs="$root/docs/screenshots"
  mkdir -p "$docs"
  for page in overview links link-detail new-link; do
    for variant in desktop-light phone-dark; do
      file="$shots/$page-$variant.png"
      [ -f "$file" ] || die "the passing run did not write $file"
      cp "$file" "$docs/"
      size=$(stat -c %s "$file")
      note=""
      [ "$size" -le 153600 ] || note=" (over 150 KB)"
      echo "docs/screenshots/$page-$variant.png: $size bytes$note" >&2
    done
  done
fi
