#!/usr/bin/env bash
# Interoperability with Hugging Face peft, both ways, with torch, transformers and peft from the
# venv of scripts/setup-python.sh (test.sh creates it before ctest; the test skips, saying why,
# only when it could not: PyPI unreachable):
#  1. an adapter trained by loraft loads with PeftModel.from_pretrained unchanged and gives
#     the same class probabilities as `loraft predict` (printed to 4 decimals: |diff| <= 2e-4);
#  2. the `loraft merge` output loads as a plain transformers model with the same outputs;
#  3. an adapter written by peft (random A and B) loads in loraft with the same outputs;
#  4. the same for DoRA (use_dora): loraft's adapter in peft (which holds every tensor of its file,
#     the magnitudes too), its merge in transformers, and peft's adapter (random A, B and
#     magnitudes) in loraft;
#  5. the same for rank_pattern, alpha_pattern and layers_to_transform: loraft's adapter in peft
#     (tensors of the pattern's ranks, in the listed layers only) and peft's in loraft;
#  6. the same for target_modules "all-linear" with exclude_modules: loraft's adapter in peft, and
#     peft's (which lists every adapted module by its full name) in loraft;
#  7. the same for bias "all" (loraft's: every bias trained, the adapted linears' saved as peft's
#     base_layer.bias) and "lora_only" (peft's, random biases on the adapted linears);
#  8. the same for PiSSA and OLoRA (init_lora_weights "pissa", "olora"): each side rebuilds the
#     residual base weights from the base model by its own SVD or QR when it loads the other's
#     adapter.
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
        text = random.choices(words, k=8)  # labelled by its first word
        f.write(json.dumps({"text": " ".join(text), "label": words.index(text[0]) % 3}) + "\n")
EOF
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/distilbert"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/train.jsonl", "max_length": 24},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["q_lin", "v_lin", "lin2"]},
 "train": {"learning_rate": 5e-2, "batch_size": 8, "num_epochs": 6, "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/cfg.json" >/dev/null
"$bin" merge --model "$tmp/distilbert" --adapter "$tmp/run/best" --out "$tmp/merged" >/dev/null
"$bin" train --config "$tmp/cfg.json" --set lora.use_dora=true --set lora.dropout=0 --set train.learning_rate=1e-2 \
  --set train.output_dir="$tmp/dora" >/dev/null
"$bin" merge --model "$tmp/distilbert" --adapter "$tmp/dora/best" --out "$tmp/dora_merged" >/dev/null
"$bin" train --config "$tmp/cfg.json" --set lora.rank_pattern=q_lin:8,lin2:2 --set lora.alpha_pattern=v_lin:24 \
  --set lora.layers_to_transform=1 --set train.output_dir="$tmp/patterns" >/dev/null
"$bin" train --config "$tmp/cfg.json" --set lora.target_modules=all-linear \
  --set lora.exclude_modules=pre_classifier,layer.0.ffn.lin1 --set train.output_dir="$tmp/all_linear" >/dev/null
"$bin" train --config "$tmp/cfg.json" --set lora.bias=all --set train.output_dir="$tmp/bias" >/dev/null
for init in pissa olora; do
  "$bin" train --config "$tmp/cfg.json" --set lora.init_lora_weights=$init --set train.output_dir="$tmp/$init" >/dev/null
  "$bin" merge --model "$tmp/distilbert" --adapter "$tmp/$init/best" --out "$tmp/${init}_merged" >/dev/null
done

texts=("a good movie" "the plot was awful, very awful" "it was a film")
predict() { "$bin" predict --model "$1" ${2:+--adapter "$2"} "${texts[@]}" | cut -f1,2; }
predict "$tmp/distilbert" "$tmp/run/best" >"$tmp/ours_adapter"
predict "$tmp/merged" >"$tmp/ours_merged"
predict "$tmp/distilbert" "$tmp/dora/best" >"$tmp/ours_dora"
predict "$tmp/dora_merged" >"$tmp/ours_dora_merged"
predict "$tmp/distilbert" "$tmp/patterns/best" >"$tmp/ours_patterns"
predict "$tmp/distilbert" "$tmp/all_linear/best" >"$tmp/ours_all_linear"
predict "$tmp/distilbert" "$tmp/bias/best" >"$tmp/ours_bias"
for init in pissa olora; do
  predict "$tmp/distilbert" "$tmp/$init/best" >"$tmp/ours_$init"
  predict "$tmp/${init}_merged" >"$tmp/ours_${init}_merged"
done

# peft writes an adapter for the BERT model; loraft reads it
"$py" - "$tmp" "${texts[@]}" <<'EOF'
import sys, torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForSequenceClassification
tmp = sys.argv[1]
torch.manual_seed(0)
base = AutoModelForSequenceClassification.from_pretrained(tmp + "/bert")
patterns = dict(rank_pattern={"query": 5, r"layer\.1\.output\.dense": 2}, alpha_pattern={"value": 1.5},
                layers_to_transform=[1], layers_pattern="layer")
all_linear = dict(target_modules="all-linear", exclude_modules=["bert.encoder.layer.0.attention.self.key"])
for name, dora, extra in (("peft_adapter", False, {}), ("peft_dora", True, {}), ("peft_patterns", False, patterns),
                          ("peft_all_linear", False, all_linear), ("peft_bias", False, dict(bias="lora_only")),
                          ("peft_pissa", False, dict(init_lora_weights="pissa")),
                          ("peft_olora", False, dict(init_lora_weights="olora"))):
    base = AutoModelForSequenceClassification.from_pretrained(tmp + "/bert")
    cfg = LoraConfig(task_type="SEQ_CLS", r=3, lora_alpha=6, use_dora=dora,
                     **{"target_modules": ["query", "value", "dense"], "init_lora_weights": False, **extra})
    model = get_peft_model(base, cfg)
    with torch.no_grad():
        model.base_model.model.classifier.modules_to_save["default"].weight.normal_(0, 0.5)
        for n, p in model.named_parameters():  # magnitudes away from the norms they start as
            if "lora_magnitude_vector" in n:
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
        for n, p in model.named_parameters():  # the trained biases away from the base's
            if name == "peft_bias" and n.endswith("base_layer.bias"):
                p.normal_(0, 0.5)
            if name in ("peft_pissa", "peft_olora") and "lora_" in n:  # as if trained: away from the start
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))
    model.save_pretrained(f"{tmp}/{name}")
