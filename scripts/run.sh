#!/usr/bin/env bash
# The main job: builds the CLI if needed and runs `pagedkv replay` (with no arguments it
# replays the embedded default workload). Arguments are passed to `pagedkv replay`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/build.sh pagedkv_cli >&2
exec build/apps/pagedkv replay "$@"
