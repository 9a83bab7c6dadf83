#!/usr/bin/env bash
# The main job: builds the CLI if needed, then
#   1. `pagedkv replay` on the embedded default workload (prefix-cache hit rates per capacity);
#   2. the engine on a generated model: `pagedkv make-model --preset tiny`, one `generate`, and
#      `pagedkv bench` (throughput, TTFT/TPOT, prefix hits, step-time split).
# With arguments, only `pagedkv replay "$@"` runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh pagedkv_cli >&2
if (($# > 0)); then
  exec build/apps/pagedkv replay "$@"
fi
build/apps/pagedkv replay
model_dir=$(mktemp -d)
trap 'rm -rf "$model_dir"' EXIT
echo
build/apps/pagedkv make-model --preset tiny "$model_dir/tiny"
build/apps/pagedkv generate --model "$model_dir/tiny" --prompt "Paged attention" \
  --max-tokens 16 --num-pages 256
echo
build/apps/pagedkv bench --model "$model_dir/tiny" --num-requests 64 --num-pages 2048
