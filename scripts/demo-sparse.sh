#!/usr/bin/env bash
# The sparse path end to end on the shipped stories260K-relu: convert, calibrate predictors (first use
# only, ~20 s), then generate at 70% of the file's size with the predictor choosing neurons.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cli="node packages/node-io/dist/cli.js"
dir="${FLASHLLM_CACHE:-$HOME/.cache/flashllm}"
mkdir -p "$dir"
m=packages/node-io/models/stories260K-relu
if [ ! -f "$dir/stories260K-relu-pred.flm" ]; then
  $cli convert "$m/stories260K_relu.bin" "$dir/stories260K-relu.flm" -z "$m/tok512.bin" --activation relu
  $cli calibrate "$dir/stories260K-relu.flm" --corpus test/data/tinystories_400k.txt --positions 8000 --rank 24 --epochs 10 --recall 0.97
fi
$cli run --model "$dir/stories260K-relu-pred.flm" --memory-budget "${BUDGET:-70%}" --max-tokens 100 --prompt "Once upon a time" "$@"
