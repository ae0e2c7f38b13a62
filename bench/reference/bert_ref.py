#!/usr/bin/env python3
"""PyTorch peer of bench/bench_bert.cpp: BERT encoder forward and training step on CPU.

The C++ benchmark writes one safetensors file (input_ids, attention_mask, loss_weight) and
names an HF model directory (config.json + model.safetensors: all-MiniLM-L6-v2, or random
weights of its shape that the benchmark saved with save_pretrained). This script loads the
same weights into

  --impl hf     transformers' BertModel (eager attention), when transformers imports
  --impl plain  the plain-PyTorch BERT below (same math as HF's eager BertModel)
  --impl auto   hf if possible, else plain (default)

and times, on the same inputs and thread count:
  forward:  model.eval(), torch.no_grad(), last_hidden_state
  train:    model.train() (dropout on), zero_grad(set_to_none), forward,
            loss = sum(last_hidden_state * loss_weight), backward
It prints one JSON line: medians of wall and process-CPU seconds per phase, and checksums of
the eval output (sum and sum of squares of last_hidden_state) so the C++ side can confirm that
both compute the same function. {"error": ...} (exit 3) if torch cannot be imported.

Run: /tmp/hfvenv/bin/python bench/reference/bert_ref.py FILE --model-dir DIR --threads T
"""
import argparse
import json
import math
import os
import statistics
import sys
import time


