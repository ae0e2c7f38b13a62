#!/usr/bin/env python3
"""Generate the BERT gold fixtures (tests/fixtures/bert/) from HF transformers' BertModel.

Reference: transformers 4.40.2 (the newest 4.x line that imports with Debian's torch 1.13),
installed in a venv on top of Debian's PyTorch:

    /usr/bin/python3 -m venv --system-site-packages /tmp/hfvenv
    /tmp/hfvenv/bin/pip install "transformers==4.40.2"
    /tmp/hfvenv/bin/python scripts/gen_bert_fixture.py [--out tests/fixtures/bert]
        [--minilm DIR]        # default: $DEEPANINET_MODELS/all-MiniLM-L6-v2 or ~/.cache/...
        [--data DIR]          # default: ../shared/data/mal2023 next to the checkout

Writes (every key is described in tests/fixtures/bert/README.md):

  tiny/                  config.json + model.safetensors of a random-weight BertModel written
                         by HF's save_pretrained (vocab 100, hidden 32, 2 layers, 4 heads,
                         intermediate 64, max_pos 64, gelu), so the test reads HF's own files.
  tiny_gold.safetensors  padded inputs (batch 3, lengths 11/7/3), last_hidden_state,
                         pooler_output, mean-pooled and normalized embeddings, and for
                         loss = sum(last_hidden_state * loss_weight) + sum(pooler_output *
                         pooler_weight) the gradient of every parameter; plus the same inputs
                         without token_type_ids / attention_mask and their outputs.
  tiny_gelu_new/ + tiny_gelu_new_gold.safetensors
                         a 1-layer variant with hidden_act "gelu_new" (forward only).
  minilm_gold.safetensors  (when the all-MiniLM-L6-v2 directory exists) 8 mal2023 synopses
                         tokenized by BertTokenizerFast from the model's vocab.txt
                         (max_length 128): token ids and masks only (no text), normalized
                         mean-pooled sentence embeddings [8, 384], pooler_output, the full
                         last_hidden_state of the longest sequence and of all 8 at 4 positions.

Deterministic: one thread, eager attention, fixed seeds; re-running on the same machine gives
identical files. The weights are identical everywhere; another CPU moves the float outputs by
a few ulps (measured: 1.4e-6 on the tiny hidden states, 1e-5 on gradients of magnitude 20),
well inside the tests' tolerances.
"""

import argparse
import csv
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def np_(t):
    return t.detach().cpu().numpy().copy()


def mean_pool(h, mask):
    # sentence-transformers' Pooling(mean)
    m = mask.unsqueeze(-1).expand(h.size()).float()
    return (h * m).sum(1) / torch.clamp(m.sum(1), min=1e-9)


