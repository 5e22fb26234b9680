#!/usr/bin/env bash
# Causal-LM adapters are PEFT's: a tiny seeded Llama (`loraft init --arch llama`, GQA 4 heads /
# 2 KV heads, the GPT-2 tokenizer), once with a tied head and once `--untied`, trains LoRA
# (r=4 on all seven projections q_proj..down_proj, lora_dropout 0.1) for a few steps on a
# corpus written here; then, with torch, transformers and peft from the venv of
# scripts/setup-python.sh (the test skips, saying why, when it is missing):
#  (and on embed_tokens and lm_head, Unsloth's targets: peft's lora_embedding_A / _B and the head's
#  lora_A / _B; on the tied model the head's adapter is a module of its own beside the table's)
#  1. AutoModelForCausalLM.from_pretrained(tiny) + PeftModel.from_pretrained(model, OUT/best)
#     loads every tensor of the adapter, none missing or unexpected (and get_peft_model_state_dict
#     gives back exactly the file's names and values), with the saved task_type CAUSAL_LM and
#     lora_dropout;
#  2. its loss on the validation texts equals `loraft eval --adapter OUT/best`'s eval_loss,
#     computed as loraft defines it: each text alone, right-truncated at data.max_length, no BOS
#     (the GPT-2 tokenizer adds none), the mean over every predicted token of all texts;
#  3. `loraft merge` writes a directory that plain transformers loads (no missing or unexpected
#     keys; the tied head untied: lm_head.weight of its own, tie_word_embeddings false, since
#     each of the two adapters changes one of them) with the same loss, and so does
#     `loraft eval` of the merged directory; the base model without the adapter agrees too;
#  4. the same base as a GGUF file: the adapter gives the same loss on it, and `loraft merge`
#     onto it needs the HF tokenizer files beside the .gguf (else a clear error, nothing
#     written), then writes the same files as the merge onto the HF directory.
# loraft's loss is read as ln(perplexity) from `loraft eval` (perplexity is printed to 3
# decimals, i.e. the loss to about 1e-8 at these perplexities); all losses must agree within
# 2e-5 (f32 throughout; the observed differences are about 1e-6).
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup peft-lm
tol=2e-5
max_len=32
write_corpus

for head in tied untied; do
  "$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --ffn 96 \
    $([ $head = untied ] && echo --untied) --vocab-from "$vocab" --seed 3 \
    --out "$tmp/$head" >/dev/null
  cat >"$tmp/$head.json" <<EOF
{"model": {"model": "$tmp/$head", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1,
          "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                             "down_proj", "embed_tokens", "lm_head"]},
 "train": {"learning_rate": 2e-2, "batch_size": 4, "max_steps": 8, "lr_scheduler": "constant",
           "eval_strategy": "steps", "eval_steps": 8, "save_strategy": "steps", "save_steps": 8,
           "logging_steps": 0, "threads": 1, "output_dir": "$tmp/$head-run"}}
EOF
  "$bin" train --config "$tmp/$head.json" >"$tmp/$head-train.log" 2>&1 \
    || { cat "$tmp/$head-train.log"; echo "FAIL: loraft train ($head)"; exit 1; }
  "$bin" merge --model "$tmp/$head" --adapter "$tmp/$head-run/best" --out "$tmp/$head-merged" \
    >"$tmp/$head-merge.log"
  [ $head = untied ] || grep -q "the LM head written apart from the token embedding it was tied to" \
    "$tmp/$head-merge.log" || { cat "$tmp/$head-merge.log"; echo "FAIL: $head: the merge says not that it unties"; exit 1; }
  # The same model as a GGUF (F32, Q/K rows permuted as llama.cpp's converter does, the GPT-2
  # tokenizer in its metadata; written by scripts/write-tiny-gguf.py, since the project's C writer
  # has no command): the adapter gives the same loss on it, and merging onto it needs the HF tokenizer
  # files beside the .gguf (a clear error and no output without them), then writes exactly
  # the weights and config of the merge onto the HF directory.
  mkdir "$tmp/$head-gguf"
  "$py" scripts/write-tiny-gguf.py "$tmp/$head" "$tmp/$head-gguf/model.gguf"
  [ "$(eval_loss "$tmp/$head.json" --adapter "$tmp/$head-run/best" \
       --set model.model="$tmp/$head-gguf/model.gguf")" = \
    "$(eval_loss "$tmp/$head.json" --adapter "$tmp/$head-run/best")" ] \
    || { echo "FAIL: $head: the adapter's loss on the GGUF base differs"; exit 1; }
  if "$bin" merge --model "$tmp/$head-gguf/model.gguf" --adapter "$tmp/$head-run/best" \
       --out "$tmp/$head-gguf/merged" 2>"$tmp/err"; then
    echo "FAIL: $head: merge from a GGUF without a tokenizer.json beside it succeeded"; exit 1
  fi
  grep -q "put its tokenizer.json (and tokenizer_config.json) beside the .gguf file" "$tmp/err" \
    || { cat "$tmp/err"; echo "FAIL: $head: unclear error for a GGUF merge without a tokenizer"; exit 1; }
  [ -z "$(ls "$tmp/$head-gguf" | grep -v model.gguf)" ] \
    || { ls "$tmp/$head-gguf"; echo "FAIL: $head: the failed GGUF merge left files"; exit 1; }
  cp "$tmp/$head"/tokenizer*.json "$tmp/$head-gguf/"
  "$bin" merge --model "$tmp/$head-gguf/model.gguf" --adapter "$tmp/$head-run/best" \
    --out "$tmp/$head-gguf/merged" >/dev/null
  for f in config.json model.safetensors tokenizer.json; do
    cmp -s "$tmp/$head-gguf/merged/$f" "$tmp/$head-merged/$f" \
      || { echo "FAIL: $head: $f of the GGUF merge differs from the HF merge's"; exit 1; }
  done
  echo "ok   $head: GGUF base: same adapter loss; merge needs tokenizer.json beside it, then equals the HF merge"

  {
    echo "adapter $(eval_loss "$tmp/$head.json" --adapter "$tmp/$head-run/best")"
    echo "base $(eval_loss "$tmp/$head.json")"
    echo "merged $(eval_loss "$tmp/$head.json" --set model.model="$tmp/$head-merged")"
  } >"$tmp/$head-ours"
done

"$py" - "$tmp" "$max_len" "$tol" <<'EOF'
import json, sys
import torch
from peft import LoraConfig, PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging
sys.path.insert(0, "tests")
from lm_compat import KeyNoise, hf_loss, load
hf_logging.disable_progress_bar()
tmp, max_len, tol = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(tmp + "/valid.jsonl")]
results = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    results.append(bool(ok))


for head in ("tied", "untied"):
    base_dir, adapter = f"{tmp}/{head}", f"{tmp}/{head}-run/best"
    ours = {}
    for line in open(f"{tmp}/{head}-ours"):
        what, loss, n = line.split()
        ours[what] = (float(loss), int(n))
    tok = AutoTokenizer.from_pretrained(base_dir)
    check(tok("Anne")["input_ids"] == tok.encode("Anne", add_special_tokens=False),
          f"{head}: the tokenizer adds no special tokens (no BOS)")

    # the adapter's config, as peft reads it
    cfg = LoraConfig.from_pretrained(adapter)
    targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    targets |= {"embed_tokens", "lm_head"}
    check(cfg.task_type == "CAUSAL_LM" and cfg.lora_dropout == 0.1 and cfg.r == 4
          and cfg.lora_alpha == 8 and set(cfg.target_modules) == targets,
          f"{head}: adapter_config: task_type {cfg.task_type}, r {cfg.r}, alpha {cfg.lora_alpha}, "
          f"lora_dropout {cfg.lora_dropout}, targets {sorted(cfg.target_modules)}")

    base, bad = load(base_dir)
    check(not bad, f"{head}: base loads with no missing/unexpected keys {bad}")
    check(base.config.tie_word_embeddings == (head == "tied") and
          (base.lm_head.weight.data_ptr() == base.model.embed_tokens.weight.data_ptr()) == (head == "tied"),
          f"{head}: lm_head tied to embed_tokens: {head == 'tied'}")
    loss, n = hf_loss(base, tok, texts, max_len)
    check(n == ours["base"][1] and abs(loss - ours["base"][0]) <= tol,
          f"{head}: base model loss: loraft {ours['base'][0]:.7f} vs transformers {loss:.7f} "
          f"(|diff| {abs(loss - ours['base'][0]):.1e}, {n} tokens vs loraft's {ours['base'][1]})")

    # PEFT: every adapter tensor loads, none is missing or unexpected
    with KeyNoise() as keys:
        model = PeftModel.from_pretrained(base, adapter)
    check(not keys.noise,
          f"{head}: PeftModel.from_pretrained reports no missing/unexpected keys {keys.noise}")
    saved = load_file(adapter + "/adapter_model.safetensors")
    lora = {k.replace(".default", ""): v for k, v in model.state_dict().items() if "lora_" in k}
    check(set(lora) == set(saved) and len(saved) == 2 * (7 * 2 + 2),
          f"{head}: the PEFT model's {len(lora)} LoRA tensors are the file's {len(saved)} "
          f"(missing {sorted(set(lora) - set(saved))[:3]}, unexpected {sorted(set(saved) - set(lora))[:3]})")
    back = get_peft_model_state_dict(model, save_embedding_layers=False)
    check(set(back) == set(saved) and all(torch.equal(back[k], saved[k]) for k in saved),
          f"{head}: get_peft_model_state_dict gives back the file's names and values")
    check(all(float(saved[k].abs().max()) > 0 for k in saved if "lora_B" in k or "_A" in k),
          f"{head}: every lora_B and A trained (non-zero; the embedding's A starts at 0)")
    a_emb = saved["base_model.model.model.embed_tokens.lora_embedding_A"]
    seen = {i for l in open(tmp + "/train.jsonl") for i in tok(json.loads(l)["text"])["input_ids"]}
    moved = {int(i) for i in torch.nonzero(a_emb.abs().sum(0)).flatten()}
    check(tuple(a_emb.shape) == (4, base.config.vocab_size) and moved and
          moved <= seen | {base.config.eos_token_id},
          f"{head}: embed_tokens' A [r, V] {tuple(a_emb.shape)}: {len(moved)} columns "
          f"moved, all of tokens in the training texts or the end of text")
    if head == "untied":
        # peft's own save (with its copies of the table and the head, save_embedding_layers) for
        # loraft to load, and one whose copy of the table is another, which loraft must refuse
        model.save_pretrained(f"{tmp}/{head}-peft")
        model.save_pretrained(f"{tmp}/{head}-other")
        other = load_file(f"{tmp}/{head}-other/adapter_model.safetensors")
        other["base_model.model.model.embed_tokens.base_layer.weight"][7] += 1.0
        from safetensors.torch import save_file
        save_file(other, f"{tmp}/{head}-other/adapter_model.safetensors", metadata={"format": "pt"})
    drops = {float(m.lora_dropout["default"].p) for m in model.modules() if hasattr(m, "lora_dropout")
             and "default" in m.lora_dropout}
    check(len(drops) == 1 and abs(drops.pop() - 0.1) < 1e-6, f"{head}: PEFT's lora_dropout is 0.1")
    loss_peft, n = hf_loss(model, tok, texts, max_len)
    a = ours["adapter"][0]
    check(n == ours["adapter"][1] and abs(loss_peft - a) <= tol,
          f"{head}: adapter loss: loraft eval {a:.7f} vs PEFT {loss_peft:.7f} "
          f"(|diff| {abs(loss_peft - a):.1e}, {n} tokens)")
    check(abs(a - ours["base"][0]) > 1e-3, f"{head}: the adapter changes the loss "
          f"({ours['base'][0]:.4f} -> {a:.4f})")

    # the merged directory in plain transformers
    merged_dir = f"{tmp}/{head}-merged"
    merged, bad = load(merged_dir)
    check(not bad, f"{head}: merged loads with no missing/unexpected keys {bad}")
    names = set(load_file(merged_dir + "/model.safetensors"))
    check("lm_head.weight" in names and not merged.config.tie_word_embeddings and
          merged.lm_head.weight.data_ptr() != merged.model.embed_tokens.weight.data_ptr(),
          f"{head}: merged head: lm_head.weight of its own, tie_word_embeddings false")
    loss_merged, n = hf_loss(merged, AutoTokenizer.from_pretrained(merged_dir), texts, max_len)
    check(abs(loss_merged - a) <= tol and abs(ours["merged"][0] - a) <= tol,
          f"{head}: merged loss: transformers {loss_merged:.7f}, loraft eval {ours['merged'][0]:.7f} "
          f"vs adapter {a:.7f} (|diff| {abs(loss_merged - a):.1e}, {abs(ours['merged'][0] - a):.1e})")

