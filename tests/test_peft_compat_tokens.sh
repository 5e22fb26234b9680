#!/usr/bin/env bash
# Trained token rows are peft's trainable tokens (LoraConfig.trainable_token_indices): a tiny seeded
# Llama with a tied head (`loraft init`, the GPT-2 tokenizer) trains LoRA on q_proj and v_proj and
# the rows of " the", ".", "," and <|endoftext|> (lora.trainable_token_indices) for a few steps on
# a corpus written here; then, with torch, transformers and peft from the venv of
# scripts/setup-python.sh (the test skips, saying why, when it is missing):
#  1. PeftModel.from_pretrained loads the adapter with no key missing or unexpected, its
#     trainable_token_indices the ones trained, the rows moved off the table's;
#  2. its loss on the validation texts equals `loraft eval --adapter`'s (within 2e-5, f32);
#  3. `loraft merge` writes the rows into the table, which stays tied to the head: transformers
#     loads the directory (tie_word_embeddings true, no key missing) with the same loss, and
#     `loraft eval` of the merge as an F32 GGUF (`merge --format gguf`) gives it too;
#  4. an adapter peft made ({"embed_tokens": ids}, its rows and B moved at random) gives in
#     `loraft eval --adapter` peft's loss;
#  5. `loraft export-gguf` refuses the adapter with a clear error (llama.cpp's LoRA has no rows).
# Then the LM head's own rows (lora.lm_head_token_indices; peft's {"lm_head": ids}):
#  6. the same Llama untied trains rows of the embedding and other rows of the head: peft loads
#     the adapter ({"embed_tokens": ids, "lm_head": ids}) with no key missing or unexpected and
#     the same loss, as do the merged HF directory (each table's rows replaced, still untied) and
#     the merge as a GGUF;
#  7. an adapter peft made on the tied Llama with other ids for lm_head than for embed_tokens
#     (peft then ties neither to the other) gives peft's loss in loraft, and so does its merge,
#     which unties the head (tie_word_embeddings false, lm_head.weight of its own) in transformers
#     and as a GGUF (output.weight) in loraft.
# Then peft's TrainableTokens method alone (lora.strategy tokens):
#  8. the tied Llama trains the same rows without LoRA: peft loads the adapter (peft_type
#     TRAINABLE_TOKENS, the head's tied copy of the rows beside the embedding's) with no key
#     missing or unexpected and the same loss, as does the merge; an adapter peft made gives
#     peft's loss in loraft.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup peft-tokens
tol=2e-5
max_len=32
write_corpus
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 \
  --vocab-from "$vocab" --seed 3 --out "$tmp/model" >/dev/null
cat >"$tmp/run.json" <<EOF
{"model": {"model": "$tmp/model", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"],
          "trainable_token_indices": [262, 13, 11, 50256]},
 "train": {"learning_rate": 2e-2, "batch_size": 4, "max_steps": 8, "lr_scheduler": "constant",
           "eval_strategy": "steps", "eval_steps": 8, "save_strategy": "steps", "save_steps": 8,
           "logging_steps": 0, "threads": 1, "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/run.json" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; echo "FAIL: loraft train"; exit 1; }
"$bin" merge --model "$tmp/model" --adapter "$tmp/run/best" --out "$tmp/merged" >/dev/null
"$bin" merge --model "$tmp/model" --adapter "$tmp/run/best" --format gguf --type f32 \
  --out "$tmp/merged.gguf" >/dev/null
if "$bin" export-gguf --adapter "$tmp/run/best" --out "$tmp/adapter.gguf" 2>"$tmp/err"; then
  echo "FAIL: export-gguf wrote an adapter with trained token rows"; exit 1
fi
grep -q "trained token rows (trainable_token_indices) have no llama.cpp LoRA form" "$tmp/err" \
  || { cat "$tmp/err"; echo "FAIL: unclear export-gguf error"; exit 1; }
[ ! -e "$tmp/adapter.gguf" ] || { echo "FAIL: the refused export left a file"; exit 1; }
echo "ok   export-gguf refuses trained token rows, writing nothing"

"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 --untied \
  --vocab-from "$vocab" --seed 3 --out "$tmp/untied" >/dev/null
"$bin" train --config "$tmp/run.json" --set model.model="$tmp/untied" \
  --set lora.trainable_token_indices=262,13 --set lora.lm_head_token_indices=13,50256,198 \
  --set train.output_dir="$tmp/run-head" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; echo "FAIL: loraft train with lm_head rows"; exit 1; }
