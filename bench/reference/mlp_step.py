#!/usr/bin/env python3
"""PyTorch reference for bench/bench_mlp_step.cpp: one SGD-momentum training step of the
DropoutNet-shaped MLP, timed the same way (warm-up, then per-step and per-phase medians).

Parameters and data come from the same splitmix64 stream as the C++ side, so both runs follow
the same loss trajectory and the losses printed double as a cross-check of our step.
Prints one JSON line on stdout; {"error": ...} (exit 3) if torch cannot be imported.
Run with Debian's interpreter: /usr/bin/python3 bench/reference/mlp_step.py --threads 1
"""
import argparse
import json
import math
import statistics
import sys
import time

BATCH, DIMS = 1024, (500, 800, 400, 200)
MASK64 = (1 << 64) - 1


def uniform(np, shape, seed, lo, hi):
    """splitmix64(seed << 32 | i) -> top 24 bits -> lo + (hi - lo) * u, exactly as the C++."""
    n = math.prod(shape)
    with np.errstate(over="ignore"):
        z = np.arange(n, dtype=np.uint64) + np.uint64((seed << 32) & MASK64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--profile", action="store_true",
                    help="print torch.profiler's per-op table (stderr) for a few extra steps")
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
    except ImportError as e:
        print(json.dumps({"error": f"{sys.executable} cannot import torch/numpy: {e}"}))
        return 3

    torch.set_num_threads(args.threads)
    t = lambda a: torch.from_numpy(a)  # noqa: E731

    layers = []
    for i in range(3):
        fan_in, fan_out = DIMS[i], DIMS[i + 1]
        lin = torch.nn.Linear(fan_in, fan_out)
        bound = 1.0 / math.sqrt(fan_in)
        with torch.no_grad():
            lin.weight.copy_(t(uniform(np, (fan_out, fan_in), 10 * i + 1, -bound, bound)))
            lin.bias.copy_(t(uniform(np, (fan_out,), 10 * i + 2, -bound, bound)))
        layers.append(lin)
        if i < 2:
            layers += [torch.nn.BatchNorm1d(fan_out, eps=1e-5, momentum=0.1), torch.nn.Tanh()]
    model = torch.nn.Sequential(*layers).train()
    x = t(uniform(np, (BATCH, DIMS[0]), 100, -1.0, 1.0))
    target = t(uniform(np, (BATCH, DIMS[-1]), 101, -1.0, 1.0))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)  # ours drops the grads too (Tensor::zero_grad_)
        t1 = time.perf_counter()
        loss = torch.nn.functional.mse_loss(model(x), target)
        t2 = time.perf_counter()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        return [t1 - t0, t2 - t1, t3 - t2, t4 - t3], loss.item()

    losses = []
    for _ in range(args.warmup):
        losses.append(step()[1])
    totals, cpu, phases = [], [], []
    for _ in range(args.steps):
        c = time.process_time()
        s = time.perf_counter()
        p, loss = step()  # the graph is freed on return, inside the timed region
        totals.append(time.perf_counter() - s)
        cpu.append(time.process_time() - c)
        phases.append(p)
        losses.append(loss)

    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(5):
                step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25),
              file=sys.stderr)

    med = lambda v: 1e3 * statistics.median(v)  # noqa: E731
    names = ["zero_grad", "forward", "backward", "step"]
    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "steps": args.steps,
        "median_ms": med(totals),
        "median_cpu_ms": med(cpu),
        "phases_ms": {n: med([p[i] for p in phases]) for i, n in enumerate(names)},
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "num_losses": len(losses),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
