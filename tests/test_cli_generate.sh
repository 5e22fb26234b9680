#!/usr/bin/env bash
# `loraft generate` end to end on a tiny seeded Llama (`loraft init --arch llama`, GQA 4 heads /
# 2 KV heads, the GPT-2 tokenizer): the same --seed gives the same continuation and another
# seed another; --temperature 0 is greedy (the seed does not matter), as is sampling with
# --top-k 1 or --min-p 1 (while --min-p 0.05 samples); --repetition-penalty 2 changes the greedy
# continuation, 1 does not; --max-new-tokens is
# respected; one continuation per prompt, nothing but the continuations on stdout; --batch (every
# prompt side by side) prints what the prompts one after another print, greedy and sampled (prompt
# i drawing with --seed + i, as it does alone with that seed); --chat with
# --template plain; a LoRA adapter from `loraft train` changes the continuation; and the errors
# (a missing model, a bad --top-p, --min-p or --repetition-penalty, an unknown --template, --chat
# on a model without a template).
set -uo pipefail
bin=${LORAFT_BIN:-build/loraft}
data=${LORAFT_SHARED_DATA:-../shared/data}
vocab=$data/tokenizers/gpt2
[ -d "$vocab" ] || { echo "SKIP: $vocab (the GPT-2 tokenizer of the tiny llama) is absent"; exit 77; }
tmp=$(mktemp -d /tmp/loraft-gen-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok: $1"; }
bad() { failed=$((failed + 1)); echo "FAIL: $1"; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; } # check NAME CONDITION

"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --seed 1 --out "$tmp/model" >/dev/null || { echo "FAIL: loraft init"; exit 1; }
gen() { "$bin" generate --model "$tmp/model" --device cpu "$@"; }

# 1. sampling: same seed, same text; another seed, another text
gen --temperature 1 --top-k 50 --seed 5 --max-new-tokens 12 "Once upon a time" >"$tmp/s5a" 2>"$tmp/err"
rc=$?
check "sampling runs" '[ $rc = 0 ] && [ -s "$tmp/s5a" ]'
gen --temperature 1 --top-k 50 --seed 5 --max-new-tokens 12 "Once upon a time" >"$tmp/s5b" 2>/dev/null
gen --temperature 1 --top-k 50 --seed 6 --max-new-tokens 12 "Once upon a time" >"$tmp/s6" 2>/dev/null
check "--seed 5 twice: the same continuation" 'cmp -s "$tmp/s5a" "$tmp/s5b"'
check "--seed 6: another continuation" '! cmp -s "$tmp/s5a" "$tmp/s6"'

# 2. greedy: deterministic, the seed does not matter; sampling with top-k 1 is greedy too
gen --temperature 0 --max-new-tokens 10 "The house" >"$tmp/g1" 2>/dev/null
gen --temperature 0 --seed 9 --max-new-tokens 10 "The house" >"$tmp/g2" 2>/dev/null
gen --temperature 0.7 --top-k 1 --seed 3 --max-new-tokens 10 "The house" >"$tmp/g3" 2>/dev/null
check "--temperature 0: the same continuation for any seed" 'cmp -s "$tmp/g1" "$tmp/g2"'
check "--top-k 1 sampling equals greedy" 'cmp -s "$tmp/g1" "$tmp/g3"'
gen --temperature 1.5 --min-p 1 --seed 4 --max-new-tokens 10 "The house" >"$tmp/g5" 2>/dev/null
gen --temperature 1.5 --min-p 0.05 --seed 4 --max-new-tokens 10 "The house" >"$tmp/g6" 2>/dev/null
check "--min-p 1 sampling equals greedy; --min-p 0.05 samples another" \
  'cmp -s "$tmp/g1" "$tmp/g5" && ! cmp -s "$tmp/g1" "$tmp/g6"'
gen --temperature 0 --repetition-penalty 1 --max-new-tokens 10 "The house" >"$tmp/g7" 2>/dev/null
gen --temperature 0 --repetition-penalty 2 --max-new-tokens 10 "The house" >"$tmp/g8" 2>/dev/null
check "--repetition-penalty 1 changes nothing; 2 another greedy continuation" \
  'cmp -s "$tmp/g1" "$tmp/g7" && ! cmp -s "$tmp/g1" "$tmp/g8"'
gen --no-cuda-graphs --temperature 0 --max-new-tokens 10 "The house" >"$tmp/g4" 2>/dev/null
check "--no-cuda-graphs (a CUDA switch): the same continuation" 'cmp -s "$tmp/g1" "$tmp/g4"'

# 2b. --batch: the same continuations side by side
prompts=("The house" "Once upon a time there was" "A" "The house")
gen --temperature 0 --max-new-tokens 10 "${prompts[@]}" >"$tmp/seq" 2>/dev/null
gen --batch --temperature 0 --max-new-tokens 10 "${prompts[@]}" >"$tmp/bat" 2>"$tmp/bat.err"
check "--batch, greedy: the continuations of the prompts one after another" \
  '[ "$(wc -l <"$tmp/bat")" = 4 ] && cmp -s "$tmp/seq" "$tmp/bat" && grep -q "4 prompts side by side" "$tmp/bat.err"'
gen --temperature 1 --top-k 50 --seed 5 --max-new-tokens 12 "${prompts[@]}" >"$tmp/seq" 2>/dev/null
gen --batch --temperature 1 --top-k 50 --seed 5 --max-new-tokens 12 "${prompts[@]}" >"$tmp/bat" 2>/dev/null
gen --temperature 1 --top-k 50 --seed 6 --max-new-tokens 12 "${prompts[1]}" >"$tmp/one" 2>/dev/null
check "--batch, sampled: the same; prompt 2 as alone with --seed 6" \
  'cmp -s "$tmp/seq" "$tmp/bat" && sed -n 2p "$tmp/bat" | cmp -s - "$tmp/one"'
check "--batch: the same prompt twice, another seed, another continuation" \
  '[ "$(sed -n 1p "$tmp/bat")" != "$(sed -n 4p "$tmp/bat")" ]'

# 3. --max-new-tokens, one continuation per prompt, only continuations on stdout
gen --max-new-tokens 7 "First prompt" "Second prompt" >"$tmp/two" 2>"$tmp/two.err"
check "two prompts: two continuations of 7 tokens each (stderr)" \
  '[ "$(grep -c " 7 new in " "$tmp/two.err")" = 2 ]'
check "the continuations end with a newline each" '[ "$(tail -c 1 "$tmp/two" | od -An -c | tr -d " ")" = "\n" ]'
check "nothing but the continuations on stdout" '! grep -q "loraft\|tokens/s" "$tmp/two"'
gen --max-new-tokens 1 "x" 2>"$tmp/one.err" >/dev/null
check "--max-new-tokens 1: one token" 'grep -q " 1 new in " "$tmp/one.err"'

# 4. --chat with a named template (GPT-2's files carry none)
gen --chat --template plain --system "Be brief." --max-new-tokens 5 "Hello" >"$tmp/chat" 2>"$tmp/chat.err"
rc=$?
check "--chat --template plain --system" '[ $rc = 0 ] && grep -q " new in " "$tmp/chat.err"'

# 5. a LoRA adapter trained for 4 steps changes the greedy continuation
python3 -c "
import random; random.seed(3)
w = ['the garden', 'the house', 'a letter', 'her friend', 'walked to', 'looked at']
print('\n\n'.join(' '.join(random.choice(w) for _ in range(30)) for _ in range(12)))" >"$tmp/corpus.txt"
cat >"$tmp/cfg.json" <<JSON
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/corpus.txt", "validation_file": "$tmp/corpus.txt", "max_length": 32},
 "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "down_proj"]},
 "train": {"learning_rate": 5e-2, "batch_size": 4, "max_steps": 4, "lr_scheduler": "constant",
           "output_dir": "$tmp/run"}}
JSON
if "$bin" train --config "$tmp/cfg.json" >"$tmp/train.log" 2>&1; then
  gen --adapter "$tmp/run/best" --temperature 0 --max-new-tokens 10 "The house" >"$tmp/a1" 2>"$tmp/a.err"
  rc=$?
  check "--adapter: generates" '[ $rc = 0 ] && [ -s "$tmp/a1" ]'
  check "--adapter: another greedy continuation than the base model's" '! cmp -s "$tmp/a1" "$tmp/g1"'
else
  tail -5 "$tmp/train.log"
  bad "loraft train for the adapter"
fi

# 6. errors
"$bin" generate --model "$tmp/absent" "x" >"$tmp/out" 2>"$tmp/err"; rc=$?
check "missing model: exit 1, names the path, nothing on stdout" \
  '[ $rc = 1 ] && grep -q "loraft generate: .*absent" "$tmp/err" && [ ! -s "$tmp/out" ]'
gen --top-p 1.5 "x" >/dev/null 2>"$tmp/err"; rc=$?
check "--top-p 1.5: usage error" '[ $rc = 2 ] && grep -q -- "--top-p must be in \[0, 1\]" "$tmp/err"'
gen --min-p -0.1 "x" >/dev/null 2>"$tmp/err"; rc=$?
check "--min-p -0.1: usage error" '[ $rc = 2 ] && grep -q -- "--min-p must be in \[0, 1\]" "$tmp/err"'
gen --repetition-penalty 0 "x" >/dev/null 2>"$tmp/err"; rc=$?
check "--repetition-penalty 0: usage error" '[ $rc = 2 ] && grep -q -- "--repetition-penalty must be" "$tmp/err"'
gen --chat --template nope "x" >/dev/null 2>"$tmp/err"; rc=$?
check "--template nope: lists the templates" '[ $rc = 1 ] && grep -q "template.*nope" "$tmp/err" && grep -q chatml "$tmp/err"'
gen --chat "x" >/dev/null 2>"$tmp/err"; rc=$?
check "--chat on a model without a template: points to --template" '[ $rc = 1 ] && grep -q -- "--template NAME" "$tmp/err" && grep -q plain "$tmp/err"'
gen --template plain "x" >/dev/null 2>"$tmp/err"; rc=$?
check "--template without --chat: usage error" '[ $rc = 2 ] && grep -q -- "need --chat" "$tmp/err"'
gen >/dev/null 2>"$tmp/err"; rc=$?
check "no prompt: usage error" '[ $rc = 2 ] && grep -q "prompt" "$tmp/err"'

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
