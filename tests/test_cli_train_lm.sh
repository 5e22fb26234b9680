#!/usr/bin/env bash
# Causal-LM end to end through the CLI on a tiny seeded Llama (`loraft init --arch llama`,
# GQA 4 heads / 2 KV heads, the GPT-2 tokenizer) and a small repetitive corpus written here
# in "CHAPTER I".."CHAPTER IV" chapters: LoRA on all seven projections with chapter 2 held
# out; the held-out eval_loss falls, perplexity = exp(eval_loss), a PEFT CAUSAL_LM adapter,
# `loraft eval --adapter OUT/best` reproduces the best evaluation, `--resume OUT/last` after
# a max_steps stop (at an epoch end, and mid-epoch) ends with the bytes of an uninterrupted
# run, as does a run with train.gradient_checkpointing; and the refusals (accuracy as causal-lm's metric, classification on a llama, a
# chapter the file does not have). Every run uses 1 thread, so two run side by side.
. "$(dirname "$0")/cli_common.sh" lm gpt2

# Four chapters of 8 paragraphs, each 4 sentences "NAME VERB OBJECT TAIL" from 6 x 6 x 6 x 4
# choices: about 60 distinct tokens, so 24 LoRA steps move the held-out loss well away from
# the untrained ln(50257) = 10.8.
python3 - "$tmp/corpus.txt" <<'EOF'
import random, sys
random.seed(7)
names = ["Emma", "Harriet", "Mr. Knightley", "Jane", "Mrs. Weston", "Frank"]
verbs = ["walked to", "looked at", "spoke of", "thought of", "smiled at", "wrote to"]
objs = ["the garden", "the house", "her friend", "the letter", "the village", "the party"]
tails = ["in the morning.", "with great pleasure.", "and was very happy.", "once again."]
with open(sys.argv[1], "w") as f:
    f.write("A STORY\n\n")
    for ch in ["I", "II", "III", "IV"]:
        f.write("CHAPTER %s\n\n" % ch)
        for p in range(8):
            f.write(" ".join(" ".join(random.choice(w) for w in (names, verbs, objs, tails))
                             for _ in range(4)) + "\n\n")
EOF
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --seed 1 --out "$tmp/model" >/dev/null
# 31 training blocks of 32 tokens: 8 steps per epoch at batch 4; 24 steps = 3 epochs.
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/corpus.txt", "holdout_file": "$tmp/corpus.txt",
          "holdout_chapter": 2, "text_unit": "paragraph", "max_length": 32},
 "lora": {"r": 8, "alpha": 16, "dropout": 0.05,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"]},
 "train": {"learning_rate": 1e-2, "batch_size": 4, "max_steps": 24, "logging_steps": 4,
           "lr_scheduler": "constant", "threads": 1, "output_dir": "$tmp/run"}}
EOF
train() { "$bin" train --config "$tmp/cfg.json" "$@"; }
json() { python3 -c "import json, math, sys; $1" "${@:2}"; }

# 1. the run (and, beside it, the first half of a run stopped mid-epoch by max_steps)
train >"$tmp/log" 2>&1 & main=$!
train --set train.max_steps=12 --set train.output_dir="$tmp/mid" >"$tmp/mid.log" 2>&1 \
  || { cat "$tmp/mid.log"; fail "12-step run"; }
mid_epoch=$(sed -n 's/.*"epoch":[[:space:]]*\([0-9]*\).*/\1/p' "$tmp/mid/last/trainer_state.json")
wait $main || { cat "$tmp/log"; fail "LoRA causal-lm run"; }
grep -q "held-out chapter: 9 texts" "$tmp/log" || { grep data: "$tmp/log"; fail "held-out chapter 2 is not 9 paragraphs"; }; ok

# 2. the held-out loss falls by at least 0.3 nats (observed 10.84 -> 10.14)
json '
ev = [json.loads(l) for l in open(sys.argv[1]) if "\"eval\"" in l]
b, a = ev[0], ev[-1]
assert b["step"] == 0 and a["step"] == 24, "evaluations at steps %s" % [e["step"] for e in ev]
assert a["eval_loss"] <= b["eval_loss"] - 0.3, \
    "held-out eval_loss %.4f after 24 steps, %.4f before: not 0.3 lower" % (a["eval_loss"], b["eval_loss"])
' "$tmp/run/metrics.jsonl" || fail "eval_loss before/after"; ok

# 3. perplexity = exp(eval_loss) in the log (relative 1e-12) and on stdout (3 decimals)
json '
for e in (json.loads(l) for l in open(sys.argv[1]) if "\"eval\"" in l):
    assert abs(e["perplexity"] - math.exp(e["eval_loss"])) <= 1e-12 * e["perplexity"], \
        "step %d: perplexity %r, exp(eval_loss) %r" % (e["step"], e["perplexity"], math.exp(e["eval_loss"]))
    print("%.4f  perplexity %.3f" % (e["eval_loss"], e["perplexity"]))
' "$tmp/run/metrics.jsonl" >"$tmp/ppl" || fail "perplexity in metrics.jsonl"
while read -r line; do grep -qF "eval_loss $line" "$tmp/log" || fail "stdout lacks 'eval_loss $line'"; done <"$tmp/ppl"
[ "$(wc -l <"$tmp/ppl")" = 4 ] || fail "expected 4 evaluations (before + 3 epochs)"; ok

# 4. a PEFT CAUSAL_LM adapter on the seven projections
json '
c = json.load(open(sys.argv[1]))
want = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
assert c["task_type"] == "CAUSAL_LM", "task_type %r" % c["task_type"]
assert sorted(c["target_modules"]) == sorted(want), "target_modules %r" % c["target_modules"]
assert not c.get("modules_to_save"), "modules_to_save %r" % c["modules_to_save"]
' "$tmp/run/best/adapter_config.json" || fail "best/adapter_config.json"
[ -s "$tmp/run/best/adapter_model.safetensors" ] || fail "best/adapter_model.safetensors"; ok

# 5. eval --adapter OUT/best reproduces the best eval_loss within 1e-4 (+ 5e-5: printed to 4 decimals)
if "$bin" eval --config "$tmp/cfg.json" --adapter "$tmp/run/best" >"$tmp/eval" 2>&1; then
  got=$(sed -n 's/^eval: eval_loss \([0-9.]*\) .*/\1/p' "$tmp/eval")
  json '
best = min(json.loads(l)["eval_loss"] for l in open(sys.argv[1]) if "\"eval\"" in l and "\"step\":0," not in l)
assert abs(float(sys.argv[2] or "nan") - best) <= 1.5e-4, "eval --adapter: %r, best of the run %.6f" % (sys.argv[2], best)
' "$tmp/run/metrics.jsonl" "$got" && ok || bad "eval of OUT/best: $(grep eval: "$tmp/eval" | tail -1)"
else
  bad "eval --adapter OUT/best: $(tail -1 "$tmp/eval")"
fi

# 6. resume after a max_steps stop: at an epoch end (16 = 2 epochs) and mid-epoch (12), each
# continued to 24 steps, ends with the adapter bytes of the uninterrupted run
train --set train.max_steps=16 --set train.output_dir="$tmp/end" >"$tmp/end.log" 2>&1 & end=$!
train --set train.output_dir="$tmp/mid" --resume "$tmp/mid/last" >"$tmp/mid2.log" 2>&1 \
  || { cat "$tmp/mid2.log"; fail "resume after 12 steps"; }
wait $end || { cat "$tmp/end.log"; fail "16-step run"; }
train --set train.output_dir="$tmp/end" --resume "$tmp/end/last" >"$tmp/end2.log" 2>&1 \
  || { cat "$tmp/end2.log"; fail "resume after 16 steps"; }
grep -q "resumed from .* at step 16" "$tmp/end2.log" || fail "no resume message (step 16)"
cmp -s "$tmp/end/last/adapter_model.safetensors" "$tmp/run/last/adapter_model.safetensors" \
  && ok || bad "16 steps + resume to 24 differs from 24 straight"
grep -q "resumed from .* at step 12" "$tmp/mid2.log" || fail "no resume message (step 12)"
cmp -s "$tmp/mid/last/adapter_model.safetensors" "$tmp/run/last/adapter_model.safetensors" \
  && ok || bad "12 steps (mid-epoch 2) + resume to 24 differs from 24 straight (the 12-step" \
  "checkpoint's trainer_state.json has epoch $mid_epoch; epoch 2 was not finished: 1)"

# 6b. gradient checkpointing (each layer's forward replayed before its backward, the same
# dropout masks) trains the same adapter bytes, and says so on its model line
train --set train.gradient_checkpointing=true --set train.output_dir="$tmp/ckpt" \
  >"$tmp/ckpt.log" 2>&1 || { cat "$tmp/ckpt.log"; fail "gradient checkpointing run"; }
grep -q "MiB of activations (gradient checkpointing)" "$tmp/ckpt.log" \
  || fail "no gradient checkpointing on the model line"
cmp -s "$tmp/ckpt/last/adapter_model.safetensors" "$tmp/run/last/adapter_model.safetensors" \
  && ok || bad "24 steps with gradient checkpointing differ from 24 without"

# 7. refusals, each with a message and no run directory left behind
refused() { # refused NAME PATTERN --set ...: the run fails, says PATTERN, writes nothing
  local name=$1 pattern=$2
  shift 2
  if train --set train.output_dir="$tmp/$name" "$@" >"$tmp/$name.log" 2>&1; then fail "$name accepted"; fi
  grep -q "$pattern" "$tmp/$name.log" || { cat "$tmp/$name.log"; fail "$name: no '$pattern'"; }
  [ ! -e "$tmp/$name" ] || fail "$name left $tmp/$name behind"
}
refused accuracy "metric_for_best 'accuracy' is a classification metric" --set train.metric_for_best=accuracy
refused chapter "no chapter 5: the file has 4 chapter headings" --set data.holdout_chapter=5; ok
# full fine-tuning saves HF directories: a GGUF base whose RoPE divisors have no config.json form
# (llama3 scaling, but not Meta's parameters) is refused before training, not at the first save
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --rope-scaling '{"rope_type": "llama3", "factor": 8, "low_freq_factor": 1,
                   "high_freq_factor": 4, "original_max_position_embeddings": 64}' \
  --seed 1 --out "$tmp/l3" --gguf "$tmp/l3.gguf" --quant F32 >/dev/null
refused divisors "strategy full saves the model as an HF directory: .*no config.json form" \
  --set model.model="$tmp/l3.gguf" --set model.tokenizer="$tmp/l3" --set lora.strategy=full; ok
# classification on the llama: with a WordPiece tokenizer the data loads and the model refuses
bert=$data/tokenizers/bert-base-uncased
if [ -d "$bert" ]; then
  echo '{"text": "a good film", "label": 1}' >"$tmp/cls.jsonl"
  refused cls "model.task classification: a llama model is for causal-lm" \
    --set model.task=classification --set model.tokenizer="$bert" --set data.holdout_chapter=0 \
    --set data.train_file="$tmp/cls.jsonl" --set data.validation_file="$tmp/cls.jsonl"
else
  refused cls "model.task classification" --set model.task=classification \
    --set data.holdout_chapter=0 --set data.validation_file="$tmp/corpus.txt"
fi; ok

finish
