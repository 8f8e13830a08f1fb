#!/usr/bin/env bash
# The two shipped models side by side at the same memory budget: stories260K-relu with its predictors
# (what `npm start` runs: only the neurons a token needs are read, and the cache reuses them), then the
# SwiGLU stories260K, where every neuron is needed for every token. First use converts both and trains
# the ReLU model's predictors (about 11 s of CPU); later runs take about a second each.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cli="node packages/node-io/dist/cli.js"
budget="${BUDGET:-80%}"
echo "== stories260K-relu with predictors, budget $budget ==" >&2
$cli run --shipped stories260K-relu --memory-budget "$budget" --max-tokens 100 --prompt "Once upon a time" "$@"
echo "== stories260K (SwiGLU, every neuron), budget $budget ==" >&2
$cli run --shipped stories260K --memory-budget "$budget" --max-tokens 100 --prompt "Once upon a time" "$@"
