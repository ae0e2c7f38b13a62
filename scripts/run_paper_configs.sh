#!/usr/bin/env bash
# Runs experiment configs (default: every configs/paper/*.yaml but base.yaml) for several split
# seeds and collects one markdown table of the cold-anime test metrics, mean ± std over seeds:
#   bash scripts/run_paper_configs.sh [--seeds "1 2 3"] [--out DIR] [CONFIG.yaml ...] [-- key=value ...]
# Extra key=value overrides after `--` apply to every run (e.g. train.epochs=5). The table goes to
# DIR/results.md (default DIR: runs/paper) and to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="1 2 3"
out=runs/paper
configs=()
overrides=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2;;
    --out) out="$2"; shift 2;;
    --) shift; overrides=("$@"); break;;
    *) configs+=("$1"); shift;;
  esac
done
if [ ${#configs[@]} -eq 0 ]; then
  for c in configs/paper/*.yaml; do [ "$(basename "$c")" = base.yaml ] || configs+=("$c"); done
fi
bin=build/deepaninet
[ -x "$bin" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build -j"$(nproc)" --target deepaninet; }
mkdir -p "$out"
for c in "${configs[@]}"; do
  for s in $seeds; do
    name="$(basename "$c" .yaml)-split$s"
    echo "== $c (split seed $s) =="
    "$bin" train "$c" "split.seed=$s" "name=$name" "run.dir=$out/runs" "${overrides[@]}" > "$out/$name.log" 2>&1 ||
      { echo "failed: see $out/$name.log"; exit 1; }
    tail -n 1 "$out/$name.log"
  done
done
python3 scripts/collect_results.py "$out/runs" > "$out/results.md"
cat "$out/results.md"
