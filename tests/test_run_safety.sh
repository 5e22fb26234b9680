#!/usr/bin/env bash
# The run directory and the state files as a careless or hostile user meets them: the lock,
# --overwrite, nothing written by a rejected run, many labels, validated adapter_config.json
# and trainer_state.json, non-finite and exploding evaluations, runs without evaluation,
# and the messages that name checkpoints.
. "$(dirname "$0")/cli_common.sh" safety bert-base-uncased
# expect_fail LOG PATTERN CMD...: CMD must exit non-zero and print PATTERN.
expect_fail() {
  local log=$1 pattern=$2
  shift 2
  if "$@" >"$log" 2>&1; then cat "$log"; fail "accepted: $*"; fi
  grep -qE -- "$pattern" "$log" || { cat "$log"; fail "no '$pattern' for: $*"; }
}

for i in $(seq 0 31); do
  word=$([ $((i % 2)) = 1 ] && echo great || echo awful)
  echo "{\"text\": \"the film was $word, take $i\", \"label\": $((i % 2))}"
done >"$tmp/train.jsonl"
head -8 "$tmp/train.jsonl" >"$tmp/val.jsonl"
"$bin" init --arch distilbert --layers 1 --hidden 32 --heads 4 --ffn 64 --max-positions 64 \
  --vocab-from "$vocab" --seed 1 --out "$tmp/model" >/dev/null
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/val.jsonl", "max_length": 16},
 "lora": {"r": 2, "target_modules": ["q_lin"]},
 "train": {"learning_rate": 3e-3, "batch_size": 8, "num_epochs": 1, "logging_steps": 0,
           "output_dir": "$tmp/run"}}
EOF
train() { "$bin" train --config "$tmp/cfg.json" "$@"; }
eval_() { "$bin" eval --config "$tmp/cfg.json" "$@"; }
train >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "first run"; }

# 1. a fresh run into a used directory refuses; --overwrite starts again, sparing other files
expect_fail "$tmp/o" "run is not empty .*--overwrite.*--resume $tmp/run/last" train; ok
echo mine >"$tmp/run/notes.txt"
train --overwrite >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "--overwrite"; }
[ "$(cat "$tmp/run/notes.txt")" = mine ] || fail "--overwrite removed a user file"
[ "$(grep -c '"event":"eval"' "$tmp/run/metrics.jsonl")" = 2 ] || fail "log not started anew"
expect_fail "$tmp/o" "exclude each other" train --overwrite --resume "$tmp/run/last"; ok

# 2. the lock: a second run refuses and names the pid holding the directory
exec 9>>"$tmp/run/.lock"
flock 9
echo 4242 >"$tmp/run/.lock"
expect_fail "$tmp/o" "in use by another loraft run \(pid 4242\)" train --resume "$tmp/run/last"
exec 9>&-
train --resume "$tmp/run/last" >"$tmp/log" 2>&1 || { cat "$tmp/log"; fail "run after unlock"; }; ok

# 3. a run rejected at validation writes nothing, in a new or a used directory
expect_fail "$tmp/o" "nope.jsonl" train --set data.train_file="$tmp/nope.jsonl" \
  --set train.output_dir="$tmp/new"
[ ! -e "$tmp/new" ] || fail "a rejected run created its output_dir"
cp "$tmp/run/train_config.json" "$tmp/saved_config.json"
expect_fail "$tmp/o" "nope.jsonl" train --overwrite --set data.train_file="$tmp/nope.jsonl"
cmp -s "$tmp/saved_config.json" "$tmp/run/train_config.json" || fail "rejected run wrote its config"
[ -e "$tmp/run/last/adapter_model.safetensors" ] || fail "rejected --overwrite removed the run"; ok

# 4. many labels: a 100-class model trains, evaluates and predicts; beyond 4096 the key is named
"$bin" init --arch distilbert --layers 1 --hidden 32 --heads 4 --ffn 64 --max-positions 64 \
  --num-labels 100 --vocab-from "$vocab" --seed 1 --out "$tmp/model100" >/dev/null
k100=(--set model.model="$tmp/model100" --set model.num_labels=100)
train "${k100[@]}" --set train.output_dir="$tmp/k100" >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; fail "100 labels"; }
eval_ "${k100[@]}" --adapter "$tmp/k100/best" >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; fail "eval with 100 labels"; }
"$bin" predict --model "$tmp/model100" --adapter "$tmp/k100/best" "a great film" | grep -qE "^LABEL_" \
  || fail "predict with 100 labels"
expect_fail "$tmp/o" "model.num_labels: 100000 is out of range" train --set model.num_labels=100000
expect_fail "$tmp/o" "model.num_labels: 100000 is out of range" eval_ --set model.num_labels=100000
expect_fail "$tmp/o" "lora.r: 5000 is out of range \(allowed: \[1, 4096\]\)" train --set lora.r=5000
ok

# 5. adapter_config.json: every bad value is an error naming the file and the key
bad_adapter() { # KEY VALUE PATTERN
  rm -rf "$tmp/bad" && cp -rL "$tmp/run/best" "$tmp/bad"
  sed -i "s/\"$1\":[^,]*,/\"$1\": $2,/" "$tmp/bad/adapter_config.json"
  expect_fail "$tmp/o" "bad/adapter_config.json: key '$1'.*$3" eval_ --adapter "$tmp/bad"
}
bad_adapter lora_alpha -8 "out of range"
bad_adapter lora_alpha 1e300 "out of range"
bad_adapter lora_dropout 2.0 "out of range"
bad_adapter r 4.7 "must be an integer"
bad_adapter r 5000 "out of range \(1..4096\)"
bad_adapter use_rslora 1 "true or false"; ok

# 6. trainer_state.json: bad counts, an unknown metric_for_best, another one
bad_state() { # KEY VALUE PATTERN [train options]
  local key=$1 value=$2 pattern=$3
  shift 3
  rm -rf "$tmp/st" && cp -rL "$tmp/run/last" "$tmp/st"
  sed -i "s/\"$key\":[^,]*,/\"$key\": $value,/" "$tmp/st/trainer_state.json"
  expect_fail "$tmp/o" "$pattern" train --resume "$tmp/st" "$@"
}
bad_state global_step 1e12 "st/trainer_state.json: key 'global_step' = 1000000000000 is out of range"
bad_state global_step -5 "key 'global_step' = -5 is out of range"
bad_state epoch 0.5 "key 'epoch' must be an integer"
bad_state best_checkpoint '"..\/x"' "key 'best_checkpoint' must be"
bad_state best_metric '"low"' "key 'best_metric' must be a finite number"
bad_state metric_for_best '"eval"' \
  "key 'metric_for_best' must be one of eval_loss\\|accuracy\\|f1\\|reward" # a prefix of one
bad_state global_step 1 "chosen by eval_loss, but this run's train.metric_for_best is accuracy" \
  --set train.metric_for_best=accuracy; ok

# 7. non-finite weights: eval reports NaN and exits 1, predict refuses to name a label;
#    an exploding loss warns
set_tensor() { # ADAPTER_DIR TENSOR VALUE: every element of an F32 tensor becomes VALUE
  python3 - "$1/adapter_model.safetensors" "$2" "$3" <<'EOF'
import json, struct, sys
path, name, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
begin, end = json.loads(data[8:8 + n])[name]["data_offsets"]
base = 8 + n
data[base + begin:base + end] = struct.pack("<f", value) * ((end - begin) // 4)
open(path, "wb").write(data)
EOF
}
cls=base_model.model.classifier.weight
rm -rf "$tmp/nan" && cp -rL "$tmp/run/best" "$tmp/nan" && set_tensor "$tmp/nan" $cls nan
expect_fail "$tmp/o" "eval_loss is nan and 8 of 8 examples have NaN or infinite logits" \
  eval_ --adapter "$tmp/nan"
grep -q "eval: eval_loss nan" "$tmp/o" || fail "eval does not print the NaN loss"
expect_fail "$tmp/o" "output for \"a great film\" is NaN" \
  "$bin" predict --model "$tmp/model" --adapter "$tmp/nan" "a great film"
grep -qE "^LABEL_" "$tmp/o" && fail "predict printed a label for NaN"
rm -rf "$tmp/big" && cp -rL "$tmp/run/best" "$tmp/big" && set_tensor "$tmp/big" $cls 3e7
python3 - "$tmp/big/adapter_model.safetensors" <<'EOF'
import json, struct, sys  # make the two classes' rows differ so the loss is huge, not 0
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
n = struct.unpack("<Q", data[:8])[0]
begin, end = json.loads(data[8:8 + n])["base_model.model.classifier.weight"]["data_offsets"]
half = 8 + n + begin + (end - begin) // 2
data[half:8 + n + end] = struct.pack("<f", -3e7) * ((end - begin) // 8)
open(path, "wb").write(data)
EOF
eval_ --adapter "$tmp/big" >"$tmp/o" 2>&1 || { cat "$tmp/o"; fail "exploding eval"; }
grep -q "warning: eval_loss .* is above 10000" "$tmp/o" || { cat "$tmp/o"; fail "no warning"; }; ok

# 8. no validation file: training works, no best is claimed; eval says what is missing
train --set data.validation_file= --set train.output_dir="$tmp/noval" >"$tmp/log" 2>&1 \
  || { cat "$tmp/log"; fail "run without validation_file"; }
grep -q "done: .*last checkpoint in $tmp/noval/last" "$tmp/log" || fail "done line"
grep -qE "new best|/best" "$tmp/log" && { cat "$tmp/log"; fail "best claimed without evaluation"; }
[ ! -e "$tmp/noval/best" ] || fail "OUT/best without evaluation"
expect_fail "$tmp/o" "data.validation_file is empty" eval_ --set data.validation_file=
train --set train.eval_strategy=no --set train.output_dir="$tmp/noeval" >"$tmp/log" 2>&1 \
  || fail "eval_strategy no"
grep -qE "new best|/best" "$tmp/log" && { cat "$tmp/log"; fail "best claimed with eval_strategy no"; }; ok

# 9. a NaN before any save does not point at a checkpoint that does not exist
expect_fail "$tmp/o" "loss is (NaN|infinite).*stopped before any checkpoint was saved" \
  train --set train.learning_rate=1e38 --set train.max_grad_norm=0 --set train.num_epochs=3 \
  --set train.eval_strategy=no --set train.save_strategy=no --set train.output_dir="$tmp/nan_run"
ok

# 10. predict defaults to the model's 64 positions (a 512 default would not fit)
long=$(printf 'word %.0s' $(seq 1 200))
"$bin" predict --model "$tmp/model" --adapter "$tmp/run/best" "$long" >"$tmp/o" 2>&1 \
  || { cat "$tmp/o"; fail "predict with the default --max-length"; }; ok

finish
