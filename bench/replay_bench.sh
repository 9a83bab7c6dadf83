#!/usr/bin/env bash
# Wall time of `pagedkv replay` on the full Mooncake conversation trace, per capacity.
#   bench/replay_bench.sh [build-dir]      (default: build)
# 1. Google Benchmark medians of 5 repetitions: the replay per capacity and the baseline
#    (prompt synthesis + Request hashing, the floor every replay pays).
# 2. One end-to-end CLI run per capacity (--json), as a user would see it.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
export PAGEDKV_SHARED_DIR="${PAGEDKV_SHARED_DIR:-$(cd .. && pwd)/shared}"
trace="$PAGEDKV_SHARED_DIR/data/traces/mooncake/conversation_trace.jsonl"
cmake --build "$build" --target replay_bench pagedkv_cli >/dev/null
"$build/bench/replay_bench" --benchmark_repetitions=5 --benchmark_report_aggregates_only=true \
  2>/dev/null | grep -E '^(Benchmark|-|BM_.*_median)'
echo
"$build/apps/pagedkv" replay --trace "$trace" --num-pages 65536,262144,1048576 --json --quiet |
  /usr/bin/python3 -c '
import json, sys
print(f"{\"num_pages\":>10} {\"token hit\":>10} {\"ideal\":>8} {\"evictions\":>10} {\"seconds\":>8}")
for line in sys.stdin:
    r = json.loads(line)
    print(f"{r[\"num_pages\"]:>10} {100*r[\"token_hit_rate\"]:>9.2f}% {100*r[\"ideal_token_hit_rate\"]:>7.2f}% {r[\"evictions\"]:>10} {r[\"seconds\"]:>8.2f}")
'
