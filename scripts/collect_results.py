#!/usr/bin/env python3
"""Collects the results.json of run folders into one markdown table (standard library only).

usage: collect_results.py RUNS_DIR [METRIC ...]

Runs are grouped by config name (the run folder name up to "-split<seed>-"); every model column
of the cold table (the trained model and the baselines) becomes a row, with mean ± std over the
split seeds of each metric.
"""
import json
import math
import os
import re
import sys
from collections import OrderedDict

DEFAULT = ["recall@50", "ndcg@50", "recall@20", "mrr", "seed_user_recall@5", "seed_item_recall@5",
           "seed_mrr_items_per_user", "seed_mrr_users_per_item"]


def fmt(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return f"{m:.4g}"
    sd = math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1))
    return f"{m:.4g} ± {sd:.2g}"


def main():
    runs = sys.argv[1]
    metrics = sys.argv[2:] or DEFAULT
    groups = OrderedDict()
    first = None
    for d in sorted(os.listdir(runs)):
        path = os.path.join(runs, d, "results.json")
        if not os.path.exists(path):
            continue
        m = re.match(r"(.*)-split(\d+)-", d)
        config = m.group(1) if m else d
        with open(path) as f:
            res = json.load(f)
        first = first or config
        for model, vals in res["cold"]["models"].items():
            if model != "DeepAniNet" and config != first:
                continue  # baselines: once, with the first config's features
            row = f"DeepAniNet ({config})" if model == "DeepAniNet" else f"{model} (features of {config})"
            groups.setdefault(row, []).append(vals)
    print("| model | runs | " + " | ".join(metrics) + " |")
    print("|---|---:|" + "---:|" * len(metrics))
    for row, runs_vals in groups.items():
        cells = [fmt([v.get(k) for v in runs_vals]) for k in metrics]
        print(f"| {row} | {len(runs_vals)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
