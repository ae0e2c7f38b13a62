#!/usr/bin/env python3
"""Generate the masked-language-model gold fixture (tests/fixtures/bert/tiny_mlm*) from HF
transformers' BertForMaskedLM.

Reference: transformers 4.40.2 on Debian's PyTorch 1.13, the venv of gen_bert_fixture.py:

    /usr/bin/python3 -m venv --system-site-packages /tmp/hfvenv
    /tmp/hfvenv/bin/pip install "transformers==4.40.2"
    /tmp/hfvenv/bin/python scripts/gen_bert_mlm_fixture.py [--out tests/fixtures/bert]

Writes (keys described in tests/fixtures/bert/README.md):

  tiny_mlm/        config.json + model.safetensors written by HF's save_pretrained (safetensors:
                   the decoder weight tied to the word embeddings and the decoder bias tied to
                   cls.predictions.bias are not written), plus a 100-token vocab.txt. Same tiny
                   architecture as tiny/ (vocab 100, hidden 32, 2 layers, 4 heads, gelu),
                   weights redrawn far from HF's init by gen_bert_fixture.randomize.
  tiny_mlm_gold.safetensors
                   a padded batch with MLM labels (-100 where not predicted), the logits at the
                   predicted positions (row-major order), the mean cross-entropy loss and the
                   gradients of a few parameters, the tied word embedding included.

Deterministic: one thread, eager attention, eval mode (no dropout), fixed seeds.
"""

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402
from gen_bert_fixture import ROOT, np_, randomize  # noqa: E402

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

# [PAD] [UNK] [CLS] [SEP] [MASK], 60 words, 35 continuation pieces: 100 ids.
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = [f"w{i}" for i in range(60)]
PIECES = [f"##p{i}" for i in range(35)]
MASK_ID = 4

# Gradients stored (HF names): the tied table, the head, and a few encoder/embedding tensors.
GRAD_NAMES = [
    "bert.embeddings.word_embeddings.weight",
    "bert.embeddings.position_embeddings.weight",
    "bert.embeddings.LayerNorm.weight",
    "bert.encoder.layer.0.attention.self.query.weight",
    "bert.encoder.layer.1.output.dense.weight",
    "cls.predictions.transform.dense.weight",
    "cls.predictions.transform.dense.bias",
    "cls.predictions.transform.LayerNorm.weight",
    "cls.predictions.bias",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "bert"))
    args = ap.parse_args()
    import transformers
    from transformers import BertConfig, BertForMaskedLM
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")

    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64, type_vocab_size=2,
                     hidden_act="gelu", layer_norm_eps=1e-12, attn_implementation="eager")
    gen = torch.Generator().manual_seed(4321)
    model = BertForMaskedLM(cfg)
    randomize(model, gen)
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.eval()
    out_dir = os.path.join(args.out, "tiny_mlm")
    model.save_pretrained(out_dir, safe_serialization=True)
    gc = os.path.join(out_dir, "generation_config.json")
    if os.path.exists(gc):
        os.remove(gc)  # written for every model in 4.40; nothing reads it for an encoder
    with open(os.path.join(out_dir, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(SPECIALS + WORDS + PIECES) + "\n")

    # [CLS] w... [SEP] [PAD]...; lengths 11, 7, 3.
    B, T = 3, 11
    lengths = [11, 7, 3]
    ids = torch.randint(5, 100, (B, T), generator=gen)
    mask = torch.zeros(B, T, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        ids[b, 0] = 2
        ids[b, n - 1] = 3
        ids[b, n:] = 0
    labels = torch.full((B, T), -100, dtype=torch.long)
    # Predicted positions: [MASK]ed, replaced by a random token, and kept as they are.
    for b, t, how in [(0, 1, "mask"), (0, 4, "random"), (0, 5, "mask"), (0, 9, "keep"),
                      (1, 2, "mask"), (1, 3, "mask"), (1, 5, "random"), (2, 1, "keep")]:
        labels[b, t] = ids[b, t]
        if how == "mask":
            ids[b, t] = MASK_ID
        elif how == "random":
            ids[b, t] = int(torch.randint(5, 100, (1,), generator=gen))
    o = model(input_ids=ids, attention_mask=mask, labels=labels)
    o.loss.backward()
    sel = labels != -100
    res = {
        "input_ids": np_(ids), "attention_mask": np_(mask), "labels": np_(labels),
        "masked_logits": np_(o.logits[sel]), "loss": np.array(o.loss.item(), dtype=np.float32),
    }
    params = dict(model.named_parameters())
    for n in GRAD_NAMES:
        res["grad." + n] = np_(params[n].grad)
    path = os.path.join(args.out, "tiny_mlm_gold.safetensors")
    st_io.save(path, res)
    print(f"wrote {path} and {out_dir}/ (loss {o.loss.item():.6f}, {int(sel.sum())} predicted)")


if __name__ == "__main__":
    main()
