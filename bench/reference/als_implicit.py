#!/usr/bin/env python3
"""The peer of bench/bench_als: implicit's AlternatingLeastSquares (CPU, native, CG) on the
exact inputs bench_als wrote (confidence matrix and initial factors), timed per iteration.

Run by bench_als with the interpreter of a venv that has implicit 0.7 installed:

    /usr/bin/python3 -m venv --system-site-packages /tmp/implicitvenv
    /tmp/implicitvenv/bin/pip install "implicit==0.7.*"

    python als_implicit.py --input FILE.safetensors --iters N --cg-steps 3 --threads T --reg R

FILE holds indptr (I64), indices (I32), values (F32) of the users x items confidence matrix
(the stored value is the confidence, as implicit expects with alpha = 1) and the initial
factors U0, V0 (F32). Prints one JSON line: per-iteration wall and process CPU seconds (the first iteration's CPU
time includes fit()'s set-up, the transpose), the final loss (implicit's
calculate_loss), versions and thread count. OPENBLAS_NUM_THREADS should be 1, as implicit
recommends (its own threads run the per-row solves); bench_als sets it.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "scripts"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--cg-steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reg", type=float, default=0.01)
    args = ap.parse_args()
    try:
        import numpy as np
        import scipy.sparse as sp
        import implicit
        from implicit.cpu import _als
        from implicit.cpu.als import AlternatingLeastSquares
        import st_io
    except ImportError as e:
        print(json.dumps({"error": "cannot import %s (install implicit 0.7 in a venv, see "
                                   "bench/README.md)" % e.name}))
        return 0

    d = st_io.load(args.input)
    U0, V0 = d["U0"], d["V0"]
    C = sp.csr_matrix((d["values"], d["indices"], d["indptr"]),
                      shape=(U0.shape[0], V0.shape[0]))
    model = AlternatingLeastSquares(factors=U0.shape[1], regularization=args.reg, alpha=1.0,
                                    dtype=np.float32, use_native=True, use_cg=True,
                                    iterations=args.iters, calculate_training_loss=False,
                                    num_threads=args.threads, random_state=0)
    model.cg_steps = args.cg_steps
    # fit() keeps factors that are already set: both sides start from the same U0, V0.
    model.user_factors = U0
    model.item_factors = V0
    seconds = []
    cpu = [time.process_time()]  # process CPU time at the start and after each iteration

    def on_iteration(it, t, loss):
        seconds.append(t)
        cpu.append(time.process_time())

    t0 = time.perf_counter()
    model.fit(C, show_progress=False, callback=on_iteration)
    total = time.perf_counter() - t0
    loss = _als.calculate_loss(C, model.user_factors, model.item_factors, args.reg,
                               num_threads=args.threads)
    cpu_seconds = [b - a for a, b in zip(cpu[:-1], cpu[1:])]
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "fit_seconds": total,
                      "loss": float(loss),
                      "threads": args.threads, "implicit": implicit.__version__,
                      "numpy": np.__version__}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
