#!/usr/bin/env bash
# SFT end to end through the CLI on a tiny seeded Llama (`loraft init --arch llama`, GQA 4 heads /
# 2 KV heads, the GPT-2 tokenizer, which carries no chat template: the plain one is named) and 48
# instruction / input / output records written here ("What colour is coal?" -> "Coal is
# black."), the last 8 held out: the held-out answer loss falls; each evaluation logs the greedy
# answers to the first 2 held-out prompts (event "answer": prompt, reference, answer) and prints
# them; a PEFT CAUSAL_LM adapter; `loraft eval --adapter OUT/best` reproduces the best
# evaluation; packing puts several examples in a row; a prompt template renders the prompts;
# and the refusals (no chat template, a template without {output}, a
# conversation without an answer). Every run uses 1 thread.
. "$(dirname "$0")/cli_common.sh" sft gpt2

python3 - "$tmp/colours.jsonl" <<'EOF'
import json, sys
things = ["the sky", "grass", "snow", "a lemon", "coal", "a tomato", "milk", "the sea",
          "an orange", "a plum", "blood", "chalk"]
colours = ["blue", "green", "white", "yellow", "black", "red", "white", "blue", "orange",
           "purple", "red", "white"]
with open(sys.argv[1], "w") as f:
    for i in range(48):
        k = i % len(things)
        f.write(json.dumps({"instruction": "What colour is %s?" % things[k],
                            "input": "" if i % 3 else "Answer in one sentence.",
                            "output": "%s is %s." % (things[k].capitalize(), colours[k])}) + "\n")
EOF
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --seed 1 --out "$tmp/model" >/dev/null
# 40 training examples: 10 steps per epoch at batch 4; 30 steps, evaluated every 15
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model", "task": "sft"},
 "data": {"train_file": "$tmp/colours.jsonl", "holdout_examples": 8, "chat_template": "plain",
          "max_length": 64},
 "lora": {"r": 8, "alpha": 16,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj"]},
 "train": {"learning_rate": 1e-2, "batch_size": 4, "max_steps": 30, "logging_steps": 10,
           "lr_scheduler": "constant", "threads": 1, "eval_strategy": "steps", "eval_steps": 15,
           "eval_answers": 2, "max_new_tokens": 12, "output_dir": "$tmp/run"}}
EOF
train() { "$bin" train --config "$tmp/cfg.json" "$@"; }
json() { python3 -c "import json, math, sys; $1" "${@:2}"; }

# 1. the run: 40 examples to train on, the last 8 held out
train >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "SFT run"; }
grep -q "less the held-out examples: 40 examples" "$tmp/log" || fail "40 training examples"
grep -q "held-out examples: 8 examples" "$tmp/log" || fail "8 held-out examples"; ok

# 2. the held-out answer loss falls by at least 0.5 nats (observed 10.86 -> 9.91)
json '
ev = [json.loads(l) for l in open(sys.argv[1]) if "\"eval\"" in l]
assert [e["step"] for e in ev] == [0, 15, 30], "evaluations at steps %s" % [e["step"] for e in ev]
assert ev[-1]["eval_loss"] <= ev[0]["eval_loss"] - 0.5, \
    "held-out eval_loss %.4f after 30 steps, %.4f before" % (ev[-1]["eval_loss"], ev[0]["eval_loss"])
' "$tmp/run/metrics.jsonl" || fail "eval_loss before/after"; ok

# 3. two answers per evaluation, with the held-out prompts and references, printed as logged
json '
ans = [json.loads(l) for l in open(sys.argv[1]) if "\"answer\"" in l]
assert [(a["step"], a["example"]) for a in ans] == [(s, i) for s in (0, 15, 30) for i in (0, 1)], \
    [(a["step"], a["example"]) for a in ans]
assert ans[0]["prompt"] == "User: What colour is coal?\n\nAssistant:", ans[0]["prompt"]
assert ans[0]["reference"] == " Coal is black.\n\n", ans[0]["reference"]
assert ans[1]["prompt"].startswith("User: What colour is a tomato?"), ans[1]["prompt"]
for a in ans:
    print("  answer %d: %s" % (a["example"] + 1, json.dumps(a["answer"])))
' "$tmp/run/metrics.jsonl" >"$tmp/answers" || fail "answer events in metrics.jsonl"
grep "^  answer " "$tmp/log" | cmp -s - "$tmp/answers" && ok || bad "stdout answers differ from the log"

# 4. a PEFT CAUSAL_LM adapter on the seven projections
json '
c = json.load(open(sys.argv[1]))
assert c["task_type"] == "CAUSAL_LM", "task_type %r" % c["task_type"]
assert len(c["target_modules"]) == 7, "target_modules %r" % c["target_modules"]
' "$tmp/run/best/adapter_config.json" && ok || bad "best/adapter_config.json"

# 5. eval --adapter OUT/best reproduces the best eval_loss and logs answers again
if "$bin" eval --config "$tmp/cfg.json" --adapter "$tmp/run/best" >"$tmp/eval" 2>&1; then
  got=$(sed -n 's/^eval: eval_loss \([0-9.]*\) .*/\1/p' "$tmp/eval")
  json '
best = min(json.loads(l)["eval_loss"] for l in open(sys.argv[1]) if "\"eval\"" in l)
assert abs(float(sys.argv[2] or "nan") - best) <= 1.5e-4, "eval --adapter: %r, best %.6f" % (sys.argv[2], best)
' "$tmp/run/metrics.jsonl" "$got" && grep -q "^  answer 2: " "$tmp/eval" && ok \
    || bad "eval of OUT/best: $(grep eval: "$tmp/eval" | tail -1)"
else
  bad "eval --adapter OUT/best: $(tail -1 "$tmp/eval")"
fi

# 6. packing: the 40 examples (20 or 21 tokens) in rows of up to 64 tokens, 3 to a row
train --set data.packing=true --set train.max_steps=2 --set train.eval_answers=0 \
  --set train.output_dir="$tmp/packed" >"$tmp/packed.log" 2>&1 || { cat "$tmp/packed.log"; fail "packing"; }
grep -q "less the held-out examples: 40 examples .* in 14 rows of up to 6[0-4]," "$tmp/packed.log" \
  && ok || bad "packing: $(grep 'less the held-out' "$tmp/packed.log")"

# 7. a prompt template for base models instead of the chat template (the space before {output}
# goes with the answer's first token, " Coal")
train --set data.chat_template= --set $'data.prompt_template=Q: {instruction} {input}\nA: {output}' \
  --set train.max_steps=1 --set train.eval_answers=1 --set train.output_dir="$tmp/tmpl" \
  >"$tmp/tmpl.log" 2>&1 || { cat "$tmp/tmpl.log"; fail "prompt template"; }
json '
a = [json.loads(l) for l in open(sys.argv[1]) if "\"answer\"" in l][0]
assert a["prompt"] == "Q: What colour is coal? \nA:", repr(a["prompt"])
assert a["reference"] == " Coal is black.", repr(a["reference"])
' "$tmp/tmpl/metrics.jsonl" && ok || bad "prompt template rendering"

# 8. Gemma 3 and Gemma 2 (`loraft init --arch gemma3 / gemma2`: 1 + w norms, GeGLU, layer 0
# windowed; Gemma 2's scores and logits soft-capped at 3) with Gemma's tokenizer spelling
# (tests/golden/spm_gemma.json) and their chat templates: the prompt renders as Gemma's turns, the
# held-out answer loss falls
mkdir -p "$tmp/gemma_tok"
cp tests/golden/spm_gemma.json "$tmp/gemma_tok/tokenizer.json"
for g in "gemma3 gemma" "gemma2 gemma2 --attn-softcap 3 --final-softcap 3"; do
  set -- $g
  "$bin" init --arch "$1" --layers 2 --hidden 64 --heads 4 --kv-heads 2 --head-dim 32 \
    --sliding-window 16 --full-every 2 "${@:3}" --vocab-from "$tmp/gemma_tok" --seed 1 \
    --out "$tmp/$1" >/dev/null || fail "init --arch $1"
  train --set model.model="$tmp/$1" --set data.chat_template="$2" \
    --set train.output_dir="$tmp/$1-run" >"$tmp/$1.log" 2>&1 || { cat "$tmp/$1.log"; fail "$1 SFT run"; }
  json '
ev = [json.loads(l) for l in open(sys.argv[1]) if "\"eval\"" in l]
a = [json.loads(l) for l in open(sys.argv[1]) if "\"answer\"" in l][0]
want = "<bos><start_of_turn>user\nWhat colour is coal?<end_of_turn>\n<start_of_turn>model\n"
assert a["prompt"] == want, repr(a["prompt"])
assert ev[-1]["eval_loss"] <= ev[0]["eval_loss"] - 0.5, (ev[0]["eval_loss"], ev[-1]["eval_loss"])
' "$tmp/$1-run/metrics.jsonl" && ok || bad "$1 SFT: $(grep -m1 answer "$tmp/$1-run/metrics.jsonl")"
done

# 9. refusals, each with a message and no run directory left behind
refused() { # refused NAME PATTERN --set ...: the run fails, says PATTERN, writes nothing
  local name=$1 pattern=$2
  shift 2
  if train --set train.output_dir="$tmp/$name" "$@" >"$tmp/$name.log" 2>&1; then fail "$name accepted"; fi
  grep -q "$pattern" "$tmp/$name.log" || { cat "$tmp/$name.log"; fail "$name: no '$pattern'"; }
  [ ! -e "$tmp/$name" ] || fail "$name left $tmp/$name behind"
}
refused notemplate "set data.chat_template" --set data.chat_template=
refused nooutput "has no {output}" --set data.chat_template= --set "data.prompt_template=Q: {instruction}"
echo '{"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "?"}]}' >"$tmp/bad.jsonl"
refused noanswer "bad.jsonl:1: the last message must be the assistant's answer" \
  --set data.train_file="$tmp/bad.jsonl" --set data.holdout_examples=0; ok

finish
