#!/usr/bin/env bash
# The whole test suite: builds everything (Release), runs the C++ and Python tests with ctest,
# and checks that an installed pagedkv works from a consumer project (find_package).
# With --sanitize: builds the C++ tests with AddressSanitizer + UBSan in build-asan/ and runs them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
export PAGEDKV_SHARED_DIR="${PAGEDKV_SHARED_DIR:-$(cd .. && pwd)/shared}"
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
jobs=$(nproc)

if [[ "${1:-}" == "--sanitize" ]]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPAGEDKV_SANITIZE=ON \
    -DPAGEDKV_BUILD_PYTHON=OFF -DPAGEDKV_BUILD_BENCHMARKS=OFF -DPAGEDKV_BUILD_APPS=OFF \
    -DPAGEDKV_SHARED_DIR="$PAGEDKV_SHARED_DIR" "${launcher[@]}" >/dev/null
  cmake --build build-asan -j"$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j"$jobs"
  exit 0
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DPython_EXECUTABLE=/usr/bin/python3 \
  -DPAGEDKV_SHARED_DIR="$PAGEDKV_SHARED_DIR" "${launcher[@]}" >/dev/null
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

# Install into a scratch prefix and build a tiny consumer with find_package(pagedkv).
prefix=build/install-check
rm -rf "$prefix" build/consumer
cmake --install build --prefix "$prefix" >/dev/null
cmake -S tests/install_consumer -B build/consumer -G Ninja -DCMAKE_PREFIX_PATH="$PWD/$prefix" >/dev/null
cmake --build build/consumer >/dev/null
build/consumer/pagedkv_consumer