EOF
predict "$tmp/bert" "$tmp/peft_adapter" >"$tmp/ours_peft"
predict "$tmp/bert" "$tmp/peft_dora" >"$tmp/ours_peft_dora"
predict "$tmp/bert" "$tmp/peft_patterns" >"$tmp/ours_peft_patterns"
predict "$tmp/bert" "$tmp/peft_all_linear" >"$tmp/ours_peft_all_linear"
predict "$tmp/bert" "$tmp/peft_bias" >"$tmp/ours_peft_bias"
predict "$tmp/bert" "$tmp/peft_pissa" >"$tmp/ours_peft_pissa"
predict "$tmp/bert" "$tmp/peft_olora" >"$tmp/ours_peft_olora"

"$py" - "$tmp" "${texts[@]}" <<'EOF'
import sys, torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
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
def holds_file(model, adapter, what):
    """every tensor of the adapter file, and no other, is what the PeftModel holds (but for the
    copies of a modules_to_save wrapper's biases that peft's bias="all" adds to its own state dict:
    ...classifier.modules_to_save.bias and .original_module.bias beside ...classifier.bias)"""
    f, sd = load_file(f"{adapter}/adapter_model.safetensors"), get_peft_model_state_dict(model)
    sd = {k: v for k, v in sd.items() if ".modules_to_save." not in k and ".original_module." not in k}
    ok = set(f) == set(sd) and all(torch.equal(f[k], sd[k]) for k in f)
    print(("ok  " if ok else "FAIL") + f" {what}: {len(f)} tensors")
    if not ok: print("  only in the file:", sorted(set(f) - set(sd)), "only in peft's:", sorted(set(sd) - set(f)))
    return ok
