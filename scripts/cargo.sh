#!/usr/bin/env bash
# Runs cargo with a Rust that can build wasm32-unknown-unknown: rustup's when it has the target installed,
# else Debian's (rustc 1.63 + libstd-rust-dev-wasm32), called by absolute path because rustup's cargo
# comes first on PATH and has no wasm32 standard library here.
set -euo pipefail
if command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  exec cargo "$@"
fi
if [ -x /usr/bin/cargo ] && [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/wasm32-unknown-unknown ]; then
  RUSTC=/usr/bin/rustc exec /usr/bin/cargo "$@"
fi
echo "flashllm: no Rust toolchain that can build wasm32-unknown-unknown was found." >&2
echo "  Install one of:" >&2
echo "    rustup target add wasm32-unknown-unknown" >&2
echo "    apt-get install rustc cargo libstd-rust-dev-wasm32 lld    (Debian 12)" >&2
exit 1
