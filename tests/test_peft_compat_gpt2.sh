#!/usr/bin/env bash
# GPT-2 against transformers + PEFT: a tiny seeded GPT-2 (`loraft init --arch gpt2`, the GPT-2
# tokenizer) trains LoRA (r=4 on c_attn, c_proj and c_fc: "c_proj" takes both attn.c_proj and
# mlp.c_proj, as PEFT matches it; lora_dropout 0.1) for a few steps; then, with torch,
# transformers and peft from the venv of scripts/setup-python.sh (skips, saying why, without it):
#  1. the adapter_config says fan_in_fan_out (HF's Conv1D layout) and PeftModel.from_pretrained
#     onto GPT2LMHeadModel loads every tensor, none missing or unexpected, with no warning;
#  2. the loss on the validation texts of the base model, the adapter and the `loraft merge`d
#     directory (which plain transformers loads, head tied) equals loraft eval's (as
#     test_peft_compat_lm.sh computes it; within 2e-5);
#  3. `loraft generate --temperature 0` of the base and of the adapter equals transformers'
#     generate(do_sample=False) (PEFT's for the adapter) byte for byte, 16 new tokens;
#  4. the same base as a GGUF file (scripts/write-tiny-gguf.py: Conv1D weights as [out, in],
#     token_embd copied as output.weight, as llama.cpp's converter writes them) gives the same
#     losses with and without the adapter;
#  5. a Conv1D in modules_to_save (LoRA on c_attn, mlp.c_fc trained whole): the adapter holds
#     its weight as PEFT does ([in, out]) and gives PEFT's loss; resuming that run from its
#     step-4 checkpoint (training state with the Conv1D weight) ends where the whole run does.
set -euo pipefail
. tests/lm_compat_common.sh
lm_compat_setup peft-gpt2
max_len=32
prompt="Anne walked to the garden"
write_corpus

"$bin" init --arch gpt2 --layers 2 --hidden 64 --heads 4 --max-positions 64 \
  --vocab-from "$vocab" --seed 3 --out "$tmp/base" >/dev/null
cat >"$tmp/cfg.json" <<EOF
{"model": {"model": "$tmp/base", "task": "causal-lm"},
 "data": {"train_file": "$tmp/train.jsonl", "validation_file": "$tmp/valid.jsonl",
          "max_length": $max_len},
 "lora": {"r": 4, "alpha": 8, "dropout": 0.1, "target_modules": ["c_attn", "c_proj", "c_fc"]},
 "train": {"learning_rate": 3e-2, "batch_size": 4, "max_steps": 10, "lr_scheduler": "constant",
           "eval_strategy": "steps", "eval_steps": 10, "save_strategy": "steps", "save_steps": 10,
           "logging_steps": 0, "threads": 1, "output_dir": "$tmp/run"}}
EOF
"$bin" train --config "$tmp/cfg.json" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; echo "FAIL: loraft train"; exit 1; }
"$bin" merge --model "$tmp/base" --adapter "$tmp/run/best" --out "$tmp/merged" >/dev/null
"$py" scripts/write-tiny-gguf.py "$tmp/base" "$tmp/base.gguf"

{
  echo "base $(eval_loss "$tmp/cfg.json")"
  echo "adapter $(eval_loss "$tmp/cfg.json" --adapter "$tmp/run/best")"
  echo "merged $(eval_loss "$tmp/cfg.json" --set model.model="$tmp/merged")"
  echo "gguf_base $(eval_loss "$tmp/cfg.json" --set model.model="$tmp/base.gguf")"
  echo "gguf_adapter $(eval_loss "$tmp/cfg.json" --adapter "$tmp/run/best" --set model.model="$tmp/base.gguf")"
} >"$tmp/ours"
# 5: modules_to_save c_fc, 8 steps at once and 4 + 4 with --resume
for run in save resumed; do
  "$py" - "$tmp/cfg.json" "$tmp/$run.json" "$tmp/$run" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["lora"].update(target_modules=["c_attn"], modules_to_save=["c_fc"], dropout=0.0)
c["train"].update(max_steps=8, eval_steps=4, save_steps=4, output_dir=sys.argv[3])
json.dump(c, open(sys.argv[2], "w"))
EOF
done
"$bin" train --config "$tmp/save.json" >"$tmp/save.log" 2>&1 \
  || { cat "$tmp/save.log"; echo "FAIL: loraft train (modules_to_save)"; exit 1; }
"$bin" train --config "$tmp/resumed.json" --set train.max_steps=4 >"$tmp/resumed.log" 2>&1 &&
  "$bin" train --config "$tmp/resumed.json" --resume "$tmp/resumed/last" >>"$tmp/resumed.log" 2>&1 \
  || { cat "$tmp/resumed.log"; echo "FAIL: loraft train --resume (modules_to_save)"; exit 1; }
cmp -s "$tmp/save/last/adapter_model.safetensors" "$tmp/resumed/last/adapter_model.safetensors" \
  || { echo "FAIL: the resumed run's adapter differs from the uninterrupted run's"; exit 1; }
echo "ok   modules_to_save c_fc: 4 + 4 steps with --resume give the 8-step run's adapter, byte for byte"
echo "save $(eval_loss "$tmp/cfg.json" --adapter "$tmp/save/last")" >>"$tmp/ours"

gen() { "$bin" generate --device cpu --temperature 0 --max-new-tokens 16 "$@" "$prompt" 2>/dev/null; }
gen --model "$tmp/base" >"$tmp/gen_base"
gen --model "$tmp/base" --adapter "$tmp/run/best" >"$tmp/gen_adapter"

