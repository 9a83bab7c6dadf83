#!/usr/bin/env bash
# Installs the Debian packages pagedkv needs to build and test, if any are missing.
# Usage: scripts/deps.sh
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config
  libfmt-dev libssl-dev libxxhash-dev nlohmann-json3-dev libcli11-dev libhwy-dev libabsl-dev
  libopenblas-dev libopenblas0-pthread libdnnl-dev
  libsentencepiece-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  python3-dev pybind11-dev python3-numpy python3-pytest python3-hypothesis python3-xxhash
  python3-torch python3-requests
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "installing Debian packages: ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
