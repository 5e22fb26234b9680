#!/usr/bin/env bash
# Reward-model adapters are PEFT's: a tiny seeded Llama (`loraft init --arch llama`, GQA, the
# GPT-2 tokenizer, pad_token_id set to the EOS so that the pad rule matters: the score is read
# at the token before a row's final EOS) trains as a reward model (LoRA r=4 on q/v/up, the score
# head as modules_to_save) for a few steps on pairs written here; `loraft score` scores prompt /
# response records, some longer than max_length; then, with torch, transformers and peft from
# the venv of scripts/setup-python.sh (skipped, saying why, when it is missing):
#  1. AutoModelForSequenceClassification.from_pretrained(tiny, num_labels=1) +
#     PeftModel.from_pretrained(model, OUT/best) reports no missing or unexpected keys, with
#     task_type SEQ_CLS, the score head (modules_to_save) taken from the adapter;
#  2. its scores of the same rows (tok(prompt) + tok(" " + response) + [eos], truncated as
#     loraft does, right-padded in one batch with the pad id) equal `loraft score`'s within
#     2e-5 (f32 on both sides), and differ from the untrained score head's;
#  3. `loraft merge` writes a directory that AutoModelForSequenceClassification.from_pretrained
#     loads with no other argument as a LlamaForSequenceClassification (num_labels 1,
#     pad_token_id 50256, no missing or unexpected keys) and that scores the same padded batch
#     like `loraft score` within 2e-5; `loraft score` of the merged directory alone equals
#     base + adapter within 1e-5 (LoRA folded into W in f32). `merge --format gguf` refuses.
# loraft scores in batches of 4 (rows of different lengths, right-padded), transformers the six
# rows at once.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup peft-rm

"$py" - "$tmp" <<'EOF'
import json, random, sys
random.seed(9)
topics = ["the garden", "my letter", "the weather", "a recipe", "the train", "my cat"]
with open(sys.argv[1] + "/pairs.jsonl", "w") as f:
    for i in range(24):
        t = random.choice(topics)
        f.write(json.dumps({"prompt": f"Human: Tell me about {t}.\n\nAssistant:",
                            "chosen": f"Gladly, here is what I know about {t}.",
                            "rejected": f"No. Ask someone else about {t}."}) + "\n")
with open(sys.argv[1] + "/score.jsonl", "w") as f:
    for i in range(5):
        t = topics[i]
        f.write(json.dumps({"prompt": f"Human: What about {t}?\n\nAssistant:",
                            "response": ["Sure, happy to help.", "Go away.", "It is lovely " * 12,
                                         "x", "Thanks!"][i]}) + "\n")
    f.write(json.dumps({"prompt": "Human: " + "Tell me a long story. " * 10 + "\n\nAssistant:",
                        "response": "Once upon a time " * 8}) + "\n")  # both parts cut
EOF
"$bin" init --arch llama --layers 2 --hidden 64 --heads 4 --kv-heads 2 --vocab-from "$vocab" \
  --seed 3 --out "$tmp/model" >/dev/null
