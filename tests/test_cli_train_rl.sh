#!/usr/bin/env bash
# RLOO (model.task rloo) end to end through the CLI on a tiny seeded Llama (`loraft init --arch
# llama`, GQA, the GPT-2 tokenizer), the RLHF pipeline in small: the policy is fine-tuned on
# hh_pairs.py's prompts with both their answers (causal-lm, full: it answers politely or rudely
# about as often), a reward model is trained on the pairs (polite answers chosen, rude ones
# rejected), then the policy is trained with RLOO on the prompts, sampling 4 completions of up to
# 16 tokens each, scored by that reward model:
#  1. the log: every step's reward, its std, the KL, the completion length and the share cut at
#     max_completion_length; at step 1 the policy is the reference (LoRA's B is zero), so the KL
#     is 0; the mean reward of the last 4 steps is at least 0.5 above that of the first 4, as is
#     the held-out prompts' (the last 8, evaluated before training and every 10 steps), and the
#     trained policy's greedy answer is a polite one (a polite phrase, no rude one);
#  2. a run resumed from its checkpoint samples what the run would have: the same adapter to the
#     bit; the adapter is a CAUSAL_LM one;
#  3. refusals: no reward model, a reward model that is not one, a best checkpoint picked by
#     anything but the reward, an empty prompt, a batch over 1024 rows, full fine-tuning;
#  4. GRPO (model.task grpo, TRL's defaults: dapo, rewards scaled by their group) on the same
#     pipeline: the log without a KL, the held-out and the training reward at least 0.5 higher;
#     with every completion cut at max_completion_length 2 and mask_truncated_completions, nothing
#     is trained (every LoRA B still 0), while without it something is; with a KL penalty
#     (train.grpo_beta) the KL is logged, 0 at step 1 and positive after; sampling with top_k 1
#     or min_p 1 makes a group's completions alike, which trains nothing (every group's rewards'
#     std 0: frac_reward_zero_std 1), and at temperature 50 (top_p 0.999) draws all but
#     uniformly from 50,257 tokens: no stop id, (nearly) every completion cut, where top_k 1 cuts
#     few; a repetition penalty gives top_k 1 other completions (their lengths);
#  5. GRPO's num_iterations 3 with gradient_accumulation_steps 2: an epoch is 3 x its 4 windows
#     of 2 batches; a generation is sampled at steps 1 and 4 alone, its 3 steps log the tokens
#     clipped (none on its first, where the policy is the sampler; some after, at epsilon 0.01),
#     with a KL penalty the later steps' KL is the kept reference's (0 at step 1, small after),
#     a run resumed at the generation's end trains what the run would have (to the bit), and one
#     resumed inside a generation (from a checkpoint with a best reward) samples a new one at
#     once; at importance_sampling_level sequence (GSPO) whole completions are clipped; cispo caps
#     tokens' ratios (some, where the cap is 1.001, but at a generation's first step), sapo clips
#     none, nor does vespo (refused at sequence level, which it takes itself), luspo (with the KL
#     without the ratio) clips completions; the off-policy sequence mask at a threshold no
#     completion's drift reaches trains to the bit what no mask does, at 1e-6 something else;
#     RLOO at num_iterations 2 (its advantages normalised over the generation) samples at
#     steps 1 and 3 alone and clips whole completions on the steps between, its KL per token 0 at
#     step 1 (the policy is the reference) and not after;
#  6. reward functions (train.reward_funcs): GRPO on a program's rewards alone
#     (train.reward_command, score.py: the polite phrases less the rude ones), the reward model
#     unused, raises the held-out reward by at least 0.5; the model, repetition_penalty_reward
#     (of tokens: 1-grams) and the program (no reward for completions of an odd number of tokens)
#     weighted 1, 2 and 0.5: each function's mean as the program's log and TRL's n-gram formula
#     give them, and the reward their weighted sum; GDPO's normalize_then_sum and RLOO run on
#     them; scripts/reward-server.py serves a function written for TRL; a program that scores
#     nothing trains nothing (frac_unscored 1); think_format_reward alone needs no reward model;
#     a program that exits or replies with too few rewards stops the run with a clear error;
#  7. the policy's mean entropy a completion token logged, within (0, ln 50257); GRPO's entropy
#     mask (top_entropy_quantile 0.2) with a bonus trains something else than neither, from the
#     same first samples; adaptive entropy control moves the coefficient by entropy_coef_delta
#     each step, up while the entropy is at most the target, down to its floor otherwise; RLOO
#     refuses the entropy's terms.
# Every run uses 1 thread.
. "$(dirname "$0")/cli_common.sh" rl gpt2
check() { if python3 -c "import sys; sys.exit(0 if ($1) else 1)"; then ok; else bad "$2 ($1)"; fi; }

python3 "$(dirname "$0")/hh_pairs.py" "$tmp"
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --seed 1 --out "$tmp/model" >/dev/null
python3 - "$tmp" <<'EOF'
import json, sys
with open(sys.argv[1] + "/sft.jsonl", "w") as f:
    for line in open(sys.argv[1] + "/pairs.jsonl"):
        r = json.loads(line)
        for k in ("chosen", "rejected"):
            f.write(json.dumps({"text": r["prompt"] + " " + r[k]}) + "\n")
EOF
cat >"$tmp/sft.json" <<EOF
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/sft.jsonl", "format": "jsonl", "max_length": 48},
 "lora": {"strategy": "full"},
 "train": {"learning_rate": 1e-2, "batch_size": 8, "num_epochs": 10, "warmup_steps": 5,
           "threads": 1, "save_strategy": "epoch", "output_dir": "$tmp/sft"}}
EOF
"$bin" train --config "$tmp/sft.json" >"$tmp/sft.log" 2>&1 || { cat "$tmp/sft.log"; fail "sft run"; }
cat >"$tmp/rm.json" <<EOF
{"model": {"model": "$tmp/model", "task": "reward"},
 "data": {"train_file": "$tmp/pairs.jsonl", "max_length": 48, "max_prompt_length": 24},
 "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj"]},
 "train": {"learning_rate": 2e-3, "batch_size": 4, "num_epochs": 3, "threads": 1,
           "save_strategy": "epoch", "output_dir": "$tmp/rm"}}
EOF
"$bin" train --config "$tmp/rm.json" >"$tmp/rm.log" 2>&1 || { cat "$tmp/rm.log"; fail "reward model run"; }
cat >"$tmp/rloo.json" <<EOF
{"model": {"model": "$tmp/sft/last", "task": "rloo", "reward_model": "$tmp/model",
           "reward_adapter": "$tmp/rm/last"},
 "data": {"train_file": "$tmp/pairs.jsonl", "max_prompt_length": 24, "holdout_examples": 8},
 "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj", "o_proj", "up_proj"]},
 "train": {"learning_rate": 1e-2, "batch_size": 4, "num_generations": 4,
           "max_completion_length": 16, "max_steps": 20, "logging_steps": 1, "threads": 1,
           "eval_strategy": "steps", "eval_steps": 10, "metric_for_best": "reward",
           "save_strategy": "steps", "save_steps": 20, "output_dir": "$tmp/rloo"}}
EOF

# 1. the log, and the reward rising
"$bin" train --config "$tmp/rloo.json" >"$tmp/rloo.log" 2>&1 || { cat "$tmp/rloo.log"; fail "rloo run"; }
grep -q "data: $tmp/pairs.jsonl less the held-out pairs: 32 prompts" "$tmp/rloo.log" && ok ||
  bad "32 training prompts"
python3 - "$tmp/rloo/metrics.jsonl" <<'EOF' && ok || bad "the held-out reward rises"
import json, sys
evals = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "eval"]
assert [e["step"] for e in evals] == [0, 10, 20], evals
before, after = evals[0]["eval_reward"], max(e["eval_reward"] for e in evals[1:])
print(f"rloo: held-out reward {before:.4f} before -> {after:.4f} at the best evaluation")
assert after > before + 0.5 and all(1 <= e["eval_completion_length"] <= 16 for e in evals), evals
EOF
python3 - "$tmp/rloo/metrics.jsonl" <<'EOF' && ok || bad "RLOO's log: KL 0 at step 1, the reward rises"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
assert len(steps) == 20, len(steps)
for e in steps:
    assert {"reward", "reward_std", "kl", "completion_length", "clipped_ratio"} <= e.keys(), e
    assert 1 <= e["completion_length"] <= 16 and 0 <= e["clipped_ratio"] <= 1, e
assert abs(steps[0]["kl"]) < 1e-6, steps[0]
first = sum(e["reward"] for e in steps[:4]) / 4
last = sum(e["reward"] for e in steps[-4:]) / 4
print(f"rloo: mean reward {first:.4f} over the first 4 steps -> {last:.4f} over the last 4; "
      f"kl at step 20 {steps[-1]['kl']:.4f}")
assert last > first + 0.5, (first, last)
EOF
"$bin" generate --model "$tmp/sft/last" --adapter "$tmp/rloo/last" --max-new-tokens 16 \
  "Human: Can you tell me about my cat?

