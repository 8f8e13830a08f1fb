#!/usr/bin/env bash
# Browser side of the set-up, run after scripts/setup.sh has built the SDK: builds @flashllm/web-io (library,
# worker and demo bundles; the worker bundles packages/sdk/dist) and makes sure the browser tests have a
# Chromium: Debian's (Playwright's own browser download does not work on these machines).
# Idempotent and quick when nothing changed.  --no-chromium: build only (e.g. for the demo).
set -euo pipefail
cd "$(dirname "$0")/.."
stamps=.cache/stamps
mkdir -p "$stamps"
say() { echo "[setup-browser] $*" >&2; }
hash_files() { (for f in "$@"; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done) | sha256sum | cut -d' ' -f1; }

# 1. Chromium for test/browser (playwright-core drives it; see shared NOTES.md for the flags).
chromium=${FLASHLLM_CHROMIUM:-/usr/bin/chromium}
if [ "${1:-}" != "--no-chromium" ] && [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's chromium for the browser tests"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null 2>&1; } ||
      say "could not install chromium: the browser tests will fail until it is installed (apt-get install chromium)"
  else
    say "no Chromium at $chromium: the browser tests (test/browser) fail until one is installed:"
    say "  sudo apt-get install chromium    (or set FLASHLLM_CHROMIUM to a Chromium or Chrome binary)"
  fi
fi

# 2. @flashllm/web-io: dist/index.js (+ .d.ts), dist/worker.js, dist/demo.js.
if [ ! -f packages/sdk/dist/index.js ]; then
  say "packages/sdk/dist is missing: run bash scripts/setup.sh first"
  exit 1
fi
h=$(hash_files $(find packages/web-io/src packages/web-io/demo -name "*.ts" -type f | sort) packages/web-io/package.json \
  packages/web-io/tsup.config.ts tsconfig.base.json packages/sdk/dist/index.js packages/sdk/dist/internal.js)
if [ ! -f "$stamps/build-web-io" ] || [ "$(cat "$stamps/build-web-io")" != "$h" ] || [ ! -f packages/web-io/dist/worker.js ]; then
  say "building @flashllm/web-io"
  (cd packages/web-io && rm -rf dist && npx tsup --silent >&2)
  echo "$h" > "$stamps/build-web-io"
fi
