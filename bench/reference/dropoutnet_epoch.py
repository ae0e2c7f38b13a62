#!/usr/bin/env python3
"""PyTorch peer of bench/bench_dropoutnet_epoch.cpp: one DropoutNet training epoch.

The C++ benchmark writes one safetensors file with everything the epoch needs: the input
tables extended with their transform and zero rows (U_ext, V_ext), the content tables (phiU,
phiV), the epoch's pairs (users, items, targets) with the extended-table rows each pair reads
after the input dropout (u_rows, v_rows), and the model's initial state_dict. This script
trains the same model on the same batches the way the reference implementation does
(NumPy fancy indexing per batch, torch.from_numpy, Linear -> BatchNorm1d -> tanh blocks, a
final Linear, row-wise dot, MSELoss, SGD momentum) and prints one JSON line with its epoch
time and loss trajectory. {"error": ...} (exit 3) if torch cannot be imported.

Run with Debian's interpreter: /usr/bin/python3 bench/reference/dropoutnet_epoch.py FILE --threads T
"""
import argparse
import json
import os
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="safetensors file written by bench_dropoutnet_epoch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--batches", type=int, default=0, help="stop after this many (0 = epoch)")
    ap.add_argument("--hidden", default="800,400")
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--profile", action="store_true",
                    help="print torch.profiler's per-op table (stderr) for 5 extra batches")
    args = ap.parse_args()
    try:
        import numpy as np
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": f"{sys.executable} cannot import torch/numpy: {e}"}))
        return 3
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "scripts"))
    import st_io

    torch.set_num_threads(args.threads)
    d = st_io.load(args.data)
    U_ext, V_ext, phiU, phiV = d["U_ext"], d["V_ext"], d["phiU"], d["phiV"]
    users, items, targets = d["users"], d["items"], d["targets"]
    u_rows, v_rows = d["u_rows"], d["v_rows"]
    hidden = [int(h) for h in args.hidden.split(",") if h]
    rank_out = d["init.user_final.%d.weight" % (3 * len(hidden))].shape[0]

    def tower(d_in):
        layers = []
        for h in hidden:
            layers += [nn.Linear(d_in, h), nn.BatchNorm1d(h), nn.Tanh()]
            d_in = h
        layers.append(nn.Linear(d_in, rank_out))
        return nn.Sequential(*layers)

    class DropoutNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.user_final = tower(U_ext.shape[1] + phiU.shape[1])
            self.item_final = tower(V_ext.shape[1] + phiV.shape[1])

        def forward(self, u, v, pu, pv):
            uh = self.user_final(torch.cat((u, pu), 1))
            vh = self.item_final(torch.cat((v, pv), 1))
            return (uh * vh).sum(1)

    model = DropoutNet()
    model.load_state_dict({k[5:]: torch.from_numpy(v) for k, v in d.items()
                           if k.startswith("init.")})
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    crit = nn.MSELoss()

    n = len(users)
    nb = (n + args.batch - 1) // args.batch
    if args.batches > 0:
        nb = min(nb, args.batches)

    def step(b):
        s, e = b * args.batch, min(n, (b + 1) * args.batch)
        Uin = torch.from_numpy(U_ext[u_rows[s:e]])
        Vin = torch.from_numpy(V_ext[v_rows[s:e]])
        Uc = torch.from_numpy(phiU[users[s:e]])
        Vc = torch.from_numpy(phiV[items[s:e]])
        tg = torch.from_numpy(targets[s:e])
        loss = crit(model(Uin, Vin, Uc, Vc), tg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    losses = []
    c0, t0 = time.process_time(), time.perf_counter()
    for b in range(nb):
        losses.append(step(b))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0

    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for b in range(5):
                step(b % nb)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25),
              file=sys.stderr)

    print(json.dumps({
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "batches": nb,
        "epoch_s": wall,
        "cpu_s": cpu,
        "loss_first": losses[0],
        "loss_last": losses[-1],
        "loss_mean": float(np.mean(losses)),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
