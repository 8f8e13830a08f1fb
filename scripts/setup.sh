#!/usr/bin/env bash
# Idempotent set-up: toolchain, npm dependencies, WASM kernels, package builds.
# Each step is skipped when its inputs have not changed since the last run, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
stamps="$root/.cache/stamps"
mkdir -p "$stamps"
say() { echo "[setup] $*" >&2; }

# Hash of a list of files' contents (names included), for change detection.
hash_files() { (for f in "$@"; do [ -f "$f" ] && { echo "$f"; cat "$f"; }; done) | sha256sum | cut -d' ' -f1; }
step_is_fresh() { [ -f "$stamps/$1" ] && [ "$(cat "$stamps/$1")" = "$2" ]; }
mark_fresh() { echo "$2" > "$stamps/$1"; }

# 1. A Rust that builds wasm32-unknown-unknown.
have_wasm_rust() {
  { command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; } ||
  { [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/wasm32-unknown-unknown ] && command -v lld >/dev/null 2>&1; }
}
if ! have_wasm_rust; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing Debian's rustc cargo libstd-rust-dev-wasm32 lld"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rustc cargo libstd-rust-dev-wasm32 lld >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q rustc cargo libstd-rust-dev-wasm32 lld >/dev/null; }
  else
    say "no Rust toolchain for wasm32-unknown-unknown. Install one of:"
    say "  rustup target add wasm32-unknown-unknown"
    say "  sudo apt-get install rustc cargo libstd-rust-dev-wasm32 lld"
    exit 1
  fi
fi

# 1b. clippy and rustfmt for `npm run check` (Debian's packages; rustup's toolchains bring their own).
if ! bash scripts/cargo.sh clippy --version >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  say "installing Debian's rust-clippy rustfmt"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q rust-clippy rustfmt >/dev/null 2>&1 || say "could not install rust-clippy/rustfmt: the Rust lint check will be skipped"
fi

# 2. npm dependencies, exactly as locked.
h=$(hash_files package.json package-lock.json packages/*/package.json)
if [ ! -d node_modules ] || ! step_is_fresh npm "$h"; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error >&2
  mark_fresh npm "$h"
fi

# 3. WASM kernels (release, simd128), embedded into the SDK as base64 so one loader works in Node and browsers.
h=$(hash_files Cargo.toml crates/kernels/Cargo.toml crates/kernels/src/*.rs scripts/embed-wasm.mjs)
wasm=target/wasm32-unknown-unknown/release/flashllm_kernels.wasm
if ! step_is_fresh kernels "$h" || [ ! -f "$wasm" ] || [ ! -f packages/sdk/src/kernels/wasm-bytes.ts ]; then
  say "building kernels (wasm32, simd128, release)"
  # A 64 KiB stack (the default is 1 MiB) keeps the empty module small: a memory budget counts every byte.
  RUSTFLAGS="-C target-feature=+simd128 -C link-arg=-zstack-size=65536" bash scripts/cargo.sh build --quiet --release --target wasm32-unknown-unknown -p flashllm-kernels
  node scripts/embed-wasm.mjs "$wasm" packages/sdk/src/kernels/wasm-bytes.ts
  mark_fresh kernels "$h"
fi

# 4. Packages (tsup: ESM + .d.ts).
for pkg in sdk node-io; do
  h=$(hash_files $(find packages/$pkg/src -type f | sort) packages/$pkg/package.json packages/$pkg/tsup.config.ts tsconfig.base.json)
  if ! step_is_fresh "build-$pkg" "$h" || [ ! -d packages/$pkg/dist ]; then
    say "building @flashllm/$pkg"
    (cd packages/$pkg && npx tsup --silent >&2)
    mark_fresh "build-$pkg" "$h"
  fi
done

# 5. The browser package (needs the SDK's dist/) and Debian's Chromium for the browser tests.
bash scripts/setup-browser.sh
