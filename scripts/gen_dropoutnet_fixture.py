#!/usr/bin/python3
"""Gold fixtures for the DropoutNet model test (tests/models/test_dropoutnet.cpp).

A small DropoutNet written plainly in PyTorch with the architecture of
models/dropoutnet (towers f_U, f_phiU -> concat -> final MLP per side, score = row-wise dot,
MSE to the target), trained 10 steps with SGD + momentum on a fixed sequence of batches whose
input dropout is already applied (zeroed rows), so the C++ side needs no RNG matching.

Run with Debian's PyTorch (torch 1.13 CPU):

    /usr/bin/python3 scripts/gen_dropoutnet_fixture.py [--out tests/fixtures]

Writes dropoutnet_towers.safetensors and dropoutnet_simple.safetensors (keys in
tests/fixtures/README.md). Deterministic: one thread, fixed seeds; re-running gives identical
files.
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

STEPS = 10
BATCH = 16
EVAL_ROWS = 9
LR, MOMENTUM = 0.05, 0.9


def mlp(d_in, hidden, d_out):
    """Linear -> BatchNorm1d -> Tanh per hidden width, then Linear (core MLP numbering)."""
    layers = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.BatchNorm1d(h), nn.Tanh()]
        d_in = h
    layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


class DropoutNet(nn.Module):
    """Per side: [f_pref(x) || f_content(phi)] -> final MLP. A tower with out == 0 is absent
    (its input enters the concatenation unchanged); content_dim == 0 means no content."""

    def __init__(self, rank_in, du, dv, pref, content, final_hidden, rank_out):
        super().__init__()
        self.cfg = (rank_in, du, dv, pref, content)
        for side, dc in (("user", du), ("item", dv)):
            width = 0
            if pref[1] > 0:
                setattr(self, side + "_pref", mlp(rank_in, pref[0], pref[1]))
                width += pref[1]
            else:
                width += rank_in
            if dc > 0:
                if content[1] > 0:
                    setattr(self, side + "_content", mlp(dc, content[0], content[1]))
                    width += content[1]
                else:
                    width += dc
            setattr(self, side + "_final", mlp(width, final_hidden, rank_out))

    def side(self, name, x, phi):
        parts = [getattr(self, name + "_pref")(x) if hasattr(self, name + "_pref") else x]
        if phi is not None:
            parts.append(getattr(self, name + "_content")(phi)
                         if hasattr(self, name + "_content") else phi)
        return getattr(self, name + "_final")(torch.cat(parts, 1) if len(parts) > 1 else parts[0])

    def forward(self, u, v, pu, pv):
        return self.side("user", u, pu), self.side("item", v, pv)


def np_(t):
    return t.detach().contiguous().numpy().copy()


def run(name, seed, rank_in, du, dv, pref, content, final_hidden, rank_out, out_dir):
    torch.manual_seed(seed)
    model = DropoutNet(rank_in, du, dv, pref, content, final_hidden, rank_out)
    d = {}
    for k, v in model.state_dict().items():
        d["init." + k] = np_(v)

    # The batch sequence: WMF-like inputs, the targets they imply, input dropout applied.
    def draw(rows, d_in):
        return torch.randn(rows, d_in) if d_in > 0 else torch.zeros(rows, 0)

    Uin = torch.randn(STEPS, BATCH, rank_in)
    Vin = torch.randn(STEPS, BATCH, rank_in)
    target = (Uin * Vin).sum(2) / rank_in ** 0.5
    phiU = torch.stack([draw(BATCH, du) for _ in range(STEPS)])
    phiV = torch.stack([draw(BATCH, dv) for _ in range(STEPS)])
    for s in range(STEPS):  # half the rows of each: item dropout, user dropout (zeroed)
        Vin[s, torch.randperm(BATCH)[: BATCH // 2]] = 0
        Uin[s, torch.randperm(BATCH)[: BATCH // 2]] = 0
    d.update({"Uin": np_(Uin), "Vin": np_(Vin), "target": np_(target)})
    if du > 0:
        d["phiU"] = np_(phiU)
    d["phiV"] = np_(phiV)

    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, foreach=False)
    model.train()
    losses = []
    for s in range(STEPS):
        opt.zero_grad()
        uh, vh = model(Uin[s], Vin[s], phiU[s] if du > 0 else None, phiV[s])
        loss = F.mse_loss((uh * vh).sum(1), target[s])
        loss.backward()
        if s == 0:
            d["step0.U_hat"] = np_(uh)
            d["step0.V_hat"] = np_(vh)
        losses.append(loss.item())
        opt.step()
    d["losses"] = torch.tensor(losses, dtype=torch.float32).numpy()
    for k, v in model.state_dict().items():
        d["final." + k] = np_(v)

    # Inference after training: eval mode (running statistics), no grad.
    model.eval()
    eu, ev = torch.randn(EVAL_ROWS, rank_in), torch.randn(EVAL_ROWS, rank_in)
    epu = torch.randn(EVAL_ROWS, du) if du > 0 else None
    epv = torch.randn(EVAL_ROWS, dv)
    with torch.no_grad():
        uh, vh = model(eu, ev, epu, epv)
    d.update({"eval.Uin": np_(eu), "eval.Vin": np_(ev), "eval.phiV": np_(epv),
              "eval.U_hat": np_(uh), "eval.V_hat": np_(vh)})
    if du > 0:
        d["eval.phiU"] = np_(epu)
    path = os.path.join(out_dir, "dropoutnet_%s.safetensors" % name)
    st_io.save(path, d)
    print("wrote %s (%d tensors), losses %s" % (path, len(d), " ".join("%.4f" % x for x in losses)))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    # Every tower present: f_U, f_V [6 -> 10 -> 8], f_phiU [5 -> 4], f_phiV [7 -> 4], final
    # [12 -> 12 -> 5] (the paper's DeepAniNet form, double-layer preference towers).
    run("towers", 1, rank_in=6, du=5, dv=7, pref=([10], 8), content=([], 4), final_hidden=[12],
        rank_out=5, out_dir=args.out)
    # The reference implementation's form: no towers, [U] (no user content) and [V || phiV]
    # -> 12 -> 9 -> 5.
    run("simple", 2, rank_in=6, du=0, dv=7, pref=([], 0), content=([], 0), final_hidden=[12, 9],
        rank_out=5, out_dir=args.out)


if __name__ == "__main__":
    main()
