#!/usr/bin/env python3
"""The peer of bench/bench_tokenizer: Hugging Face `tokenizers` (Rust) encode_batch on the same
texts, with the same truncation and no padding.

Run by bench_tokenizer with the interpreter of a venv that has tokenizers:

    /usr/bin/python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3

    RAYON_NUM_THREADS=T python tokenizer_ref.py --texts TEXTS.json --model-dir DIR \
        --max-length 512 --repeats 5

TEXTS.json is a JSON list of strings. The thread count is tokenizers' Rayon pool size, set by
RAYON_NUM_THREADS (bench_tokenizer sets it). Prints one JSON line: median wall and process-CPU
seconds of encode_batch over all texts, the token count and the sum of all ids (to check that
both sides produced the same tokens), and the version.
"""

import argparse
import json
import os
import statistics
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--texts", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    try:
        import tokenizers
        from tokenizers import Tokenizer
    except ImportError:
        print(json.dumps({"error": "cannot import tokenizers (make a venv with it, see "
                                   "bench/README.md)"}))
        return 0
    texts = json.load(open(args.texts, encoding="utf-8"))
    tok = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok.no_padding()
    if args.max_length > 0:
        tok.enable_truncation(args.max_length)
    else:
        tok.no_truncation()
    tok.encode_batch(texts[:256])  # warm-up: starts the thread pool
    walls, cpus = [], []
    encs = None
    for _ in range(args.repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        encs = tok.encode_batch(texts)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    print(json.dumps({
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(cpus),
        "tokens": sum(len(e.ids) for e in encs),
        "id_sum": sum(sum(e.ids) for e in encs),
        "threads": os.environ.get("RAYON_NUM_THREADS", "default"),
        "version": tokenizers.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
