#!/usr/bin/python3
"""Generate the GNN gold fixture (GCNConv, GINEConv) for tests/layers/test_gnn_gold.cpp.

Run with Debian's PyTorch (torch 1.13 CPU), NOT the python3 first on PATH:

    /usr/bin/python3 scripts/gen_gnn_fixture.py [--out tests/fixtures]

Writes gnn_gold.safetensors (every key is described in tests/fixtures/README.md, section
"gnn_gold.safetensors"). PyTorch Geometric is not needed: both layers are written here in
plain PyTorch with index_add_, following PyG's definitions:

  GCNConv:  add_remaining_self_loops (fill 1, or 2 when improved; existing self-loops keep
            their weight), deg = scatter-add of the weights over the targets,
            norm = deg^-1/2[source] * w * deg^-1/2[target] (inf -> 0), h = x W^T,
            out[target] += norm * h[source], then + bias.
  GINEConv: e = edge_attr W_l^T + b_l (when edge_dim is given), m = relu(x[source] + e),
            aggr[target] += m, h = aggr + (1 + eps) x, out = nn(h).

Deterministic: one CPU thread, deterministic algorithms, fixed seeds; re-running gives
byte-identical files.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

N, E, F_IN, F_OUT, EDGE_DIM, HIDDEN = 30, 100, 8, 6, 5, 16


def np_(t):
    return t.detach().cpu().contiguous().numpy().copy()


def make_graph():
    """~100 random edges over 30 nodes with: self-loops on nodes 3, 7, 11 (one each), one
    duplicated edge (edges 4 and 5), and node 29 receiving no edge (in-degree 0)."""
    g = torch.Generator().manual_seed(0)
    src = torch.randint(0, N, (E,), generator=g)
    dst = torch.randint(0, N - 1, (E,), generator=g)  # never 29
    # No accidental self-loops: shift a loop's target (still never 29).
    clash = src == dst
    dst[clash] = (dst[clash] + 1) % (N - 1)
    for e, v in zip((0, 1, 2), (3, 7, 11)):
        src[e] = v
        dst[e] = v
    src[5], dst[5] = src[4], dst[4]
    edge_index = torch.stack([src, dst])
    edge_weight = 0.5 + torch.rand(E, generator=g)
    x = torch.randn(N, F_IN, generator=g)
    edge_attr = torch.randn(E, EDGE_DIM, generator=g)
    edge_attr8 = torch.randn(E, F_IN, generator=g)
    return edge_index, edge_weight, x, edge_attr, edge_attr8


def gcn_norm(edge_index, edge_weight, improved, add_self_loops):
    src, dst = edge_index
    w = torch.ones(src.numel()) if edge_weight is None else edge_weight
    if add_self_loops:
        mask = src != dst
        loop_w = torch.full((N,), 2.0 if improved else 1.0)
        loop_w[src[~mask]] = w[~mask]
        loop = torch.arange(N)
        src = torch.cat([src[mask], loop])
        dst = torch.cat([dst[mask], loop])
        w = torch.cat([w[mask], loop_w])
    deg = torch.zeros(N).index_add_(0, dst, w)
    dinv = deg.pow(-0.5)
    dinv = dinv.masked_fill(dinv == float("inf"), 0.0)
    return src, dst, dinv[src] * w * dinv[dst]


def run_gcn(prefix, graph, improved, add_self_loops, weighted, seed):
    edge_index, edge_weight, x0, _, _ = graph
    torch.manual_seed(seed)
    W = torch.empty(F_OUT, F_IN)
    nn.init.xavier_uniform_(W)
    W.requires_grad_(True)
    b = (0.1 * torch.randn(F_OUT)).requires_grad_(True)
    x = x0.clone().requires_grad_(True)
    src, dst, norm = gcn_norm(edge_index, edge_weight if weighted else None, improved,
                              add_self_loops)
    h = x @ W.t()
    out = torch.zeros(N, F_OUT).index_add_(0, dst, norm.view(-1, 1) * h[src]) + b
    g = torch.randn(N, F_OUT)
    dx, dW, db = torch.autograd.grad((out * g).sum(), [x, W, b])
    return {prefix + ".lin.weight": np_(W), prefix + ".bias": np_(b), prefix + ".g": np_(g),
            prefix + ".out": np_(out), prefix + ".grad.x": np_(dx),
            prefix + ".grad.lin.weight": np_(dW), prefix + ".grad.bias": np_(db)}


def run_gine(prefix, graph, eps, train_eps, edge_dim, hidden, seed):
    edge_index, _, x0, edge_attr5, edge_attr8 = graph
    src, dst = edge_index
    torch.manual_seed(seed)
    if hidden:
        mlp = nn.Sequential(nn.Linear(F_IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, F_OUT))
    else:
        mlp = nn.Sequential(nn.Linear(F_IN, F_OUT))
    lin = nn.Linear(edge_dim, F_IN) if edge_dim else None
    eps_t = torch.tensor([eps]).requires_grad_(train_eps)
    x = x0.clone().requires_grad_(True)
    ea = (edge_attr5 if edge_dim else edge_attr8).clone().requires_grad_(True)
    e = lin(ea) if lin is not None else ea
    m = (x[src] + e).relu()
    aggr = torch.zeros(N, F_IN).index_add_(0, dst, m)
    out = mlp(aggr + (1 + eps_t) * x)
    g = torch.randn(out.shape)
    named = [("nn." + k, p) for k, p in mlp.named_parameters()]
    if lin is not None:
        named += [("lin." + k, p) for k, p in lin.named_parameters()]
    trainable = ([("eps", eps_t)] if train_eps else []) + named
    grads = torch.autograd.grad((out * g).sum(), [x, ea] + [p for _, p in trainable])
    d = {prefix + ".g": np_(g), prefix + ".out": np_(out), prefix + ".eps": np_(eps_t),
         prefix + ".grad.x": np_(grads[0]), prefix + ".grad.edge_attr": np_(grads[1])}
    for k, p in named:
        d[prefix + "." + k] = np_(p)
    for (k, _), gp in zip(trainable, grads[2:]):
        d[prefix + ".grad." + k] = np_(gp)
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    graph = make_graph()
    edge_index, edge_weight, x, edge_attr, edge_attr8 = graph
    d = {"graph.edge_index": np_(edge_index), "graph.edge_weight": np_(edge_weight),
         "graph.x": np_(x), "graph.edge_attr": np_(edge_attr), "graph.edge_attr8": np_(edge_attr8)}
    d.update(run_gcn("gcn", graph, improved=False, add_self_loops=True, weighted=False, seed=1))
    d.update(run_gcn("gcn_improved", graph, improved=True, add_self_loops=True, weighted=True,
                     seed=2))
    d.update(run_gcn("gcn_noloops", graph, improved=False, add_self_loops=False, weighted=True,
                     seed=3))
    d.update(run_gine("gine", graph, eps=0.1, train_eps=True, edge_dim=EDGE_DIM, hidden=True,
                      seed=4))
    d.update(run_gine("gine_plain", graph, eps=0.0, train_eps=False, edge_dim=0, hidden=False,
                      seed=5))

    path = os.path.join(args.out, "gnn_gold.safetensors")
    st_io.save(path, d)
    back = st_io.load(path)
    assert sorted(back) == sorted(d)
    for k, v in d.items():
        assert back[k].dtype == v.dtype and np.array_equal(back[k], v), k
    print("%s: %d tensors, %d bytes" % (path, len(d), os.path.getsize(path)))


if __name__ == "__main__":
    main()