Assistant:" >"$tmp/gen.out" 2>"$tmp/gen.err" || { cat "$tmp/gen.err"; fail "loraft generate"; }
echo "greedy answer after RLOO: $(cat "$tmp/gen.out")"
grep -Eq "help|Certainly|Of course" "$tmp/gen.out" && ! grep -Eq "yourself|Stop|care" "$tmp/gen.out" &&
  ok || bad "a polite greedy answer"

# 2. a resumed run samples the same completions: 3 steps, then --resume to 6, gives the adapter
#    of 6 steps in one run to the bit (a constant learning rate: the same in both)
resume_run() { # OUT STEPS [--resume DIR]
  local out=$1 steps=$2; shift 2
  "$bin" train --config "$tmp/rloo.json" --set train.lr_scheduler=constant \
    --set train.max_steps="$steps" --set train.save_steps=3 --set train.output_dir="$out" "$@" \
    >"$out.log" 2>&1 || { cat "$out.log"; fail "rloo run of $steps steps into $out"; }
}
resume_run "$tmp/six" 6
resume_run "$tmp/half" 3
resume_run "$tmp/half" 6 --resume "$tmp/half/last"
cmp -s "$tmp/six/last/adapter_model.safetensors" "$tmp/half/last/adapter_model.safetensors" &&
  ok || bad "3 steps resumed to 6 = 6 steps"
python3 -c "import json,sys; assert json.load(open(sys.argv[1]))['task_type'] == 'CAUSAL_LM'" \
  "$tmp/rloo/last/adapter_config.json" && ok || bad "a CAUSAL_LM adapter"

# 3. refusals
refused() {
  local what=$1 msg=$2; shift 2
  if "$bin" "$@" >"$tmp/r.log" 2>&1; then bad "$what: accepted"; return; fi
  grep -q -- "$msg" "$tmp/r.log" && ok || { bad "$what: message"; cat "$tmp/r.log"; }
}
refused none "needs model.reward_model" train --config "$tmp/rloo.json" \
  --set model.reward_model= --set train.output_dir="$tmp/x1"
refused policy "is not a reward model" train --config "$tmp/rloo.json" \
  --set model.reward_adapter= --set train.output_dir="$tmp/x2"
refused metric "set train.metric_for_best reward" train --config "$tmp/rloo.json" \
  --set train.metric_for_best=eval_loss --set train.output_dir="$tmp/x3"
printf '{"prompt": "Human: Hi\\n\\nAssistant:"}\n{"prompt": ""}\n' >"$tmp/empty.jsonl"
refused empty "record 2: an empty prompt" train --config "$tmp/rloo.json" \
  --set data.train_file="$tmp/empty.jsonl" --set data.holdout_examples=0 \
  --set train.output_dir="$tmp/x6"
refused rows "at most 1024 rows" train --config "$tmp/rloo.json" \
  --set train.num_generations=512 --set train.output_dir="$tmp/x4"
refused full "rloo needs lora.strategy lora or tokens" train --config "$tmp/rloo.json" \
  --set lora.strategy=full --set train.output_dir="$tmp/x5"

# 4. GRPO on the same policy, reward model and prompts
"$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.output_dir="$tmp/grpo" \
  >"$tmp/grpo.log" 2>&1 || { cat "$tmp/grpo.log"; fail "grpo run"; }
python3 - "$tmp/grpo/metrics.jsonl" <<'EOF' && ok || bad "GRPO: the reward rises, no KL logged"
import json, sys
log = list(map(json.loads, open(sys.argv[1])))
evals = [e for e in log if e["event"] == "eval"]
steps = [e for e in log if e["event"] == "train"]
assert len(steps) == 20 and all("kl" not in e and "reward_std" in e for e in steps), steps[0]
before, after = evals[0]["eval_reward"], max(e["eval_reward"] for e in evals[1:])
first = sum(e["reward"] for e in steps[:4]) / 4
last = sum(e["reward"] for e in steps[-4:]) / 4
print(f"grpo: held-out reward {before:.4f} before -> {after:.4f} at the best evaluation; "
      f"training reward {first:.4f} (first 4 steps) -> {last:.4f} (last 4)")
assert after > before + 0.5 and last > first + 0.5, (before, after, first, last)
EOF
lora_b_zero() { # ADAPTER_DIR: whether every lora_B of its safetensors is 0
  python3 - "$1/adapter_model.safetensors" <<'EOF'
import json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n])
bs = [v for k, v in head.items() if "lora_B" in k]
vals = [x for v in bs for x in struct.unpack("<%df" % ((v["data_offsets"][1] - v["data_offsets"][0]) // 4),
        raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])]
