#!/usr/bin/env bash
# Static checks of the kernels crate: clippy with warnings as errors (host target, tests included).
# `cargo fmt --check` runs too once the crate is formatted: set FLASHLLM_CHECK_RUSTFMT=1 (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
if bash scripts/cargo.sh clippy --version >/dev/null 2>&1; then
  bash scripts/cargo.sh clippy --quiet -p flashllm-kernels --all-targets -- -D warnings
else
  echo "[check-rust] cargo clippy is not installed: skipped (Debian: apt-get install rust-clippy)" >&2
fi
if [ "${FLASHLLM_CHECK_RUSTFMT:-0}" = 1 ]; then
  if bash scripts/cargo.sh fmt --version >/dev/null 2>&1; then
    bash scripts/cargo.sh fmt --check -p flashllm-kernels
  else
    echo "[check-rust] cargo fmt is not installed: skipped (Debian: apt-get install rustfmt)" >&2
  fi
fi
