#!/usr/bin/env bash
# Builds the benchmarks (Release, CPU only, in build-bench/) when needed and runs them all,
# writing one combined log: bench/run_all.sh [LOG]   (default LOG: bench-results.txt)
# Environment: DAN_BENCH_BUILD_DIR (default <repo>/build-bench), DAN_BENCH_JOBS (default 2).
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log="${1:-bench-results.txt}"
build="${DAN_BENCH_BUILD_DIR:-$root/build-bench}"
jobs="${DAN_BENCH_JOBS:-2}"

if [[ ! -f "$build/CMakeCache.txt" ]]; then
  cmake -S "$root" -B "$build" -DDAN_CUDA=OFF -DCMAKE_BUILD_TYPE=Release \
    -DDAN_BUILD_TESTS=OFF || exit 1
fi
cmake --build "$build" -j "$jobs" --target bench || exit 1

failed=0
{
  echo "DeepAniNet benchmarks, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
  echo "host: $(uname -srm); cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs);" \
       "cores: $(nproc); load average: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
  # Other processes on the cores turn multi-thread timings into scheduler-tick multiples.
  if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    echo "WARNING: the machine is busy (load above half the cores): multi-thread numbers are" \
         "not trustworthy; rerun when idle (OMP_WAIT_POLICY=passive softens the damage)"
  fi
  # The recommender's benchmarks need ../shared/data/mal2023 ($DEEPANINET_DATA) and print
  # "skipped" without it; bench_als needs implicit in $DAN_IMPLICIT_PYTHON (see bench/README.md).
  for prog in bench_sgemm bench_bandwidth bench_mlp_step bench_load bench_als bench_dropoutnet_epoch \
              "bench_spmm --nodes 200000 --edges 2000000" "bench_gnn_epoch --nodes 50000 --edges 500000"; do
    echo
    echo "===== $prog ====="
    start=$SECONDS
    # shellcheck disable=SC2086  # program name plus its arguments
    "$build/bench/"$prog
    rc=$?
    echo "----- $prog: exit $rc, $((SECONDS - start)) s -----"
    [[ $rc -eq 0 ]] || failed=1
  done
  exit $failed
} 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
echo "log written to $log"
exit "$status"
