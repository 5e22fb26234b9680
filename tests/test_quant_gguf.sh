#!/usr/bin/env bash
# loraft's quantisers (quant_quantize: what `init --quant`, `merge --format gguf` and
# model.base_dtype q8_0 .. q4_0 write) against the PyPI gguf package's numpy reference
# (gguf.quants.quantize, ggml's quantize_row_*_ref), with the venv of scripts/setup-python.sh
# (skipped, saying why, when it is missing): for each of Q8_0, Q5_1, Q5_0, Q4_1 and Q4_0, a tiny
# seeded Llama written by `loraft init --gguf --quant TYPE` (hidden 64, FFN 96, GQA), whose
# safetensors hold the f32 values the GGUF was quantised from. Every projection the GGUF stores
# as TYPE must be the reference's blocks of those values, byte for byte; q_proj and k_proj are
# compared after llama.cpp's row permutation (their RoPE layout in GGUF), as convert_hf_to_gguf
# applies it. Also base_dtype q4_0 trains from those safetensors (`loraft train`, 2 steps).
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup quant-gguf
if ! "$py" -c 'import gguf' 2>/dev/null; then
  echo "SKIP: the venv ($py) has no gguf package: run scripts/setup-python.sh"
  exit 77
fi

for type in Q8_0 Q5_1 Q5_0 Q4_1 Q4_0; do
  "$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 --seed 3 \
    --vocab-from "$vocab" --out "$tmp/hf_$type" --gguf "$tmp/$type.gguf" --quant "$type" >/dev/null
done

"$py" - "$tmp" <<'EOF'
import sys
import numpy as np
import gguf
from gguf.quants import quantize
from safetensors.numpy import load_file

tmp, failed, checked = sys.argv[1], 0, 0
NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
         "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
         "mlp.down_proj": "ffn_down"}


def permute(w, heads):
    """convert_hf_to_gguf's LlamaModel.permute: q / k rows into GGUF's RoPE layout."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


for name in ["Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0"]:
    before = failed
    qtype = getattr(gguf.GGMLQuantizationType, name)
    hf = load_file(f"{tmp}/hf_{name}/model.safetensors")
    tensors = {t.name: t for t in gguf.GGUFReader(f"{tmp}/{name}.gguf").tensors}
    for layer in range(2):
        for module, short in NAMES.items():
            t = tensors[f"blk.{layer}.{short}.weight"]
            if t.tensor_type != qtype:
                print(f"FAIL: {t.name} is {t.tensor_type.name}, not {name}")
                failed += 1
                continue
            w = hf[f"model.layers.{layer}.{module}.weight"].astype(np.float32)
            heads = {"attn_q": 4, "attn_k": 2}.get(short)
            if heads:
                w = permute(w, heads)
            ref = quantize(w, qtype).view(np.uint8).reshape(-1)
            got = np.asarray(t.data).view(np.uint8).reshape(-1)
            checked += 1
            if not np.array_equal(ref, got):
                bad = int(np.count_nonzero(ref != got)) if ref.shape == got.shape else -1
                print(f"FAIL: {name} {t.name}: {bad} bytes differ from gguf.quants.quantize")
                failed += 1
    if failed == before:
        print(f"{name}: the 14 projections are gguf.quants.quantize's blocks, byte for byte")
print(f"quantisers: {checked} tensors compared, {failed} failed")
sys.exit(1 if failed or checked != 70 else 0)
EOF

text="It is a truth universally acknowledged, that a single man in possession of a good fortune."
for i in 1 2 3 4; do echo "{\"text\": \"$text\"}"; done >"$tmp/train.jsonl"
cat >"$tmp/config.json" <<EOF
{"model": {"model": "$tmp/hf_Q4_0", "task": "causal-lm", "base_dtype": "q4_0"},
 "data": {"train_file": "$tmp/train.jsonl", "max_length": 32},
 "lora": {"target_modules": ["q_proj", "v_proj"]},
 "train": {"batch_size": 2, "max_steps": 2, "eval_strategy": "no", "save_strategy": "no",
           "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/config.json" >"$tmp/train.log" 2>&1 ||
  { cat "$tmp/train.log"; echo "FAIL: train with base_dtype q4_0"; exit 1; }
grep -q "base q4_0" "$tmp/train.log" || { cat "$tmp/train.log"; echo "FAIL: no 'base q4_0' in the model line"; exit 1; }
echo "train with base_dtype q4_0 from safetensors: $(grep -m1 'base q4_0' "$tmp/train.log")"