"$bin" merge --model "$tmp/untied" --adapter "$tmp/run-head/best" --out "$tmp/merged-head" \
  >/dev/null
"$bin" merge --model "$tmp/untied" --adapter "$tmp/run-head/best" --format gguf --type f32 \
  --out "$tmp/merged-head.gguf" >/dev/null
"$bin" train --config "$tmp/run.json" --set lora.strategy=tokens --set 'lora.target_modules=[]' \
  --set train.output_dir="$tmp/run-tokens" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; echo "FAIL: loraft train with strategy tokens"; exit 1; }
"$bin" merge --model "$tmp/model" --adapter "$tmp/run-tokens/best" --out "$tmp/merged-tokens" \
  >/dev/null

"$py" - "$tmp" "$max_len" <<'EOF'
import json, sys
import torch
from peft import LoraConfig, TrainableTokensConfig, get_peft_model
from transformers import AutoTokenizer
sys.path.insert(0, "tests")
from lm_compat import hf_loss, load
tmp, max_len = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
texts = [json.loads(l)["text"] for l in open(tmp + "/valid.jsonl")]
tok = AutoTokenizer.from_pretrained(tmp + "/model")
lora = lambda tokens: LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj"],
                                 task_type="CAUSAL_LM", trainable_token_indices=tokens)
for name, cfg in (("peft", lora({"embed_tokens": [262, 50256, 11]})),
                  ("peft-head", lora({"embed_tokens": [262, 11], "lm_head": [11, 50256, 13]})),
                  ("peft-tokens", TrainableTokensConfig(token_indices=[262, 50256, 11]))):
    base, _ = load(tmp + "/model")
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "trainable_tokens_delta" in n or "lora_B" in n:
                p.add_(0.05 * torch.randn_like(p))
    model.save_pretrained(tmp + "/" + name + "-adapter")
    loss, n = hf_loss(model, tok, texts, max_len)
    print("%.9f %d" % (loss, n), file=open(tmp + "/" + name + "-loss", "w"))
EOF
"$bin" merge --model "$tmp/model" --adapter "$tmp/peft-head-adapter" --out "$tmp/merged-peft" \
  >/dev/null
"$bin" merge --model "$tmp/model" --adapter "$tmp/peft-head-adapter" --format gguf --type f32 \
  --out "$tmp/merged-peft.gguf" >/dev/null
{
  echo "adapter $(eval_loss "$tmp/run.json" --adapter "$tmp/run/best")"
  echo "merged $(eval_loss "$tmp/run.json" --set model.model="$tmp/merged")"
  echo "merged_gguf $(eval_loss "$tmp/run.json" --set model.model="$tmp/merged.gguf")"
  echo "peft $(eval_loss "$tmp/run.json" --adapter "$tmp/peft-adapter")"
  echo "peft_head $(eval_loss "$tmp/run.json" --adapter "$tmp/peft-head-adapter")"
  echo "peft_head_gguf $(eval_loss "$tmp/run.json" --set model.model="$tmp/merged-peft.gguf")"
  echo "tokens $(eval_loss "$tmp/run.json" --adapter "$tmp/run-tokens/best")"
  echo "tokens_merged $(eval_loss "$tmp/run.json" --set model.model="$tmp/merged-tokens")"
  echo "peft_tokens $(eval_loss "$tmp/run.json" --adapter "$tmp/peft-tokens-adapter")"
  echo "head $(eval_loss "$tmp/run.json" --set model.model="$tmp/untied" \
    --adapter "$tmp/run-head/best")"
  echo "head_merged $(eval_loss "$tmp/run.json" --set model.model="$tmp/merged-head")"
  echo "head_merged_gguf $(eval_loss "$tmp/run.json" --set model.model="$tmp/merged-head.gguf")"
} >"$tmp/ours"

