#!/usr/bin/env python3
"""Gold values of the BERT WordPiece tokenizer (models/bert/tokenizer.h) from Hugging Face's
`tokenizers` package: tests/fixtures/bert_tokenizer/gold.json.

Run (a venv with tokenizers; the MiniLM directory from scripts/fetch_minilm.sh):

    /usr/bin/python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers==0.23.3
    /tmp/tokvenv/bin/python scripts/gen_bert_tokenizer_fixture.py \
        [--model-dir DIR] [--data /work/shared/data/mal2023] [--out FILE]

    # what tokenizers makes of code points LO..HI (hex), to find a failing CodePoints chunk:
    /tmp/tokvenv/bin/python scripts/gen_bert_tokenizer_fixture.py --codepoints 0600-06FF

The file holds:
- codepoints: for three normalizer settings, one FNV-1a 64 hash per block of 4096 code points
  (surrogates skipped) of the pre-tokenized words of "a<c>b a<c>b ..." : every code point's
  normalization and word splitting, checked without the vocabulary;
- cases: hand-written hard inputs with their text (or raw bytes, decoded with errors="replace"
  on this side), the ids, word ids and decoded text;
- real: about 250 synopses of mal2023's anime.csv, chosen deterministically (the longest, those
  with rare characters, then an even spread), stored as anime id + FNV-1a 64 of the UTF-8 text +
  the expected ids (the dataset itself is not copied); word ids as a hash.
Both ways of loading the reference (tokenizer.json, and BertWordPieceTokenizer on vocab.txt with
lowercase=True) must agree on every case, or the script stops.
"""

import argparse
import csv
import hashlib
import json
import os
import sys

from tokenizers import BertWordPieceTokenizer, Tokenizer, normalizers, pre_tokenizers
import tokenizers

MAX_LENGTH = 512


def fnv1a64(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def default_model_dir():
    base = os.environ.get("DEEPANINET_MODELS")
    if not base:
        home = os.environ.get("HOME")
        base = os.path.join(home, ".cache", "deepaninet", "models") if home else ".deepaninet-models"
    return os.path.join(base, "all-MiniLM-L6-v2")


def chunk_text(lo, hi):
    return "".join("a" + chr(c) + "b " for c in range(lo, hi) if not 0xD800 <= c < 0xE000)


NORMALIZER_SETTINGS = {
    # name: (lowercase, strip_accents); C++ side: TokenizerOptions with the same two fields
    "uncased": (True, None),
    "cased": (False, None),
    "lower_keep_accents": (True, False),
}


def pre_tokenize(norm, pre, text):
    return [w for w, _ in pre.pre_tokenize_str(norm.normalize_str(text))]


def codepoint_hashes():
    pre = pre_tokenizers.BertPreTokenizer()
    out = {}
    for name, (lower, strip) in NORMALIZER_SETTINGS.items():
        norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                          strip_accents=strip, lowercase=lower)
        out[name] = [fnv1a64("\x01".join(pre_tokenize(norm, pre, chunk_text(lo, lo + 4096)))
                             .encode("utf-8")) for lo in range(0, 0x110000, 4096)]
    return out


LONG_SENTENCE = ("The Survey Corps ventures beyond the walls, where titans roam and "
                 "humanity's last hope, Eren Yeager, fights on. ")

# (name, text or bytes, max_length, add_special)
HARD_CASES = [
    ("accents", "Pokémon Café naïve résumé Ångström", MAX_LENGTH, True),
    ("cjk_mixed", "進撃の巨人 Attack on Titan", MAX_LENGTH, True),
    ("cjk_no_space", "abc中文def漢字", MAX_LENGTH, True),
    ("cjk_compat", "\uf900 \U0002f800 \ufa0e", MAX_LENGTH, True),
    ("emoji", "I love this anime 😀🥰🎌!! 🍜🍣", MAX_LENGTH, True),
    ("emoji_zwj", "👨\u200d👩\u200d👧 family 🏳\ufe0f\u200d🌈 flag", MAX_LENGTH, True),
    ("whitespace_controls", "tab\there\nnew line\r\nwindows\x0bvt\x0cff", MAX_LENGTH, True),
    ("controls", "a\x00b\x01c\x7fd\x1be\x85f\x9fg", MAX_LENGTH, True),
    ("zero_width", "zero\u200bwidth\u200cnon\u200djoin\ufeffbom\u2060wj\u00adsoft", MAX_LENGTH,
     True),
    ("unicode_spaces", "100\u00a0km and\u2009thin\u3000ideographic\u2028line\u2029para\u202fnn",
     MAX_LENGTH, True),
    ("word_101_chars", "short " + "a" * 101 + " after", MAX_LENGTH, True),
    ("word_100_chars", "x" * 100, MAX_LENGTH, True),
    ("word_101_after_nfd", "é" * 101, MAX_LENGTH, True),
    ("word_100_nonascii", "ü" * 60 + "ß" * 40, MAX_LENGTH, True),
    ("punct_runs", "Wait... what?!?! (really) [sic] {ok} <tag> --- ~~~ @#$%^&*_+=|\\/`",
     MAX_LENGTH, True),
    ("contractions", "don't won't it's I'm they've we're y'all", MAX_LENGTH, True),
    ("numbers", "1,000,000 3.14159 2023-04-01 10:30pm #1 No.5 1st 2nd", MAX_LENGTH, True),
    ("greek", "Ελληνικά ΣΊΣΥΦΟΣ ἀρχή ὁ λόγος", MAX_LENGTH, True),
    ("cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю", MAX_LENGTH, True),
    ("korean", "안녕하세요 세계 진격의 거인", MAX_LENGTH, True),
    ("thai", "ภาษาไทย สวัสดีครับ", MAX_LENGTH, True),
    ("arabic_hebrew", "مرحبا بالعالم שלום עולם", MAX_LENGTH, True),
    ("devanagari", "नमस्ते दुनिया", MAX_LENGTH, True),
    ("combining_marks", "e\u0301 a\u0308 n\u0303 \u0301alone x\u20dd", MAX_LENGTH, True),
    ("empty", "", MAX_LENGTH, True),
    ("only_whitespace", "   \t\n  \u00a0 ", MAX_LENGTH, True),
    ("fullwidth", "ＴＯＫＹＯ ２０２３ ｶﾀｶﾅ ！", MAX_LENGTH, True),
    ("kana", "ひらがな カタカナ ー・「」『』", MAX_LENGTH, True),
    ("turkish", "İstanbul ıi IĞDIR", MAX_LENGTH, True),
    ("german", "Straße ẞ Größe ÄÖÜ", MAX_LENGTH, True),
    ("ligatures_roman", "ﬁnance ﬂow Ⅻ ⅻ Lupin Ⅲ", MAX_LENGTH, True),
    ("symbols", "∑ x² ≤ ∞ € £ ¥ © ® ™ °C ½ ♪ ☆ ★ ♡", MAX_LENGTH, True),
    ("quotes_dashes", "“Hello” — ‘world’ – ok… ―end―", MAX_LENGTH, True),
    ("mixed_case", "McDonald's iPhone NASA HeLLo", MAX_LENGTH, True),
    ("url_email", "https://myanimelist.net/anime/16498?x=1&y=2 user@example.com", MAX_LENGTH,
     True),
    ("hashes", "#anime @user ##notprefix ## #", MAX_LENGTH, True),
    ("private_unassigned", "\ue000private\U000f0000 \u0378x\U000e0001tag\ufdd0", MAX_LENGTH,
     True),
    ("vietnamese", "Tiếng Việt có dấu", MAX_LENGTH, True),
    ("special_tokens_in_text", "hello [MASK] world [SEP] [cls] [UNK]x a[PAD]b [MASK", MAX_LENGTH,
     True),
    ("mal_source_line", "(Source: MAL Rewrite)\n\n[Written by MAL Rewrite]", MAX_LENGTH, True),
    ("truncate_512", LONG_SENTENCE * 40, MAX_LENGTH, True),
    ("truncate_mid_word", "unbelievably extraordinary circumstances", 6, True),
    ("truncate_2", "hello world", 2, True),
    ("no_special", "hello world, again", MAX_LENGTH, False),
    ("no_special_truncated", "hello world, again", 3, False),
    ("invalid_utf8", b"ab\xffcd \xe3\x81 e\xc3 \xc0\xaf f\xed\xa0\x80g caf\xc3\xa9", MAX_LENGTH,
     True),
]


def encode_both(tok_json, tok_vocab, text, max_length, add_special):
    results = []
    for t in (tok_json, tok_vocab):
        t.enable_truncation(max_length)
        t.no_padding()
        e = t.encode(text, add_special_tokens=add_special)
        results.append((e.ids, [-1 if w is None else w for w in e.word_ids]))
    if results[0] != results[1]:
        sys.exit("tokenizer.json and vocab.txt disagree on %r" % text[:80])
    return results[0]