def randomize(model, gen):
    """Weights far from HF's N(0, 0.02) init, so that every parameter matters in the test."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:  # BERT / DistilBERT
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif "embeddings" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[1]))


def padded_batch(gen, lengths=(11, 7, 3), vocab=100):
    """Random ids [len(lengths), max(lengths)] from 1..vocab-1, [PAD] = 0 after each length,
    and the matching 0/1 attention mask (both int64)."""
    B, T = len(lengths), max(lengths)
    ids = torch.randint(1, vocab, (B, T), generator=gen)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        ids[b, n:] = 0  # [PAD]
    return ids, mask


def tiny(out_dir, name, hidden_act, layers, with_grads):
    from transformers import BertConfig, BertModel

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=layers,
                     num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
                     type_vocab_size=2, hidden_act=hidden_act, layer_norm_eps=1e-12,
                     attn_implementation="eager")
    gen = torch.Generator().manual_seed(1234 + layers)
    model = BertModel(cfg)
    randomize(model, gen)
    model.eval()
    model.save_pretrained(os.path.join(out_dir, name), safe_serialization=True)

    ids, mask = padded_batch(gen)
    B, T = ids.shape
    types = torch.zeros(B, T, dtype=torch.long)
    types[0, 6:] = 1
    types[1, 4:7] = 1
    o = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    h, pooled = o.last_hidden_state, o.pooler_output
    emb = mean_pool(h, mask)
    res = {
        "input_ids": np_(ids), "attention_mask": np_(mask), "token_type_ids": np_(types),
        "last_hidden_state": np_(h), "pooler_output": np_(pooled),
        "mean_pooled": np_(emb),
        "sentence_embedding": np_(torch.nn.functional.normalize(emb, p=2, dim=1)),
    }
    if with_grads:
        wh = torch.randn(h.shape, generator=gen)
        wp = torch.randn(pooled.shape, generator=gen)
        loss = (h * wh).sum() + (pooled * wp).sum()
        loss.backward()
        res["loss_weight"] = np_(wh)
        res["pooler_weight"] = np_(wp)
        res["loss"] = np.array(loss.item(), dtype=np.float32)
        for n, p in model.named_parameters():
            res["grad." + n] = np_(p.grad)
        # No token types and no mask: all positions attend everywhere.
        with torch.no_grad():
            o2 = model(input_ids=ids)
        res["nomask.last_hidden_state"] = np_(o2.last_hidden_state)
    path = os.path.join(out_dir, name + "_gold.safetensors")
    st_io.save(path, res)
    print(f"wrote {path} and {name}/ (loss {res.get('loss', 'n/a')})")


def read_synopses(data_dir):
    """8 synopses from anime.csv by a fixed rule (rows ordered by anime_id): every 50th synopsis
    of at least 200 characters, first 6 of them (most run past 128 tokens), then the first 2
    synopses of 60-199 characters, so the batch has real padding."""
    long_rows, short_rows = [], []
    with open(os.path.join(data_dir, "anime.csv"), newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            s = r["synopsis"]
            if len(s) >= 200:
                long_rows.append((int(r["anime_id"]), s))
            elif len(s) >= 60:
                short_rows.append((int(r["anime_id"]), s))
    long_rows.sort()
    short_rows.sort()
    picked = long_rows[::50][:6] + short_rows[:2]
    return [s for _, s in picked], [a for a, _ in picked]


def minilm(out_dir, model_dir, data_dir):
    from transformers import BertModel, BertTokenizerFast

    model = BertModel.from_pretrained(model_dir, attn_implementation="eager")
    model.eval()
    tok = BertTokenizerFast(vocab_file=os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
    texts, ids_used = read_synopses(data_dir)
    enc = tok(texts, padding="longest", truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        o = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                  token_type_ids=enc["token_type_ids"])
    h = o.last_hidden_state
    mask = enc["attention_mask"]
    emb = torch.nn.functional.normalize(mean_pool(h, mask), p=2, dim=1)
    lengths = mask.sum(1)
    longest = int(torch.argmax(lengths))
    T = h.shape[1]
    # Positions per sequence: [CLS], 1, the last real token ([SEP]), and a padded one (or the
    # middle when the sequence is full length).
    pos = torch.zeros(8, 4, dtype=torch.long)
    for b in range(8):
        n = int(lengths[b])
        pos[b] = torch.tensor([0, 1, n - 1, n if n < T else T // 2])
    at = torch.stack([h[b, pos[b]] for b in range(8)])
    res = {
        "input_ids": np_(enc["input_ids"]), "attention_mask": np_(mask),
        "token_type_ids": np_(enc["token_type_ids"]),
        "sentence_embedding": np_(emb), "pooler_output": np_(o.pooler_output),
        "longest_index": np.array(longest, dtype=np.int64),
        "longest_last_hidden_state": np_(h[longest]),
        "positions": np_(pos), "hidden_at_positions": np_(at),
        "anime_ids": np.array(ids_used, dtype=np.int64),
    }
    path = os.path.join(out_dir, "minilm_gold.safetensors")
    st_io.save(path, res)
    print(f"wrote {path}: lengths {lengths.tolist()}, anime ids {ids_used}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "bert"))
    models = os.environ.get("DEEPANINET_MODELS") or os.path.expanduser("~/.cache/deepaninet/models")
    ap.add_argument("--minilm", default=os.path.join(models, "all-MiniLM-L6-v2"))
    ap.add_argument("--data", default=os.path.join(os.path.dirname(ROOT), "shared", "data", "mal2023"))
    args = ap.parse_args()
    import transformers
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    os.makedirs(args.out, exist_ok=True)
    tiny(args.out, "tiny", "gelu", 2, True)
    tiny(args.out, "tiny_gelu_new", "gelu_new", 1, False)
    if os.path.isdir(args.minilm) and os.path.isdir(args.data):
        minilm(args.out, args.minilm, args.data)
    else:
        print(f"skipping minilm_gold: {args.minilm} or {args.data} missing")


if __name__ == "__main__":
    main()