base = lambda d: AutoModelForSequenceClassification.from_pretrained(f"{tmp}/{d}")
dora = PeftModel.from_pretrained(base("distilbert"), f"{tmp}/dora/best")
patterns = PeftModel.from_pretrained(base("distilbert"), f"{tmp}/patterns/best")
ranks = {n: m.r["default"] for n, m in patterns.named_modules() if hasattr(m, "r") and "default" in m.r}
want = {f"base_model.model.distilbert.transformer.layer.1.{k}": r for k, r in
        (("attention.q_lin", 8), ("attention.v_lin", 4), ("ffn.lin2", 2))}
v_lin = patterns.base_model.model.distilbert.transformer.layer[1].attention.v_lin
ok_ranks = ranks == want and v_lin.scaling["default"] == 6
print(("ok  " if ok_ranks else "FAIL") + f" loraft patterns adapter's modules, ranks and scale in peft: {ranks}")
all_linear = PeftModel.from_pretrained(base("distilbert"), f"{tmp}/all_linear/best")
bias = PeftModel.from_pretrained(base("distilbert"), f"{tmp}/bias/best")
results = [
    same(ours("ours_adapter"), probs(PeftModel.from_pretrained(base("distilbert"), f"{tmp}/run/best"), f"{tmp}/distilbert"),
         "loraft adapter in PeftModel.from_pretrained"),
    same(ours("ours_merged"), probs(base("merged"), f"{tmp}/merged"), "loraft merge in transformers"),
    same(ours("ours_peft"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_adapter"), f"{tmp}/bert"),
         "peft adapter in loraft"),
    holds_file(dora, f"{tmp}/dora/best", "loraft DoRA adapter (magnitudes too) in PeftModel"),
    same(ours("ours_dora"), probs(dora, f"{tmp}/distilbert"), "loraft DoRA adapter in PeftModel.from_pretrained"),
    same(ours("ours_dora_merged"), probs(base("dora_merged"), f"{tmp}/dora_merged"), "loraft DoRA merge in transformers"),
    same(ours("ours_peft_dora"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_dora"), f"{tmp}/bert"),
         "peft DoRA adapter in loraft"),
    ok_ranks,
    holds_file(patterns, f"{tmp}/patterns/best", "loraft patterns adapter in PeftModel"),
    same(ours("ours_patterns"), probs(patterns, f"{tmp}/distilbert"), "loraft patterns adapter in PeftModel.from_pretrained"),
    same(ours("ours_peft_patterns"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_patterns"), f"{tmp}/bert"),
         "peft patterns adapter in loraft"),
    holds_file(all_linear, f"{tmp}/all_linear/best", "loraft all-linear adapter in PeftModel"),
    same(ours("ours_all_linear"), probs(all_linear, f"{tmp}/distilbert"), "loraft all-linear adapter in PeftModel.from_pretrained"),
    same(ours("ours_peft_all_linear"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_all_linear"), f"{tmp}/bert"),
         "peft all-linear adapter (every module's full name) in loraft"),
    holds_file(bias, f"{tmp}/bias/best", "loraft bias-all adapter (every bias) in PeftModel"),
    same(ours("ours_bias"), probs(bias, f"{tmp}/distilbert"), "loraft bias-all adapter in PeftModel.from_pretrained"),
    same(ours("ours_peft_bias"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_bias"), f"{tmp}/bert"),
         "peft bias-lora_only adapter in loraft"),
]
for init, what in (("pissa", "PiSSA"), ("olora", "OLoRA")):  # each side rebuilds the residual base
    split = PeftModel.from_pretrained(base("distilbert"), f"{tmp}/{init}/best")
    results += [
        holds_file(split, f"{tmp}/{init}/best", f"loraft {what} adapter in PeftModel"),
        same(ours(f"ours_{init}"), probs(split, f"{tmp}/distilbert"), f"loraft {what} adapter in PeftModel.from_pretrained"),
        same(ours(f"ours_{init}_merged"), probs(base(f"{init}_merged"), f"{tmp}/{init}_merged"),
             f"loraft {what} merge in transformers"),
        same(ours(f"ours_peft_{init}"), probs(PeftModel.from_pretrained(base("bert"), f"{tmp}/peft_{init}"), f"{tmp}/bert"),
             f"peft {what} adapter in loraft"),
    ]
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF
