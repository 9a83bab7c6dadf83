#!/usr/bin/env bash
# Configures and builds pagedkv in build/ (Release). Extra arguments name targets to build.
# Usage: scripts/build.sh [target ...]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DPython_EXECUTABLE=/usr/bin/python3 "${launcher[@]}" >/dev/null
if (($# > 0)); then
  for t in "$@"; do cmake --build build --target "$t" -j"$(nproc)"; done
else
  cmake --build build -j"$(nproc)"
fi