print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF

# peft's save of the untied adapter holds its copies of embed_tokens' and lm_head's weights: loraft
# loads it (the same loss as its own save), and refuses one whose copy of the table is another
[ "$(eval_loss "$tmp/untied.json" --adapter "$tmp/untied-peft")" = \
  "$(eval_loss "$tmp/untied.json" --adapter "$tmp/untied-run/best")" ] \
  || { echo "FAIL: peft's save of the embed_tokens adapter gives another loss"; exit 1; }
if "$bin" eval --config "$tmp/untied.json" --adapter "$tmp/untied-other" 2>"$tmp/err" >/dev/null; then
  echo "FAIL: an adapter replacing embed_tokens' table loaded"; exit 1
fi
grep -q "replaces the model's token embedding with another (up to 1 apart)" "$tmp/err" \
  || { cat "$tmp/err"; echo "FAIL: unclear error for another embedding table"; exit 1; }
echo "ok   peft's save of the embed_tokens and lm_head adapter (their weights' copies) loads; another table is refused"

# peft's ensure_weight_tying makes the adapters of a tied embedding and head one: refused on the
# tied model, which loraft adapts apart; a no-op on the untied one, which loads as before
for head in tied untied; do
  cp -rL "$tmp/$head-run/best" "$tmp/$head-tying"
  "$py" - "$tmp/$head-tying/adapter_config.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); c["ensure_weight_tying"] = True
json.dump(c, open(sys.argv[1], "w"))
PYEOF
done
if "$bin" eval --config "$tmp/tied.json" --adapter "$tmp/tied-tying" 2>"$tmp/err" >/dev/null; then
  echo "FAIL: ensure_weight_tying on the tied model loaded"; exit 1
fi
grep -q "ensure_weight_tying: peft makes the adapters of the tied embedding and head one" "$tmp/err" \
  || { cat "$tmp/err"; echo "FAIL: ensure_weight_tying: unclear error"; exit 1; }
[ "$(eval_loss "$tmp/untied.json" --adapter "$tmp/untied-tying")" = \
  "$(eval_loss "$tmp/untied.json" --adapter "$tmp/untied-run/best")" ] \
  || { echo "FAIL: ensure_weight_tying on the untied model changed its loss"; exit 1; }
echo "ok   ensure_weight_tying: refused on the tied model's embedding and head adapters, a no-op untied"
