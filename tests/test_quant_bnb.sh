#!/usr/bin/env bash
# NF4 against bitsandbytes, with the venv of scripts/setup-python.sh (skipped, saying why, when it
# is missing), on a tiny seeded Llama (hidden 64, FFN 128):
#  1. model.base_dtype nf4 quantises at load as bitsandbytes' quantize_4bit does: after two LoRA
#     steps on q and v, `loraft merge --base-dtype nf4` writes every other projection as
#     dequantize_4bit(quantize_4bit(W)), bit for bit, and q and v as that plus the adapter's
#     scale * B A (within 1e-6 of the largest value).
#  2. loraft reads what transformers' save_pretrained writes for the model loaded with
#     BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4"), with and without double
#     quantisation: `merge` (base f32) writes dequantize_4bit's values of every projection, bit for
#     bit, and a config.json without the quantization_config; training under base_dtype q (the NF4
#     blocks kept: fewer MiB of weights) and under f32 (the same values dequantised at load) log
#     the same losses. PiSSA under base_dtype q splits each adapted weight's dequantised blocks
#     and quantises the rest back to NF4: its first loss within 1e-2 of the f32 residual's.
#  3. An FP4 checkpoint and a quant_map that is not NF4's are refused with a clear message.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup quant-bnb
if ! "$py" -c 'import bitsandbytes' >/dev/null 2>&1; then
  echo "SKIP: the venv ($py) has no bitsandbytes package: run scripts/setup-python.sh"
  exit 77
fi
fail() { echo "FAIL: $*"; exit 1; }
ref=$PWD/tests/bnb_ref.py
# run from $tmp: bitsandbytes imports a `kernels` package where it finds one, not the project's folder
bnb_py() { (cd "$tmp" && "$py" "$@" 2>"$tmp/py.err") || { cat "$tmp/py.err"; fail "python $*"; }; }

"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 128 --seed 3 \
  --vocab-from "$vocab" --out "$tmp/hf" >/dev/null
text="It is a truth universally acknowledged, that a single man in possession of a good fortune."
for i in 1 2 3 4; do echo "{\"text\": \"$text\"}"; done >"$tmp/train.jsonl"

# train DIR BASE_DTYPE RUN [LORA_KEYS [LR]]: two LoRA steps (q, v) on DIR into $tmp/RUN
train() {
  cat >"$tmp/$3.json" <<EOF
{"model": {"model": "$1", "task": "causal-lm", "base_dtype": "$2"},
 "data": {"train_file": "$tmp/train.jsonl", "max_length": 32},
 "lora": {"target_modules": ["q_proj", "v_proj"], "r": 4, "alpha": 8${4:+, $4}},
 "train": {"batch_size": 2, "max_steps": 2, "learning_rate": ${5:-0.05}, "eval_strategy": "no",
           "save_strategy": "steps", "save_steps": 2, "logging_steps": 1, "output_dir": "$tmp/$3"}}
EOF
  "$bin" train --config "$tmp/$3.json" >"$tmp/$3.log" 2>&1 || { cat "$tmp/$3.log"; fail "train $1 under $2"; }
}
# losses RUN: the losses $tmp/RUN logged, every digit (metrics.jsonl)
losses() { grep -o '"loss":[^,]*,' "$tmp/$1/metrics.jsonl" | tr -d '\n'; }

# 1. base_dtype nf4, quantised at load
train "$tmp/hf" nf4 run_nf4
grep -q "base nf4" "$tmp/run_nf4.log" || { cat "$tmp/run_nf4.log"; fail "no 'base nf4' in the model line"; }
"$bin" merge --model "$tmp/hf" --adapter "$tmp/run_nf4/last" --base-dtype nf4 --out "$tmp/merged_nf4" >/dev/null
bnb_py "$ref" quantise "$tmp/hf" "$tmp/ref_nf4.safetensors"
echo -n "base_dtype nf4 (quantised at load): "
bnb_py "$ref" check "$tmp/merged_nf4" "$tmp/ref_nf4.safetensors" "$tmp/run_nf4/last"