sed -i 's/"pad_token_id":[[:space:]]*null/"pad_token_id":\t50256/' "$tmp/model/config.json"
grep -q '"pad_token_id":.50256' "$tmp/model/config.json" || { echo "FAIL: pad_token_id not set"; exit 1; }
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/model", "task": "reward"},
 "data": {"train_file": "$tmp/pairs.jsonl", "max_length": 40, "max_prompt_length": 24},
 "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "up_proj"]},
 "train": {"learning_rate": 3e-3, "batch_size": 4, "num_epochs": 2, "threads": 1,
           "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/cfg.json" >"$tmp/train.log" 2>&1 || { cat "$tmp/train.log"; exit 1; }
"$bin" score --model "$tmp/model" --adapter "$tmp/run/last" --max-length 40 \
  --max-prompt-length 24 --batch-size 4 "$tmp/score.jsonl" >"$tmp/scores" ||
  { echo "FAIL: loraft score"; exit 1; }
"$bin" merge --model "$tmp/model" --adapter "$tmp/run/last" --out "$tmp/merged" >/dev/null ||
  { echo "FAIL: loraft merge of a reward model"; exit 1; }
"$bin" score --model "$tmp/merged" --max-length 40 --max-prompt-length 24 --batch-size 4 \
  "$tmp/score.jsonl" >"$tmp/scores-merged" || { echo "FAIL: loraft score of the merged model"; exit 1; }
if "$bin" merge --model "$tmp/model" --adapter "$tmp/run/last" --format gguf \
  --out "$tmp/rm.gguf" 2>"$tmp/gguf.err"; then
  echo "FAIL: merge --format gguf wrote a reward model"; exit 1
fi
grep -q "score head has no place in a llama.cpp GGUF" "$tmp/gguf.err" ||
  { echo "FAIL: merge --format gguf: unexpected message: $(cat "$tmp/gguf.err")"; exit 1; }

"$py" - "$tmp" <<'EOF'
import json, logging, sys, warnings
import torch
from peft import LoraConfig, PeftModel
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
tmp = sys.argv[1]
torch.set_num_threads(1)
results = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    results.append(bool(ok))

class Grab(logging.Handler):  # peft reports missing/unexpected keys as warnings
    def __init__(self): super().__init__(); self.msgs = []
    def emit(self, r): self.msgs.append(r.getMessage())
grab = Grab()
logging.getLogger("peft").addHandler(grab)

adapter = tmp + "/run/last"
cfg = LoraConfig.from_pretrained(adapter)
check(cfg.task_type == "SEQ_CLS" and cfg.modules_to_save == ["score"],
      f"adapter_config: task_type {cfg.task_type}, modules_to_save {cfg.modules_to_save}")
base = AutoModelForSequenceClassification.from_pretrained(tmp + "/model", num_labels=1,
                                                          dtype=torch.float32)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = PeftModel.from_pretrained(base, adapter).eval()
noise = [m for m in grab.msgs + [str(w.message) for w in caught]
         if "missing" in m.lower() or "unexpected" in m.lower()]
check(not noise, f"PeftModel.from_pretrained reports no missing/unexpected keys {noise}")

# the rows as loraft builds them (pref_data.h): TRL 0.12's truncation at 40 / 24
tok = AutoTokenizer.from_pretrained(tmp + "/model")
eos = pad = 50256
rows = []
for line in open(tmp + "/score.jsonl"):
    r = json.loads(line)
    p = tok.encode(r["prompt"], add_special_tokens=False)
    a = tok.encode(" " + r["response"], add_special_tokens=False) + [eos]
    if len(p) + len(a) > 40:
        p = p[-24:] if len(p) > 24 else p
        if len(p) + len(a) > 40:
            a = a[:40 - 24]
    rows.append(p + a)
T = max(map(len, rows))
ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows])
with torch.no_grad():
    peft_scores = model(input_ids=ids, attention_mask=mask).logits[:, 0]
    with model.disable_adapter():  # no LoRA, the untrained score head (modules_to_save's original)
        plain = model(input_ids=ids, attention_mask=mask).logits[:, 0]
ours = torch.tensor([float(x) for x in open(tmp + "/scores")])
diff = float((ours - peft_scores).abs().max())
check(len(ours) == len(rows) and diff <= 2e-5,
      f"loraft score = PEFT's scores within 2e-5 (max |diff| {diff:.1e}): "
      f"{[round(float(x), 4) for x in ours]}")
check(float((ours - plain).abs().max()) > 1e-2, "the adapter changes the scores")

merged, info = AutoModelForSequenceClassification.from_pretrained(
    tmp + "/merged", dtype=torch.float32, output_loading_info=True)
merged.eval()
keys = {k: v for k, v in info.items() if v}
check(type(merged).__name__ == "LlamaForSequenceClassification" and merged.num_labels == 1
      and merged.config.pad_token_id == pad and not keys,
      f"merged: {type(merged).__name__}, num_labels {merged.num_labels}, "
      f"pad_token_id {merged.config.pad_token_id}, loading info {keys}")
moved = float((merged.model.layers[0].self_attn.q_proj.weight
               - base.model.layers[0].self_attn.q_proj.base_layer.weight).abs().max())
check(moved > 1e-4, f"the merged q_proj holds the LoRA update (max |dW| {moved:.1e})")
with torch.no_grad():
    merged_scores = merged(input_ids=ids, attention_mask=mask).logits[:, 0]
diff = float((ours - merged_scores).abs().max())
check(diff <= 2e-5, f"transformers on the merged model = loraft score within 2e-5 (max |diff| {diff:.1e})")
ours_merged = torch.tensor([float(x) for x in open(tmp + "/scores-merged")])
diff = float((ours - ours_merged).abs().max())
check(len(ours_merged) == len(ours) and diff <= 1e-5,
      f"loraft score of the merged model = base + adapter within 1e-5 (max |diff| {diff:.1e})")
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF
