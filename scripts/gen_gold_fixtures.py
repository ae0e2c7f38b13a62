#!/usr/bin/python3
"""Generate PyTorch "gold" fixtures for the dan C++ tests.

Run with Debian's PyTorch (torch 1.13 CPU), NOT the python3 first on PATH:

    /usr/bin/python3 scripts/gen_gold_fixtures.py [--out tests/fixtures]

Writes (see tests/fixtures/README.md for every key):
    mlp_adam.safetensors, mlp_sgd.safetensors, ops_gold.safetensors,
    mixed_dtypes.safetensors

Fully deterministic: single CPU thread, fixed torch.manual_seed per section,
foreach=False optimizers. Re-running produces byte-identical files.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

MLP_STEPS = 20
SGD_EPOCH_STEPS = 5


def np_(t):
    """torch tensor -> contiguous numpy copy (keeps dtype)."""
    return t.detach().cpu().contiguous().numpy().copy()


# --------------------------------------------------------------------------
# 1. MLP training trajectories
# --------------------------------------------------------------------------
def make_mlp_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(300, 200),                                # "0"
        nn.BatchNorm1d(200, eps=1e-5, momentum=0.1),        # "1"
        nn.Tanh(),                                          # "2"
        nn.Linear(200, 200),                                # "3"
    )
    x = torch.randn(64, 300)
    y = torch.randn(64, 200)
    return model, x, y


def state_np(model, prefix):
    out = {}
    for k, v in model.state_dict().items():
        out[prefix + k] = np_(v)          # num_batches_tracked -> int64 [] (I64)
    return out


def run_mlp(kind):
    model, x, y = make_mlp_and_data()
    model.train()
    d = {"x": np_(x), "y": np_(y)}
    d.update(state_np(model, "init."))

    if kind == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999),
                               eps=1e-8, weight_decay=0, amsgrad=False,
                               foreach=False)
        sched = None
    elif kind == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                              dampening=0, nesterov=False, weight_decay=1e-4,
                              foreach=False)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.9)
    else:
        raise ValueError(kind)

    losses, lrs = [], []
    for step in range(MLP_STEPS):
        lrs.append(opt.param_groups[0]["lr"])
        opt.zero_grad()
        out = model(x)
        loss = F.mse_loss(out, y)          # reduction='mean' over 64*200
        loss.backward()
        losses.append(loss.item())
        if step == 0 and kind == "adam":
            d["out_step0"] = np_(out)
            for name, p in model.named_parameters():
                d["grad_step0." + name] = np_(p.grad)
        opt.step()
        if sched is not None and (step + 1) % SGD_EPOCH_STEPS == 0:
            sched.step()

    d["losses"] = np.asarray(losses, dtype=np.float32)
    d["lrs"] = np.asarray(lrs, dtype=np.float32)
    d.update(state_np(model, "final."))
    return d


# --------------------------------------------------------------------------
# 2. Per-op forward/backward gold values
# --------------------------------------------------------------------------
def grads_of(out, g, inputs):
    """Gradients of (out * g).sum() w.r.t. inputs."""
    return torch.autograd.grad((out * g).sum(), inputs)


def gen_ops():
    d = {}
    torch.manual_seed(1)

    # softmax / log_softmax, float32
    for name, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        x = (torch.randn(4, 7) * 3).requires_grad_(True)
        out = fn(x, dim=-1)
        g = torch.randn_like(out)
        (dx,) = grads_of(out, g, [x])
        d.update({name + ".x": np_(x), name + ".out": np_(out),
                  name + ".g": np_(g), name + ".dx": np_(dx)})

    # layer_norm float32 and float64
    for name, dt in (("layer_norm", torch.float32), ("layer_norm_f64", torch.float64)):
        x = torch.randn(5, 16, dtype=dt).requires_grad_(True)
        w = (1.0 + 0.5 * torch.randn(16, dtype=dt)).requires_grad_(True)
        b = (0.5 * torch.randn(16, dtype=dt)).requires_grad_(True)
        out = F.layer_norm(x, (16,), w, b, eps=1e-5)
        g = torch.randn_like(out)
        dx, dw, db = grads_of(out, g, [x, w, b])
        d.update({name + ".x": np_(x), name + ".weight": np_(w),
                  name + ".bias": np_(b), name + ".out": np_(out),
                  name + ".g": np_(g), name + ".dx": np_(dx),
                  name + ".dweight": np_(dw), name + ".dbias": np_(db)})

    # softmax float64
    x = (torch.randn(4, 7, dtype=torch.float64) * 3).requires_grad_(True)
    out = F.softmax(x, dim=-1)
    g = torch.randn_like(out)
    (dx,) = grads_of(out, g, [x])
    d.update({"softmax_f64.x": np_(x), "softmax_f64.out": np_(out),
              "softmax_f64.g": np_(g), "softmax_f64.dx": np_(dx)})

    # gelu (erf) and gelu (tanh approximation)
    for name, approx in (("gelu", "none"), ("gelu_tanh", "tanh")):
        x = torch.linspace(-5.0, 5.0, 33, dtype=torch.float32).reshape(3, 11)
        x = x.clone().requires_grad_(True)
        out = F.gelu(x, approximate=approx)
        g = torch.randn_like(out)
        (dx,) = grads_of(out, g, [x])
        d.update({name + ".x": np_(x), name + ".out": np_(out),
                  name + ".g": np_(g), name + ".dx": np_(dx)})

    # cross_entropy with one ignored row
    logits = (torch.randn(6, 9) * 2).requires_grad_(True)
    target = torch.randint(0, 9, (6,), dtype=torch.int64)
    target[2] = -100
    loss = F.cross_entropy(logits, target, ignore_index=-100, reduction="mean")
    (dlogits,) = torch.autograd.grad(loss, [logits])
    d.update({"cross_entropy.logits": np_(logits),
              "cross_entropy.target": np_(target),
              "cross_entropy.loss": np_(loss),          # shape [] (0-dim)
              "cross_entropy.dlogits": np_(dlogits)})

    # batch_norm, training mode, one forward
    x = (torch.randn(8, 5) * 2 + 1).requires_grad_(True)
    w = (1.0 + 0.5 * torch.randn(5)).requires_grad_(True)
    b = (0.5 * torch.randn(5)).requires_grad_(True)
    rm = 0.1 * torch.randn(5)
    rv = 0.5 + torch.rand(5)
    rm_before, rv_before = rm.clone(), rv.clone()
    out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)
    g = torch.randn_like(out)
    dx, dw, db = grads_of(out, g, [x, w, b])
    d.update({"batch_norm.x": np_(x), "batch_norm.weight": np_(w),
              "batch_norm.bias": np_(b),
              "batch_norm.running_mean_before": np_(rm_before),
              "batch_norm.running_var_before": np_(rv_before),
              "batch_norm.running_mean_after": np_(rm),
              "batch_norm.running_var_after": np_(rv),
              "batch_norm.out": np_(out), "batch_norm.g": np_(g),
              "batch_norm.dx": np_(dx), "batch_norm.dweight": np_(dw),
              "batch_norm.dbias": np_(db)})
    return d


# --------------------------------------------------------------------------
# 3. dtype / shape edge cases
# --------------------------------------------------------------------------
def gen_mixed():
    return {
        "f32": (np.arange(6, dtype=np.float32) * 0.5).reshape(2, 3),
        "f64": np.arange(4, dtype=np.float64) * 0.25 - 0.5,
        "i32": np.arange(-3, 3, dtype=np.int32).reshape(3, 2),
        "i64": (np.arange(4, dtype=np.int64) * (1 << 33) - 5).reshape(2, 2),
        "bool": (np.arange(6) % 3 == 0).reshape(2, 3),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "fixtures"))
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    files = {
        "mlp_adam.safetensors": (run_mlp("adam"), None),
        "mlp_sgd.safetensors": (run_mlp("sgd"), None),
        "ops_gold.safetensors": (gen_ops(), None),
        "mixed_dtypes.safetensors": (gen_mixed(), {"format": "pt"}),
    }
    total = 0
    for fname, (tensors, meta) in files.items():
        path = os.path.join(args.out, fname)
        st_io.save(path, tensors, metadata=meta)
        back, meta_back = st_io.load(path, with_metadata=True)
        assert meta_back == meta, (fname, meta_back)
        assert sorted(back) == sorted(tensors), fname
        for k, v in tensors.items():
            v = np.asarray(v)
            assert back[k].dtype == v.dtype and back[k].shape == v.shape, k
            assert np.array_equal(back[k], v), k
        size = os.path.getsize(path)
        total += size
        print("%-26s %3d tensors %9d bytes" % (fname, len(tensors), size))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
