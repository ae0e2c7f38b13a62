#!/usr/bin/env python3
"""Gold fixtures for the classic text features (models/text/):

  tests/fixtures/tfidf_gold.safetensors  tokenizer + TfidfVectorizer + exact SVD references

Needs scikit-learn (PyPI) next to numpy; run it from a venv:

    /usr/bin/python3 -m venv --system-site-packages /tmp/sklvenv
    /tmp/sklvenv/bin/pip install scikit-learn
    /tmp/sklvenv/bin/python scripts/gen_tfidf_fixture.py

What is in the file (tensors F64/I64/I32/F32; strings in __metadata__ as JSON):
  * metadata "docs": 50 small ASCII documents (mixed case, punctuation, digits, apostrophes, an
    empty one and one of stop words only), made by a seeded generator.
  * metadata "tokens.<tok>": the documents tokenized by an independent regex tokenizer
    (runs of [A-Za-z0-9], lower-cased, min length, stop words) for two settings, described by
    "tokenizer.<tok>" = {"min_len": n, "stop_words": [...]}; our Tokenizer must reproduce them.
  * per TF-IDF case <c>: "<c>.indptr" I64, "<c>.indices" I32, "<c>.data" F64 (the CSR of
    TfidfVectorizer(analyzer=<the tokens>, ...).fit_transform, indices sorted), "<c>.idf" F64,
    metadata "<c>.vocab" (JSON list) and "<c>.params" (JSON: tokens, min_df/max_df with their
    kind, max_features, smooth_idf, sublinear_tf, norm).
  * "svd.indptr/indices/data" (CSR, F32 data) of a 200 x 120 sparse matrix with a decaying
    spectrum and "svd.s" F64, numpy.linalg.svd's exact singular values of that stored matrix;
    "tfidf_svd.s" F64: the exact singular values of case "default"'s matrix.
"""

import json
import os
import random
import re
import sys

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_io  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "tfidf_gold.safetensors")

TOPICS = [
    ["ninja", "village", "chakra", "jutsu", "shinobi", "scroll", "kunai", "hokage"],
    ["mecha", "pilot", "robot", "colony", "gundam", "orbit", "war", "cockpit"],
    ["school", "club", "festival", "classmate", "teacher", "exam", "rooftop", "summer"],
    ["magic", "witch", "spell", "kingdom", "dragon", "sword", "quest", "guild"],
    ["detective", "murder", "case", "culprit", "alibi", "clue", "police", "mystery"],
]
FILLER = ["the", "a", "of", "and", "is", "to", "in", "his", "her", "they", "with", "story",
          "episode", "season", "character", "world", "young", "life", "friends", "battle"]


def make_docs(n=50, seed=20240501):
    rng = random.Random(seed)
    docs = []
    for i in range(n):
        if i == 7:
            docs.append("")
            continue
        if i == 13:
            docs.append("The, of AND a... is to!")
            continue
        topic = TOPICS[i % len(TOPICS)]
        words = []
        for _ in range(rng.randint(8, 40)):
            r = rng.random()
            if r < 0.55:
                w = rng.choice(topic)
            elif r < 0.9:
                w = rng.choice(FILLER)
            else:
                w = rng.choice(TOPICS[rng.randrange(len(TOPICS))])
            c = rng.random()
            if c < 0.15:
                w = w.capitalize()
            elif c < 0.2:
                w = w.upper()
            elif c < 0.25:
                w = w + "'s"
            elif c < 0.28:
                w = w + str(rng.randint(1, 2030))
            elif c < 0.3:
                w = "x"  # single letters are below the minimum length
            words.append(w)
        text = ""
        for j, w in enumerate(words):
            sep = rng.choice([" ", " ", " ", ", ", ". ", " - ", "; ", " (", ") ", "!  ", "\n"])
            text += w + (sep if j + 1 < len(words) else ".")
        docs.append(text)
    return docs


def regex_tokens(doc, min_len, stop):
    out = []
    for t in re.findall(r"[A-Za-z0-9]+", doc):
        t = t.lower()
        if len(t) >= min_len and t not in stop:
            out.append(t)
    return out


def csr_arrays(x):
    x = x.tocsr()
    x.sort_indices()
    return (x.indptr.astype(np.int64), x.indices.astype(np.int32), x.data.astype(np.float64))


def main():
    docs = make_docs()
    tokenizers = {
        "plain": {"min_len": 2, "stop_words": []},
        "custom": {"min_len": 3, "stop_words": ["the", "and", "with", "ninja", "story"]},
    }
    tokens = {name: [regex_tokens(d, t["min_len"], set(t["stop_words"])) for d in docs]
              for name, t in tokenizers.items()}
    tensors = {}
    meta = {"docs": json.dumps(docs)}
    for name, t in tokenizers.items():
        meta["tokens." + name] = json.dumps(tokens[name])
        meta["tokenizer." + name] = json.dumps(t)

    def df_param(v):
        return {"value": v, "fraction": isinstance(v, float)}

    cases = [
        dict(name="default", tokens="plain", min_df=1, max_df=1.0, max_features=None,
             smooth_idf=True, sublinear_tf=False, norm="l2"),
        dict(name="pruned", tokens="plain", min_df=2, max_df=0.5, max_features=None,
             smooth_idf=True, sublinear_tf=True, norm="l2"),
        dict(name="fraction_min", tokens="plain", min_df=0.1, max_df=20, max_features=None,
             smooth_idf=False, sublinear_tf=False, norm="l2"),
        dict(name="capped", tokens="plain", min_df=1, max_df=1.0, max_features=25,
             smooth_idf=True, sublinear_tf=True, norm="l2"),
        dict(name="unnormalized", tokens="custom", min_df=1, max_df=0.9, max_features=None,
             smooth_idf=True, sublinear_tf=False, norm=None),
    ]
    for c in cases:
        toks = tokens[c["tokens"]]
        if c["max_features"] is not None:
            # scikit-learn ranks by total count with an unstable sort: make sure the cut does
            # not fall inside a tie, so the kept set is unambiguous.
            from collections import Counter
            tf = Counter(w for d in toks for w in d)
            counts = sorted(tf.values(), reverse=True)
            limit = c["max_features"]
            while counts[limit - 1] == counts[limit]:
                limit += 1
            c["max_features"] = limit
        vec = TfidfVectorizer(analyzer=lambda i: toks[i], min_df=c["min_df"], max_df=c["max_df"],
                              max_features=c["max_features"], smooth_idf=c["smooth_idf"],
                              sublinear_tf=c["sublinear_tf"], norm=c["norm"], dtype=np.float64)
        x = vec.fit_transform(list(range(len(toks))))
        vocab = vec.get_feature_names_out().tolist()
        assert vocab == sorted(vocab)
        indptr, indices, data = csr_arrays(x)
        n = c["name"]
        tensors[n + ".indptr"] = indptr
        tensors[n + ".indices"] = indices
        tensors[n + ".data"] = data
        tensors[n + ".idf"] = vec.idf_.astype(np.float64)
        meta[n + ".vocab"] = json.dumps(vocab)
        meta[n + ".params"] = json.dumps({
            "tokens": c["tokens"], "min_df": df_param(c["min_df"]),
            "max_df": df_param(c["max_df"]), "max_features": c["max_features"] or 0,
            "smooth_idf": c["smooth_idf"], "sublinear_tf": c["sublinear_tf"],
            "norm": c["norm"] or "none"})
        if n == "default":
            tensors["tfidf_svd.s"] = np.linalg.svd(x.toarray(), compute_uv=False)

    # A sparse matrix with a decaying spectrum: U diag(s) V^T with s_i = 10 * 0.8^i, then the
    # smallest half of the entries zeroed. The gold values are the exact SVD of what is stored.
    rng = np.random.default_rng(7)
    m, n, r = 200, 120, 60
    u, _ = np.linalg.qr(rng.standard_normal((m, r)))
    v, _ = np.linalg.qr(rng.standard_normal((n, r)))
    s = 10.0 * 0.8 ** np.arange(r)
    a = (u * s) @ v.T
    a[np.abs(a) < np.quantile(np.abs(a), 0.5)] = 0.0
    a = a.astype(np.float32)
    rows, cols = np.nonzero(a)
    indptr = np.zeros(m + 1, np.int64)
    np.add.at(indptr, rows + 1, 1)
    tensors["svd.indptr"] = np.cumsum(indptr).astype(np.int64)
    tensors["svd.indices"] = cols.astype(np.int32)
    tensors["svd.data"] = a[rows, cols].astype(np.float32)
    tensors["svd.shape"] = np.array([m, n], np.int64)
    tensors["svd.s"] = np.linalg.svd(a.astype(np.float64), compute_uv=False)

    st_io.save(OUT, tensors, metadata=meta)
    print("wrote", os.path.relpath(OUT), os.path.getsize(OUT), "bytes,", len(tensors), "tensors")


if __name__ == "__main__":
    main()
