#!/usr/bin/env bash
# Preference tuning end to end through the CLI on a tiny seeded Llama (`loraft init --arch
# llama`, GQA, the GPT-2 tokenizer) and pairs written here in the HH format (a "Human: ...
# Assistant:" prompt; the chosen answer is polite, the rejected one rude), the last 8 held out
# (data.holdout_examples):
#  1. DPO: before training the policy is the reference (LoRA's B is zero), so eval_loss is
#     ln 2 and the margin 0; after training eval_loss falls and the reward accuracy is above
#     0.5; metrics.jsonl logs the DPO metrics; a CAUSAL_LM adapter; `loraft eval --adapter
#     OUT/best` reproduces the best evaluation, and evaluates the held-out pairs given as a
#     data.validation_file the same; the same with the ipo loss and a chat template;
#  2. reward model: the held-out accuracy rises; a SEQ_CLS adapter saving the score head;
#     `loraft score` of the held-out chosen and rejected answers ranks them as `loraft eval`'s
#     accuracy says; `loraft merge` writes it as a LlamaForSequenceClassification directory
#     that `loraft score` alone scores like base + adapter within 1e-5 (pad_token_id unset
#     here: the score of each row's last token);
#  3. refusals: dpo or reward without LoRA, merging a reward model into a GGUF (nothing
#     written), f1 as
#     the metric, max_prompt_length >= max_length, label smoothing with ipo, `loraft score` with
#     a causal-LM adapter.
# Every run uses 1 thread.
set -euo pipefail
bin=${LORAFT_BIN:-build/loraft}
data=${LORAFT_SHARED_DATA:-../shared/data}
vocab=$data/tokenizers/gpt2
[ -d "$vocab" ] || { echo "SKIP: $vocab (the GPT-2 tokenizer of the tiny llama) is absent"; exit 77; }
tmp=$(mktemp -d /tmp/loraft-pref-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
check() { if python3 -c "import sys; sys.exit(0 if ($1) else 1)"; then ok; else bad "$2 ($1)"; fi; }

python3 "$(dirname "$0")/hh_pairs.py" "$tmp"
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --seed 1 --out "$tmp/model" >/dev/null
cat >"$tmp/dpo.json" <<EOF
{"model": {"model": "$tmp/model", "task": "dpo"},
 "data": {"train_file": "$tmp/pairs.jsonl", "holdout_examples": 8, "max_length": 48,
          "max_prompt_length": 24},
 "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj"]},
 "train": {"learning_rate": 5e-3, "batch_size": 4, "num_epochs": 3, "logging_steps": 4,
           "dpo_beta": 0.1, "threads": 1, "output_dir": "$tmp/dpo"}}
EOF
evals() { sed -n "s/.*eval_loss \([0-9.]*\)  $2 \([0-9.]*\)  margin \([-0-9.]*\).*/\1 \2 \3/p" "$1"; }

# 1. DPO
"$bin" train --config "$tmp/dpo.json" >"$tmp/dpo.log" 2>&1 || { cat "$tmp/dpo.log"; fail "dpo run"; }
grep -q "data: $tmp/pairs.jsonl less the held-out pairs: 32 pairs" "$tmp/dpo.log" && ok ||
  bad "32 training pairs"
read -r l0 a0 m0 < <(evals "$tmp/dpo.log" reward_accuracy | head -1)
read -r l1 a1 m1 < <(evals "$tmp/dpo.log" reward_accuracy | tail -1)
echo "dpo: eval_loss $l0 -> $l1, reward_accuracy $a0 -> $a1, margin $m0 -> $m1"
check "abs($l0 - 0.6931) < 1e-4 and $a0 == 0 and $m0 == 0" "untrained policy = reference"
check "$l1 < $l0 - 0.05 and $a1 > 0.5 and $m1 > 0" "DPO learns the held-out preference"
python3 - "$tmp/dpo/metrics.jsonl" <<'EOF' && ok || bad "metrics.jsonl DPO keys"
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if '"eval"' in l]
assert ev and all({"eval_loss", "reward_accuracy", "margin", "chosen_reward", "rejected_reward"} <= set(e) for e in ev)
assert all(abs(e["margin"] - (e["chosen_reward"] - e["rejected_reward"])) < 1e-9 for e in ev)
EOF
grep -q '"task_type":[[:space:]]*"CAUSAL_LM"' "$tmp/dpo/best/adapter_config.json" && ok ||
  bad "DPO adapter is CAUSAL_LM"
best=$(sed -n 's/.*new best eval_loss \([0-9.]*\).*/\1/p' "$tmp/dpo.log" | tail -1)
"$bin" eval --config "$tmp/dpo.json" --adapter "$tmp/dpo/best" >"$tmp/eval.log" 2>&1 ||
  { cat "$tmp/eval.log"; fail "loraft eval of the DPO adapter"; }
read -r le ae me < <(evals "$tmp/eval.log" reward_accuracy)
check "'$le' == '$best'" "loraft eval --adapter reproduces the best eval_loss $best"
tail -n 8 "$tmp/pairs.jsonl" >"$tmp/val.jsonl" # the held-out pairs as a validation_file
"$bin" eval --config "$tmp/dpo.json" --adapter "$tmp/dpo/best" --set data.holdout_examples=0 \
  --set data.validation_file="$tmp/val.jsonl" >"$tmp/evalfile.log" 2>&1 ||
  { cat "$tmp/evalfile.log"; fail "loraft eval of the DPO adapter on a validation_file"; }
[ "$(grep "^eval: eval_loss" "$tmp/evalfile.log")" = "$(grep "^eval: eval_loss" "$tmp/eval.log")" ] && ok ||
  bad "data.validation_file of the held-out pairs evaluates as holdout_examples 8"
"$bin" train --config "$tmp/dpo.json" --set train.dpo_loss=ipo --set train.num_epochs=1 \
  --set data.chat_template=chatml --set train.output_dir="$tmp/ipo" >"$tmp/ipo.log" 2>&1 ||
  { cat "$tmp/ipo.log"; fail "ipo run"; }
read -r li ai mi < <(evals "$tmp/ipo.log" reward_accuracy | head -1)
check "abs($li - 25.0) < 1e-3" "IPO's untrained loss is (1 / (2 beta))^2 = 25"

# 2. reward model
"$bin" train --config "$tmp/dpo.json" --set model.task=reward --set train.learning_rate=2e-3 \
  --set train.output_dir="$tmp/rm" >"$tmp/rm.log" 2>&1 || { cat "$tmp/rm.log"; fail "reward run"; }
read -r r0 c0 g0 < <(evals "$tmp/rm.log" accuracy | head -1)
read -r r1 c1 g1 < <(evals "$tmp/rm.log" accuracy | tail -1)
echo "reward: eval_loss $r0 -> $r1, accuracy $c0 -> $c1"
check "$r1 < $r0 and $c1 > $c0 and $c1 >= 0.75" "the reward model learns the held-out preference"
python3 - "$tmp/rm/best/adapter_config.json" <<'EOF' && ok || bad "reward adapter: SEQ_CLS, score"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["task_type"] == "SEQ_CLS" and c["modules_to_save"] == ["score"]
EOF
"$bin" eval --config "$tmp/dpo.json" --set model.task=reward --adapter "$tmp/rm/best" \
  >"$tmp/rmeval.log" 2>&1 || { cat "$tmp/rmeval.log"; fail "loraft eval of the reward model"; }
read -r re ce ge < <(evals "$tmp/rmeval.log" accuracy)
"$bin" score --model "$tmp/model" --adapter "$tmp/rm/best" --max-length 48 \
  --max-prompt-length 24 "$tmp/heldout.jsonl" >"$tmp/scores" 2>"$tmp/score.err" ||
  { cat "$tmp/score.err"; fail "loraft score"; }
python3 - "$tmp/scores" "$ce" <<'EOF' && ok || bad "loraft score ranks as loraft eval's accuracy"
import sys
s = [float(x) for x in open(sys.argv[1])]
assert len(s) == 16
acc = sum(s[i] > s[i + 1] for i in range(0, 16, 2)) / 8
assert abs(acc - float(sys.argv[2])) < 1e-9, (acc, sys.argv[2])
EOF
"$bin" merge --model "$tmp/model" --adapter "$tmp/rm/best" --out "$tmp/rm-merged" >/dev/null &&
  "$bin" score --model "$tmp/rm-merged" --max-length 48 --max-prompt-length 24 \
    "$tmp/heldout.jsonl" >"$tmp/scores-merged" 2>"$tmp/score.err" ||
  { cat "$tmp/score.err"; fail "merge and score of the reward model"; }
python3 - "$tmp/scores" "$tmp/scores-merged" "$tmp/rm-merged/config.json" <<'EOF' && ok || bad "the merged reward model scores like base + adapter"
import json, sys
a, b = ([float(x) for x in open(p)] for p in sys.argv[1:3])
assert len(a) == len(b) == 16 and max(abs(x - y) for x, y in zip(a, b)) <= 1e-5, (a, b)
c = json.load(open(sys.argv[3]))
assert c["architectures"] == ["LlamaForSequenceClassification"] and c["id2label"] == {"0": "LABEL_0"}
assert c["pad_token_id"] is None, c["pad_token_id"]
EOF

# 3. refusals
refused() {
  local what=$1 msg=$2; shift 2
  if "$bin" "$@" >"$tmp/r.log" 2>&1; then bad "$what: accepted"; return; fi
  grep -q -- "$msg" "$tmp/r.log" && ok || { bad "$what: message"; cat "$tmp/r.log"; }
}
refused full "needs lora.strategy lora" train --config "$tmp/dpo.json" --set lora.strategy=full \
  --set train.output_dir="$tmp/x1"
refused rmfull "reward needs lora.strategy lora" train --config "$tmp/dpo.json" \
  --set model.task=reward --set lora.strategy=head --set train.output_dir="$tmp/x5"
refused merge "score head has no place in a llama.cpp GGUF" merge --model "$tmp/model" \
  --adapter "$tmp/rm/best" --format gguf --out "$tmp/merged.gguf"
[ ! -e "$tmp/merged.gguf" ] && ok || bad "a refused merge writes nothing"
refused f1 "picks by eval_loss or accuracy" train --config "$tmp/dpo.json" \
  --set train.metric_for_best=f1 --set train.output_dir="$tmp/x2"
refused prompt "max_prompt_length 48 must be below" train --config "$tmp/dpo.json" \
  --set data.max_prompt_length=48 --set train.output_dir="$tmp/x3"
refused smoothing "label_smoothing applies to the sigmoid" train --config "$tmp/dpo.json" \
  --set train.dpo_loss=ipo --set train.dpo_label_smoothing=0.1 --set train.output_dir="$tmp/x4"
refused score "is not a reward model" score --model "$tmp/model" --adapter "$tmp/dpo/best" \
  "$tmp/heldout.jsonl"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