sys.exit(0 if bs and not any(vals) else 1)
EOF
}
cut_run() { # OUT [--set ...]: 3 steps, every completion cut at 2 tokens
  local out=$1; shift
  "$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.max_steps=3 \
    --set train.max_completion_length=2 --set train.eval_strategy=no --set train.save_steps=3 \
    --set train.output_dir="$out" "$@" >"$out.log" 2>&1 || { cat "$out.log"; fail "grpo run into $out"; }
  grep -cE "\(([0-9]+) of \1 cut at max_completion_length\)" "$out.log" | grep -qx 3 ||
    bad "$out: not every completion cut"
}
cut_run "$tmp/masked" --set train.mask_truncated_completions=true
cut_run "$tmp/unmasked"
lora_b_zero "$tmp/masked/last" && ! lora_b_zero "$tmp/unmasked/last" && ok ||
  bad "mask_truncated_completions: cut completions train nothing"
three_steps() { # OUT [--set ...]: 3 GRPO steps, saved
  local out=$1; shift
  "$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.max_steps=3 \
    --set train.eval_strategy=no --set train.save_steps=3 --set train.output_dir="$out" "$@" \
    >"$out.log" 2>&1 || { cat "$out.log"; fail "grpo run into $out"; }
}
three_steps "$tmp/top1" --set train.top_k=1
three_steps "$tmp/minp1" --set train.min_p=1 --set train.temperature=2
three_steps "$tmp/rep" --set train.top_k=1 --set train.repetition_penalty=1e6
lora_b_zero "$tmp/top1/last" && lora_b_zero "$tmp/minp1/last" && ok ||
  bad "top_k 1, min_p 1: a group's completions alike train nothing"
three_steps "$tmp/hot" --set train.temperature=50 --set train.top_p=0.999
python3 - "$tmp/top1/metrics.jsonl" "$tmp/hot/metrics.jsonl" "$tmp/rep/metrics.jsonl" <<'EOF' && ok ||
import json, sys
top1, hot, rep = ([e for e in map(json.loads, open(f)) if e["event"] == "train"] for f in sys.argv[1:])
for name, log in (("top_k 1", top1), ("temperature 50", hot), ("top_k 1, repetition_penalty 1e6", rep)):
    print(f"grpo, {name}: completions cut " + " ".join("%.2f" % e["clipped_ratio"] for e in log)
          + ", of " + " ".join("%.2f" % e["completion_length"] for e in log) + " tokens")
mean = lambda log: sum(e["clipped_ratio"] for e in log) / len(log)
assert len(hot) == 3 and mean(hot) >= 0.9 and mean(top1) < 0.4, (mean(hot), mean(top1))
print("grpo, frac_reward_zero_std: top_k 1 " + " ".join("%.2f" % e["frac_reward_zero_std"] for e in top1)
      + ", temperature 50 " + " ".join("%.2f" % e["frac_reward_zero_std"] for e in hot))
assert all(e["frac_reward_zero_std"] == 1 for e in top1)  # a group's completions alike
assert all(e["frac_reward_zero_std"] < 1 for e in hot)
assert [e["completion_length"] for e in rep] != [e["completion_length"] for e in top1]
EOF
  bad "temperature 50: nearly every completion cut; a repetition penalty: other completions"
"$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.grpo_beta=0.1 \
  --set train.max_steps=6 --set train.eval_strategy=no --set train.save_steps=6 \
  --set train.output_dir="$tmp/grpo-kl" >"$tmp/grpo-kl.log" 2>&1 ||
  { cat "$tmp/grpo-kl.log"; fail "grpo run with a KL penalty"; }
python3 - "$tmp/grpo-kl/metrics.jsonl" <<'EOF' && ok || bad "GRPO's KL: 0 at step 1, then above 0"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
print("grpo, beta 0.1: kl by step " + " ".join("%.4f" % e["kl"] for e in steps))
assert len(steps) == 6 and abs(steps[0]["kl"]) < 1e-6 and all(e["kl"] > 0 for e in steps[1:])
EOF
refused grpo-full "grpo needs lora.strategy lora or tokens" train --config "$tmp/rloo.json" \
  --set model.task=grpo --set lora.strategy=full --set train.output_dir="$tmp/x7"

# 5. GRPO's num_iterations: each generation trained on 3 steps, its ratio clipped
iter_run() { # OUT STEPS [--resume DIR]
  local out=$1 steps=$2; shift 2
  "$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.num_iterations=3 \
    --set train.gradient_accumulation_steps=2 --set train.epsilon=0.01 \
    --set train.lr_scheduler=constant --set train.max_steps="$steps" --set train.eval_strategy=no \
    --set train.save_steps=3 --set train.output_dir="$out" "$@" >>"$out.log" 2>&1 ||
    { cat "$out.log"; fail "grpo num_iterations run of $steps steps into $out"; }
}
iter_run "$tmp/iter" 6
grep -q "training: 6 optimizer steps (12 per epoch" "$tmp/iter.log" && ok ||
  bad "num_iterations 3: 12 steps an epoch of 4 windows"
python3 - "$tmp/iter/metrics.jsonl" <<'EOF' && ok || bad "num_iterations 3: a generation every 3 steps, clipped tokens"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
print("grpo, num_iterations 3: tokens clipped by step " + " ".join(
    "%.3f/%.3f" % (e["clip_ratio/low_mean"], e["clip_ratio/high_mean"]) for e in steps))
assert [("reward" in e) for e in steps] == [True, False, False, True, False, False], steps
region = [e["clip_ratio/region_mean"] for e in steps]
assert region[0] == 0 and region[3] == 0 and max(region[1:3] + region[4:]) > 0, region
EOF
iter_run "$tmp/iter-half" 3
iter_run "$tmp/iter-half" 6 --resume "$tmp/iter-half/last"
cmp -s "$tmp/iter/last/adapter_model.safetensors" "$tmp/iter-half/last/adapter_model.safetensors" &&
  ok || bad "num_iterations 3: 3 steps resumed to 6 = 6 steps"
iter_run "$tmp/iter-mid" 2 --set train.save_steps=2 --set train.eval_strategy=steps \
  --set train.eval_steps=2 # the checkpoint has a best reward, which the resume reads
iter_run "$tmp/iter-mid" 4 --set train.save_steps=2 --set train.eval_strategy=steps \
  --set train.eval_steps=2 --resume "$tmp/iter-mid/last"
python3 - "$tmp/iter-mid/metrics.jsonl" <<'EOF' && ok || bad "num_iterations 3: a resume inside a generation samples anew"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
assert [(e["step"], "reward" in e) for e in steps] == [(1, True), (2, False), (3, True), (4, True)], steps
EOF
iter_run "$tmp/iter-kl" 3 --set train.grpo_beta=0.1
python3 - "$tmp/iter-kl/metrics.jsonl" <<'EOF' && ok || bad "num_iterations 3 with a KL: the kept reference's"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
print("grpo, num_iterations 3, beta 0.1: kl by step " + " ".join("%.4f" % e["kl"] for e in steps))
assert abs(steps[0]["kl"]) < 1e-6 and all(0 < e["kl"] < 0.1 for e in steps[1:]), steps
EOF
iter_run "$tmp/opsm-none" 3 --set train.grpo_beta=0.1 --set train.off_policy_mask_threshold=1e9
iter_run "$tmp/opsm" 3 --set train.grpo_beta=0.1 --set train.off_policy_mask_threshold=1e-6
cmp -s "$tmp/iter-kl/last/adapter_model.safetensors" "$tmp/opsm-none/last/adapter_model.safetensors" &&
  ! cmp -s "$tmp/iter-kl/last/adapter_model.safetensors" "$tmp/opsm/last/adapter_model.safetensors" &&
  ok || bad "the off-policy mask: a threshold none reaches changes nothing, a tiny one does"
iter_run "$tmp/gspo" 3 --set train.importance_sampling_level=sequence --set train.epsilon=0.001
python3 - "$tmp/gspo/metrics.jsonl" <<'EOF' && ok || bad "GSPO: completions clipped, as a whole"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
rows = 2 * 4 * 4  # gradient_accumulation_steps x batch_size prompts x num_generations
clipped = [e["clip_ratio/region_mean"] * rows for e in steps]
print("gspo, num_iterations 3: completions clipped by step " + " ".join("%g" % c for c in clipped))
assert clipped[0] == 0 and clipped[1] > 0 and all(abs(c - round(c)) < 1e-9 for c in clipped)
EOF
grep -q "step 2: the last generation again, completions clipped" "$tmp/gspo.log" && ok ||
  bad "GSPO: the log counts completions"
iter_run "$tmp/luspo" 3 --set train.importance_sampling_level=sequence --set train.epsilon=0.001 \
  --set train.grpo_loss_type=luspo --set train.grpo_beta=0.1 --set train.use_bias_correction_kl=false
python3 - "$tmp/luspo/metrics.jsonl" <<'EOF' && ok || bad "LUSPO with the plain KL: completions clipped, the KL after step 1"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
rows = 2 * 4 * 4
clipped = [e["clip_ratio/region_mean"] * rows for e in steps]
print("luspo, num_iterations 3, plain KL: completions clipped by step " + " ".join("%g" % c for c in clipped)
      + "; kl " + " ".join("%.4f" % e["kl"] for e in steps))
assert clipped[0] == 0 and clipped[1] > 0 and abs(steps[0]["kl"]) < 1e-6 < steps[1]["kl"], steps
EOF
iter_run "$tmp/cispo" 3 --set train.grpo_loss_type=cispo --set train.epsilon_high=1.001
iter_run "$tmp/sapo" 3 --set train.grpo_loss_type=sapo
iter_run "$tmp/vespo" 3 --set train.grpo_loss_type=vespo
python3 - "$tmp/cispo/metrics.jsonl" "$tmp/sapo/metrics.jsonl" "$tmp/vespo/metrics.jsonl" <<'EOF' && ok || bad "cispo: tokens capped; sapo, vespo: none clipped"
import json, sys
cispo, sapo, vespo = ([e for e in map(json.loads, open(f)) if e["event"] == "train"] for f in sys.argv[1:])
print("grpo cispo, num_iterations 3: tokens capped by step " + " ".join("%.3f" % e["cispo_clip_ratio"] for e in cispo))
assert cispo[0]["cispo_clip_ratio"] == 0 and max(e["cispo_clip_ratio"] for e in cispo[1:]) > 0
assert all("clip_ratio/region_mean" not in e and "cispo_clip_ratio" not in e for e in sapo + vespo)
assert len(vespo) == 3, vespo
EOF
refused vespo-sequence "importance_sampling_level must be token" train --config "$tmp/rloo.json" \
  --set model.task=grpo --set train.grpo_loss_type=vespo \
  --set train.importance_sampling_level=sequence --set train.output_dir="$tmp/x8"
grep -q "step 2: the last generation again, tokens capped" "$tmp/cispo.log" && ok || bad "cispo: the log counts tokens capped"
iter_run "$tmp/rloo-iter" 4 --set model.task=rloo --set train.num_iterations=2 \
  --set train.normalize_advantages=true --set train.epsilon=0.05
python3 - "$tmp/rloo-iter/metrics.jsonl" <<'EOF' && ok || bad "RLOO, num_iterations 2: completions clipped on a generation's second step"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
rows = 2 * 4 * 4  # gradient_accumulation_steps x batch_size prompts x num_generations
clipped = [e["clip_ratio/region_mean"] * rows for e in steps]
print("rloo, num_iterations 2: completions clipped by step " + " ".join("%g" % c for c in clipped)
      + "; kl by step " + " ".join("%.4f" % e["kl"] for e in steps))
assert [("reward" in e) for e in steps] == [True, False, True, False], steps
assert clipped[0] == 0 and clipped[2] == 0 and clipped[1] + clipped[3] > 0, clipped
assert all(abs(c - round(c)) < 1e-9 for c in clipped), clipped
assert abs(steps[0]["kl"]) < 1e-6 and abs(steps[2]["kl"]) > 1e-4, steps
EOF
grep -q "step 2: the last generation again, kl [-0-9.]*, completions clipped" "$tmp/rloo-iter.log" &&
  ok || bad "RLOO, num_iterations 2: the log counts completions"

# 6. reward functions
cat >"$tmp/score.py" <<'EOF'
import json, sys
log, mode = open(sys.argv[1], "a"), sys.argv[2]  # polite | odd-null | null | short
polite = ("Of course", "Certainly", "Thank", "glad", "happy", "help")  # hh_pairs.py's answers'
rude = ("No.", "Figure", "yourself", "Stop", "do not care")
for line in sys.stdin:
    req = json.loads(line)
    texts, ids = req["completions"], req["completion_ids"]
    n = len(texts)
    assert len(req["prompts"]) == n == len(ids) == len(req["chosen"]) == len(req["rejected"])
    assert all(p.startswith("Human:") for p in req["prompts"]), req["prompts"]
    out = [float(sum(w in t for w in polite) - sum(w in t for w in rude)) for t in texts]
    if mode == "odd-null":
        out = [None if len(i) % 2 else r for r, i in zip(out, ids)]
    out = [None] * n if mode == "null" else out[:-1] if mode == "short" else out
    log.write(json.dumps({"ids": ids, "rewards": out}) + "\n")
    log.flush()
    print(json.dumps(out), flush=True)
EOF
"$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.reward_funcs=command \
  --set train.reward_command="python3 $tmp/score.py $tmp/polite.requests polite" \
  --set train.output_dir="$tmp/polite" >"$tmp/polite.log" 2>&1 ||
  { cat "$tmp/polite.log"; fail "grpo run on a program's rewards"; }
python3 - "$tmp/polite/metrics.jsonl" "$tmp/polite.log" <<'EOF' && ok || bad "GRPO on a program's rewards: the held-out reward rises"
import json, sys
log = list(map(json.loads, open(sys.argv[1])))
evals = [e["eval_reward"] for e in log if e["event"] == "eval"]
print(f"grpo, command rewards: held-out reward {evals[0]:.4f} before -> {max(evals[1:]):.4f}")
assert max(evals[1:]) >= evals[0] + 0.5, evals
assert "model.reward_model is not used" in open(sys.argv[2]).read()
EOF
funcs_run() { # OUT MODE [--set ...]: 3 GRPO steps on the model, repetition and the program
  local out=$1 mode=$2; shift 2
  "$bin" train --config "$tmp/rloo.json" --set model.task=grpo --set train.max_steps=3 \
    --set train.eval_strategy=no --set train.save_steps=3 --set train.output_dir="$out" \
    --set train.reward_funcs=model,repetition_penalty_reward,command \
    --set train.reward_weights=1,2,0.5 --set train.repetition_ngram_size=1 \
    --set train.reward_command="python3 $tmp/score.py $out.requests $mode" "$@" \
    >"$out.log" 2>&1 || { cat "$out.log"; fail "grpo run with reward functions into $out"; }
}
funcs_run "$tmp/funcs" odd-null
python3 - "$tmp/funcs/metrics.jsonl" "$tmp/funcs.requests" <<'EOF' && ok || bad "reward functions: each one's mean, their weighted sum"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
reqs = list(map(json.loads, open(sys.argv[2])))
assert len(steps) == len(reqs) == 3, (len(steps), len(reqs))
def repetition(ids, n=1, most=-1.0):  # TRL's get_repetition_penalty_reward
    if len(ids) < n:
        return 0.0
    grams = list(zip(*[ids[i:] for i in range(n)]))
    return (1 - len(set(grams)) / len(grams)) * most
repeats = False  # some completion repeats a token
for e, q in zip(steps, reqs):
    rep = [repetition(i) for i in q["ids"]]
    repeats = repeats or any(rep)
    cmd = [r for r in q["rewards"] if r is not None]
    assert 0 < len(cmd) < len(q["rewards"]), q["rewards"]  # some completions odd, some even
    assert abs(e["rewards/repetition_penalty_reward/mean"] - sum(rep) / len(rep)) < 1e-6, (e, rep)
    assert abs(e["rewards/command/mean"] - sum(cmd) / len(cmd)) < 1e-6, (e, cmd)
    total = e["rewards/model/mean"] + 2 * sum(rep) / len(rep) + 0.5 * sum(cmd) / len(rep)
    assert abs(e["reward"] - total) < 1e-5, (e["reward"], total)
    assert "frac_unscored" not in e
assert repeats
print("reward functions: step 1 reward %.4f = model %.4f + 2 x repetition %.4f + 0.5 x command %.4f"
      % (steps[0]["reward"], steps[0]["rewards/model/mean"],
         steps[0]["rewards/repetition_penalty_reward/mean"], steps[0]["rewards/command/mean"]))
EOF
grep -qE "step 1: reward [-0-9.]+ \(std [0-9.]+\) \(model [-0-9.]+, repetition_penalty_reward [-0-9.]+, command [-0-9.]+\)" \
  "$tmp/funcs.log" && ok || bad "reward functions: the log line gives each one's mean"
# scripts/reward-server.py serves a function written for TRL (its keyword arguments, the records'
# fields among them) as the program
cat >"$tmp/my_rewards.py" <<'EOF'
def length(prompts, completions, completion_ids, chosen, **kwargs):
    assert len(prompts) == len(completions) == len(completion_ids) == len(chosen)
    return [None if len(i) % 2 else len(c) / 10 for c, i in zip(completions, completion_ids)]
EOF
three_steps "$tmp/served" --set train.reward_funcs=command \
  --set train.reward_command="python3 scripts/reward-server.py $tmp/my_rewards.py:length"
