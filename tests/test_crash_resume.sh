#!/usr/bin/env bash
# Durability: kill a training run at every durable step of its saves in turn
# (LORAFT_CRASH_AT=N: temp file creation, fsync, rename, symlink, removal; see crash_point in
# include/loraft/fileio.h). After each kill, OUT/last and OUT/best must be complete
# checkpoints that agree with last/trainer_state.json, and `--resume OUT/last` (or
# `--overwrite` when no checkpoint was committed yet) must end with exactly the weights of
# an uninterrupted run. The schedule covers a save before any evaluation, the first best,
# and a save that keeps an older best (so garbage collection runs).
set -euo pipefail
bin=${LORAFT_BIN:-build/loraft}
vocab=${LORAFT_SHARED_DATA:-../shared/data}/tokenizers/bert-base-uncased
[ -d "$vocab" ] || { echo "SKIP: $vocab is absent"; exit 77; }
# A kill (unlike a power cut) loses no written page, so tmpfs (no fsync cost) tests the
# same states much faster.
shm=/dev/shm; [ -w "$shm" ] || shm=/tmp
tmp=$(mktemp -d "$shm/loraft-crash-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

for i in $(seq 0 47); do
  word=$([ $((i % 2)) = 1 ] && echo great || echo awful)
  echo "{\"text\": \"the film was $word, take $i\", \"label\": $((i % 2))}"
done >"$tmp/train.jsonl"
head -16 "$tmp/train.jsonl" >"$tmp/val.jsonl"
"$bin" init --arch distilbert --layers 2 --hidden 32 --heads 4 --ffn 64 --vocab-from "$vocab" \
  --seed 3 --out "$tmp/model" >/dev/null
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/val.jsonl", "max_length": 16},
 "lora": {"r": 2, "dropout": 0.1, "target_modules": ["q_lin"]},
 "train": {"learning_rate": 3e-3, "batch_size": 8, "max_steps": 6, "logging_steps": 0,
           "lr_scheduler": "constant", "eval_strategy": "steps", "eval_steps": 4,
           "save_strategy": "steps", "save_steps": 2}}
EOF
train() { "$bin" train --config "$tmp/cfg.json" --set train.output_dir="$@"; }
field() { sed -n "s/.*\"$1\":[[:space:]]*\"\{0,1\}\([^\",]*\).*/\1/p" "$2"; }

train "$tmp/ref" >"$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log"; fail "uninterrupted run"; }

# OUT/last and OUT/best right after a kill: complete, loadable, in agreement.
check_state() {
  local out=$1
  if [ -L "$out/best" ] && [ ! -e "$out/best" ]; then fail "$out/best dangles"; fi
  [ -e "$out/last" ] || { [ ! -e "$out/best" ] || fail "$out/best without last"; return 0; }
  for f in adapter_config.json adapter_model.safetensors training_state.safetensors \
           trainer_state.json; do
    [ -s "$out/last/$f" ] || fail "$out/last/$f is missing or empty"
  done
  local best
  best=$(field best_checkpoint "$out/last/trainer_state.json")
  [ -n "$best" ] && [ -e "$out/$best/adapter_model.safetensors" ] || fail "best of last: '$best'"
  if [ -e "$out/best" ]; then
    [ "$(readlink -f "$out/best")" = "$(readlink -f "$out/$best")" ] \
      || fail "$out/best is not last's best ($best)"
    "$bin" eval --config "$tmp/cfg.json" --adapter "$out/best" >"$out.eval" 2>&1 \
      || { cat "$out.eval"; fail "$out/best does not load"; }
  fi
}

same_as_ref() {
  for f in last/adapter_model.safetensors last/training_state.safetensors \
           best/adapter_model.safetensors; do
    cmp -s "$1/$f" "$tmp/ref/$f" || fail "$1/$f differs from the uninterrupted run"
  done
}

# Kill points first, first + W, ... until a run gets past the last step: W workers share
# the points (the runs mostly wait for fsync). Writes "stop resumed restarted" to
# $tmp/count.first.
W=2
worker() {
  local n=$1 resumed=0 restarted=0 rc out
  while :; do
    out="$tmp/c$n"
    rc=0
    LORAFT_CRASH_AT=$n train "$out" >"$out.log" 2>&1 || rc=$?
    [ $rc = 0 ] && break
    [ $rc = 137 ] || { cat "$out.log"; fail "kill point $n: exit $rc, not SIGKILL"; }
    check_state "$out"
    if [ -e "$out/last" ]; then
      train "$out" --resume "$out/last" >"$out.log" 2>&1 && resumed=$((resumed + 1))
    else
      train "$out" --overwrite >"$out.log" 2>&1 && restarted=$((restarted + 1))
    fi || { cat "$out.log"; fail "run after kill point $n"; }
    same_as_ref "$out"
    rm -rf "$out"
    n=$((n + W))
  done
  echo "$n $resumed $restarted" >"$tmp/count.$1"
}
pids=()
for w in $(seq 1 $W); do worker "$w" & pids+=($!); done
for p in "${pids[@]}"; do wait "$p" || fail "a kill point failed (above)"; done
stop=1000000 resumed=0 restarted=0
for w in $(seq 1 $W); do
  read -r s r o <"$tmp/count.$w"
  stop=$((s < stop ? s : stop)) resumed=$((resumed + r)) restarted=$((restarted + o))
done
points=$((stop - 1))
[ $points = $((resumed + restarted)) ] || fail "kill points counted twice or skipped"
[ $points -gt 20 ] || fail "only $points kill points: the crash hook is not wired in"
echo "$points kill points: $resumed resumed from OUT/last, $restarted restarted" \
  "(killed before the first checkpoint), all equal to the uninterrupted run"
