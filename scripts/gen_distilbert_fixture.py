#!/usr/bin/env python3
"""Generate the DistilBERT gold fixture (tests/fixtures/bert/tiny_distil*) from HF transformers'
DistilBertForMaskedLM, for the loader that reads DistilBERT checkpoints as BERT.

Reference: transformers 4.40.2 on Debian's PyTorch, as for scripts/gen_bert_fixture.py:

    /usr/bin/python3 -m venv --system-site-packages /tmp/hfvenv
    /tmp/hfvenv/bin/pip install "transformers==4.40.2"
    /tmp/hfvenv/bin/python scripts/gen_distilbert_fixture.py [--out tests/fixtures/bert]

Writes:

  tiny_distil/                 config.json + model.safetensors of a random-weight
                               DistilBertForMaskedLM written by HF's save_pretrained (vocab 100,
                               dim 32, 2 layers, 4 heads, hidden_dim 64, max_pos 64, gelu): keys
                               "distilbert.embeddings.*", "distilbert.transformer.layer.N.*" and
                               the MLM head "vocab_transform / vocab_layer_norm / vocab_projector".
  tiny_distil_gold.safetensors padded inputs (batch 3, lengths 11/7/3), the encoder's
                               last_hidden_state and mean-pooled embeddings, the MLM logits, and
                               for loss = sum(last_hidden_state * loss_weight) the gradient of
                               every encoder parameter under its DistilBERT name ("grad." + name).

Deterministic: one thread, fixed seeds; re-running on the same machine gives identical files
(another CPU can move the float outputs by a few ulps).
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
from gen_bert_fixture import mean_pool, np_, padded_batch, randomize  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "bert"))
    args = ap.parse_args()
    import transformers
    from transformers import DistilBertConfig, DistilBertForMaskedLM

    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    cfg = DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                           max_position_embeddings=64, activation="gelu",
                           sinusoidal_pos_embds=False, attn_implementation="eager")
    gen = torch.Generator().manual_seed(4321)
    model = DistilBertForMaskedLM(cfg)
    randomize(model, gen)
    model.eval()
    os.makedirs(args.out, exist_ok=True)
    model.save_pretrained(os.path.join(args.out, "tiny_distil"), safe_serialization=True)

    ids, mask = padded_batch(gen)
    h = model.distilbert(input_ids=ids, attention_mask=mask).last_hidden_state
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    wh = torch.randn(h.shape, generator=gen)
    loss = (h * wh).sum()
    loss.backward()
    res = {
        "input_ids": np_(ids), "attention_mask": np_(mask),
        "last_hidden_state": np_(h), "mean_pooled": np_(mean_pool(h, mask)),
        "logits": np_(logits), "loss_weight": np_(wh),
        "loss": np.array(loss.item(), dtype=np.float32),
    }
    for n, p in model.distilbert.named_parameters():
        res["grad." + n] = np_(p.grad)
    path = os.path.join(args.out, "tiny_distil_gold.safetensors")
    st_io.save(path, res)
    print(f"wrote {path} and tiny_distil/ ({len(res)} tensors, loss {loss.item():.4f})")


if __name__ == "__main__":
    main()
