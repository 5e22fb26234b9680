#!/usr/bin/env bash
# Interoperability with Hugging Face peft, both ways, with torch, transformers and peft from the
# venv of scripts/setup-python.sh (test.sh creates it before ctest; the test skips, saying why,
# only when it could not: PyPI unreachable):
#  1. an adapter trained by loraft loads with PeftModel.from_pretrained unchanged and gives
#     the same class probabilities as `loraft predict` (printed to 4 decimals: |diff| <= 2e-4);
#  2. the `loraft merge` output loads as a plain transformers model with the same outputs;
#  3. an adapter written by peft (random A and B) loads in loraft with the same outputs.
set -euo pipefail
bin=${LORAFT_BIN:-build/loraft}
vocab=${LORAFT_SHARED_DATA:-../shared/data}/tokenizers/bert-base-uncased
[ -d "$vocab" ] || { echo "SKIP: $vocab is absent"; exit 77; }
if ! py=$(scripts/setup-python.sh --check 2>&1); then echo "SKIP: $py"; exit 77; fi
tmp=$(mktemp -d /tmp/loraft-peft-XXXXXX)
trap 'rm -rf "$tmp"' EXIT

for arch in distilbert bert; do
  "$bin" init --arch $arch --layers 2 --hidden 32 --heads 4 --ffn 64 --num-labels 3 \
    --vocab-from "$vocab" --seed 2 --out "$tmp/$arch" >/dev/null
done
"$py" - "$tmp" <<'EOF'
import json, random, sys
random.seed(1)
words = "good bad movie film plot great awful the a it was very".split()
with open(sys.argv[1] + "/train.jsonl", "w") as f:
    for i in range(48):
        f.write(json.dumps({"text": " ".join(random.choices(words, k=8)), "label": i % 3}) + "\n")
EOF
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/distilbert"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/train.jsonl", "max_length": 24},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_lin", "v_lin", "lin2"]},
 "train": {"learning_rate": 5e-2, "batch_size": 8, "num_epochs": 6, "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/cfg.json" >/dev/null
"$bin" merge --model "$tmp/distilbert" --adapter "$tmp/run/best" --out "$tmp/merged" >/dev/null

texts=("a good movie" "the plot was awful, very awful" "it was a film")
predict() { "$bin" predict --model "$1" ${2:+--adapter "$2"} "${texts[@]}" | cut -f1,2; }
predict "$tmp/distilbert" "$tmp/run/best" >"$tmp/ours_adapter"
predict "$tmp/merged" >"$tmp/ours_merged"

# peft writes an adapter for the BERT model; loraft reads it
"$py" - "$tmp" "${texts[@]}" <<'EOF'
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification
tmp = sys.argv[1]
torch.manual_seed(0)
base = AutoModelForSequenceClassification.from_pretrained(tmp + "/bert")
cfg = LoraConfig(task_type="SEQ_CLS", r=3, lora_alpha=6, target_modules=["query", "value", "dense"],
                 init_lora_weights=False)
model = get_peft_model(base, cfg)
with torch.no_grad():
    model.base_model.model.classifier.modules_to_save["default"].weight.normal_(0, 0.5)
model.save_pretrained(tmp + "/peft_adapter")
EOF
predict "$tmp/bert" "$tmp/peft_adapter" >"$tmp/ours_peft"

"$py" - "$tmp" "${texts[@]}" <<'EOF'
import sys, torch
from peft import PeftModel
from transformers import AutoModelForSequenceClassification, BertTokenizerFast
tmp, texts = sys.argv[1], sys.argv[2:]
def probs(model, tok_dir):
    tok = BertTokenizerFast.from_pretrained(tok_dir)
    model.eval()
    out = []
    with torch.no_grad():
        for t in texts:
            p = model(**tok(t, return_tensors="pt")).logits.softmax(-1)[0]
            out.append((int(p.argmax()), float(p.max())))
    return out
def ours(name):
    rows = [l.split("\t") for l in open(f"{tmp}/{name}").read().splitlines()]
    return [(int(r[0].split("_")[1]), float(r[1])) for r in rows]
def same(a, b, what):
    ok = len(a) == len(b) and all(x[0] == y[0] and abs(x[1] - y[1]) <= 2e-4 for x, y in zip(a, b))
    print(("ok  " if ok else "FAIL") + f" {what}: loraft {a} vs transformers/peft {b}")
    return ok
base = lambda d: AutoModelForSequenceClassification.from_pretrained(f"{tmp}/{d}")
results = [
    same(ours("ours_adapter"), probs(PeftModel.from_pretrained(base("distilbert"), f"{tmp}/run/best"), f"{tmp}/distilbert"),
         "loraft adapter in PeftModel.from_pretrained"),
    same(ours("ours_merged"), probs(base("merged"), f"{tmp}/merged"), "loraft merge in transformers"),
    same(ours("ours_peft"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_adapter"), f"{tmp}/bert"),
         "peft adapter in loraft"),
]
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF
