#!/usr/bin/env python3
"""PyTorch reference for bench/bench_gnn_epoch.cpp: full-graph training epochs (forward,
cross-entropy, backward, Adam) of a 2-layer GCN and a 2-layer GINE, written in plain PyTorch
the way PyTorch Geometric computes them.

GCN: Â = D^-1/2 (A + remaining self-loops) D^-1/2 as a coalesced sparse COO tensor, built once
(PyG's cached=True), and Âᵀ built once too: the propagation is a torch.autograd.Function whose
forward is torch.sparse.mm(Â, h) and backward torch.sparse.mm(Âᵀ, g) (kinder to PyTorch than
letting autograd transpose Â every step). GINE: x.index_select(0, src) + Linear(edge_attr),
ReLU, zeros.index_add_(0, dst, .), + (1 + eps) x, then the MLP.

The edge list comes from the C++ side (--edges-file: int64 nodes, edges, weighted; int32
src[E], dst[E]); features, labels and parameters from the same splitmix64 stream, in the
order of the C++ modules' named_parameters(). Prints one JSON line:
{"gcn": {wall_ms, cpu_ms, loss_first, loss_last}, "gine": {...}} (medians after warm-up).
Run with Debian's interpreter: /usr/bin/python3 bench/reference/gnn_epoch.py --edges-file F
"""
import argparse
import json
import math
import statistics
import sys
import time

MASK64 = (1 << 64) - 1


def splitmix(np, z):
    with np.errstate(over="ignore"):
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def uniform(np, shape, seed, lo, hi):
    """splitmix64(seed << 32 | i) -> top 24 bits -> lo + (hi - lo) * u, exactly as the C++."""
    n = math.prod(shape)
    with np.errstate(over="ignore"):
        z = splitmix(np, np.arange(n, dtype=np.uint64) + np.uint64((seed << 32) & MASK64))
    u = (z >> np.uint64(40)).astype(np.float64) / 16777216.0
    return (lo + (hi - lo) * u).astype(np.float32).reshape(shape)


def make_params(np, torch, shapes, base):
    """Parameters in the C++ named_parameters() order: 2-D U(±1/sqrt(in)), 1-D U(±0.1),
    eps = 0 (seed base + position)."""
    out = {}
    for k, (name, shape) in enumerate(shapes):
        if name.endswith("eps"):
            v = np.zeros(shape, np.float32)
        elif len(shape) == 2:
            b = 1.0 / math.sqrt(shape[1])
            v = uniform(np, shape, base + k, -b, b)
        else:
            v = uniform(np, shape, base + k, -0.1, 0.1)
        out[name] = torch.from_numpy(v).requires_grad_(True)
    return out


def gcn_matrix(torch, src, dst, n):
    """Â of PyG's gcn_norm on the coalesced adjacency A[dst, src] (remaining self-loops with
    weight 1; existing loops keep theirs), and its transpose, both coalesced COO."""
    a = torch.sparse_coo_tensor(torch.stack([dst, src]), torch.ones(src.numel()), (n, n)).coalesce()
    row, col = a.indices()
    w = a.values()
    mask = row != col
    loop_w = torch.ones(n)
    loop_w[row[~mask]] = w[~mask]
    loop = torch.arange(n)
    row = torch.cat([row[mask], loop])
    col = torch.cat([col[mask], loop])
    w = torch.cat([w[mask], loop_w])
    deg = torch.zeros(n).index_add_(0, row, w)
    dinv = deg.pow(-0.5)
    dinv = dinv.masked_fill(dinv == float("inf"), 0.0)
    norm = dinv[col] * w * dinv[row]
    a_hat = torch.sparse_coo_tensor(torch.stack([row, col]), norm, (n, n)).coalesce()
    return a_hat, a_hat.t().coalesce()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--edges-file", required=True)
    ap.add_argument("--features", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--classes", type=int, default=16)
    ap.add_argument("--edge-dim", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--models", default="gcn,gine")
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": f"{sys.executable} cannot import torch/numpy: {e}"}))
        return 3
    torch.set_num_threads(args.threads)

    head = np.fromfile(args.edges_file, dtype=np.int64, count=3)
    n, e_count = int(head[0]), int(head[1])
    body = np.fromfile(args.edges_file, dtype=np.int32, offset=24, count=2 * e_count)
    src = torch.from_numpy(body[:e_count].astype(np.int64))
    dst = torch.from_numpy(body[e_count:].astype(np.int64))
    fi, hd, nc, ed = args.features, args.hidden, args.classes, args.edge_dim
    x = torch.from_numpy(uniform(np, (n, fi), 7, -1.0, 1.0))
    edge_attr = torch.from_numpy(uniform(np, (e_count, ed), 8, -1.0, 1.0))
    y = torch.from_numpy((splitmix(np, np.arange(n, dtype=np.uint64) + np.uint64(3 << 32)) %
                          np.uint64(nc)).astype(np.int64))

    def run(params, forward):
        opt = torch.optim.Adam(list(params.values()), lr=args.lr)
        wall, cpu, losses = [], [], []
        for epoch in range(args.warmup + args.epochs):
            c0, t0 = time.process_time(), time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward(params), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            if epoch >= args.warmup:
                wall.append((time.perf_counter() - t0) * 1e3)
                cpu.append((time.process_time() - c0) * 1e3)
        return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu),
                "loss_first": losses[0], "loss_last": losses[-1]}

    out = {}
    models = args.models.split(",")
    if "gcn" in models:
        a_hat, a_hat_t = gcn_matrix(torch, src, dst, n)

        class Propagate(torch.autograd.Function):
            @staticmethod
            def forward(ctx, h):
                return torch.sparse.mm(a_hat, h)

            @staticmethod
            def backward(ctx, g):
                return torch.sparse.mm(a_hat_t, g)

        shapes = [("conv1.bias", (hd,)), ("conv1.lin.weight", (hd, fi)),
                  ("conv2.bias", (nc,)), ("conv2.lin.weight", (nc, hd))]
        p = make_params(np, torch, shapes, 1000)

        def gcn(p):
            h = Propagate.apply(x @ p["conv1.lin.weight"].t()) + p["conv1.bias"]
            h = h.relu()
            return Propagate.apply(h @ p["conv2.lin.weight"].t()) + p["conv2.bias"]

        out["gcn"] = run(p, gcn)
        del a_hat, a_hat_t

    if "gine" in models:
        shapes = []
        for c, (fin, fout) in (("conv1", (fi, hd)), ("conv2", (hd, nc))):
            shapes += [(c + ".eps", (1,)), (c + ".nn.0.weight", (hd, fin)), (c + ".nn.0.bias", (hd,)),
                       (c + ".nn.2.weight", (fout, hd)), (c + ".nn.2.bias", (fout,)),
                       (c + ".lin.weight", (fin, ed)), (c + ".lin.bias", (fin,))]
        p = make_params(np, torch, shapes, 2000)

        def conv(h, c):
            e = F.linear(edge_attr, p[c + ".lin.weight"], p[c + ".lin.bias"])
            m = (h.index_select(0, src) + e).relu()
            aggr = torch.zeros(h.shape).index_add_(0, dst, m)
            z = aggr + (1 + p[c + ".eps"]) * h
            z = F.linear(z, p[c + ".nn.0.weight"], p[c + ".nn.0.bias"]).relu()
            return F.linear(z, p[c + ".nn.2.weight"], p[c + ".nn.2.bias"])

        out["gine"] = run(p, lambda p: conv(conv(x, "conv1").relu(), "conv2"))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