def select_synopses(rows, tok, count):
    """Deterministic: the 10 longest by token count, then synopses adding a character not seen
    yet (non-ASCII, at most 60), then an even spread over the rest, in anime_id order."""
    rows = sorted(rows, key=lambda r: r[0])
    tok.no_truncation()
    lengths = [len(e.ids) for e in tok.encode_batch([s for _, s in rows])]
    chosen = []
    taken = set()
    for i in sorted(range(len(rows)), key=lambda i: (-lengths[i], rows[i][0]))[:10]:
        chosen.append(i)
        taken.add(i)
    seen = set()
    rare = 0
    for i, (_, s) in enumerate(rows):
        chars = {c for c in s if ord(c) > 127}
        if i not in taken and rare < 60 and chars - seen:
            chosen.append(i)
            taken.add(i)
            rare += 1
        if i in taken:
            seen |= chars
    rest = [i for i in range(len(rows)) if i not in taken]
    need = count - len(chosen)
    step = len(rest) / need
    chosen += [rest[int(k * step)] for k in range(need)]
    return sorted(chosen, key=lambda i: rows[i][0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=default_model_dir())
    ap.add_argument("--data", default=os.environ.get("DEEPANINET_DATA",
                                                     "/work/shared/data/mal2023"))
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                  "tests", "fixtures", "bert_tokenizer",
                                                  "gold.json"))
    ap.add_argument("--count", type=int, default=250)
    ap.add_argument("--codepoints", help="LO-HI (hex): print the uncased words of each code point")
    args = ap.parse_args()

    if args.codepoints:
        lo, hi = (int(x, 16) for x in args.codepoints.split("-"))
        norm = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                          strip_accents=None, lowercase=True)
        pre = pre_tokenizers.BertPreTokenizer()
        for c in range(lo, hi + 1):
            if not 0xD800 <= c < 0xE000:
                print("%04X %r" % (c, pre_tokenize(norm, pre, "a" + chr(c) + "b")))
        return

    vocab_path = os.path.join(args.model_dir, "vocab.txt")
    tok_json = Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    tok_vocab = BertWordPieceTokenizer(vocab_path, lowercase=True)
    gold = {
        "tokenizers_version": tokenizers.__version__,
        "vocab_sha256": hashlib.sha256(open(vocab_path, "rb").read()).hexdigest(),
        "max_length": MAX_LENGTH,
        "codepoints": codepoint_hashes(),
        "cases": [],
        "real": [],
    }

    for name, text, max_length, add_special in HARD_CASES:
        case = {"name": name, "max_length": max_length, "add_special": add_special}
        if isinstance(text, bytes):
            case["bytes_hex"] = text.hex()
            text = text.decode("utf-8", errors="replace")
        else:
            case["text"] = text
        ids, words = encode_both(tok_json, tok_vocab, text, max_length, add_special)
        case.update(ids=ids, word_ids=words, decoded=tok_json.decode(ids))
        gold["cases"].append(case)

    anime_csv = os.path.join(args.data, "anime.csv")
    with open(anime_csv, encoding="utf-8", newline="") as f:
        rows = [(int(r["anime_id"]), r["synopsis"]) for r in csv.DictReader(f) if r["synopsis"]]
    picked = select_synopses(rows, tok_json, args.count)
    for i in picked:
        anime_id, text = rows[i]
        ids, words = encode_both(tok_json, tok_vocab, text, MAX_LENGTH, True)
        gold["real"].append({
            "anime_id": anime_id,
            "text_fnv1a64": fnv1a64(text.encode("utf-8")),
            "ids": ids,
            "word_ids_fnv1a64": fnv1a64(",".join(map(str, words)).encode("utf-8")),
        })

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        keys = list(gold)
        for k, key in enumerate(keys):
            v = gold[key]
            sep = "," if k + 1 < len(keys) else ""
            if isinstance(v, list):  # one case per line keeps the file diffable
                f.write('"%s": [\n' % key)
                for j, item in enumerate(v):
                    f.write(json.dumps(item, ensure_ascii=False, separators=(",", ":")) +
                            ("," if j + 1 < len(v) else "") + "\n")
                f.write("]%s\n" % sep)
            else:
                f.write('"%s": %s%s\n' % (key, json.dumps(v, separators=(",", ":")), sep))
        f.write("}\n")
    n_real = sum(len(r["ids"]) for r in gold["real"])
    print("wrote %s: %d cases, %d synopses (%d ids), %d bytes" %
          (args.out, len(gold["cases"]), len(gold["real"]), n_real, os.path.getsize(args.out)))


if __name__ == "__main__":
    main()
