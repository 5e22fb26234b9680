# lm_compat_common.sh: what the language-model compatibility tests (test_peft_compat_lm.sh,
# _gpt2.sh, _reward.sh, test_hf_llama3.sh, test_hf_llama_family.sh, test_quant_gguf.sh) share,
# sourced first.

# lm_compat_setup NAME: bin (loraft), data (../shared/data), vocab (the GPT-2 tokenizer the tiny
# models use), py (the venv's python of scripts/setup-python.sh) and tmp (a fresh
# /tmp/loraft-NAME-XXXXXX, removed at exit unless KEEP is set, to look into a failure); skips
# (77), saying why, without the tokenizer or the venv.
lm_compat_setup() {
  bin=${LORAFT_BIN:-build/loraft}
  data=${LORAFT_SHARED_DATA:-../shared/data}
  vocab=$data/tokenizers/gpt2
  [ -d "$vocab" ] || { echo "SKIP: $vocab (the GPT-2 tokenizer) is absent"; exit 77; }
  if ! py=$(scripts/setup-python.sh --check 2>&1); then echo "SKIP: $py"; exit 77; fi
  tmp=$(mktemp -d "/tmp/loraft-$1-XXXXXX")
  trap '[ -n "${KEEP:-}" ] || rm -rf "$tmp"' EXIT
}

# Training texts (3 sentences each) in $tmp/train.jsonl; validation texts of 1 to 3 sentences in
# $tmp/valid.jsonl, one of them longer than max_length (right-truncated) and one a single token
# (nothing to predict: it counts for neither side).
write_corpus() {
  "$py" - "$tmp" <<'EOF'
import json, random, sys
random.seed(5)
names = ["Anne", "Captain Wentworth", "Lady Russell", "Mary", "Sir Walter", "Elizabeth"]
verbs = ["walked to", "looked at", "spoke of", "thought of", "smiled at", "wrote to"]
objs = ["the garden", "the house", "her sister", "the letter", "Bath", "the sea"]
tails = ["in the morning.", "with great pleasure.", "and was very happy.", "once again."]
sent = lambda: " ".join(random.choice(w) for w in (names, verbs, objs, tails))
with open(sys.argv[1] + "/train.jsonl", "w") as f:
    for i in range(40):
        f.write(json.dumps({"text": " ".join(sent() for _ in range(3))}) + "\n")
with open(sys.argv[1] + "/valid.jsonl", "w") as f:
    for i in range(6):
        f.write(json.dumps({"text": " ".join(sent() for _ in range(1 + i % 3))}) + "\n")
    f.write(json.dumps({"text": " ".join(sent() for _ in range(6))}) + "\n")  # > max_length
    f.write(json.dumps({"text": "Hello"}) + "\n")                              # one token
EOF
}

# write_lora_run DIR: DIR/run.json, a short LoRA run (r 4, the seven projections of a Llama-family
# decoder) of the model in DIR/model on write_corpus's texts at max_len, saving into DIR/run
write_lora_run() {
  cat >"$1/run.json" <<EOF
{"model": {"model": "$1/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"]},
 "train": {"learning_rate": 2e-2, "batch_size": 4, "max_steps": 6, "lr_scheduler": "constant",
           "eval_strategy": "steps", "eval_steps": 6, "save_strategy": "steps", "save_steps": 6,
           "logging_steps": 0, "threads": 1, "output_dir": "$1/run"}}
EOF
}

# eval_loss CONFIG [loraft eval options]: loraft eval's loss, as ln(perplexity), and the number
# of predicted tokens: "LOSS N"
eval_loss() {
  "$bin" eval --config "$1" "${@:2}" 2>"$tmp/eval.err" | "$py" -c '
import math, re, sys
out = sys.stdin.read()
m = re.search(r"eval_loss (\S+)\s+perplexity (\S+)\s+\((\d+) tokens predicted\)", out)
if not m: sys.exit("no eval_loss in: " + out)
loss, ppl = float(m[1]), float(m[2])
assert abs(math.log(ppl) - loss) <= 5.1e-5, (loss, ppl)
print("%.9f %s" % (math.log(ppl), m[3]))' || { cat "$tmp/eval.err"; return 1; }
}

# lora_round NAME DIR BASE: the rounds test_hf_gemma.sh and test_hf_phi3.sh share on DIR/run.json
# (write_lora_run's) and its model DIR/model of loss BASE: LoRA training, `loraft merge` into
# DIR/merged, full fine-tuning into DIR/fullrun; write-tiny-gguf.py's GGUF of the model gives BASE,
# the merge as a GGUF (DIR/merged.gguf) the adapter's loss, and `loraft export-gguf` writes
# DIR/adapter.gguf. Sets adapter, merged and tuned (eval_loss's).
lora_round() {
  local name=$1 dir=$2 base=$3
  "$bin" train --config "$dir/run.json" >"$dir/train.log" 2>&1 \
    || { cat "$dir/train.log"; echo "FAIL: $name: loraft train"; exit 1; }
  adapter=$(eval_loss "$dir/run.json" --adapter "$dir/run/best")
  "$bin" merge --model "$dir/model" --adapter "$dir/run/best" --out "$dir/merged" >/dev/null
  merged=$(eval_loss "$dir/run.json" --set model.model="$dir/merged")
  "$bin" train --config "$dir/run.json" --set lora.strategy=full --set train.learning_rate=1e-3 \
    --set train.output_dir="$dir/fullrun" >"$dir/full.log" 2>&1 \
    || { cat "$dir/full.log"; echo "FAIL: $name: loraft train (full)"; exit 1; }
  tuned=$(eval_loss "$dir/run.json" --set model.model="$dir/fullrun/best")
  "$py" scripts/write-tiny-gguf.py "$dir/model" "$dir/model.gguf"
  [ "$(eval_loss "$dir/run.json" --set model.model="$dir/model.gguf")" = "$base" ] \
    || { echo "FAIL: the $name GGUF's loss differs from the HF directory's"; exit 1; }
  echo "ok   the $name GGUF gives the HF directory's loss ($base)"
  gguf_round "$name" "$dir"
}

# gguf_round NAME DIR: `loraft merge --format gguf` of DIR/model and DIR/run/best into
# DIR/merged.gguf gives the adapter's loss ($adapter, eval_loss's), and `loraft export-gguf`
# writes DIR/adapter.gguf.
gguf_round() {
  local name=$1 dir=$2 merged_gguf
  "$bin" merge --model "$dir/model" --adapter "$dir/run/best" --format gguf --type f32 \
    --out "$dir/merged.gguf" >/dev/null
  "$bin" export-gguf --adapter "$dir/run/best" --out "$dir/adapter.gguf" >/dev/null
  merged_gguf=$(eval_loss "$dir/run.json" --set model.model="$dir/merged.gguf")
  [ "$merged_gguf" = "$adapter" ] \
    || { echo "FAIL: the merged GGUF's loss $merged_gguf is not the adapter's $adapter"; exit 1; }
  echo "ok   the merged $name GGUF gives the adapter's loss ($adapter)"
}