"$py" - "$tmp" "$max_len" "$prompt" <<'EOF'
import json, logging, sys, warnings
import torch
from peft import LoraConfig, PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging
hf_logging.disable_progress_bar()
tmp, max_len, prompt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
tol = 2e-5
torch.set_num_threads(1)
texts = [json.loads(l)["text"] for l in open(tmp + "/valid.jsonl")]
ours = {}
for line in open(tmp + "/ours"):
    what, loss, n = line.split()
    ours[what] = (float(loss), int(n))
results = []
def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    results.append(bool(ok))

class Grab(logging.Handler):  # peft and transformers report problems as log records
    def __init__(self): super().__init__(); self.msgs = []
    def emit(self, r): self.msgs.append(r.getMessage())
grab = Grab()
for name in ("peft", "transformers"): logging.getLogger(name).addHandler(grab)

def hf_loss(model):
    """loraft's eval_loss: each text alone, right-truncated, no BOS, mean over predicted tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for t in texts:
            ids = tok(t)["input_ids"][:max_len]
            if len(ids) < 2: continue
            x = torch.tensor([ids])
            logits = model(input_ids=x).logits[0, :-1].double()
            total += float(torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum"))
            count += len(ids) - 1
    return total / count, count

def same_loss(what, model, key):
    loss, n = hf_loss(model)
    ref, n_ours = ours[key]
    check(n == n_ours and abs(loss - ref) <= tol,
          f"{what}: loss loraft {ref:.7f} vs transformers {loss:.7f} (|diff| {abs(loss - ref):.1e}, "
          f"{n} tokens vs {n_ours})")

# GPT-2's byte-level alphabet: the raw bytes of tokens, as loraft streams them
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
cs, k = bs[:], 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + k); k += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}

def same_greedy(what, model, path):
    ids = tok(prompt)["input_ids"]
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids),
                             dtype=torch.long), do_sample=False, max_new_tokens=16,
                             pad_token_id=tok.eos_token_id)
    new = [i for i in out[0, len(ids):].tolist() if i != tok.eos_token_id]
    want = bytes(byte_of[c] for t in tok.convert_ids_to_tokens(new) for c in t)
    got = open(path, "rb").read().rstrip(b"\n")
    check(got == want, f"{what}: loraft generate's greedy continuation equals transformers' "
          f"({got[:40]!r} vs {want[:40]!r})")

adapter = tmp + "/run/best"
tok = AutoTokenizer.from_pretrained(tmp + "/base")
cfg = LoraConfig.from_pretrained(adapter)
check(cfg.fan_in_fan_out and cfg.task_type == "CAUSAL_LM" and
      set(cfg.target_modules) == {"c_attn", "c_proj", "c_fc"},
      f"adapter_config: fan_in_fan_out {cfg.fan_in_fan_out}, task_type {cfg.task_type}, "
      f"targets {sorted(cfg.target_modules)}")
base = AutoModelForCausalLM.from_pretrained(tmp + "/base", dtype=torch.float32).eval()
same_loss("base", base, "base")
same_loss("GGUF base", base, "gguf_base")
same_greedy("base", base, tmp + "/gen_base")

grab.msgs.clear()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    model = PeftModel.from_pretrained(base, adapter).eval()
noise = [m for m in grab.msgs + [str(w.message) for w in caught]
         if any(s in m.lower() for s in ("missing", "unexpected", "fan_in_fan_out"))]
check(not noise, f"PeftModel.from_pretrained: no missing/unexpected keys, no fan_in_fan_out warning {noise}")
saved = load_file(adapter + "/adapter_model.safetensors")
lora = {k.replace(".default", ""): v for k, v in model.state_dict().items() if "lora_" in k}
check(set(lora) == set(saved) and len(saved) == 2 * 4 * 2,
      f"the PEFT model's {len(lora)} LoRA tensors (c_attn, attn.c_proj, c_fc, mlp.c_proj per layer) "
      f"are the file's {len(saved)}")
check(all(float(saved[k].abs().max()) > 0 for k in saved if "lora_B" in k), "every lora_B trained")
same_loss("adapter (PEFT)", model, "adapter")
same_loss("adapter on the GGUF base", model, "gguf_adapter")
check(abs(ours["adapter"][0] - ours["base"][0]) > 1e-3,
      f"the adapter changes the loss ({ours['base'][0]:.4f} -> {ours['adapter'][0]:.4f})")
same_greedy("adapter (PEFT)", model, tmp + "/gen_adapter")

merged, info = AutoModelForCausalLM.from_pretrained(tmp + "/merged", dtype=torch.float32,
                                                    output_loading_info=True)
bad = {k: v for k, v in info.items() if v}
names = set(load_file(tmp + "/merged/model.safetensors"))
check(not bad and "lm_head.weight" not in names and
      merged.lm_head.weight.data_ptr() == merged.transformer.wte.weight.data_ptr(),
      f"merged: loads with no missing/unexpected keys {bad}, head tied")
same_loss("merged (transformers)", merged.eval(), "adapter")
same_loss("merged (loraft eval)", model, "merged")

# 5: a Conv1D among modules_to_save
saved = load_file(tmp + "/save/last/adapter_model.safetensors")
w = saved.get("base_model.model.transformer.h.0.mlp.c_fc.weight")
check(w is not None and tuple(w.shape) == tuple(base.transformer.h[0].mlp.c_fc.weight.shape),
      f"modules_to_save c_fc: saved [in, out] as PEFT does ({None if w is None else tuple(w.shape)})")
base2 = AutoModelForCausalLM.from_pretrained(tmp + "/base", dtype=torch.float32)
model2 = PeftModel.from_pretrained(base2, tmp + "/save/last").eval()
same_loss("modules_to_save c_fc (PEFT)", model2, "save")
print(f"{sum(results)} passed, {len(results) - sum(results)} failed")
sys.exit(0 if all(results) else 1)
EOF