"$py" - "$tmp" "$max_len" "$tol" <<'EOF'
import json, sys
import torch
from peft import PeftConfig, PeftModel
from transformers import AutoTokenizer
sys.path.insert(0, "tests")
from lm_compat import Checks, KeyNoise, hf_loss, load
tmp, max_len, tol = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(1)
c = Checks("tokens", tol)
ours = {l.split()[0]: l.split()[1:] for l in open(tmp + "/ours")}
texts = [json.loads(l)["text"] for l in open(tmp + "/valid.jsonl")]
tok = AutoTokenizer.from_pretrained(tmp + "/model")


def peft_loss(what, model_dir, adapter, indices, module):
    """peft loads the adapter on model_dir with no key missing or unexpected, its
    trainable_token_indices `indices`, every row of `module` (of the model) trained off the
    table's; returns its loss."""
    cfg = PeftConfig.from_pretrained(adapter)
    ids = getattr(cfg, "trainable_token_indices", None) or getattr(cfg, "token_indices", None)
    c.check(ids == indices, f"{what}: adapter_config: {cfg.peft_type}, token indices {ids}")
    base, _ = load(model_dir)
    with KeyNoise() as keys:
        model = PeftModel.from_pretrained(base, adapter)
    c.check(not keys.noise, f"{what}: peft loads it, no key missing or unexpected {keys.noise}")
    rows = module(model.base_model.model)
    moved = rows.trainable_tokens_delta["default"] - rows.trainable_tokens_original["default"]
    c.check(moved.abs().amax(1).min() > 1e-3,
            f"{what}: every row trained off the table's (least change "
            f"{moved.abs().amax(1).min():.2e})")
    return hf_loss(model, tok, texts, max_len)


def recorded(name):
    """The loss and token count the peft model made above recorded in tmp/name."""
    loss, n = open(tmp + "/" + name).read().split()
    return float(loss), int(n)


def merged_loss(what, path, tied):
    """transformers loads the merged directory with no key missing or unexpected, its head tied
    or not; returns its loss."""
    merged, bad = load(path)
    c.check(not bad and merged.config.tie_word_embeddings == tied,
            f"{what}: loads with no key missing or unexpected {bad}, "
            f"{'head still tied' if tied else 'untied'}")
    return hf_loss(merged, tok, texts, max_len)


theirs = peft_loss("embedding rows", tmp + "/model", tmp + "/run/best", [262, 13, 11, 50256],
                   lambda m: m.model.embed_tokens.token_adapter)
c.agree("adapter loss", ours["adapter"], theirs)
c.agree("the merge as a GGUF, in loraft", ours["merged_gguf"], theirs)
c.agree("merged loss", ours["merged"], merged_loss("merged", tmp + "/merged", True))
c.agree("peft's adapter in loraft", ours["peft"], recorded("peft-loss"))

theirs = peft_loss("lm_head rows", tmp + "/untied", tmp + "/run-head/best",
                   {"embed_tokens": [262, 13], "lm_head": [13, 50256, 198]},
                   lambda m: m.lm_head.token_adapter)
c.agree("lm_head rows: adapter loss", ours["head"], theirs)
c.agree("lm_head rows: the merge as a GGUF, in loraft", ours["head_merged_gguf"], theirs)
c.agree("lm_head rows: merged loss", ours["head_merged"],
        merged_loss("lm_head rows merged", tmp + "/merged-head", False))
made = recorded("peft-head-loss")
c.agree("peft's lm_head rows on the tied model, in loraft", ours["peft_head"], made)
c.agree("their merge's loss (it unties the head)", made,
        merged_loss("their merge", tmp + "/merged-peft", False))
c.agree("their merge as a GGUF (output.weight of its own), in loraft", ours["peft_head_gguf"],
        made)

theirs = peft_loss("TrainableTokens", tmp + "/model", tmp + "/run-tokens/best",
                   [262, 13, 11, 50256], lambda m: m.model.embed_tokens)
c.agree("TrainableTokens: adapter loss", ours["tokens"], theirs)
c.agree("TrainableTokens: merged loss", ours["tokens_merged"],
        merged_loss("TrainableTokens merged", tmp + "/merged-tokens", True))
c.agree("peft's TrainableTokens adapter, in loraft", ours["peft_tokens"],
        recorded("peft-tokens-loss"))
sys.exit(0 if c.passed() else 1)
EOF