# 2. transformers' bitsandbytes checkpoints, with and without double quantisation
for dq in 1 0; do
  ck=$tmp/bnb_dq$dq
  bnb_py "$ref" save "$tmp/hf" "$ck" $dq nf4
  cp "$tmp/hf"/tokenizer* "$ck/"
  grep -q '"quant_method": "bitsandbytes"' "$ck/config.json" || fail "no quantization_config in $ck"
  "$bin" merge --model "$ck" --adapter "$tmp/run_nf4/last" --out "$ck/merged" >/dev/null
  grep -q quantization_config "$ck/merged/config.json" && fail "the merge kept the quantization_config"
  echo -n "bitsandbytes NF4, double quantisation $dq: merge: "
  bnb_py "$ref" check "$ck/merged" "$ck/ref.safetensors" "$tmp/run_nf4/last"
  train "$ck" q "run_q$dq"
  grep -q "base q" "$tmp/run_q$dq.log" || { cat "$tmp/run_q$dq.log"; fail "no 'base q' in the model line"; }
  train "$ck" f32 "run_f$dq"
  q=$(losses "run_q$dq") f=$(losses "run_f$dq")
  [ -n "$q" ] && [ "$q" = "$f" ] || fail "losses under base_dtype q ($q) and f32 ($f) differ"
  mib() { grep -o '[0-9.]* MiB of weights' "$tmp/$1.log" | cut -d' ' -f1; }
  awk -v q="$(mib "run_q$dq")" -v f="$(mib "run_f$dq")" 'BEGIN { exit !(q + 0 < f + 0) }' ||
    fail "base_dtype q did not keep the NF4 blocks: $(mib "run_q$dq") MiB of weights, f32 $(mib "run_f$dq")"
  echo "  base_dtype q (its NF4 blocks) and f32 (dequantised at load) log the same losses: $q"
done
# PiSSA over the NF4 blocks: dequantised, split, the rest quantised back to NF4 (peft's QPiSSA);
# the first loss within 1e-2 of the f32 residual's, the weights still NF4 blocks, and (a rate of
# 1e-12: the adapters as they started) A and B those of the f32 run's split
train "$tmp/bnb_dq0" q run_pissa_q '"init_lora_weights": "pissa"' 1e-12
train "$tmp/bnb_dq0" f32 run_pissa_f '"init_lora_weights": "pissa"' 1e-12
q=$(losses run_pissa_q | cut -d, -f1 | cut -d: -f2) f=$(losses run_pissa_f | cut -d, -f1 | cut -d: -f2)
awk -v q="$q" -v f="$f" 'BEGIN { d = q - f; exit !(q != "" && (d < 0 ? -d : d) <= 1e-2 * f) }' ||
  fail "PiSSA over NF4 blocks: first loss $q, f32 residual's $f"
awk -v q="$(mib run_pissa_q)" -v f="$(mib run_pissa_f)" 'BEGIN { exit !(q + 0 < f + 0) }' ||
  fail "PiSSA under base_dtype q did not keep NF4 blocks"
bnb_py - "$tmp/run_pissa_q/last" "$tmp/run_pissa_f/last" <<'EOF'
import sys
from safetensors.numpy import load_file
q, f = (load_file(d + "/adapter_model.safetensors") for d in sys.argv[1:])
worst = max(float(((q[k] - f[k]) ** 2).sum() / (f[k] ** 2).sum()) ** 0.5 for k in f)
print(f"  the adapters: relative L2 {worst:.1e} apart")
sys.exit(0 if worst < 1e-6 else 1)  # the same SVD of the same values; a zero start is 1 apart
EOF
echo "PiSSA over NF4 blocks: first loss $q, over the f32 residual $f; $(mib run_pissa_q) MiB of weights (f32: $(mib run_pissa_f))"

# 3. refusals
bnb_py "$ref" save "$tmp/hf" "$tmp/fp4" 0 fp4
cp "$tmp/hf"/tokenizer* "$tmp/fp4/"
"$bin" merge --model "$tmp/fp4" --adapter "$tmp/run_nf4/last" --out "$tmp/fp4/merged" 2>"$tmp/err" &&
  fail "an FP4 checkpoint was read"
grep -q "is bitsandbytes FP4: loraft reads NF4 4-bit weights only" "$tmp/err" || { cat "$tmp/err"; fail "unclear FP4 error"; }
bnb_py - "$tmp/bnb_dq0/model.safetensors" <<'EOF'
import sys
from safetensors.numpy import load_file, save_file
t = load_file(sys.argv[1])
t["model.layers.1.mlp.up_proj.weight.quant_map"][3] += 0.01
save_file(t, sys.argv[1], metadata={"format": "pt"})
EOF
"$bin" merge --model "$tmp/bnb_dq0" --adapter "$tmp/run_nf4/last" --out "$tmp/bad" 2>"$tmp/err" &&
  fail "a quant_map other than NF4's was read"
grep -q "up_proj.weight.quant_map' is not bitsandbytes' NF4 code (value 3 is" "$tmp/err" ||
  { cat "$tmp/err"; fail "unclear quant_map error"; }
[ -e "$tmp/bad" ] && fail "the failed merge left $tmp/bad"
echo "refused: an FP4 checkpoint, a quant_map that is not NF4's"
