#!/usr/bin/env bash
# GPU check, for a machine with an NVIDIA GPU: builds with CUDA for the local architecture,
# runs the whole suite (CPU<->CUDA parity included), then the CPU and CUDA micro-benchmarks.
# Writes everything to one log (default device-check-<date>.log, or $1). Budget: < 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin"
log="${1:-device-check-$(date +%Y%m%d-%H%M%S).log}"
jobs=$(nproc)
start=$(date +%s)
exec > >(tee "$log") 2>&1

step() { echo; echo "== $* ($(( $(date +%s) - start )) s) =="; }

step "device"
nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv || true
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
arch="${arch:-90}"

step "setup"
bash scripts/setup.sh >/dev/null || echo "setup failed (continuing with what is installed)"

step "build (CUDA arch $arch)"
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DDAN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
      -DDAN_BUILD_BENCH=ON >/dev/null && cmake --build build-gpu -j"$jobs" || { echo "BUILD FAILED"; exit 1; }

step "tests (CTest; CUDA tests run here)"
(cd build-gpu && timeout 300 ctest -j4 --output-on-failure --timeout 240) ; rc_tests=$?
grep -h "op harness:" build-gpu/Testing/Temporary/LastTest.log || true
(cd build-gpu && ./tests/dan_tests --gtest_filter='*Cuda*:*CUDA*' --gtest_brief=1 2>&1 | tail -5)

step "benchmarks"
for b in build-gpu/bench/cuda/bench_cuda build-gpu/bench/bench_cuda; do
  [[ -x "$b" ]] && timeout 120 "$b" && break
done
# ALS on the synthetic 100k x 20k x 5M matrix: per-iteration time at 64/256/1024 factors and
# the CG kernel's share of HBM bandwidth; then SpMM (cuSPARSE vs our kernel).
for b in build-gpu/bench/cuda/bench_als_cuda build-gpu/bench/bench_als_cuda; do
  [[ -x "$b" ]] && timeout 150 "$b" --factors 64,256,1024 --cholesky 64 --iters 3 && break
done
# SpMM A·X and Aᵀ·G on the anime (if the dataset is found), 1M x 10M power-law and 100k x 10M
# uniform graphs at F = 16/64/256: cuSPARSE vs row-split, automatic's pick, % of HBM peak;
# exits 1 if the two algorithms disagree. Built under bench/cuda like bench_als_cuda.
for b in build-gpu/bench/cuda/bench_spmm_cuda build-gpu/bench/bench_spmm_cuda; do
  [[ -x "$b" ]] && timeout 60 "$b" --features 16,64,256 --nodes 1000000 --edges 10000000 \
      --uniform 100000,10000000 --reps 10 && break
done

# Fused self-attention on BERT shapes: tiled vs naive vs materialized vs auto (measured choice);
# exits 1 on disagreement.
for b in build-gpu/bench/cuda/bench_attention_cuda build-gpu/bench/bench_attention_cuda; do
  [[ -x "$b" ]] && timeout 60 "$b" --reps 5 && break
done

# BERT encoder (MiniLM, BERT-base; 32 x 128 and 8 x 512): forward and training-step tokens/s,
# % of FP32 peak per attention variant; exits 1 if the CUDA forward differs from the CPU's.
for b in build-gpu/bench/cuda/bench_bert_cuda build-gpu/bench/bench_bert_cuda; do
  [[ -x "$b" ]] && timeout 90 "$b" --reps 5 && break
done

step "done: tests rc=$rc_tests, log $log"
exit $rc_tests
