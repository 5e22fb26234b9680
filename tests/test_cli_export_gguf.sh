#!/usr/bin/env bash
# `loraft export-gguf` and `loraft merge --format gguf` end to end on a tiny seeded Llama (GQA 4
# heads / 2 KV heads, the GPT-2 tokenizer) with a LoRA adapter trained for 6 steps: the adapter
# exports without --model (the adapter's base_model_name_or_path), both files are GGUF v3; the
# merged model evaluates (`loraft eval` with model.model = the .gguf and the tiny model's
# tokenizer) to the eval_loss of base + adapter (which is at least 0.05 below the base's;
# observed 10.734 -> 10.488): within 1.5e-4 for F32 (eval_loss is printed to 4 decimals), 1e-3
# for F16 and 2e-3 for Q8_0 (observed 0, 0 and 1e-4); usage errors exit 2 and a failed export
# leaves no file. Every run uses 1 thread. (Values and metadata are checked in test_gguf_export.c.)
. "$(dirname "$0")/cli_common.sh" export gpt2

python3 - "$tmp/corpus.txt" <<'EOF'
import random, sys
random.seed(3)
words = "the house garden letter morning friend village party walked spoke smiled".split()
with open(sys.argv[1], "w") as f:
    for p in range(40):
        f.write(" ".join(random.choice(words) for _ in range(30)) + "\n\n")
EOF
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 \
  --vocab-from "$vocab" --seed 2 --out "$tmp/model" >/dev/null
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/corpus.txt", "validation_file": "$tmp/corpus.txt",
          "text_unit": "paragraph", "max_length": 32},
 "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj",
          "gate_proj", "up_proj", "down_proj"]},
 "train": {"learning_rate": 1e-2, "batch_size": 4, "max_steps": 6, "eval_strategy": "no",
           "threads": 1, "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/cfg.json" >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; fail "training"; }
adapter=$tmp/run/last

# 1. the adapter, --model taken from adapter_config.json
"$bin" export-gguf --adapter "$adapter" --out "$tmp/a.gguf" >"$tmp/out" 2>&1 || { cat "$tmp/out"; fail "export-gguf"; }
grep -q "14 LoRA modules" "$tmp/out" && [ "$(head -c 4 "$tmp/a.gguf")" = GGUF ] && ok || bad "export-gguf: $(cat "$tmp/out")"

# 2. merged models evaluate like base + adapter
eval_loss() { "$bin" eval --config "$tmp/cfg.json" --set train.threads=1 "$@" 2>&1 | sed -n 's/^eval: eval_loss \([0-9.]*\) .*/\1/p'; }
want=$(eval_loss --adapter "$adapter")
base=$(eval_loss)
echo "eval_loss: base $base, base + adapter $want"
python3 -c "import sys; b, w = map(float, sys.argv[1:]); assert b - w > 0.05, (b, w)" "${base:-nan}" "$want" \
  && ok || bad "the adapter does not lower eval_loss by 0.05 (base ${base:-none}, with it $want)"
[ -n "$want" ] || fail "eval of base + adapter printed no eval_loss"
for spec in f32:1.5e-4 f16:1e-3 q8_0:2e-3; do
  type=${spec%%:*} tol=${spec#*:}
  "$bin" merge --model "$tmp/model" --adapter "$adapter" --format gguf --type "$type" \
    --out "$tmp/m.$type.gguf" >"$tmp/out" 2>&1 || { bad "merge --type $type: $(cat "$tmp/out")"; continue; }
  got=$(eval_loss --set model.model="$tmp/m.$type.gguf" --set model.tokenizer="$tmp/model")
  echo "merged $type: eval_loss ${got:-none}, base + adapter $want"
  python3 -c "import sys; w, g, t = map(float, sys.argv[1:]); assert abs(g - w) <= t, (w, g, t)" \
    "$want" "${got:-nan}" "$tol" && ok || bad "merged $type: eval_loss ${got:-none}, base + adapter $want (tolerance $tol)"
done

# 3. usage errors exit 2; a failed export writes nothing
expect() {  # expect CODE PHRASE -- command...
  local code=$1 phrase=$2; shift 3
  set +e; "$@" >"$tmp/out" 2>&1; local rc=$?; set -e
  [ $rc = "$code" ] && grep -q -- "$phrase" "$tmp/out" && ok || bad "$* -> rc $rc: $(cat "$tmp/out")"
}
expect 2 "--adapter and --out are required" -- "$bin" export-gguf --out "$tmp/x.gguf"
expect 2 "expected f16, q8_0 or f32" -- "$bin" merge --model "$tmp/model" --adapter "$adapter" --format gguf --type q4_k --out "$tmp/x.gguf"
expect 2 "expected hf or gguf" -- "$bin" merge --model "$tmp/model" --adapter "$adapter" --format onnx --out "$tmp/x.gguf"
expect 1 "adapter_config.json" -- "$bin" export-gguf --adapter "$tmp/none" --out "$tmp/x.gguf"
[ ! -e "$tmp/x.gguf" ] && ok || bad "a failed export left $tmp/x.gguf"

finish
