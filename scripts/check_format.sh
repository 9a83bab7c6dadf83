#!/usr/bin/env bash
# Fails (exit 1) when a tracked C++ file differs from what clang-format (.clang-format) makes of
# it, listing those files. Usage: scripts/check_format.sh [--fix]   (--fix rewrites them)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v clang-format >/dev/null; then
  sudo_cmd=()
  if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo_cmd[@]}" apt-get update -qq
  "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends clang-format >/dev/null
fi
mapfile -t files < <(git ls-files '*.h' '*.cpp' '*.cc')
if [[ "${1:-}" == "--fix" ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! clang-format --dry-run --Werror "$f" >/dev/null 2>&1; then bad+=("$f"); fi
done
if ((${#bad[@]} > 0)); then
  echo "not formatted (run scripts/check_format.sh --fix): ${bad[*]}" >&2
  exit 1
fi
echo "format: ${#files[@]} files ok"
