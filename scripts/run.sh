#!/usr/bin/env bash
# The main job on a fresh machine: installs dependencies, builds, and runs the training demo
# on synthetic data (a few minutes on 2 cores). Extra arguments go to `deepaninet demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
bash scripts/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target deepaninet
./build/deepaninet info
./build/deepaninet demo "$@"