python3 - "$tmp/served/metrics.jsonl" <<'EOF' && ok || bad "reward-server.py serves a TRL-style function"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
assert len(steps) == 3 and all(e["rewards/command/mean"] > 0 for e in steps), steps
assert all(0 < e.get("frac_unscored", 0) < 1 for e in steps[:1]), steps
EOF
funcs_run "$tmp/gdpo" odd-null --set train.multi_objective_aggregation=normalize_then_sum
funcs_run "$tmp/funcs-rloo" odd-null --set model.task=rloo
grep -q "step 3: reward" "$tmp/gdpo.log" && grep -q "step 3: reward" "$tmp/funcs-rloo.log" && ok ||
  bad "normalize_then_sum and RLOO on several reward functions"
three_steps "$tmp/unscored" --set train.reward_funcs=command \
  --set train.reward_command="python3 $tmp/score.py $tmp/unscored.requests null"
python3 - "$tmp/unscored/metrics.jsonl" <<'EOF' && lora_b_zero "$tmp/unscored/last" && ok || bad "a program that scores nothing trains nothing"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
assert [e["frac_unscored"] for e in steps] == [1, 1, 1], steps
EOF
three_steps "$tmp/think" --set train.reward_funcs=think_format_reward --set model.reward_model= \
  --set model.reward_adapter=
python3 - "$tmp/think/metrics.jsonl" <<'EOF' && ok || bad "think_format_reward alone, no reward model"
import json, sys
steps = [e for e in map(json.loads, open(sys.argv[1])) if e["event"] == "train"]
assert [e["rewards/think_format_reward/mean"] for e in steps] == [0, 0, 0], steps
assert [e["frac_reward_zero_std"] for e in steps] == [1, 1, 1], steps
EOF
refused command-exit "exited with status 3" train --config "$tmp/rloo.json" --set model.task=grpo \
  --set train.reward_funcs=command --set train.reward_command="exit 3" --set train.output_dir="$tmp/x9"
refused command-short "its reply has [0-9]* rewards for [0-9]* completions" train --config "$tmp/rloo.json" --set model.task=grpo \
  --set train.reward_funcs=command --set train.output_dir="$tmp/x10" \
  --set train.reward_command="python3 $tmp/score.py $tmp/short.requests short"
refused overlong "needs train.soft_punish_cache" train --config "$tmp/rloo.json" \
  --set model.task=grpo --set train.reward_funcs=soft_overlong_punishment_reward \
  --set train.output_dir="$tmp/x11"

# 7. the policy's entropy: logged; GRPO's entropy mask, bonus and its adaptive control
three_steps "$tmp/ent"
three_steps "$tmp/ent-mask" --set train.top_entropy_quantile=0.2 --set train.entropy_coef=0.01
three_steps "$tmp/ent-up" --set train.use_adaptive_entropy=true --set train.entropy_coef=0.01 \
  --set train.entropy_target=100
three_steps "$tmp/ent-down" --set train.use_adaptive_entropy=true --set train.entropy_coef=0.01 \
  --set train.entropy_target=0
python3 - "$tmp" <<'EOF' && ok || bad "entropy logged; the mask trains otherwise; adaptive control"
import json, math, sys
def steps(name):
    return [e for e in map(json.loads, open(sys.argv[1] + "/" + name + "/metrics.jsonl"))
            if e["event"] == "train"]
plain, masked, up, down = steps("ent"), steps("ent-mask"), steps("ent-up"), steps("ent-down")
print("grpo: entropy by step " + " ".join("%.4f" % e["entropy"] for e in plain))
assert all(0 < e["entropy"] < math.log(50257) for e in plain), plain
assert masked[0]["entropy"] == plain[0]["entropy"], "step 1 samples alike: the same entropy"
# the coefficient after each step: up by 0.005 below the target, down to the floor above it
assert [round(e["entropy_coef"], 6) for e in up] == [0.015, 0.02, 0.025], up
assert [round(e["entropy_coef"], 6) for e in down] == [0.005, 0, 0], down
assert "entropy_coef" not in plain[0]
EOF
! cmp -s "$tmp/ent/last/adapter_model.safetensors" "$tmp/ent-mask/last/adapter_model.safetensors" &&
  ok || bad "the entropy mask and bonus train something else"
grep -q "step 1: reward .*, entropy [0-9.]*, completions of" "$tmp/ent.log" && ok ||
  bad "the log line shows the entropy"
refused rloo-entropy "are GRPO's" train --config "$tmp/rloo.json" --set train.entropy_coef=0.1 \
  --set train.output_dir="$tmp/x12"
finish
