#!/usr/bin/env python3
"""PyTorch reference for bench/bench_spmm.cpp: torch.sparse.mm (sparse x dense) on the graphs
the C++ side wrote as binary edge lists, in both of torch's sparse layouts (COO, CSR).

Each --graph KEY:REPS=PATH file holds int64 nodes, int64 edges, int64 weighted, int32 src[E],
int32 dst[E] and, when weighted, float32 weight[E]. The matrix is A[dst, src] = weight (ones
when unweighted), coalesced (duplicates summed); KEY "anime" is symmetrized first (A + A^T),
as the C++ side does. X [nodes, F] comes from the same splitmix64 stream as the C++ side, so
the output sums are comparable. Prints one JSON line: {KEY: {coo_ms, coo_cpu_ms, csr_ms, csr_cpu_ms, nnz, checksum}}
(medians of wall and process CPU time).
Run with Debian's interpreter: /usr/bin/python3 bench/reference/spmm.py --threads 1 --graph ...
"""
import argparse
import json
import math
import statistics
import sys
import time

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


def read_graph(np, torch, path, symmetrize):
    head = np.fromfile(path, dtype=np.int64, count=3)
    nodes, edges, weighted = (int(v) for v in head)
    body = np.fromfile(path, dtype=np.int32, offset=24, count=2 * edges)
    src = torch.from_numpy(body[:edges].astype(np.int64))
    dst = torch.from_numpy(body[edges:].astype(np.int64))
    if weighted:
        w = torch.from_numpy(np.fromfile(path, dtype=np.float32, offset=24 + 8 * edges, count=edges))
    else:
        w = torch.ones(edges)
    index = torch.stack([dst, src])
    if symmetrize:
        index = torch.cat([index, index.flip(0)], dim=1)
        w = torch.cat([w, w])
    a = torch.sparse_coo_tensor(index, w, (nodes, nodes)).coalesce()
    return nodes, a


def timed(fn, warmup, reps):
    """Medians of wall and process CPU time, in ms."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--graph", action="append", default=[], help="KEY:REPS=PATH")
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
    except ImportError as e:
        print(json.dumps({"error": f"{sys.executable} cannot import torch/numpy: {e}"}))
        return 3
    torch.set_num_threads(args.threads)
    out = {}
    with torch.no_grad():
        for spec in args.graph:
            key_reps, path = spec.split("=", 1)
            key, reps = key_reps.split(":")
            nodes, coo = read_graph(np, torch, path, key == "anime")
            csr = coo.to_sparse_csr()
            x = torch.from_numpy(uniform(np, (nodes, args.features), 7, -1.0, 1.0))
            y = torch.sparse.mm(coo, x)
            coo_ms, coo_cpu = timed(lambda: torch.sparse.mm(coo, x), 1, int(reps))
            csr_ms, csr_cpu = timed(lambda: torch.sparse.mm(csr, x), 1, int(reps))
            out[key] = {"coo_ms": coo_ms, "coo_cpu_ms": coo_cpu, "csr_ms": csr_ms,
                        "csr_cpu_ms": csr_cpu, "nnz": int(coo._nnz()),
                        "checksum": float(y.double().sum())}
            del coo, csr, x, y
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
