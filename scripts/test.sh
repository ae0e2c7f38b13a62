#!/usr/bin/env bash
# The test command: installs dependencies, builds (CUDA compiled and linked when nvcc exists),
# runs the whole suite with CTest, then builds and runs the CPU suite again under
# AddressSanitizer + UndefinedBehaviorSanitizer. CUDA tests skip visibly without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
jobs=$(nproc)
# Test processes run side by side: a short OpenMP spin keeps them from starving each other
# (see apps/main.cpp).
export GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-1000}"

bash scripts/setup.sh
bash scripts/fetch_minilm.sh ||
  echo "WARNING: could not fetch the pretrained MiniLM weights; tests that need them will skip"

echo "== build (Release) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DDAN_BUILD_BENCH=ON >/dev/null
cmake --build build -j"$jobs"
echo "== tests =="
(cd build && ctest -j"$jobs" --output-on-failure --timeout 1800)
grep -h "op harness:" build/Testing/Temporary/LastTest.log || true

echo "== build (CPU, ASan + UBSan) =="
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS="-O1 -g" -DDAN_CUDA=OFF \
      -DDAN_SANITIZE=ON -DDAN_BUILD_BENCH=OFF >/dev/null
cmake --build build-asan -j"$jobs"
echo "== tests (ASan + UBSan) =="
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
(cd build-asan && ctest -j"$jobs" --output-on-failure --timeout 1800)
grep -h "op harness:" build-asan/Testing/Temporary/LastTest.log || true