def plain_bert(torch, cfg):
    """A readable PyTorch BertModel (no pooler): HF's parameter names and eager math."""
    nn = torch.nn
    F = torch.nn.functional
    H, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    dh = H // nh
    eps = cfg.get("layer_norm_eps", 1e-12)
    p_h = cfg.get("hidden_dropout_prob", 0.1)
    p_a = cfg.get("attention_probs_dropout_prob", 0.1)
    act = cfg.get("hidden_act", "gelu")
    gelu = (lambda x: F.gelu(x)) if act == "gelu" else (lambda x: F.gelu(x, approximate="tanh"))

    class Embeddings(nn.Module):
        def __init__(self):
            super().__init__()
            self.word_embeddings = nn.Embedding(cfg["vocab_size"], H, padding_idx=cfg.get("pad_token_id", 0))
            self.position_embeddings = nn.Embedding(cfg["max_position_embeddings"], H)
            self.token_type_embeddings = nn.Embedding(cfg["type_vocab_size"], H)
            self.LayerNorm = nn.LayerNorm(H, eps=eps)
            self.dropout = nn.Dropout(p_h)

        def forward(self, ids):
            T = ids.shape[1]
            pos = torch.arange(T, device=ids.device)
            x = self.word_embeddings(ids) + self.position_embeddings(pos)[None]
            x = x + self.token_type_embeddings.weight[0]
            return self.dropout(self.LayerNorm(x))

    class SelfAttn(nn.Module):
        def __init__(self):
            super().__init__()
            self.query, self.key, self.value = nn.Linear(H, H), nn.Linear(H, H), nn.Linear(H, H)
            self.dropout = nn.Dropout(p_a)

        def forward(self, x, ext):
            B, T, _ = x.shape
            heads = lambda t: t.view(B, T, nh, dh).permute(0, 2, 1, 3)
            q, k, v = heads(self.query(x)), heads(self.key(x)), heads(self.value(x))
            s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(dh) + ext
            p = self.dropout(F.softmax(s, dim=-1))
            return torch.matmul(p, v).permute(0, 2, 1, 3).contiguous().view(B, T, H)

    class Out(nn.Module):
        def __init__(self, d_in):
            super().__init__()
            self.dense = nn.Linear(d_in, H)
            self.LayerNorm = nn.LayerNorm(H, eps=eps)
            self.dropout = nn.Dropout(p_h)

        def forward(self, h, res):
            return self.LayerNorm(self.dropout(self.dense(h)) + res)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.self = SelfAttn()
            self.output = Out(H)

    class Intermediate(nn.Module):
        def __init__(self):
            super().__init__()
            self.dense = nn.Linear(H, cfg["intermediate_size"])

    class Layer(nn.Module):
        def __init__(self):
            super().__init__()
            self.attention = Attention()
            self.intermediate = Intermediate()
            self.output = Out(cfg["intermediate_size"])

        def forward(self, x, ext):
            a = self.attention.output(self.attention.self(x, ext), x)
            return self.output(gelu(self.intermediate.dense(a)), a)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.ModuleList([Layer() for _ in range(cfg["num_hidden_layers"])])

    class Bert(nn.Module):
        def __init__(self):
            super().__init__()
            self.embeddings = Embeddings()
            self.encoder = Encoder()

        def forward(self, input_ids, attention_mask):
            ext = (1.0 - attention_mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
            x = self.embeddings(input_ids)
            for layer in self.encoder.layer:
                x = layer(x, ext)
            return x

    return Bert()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="safetensors file written by bench_bert")
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--impl", choices=["auto", "hf", "plain"], default="auto")
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--profile", action="store_true", help="torch.profiler table (stderr)")
    args = ap.parse_args()
    try:
        import numpy as np  # noqa: F401
        import torch
    except ImportError as e:
        print(json.dumps({"error": f"{sys.executable} cannot import torch/numpy: {e}"}))
        return 3
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "scripts"))
    import st_io

    torch.set_num_threads(args.threads)
    d = st_io.load(args.data)
    ids = torch.from_numpy(d["input_ids"]).long()
    mask = torch.from_numpy(d["attention_mask"]).long()
    wloss = torch.from_numpy(d["loss_weight"])

    impl = args.impl
    model = None
    if impl in ("auto", "hf"):
        try:
            from transformers import BertModel
            model = BertModel.from_pretrained(args.model_dir, attn_implementation="eager",
                                              add_pooling_layer=False)
            impl = "hf"
            import transformers
            impl_name = f"transformers {transformers.__version__} BertModel (eager)"
        except Exception as e:  # noqa: BLE001
            if impl == "hf":
                print(json.dumps({"error": f"transformers BertModel unavailable: {e}"}))
                return 3
            impl = "plain"
    if impl == "plain":
        with open(os.path.join(args.model_dir, "config.json")) as f:
            cfg = json.load(f)
        model = plain_bert(torch, cfg)
        w = st_io.load(os.path.join(args.model_dir, "model.safetensors"))
        sd = {k: torch.from_numpy(v) for k, v in w.items()
              if not k.startswith("pooler.") and k != "embeddings.position_ids"}
        model.load_state_dict(sd)
        impl_name = "plain-PyTorch BERT (bench/reference/bert_ref.py)"

    def fwd():
        o = model(input_ids=ids, attention_mask=mask)
        return o.last_hidden_state if hasattr(o, "last_hidden_state") else o

    def timed(f, n):
        walls, cpus = [], []
        for _ in range(n):
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        return statistics.median(walls), statistics.median(cpus)

    model.eval()
    with torch.no_grad():
        h = fwd()
        res = {"checksum": float(h.double().sum()), "checksum_sq": float((h.double() ** 2).sum())}
        fwd()  # warm-up
        res["forward_wall_s"], res["forward_cpu_s"] = timed(fwd, args.repeats)

    if not args.no_train:
        model.train()

        def step():
            model.zero_grad(set_to_none=True)
            loss = (fwd() * wloss).sum()
            loss.backward()

        step()  # warm-up
        res["train_wall_s"], res["train_cpu_s"] = timed(step, args.repeats)

    if args.profile:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            model.train()
            for _ in range(2):
                model.zero_grad(set_to_none=True)
                (fwd() * wloss).sum().backward()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30),
              file=sys.stderr)

    res.update({"torch": torch.__version__, "threads": torch.get_num_threads(), "impl": impl_name})
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
